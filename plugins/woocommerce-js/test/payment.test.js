import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { canonicalOrder, orderEvents } from '../src/order.js';
import { FIXTURE } from './helpers.js';

/** The published order 727: `bacs`, `processing`, paid at 2017-03-22T19:28:08, 29.35 USD. */
const base = (changes = {}) => ({ ...JSON.parse(FIXTURE.toString('utf8')), ...changes });
const fixture = (name) => JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'));
const payment = (changes) => canonicalOrder(base(changes)).payment;
const refund = (id, total) => ({ id, reason: '', total });

test('the payment status follows the order status', () => {
  const table = [
    // status, date_paid_gmt, payment
    ['pending', null, 'pending'],
    ['checkout-draft', null, 'pending'],
    ['on-hold', null, 'pending'],
    ['processing', '2017-03-22T19:28:08', 'paid'],
    ['completed', '2017-03-22T19:28:08', 'paid'],
    ['refunded', '2017-03-22T19:28:08', 'refunded'],
    ['failed', null, 'voided'],
    ['cancelled', null, 'voided'],
    // Paid, then cancelled without a refund: still voided, as the status says.
    ['cancelled', '2017-03-22T19:28:08', 'voided'],
    // WooCommerce's own statuses need no payment date: a gateway may have failed to set it.
    ['processing', null, 'paid'],
    // Statuses are compared as WooCommerce writes them.
    [' Processing ', '2017-03-22T19:28:08', 'paid'],
  ];
  for (const [status, datePaid, expected] of table) {
    assert.equal(payment({ status, date_paid_gmt: datePaid }), expected, `${status}, paid ${datePaid}`);
  }
});

test('cash on delivery: collected by the carrier once the checkout is done, whatever the payment date says', () => {
  const table = [
    // WooCommerce's COD gateway leaves the order processing (on-hold with downloadable items),
    // and `processing` sets `date_paid_gmt` though no money came.
    ['processing', '2017-03-22T19:28:08', 'cash-on-delivery'],
    ['on-hold', null, 'cash-on-delivery'],
    // Daifa completes an order when it ships: the cash is still to be collected.
    ['completed', '2017-03-22T19:28:08', 'cash-on-delivery'],
    ['shipped', '2017-03-22T19:28:08', 'cash-on-delivery'],
    // Checkout not done (or held for a confirmation call): not confirmed as cash on delivery.
    ['pending', null, 'pending'],
    ['checkout-draft', null, 'pending'],
    ['failed', null, 'voided'],
    ['cancelled', null, 'voided'],
    ['refunded', '2017-03-22T19:28:08', 'refunded'],
  ];
  for (const [status, datePaid, expected] of table) {
    assert.equal(
      payment({ status, date_paid_gmt: datePaid, payment_method: 'cod', payment_method_title: 'Cash on delivery' }),
      expected,
      `cod ${status}`,
    );
  }
  // Other offline methods are not cash on delivery: a bank transfer on hold awaits its money.
  assert.equal(payment({ status: 'on-hold', date_paid_gmt: null, payment_method: 'bacs' }), 'pending');
  assert.equal(payment({ status: 'on-hold', date_paid_gmt: null, payment_method: 'cheque' }), 'pending');
  assert.equal(payment({ status: 'processing', payment_method: 'COD' }), 'cash-on-delivery');
});

test('statuses added by plugins are paid with a payment date, else pending (held, not taken as paid)', () => {
  assert.equal(payment({ status: 'shipped' }), 'paid');
  assert.equal(payment({ status: 'awaiting-pickup', date_paid_gmt: '2017-03-22T19:28:08' }), 'paid');
  assert.equal(payment({ status: 'quote', date_paid_gmt: null }), 'pending');
  assert.equal(payment({ status: 'quote', date_paid_gmt: '' }), 'pending');
  const { date_paid_gmt: _, ...withoutDate } = base({ status: 'trash' });
  assert.equal(canonicalOrder(withoutDate).payment, 'pending');
});

test('refunds in part leave the status processing: the order is partially refunded', () => {
  // The published fixtures: Daifa's own refund of 12.90, then the merchant's 5.00, of 29.35.
  assert.equal(canonicalOrder(fixture('order-727-refunded.json')).payment, 'partially-refunded');
  assert.equal(canonicalOrder(fixture('order-727-refunded-in-admin.json')).payment, 'partially-refunded');
  assert.equal(payment({ status: 'completed', refunds: [refund(1, '-0.01')] }), 'partially-refunded');
  // The whole total refunded while the status has not moved (yet): refunded.
  assert.equal(payment({ refunds: [refund(1, '-20.00'), refund(2, '-9.35')] }), 'refunded');
  // Refunds of nothing (a restock) change nothing; nor does an empty or missing list.
  assert.equal(payment({ refunds: [refund(1, '0.00')] }), 'paid');
  assert.equal(payment({ refunds: [] }), 'paid');
  assert.equal(payment({ refunds: undefined }), 'paid');
  // Unpaid orders have nothing to refund: their status rules.
  assert.equal(payment({ status: 'on-hold', refunds: [refund(1, '-5.00')] }), 'pending');
  // A malformed refund is refused naming it, as the refund's case would be.
  assert.throws(() => payment({ refunds: [refund(1, 'lots')] }), /refunds\[0\]\.total/);
});

test('updated-at is date_modified_gmt, read as UTC', () => {
  assert.equal(canonicalOrder(base()).updatedAt, BigInt(Date.UTC(2017, 2, 22, 19, 28, 8)));
  assert.equal(
    canonicalOrder(base({ date_modified_gmt: '2026-01-06T14:05:10' })).updatedAt,
    BigInt(Date.UTC(2026, 0, 6, 14, 5, 10)),
  );
  // An explicit zone is honoured, as for `date_created_gmt`.
  assert.equal(canonicalOrder(base({ date_modified_gmt: '2026-01-06T16:05:10+02:00' })).updatedAt, 1767708310000n);
  // Not said: none (the first copy the gateway receives rules).
  assert.equal(canonicalOrder(base({ date_modified_gmt: null })).updatedAt, undefined);
  assert.equal(canonicalOrder(base({ date_modified_gmt: undefined })).updatedAt, undefined);
  // Said, but not a time: refused, naming the field.
  assert.throws(() => canonicalOrder(base({ date_modified_gmt: '2026-02-30T00:00:00' })), /date_modified_gmt/);
  assert.throws(() => canonicalOrder(base({ date_modified_gmt: 1767708310 })), /date_modified_gmt/);
});

test('a later copy of the order says so: updated-at moves with every change, placed-at stays', () => {
  const first = canonicalOrder(base());
  const later = canonicalOrder(
    base({ date_modified_gmt: '2017-03-23T08:00:00', shipping: { ...base().shipping, address_1: '1 Market' } }),
  );
  assert.equal(later.placedAt, first.placedAt);
  assert.ok(later.updatedAt > first.updatedAt);
  assert.equal(later.shippingAddress.line1, '1 Market');
});

test('values have the form the component bindings lower: the enum case name, a BigInt, undefined for none', () => {
  const cases = new Set(['pending', 'authorized', 'partially-paid', 'paid', 'partially-refunded', 'refunded', 'voided', 'cash-on-delivery']);
  const orders = [
    base(),
    base({ payment_method: 'cod' }),
    base({ status: 'on-hold' }),
    fixture('order-727-refunded.json'),
  ];
  for (const order of orders) {
    const canonical = canonicalOrder(order);
    assert.ok(cases.has(canonical.payment), canonical.payment);
    assert.equal(typeof canonical.updatedAt, 'bigint');
  }
  assert.ok('updatedAt' in canonicalOrder(base({ date_modified_gmt: null })));
});

test('only orders to ship are placed; their payment says how the money comes', () => {
  const placed = (order) => orderEvents(order).find((e) => e.tag === 'order-placed')?.val.payment;
  assert.equal(placed(base()), 'paid');
  assert.equal(placed(base({ payment_method: 'cod' })), 'cash-on-delivery');
  assert.equal(placed(fixture('order-727-refunded-in-admin.json')), 'partially-refunded');
  // Unpaid, failed and refunded orders are still not placed.
  for (const status of ['pending', 'on-hold', 'failed', 'refunded']) {
    assert.equal(placed(base({ status })), undefined, status);
  }
});
