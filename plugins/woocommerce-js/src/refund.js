// Refunds through WooCommerce's REST API (v3), the money given back by the order's payment
// gateway:
//
// 1. `GET /orders/{id}`: the order's currency (the refund's must be the same) and line items.
// 2. `GET /orders/{id}/refunds?per_page=100`: a refund whose reason carries the case's marker
//    (`daifa case {case-id}`) was made by an earlier attempt whose answer was lost (a timeout, a
//    502 after WooCommerce had saved it): its id is returned and nothing is refunded again.
// 3. `POST /orders/{id}/refunds` with
//      `amount` (the decimal string of the minor units, by the currency's exponent),
//      `reason` (`daifa case {case-id}: {reason}`),
//      `line_items` (`[{id, quantity, refund_total}]`, when the request names lines),
//      `api_refund: true` (the payment gateway refunds the money; when it cannot, WooCommerce
//      deletes the refund and answers 500 `woocommerce_rest_cannot_create_order_refund`),
//      `api_restock: false` (the goods are the supplier's: the shop's stock is not increased).
//
// `amount` is what is refunded: WooCommerce takes it over the sum of the lines' `refund_total`s.
// A line's `refund_total` is its share of what was paid for it, excluding tax: the line item's
// `total` (after discounts) × the units refunded / the units ordered, rounded to the minor unit.
// It only records which goods the refund is for (reports, the order's refunded quantities).
//
// The refund ref is the refund's id.

import { apiBase } from './config.js';
import { permanent, PluginError, transient, unsupported } from './errors.js';
import { orderIdOf } from './fulfillment.js';
import { currency, divideRounded, formatMinor, parseMinor } from './money.js';
import { Api } from './rest.js';
import { nonBlank } from './text.js';

/** Refunds one listing reads: the newest first (WooCommerce's default order), where a retry's is. */
export const REFUNDS_PAGE = 100;

/** WooCommerce's error when `wc_create_refund` fails: the gateway refused, or the amount is too high. */
const CANNOT_CREATE = 'woocommerce_rest_cannot_create_order_refund';

/**
 * Refunds the customer, or finds the refund an earlier attempt for the same case made.
 *
 * @param request the WIT `refund-request`: `orderExternalId`, `caseId`, `amount` (`amountMinor`
 *   a BigInt, `currency`), `lines` (`externalLineId`, `quantity`), `reason`, `notifyCustomer`
 * @param {{ store: {scheme: string, host: string, path: string}, consumerKey: string,
 *   consumerSecret: string }} config
 * @param send performs one outbound request, as for `push` (fulfillment.js)
 * @param known the order as the caller has just read it (`GET /orders/{id}`), to spare a read
 * @returns {{ refundId: string, outcome: 'created' | 'already-recorded', amount: string }}
 */
export function refund(request, config, send, known = undefined) {
  const orderId = orderIdOf(request.orderExternalId);
  const caseId = typeof request.caseId === 'string' ? request.caseId.trim() : '';
  if (caseId === '') throw permanent('refund request without a case id');
  const cur = amountCurrency(request.amount);
  const amountMinor = request.amount.amountMinor;
  if (typeof amountMinor !== 'bigint' || amountMinor <= 0n) {
    throw permanent(`refund amount must be more than zero, not ${amountMinor} ${cur.code} minor units`);
  }
  const amount = formatMinor(amountMinor, cur);

  const api = new Api(config, send);
  const orderUrl = `${apiBase(config.store)}/orders/${orderId}`;
  const order = known ?? api.call('GET', orderUrl, undefined, `order \`${orderId}\``);
  if (order === null || typeof order !== 'object' || !Array.isArray(order.line_items)) {
    throw permanent(`woocommerce answered GET ${orderUrl} without an order`);
  }
  const orderCurrency = typeof order.currency === 'string' ? order.currency.trim().toUpperCase() : '';
  if (orderCurrency !== cur.code) {
    throw permanent(`order \`${orderId}\` is in ${orderCurrency || 'no currency'}: it cannot be refunded in ${cur.code}`);
  }

  const marker = caseMarker(caseId);
  const refundsUrl = `${orderUrl}/refunds`;
  const listUrl = `${refundsUrl}?per_page=${REFUNDS_PAGE}`;
  const refunds = api.call('GET', listUrl, undefined, `the refunds of order \`${orderId}\``);
  if (!Array.isArray(refunds)) throw permanent(`woocommerce answered GET ${listUrl} without a list of refunds`);
  const earlier = refunds.find(
    (r) => r !== null && typeof r === 'object' && r.id !== undefined && r.id !== null && carries(r.reason, marker),
  );
  if (earlier !== undefined) {
    // With `api_refund`, WooCommerce saves the refund, then asks the gateway, then sets
    // `refunded_payment` (or deletes the refund if the gateway refused): false means the earlier
    // attempt's gateway call is still running, or died half way.
    if (earlier.refunded_payment === false) {
      throw transient(
        `refund ${earlier.id} of order \`${orderId}\` for case ${caseId} is recorded, but woocommerce has not confirmed that the payment gateway refunded it (\`refunded_payment\` is false): it may still be in progress; if it stays so, check the payment provider`,
      );
    }
    return { refundId: String(earlier.id), outcome: 'already-recorded', amount: typeof earlier.amount === 'string' ? earlier.amount : amount };
  }

  const body = { amount, reason: reasonText(marker, request.reason), api_refund: true, api_restock: false };
  const lines = refundedLines(request.lines ?? [], order, orderId, cur);
  if (lines.length > 0) body.line_items = lines;
  let created;
  try {
    created = api.call('POST', refundsUrl, body, `order \`${orderId}\``);
  } catch (error) {
    // A 500, but no server failure: `wc_create_refund` refused (more than remains to refund, a
    // gateway without automatic refunds, the gateway's own refusal) and deleted the refund. The
    // same request would fail the same way, and a gateway's refusal needs a person.
    if (error instanceof PluginError && error.code === CANNOT_CREATE) {
      throw permanent(
        `woocommerce refused the refund and recorded none (it refunds at most what remains of the order, through a payment gateway that supports automatic refunds): ${error.message}`,
      );
    }
    throw error;
  }
  if (created === null || typeof created !== 'object' || created.id === undefined || created.id === null) {
    throw permanent(`woocommerce answered POST ${refundsUrl} without the refund's id`);
  }
  return { refundId: String(created.id), outcome: 'created', amount };
}

/**
 * Return requests are not a WooCommerce thing: core has none (extensions that add them have APIs
 * of their own), so there is nothing to approve or decline.
 */
export function decideReturn() {
  throw unsupported(
    'woocommerce has no return requests to approve or decline: tell the customer through the order (a customer note) or by e-mail',
  );
}

/** What the refund's reason starts with: how a retry recognises the refund of its case. */
export function caseMarker(caseId) {
  return `daifa case ${caseId}`;
}

/** The refund's reason: the marker, then Daifa's reason when there is one. */
export function reasonText(marker, reason) {
  const text = nonBlank(reason);
  return text === undefined ? marker : `${marker}: ${text.trim()}`;
}

/**
 * Whether a refund's reason carries a case's marker: followed by `:`, white space or nothing, so
 * that case `c1` is not found in the reason of case `c10`.
 */
export function carries(reason, marker) {
  if (typeof reason !== 'string') return false;
  for (let at = reason.indexOf(marker); at !== -1; at = reason.indexOf(marker, at + 1)) {
    const next = reason.charAt(at + marker.length);
    if (next === '' || next === ':' || /\s/.test(next)) return true;
  }
  return false;
}

/**
 * The refund's `line_items`: each line must be a line item of the order, refunding no more units
 * than it has; lines with no quantity are left out, and a line listed twice counts once with the
 * sum of its quantities.
 */
function refundedLines(lines, order, orderId, cur) {
  const items = new Map(order.line_items.map((item) => [String(item?.id), item]));
  const quantities = new Map();
  for (const line of lines) {
    if (line.quantity === 0) continue;
    const lineId = String(line.externalLineId).trim();
    if (!items.has(lineId)) {
      throw permanent(`\`${line.externalLineId}\` is not a line item of order \`${orderId}\``);
    }
    quantities.set(lineId, (quantities.get(lineId) ?? 0) + line.quantity);
  }
  return [...quantities].map(([lineId, quantity]) => {
    const item = items.get(lineId);
    const ordered = Number.isInteger(item.quantity) ? item.quantity : 0;
    if (quantity > ordered) {
      throw permanent(`line item ${lineId} of order \`${orderId}\` has ${ordered} units: ${quantity} cannot be refunded`);
    }
    let total;
    try {
      total = parseMinor(item.total, cur);
    } catch (error) {
      throw permanent(`line item ${lineId} of order \`${orderId}\`: ${error.message}`);
    }
    const refundTotal = divideRounded(total * BigInt(quantity), BigInt(ordered));
    // A JSON number, as the REST API documents it ("6.00" → 6, "0.10" → 0.1): the division of the
    // minor units by a power of ten prints as the decimal it is.
    return { id: item.id, quantity, refund_total: Number(formatMinor(refundTotal, cur)) };
  });
}

/** The refund's currency, checked. */
function amountCurrency(amount) {
  if (amount === null || typeof amount !== 'object') throw permanent('refund request without an amount');
  try {
    return currency(amount.currency);
  } catch (error) {
    throw permanent(`refund amount: ${error.message}`);
  }
}
