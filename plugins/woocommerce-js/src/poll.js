// Polling: the orders the shop modified since the cursor, read through the REST API (v3). The
// gateway polls as a safety net for webhooks that never arrived: WooCommerce does not redeliver
// a failed delivery, and disables a webhook after a run of failures.
//
// A poll reads one page:
//
//   GET /orders?modified_after=2025-12-31T23:59:59&dates_are_gmt=true&orderby=modified&order=asc&per_page=50
//
// as WooCommerce's REST controllers (`WC_REST_CRUD_Controller`, which the orders controller
// extends) implement it:
// - `modified_after` becomes a `WP_Date_Query` `after`, which is strict (`>`), at the second, the
//   precision of `date_modified_gmt`: "modified at or after T" is `modified_after` = T − 1 s;
// - `dates_are_gmt=true` compares it with the GMT modification time (`post_modified_gmt`, with
//   HPOS `date_updated_gmt`). The time goes without an offset: WordPress converts a time with `Z`
//   or an offset into the site's time zone before comparing it with the GMT column, which would
//   shift the window by the site's offset;
// - `orderby=modified&order=asc` sorts by modification time, then by id.
//
// Each order is the REST order JSON the `order.*` webhooks carry, translated by `orderEvents` as
// a delivery is.
//
// The cursor, JSON text, says where the next poll starts:
//
//   {"modified":"2026-01-01T10:00:00","ids":[727,728]}
//
// the orders modified at or after `modified` (GMT, as `date_modified_gmt` is written) but `ids`,
// those already read at exactly that second (sent as `exclude`). After a page, `modified` is the
// latest `date_modified_gmt` in it and `ids` the page's orders at that second: an order sharing
// the second of the page's last order is read by the next poll rather than skipped, and a page
// entirely within one second still moves on, its orders joining `ids`. When more than
// MAX_EXCLUDED orders share one second (a bulk action), `ids` stops growing and `"page": n`
// reads the rest of that second page by page.

import { apiBase } from './config.js';
import { permanent, PluginError } from './errors.js';
import { orderEvents } from './order.js';
import { Api } from './rest.js';
import { formatGmt, parseGmt } from './time.js';

/** The most order ids a cursor lists (and a request excludes): about 2 KB of URL. */
export const MAX_EXCLUDED = 200;

const SECOND = 1000n;
const GMT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/;

/**
 * Reads one page of the orders modified since the cursor (or, without one, since `since`).
 *
 * @param request the WIT `poll-request`: `cursor` (a string, or `undefined` on the first poll)
 *   and `since` (milliseconds, a BigInt)
 * @param {{ store: {scheme: string, host: string, path: string}, consumerKey: string,
 *   consumerSecret: string, pageSize: number }} config
 * @param send performs one outbound request, as for `push`
 * @returns {{ events: object[], nextCursor: string, more: boolean, count: number,
 *   skipped: {id: number, message: string}[] }} the WIT `poll-result`, with the number of orders
 *   read and those whose translation failed (left out; the component reports them)
 */
export function poll(request, config, send) {
  const from = request.cursor === undefined || request.cursor === null ? start(request.since) : parseCursor(request.cursor);
  const url = ordersUrl(config, from);
  const { body } = new Api(config, send).exchange('GET', url, undefined, 'the orders', {
    400: ' (polling needs `modified_after` and `orderby=modified`, which older woocommerce versions lack)',
  });
  if (!Array.isArray(body)) throw permanent(`woocommerce answered GET ${url} without a list of orders`);

  const events = [];
  const skipped = [];
  const seen = [];
  body.forEach((order, i) => {
    const { id, modified } = position(order, i, url);
    if (modified < from.modified) {
      // A shop that does not know `modified_after` ignores it and lists every order: translating
      // them would place orders long shipped.
      throw permanent(
        `woocommerce ignored \`modified_after\`: order ${id} was modified at ${formatGmt(modified)}, before ${formatGmt(from.modified)}; polling needs a woocommerce version that has it (woocommerce/woocommerce#30585)`,
      );
    }
    seen.push({ id, modified });
    try {
      events.push(...orderEvents(order));
    } catch (error) {
      // One order that cannot be translated must not stop the orders after it for good: it is
      // left out and reported (`skipped`), as its webhook would have been refused. Editing it in the shop
      // modifies it again, and the next poll reads it again.
      if (!(error instanceof PluginError)) throw error;
      skipped.push({ id, message: error.message });
    }
  });
  const full = body.length >= config.pageSize;
  return { events, nextCursor: formatCursor(advance(from, seen, full)), more: full, count: body.length, skipped };
}

/** The cursor of a first poll: the orders modified at or after `since`, to the second. */
function start(since) {
  const modified = formatGmt(since);
  if (modified === undefined) throw permanent(`poll \`since\` ${since} is not a time woocommerce can be asked about`);
  return { modified: parseGmt(modified), ids: [], page: 1 };
}

/** The URL of the page a cursor names. */
export function ordersUrl(config, from) {
  // Strictly after the second before: at or after `modified`.
  const after = formatGmt(from.modified - SECOND);
  if (after === undefined) throw permanent(`poll cursor time ${formatGmt(from.modified)} is out of range`);
  let url =
    `${apiBase(config.store)}/orders?modified_after=${after}&dates_are_gmt=true` +
    `&orderby=modified&order=asc&per_page=${config.pageSize}`;
  if (from.ids.length > 0) url += `&exclude=${from.ids.join(',')}`;
  if (from.page > 1) url += `&page=${from.page}`;
  return url;
}

/**
 * Where the poll after this page starts. `seen` lists the page's orders (`id`, `modified` in
 * milliseconds); `full` says whether the page was full (more orders may follow it).
 */
export function advance(from, seen, full) {
  if (seen.length === 0) return from;
  const latest = seen.reduce((max, s) => (s.modified > max ? s.modified : max), from.modified);
  const atLatest = seen.filter((s) => s.modified === latest).map((s) => s.id);
  if (latest > from.modified) {
    // Past the cursor's second: on from this page's last second, less what was read of it. Every
    // order of the cursor's second sorted before those, so none of them is left behind.
    return { modified: latest, ids: unique(atLatest), page: 1 };
  }
  // The whole page is at the cursor's second.
  const ids = unique([...from.ids, ...atLatest]);
  if (from.page === 1 && ids.length > from.ids.length && ids.length <= MAX_EXCLUDED) {
    return { modified: from.modified, ids, page: 1 };
  }
  // `ids` is full (or the shop ignored `exclude`): a full page moves on by page number; a partial
  // one is read again, as orders modified since are appended to it.
  return full ? { ...from, page: from.page + 1 } : from;
}

/** The cursor's text: `{"modified":"…","ids":[…]}`, with `"page":n` past the first page. */
export function formatCursor(cursor) {
  const value = { modified: formatGmt(cursor.modified), ids: cursor.ids };
  if (cursor.page > 1) value.page = cursor.page;
  return JSON.stringify(value);
}

/** A cursor's text, read back; anything this plugin did not write is refused. */
export function parseCursor(text) {
  const shown = text.length > 120 ? `${text.slice(0, 120)}…` : text;
  const invalid = () => permanent(`poll cursor \`${shown}\` is not one this plugin wrote`);
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid();
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid();
  if (Object.keys(value).some((key) => !['modified', 'ids', 'page'].includes(key))) throw invalid();
  if (typeof value.modified !== 'string' || !GMT.test(value.modified)) throw invalid();
  let modified;
  try {
    modified = parseGmt(value.modified);
  } catch {
    throw invalid();
  }
  const { ids, page = 1 } = value;
  if (!Array.isArray(ids) || ids.length > MAX_EXCLUDED || !ids.every((id) => Number.isSafeInteger(id) && id > 0)) {
    throw invalid();
  }
  if (!Number.isSafeInteger(page) || page < 1) throw invalid();
  return { modified, ids, page };
}

/** An order's id and modification time, which place it in the sequence of polls. */
function position(order, i, url) {
  if (order === null || typeof order !== 'object' || Array.isArray(order)) {
    throw permanent(`woocommerce answered GET ${url} with a list whose item ${i} is not an order`);
  }
  const id = typeof order.id === 'string' && /^\d{1,15}$/.test(order.id.trim()) ? Number(order.id.trim()) : order.id;
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw permanent(`woocommerce answered GET ${url} with an order without an id (item ${i})`);
  }
  let modified;
  try {
    modified = parseGmt(order.date_modified_gmt);
  } catch {
    throw permanent(`order ${id} has no valid \`date_modified_gmt\` (\`${order.date_modified_gmt}\`): it cannot be polled`);
  }
  return { id, modified };
}

function unique(ids) {
  return [...new Set(ids)];
}
