// WooCommerce webhooks: the ping, the signature, the source, the topics.

import { parseStoreUrl, sameSite, STORE_URL } from './config.js';
import { badPayload, badSignature, permanent } from './errors.js';
import { orderEvents } from './order.js';
import * as signature from './signature.js';

export const SIGNATURE = 'x-wc-webhook-signature';
export const TOPIC = 'x-wc-webhook-topic';
export const DELIVERY_ID = 'x-wc-webhook-delivery-id';
export const SOURCE = 'x-wc-webhook-source';

/** Topics whose body is the order as the REST API returns it. */
const ORDER_TOPICS = new Set(['order.created', 'order.updated']);

/** What WooCommerce sends when a webhook is saved as active: `webhook_id=12`, nothing else. */
const PING_BODY = /^webhook_id=\d+$/;

/**
 * Verifies a webhook on its raw body, then turns it into canonical events.
 *
 * @param {{ secret: string | undefined, storeUrl: string | undefined }} verifier the connection's
 *   webhook secret and shop address (optional here: it only narrows who may send)
 * @param {{ method: string, path: string, headers: {name: string, value: string}[], body: Uint8Array }} request
 * @returns the WIT `inbound` record
 */
export async function handle(verifier, request) {
  const given = header(request.headers, SIGNATURE);
  if (given === undefined && isPing(request)) {
    // WooCommerce pings a webhook's URL when the webhook is saved as active and keeps the webhook
    // "pending delivery" until the ping is answered with 200. The ping is not signed and carries
    // no data, so it is acknowledged with no events: nothing is trusted, nothing is done.
    return { deliveryId: undefined, topic: 'ping', events: [] };
  }
  await verify(verifier, request, given);

  const topic = header(request.headers, TOPIC)?.trim();
  if (!topic) throw badPayload(`header \`${TOPIC}\` is missing`);
  const events = ORDER_TOPICS.has(topic.toLowerCase()) ? orderTopicEvents(request.body) : [];
  return { deliveryId: deliveryId(request, events), topic, events };
}

/** A ping: no topic, and the form-encoded body WooCommerce pings with. */
export function isPing(request) {
  if (header(request.headers, TOPIC) !== undefined) return false;
  if (request.body.length > 64) return false;
  const text = new TextDecoder().decode(request.body).trim();
  return PING_BODY.test(text);
}

/**
 * Checks the signature (`X-WC-Webhook-Signature` = base64(HMAC-SHA256(secret, raw body))) and,
 * when the connection names its shop, that the delivery comes from that shop
 * (`X-WC-Webhook-Source`, WordPress's `home_url`): a webhook secret is typed in by hand and may
 * well be reused across shops.
 */
export async function verify(verifier, request, given) {
  // Anyone can compute an HMAC with an empty key.
  if (typeof verifier.secret !== 'string' || verifier.secret === '') {
    throw permanent('connection secret `webhook_secret` is not set');
  }
  if (given === undefined) throw badSignature(`header \`${SIGNATURE}\` is missing`);
  try {
    await signature.verify(verifier.secret, request.body, given);
  } catch (error) {
    throw badSignature(`woocommerce webhook refused: ${error.message}`);
  }
  const storeUrl = verifier.storeUrl?.trim();
  const source = header(request.headers, SOURCE);
  if (storeUrl && source !== undefined) {
    const expected = parseStoreUrl(storeUrl);
    if (!expected) {
      throw permanent(`connection setting \`${STORE_URL}\` is not a shop address: \`${storeUrl}\``);
    }
    const sender = parseStoreUrl(source);
    if (!sender || !sameSite(expected, sender)) {
      throw badSignature(`webhook is from \`${source.trim()}\`, this connection is for \`${storeUrl}\``);
    }
  }
}

function orderTopicEvents(body) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw badPayload('body is not UTF-8 text');
  }
  let order;
  try {
    order = JSON.parse(text);
  } catch (error) {
    throw badPayload(`body is not JSON: ${error.message}`);
  }
  if (order === null || typeof order !== 'object' || Array.isArray(order)) {
    throw badPayload('body is not a JSON object');
  }
  if (order.status === undefined && order.order !== null && typeof order.order === 'object') {
    // The legacy REST API (WooCommerce < 3) wrapped the order: {"order": {...}}.
    throw badPayload("body is a legacy API order: set the webhook's API version to \"WP REST API Integration v3\"");
  }
  return orderEvents(order);
}

/**
 * The id the gateway drops redeliveries with. WooCommerce's `X-WC-Webhook-Delivery-ID` is a hash
 * of the webhook's id and the current second only, so two orders delivered by one webhook within
 * the same second share it (a queue of deliveries runs in one go): the order's id is appended to
 * keep them apart.
 */
function deliveryId(request, events) {
  const id = header(request.headers, DELIVERY_ID)?.trim();
  if (!id) return undefined;
  const event = events[0];
  if (!event) return id;
  return `${id}:${event.tag === 'case-opened' ? event.val.orderExternalId : event.val.externalId}`;
}

/** A header's value (names compare case-insensitively), the first when repeated. */
export function header(headers, name) {
  const found = headers.find((h) => h.name.toLowerCase() === name);
  return found?.value;
}
