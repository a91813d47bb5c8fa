import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cancel, customerNote, unrefunded } from '../src/cancel.js';
import { storeForApi } from '../src/config.js';
import { PluginError } from '../src/errors.js';
import { FIXTURE } from './helpers.js';

const API = 'https://shop.example.com/wp-json/wc/v3';
const config = { store: storeForApi('https://shop.example.com'), consumerKey: 'ck_test', consumerSecret: 'cs_test' };
const KEY = 'ord_01JD7QK2M3.storefront_cancel';

/** The published order 727: USD, total 29.35, paid, no refunds, processing. */
const published = (changes = {}) => ({ ...JSON.parse(FIXTURE.toString('utf8')), ...changes });

const request = (overrides = {}) => ({
  orderExternalId: '727',
  idempotencyKey: KEY,
  reason: 'inventory',
  staffNote: 'no supplier has it',
  refund: true,
  restock: true,
  notifyCustomer: true,
  ...overrides,
});

/** A shop answering from a script, recording what it was sent (bodies as JSON). */
function peer(answers) {
  const sent = [];
  const send = (req) => {
    const body = req.body.length ? JSON.parse(new TextDecoder().decode(req.body)) : undefined;
    sent.push({ method: req.method, url: req.url, body });
    const answer = answers.shift();
    if (!answer) throw new Error(`unexpected request ${req.method} ${req.url}`);
    if (answer instanceof Error) throw answer;
    const [status, json] = answer;
    return { status, headers: [], body: new TextEncoder().encode(JSON.stringify(json)) };
  };
  return { send, sent };
}

test('a paid order is refunded in full, cancelled, and the buyer told by a customer note', () => {
  const { send, sent } = peer([
    [200, published()],
    [200, []],
    [201, { id: 901, amount: '29.35', reason: `daifa case ${KEY}: order cancelled (inventory): no supplier has it` }],
    [200, published({ status: 'cancelled' })],
    [201, { id: 55, customer_note: true }],
  ]);
  assert.deepEqual(cancel(request(), config, send), { outcome: 'cancelled', refundId: '901' });
  assert.deepEqual(sent.map((r) => `${r.method} ${r.url}`), [
    `GET ${API}/orders/727`,
    `GET ${API}/orders/727/refunds?per_page=100`,
    `POST ${API}/orders/727/refunds`,
    `PUT ${API}/orders/727`,
    `POST ${API}/orders/727/notes`,
  ]);
  assert.deepEqual(sent[2].body, {
    amount: '29.35',
    reason: `daifa case ${KEY}: order cancelled (inventory): no supplier has it`,
    api_refund: true,
    api_restock: false,
  });
  assert.deepEqual(sent[3].body, { status: 'cancelled' });
  assert.deepEqual(sent[4].body, { note: 'Your order #727 has been cancelled and refunded.', customer_note: true });
});

test('without refund or notification only the status changes', () => {
  const { send, sent } = peer([[200, published()], [200, published({ status: 'cancelled' })]]);
  assert.deepEqual(cancel(request({ refund: false, notifyCustomer: false }), config, send), { outcome: 'cancelled' });
  assert.deepEqual(sent.map((r) => r.method), ['GET', 'PUT']);
});

test('an unpaid order has nothing to refund', () => {
  const { send, sent } = peer([
    [200, published({ date_paid: null, status: 'on-hold' })],
    [200, published({ status: 'cancelled' })],
    [201, { id: 56 }],
  ]);
  assert.deepEqual(cancel(request(), config, send), { outcome: 'cancelled' });
  assert.deepEqual(sent.map((r) => r.method), ['GET', 'PUT', 'POST']);
  assert.equal(sent[2].body.note, 'Your order #727 has been cancelled.');
});

test('an order cancelled or refunded already is the same success, and nothing is sent', () => {
  for (const status of ['cancelled', 'refunded']) {
    const { send, sent } = peer([[200, published({ status })]]);
    assert.deepEqual(cancel(request(), config, send), { outcome: 'already-cancelled' });
    assert.equal(sent.length, 1);
  }
});

test('a retry finds the refund an earlier attempt made and does not refund again', () => {
  const earlier = { id: 901, amount: '29.35', reason: `daifa case ${KEY}: order cancelled (inventory)`, refunded_payment: true };
  const { send, sent } = peer([
    // The earlier attempt refunded, then failed before the status changed.
    [200, published({ refunds: [{ id: 901, total: '-29.35' }] })],
    [200, published({ status: 'cancelled' })],
    [201, { id: 57 }],
  ]);
  assert.deepEqual(cancel(request(), config, send), { outcome: 'cancelled' });
  assert.deepEqual(sent.map((r) => r.method), ['GET', 'PUT', 'POST']);
  // Partly refunded: the rest is refunded under the same key, found again on a retry.
  const partly = peer([
    [200, published({ refunds: [{ id: 800, total: '-10.00' }] })],
    [200, [earlier]],
    [200, published({ status: 'cancelled' })],
    [201, { id: 58 }],
  ]);
  assert.deepEqual(cancel(request(), config, partly.send), { outcome: 'cancelled', refundId: '901' });
  assert.ok(!partly.sent.some((r) => r.method === 'POST' && r.url.endsWith('/refunds')));
});

test('a completed order shipped: permanent, nothing changed', () => {
  const { send, sent } = peer([[200, published({ status: 'completed' })]]);
  assert.throws(
    () => cancel(request(), config, send),
    (e) => e instanceof PluginError && e.kind === 'permanent' && /completed/.test(e.message),
  );
  assert.equal(sent.length, 1);
});

test('a store that is down is transient; a missing key or order id is permanent', () => {
  const { send } = peer([[503, { code: 'unavailable', message: 'maintenance' }]]);
  assert.throws(() => cancel(request(), config, send), (e) => e instanceof PluginError && e.kind === 'transient');
  assert.throws(() => cancel(request({ idempotencyKey: ' ' }), config, peer([]).send), (e) => e.kind === 'permanent');
  assert.throws(() => cancel(request({ orderExternalId: 'abc' }), config, peer([]).send), (e) => e instanceof PluginError);
});

test('what is left to refund is the total less the refunds', () => {
  assert.deepEqual(unrefunded(published({ refunds: [{ total: '-10.00' }, { total: '-0.35' }] }), '727'), {
    amountMinor: 1900n,
    currency: 'USD',
  });
  assert.equal(unrefunded(published({ date_paid: '' }), '727'), undefined);
  assert.throws(() => unrefunded(published({ refunds: [{ total: '-30.00' }] }), '727'), /more refunded/);
  assert.equal(customerNote('1001', false), 'Your order #1001 has been cancelled.');
});
