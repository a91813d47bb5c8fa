// The connection's settings and the names of its secrets.

import { permanent } from './errors.js';

/** Secret: the webhook's secret, as entered in WooCommerce > Settings > Advanced > Webhooks. */
export const WEBHOOK_SECRET = 'webhook_secret';
/** Secrets: the REST API key pair (WooCommerce > Settings > Advanced > REST API), read/write. */
export const CONSUMER_KEY = 'consumer_key';
export const CONSUMER_SECRET = 'consumer_secret';

/** Setting: the shop's address, as WordPress names it (its "Site Address"). */
export const STORE_URL = 'store_url';
/** Setting: whether a shipment that completes the order sets its status to `completed`. */
export const COMPLETE_ORDERS = 'complete_orders';
/** Setting: how many orders one poll asks the REST API for. */
export const POLL_PAGE_SIZE = 'poll_page_size';

/** Orders per poll unless the setting says otherwise. */
export const DEFAULT_POLL_PAGE_SIZE = 50;

const URL_PATTERN = /^(https?):\/\/([^/?#@\s]+)(\/[^?#\s]*)?$/i;
const HOST_PATTERN = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/;

/**
 * A shop address, parsed: scheme, host (with its port, lower case) and path (no trailing slash;
 * empty when WordPress is at the root of the host). `undefined` when `value` is not an http(s)
 * URL without query or credentials.
 */
export function parseStoreUrl(value) {
  if (typeof value !== 'string') return undefined;
  const match = URL_PATTERN.exec(value.trim());
  if (!match) return undefined;
  const scheme = match[1].toLowerCase();
  const host = match[2].toLowerCase();
  if (!HOST_PATTERN.test(host)) return undefined;
  const path = (match[3] ?? '').replace(/\/+$/, '');
  return { scheme, host, path };
}

/**
 * Whether two shop addresses name the same site. The scheme is ignored: WordPress reports its
 * `home_url` with whatever scheme it is configured with, which need not be the one the operator
 * pasted.
 */
export function sameSite(a, b) {
  return a.host === b.host && a.path === b.path;
}

/** The REST API base of a shop: `https://shop.example.com/wp-json/wc/v3`. */
export function apiBase(store) {
  return `${store.scheme}://${store.host}${store.path}/wp-json/wc/v3`;
}

/**
 * The store address of a connection, for calls to its REST API. WooCommerce accepts HTTP Basic
 * authentication only over https (over plain http it expects OAuth 1.0a signatures), so plain http
 * is refused but for a loopback host, where a test double of the shop may listen.
 */
export function storeForApi(value) {
  if (typeof value !== 'string' || value.trim() === '') {
    throw permanent(`connection setting \`${STORE_URL}\` is not set`);
  }
  const store = parseStoreUrl(value);
  if (!store) {
    throw permanent(
      `connection setting \`${STORE_URL}\` must be the shop's address like \`https://shop.example.com\`, not \`${value}\``,
    );
  }
  const loopback = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(store.host);
  if (store.scheme !== 'https' && !loopback) {
    throw permanent(
      `connection setting \`${STORE_URL}\` must be an https address: WooCommerce takes API keys over https only`,
    );
  }
  return store;
}

/** Whether shipments may complete orders: on unless the setting says "false". */
export function completeOrders(value) {
  if (typeof value !== 'string' || value.trim() === '') return true;
  const normalized = value.trim().toLowerCase();
  if (normalized === 'true') return true;
  if (normalized === 'false') return false;
  throw permanent(`connection setting \`${COMPLETE_ORDERS}\` must be \`true\` or \`false\`, not \`${value}\``);
}

/**
 * Orders per poll: the setting, 1 to 100 (the REST API's `per_page` maximum), else 50. A shop
 * whose listing of 50 orders outlasts the plugin's `outbound_timeout` needs a smaller page.
 */
export function pollPageSize(value) {
  if (typeof value !== 'string' || value.trim() === '') return DEFAULT_POLL_PAGE_SIZE;
  const size = /^\d{1,3}$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!(size >= 1 && size <= 100)) {
    throw permanent(`connection setting \`${POLL_PAGE_SIZE}\` must be a number from 1 to 100, not \`${value}\``);
  }
  return size;
}
