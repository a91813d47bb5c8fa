import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { carries, caseMarker, decideReturn, reasonText, refund, REFUNDS_PAGE } from '../src/refund.js';
import { storeForApi } from '../src/config.js';
import { currency, formatMinor } from '../src/money.js';
import { transient } from '../src/errors.js';
import { FIXTURE } from './helpers.js';

const API = 'https://shop.example.com/wp-json/wc/v3';
const AUTH = `Basic ${Buffer.from('ck_test:cs_test').toString('base64')}`;
const config = { store: storeForApi('https://shop.example.com'), consumerKey: 'ck_test', consumerSecret: 'cs_test' };
const CASE = 'cas_01JD7QK2M3';

/** The published order 727 (USD; line 315: 2 × "Woo Single #1", total 6.00; line 316: 1 unit, total 12.00). */
const published = () => JSON.parse(FIXTURE.toString('utf8'));
const fixture = (name) => JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'));

const request = (overrides = {}) => ({
  orderExternalId: '727',
  caseId: CASE,
  amount: { amountMinor: 1290n, currency: 'USD' },
  lines: [{ externalLineId: '316', quantity: 1 }],
  reason: 'damaged in transit',
  notifyCustomer: true,
  ...overrides,
});

/** A shop answering from a script, recording what it was sent (bodies as JSON). */
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

test('a refund of a line reads the order and its refunds, then posts the refund through the gateway', () => {
  const { send, sent } = peer([[200, published()], [200, []], [201, fixture('refund-727-created.json')]]);
  assert.deepEqual(refund(request(), config, send), { refundId: '731', outcome: 'created', amount: '12.90' });
  assert.deepEqual(sent.map((r) => `${r.method} ${r.url}`), [
    `GET ${API}/orders/727`,
    `GET ${API}/orders/727/refunds?per_page=${REFUNDS_PAGE}`,
    `POST ${API}/orders/727/refunds`,
  ]);
  assert.ok(sent.every((r) => r.headers.authorization === AUTH && r.headers.accept === 'application/json'));
  assert.equal(sent[2].headers['content-type'], 'application/json');
  assert.deepEqual(sent[2].body, {
    amount: '12.90',
    reason: 'daifa case cas_01JD7QK2M3: damaged in transit',
    api_refund: true,
    api_restock: false,
    line_items: [{ id: 316, quantity: 1, refund_total: 12 }],
  });
});

test("a line's refund_total is its share of the line's total, rounded to the minor unit", () => {
  const order = published();
  // 3 units for 10.00 after a discount: one unit is 3.33, two are 6.67.
  order.line_items[0] = { ...order.line_items[0], quantity: 3, subtotal: '12.00', total: '10.00' };
  const lines = [{ externalLineId: '315', quantity: 1 }, { externalLineId: ' 316 ', quantity: 1 }, { externalLineId: '315', quantity: 1 }, { externalLineId: '316', quantity: 0 }];
  const { send, sent } = peer([[200, order], [200, []], [201, { id: 732 }]]);
  refund(request({ lines, amount: { amountMinor: 1950n, currency: 'usd' } }), config, send);
  assert.deepEqual(sent[2].body.line_items, [{ id: 315, quantity: 2, refund_total: 6.67 }, { id: 316, quantity: 1, refund_total: 12 }]);
  assert.equal(sent[2].body.amount, '19.50');
});

test('an amount-only refund (a price difference) has no line items; a missing reason leaves the marker alone', () => {
  const { send, sent } = peer([[200, published()], [200, []], [201, { id: 733, amount: '2.50' }]]);
  const result = refund(request({ lines: [], reason: undefined, amount: { amountMinor: 250n, currency: 'USD' } }), config, send);
  assert.deepEqual(result, { refundId: '733', outcome: 'created', amount: '2.50' });
  assert.deepEqual(sent[2].body, { amount: '2.50', reason: 'daifa case cas_01JD7QK2M3', api_refund: true, api_restock: false });
});

test('a refund already recorded for the case is the same success, and nothing is posted', () => {
  const { send, sent } = peer([[200, fixture('order-727-refunded.json')], [200, fixture('refunds-727.json')]]);
  assert.deepEqual(refund(request(), config, send), { refundId: '731', outcome: 'already-recorded', amount: '12.90' });
  assert.equal(sent.length, 2);

  // Among other refunds: the shop's own, another case's whose id starts with this one's.
  const others = [
    { id: 740, amount: '1.00', reason: 'goodwill', refunded_payment: false },
    { id: 739, amount: '3.00', reason: 'daifa case cas_01JD7QK2M30: wrong size', refunded_payment: true },
    { id: 738, amount: '4.00', reason: '', refunded_payment: true },
    { id: 737, amount: '12.90', reason: 'daifa case cas_01JD7QK2M3', refunded_payment: true },
  ];
  const again = peer([[200, published()], [200, others]]);
  assert.equal(refund(request(), config, again.send).refundId, '737');
  const none = peer([[200, published()], [200, others.slice(0, 3)], [201, { id: 741 }]]);
  assert.equal(refund(request(), config, none.send).outcome, 'created');
});

test("a recorded refund whose gateway refund is not confirmed is transient: the earlier attempt may still run", () => {
  const pending = [{ ...fixture('refund-727-created.json'), refunded_payment: false }];
  const { send, sent } = peer([[200, published()], [200, pending]]);
  assert.throws(() => refund(request(), config, send), { kind: 'transient', message: /refund 731 .*`refunded_payment` is false/ });
  assert.equal(sent.length, 2);
});

test('the case marker is found only as a whole id', () => {
  const marker = caseMarker('c1');
  assert.equal(reasonText(marker, '  wrong item \n'), 'daifa case c1: wrong item');
  assert.equal(reasonText(marker, ' '), 'daifa case c1');
  for (const reason of ['daifa case c1', 'daifa case c1: damaged', 'Refund (daifa case c1 retried)']) assert.ok(carries(reason, marker), reason);
  for (const reason of ['daifa case c10: damaged', 'daifa case c', '', undefined, null, 42]) assert.ok(!carries(reason, marker), String(reason));
  assert.ok(carries('daifa case c10; daifa case c1', marker));
});

test('statuses are classified: 4xx permanent, 429 and 5xx transient; a 404 names the order', () => {
  const cases = [
    [[[401, { code: 'woocommerce_rest_cannot_view', message: 'Sorry, you cannot view this resource.', data: { status: 401 } }]], 'permanent', /answered 401 \(check the consumer key.*woocommerce_rest_cannot_view/],
    [[[404, { code: 'woocommerce_rest_shop_order_invalid_id', message: 'Invalid ID.', data: { status: 404 } }]], 'permanent', /order `727` was not found/],
    [[[200, published()], [429, 'slow down']], 'transient', /refunds\?per_page=100 answered 429/],
    [[[200, published()], [200, []], [403, { code: 'woocommerce_rest_cannot_create', message: 'Sorry, you are not allowed to create resources.', data: { status: 403 } }]], 'permanent', /answered 403 \(the key lacks write permission/],
    [[[200, published()], [200, []], [400, { code: 'woocommerce_rest_invalid_order_refund', message: 'Refund amount must be greater than zero.', data: { status: 400 } }]], 'permanent', /answered 400: woocommerce_rest_invalid_order_refund: Refund amount must be greater than zero\.$/],
    [[[200, published()], [200, []], [502, '<html>Bad Gateway</html>']], 'transient', /POST .* answered 502/],
    [[[200, published()], [200, []], transient('shop unreachable: timed out')], 'transient', /unreachable/],
  ];
  for (const [answers, kind, message] of cases) {
    assert.throws(() => refund(request(), config, peer(answers).send), { kind, message }, String(message));
  }
});

test("woocommerce's refusal to create the refund (a 500 with its code) is permanent, not retried", () => {
  for (const message of ['Invalid refund amount.', 'The payment gateway for this order does not support automatic refunds.']) {
    const refused = { code: 'woocommerce_rest_cannot_create_order_refund', message, data: { status: 500 } };
    const { send } = peer([[200, published()], [200, []], [500, refused]]);
    assert.throws(() => refund(request(), config, send), {
      kind: 'permanent',
      message: new RegExp(`^woocommerce refused the refund and recorded none .*answered 500: woocommerce_rest_cannot_create_order_refund: ${message.replace('.', '\\.')}$`),
    });
  }
  // Another 500 is the server's failure: retried.
  const { send } = peer([[200, published()], [200, []], [500, { code: 'internal_server_error', message: 'There has been a critical error on this website.' }]]);
  assert.throws(() => refund(request(), config, send), { kind: 'transient' });
});

test('requests the shop cannot take are refused before the refund is posted; answers without what they must have are permanent', () => {
  const cases = [
    [request({ orderExternalId: '#727' }), [], /^`#727` is not a woocommerce order id$/],
    [request({ caseId: ' ' }), [], /^refund request without a case id$/],
    [request({ amount: { amountMinor: 0n, currency: 'USD' } }), [], /more than zero/],
    [request({ amount: { amountMinor: 100n, currency: 'XXY' } }), [], /^refund amount: unknown currency `XXY`$/],
    [request({ amount: { amountMinor: 1290n, currency: 'EUR' } }), [[200, published()]], /^order `727` is in USD: it cannot be refunded in EUR$/],
    [request({ lines: [{ externalLineId: '999', quantity: 1 }] }), [[200, published()], [200, []]], /^`999` is not a line item of order `727`$/],
    [request({ lines: [{ externalLineId: '315', quantity: 3 }] }), [[200, published()], [200, []]], /line item 315 of order `727` has 2 units: 3 cannot be refunded/],
    [request(), [[200, '<html>maintenance</html>']], /not JSON/],
    [request(), [[200, published()], [200, { id: 1 }]], /without a list of refunds/],
    [request(), [[200, published()], [200, []], [201, { amount: '12.90' }]], /without the refund's id/],
  ];
  for (const [req, answers, message] of cases) {
    const { send } = peer(answers);
    assert.throws(() => refund(req, config, send), { kind: 'permanent', message }, String(message));
    assert.equal(answers.length, 0, `${message}: every scripted answer was asked for`);
  }
});

test('minor units format by the currency exponent', () => {
  const cases = [[1290n, 'USD', '12.90'], [5n, 'USD', '0.05'], [1000n, 'JPY', '1000'], [1500n, 'KWD', '1.500'], [-250n, 'EUR', '-2.50'], [0n, 'USD', '0.00']];
  for (const [minor, code, text] of cases) assert.equal(formatMinor(minor, currency(code)), text, `${minor} ${code}`);
});

test('return decisions are unsupported: woocommerce has no return requests', () => {
  assert.throws(() => decideReturn({ orderExternalId: '727', caseId: CASE, approved: true }), { kind: 'unsupported', message: /no return requests/ });
});
