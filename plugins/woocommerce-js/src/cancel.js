// Cancelling an order on the store after the shop cancelled it for its suppliers (an
// operator's cancel, a stock-out's "cancel" choice), through WooCommerce's REST API (v3):
//
// 1. `GET /orders/{id}`: an order already `cancelled` or `refunded` is the same success, and
//    nothing is changed; a `completed` order has shipped and is refused (`permanent`).
// 2. With `refund`, an order that was paid (`date_paid`) and still has money not refunded
//    (`total` less its `refunds`) is refunded first, through the order's payment gateway, as
//    refund.js does (the order just read spares it a read): the refund's reason carries the
//    cancellation's idempotency key, so a retry finds it and does not refund twice.
// 3. `PUT /orders/{id}` with `status: "cancelled"`.
// 4. With `notifyCustomer`, `POST /orders/{id}/notes` with a customer note (WooCommerce e-mails
//    customer notes to the buyer; its own "cancelled order" e-mail goes to the shop only).
//
// WooCommerce puts a cancelled order's reduced stock back by itself (`wc_maybe_increase_stock_levels`):
// `restock: false` cannot stop it.
//
// The reference is the order's new status. At most five REST calls (read, refunds, refund,
// status, note): the manifest's `max_outbound_requests`.

import { apiBase } from './config.js';
import { permanent } from './errors.js';
import { orderIdOf } from './fulfillment.js';
import { currency, parseMinor } from './money.js';
import { refund } from './refund.js';
import { Api } from './rest.js';
import { nonBlank } from './text.js';

/** Statuses in which the order is cancelled already (a refunded order is closed for good). */
const CLOSED = new Set(['cancelled', 'refunded']);

/**
 * Cancels the order, or finds it cancelled.
 *
 * @param request the WIT `cancel-order-request`: `orderExternalId`, `idempotencyKey`, `reason`,
 *   `staffNote`, `refund`, `restock`, `notifyCustomer`
 * @param config as for `refund` (refund.js)
 * @param send performs one outbound request, as for `push` (fulfillment.js)
 * @returns {{ outcome: 'cancelled' | 'already-cancelled', refundId?: string }}
 */
export function cancel(request, config, send) {
  const orderId = orderIdOf(request.orderExternalId);
  const key = typeof request.idempotencyKey === 'string' ? request.idempotencyKey.trim() : '';
  if (key === '') throw permanent('cancellation without an idempotency key');
  const api = new Api(config, send);
  const orderUrl = `${apiBase(config.store)}/orders/${orderId}`;
  const order = api.call('GET', orderUrl, undefined, `order \`${orderId}\``);
  if (order === null || typeof order !== 'object' || typeof order.status !== 'string') {
    throw permanent(`woocommerce answered GET ${orderUrl} without an order`);
  }
  if (CLOSED.has(order.status)) return { outcome: 'already-cancelled' };
  if (order.status === 'completed') {
    throw permanent(
      `order \`${orderId}\` is completed on woocommerce (it shipped): it cannot be cancelled there; refund it or open a return`,
    );
  }

  let refundId;
  const left = request.refund ? unrefunded(order, orderId) : undefined;
  if (left !== undefined && left.amountMinor > 0n) {
    const made = refund(
      {
        orderExternalId: request.orderExternalId,
        caseId: key,
        amount: left,
        lines: [],
        reason: `order cancelled (${request.reason})${nonBlank(request.staffNote) ? `: ${request.staffNote.trim()}` : ''}`,
        notifyCustomer: request.notifyCustomer,
      },
      config,
      send,
      order,
    );
    refundId = made.refundId;
  }

  const updated = api.call('PUT', orderUrl, { status: 'cancelled' }, `order \`${orderId}\``);
  if (updated === null || typeof updated !== 'object' || updated.status !== 'cancelled') {
    throw permanent(
      `woocommerce did not cancel order \`${orderId}\`: it answered with status \`${updated?.status}\``,
    );
  }
  if (request.notifyCustomer) {
    const number = typeof order.number === 'string' && order.number !== '' ? order.number : orderId;
    api.call(
      'POST',
      `${orderUrl}/notes`,
      { note: customerNote(number, refundId !== undefined), customer_note: true },
      `order \`${orderId}\``,
    );
  }
  return refundId === undefined ? { outcome: 'cancelled' } : { outcome: 'cancelled', refundId };
}

/**
 * What the buyer paid and was not given back, as a WIT `money`; undefined when the order was
 * never paid (`date_paid` empty: nothing to give back).
 */
export function unrefunded(order, orderId) {
  if (nonBlank(order.date_paid) === undefined) return undefined;
  const cur = currency(order.currency);
  const total = parseMinor(String(order.total), cur);
  let refunded = 0n;
  for (const r of Array.isArray(order.refunds) ? order.refunds : []) {
    // Refunds are listed with negative totals ("-10.00").
    const amount = parseMinor(String(r?.total ?? '0'), cur);
    refunded += amount < 0n ? -amount : amount;
  }
  if (refunded > total) {
    throw permanent(`order \`${orderId}\` has more refunded than its total`);
  }
  return { amountMinor: total - refunded, currency: cur.code };
}

/** The note the buyer gets. */
export function customerNote(number, refunded) {
  return refunded
    ? `Your order #${number} has been cancelled and refunded.`
    : `Your order #${number} has been cancelled.`;
}
