import { readFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';

export const FIXTURE = readFileSync(new URL('../fixtures/rest-v3-retrieve-order.response.json', import.meta.url));
export const SECRET = 'wc-test-webhook-secret';
export const STORE = 'https://shop.example.com';

/** base64(HMAC-SHA256(secret, body)), by Node's own crypto rather than the plugin's. */
export const sign = (secret, bytes) => createHmac('sha256', secret).update(bytes).digest('base64');

/** A delivery as WooCommerce makes it: signed with `SECRET`, from `STORE`. */
export function delivery(topic, body, extra = {}) {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : new Uint8Array(body);
  const headers = {
    'content-type': 'application/json',
    'x-wc-webhook-source': `${STORE}/`,
    'x-wc-webhook-topic': topic,
    'x-wc-webhook-resource': topic.split('.')[0],
    'x-wc-webhook-event': topic.split('.')[1] ?? '',
    'x-wc-webhook-signature': sign(SECRET, bytes),
    'x-wc-webhook-id': '12',
    'x-wc-webhook-delivery-id': '8b0bba6d4a8e4b1ca7b7f9f4c0e1d2a3',
    ...extra,
  };
  return {
    method: 'POST',
    path: '/hooks/shop',
    headers: Object.entries(headers)
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => ({ name, value })),
    body: bytes,
  };
}

/** The fixture order with some fields changed, as JSON text. */
export function fixtureWith(changes) {
  return JSON.stringify({ ...JSON.parse(FIXTURE.toString('utf8')), ...changes });
}
