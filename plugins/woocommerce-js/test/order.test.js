import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalOrder } from '../src/order.js';
import { FIXTURE } from './helpers.js';

const base = () => JSON.parse(FIXTURE.toString('utf8'));

test('line items without a sku fall back to the variation, then the product, then the line', () => {
  const order = base();
  order.line_items = [
    { id: 1, name: 'A', product_id: 22, variation_id: 23, quantity: 1, subtotal: '1.00', sku: '' },
    { id: 2, name: 'B', product_id: 22, variation_id: 0, quantity: 1, subtotal: '1.00', sku: null },
    { id: 3, name: 'C', product_id: 0, variation_id: 0, quantity: 1, subtotal: '1.00' },
    { id: 4, name: 'D', product_id: 9, quantity: 1, subtotal: '1.00', sku: ' SKU-4 ' },
  ];
  assert.deepEqual(canonicalOrder(order).lines.map((l) => l.storefrontSku), [
    'woocommerce-variation:23', 'woocommerce-product:22', 'woocommerce-line:3', 'SKU-4',
  ]);
});

test('variations take their title from parent_name and attributes; add-ons go to the note', () => {
  const order = base();
  order.line_items = [{
    id: 9, name: 'Hoodie - Blue, L', parent_name: 'Hoodie', product_id: 5, variation_id: 6, quantity: 3,
    subtotal: '100.00', sku: 'HD',
    meta_data: [
      { id: 1, key: 'pa_color', value: 'blue', display_key: 'Color', display_value: 'Blue' },
      { id: 2, key: 'size', value: 'L', display_key: 'Size', display_value: 'L' },
      { id: 3, key: 'Engraving', value: 'For Anna', display_key: 'Engraving', display_value: 'For Anna' },
      { id: 4, key: '_reduced_stock', value: '3' },
    ],
  }];
  const [line] = canonicalOrder(order).lines;
  assert.equal(line.title, 'Hoodie');
  assert.equal(line.variantTitle, 'Blue / L');
  assert.equal(line.note, 'Engraving: For Anna');
  // 100.00 / 3 = 33.33...: rounded to the cent.
  assert.deepEqual(line.unitPrice, { amountMinor: 3333n, currency: 'USD' });
});

test('simple products keep their visible meta as the note, not as a variant', () => {
  const order = base();
  order.line_items = [{ id: 9, name: 'Mug', product_id: 5, quantity: 1, subtotal: '5.00', meta_data: [{ key: 'gift_message', value: 'Happy birthday' }] }];
  const [line] = canonicalOrder(order).lines;
  assert.equal(line.variantTitle, undefined);
  assert.equal(line.note, 'gift_message: Happy birthday');
});

test('virtual orders without a shipping address ship to the billing address', () => {
  const order = base();
  order.shipping = { first_name: '', last_name: '', address_1: '', country: '' };
  order.customer_note = '  Leave at the back door ';
  const canonical = canonicalOrder(order);
  assert.equal(canonical.shippingAddress.line1, '969 Market');
  assert.equal(canonical.buyerNote, '  Leave at the back door ');
  order.billing.address_1 = '';
  assert.equal(canonicalOrder(order).shippingAddress, undefined);
});

test('state codes become subdivision codes when they look like one', () => {
  const order = base();
  const code = (country, state) => {
    order.shipping = { ...order.shipping, country, state };
    return [canonicalOrder(order).shippingAddress.province, canonicalOrder(order).shippingAddress.provinceCode];
  };
  assert.deepEqual(code('JP', 'JP13'), ['JP13', '13']);
  assert.deepEqual(code('bd', 'BD-05'), ['BD-05', '05']);
  assert.deepEqual(code('GB', 'Greater London'), ['Greater London', undefined]);
  assert.deepEqual(code('DE', ''), [undefined, undefined]);
});

test('zero-decimal currencies and string ids', () => {
  const order = base();
  order.currency = 'jpy';
  order.id = '727';
  order.total = '2935';
  order.shipping_total = '1000';
  order.total_tax = '135';
  order.line_items = [{ id: '315', name: 'A', product_id: 1, quantity: 2, subtotal: '600' }];
  const canonical = canonicalOrder(order);
  assert.equal(canonical.currency, 'JPY');
  assert.deepEqual(canonical.subtotal, { amountMinor: 1800n, currency: 'JPY' });
  assert.deepEqual(canonical.lines[0].unitPrice, { amountMinor: 300n, currency: 'JPY' });
});
