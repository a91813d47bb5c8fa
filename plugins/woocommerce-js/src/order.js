// WooCommerce's REST order JSON (the body of the `order.*` webhooks) and its canonical form.
//
// Only the fields Daifa uses are read; the rest is ignored, so the payloads of newer WooCommerce
// versions (which only add fields) keep working.

import { refundCases, refundedTotal } from './aftersales.js';
import { badPayload, missing, PluginError } from './errors.js';
import { currency, divideRounded, money, parseMinor } from './money.js';
import { decodeEntities, fullName, nonBlank } from './text.js';
import { parseGmt } from './time.js';

/** The `storefront` of every order this plugin produces. */
export const STOREFRONT = 'woocommerce';

/**
 * What a verified `order.created` / `order.updated` body means for Daifa: by the order's status,
 * none, one `order-placed` or one `order-cancelled`; then one `case-opened` for each refund made
 * in WooCommerce's admin (aftersales.js).
 */
export function orderEvents(order) {
  const status = orderStatus(order);
  let events = [];
  if (status === 'cancelled') {
    events = [{ tag: 'order-cancelled', val: cancellation(order) }];
  } else if (isPaid(status, order)) {
    events = [{ tag: 'order-placed', val: canonicalOrder(order) }];
  }
  return events.concat(refundCases(order, id(order.id, 'id')));
}

/** Statuses of orders that are paid for (or to be paid on delivery) and must be shipped. */
const TO_SHIP = new Set(['processing', 'completed']);
/**
 * Statuses of orders that must not be shipped (yet): awaiting payment (`pending`, `on-hold`,
 * `checkout-draft`), failed, refunded, in the trash. WooCommerce sends `order.updated` again when
 * the order moves on, e.g. to `processing` once paid.
 */
const NOT_TO_SHIP = new Set(['pending', 'on-hold', 'failed', 'refunded', 'checkout-draft', 'draft', 'trash']);

/**
 * Whether an order is to be shipped. Statuses added by other plugins ("shipped", "awaiting-
 * pickup") are judged by whether the order was paid (`date_paid_gmt`).
 */
function isPaid(status, order) {
  if (TO_SHIP.has(status)) return true;
  if (NOT_TO_SHIP.has(status)) return false;
  return nonBlank(order.date_paid_gmt) !== undefined;
}

/** The order's `status`, as WooCommerce's statuses are written (lower case, no `wc-` prefix). */
function orderStatus(order) {
  return requiredString(order, 'status').trim().toLowerCase();
}

/**
 * Statuses of orders whose checkout is not done: no payment was made, and the buyer may still
 * pay, by any method, on the order's payment page. `checkout-draft` (`draft`, `auto-draft`, and
 * the legacy `new`) is a block checkout under way.
 */
const AWAITING_CHECKOUT = new Set(['pending', 'checkout-draft', 'draft', 'auto-draft', 'new']);

/**
 * Whether the buyer has paid: the WIT `payment-status`, as its case name.
 *
 * WooCommerce has no payment status of its own; the order's `status` says it, with the payment
 * method for cash on delivery:
 * - `failed` (declined) and `cancelled` (unpaid orders time out into it) → voided; `refunded`
 *   (set when the whole total is refunded) → refunded;
 * - `pending` and the drafts → pending: the checkout is not done, so not even a cash-on-delivery
 *   order is confirmed (shops that confirm cash-on-delivery orders by hand hold them there);
 * - `payment_method` `cod` → cash-on-delivery in every other status. WooCommerce's COD gateway
 *   puts the order in `processing` (`on-hold` with downloadable items) at checkout, and
 *   `processing` sets `date_paid_gmt` though no money came; `completed` does not mean the cash
 *   was collected either (Daifa itself completes an order when it ships);
 * - `on-hold` → pending: awaiting payment (a bank transfer, a cheque) that the merchant confirms
 *   by moving the order to `processing`;
 * - `processing`, `completed` → paid, less what was refunded: a refund in part leaves the status
 *   alone and lists itself in `refunds`, so any refund makes it partially-refunded, and refunds
 *   of the whole total refunded;
 * - any other status (added by a plugin: "shipped", "awaiting-pickup", or `trash`): paid as above
 *   when the order has a `date_paid_gmt` (WooCommerce sets it, once, when the order reaches its
 *   paid status, and never clears it), else pending. Pending is the safe answer: the gateway
 *   holds the order until a later copy says it is paid, whereas no answer at all (`none`) would
 *   be taken as paid.
 *
 * @param status the order's status (`orderStatus`)
 * @param {bigint} total the order's total in minor units
 * @param cur the order's currency (money.js `currency`)
 */
export function paymentStatus(order, status, total, cur) {
  if (status === 'failed' || status === 'cancelled') return 'voided';
  if (status === 'refunded') return 'refunded';
  if (AWAITING_CHECKOUT.has(status)) return 'pending';
  if (isCashOnDelivery(order)) return 'cash-on-delivery';
  if (status === 'on-hold') return 'pending';
  if (!TO_SHIP.has(status) && nonBlank(order.date_paid_gmt) === undefined) return 'pending';
  const refunded = refundedTotal(order, cur);
  if (refunded === 0n) return 'paid';
  return refunded >= total ? 'refunded' : 'partially-refunded';
}

/** WooCommerce's own cash-on-delivery gateway (`WC_Gateway_COD`, id `cod`). */
function isCashOnDelivery(order) {
  return typeof order.payment_method === 'string' && order.payment_method.trim().toLowerCase() === 'cod';
}

/** The WIT `order-cancellation` of a cancelled order. */
export function cancellation(order) {
  return {
    externalId: id(order.id, 'id'),
    // WooCommerce records no reason with a cancellation.
    reason: undefined,
    // The change that cancelled the order is its latest modification.
    cancelledAt: timestamp(order, 'date_modified_gmt'),
  };
}

/** The WIT `order` of a WooCommerce order. */
export function canonicalOrder(order) {
  const code = requiredString(order, 'currency');
  let cur;
  try {
    cur = currency(code);
  } catch (error) {
    throw rethrowInField(error, 'currency');
  }
  const total = amount(order, 'total', cur);
  const shipping = amount(order, 'shipping_total', cur);
  const tax = amount(order, 'total_tax', cur);
  // WooCommerce has no order subtotal: what remains of the total without shipping and taxes is
  // the goods (and fees) after discounts, excluding tax.
  const subtotal = total - shipping - tax;

  const billing = object(order, 'billing');
  const shippingFields = object(order, 'shipping');
  const shippingAddress =
    address(shippingFields, 'shipping', billing) ?? address(billing, 'billing', billing);

  const lines = array(order, 'line_items').map((line, i) => orderLine(line, `line_items[${i}]`, cur));

  return {
    externalId: id(order.id, 'id'),
    // As WooCommerce shows it after "Order #"; sequential-numbering plugins change it.
    orderNumber: nonBlank(stringOrNumber(order.number)),
    storefront: STOREFRONT,
    currency: cur.code,
    subtotal: money(subtotal, cur),
    shipping: money(shipping, cur),
    tax: money(tax, cur),
    total: money(total, cur),
    placedAt: timestamp(order, 'date_created_gmt'),
    // Verbatim: colour, size and packing requests must reach the shipper as typed.
    buyerNote: nonBlank(order.customer_note),
    customer: {
      name: fullName(billing?.first_name, billing?.last_name) ?? shippingAddress?.name,
      email: nonBlank(billing?.email),
      phone: nonBlank(billing?.phone),
    },
    shippingAddress,
    lines,
    payment: paymentStatus(order, orderStatus(order), total, cur),
    // WooCommerce changes `date_modified_gmt` with every save of the order (its status, a refund,
    // an edited address or line), to the second.
    updatedAt: optionalTimestamp(order, 'date_modified_gmt'),
  };
}

/**
 * An address of the order (`shipping` or `billing`), or `undefined` when it has no street: orders
 * of virtual goods have an empty `shipping`, and the billing address stands in for it. The phone
 * is the address's own (`shipping.phone`, WooCommerce 5.6+) or else the billing phone, which is
 * what carriers call.
 */
function address(fields, field, billing) {
  const line1 = nonBlank(fields?.address_1);
  if (line1 === undefined) return undefined;
  const country = nonBlank(fields.country);
  if (country === undefined) throw missing(`${field}.country`);
  const countryCode = country.trim().toUpperCase();
  const state = nonBlank(fields.state)?.trim();
  return {
    name: fullName(fields.first_name, fields.last_name),
    company: nonBlank(fields.company),
    line1,
    line2: nonBlank(fields.address_2),
    // Some countries' checkouts (Hong Kong, Singapore) have no city field.
    city: nonBlank(fields.city) ?? '',
    province: state,
    provinceCode: provinceCode(state, countryCode),
    postalCode: nonBlank(fields.postcode),
    countryCode,
    phone: nonBlank(fields.phone) ?? nonBlank(billing?.phone),
  };
}

/**
 * The ISO 3166-2 subdivision code of a WooCommerce `state`, when it looks like one. WooCommerce
 * stores the code of the state the buyer picked ("CA" in the US, "JP13" in Japan, "TR34" in
 * Turkey) for countries it has a list of states for, and the typed text otherwise.
 */
function provinceCode(state, countryCode) {
  if (state === undefined) return undefined;
  let code = state.toUpperCase();
  if (code.startsWith(`${countryCode}-`)) code = code.slice(countryCode.length + 1);
  else if (code.startsWith(countryCode) && /^\d+$/.test(code.slice(countryCode.length))) {
    code = code.slice(countryCode.length);
  }
  return /^[A-Z0-9]{1,3}$/.test(code) ? code : undefined;
}

/** The WIT `order-line` of a line item. */
function orderLine(line, field, cur) {
  if (line === null || typeof line !== 'object') throw badPayload(`\`${field}\` is not an object`);
  const lineId = id(line.id, `${field}.id`);
  const quantity = line.quantity;
  if (!Number.isInteger(quantity) || quantity < 0 || quantity > 0xffffffff) {
    if (quantity === undefined || quantity === null) throw missing(`${field}.quantity`);
    throw badPayload(`\`${field}.quantity\`: \`${quantity}\` is not a quantity`);
  }
  const subtotal = amount(line, 'subtotal', cur, field);
  const variationId = optionalId(line.variation_id, `${field}.variation_id`);
  const productId = optionalId(line.product_id, `${field}.product_id`);
  // Routing needs a stable key even for products the merchant left without a SKU.
  const storefrontSku =
    nonBlank(line.sku)?.trim() ??
    (variationId !== undefined
      ? `woocommerce-variation:${variationId}`
      : productId !== undefined
        ? `woocommerce-product:${productId}`
        : `woocommerce-line:${lineId}`);
  const name = nonBlank(line.name) ?? nonBlank(line.parent_name);
  if (name === undefined) throw missing(`${field}.name`);
  // WooCommerce 5.x+ names the product apart from its variation in `parent_name`.
  const title = variationId !== undefined ? (nonBlank(line.parent_name) ?? name) : name;
  const { variant, note } = lineMeta(line.meta_data, variationId !== undefined);
  return {
    externalLineId: lineId,
    storefrontSku,
    title: decodeEntities(title.trim()),
    variantTitle: variant,
    quantity,
    // `subtotal` is the line before discounts, excluding tax, like the order's other amounts.
    unitPrice: money(quantity > 0 ? divideRounded(subtotal, BigInt(quantity)) : 0n, cur),
    note,
  };
}

/** A slug, as WordPress makes attribute names into meta keys ("pa_color", "size"). */
const SLUG = /^[a-z0-9][a-z0-9_-]*$/;

/**
 * The variant title and the line note from a line item's `meta_data`. Keys starting with `_` are
 * WooCommerce's and other plugins' hidden data. On a variation, meta with a slug key are its
 * attributes (`pa_color: black`, `size: M`): their values, in order, make the variant title
 * ("Black / M"). Everything else that is visible (an add-on's "Engraving: Anna", a gift message)
 * is buyer input and goes to the note as "key: value" pairs joined by "; ", verbatim.
 */
function lineMeta(metaData, isVariation) {
  const variant = [];
  const note = [];
  for (const meta of Array.isArray(metaData) ? metaData : []) {
    if (meta === null || typeof meta !== 'object') continue;
    const key = typeof meta.key === 'string' ? meta.key : '';
    if (key === '' || key.startsWith('_')) continue;
    const value = displayValue(meta.display_value) ?? displayValue(meta.value) ?? '';
    if (isVariation && SLUG.test(key) && typeof meta.value === 'string') {
      if (value.trim() !== '') variant.push(decodeEntities(value.trim()));
    } else {
      const label = nonBlank(meta.display_key) ?? key;
      note.push(`${decodeEntities(label)}: ${value}`);
    }
  }
  return {
    variant: variant.length > 0 ? variant.join(' / ') : undefined,
    note: note.length > 0 ? note.join('; ') : undefined,
  };
}

function displayValue(value) {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** A decimal string amount of `object[key]`, in minor units. */
function amount(object, key, cur, parent) {
  const field = parent ? `${parent}.${key}` : key;
  const value = object[key];
  if (value === undefined || value === null || value === '') throw missing(field);
  try {
    return parseMinor(value, cur);
  } catch (error) {
    throw rethrowInField(error, field);
  }
}

/** A WooCommerce id (a positive integer, as a JSON number or a decimal string) as a string. */
function id(value, field) {
  const text = optionalId(value, field);
  if (text === undefined) throw missing(field);
  return text;
}

/** Like `id`, with 0, `null` and absence meaning "none" (`variation_id: 0` on simple products). */
function optionalId(value, field) {
  if (value === undefined || value === null || value === 0 || value === '0' || value === '') {
    return undefined;
  }
  if (Number.isSafeInteger(value) && value > 0) return String(value);
  if (typeof value === 'string' && /^\d{1,19}$/.test(value.trim())) {
    return BigInt(value.trim()).toString();
  }
  throw badPayload(`\`${field}\`: \`${JSON.stringify(value)}\` is not a woocommerce id`);
}

function timestamp(object, key) {
  const value = object[key];
  if (nonBlank(value) === undefined) throw missing(key);
  try {
    return parseGmt(value);
  } catch (error) {
    throw rethrowInField(error, key);
  }
}

/** Like `timestamp`, with absence, `null` and blank meaning "none"; anything else must parse. */
function optionalTimestamp(object, key) {
  const value = object[key];
  if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '')) {
    return undefined;
  }
  try {
    return parseGmt(value);
  } catch (error) {
    throw rethrowInField(error, key);
  }
}

function requiredString(object, key) {
  const value = object[key];
  if (nonBlank(value) === undefined) {
    if (value === undefined || value === null || value === '') throw missing(key);
    throw badPayload(`\`${key}\` is not a string`);
  }
  return value;
}

function stringOrNumber(value) {
  return typeof value === 'number' ? String(value) : value;
}

/** An optional object field; present but of another type is a bad payload. */
function object(parent, key) {
  const value = parent[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw badPayload(`\`${key}\` is not an object`);
  return value;
}

function array(parent, key) {
  const value = parent[key];
  if (value === undefined || value === null) throw missing(key);
  if (!Array.isArray(value)) throw badPayload(`\`${key}\` is not a list`);
  return value;
}

function rethrowInField(error, field) {
  return error instanceof PluginError ? error.inField(field) : error;
}
