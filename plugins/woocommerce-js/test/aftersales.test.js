import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { refundCases } from '../src/aftersales.js';
import { orderEvents } from '../src/order.js';
import { handle } from '../src/webhook.js';
import { delivery, fixtureWith, SECRET, STORE } from './helpers.js';

const REFUNDED_IN_ADMIN = readFileSync(new URL('../fixtures/order-727-refunded-in-admin.json', import.meta.url));
const order = (changes = {}) => ({ ...JSON.parse(REFUNDED_IN_ADMIN.toString('utf8')), ...changes });

test("a refund made in the admin opens a refunded case; Daifa's own refund opens none", () => {
  const cases = refundCases(order(), '727');
  assert.deepEqual(cases, [{
    tag: 'case-opened',
    val: {
      orderExternalId: '727',
      externalId: '735',
      kind: 'refund-only',
      reason: undefined,
      note: 'Scarf arrived creased, customer keeps it',
      lines: [],
      amount: { amountMinor: 500n, currency: 'USD' },
      refunded: true,
      evidence: [],
      requestedAt: BigInt(Date.UTC(2026, 0, 6, 14, 5, 10)),
    },
  }]);
});

test('the order comes first, then its refunds; a refunded or cancelled order still reports them', () => {
  assert.deepEqual(orderEvents(order()).map((e) => e.tag), ['order-placed', 'case-opened']);
  assert.deepEqual(orderEvents(order({ status: 'refunded' })).map((e) => e.tag), ['case-opened']);
  assert.deepEqual(orderEvents(order({ status: 'cancelled' })).map((e) => e.tag), ['order-cancelled', 'case-opened']);
  // No refunds, or an empty list: the order alone.
  assert.deepEqual(orderEvents(order({ refunds: [] })).map((e) => e.tag), ['order-placed']);
  const { refunds, ...without } = order();
  assert.ok(refunds.length === 2);
  assert.deepEqual(orderEvents(without).map((e) => e.tag), ['order-placed']);
});

test('refunds of nothing and ids as strings', () => {
  const refunds = [
    { id: '740', reason: '', total: '-0.00' },
    { id: '741', reason: null, total: '-1.5' },
    { id: 742, reason: ' daifa case  ', total: '-2.00' },
  ];
  const cases = refundCases(order({ refunds }), '727');
  assert.deepEqual(cases.map((c) => [c.val.externalId, c.val.amount.amountMinor, c.val.note]), [
    ['741', 150n, undefined],
    // "daifa case" with no case id after it is not Daifa's marker.
    ['742', 200n, ' daifa case  '],
  ]);
});

test('zero-decimal currencies are counted in their own units', () => {
  const cases = refundCases(order({ currency: 'JPY', refunds: [{ id: 9, reason: 'x', total: '-500' }] }), '727');
  assert.deepEqual(cases[0].val.amount, { amountMinor: 500n, currency: 'JPY' });
});

test('malformed refunds are refused naming the field', () => {
  const fails = (refunds, message) =>
    assert.throws(() => refundCases(order({ refunds }), '727'), (e) => e.kind === 'bad-payload' && e.message === message);
  fails('no', '`refunds` is not a list');
  fails([7], '`refunds[0]` is not an object');
  fails([{ reason: 'x', total: '-1.00' }], 'missing field `refunds[0].id`');
  fails([{ id: -4, reason: 'x', total: '-1.00' }], '`refunds[0].id`: `-4` is not a woocommerce id');
  fails([{ id: 1, reason: 'x', total: '-1.005' }], '`refunds[0].total`: invalid amount `-1.005` for USD');
  fails([{ id: 1, reason: 'x' }], '`refunds[0].total`: invalid amount `undefined` for USD');
  assert.throws(
    () => refundCases(order({ date_modified_gmt: null }), '727'),
    (e) => e.kind === 'bad-payload' && e.message === 'missing field `date_modified_gmt`',
  );
});

test('a webhook with only refunds is told apart by its order, not by the refund', async () => {
  const body = fixtureWith({ status: 'refunded', refunds: [{ id: 735, reason: 'x', total: '-5.00' }], date_modified_gmt: '2026-01-06T14:05:10' });
  const inbound = await handle({ secret: SECRET, storeUrl: STORE }, delivery('order.updated', body));
  assert.equal(inbound.deliveryId, '8b0bba6d4a8e4b1ca7b7f9f4c0e1d2a3:727');
  assert.deepEqual(inbound.events.map((e) => [e.tag, e.val.externalId]), [['case-opened', '735']]);
});
