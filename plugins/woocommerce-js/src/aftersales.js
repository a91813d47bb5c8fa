// Refunds made in WooCommerce's admin, as `case-opened` events.
//
// WooCommerce core has no refund webhook topic: a refund saves its order, which sends
// `order.updated` (and the order's status becomes `refunded` when nothing is left to refund).
// The order's JSON lists its refunds (`refunds: [{id, reason, total}]`, `total` negative), so
// every `order.created` / `order.updated` body, and every polled order, carries all the refunds
// made so far. Each becomes one `case-opened` (a refund the storefront already paid): the gateway
// knows a case by its order and the refund's id, so the refunds it has seen open nothing again.
//
// Left out:
// - the refunds Daifa made itself (their reason starts with the case's marker, see refund.js):
//   their case exists and recorded the money when it was paid;
// - refunds of no money (WooCommerce allows a refund of 0 that only restocks).
//
// What the order's JSON does not say: which lines a refund was for (that takes one
// `GET /orders/{id}/refunds/{refund_id}` per refund, not done from a webhook) and when it was
// made: the order's last modification (`date_modified_gmt`) stands in, which is the refund's
// time for the delivery the refund caused.

import { badPayload, missing, PluginError } from './errors.js';
import { currency, money, parseMinor } from './money.js';
import { nonBlank } from './text.js';
import { parseGmt } from './time.js';

/** What the reason of a refund Daifa made starts with (refund.js `caseMarker`). */
const DAIFA_REFUND = /^daifa case \S/;

/**
 * The `case-opened` events of the refunds listed in a WooCommerce order.
 *
 * @param order the order's JSON (REST v3), already known to have an `id` and a `currency`
 * @param {string} orderExternalId the order's id, as `order-placed` gives it
 * @returns WIT `channel-event`s
 */
export function refundCases(order, orderExternalId) {
  const refunds = order.refunds;
  if (refunds === undefined || refunds === null) return [];
  if (!Array.isArray(refunds)) throw badPayload('`refunds` is not a list');
  const open = [];
  refunds.forEach((refund, i) => {
    const field = `refunds[${i}]`;
    if (refund === null || typeof refund !== 'object' || Array.isArray(refund)) {
      throw badPayload(`\`${field}\` is not an object`);
    }
    const reason = nonBlank(refund.reason);
    if (reason !== undefined && DAIFA_REFUND.test(reason.trim())) return;
    const cur = currency(order.currency);
    const paid = refundAmount(refund, field, cur);
    if (paid === 0n) return;
    open.push({
      tag: 'case-opened',
      val: {
        orderExternalId,
        externalId: refundId(refund.id, `${field}.id`),
        kind: 'refund-only',
        reason: undefined,
        note: reason,
        lines: [],
        amount: money(paid, cur),
        refunded: true,
        evidence: [],
        requestedAt: modifiedAt(order),
      },
    });
  });
  return open;
}

/**
 * The money refunded so far, in minor units: all the refunds the order lists, Daifa's own
 * included (for the order's payment status, who refunded does not matter).
 *
 * @param order the order's JSON (REST v3)
 * @param cur the order's currency (money.js `currency`)
 * @returns {bigint}
 */
export function refundedTotal(order, cur) {
  const refunds = order.refunds;
  if (refunds === undefined || refunds === null) return 0n;
  if (!Array.isArray(refunds)) throw badPayload('`refunds` is not a list');
  return refunds.reduce((sum, refund, i) => {
    const field = `refunds[${i}]`;
    if (refund === null || typeof refund !== 'object' || Array.isArray(refund)) {
      throw badPayload(`\`${field}\` is not an object`);
    }
    return sum + refundAmount(refund, field, cur);
  }, 0n);
}

/** A refund's amount in minor units, positive. */
function refundAmount(refund, field, cur) {
  let minor;
  try {
    minor = parseMinor(typeof refund.total === 'number' ? String(refund.total) : refund.total, cur);
  } catch (error) {
    throw error instanceof PluginError ? error.inField(`${field}.total`) : error;
  }
  // WooCommerce writes a refund's total as a negative amount.
  return minor < 0n ? -minor : minor;
}

function refundId(value, field) {
  if (Number.isSafeInteger(value) && value > 0) return String(value);
  if (typeof value === 'string' && /^\d{1,19}$/.test(value.trim()) && BigInt(value.trim()) > 0n) {
    return BigInt(value.trim()).toString();
  }
  if (value === undefined || value === null) throw missing(field);
  throw badPayload(`\`${field}\`: \`${JSON.stringify(value)}\` is not a woocommerce id`);
}

function modifiedAt(order) {
  const value = nonBlank(order.date_modified_gmt);
  if (value === undefined) throw missing('date_modified_gmt');
  try {
    return parseGmt(value);
  } catch (error) {
    throw error instanceof PluginError ? error.inField('date_modified_gmt') : error;
  }
}
