// Shipments written back to WooCommerce through its REST API (v3), with nothing but WooCommerce
// itself installed:
//
// 1. `GET /orders/{id}`: the order's status, line items and the shipments Daifa recorded on it.
//    A shipment already recorded there (a retried push) returns its note again.
// 2. `GET /orders/{id}/notes`: a note that already names the tracking number (a push that timed
//    out after the note was written) is taken instead of writing a second one.
// 3. `POST /orders/{id}/notes`: a customer note (the buyer gets WooCommerce's "customer note"
//    e-mail when `notify-customer` is set) with the carrier, the tracking number, its URL and the
//    items in the parcel.
// 4. `PUT /orders/{id}`: the shipment recorded as hidden order meta (`_daifa_shipment_{id}`), and
//    the status set to `completed` once every unit of every line has shipped.
//
// The fulfillment ref is the note's id.

import { apiBase } from './config.js';
import { permanent } from './errors.js';
import { Api } from './rest.js';
import { decodeEntities, nonBlank } from './text.js';
import { formatUtc } from './time.js';

/** Prefix of the order meta keys that record Daifa's shipments. */
export const SHIPMENT_META_PREFIX = '_daifa_shipment_';

/** Order statuses a shipment cannot be written to. */
const CLOSED = new Set(['cancelled', 'refunded', 'failed', 'trash']);

/**
 * Writes a shipment to the shop.
 *
 * @param request the WIT `fulfillment-request`
 * @param {{ store: {scheme: string, host: string, path: string}, consumerKey: string,
 *   consumerSecret: string, completeOrders: boolean }} config
 * @param send performs one outbound request (the WIT `outbound-request`) and returns the WIT
 *   `outbound-response`; throws a `PluginError` when the peer cannot be reached
 * @returns {{ noteId: string, outcome: 'created' | 'found-note' | 'already-recorded', completed: boolean }}
 */
export function push(request, config, send) {
  const orderId = orderIdOf(request.orderExternalId);
  const api = new Api(config, send);
  const orderUrl = `${apiBase(config.store)}/orders/${orderId}`;

  const order = api.call('GET', orderUrl, undefined, `order \`${orderId}\``);
  if (order === null || typeof order !== 'object' || !Array.isArray(order.line_items)) {
    throw permanent(`woocommerce answered GET ${orderUrl} without an order`);
  }
  const status = typeof order.status === 'string' ? order.status : '';
  if (CLOSED.has(status)) {
    throw permanent(`order \`${orderId}\` is ${status} in the shop: no shipment can be added to it`);
  }

  const recorded = recordedShipments(order.meta_data);
  const previous = recorded.get(request.shipmentId);
  if (previous?.note_id !== undefined && previous.note_id !== null) {
    return { noteId: String(previous.note_id), outcome: 'already-recorded', completed: false };
  }

  const lines = shippedLines(request, order, orderId);

  const notes = api.call('GET', `${orderUrl}/notes`, undefined, `notes of order \`${orderId}\``);
  const existing = Array.isArray(notes) ? notes.find((n) => mentions(n, request.shipment.trackingNumber)) : undefined;
  let noteId;
  if (existing !== undefined) {
    noteId = String(existing.id);
  } else {
    const created = api.call(
      'POST',
      `${orderUrl}/notes`,
      { note: noteText(request.shipment, lines), customer_note: request.notifyCustomer },
      `a note on order \`${orderId}\``,
    );
    if (created === null || typeof created !== 'object' || created.id === undefined || created.id === null) {
      throw permanent(`woocommerce answered POST ${orderUrl}/notes without the note's id`);
    }
    noteId = String(created.id);
  }

  const record = {
    shipment_id: request.shipmentId,
    carrier: request.shipment.carrierCode,
    tracking_number: request.shipment.trackingNumber,
    tracking_url: request.shipment.trackingUrl ?? null,
    shipped_at: formatUtc(request.shipment.shippedAt),
    lines: lines.map((l) => ({ line_id: l.lineId, quantity: l.quantity })),
    note_id: Number.isSafeInteger(Number(noteId)) ? Number(noteId) : noteId,
  };
  recorded.set(request.shipmentId, record);
  const complete = config.completeOrders && status !== 'completed' && fullyShipped(order.line_items, recorded);
  const update = { meta_data: [{ key: `${SHIPMENT_META_PREFIX}${request.shipmentId}`, value: record }] };
  if (complete) update.status = 'completed';
  api.call('PUT', orderUrl, update, `order \`${orderId}\``);

  return { noteId, outcome: existing !== undefined ? 'found-note' : 'created', completed: complete };
}

/**
 * Checks the connection with the cheapest authenticated read the writes need permission for:
 * `GET /orders?per_page=1`. Returns what it found ("woocommerce at https://shop.example.com: API
 * key accepted, 727 orders"). A key with read permission only passes; WooCommerce refuses its
 * first write.
 */
export function check(config, send) {
  const api = new Api(config, send);
  const url = `${apiBase(config.store)}/orders?per_page=1`;
  const { body, headers } = api.exchange('GET', url, undefined, 'the orders');
  if (!Array.isArray(body)) throw permanent(`woocommerce answered GET ${url} without a list of orders`);
  const total = headers.find((h) => h.name.toLowerCase() === 'x-wp-total')?.value.trim();
  const count = total !== undefined && /^\d+$/.test(total) ? `, ${total} order${total === '1' ? '' : 's'}` : '';
  const site = `${config.store.scheme}://${config.store.host}${config.store.path}`;
  return `woocommerce at ${site}: API key accepted${count}`;
}

/** The WooCommerce id of an order: digits only. */
export function orderIdOf(externalId) {
  const id = typeof externalId === 'string' ? externalId.trim() : '';
  if (!/^\d{1,19}$/.test(id)) throw permanent(`\`${externalId}\` is not a woocommerce order id`);
  return id;
}

/**
 * The shipment's lines, checked against the order: each must be a line item of it. Lines with no
 * quantity are left out; a shipment with none left is refused.
 */
function shippedLines(request, order, orderId) {
  const items = new Map(order.line_items.map((item) => [String(item?.id), item]));
  const lines = [];
  for (const line of request.shipment.lines) {
    if (line.quantity === 0) continue;
    const item = items.get(line.externalLineId.trim());
    if (item === undefined) {
      throw permanent(`\`${line.externalLineId}\` is not a line item of order \`${orderId}\``);
    }
    const name = nonBlank(item.name) ?? `line ${line.externalLineId}`;
    lines.push({ lineId: String(item.id), quantity: line.quantity, name: decodeEntities(name.trim()) });
  }
  if (lines.length === 0) throw permanent('shipment lists no order line with a quantity');
  return lines;
}

/** The shipments recorded in the order's meta, by shipment id. Unreadable entries are skipped. */
function recordedShipments(metaData) {
  const recorded = new Map();
  for (const meta of Array.isArray(metaData) ? metaData : []) {
    if (typeof meta?.key !== 'string' || !meta.key.startsWith(SHIPMENT_META_PREFIX)) continue;
    const value = meta.value;
    if (value === null || typeof value !== 'object') continue;
    recorded.set(meta.key.slice(SHIPMENT_META_PREFIX.length), value);
  }
  return recorded;
}

/** Whether every unit of every line item is in some recorded shipment. */
function fullyShipped(lineItems, recorded) {
  const shipped = new Map();
  for (const shipment of recorded.values()) {
    for (const line of Array.isArray(shipment.lines) ? shipment.lines : []) {
      const quantity = Number.isInteger(line?.quantity) ? line.quantity : 0;
      const lineId = String(line?.line_id);
      shipped.set(lineId, (shipped.get(lineId) ?? 0) + quantity);
    }
  }
  return lineItems.every((item) => {
    const ordered = Number.isInteger(item?.quantity) ? item.quantity : 0;
    return (shipped.get(String(item?.id)) ?? 0) >= ordered;
  });
}

/** Whether a note already names a tracking number. */
function mentions(note, trackingNumber) {
  const number = trackingNumber.trim().toLowerCase();
  return (
    number !== '' &&
    note !== null &&
    typeof note === 'object' &&
    note.id !== undefined &&
    typeof note.note === 'string' &&
    note.note.toLowerCase().includes(number)
  );
}

/** The note the buyer reads. */
export function noteText(shipment, lines) {
  const text = [`Your order has shipped with ${shipment.carrierCode.trim()}, tracking number ${shipment.trackingNumber.trim()}.`];
  const url = nonBlank(shipment.trackingUrl);
  if (url !== undefined) text.push(`Track it at ${url.trim()}`);
  text.push(`In this parcel: ${lines.map((l) => `${l.name} \u00d7 ${l.quantity}`).join(', ')}`);
  return text.join('\n');
}
