import { test } from 'node:test';
import assert from 'node:assert/strict';
import { check, push } from '../src/fulfillment.js';
import { transportError } from '../src/rest.js';
import { storeForApi, completeOrders } from '../src/config.js';
import { transient } from '../src/errors.js';

const API = 'https://shop.example.com/wp-json/wc/v3';
const AUTH = `Basic ${Buffer.from('ck_test:cs_test').toString('base64')}`;
const config = { store: storeForApi('https://shop.example.com/'), consumerKey: 'ck_test', consumerSecret: 'cs_test', completeOrders: true };

const request = (lines, overrides = {}) => ({
  orderExternalId: '727',
  shipmentId: 'shp_01',
  shipment: {
    lines: lines.map(([externalLineId, quantity]) => ({ externalLineId, quantity })),
    carrierCode: 'UPS',
    trackingNumber: '1Z001985YW99744790',
    trackingUrl: 'https://www.ups.com/track?tracknum=1Z001985YW99744790',
    shippedAt: 1767225600000n,
  },
  notifyCustomer: true,
  ...overrides,
});

const order = (meta = [], status = 'processing') => ({
  id: 727,
  status,
  line_items: [
    { id: 315, name: 'Woo Single #1', quantity: 2 },
    { id: 316, name: 'Ship Your Idea &ndash; Color: Black, Size: M Test', quantity: 1 },
  ],
  meta_data: meta,
});

/** A peer answering from a script, recording what it was sent (bodies as JSON). */
function peer(answers) {
  const sent = [];
  const send = (req) => {
    const body = req.body.length ? JSON.parse(new TextDecoder().decode(req.body)) : undefined;
    sent.push({ method: req.method, url: req.url, headers: Object.fromEntries(req.headers.map((h) => [h.name, h.value])), body });
    const answer = answers.shift();
    if (!answer) throw new Error(`unexpected request ${req.method} ${req.url}`);
    if (answer instanceof Error) throw answer;
    const [status, json] = answer;
    return { status, headers: [], body: new TextEncoder().encode(typeof json === 'string' ? json : JSON.stringify(json)) };
  };
  return { send, sent };
}

test('a shipment of the whole order adds a customer note and completes the order', () => {
  const { send, sent } = peer([[200, order()], [200, []], [201, { id: 281, note: '…' }], [200, { id: 727 }]]);
  const result = push(request([['315', 2], ['316', 1]]), config, send);
  assert.deepEqual(result, { noteId: '281', outcome: 'created', completed: true });
  assert.deepEqual(sent.map((r) => `${r.method} ${r.url}`), [
    `GET ${API}/orders/727`, `GET ${API}/orders/727/notes`, `POST ${API}/orders/727/notes`, `PUT ${API}/orders/727`,
  ]);
  assert.ok(sent.every((r) => r.headers.authorization === AUTH));
  assert.deepEqual(sent[2].body, {
    note:
      'Your order has shipped with UPS, tracking number 1Z001985YW99744790.\n' +
      'Track it at https://www.ups.com/track?tracknum=1Z001985YW99744790\n' +
      'In this parcel: Woo Single #1 \u00d7 2, Ship Your Idea \u2013 Color: Black, Size: M Test \u00d7 1',
    customer_note: true,
  });
  assert.deepEqual(sent[3].body, {
    meta_data: [{ key: '_daifa_shipment_shp_01', value: {
      shipment_id: 'shp_01', carrier: 'UPS', tracking_number: '1Z001985YW99744790',
      tracking_url: 'https://www.ups.com/track?tracknum=1Z001985YW99744790', shipped_at: '2026-01-01T00:00:00Z',
      lines: [{ line_id: '315', quantity: 2 }, { line_id: '316', quantity: 1 }], note_id: 281,
    } }],
    status: 'completed',
  });
});

test('a partial shipment leaves the status; the last one completes the order', () => {
  const first = peer([[200, order()], [200, []], [201, { id: 281 }], [200, {}]]);
  assert.equal(push(request([['315', 2]], { notifyCustomer: false }), config, first.send).completed, false);
  assert.equal(first.sent[2].body.customer_note, false);
  assert.equal(first.sent[3].body.status, undefined);

  const recorded = [{ id: 1, key: '_daifa_shipment_shp_01', value: { lines: [{ line_id: '315', quantity: 2 }], note_id: 281 } }];
  const second = peer([[200, order(recorded)], [200, []], [201, { id: 282 }], [200, {}]]);
  const result = push(request([['316', 1]], { shipmentId: 'shp_02', shipment: { ...request([]).shipment, trackingNumber: 'LX123', trackingUrl: undefined, lines: [{ externalLineId: '316', quantity: 1 }] } }), config, second.send);
  assert.deepEqual(result, { noteId: '282', outcome: 'created', completed: true });
  assert.equal(second.sent[2].body.note, 'Your order has shipped with UPS, tracking number LX123.\nIn this parcel: Ship Your Idea \u2013 Color: Black, Size: M Test \u00d7 1');
  assert.equal(second.sent[3].body.status, 'completed');

  const never = peer([[200, order()], [200, []], [201, { id: 283 }], [200, {}]]);
  assert.equal(push(request([['315', 2], ['316', 1]]), { ...config, completeOrders: false }, never.send).completed, false);
  assert.equal(never.sent[3].body.status, undefined);
});

test('a retried push returns the recorded note without writing anything', () => {
  const recorded = [{ id: 1, key: '_daifa_shipment_shp_01', value: { lines: [{ line_id: '315', quantity: 2 }], note_id: 281 } }];
  const { send, sent } = peer([[200, order(recorded)]]);
  assert.deepEqual(push(request([['315', 2]]), config, send), { noteId: '281', outcome: 'already-recorded', completed: false });
  assert.equal(sent.length, 1);
});

test('a note already naming the tracking number is reused, and the shipment still recorded', () => {
  const notes = [{ id: 280, note: 'Order status changed' }, { id: 281, note: 'Your order has shipped with UPS, tracking number 1z001985yw99744790.' }];
  const { send, sent } = peer([[200, order()], [200, notes], [200, {}]]);
  assert.deepEqual(push(request([['315', 2], ['316', 1]]), config, send), { noteId: '281', outcome: 'found-note', completed: true });
  assert.deepEqual(sent.map((r) => r.method), ['GET', 'GET', 'PUT']);
});

test('statuses are classified: 4xx permanent, 429 and 5xx transient', () => {
  const cases = [
    [401, { code: 'woocommerce_rest_cannot_view', message: 'Sorry, you cannot list resources.', data: { status: 401 } }, 'permanent', /answered 401 \(check the consumer key.*woocommerce_rest_cannot_view: Sorry/],
    [403, 'Forbidden', 'permanent', /answered 403/],
    [404, { code: 'woocommerce_rest_shop_order_invalid_id', message: 'Invalid ID.', data: { status: 404 } }, 'permanent', /order `727` was not found/],
    [400, { code: 'rest_invalid_param', message: 'Invalid parameter(s): status' }, 'permanent', /rest_invalid_param/],
    [429, 'slow down', 'transient', /answered 429: slow down/],
    [503, '<html>Service Unavailable</html>', 'transient', /answered 503/],
  ];
  for (const [status, body, kind, message] of cases) {
    const { send } = peer([[status, body]]);
    assert.throws(() => push(request([['315', 2]]), config, send), { kind, message }, String(status));
  }
  const { send } = peer([[503, 'down'], [200, []]]);
  assert.throws(() => push(request([['315', 2]]), config, send), { kind: 'transient' });
});

test('a failure after the note stops the push; its retry finds the note', () => {
  const { send } = peer([[200, order()], [200, []], [201, { id: 281 }], [502, 'bad gateway']]);
  assert.throws(() => push(request([['315', 2]]), config, send), { kind: 'transient' });
});

test('unknown lines, empty shipments, closed orders and foreign ids are permanent', () => {
  const cases = [
    [request([['999', 1]]), [[200, order()]], /`999` is not a line item of order `727`/],
    [request([['315', 0]]), [[200, order()]], /^shipment lists no order line with a quantity$/],
    [request([['315', 1]]), [[200, order([], 'cancelled')]], /order `727` is cancelled in the shop/],
    [request([['315', 1]], { orderExternalId: '#727' }), [], /^`#727` is not a woocommerce order id$/],
    [request([['315', 1]]), [[200, '<html>maintenance</html>']], /not JSON/],
  ];
  for (const [req, answers, message] of cases) {
    assert.throws(() => push(req, config, peer(answers).send), { kind: 'permanent', message });
  }
});

test('transport errors of the host map to kinds', () => {
  assert.equal(transportError({ payload: { tag: 'unreachable', val: 'timed out' } }).kind, 'transient');
  assert.equal(transportError({ payload: { tag: 'not-allowed', val: 'shop.example.com' } }).kind, 'permanent');
  assert.equal(transportError(transient('x')).kind, 'transient');
  assert.equal(transportError(new TypeError('bug')), undefined);
});

test('the store address must be https, but for a loopback test double', () => {
  assert.deepEqual(storeForApi(' https://Shop.example.com/shop/ '), { scheme: 'https', host: 'shop.example.com', path: '/shop' });
  assert.throws(() => storeForApi('http://shop.example.com'), { kind: 'permanent', message: /https/ });
  assert.equal(storeForApi('http://127.0.0.1:8080').host, '127.0.0.1:8080');
  assert.throws(() => storeForApi('shop.example.com'), { kind: 'permanent' });
  assert.throws(() => storeForApi(undefined), { kind: 'permanent', message: 'connection setting `store_url` is not set' });
  assert.equal(completeOrders(undefined), true);
  assert.equal(completeOrders('False'), false);
  assert.throws(() => completeOrders('maybe'), { kind: 'permanent' });
});

test('the connection check reads one order with the key and reports the count', () => {
  const urls = [];
  const withTotal = (req) => {
    urls.push(req.url);
    const headers = [{ name: 'x-wp-total', value: '727' }, { name: 'x-wp-totalpages', value: '727' }];
    return { status: 200, headers, body: new TextEncoder().encode('[{"id":727}]') };
  };
  assert.equal(check(config, withTotal), 'woocommerce at https://shop.example.com: API key accepted, 727 orders');
  assert.deepEqual(urls, [`${API}/orders?per_page=1`]);
  // Without the count header, the check still passes.
  assert.equal(check(config, peer([[200, []]]).send), 'woocommerce at https://shop.example.com: API key accepted');
  const denied = peer([[401, { code: 'woocommerce_rest_cannot_view', message: 'Sorry, you cannot list resources.' }]]);
  assert.throws(() => check(config, denied.send), { kind: 'permanent', message: /401.*woocommerce_rest_cannot_view/ });
  assert.throws(() => check(config, peer([[503, 'maintenance']]).send), { kind: 'transient' });
  assert.throws(() => check(config, peer([[200, { id: 1 }]]).send), { kind: 'permanent', message: /without a list of orders/ });
});
