// Webhook signatures: base64(HMAC-SHA256(secret, raw body)), checked on the raw bytes before any
// parsing, in constant time. The HMAC is WebCrypto's (`crypto.subtle`), which the JavaScript
// engine of componentize-js (StarlingMonkey) implements natively, as Node does for the tests.

import * as base64 from './base64.js';
import { badSignature } from './errors.js';

/** HMAC-SHA256(secret, body). */
export async function hmacSha256(secret, body) {
  const key = await crypto.subtle.importKey(
    'raw',
    base64.utf8(secret),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  return new Uint8Array(await crypto.subtle.sign('HMAC', key, body));
}

/** base64(HMAC-SHA256(secret, body)): how WooCommerce signs a delivery. */
export async function sign(secret, body) {
  return base64.encode(await hmacSha256(secret, body));
}

/**
 * Checks a signature header against the body. Throws `bad-signature` when it is not base64 or
 * does not match.
 *
 * @param {string} secret
 * @param {Uint8Array} body the raw body, as received
 * @param {string} header the header's value
 */
export async function verify(secret, body, header) {
  const given = base64.decode(header.trim());
  if (given === undefined) throw badSignature('signature header is not base64');
  const expected = await hmacSha256(secret, body);
  if (!equalInConstantTime(expected, given)) {
    throw badSignature('signature does not match the body');
  }
}

/**
 * Whether two byte strings are equal, in a time that depends only on their lengths (which are
 * public: an HMAC-SHA256 is 32 bytes).
 */
export function equalInConstantTime(a, b) {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}
