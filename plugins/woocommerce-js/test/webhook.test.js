import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handle } from '../src/webhook.js';
import { delivery, FIXTURE, fixtureWith, SECRET, STORE } from './helpers.js';

const verifier = { secret: SECRET, storeUrl: STORE };
const usd = (amountMinor) => ({ amountMinor, currency: 'USD' });

/** The published order 727, in canonical form. */
export const ORDER_727 = {
  externalId: '727',
  orderNumber: '727',
  storefront: 'woocommerce',
  currency: 'USD',
  subtotal: usd(1800n),
  shipping: usd(1000n),
  tax: usd(135n),
  total: usd(2935n),
  placedAt: 1490210882000n,
  buyerNote: undefined,
  customer: { name: 'John Doe', email: 'john.doe@example.com', phone: '(555) 555-5555' },
  shippingAddress: {
    name: 'John Doe',
    company: undefined,
    line1: '969 Market',
    line2: undefined,
    city: 'San Francisco',
    province: 'CA',
    provinceCode: 'CA',
    postalCode: '94103',
    countryCode: 'US',
    phone: '(555) 555-5555',
  },
  lines: [
    {
      externalLineId: '315',
      storefrontSku: 'woocommerce-product:93',
      title: 'Woo Single #1',
      variantTitle: undefined,
      quantity: 2,
      unitPrice: usd(300n),
      note: undefined,
    },
    {
      externalLineId: '316',
      storefrontSku: 'Bar3',
      title: 'Ship Your Idea \u2013 Color: Black, Size: M Test',
      variantTitle: 'black / M Test',
      quantity: 1,
      unitPrice: usd(1200n),
      note: undefined,
    },
  ],
  // `processing`, paid by bank transfer (`bacs`), nothing refunded.
  payment: 'paid',
  // `date_modified_gmt`: 2017-03-22T19:28:08, UTC.
  updatedAt: 1490210888000n,
};

test('order.created with the published order becomes order-placed', async () => {
  const inbound = await handle(verifier, delivery('order.created', FIXTURE));
  assert.deepEqual(inbound, {
    deliveryId: '8b0bba6d4a8e4b1ca7b7f9f4c0e1d2a3:727',
    topic: 'order.created',
    events: [{ tag: 'order-placed', val: ORDER_727 }],
  });
});

test('order.updated places the order too: a later copy, with its update time', async () => {
  const inbound = await handle(verifier, delivery('order.updated', FIXTURE));
  assert.deepEqual(inbound.events, [{ tag: 'order-placed', val: ORDER_727 }]);
  assert.equal(inbound.topic, 'order.updated');

  // The buyer's address corrected the next morning: the same order, a later `updated-at`.
  const fixture = JSON.parse(FIXTURE.toString('utf8'));
  const body = fixtureWith({
    date_modified_gmt: '2017-03-23T08:00:00',
    shipping: { ...fixture.shipping, address_1: '1 Market', postcode: '94105' },
  });
  const corrected = await handle(verifier, delivery('order.updated', body));
  assert.deepEqual(corrected.events, [
    {
      tag: 'order-placed',
      val: {
        ...ORDER_727,
        shippingAddress: { ...ORDER_727.shippingAddress, line1: '1 Market', postalCode: '94105' },
        updatedAt: 1490256000000n,
      },
    },
  ]);
  assert.equal(corrected.deliveryId, '8b0bba6d4a8e4b1ca7b7f9f4c0e1d2a3:727');

  // Topics are compared as WooCommerce may case them.
  const shouted = await handle(verifier, delivery('Order.Updated', FIXTURE));
  assert.equal(shouted.events[0].tag, 'order-placed');
});

test('an order paid after waiting for its transfer: order.updated places it once it is processing', async () => {
  const waiting = await handle(
    verifier,
    delivery('order.created', fixtureWith({ status: 'on-hold', date_paid_gmt: null, date_modified_gmt: '2017-03-22T19:28:02' })),
  );
  assert.deepEqual(waiting.events, []);
  const paid = await handle(verifier, delivery('order.updated', FIXTURE));
  assert.deepEqual(paid.events.map((e) => [e.tag, e.val.payment, e.val.updatedAt]), [
    ['order-placed', 'paid', 1490210888000n],
  ]);
});

test('a cancelled order becomes order-cancelled at its last modification', async () => {
  const body = fixtureWith({ status: 'cancelled', date_modified_gmt: '2017-03-23T08:00:00' });
  const inbound = await handle(verifier, delivery('order.updated', body));
  assert.deepEqual(inbound.events, [
    { tag: 'order-cancelled', val: { externalId: '727', reason: undefined, cancelledAt: 1490256000000n } },
  ]);
});

test('unpaid orders wait; custom statuses count when paid', async () => {
  for (const status of ['pending', 'on-hold', 'failed', 'checkout-draft', 'refunded']) {
    const inbound = await handle(verifier, delivery('order.created', fixtureWith({ status })));
    assert.deepEqual(inbound.events, [], status);
    assert.equal(inbound.deliveryId, '8b0bba6d4a8e4b1ca7b7f9f4c0e1d2a3');
  }
  const shipped = await handle(verifier, delivery('order.updated', fixtureWith({ status: 'shipped' })));
  assert.equal(shipped.events[0].tag, 'order-placed');
  const unpaid = await handle(verifier, delivery('order.updated', fixtureWith({ status: 'quote', date_paid_gmt: null })));
  assert.deepEqual(unpaid.events, []);
});

test('the ping is acknowledged without a signature and without events', async () => {
  const ping = { method: 'POST', path: '/hooks/shop', headers: [{ name: 'user-agent', value: 'WooCommerce/9.8.1 Hookshot (WordPress/6.8)' }], body: new TextEncoder().encode('webhook_id=12') };
  assert.deepEqual(await handle(verifier, ping), { deliveryId: undefined, topic: 'ping', events: [] });
  // Even before the secret is set up: the ping is what WooCommerce sends on saving the webhook.
  assert.deepEqual((await handle({ secret: undefined, storeUrl: undefined }, ping)).events, []);
  // Anything else unsigned is refused.
  const other = { ...ping, body: new TextEncoder().encode('webhook_id=12&x=1') };
  await assert.rejects(() => handle(verifier, other), { kind: 'bad-signature' });
  const withTopic = { ...ping, headers: [...ping.headers, { name: 'x-wc-webhook-topic', value: 'order.created' }] };
  await assert.rejects(() => handle(verifier, withTopic), { kind: 'bad-signature' });
});

test('missing, malformed and wrong signatures are refused before parsing', async () => {
  await assert.rejects(() => handle(verifier, delivery('order.created', FIXTURE, { 'x-wc-webhook-signature': undefined })), {
    kind: 'bad-signature',
    message: 'header `x-wc-webhook-signature` is missing',
  });
  await assert.rejects(() => handle(verifier, delivery('order.created', FIXTURE, { 'x-wc-webhook-signature': 'not base64!' })), {
    kind: 'bad-signature',
    message: 'woocommerce webhook refused: signature header is not base64',
  });
  const tampered = delivery('order.created', FIXTURE);
  tampered.body = new TextEncoder().encode(FIXTURE.toString().replace('"29.35"', '"1.00"'));
  await assert.rejects(() => handle(verifier, tampered), { kind: 'bad-signature', message: /does not match/ });
  await assert.rejects(() => handle({ ...verifier, secret: 'another-secret' }, delivery('order.created', FIXTURE)), { kind: 'bad-signature' });
  await assert.rejects(() => handle({ ...verifier, secret: '' }, delivery('order.created', FIXTURE)), { kind: 'permanent' });
});

test('a delivery from another shop is refused; scheme, case and trailing slash do not matter', async () => {
  await assert.rejects(() => handle(verifier, delivery('order.created', FIXTURE, { 'x-wc-webhook-source': 'https://other.example.com/' })), {
    kind: 'bad-signature',
    message: /other\.example\.com/,
  });
  const ok = await handle({ ...verifier, storeUrl: 'http://SHOP.example.com/' }, delivery('order.created', FIXTURE));
  assert.equal(ok.events.length, 1);
  const sub = await handle({ ...verifier, storeUrl: 'https://example.com/shop' }, delivery('order.created', FIXTURE, { 'x-wc-webhook-source': 'https://example.com/shop/' }));
  assert.equal(sub.events.length, 1);
  await assert.rejects(() => handle({ ...verifier, storeUrl: 'https://example.com/shop' }, delivery('order.created', FIXTURE, { 'x-wc-webhook-source': 'https://example.com/' })), { kind: 'bad-signature' });
  // Without a source header, or without the setting, only the signature counts.
  assert.equal((await handle({ ...verifier, storeUrl: undefined }, delivery('order.created', FIXTURE))).events.length, 1);
  assert.equal((await handle(verifier, delivery('order.created', FIXTURE, { 'x-wc-webhook-source': undefined }))).events.length, 1);
});

test('other topics are acknowledged without events', async () => {
  for (const topic of ['product.updated', 'order.deleted', 'action.woocommerce_order_status_changed']) {
    const inbound = await handle(verifier, delivery(topic, '{"id":727}'));
    assert.deepEqual(inbound, { deliveryId: '8b0bba6d4a8e4b1ca7b7f9f4c0e1d2a3', topic, events: [] });
  }
  await assert.rejects(() => handle(verifier, delivery('order.created', FIXTURE, { 'x-wc-webhook-topic': undefined })), {
    kind: 'bad-payload',
    message: 'header `x-wc-webhook-topic` is missing',
  });
});

test('bodies that are not an order are bad payloads naming what is wrong', async () => {
  const cases = [
    ['<html>not json</html>', /^body is not JSON/],
    ['[1,2]', /^body is not a JSON object$/],
    ['{"id": 5}', /^missing field `status`$/],
    ['{"order": {"id": 5, "status": "processing"}}', /legacy API order: set the webhook's API version/],
    ['{"id": 5, "status": "processing"}', /^missing field `currency`$/],
    [fixtureWith({ currency: 'XXY' }), /^`currency`: unknown currency `XXY`$/],
    [fixtureWith({ total: 29.35 }), /^`total`: invalid amount `29.35` for USD$/],
    [fixtureWith({ date_created_gmt: null }), /^missing field `date_created_gmt`$/],
    [fixtureWith({ line_items: [{ id: 1, name: 'x', quantity: 1.5, subtotal: '1.00' }] }), /^`line_items\[0\].quantity`: `1.5` is not a quantity$/],
    [fixtureWith({ line_items: [{ id: 1, name: 'x', quantity: 1 }] }), /^missing field `line_items\[0\].subtotal`$/],
    [fixtureWith({ shipping: { address_1: 'Main 1' } }), /^missing field `shipping.country`$/],
  ];
  for (const [body, message] of cases) {
    await assert.rejects(() => handle(verifier, delivery('order.created', body)), { kind: 'bad-payload', message }, body.slice(0, 40));
  }
  const notUtf8 = delivery('order.created', [0xff, 0xfe]);
  await assert.rejects(() => handle(verifier, notUtf8), { kind: 'bad-payload', message: 'body is not UTF-8 text' });
});
