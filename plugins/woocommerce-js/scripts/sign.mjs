// Prints base64(HMAC-SHA256(secret, file bytes)): the `X-WC-Webhook-Signature` WooCommerce would
// send with that body. For writing test cases: `node scripts/sign.mjs SECRET FILE` (`-` reads
// standard input).

import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [secret, file] = process.argv.slice(2);
if (secret === undefined || file === undefined) {
  console.error('usage: node scripts/sign.mjs SECRET FILE|-');
  process.exit(2);
}
const body = readFileSync(file === '-' ? 0 : file);
console.log(createHmac('sha256', secret).update(body).digest('base64'));
