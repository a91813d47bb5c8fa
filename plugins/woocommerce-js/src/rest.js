// The shop's REST API (v3): authenticated JSON calls with their statuses classified, shared by
// the shipments (fulfillment.js), the connection check, polling (poll.js) and refunds (refund.js).

import { permanent, PluginError, transient } from './errors.js';
import * as base64 from './base64.js';

/** The shop's REST API: authenticated JSON calls with their statuses classified. */
export class Api {
  /**
   * @param {{ consumerKey: string, consumerSecret: string }} config the REST API key pair
   * @param send performs one outbound request (the WIT `outbound-request`) and returns the WIT
   *   `outbound-response`; throws a `PluginError` when the peer cannot be reached
   */
  constructor(config, send) {
    this.send = send;
    this.authorization = `Basic ${base64.encode(base64.utf8(`${config.consumerKey}:${config.consumerSecret}`))}`;
  }

  /**
   * One call; returns the parsed JSON body of a 2xx answer. 408, 429 and 5xx are `transient`
   * (the host honours their `Retry-After`); 400, 401, 403, 404 and other statuses `permanent`.
   */
  call(method, url, json, what) {
    return this.exchange(method, url, json, what).body;
  }

  /**
   * Like `call`, with the answer's headers as well. `hints` adds to the explanations of refused
   * statuses, by status, what only the caller knows (`{ 400: ' (…)' }`).
   */
  exchange(method, url, json, what, hints = {}) {
    const headers = [
      { name: 'accept', value: 'application/json' },
      { name: 'authorization', value: this.authorization },
    ];
    let body = new Uint8Array(0);
    if (json !== undefined) {
      headers.push({ name: 'content-type', value: 'application/json' });
      body = base64.utf8(JSON.stringify(json));
    }
    const response = this.send({ method, url, headers, body });
    const text = new TextDecoder().decode(response.body);
    const status = response.status;
    if (status < 200 || status > 299) {
      const message = `${method} ${url} answered ${status}${describeError(method, status, text, what, hints)}`;
      const error = status === 408 || status === 429 || status >= 500 ? transient(message) : permanent(message);
      // For callers that know what one of WooCommerce's errors means (refund.js).
      error.status = status;
      error.code = wooError(text)?.code;
      throw error;
    }
    try {
      return { body: JSON.parse(text), headers: response.headers };
    } catch {
      throw permanent(`${method} ${url} answered ${status} with a body that is not JSON: ${excerpt(text)}`);
    }
  }
}

/** WooCommerce's JSON error (`{"code": "…", "message": "…", "data": {…}}`), else `undefined`. */
function wooError(text) {
  try {
    const error = JSON.parse(text);
    if (error && typeof error === 'object' && typeof error.code === 'string') {
      return { code: error.code, message: typeof error.message === 'string' ? error.message : '' };
    }
  } catch {
    // Not WooCommerce's JSON error: a proxy's or the web server's page.
  }
  return undefined;
}

/** What WooCommerce said about a refused call: its error code and message, or the body's start. */
function describeError(method, status, text, what, extra) {
  const error = wooError(text);
  const reason = error !== undefined ? `${error.code}: ${error.message}`.trim() : excerpt(text);
  const hints = {
    401: ' (check the consumer key and secret, and that the key has read/write permission)',
    // A read needs no write permission: a 403 on one is the user's role or a blocking plugin.
    403:
      method === 'GET'
        ? " (the key's user may not read orders, or a security plugin blocks the API)"
        : ' (the key lacks write permission, or a security plugin blocks the API)',
    404: ` (${what} was not found, or the shop's permalinks are "plain" and /wp-json/ is unavailable)`,
    ...extra,
  };
  return `${hints[status] ?? ''}${reason ? `: ${reason}` : ''}`;
}

function excerpt(text) {
  const chars = [...text.trim()];
  return chars.length > 300 ? `${chars.slice(0, 300).join('')}…` : chars.join('');
}

/** Turns a host `http-error` into the plugin error it means. */
export function transportError(error) {
  if (error instanceof PluginError) return error;
  const payload = error?.payload ?? error;
  switch (payload?.tag) {
    case 'unreachable':
      return transient(`shop unreachable: ${payload.val}`);
    case 'not-allowed':
      return permanent(`outbound request refused: ${payload.val}`);
    case 'invalid-request':
      return permanent(`invalid outbound request: ${payload.val}`);
    default:
      return undefined;
  }
}
