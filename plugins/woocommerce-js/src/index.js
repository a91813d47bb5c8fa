// The WooCommerce storefront adapter of Daifa: the component's `channel` export.
//
// Inbound: verifies `order.*` webhooks and translates the REST order JSON into canonical orders
// and cancellations (webhook.js, order.js); polls the REST API for the orders modified since the
// last poll, as a safety net for missed webhooks (poll.js). Outbound: writes shipments back as
// customer notes through the REST API and completes fully shipped orders (fulfillment.js);
// refunds through the order's payment gateway, once per after-sales case (refund.js); cancels
// orders the shop cancelled for its suppliers (cancel.js). Return decisions are `unsupported`:
// WooCommerce has no return requests.
//
// Everything but this file is plain functions over bytes and plain values, run natively by the
// unit tests (`npm test`); this file adds what needs the host: settings, secrets, HTTP, logs.

// The WIT version is added by the build (scripts/build.mjs), from plugin-sdk/wit.
import { config, httpFetch, log, secret } from 'daifa:plugin/host';
import {
  COMPLETE_ORDERS,
  completeOrders,
  CONSUMER_KEY,
  CONSUMER_SECRET,
  POLL_PAGE_SIZE,
  pollPageSize,
  STORE_URL,
  storeForApi,
  WEBHOOK_SECRET,
} from './config.js';
import { cancel } from './cancel.js';
import { permanent, PluginError } from './errors.js';
import { check, push } from './fulfillment.js';
import { poll } from './poll.js';
import { decideReturn, refund } from './refund.js';
import { transportError } from './rest.js';
import { handle } from './webhook.js';

export const channel = {
  // Asynchronous for WebCrypto: the component's event loop runs until the promise settles.
  async handleInbound(request) {
    return call('handle-inbound', () =>
      handle({ secret: secret(WEBHOOK_SECRET), storeUrl: config(STORE_URL) }, request),
    );
  },

  async pushFulfillment(request) {
    return call('push-fulfillment', () => {
      const result = push(request, apiSettings(), send);
      const done = {
        'created': `note ${result.noteId} added to order ${request.orderExternalId}`,
        'found-note': `order ${request.orderExternalId} already had note ${result.noteId} with the tracking number`,
        'already-recorded': `shipment already recorded on order ${request.orderExternalId} as note ${result.noteId}`,
      }[result.outcome];
      log('info', `${done} (shipment ${request.shipmentId})${result.completed ? '; order completed' : ''}`);
      return { externalId: result.noteId };
    });
  },

  async checkConnection() {
    return call('check-connection', () => {
      const settings = apiSettings();
      // Inbound needs it too; only a real delivery can show it is the right one.
      requiredSecret(WEBHOOK_SECRET);
      return check(settings, send);
    });
  },

  async poll(request) {
    return call('poll', () => {
      const result = poll(request, { ...apiSettings(), pageSize: pollPageSize(config(POLL_PAGE_SIZE)) }, send);
      // Left out of the events, reported to the gateway, which records them with the poll.
      const skipped = result.skipped.map(({ id, message }) => `order ${id} skipped: ${message}`);
      for (const line of skipped) log('warn', line);
      log('debug', `poll read ${result.count} orders: ${result.events.length} events${result.more ? ', more to read' : ''}`);
      return { events: result.events, nextCursor: result.nextCursor, more: result.more, skipped };
    });
  },

  async refund(request) {
    return call('refund', () => {
      const result = refund(request, apiSettings(), send);
      const order = `order ${request.orderExternalId}`;
      log(
        'info',
        result.outcome === 'created'
          ? `refund ${result.refundId} of ${result.amount} ${request.amount.currency} made on ${order} (case ${request.caseId})`
          : `case ${request.caseId} was already refunded on ${order}: refund ${result.refundId}`,
      );
      return { externalId: result.refundId };
    });
  },

  async decideReturn(decision) {
    return call('decide-return', () => decideReturn(decision));
  },

  async cancelOrder(request) {
    return call('cancel-order', () => {
      const result = cancel(request, apiSettings(), send);
      const order = `order ${request.orderExternalId}`;
      log(
        'info',
        result.outcome === 'already-cancelled'
          ? `${order} was already cancelled on the store`
          : `${order} cancelled on the store${result.refundId ? `, refund ${result.refundId} made` : ''}`,
      );
      return {
        reference: result.outcome === 'already-cancelled' ? undefined : `status cancelled${result.refundId ? `, refund ${result.refundId}` : ''}`,
        alreadyCancelled: result.outcome === 'already-cancelled',
      };
    });
  },
};

/** What calls to the shop's REST API take: its address, the key pair, the completion setting. */
function apiSettings() {
  return {
    store: storeForApi(config(STORE_URL)),
    consumerKey: requiredSecret(CONSUMER_KEY),
    consumerSecret: requiredSecret(CONSUMER_SECRET),
    completeOrders: completeOrders(config(COMPLETE_ORDERS)),
  };
}

/**
 * Runs an export: a `PluginError` becomes the call's typed error. Anything else thrown is a bug:
 * it is logged with its stack (the engine has no stderr here) and rethrown, which traps, as a
 * panic does in a Rust plugin.
 */
async function call(name, body) {
  try {
    return { tag: 'ok', val: await body() };
  } catch (error) {
    if (error instanceof PluginError) return { tag: 'err', val: error.toWit() };
    log('error', `${name} failed: ${error?.stack ?? error}`);
    throw error;
  }
}

function send(request) {
  try {
    return httpFetch(request);
  } catch (error) {
    throw transportError(error) ?? error;
  }
}

function requiredSecret(key) {
  const value = secret(key);
  if (typeof value !== 'string' || value === '') {
    throw permanent(`connection secret \`${key}\` is not set`);
  }
  return value;
}
