import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { advance, MAX_EXCLUDED, parseCursor, poll } from '../src/poll.js';
import { orderEvents } from '../src/order.js';
import { DEFAULT_POLL_PAGE_SIZE, pollPageSize, storeForApi } from '../src/config.js';
import { transportError } from '../src/rest.js';
import { formatGmt, parseGmt } from '../src/time.js';
import { FIXTURE } from './helpers.js';

const API = 'https://shop.example.com/wp-json/wc/v3';
const AUTH = `Basic ${Buffer.from('ck_test:cs_test').toString('base64')}`;
const config = (pageSize = 2) => ({
  store: storeForApi('https://shop.example.com'),
  consumerKey: 'ck_test',
  consumerSecret: 'cs_test',
  pageSize,
});
/** 2026-01-01T00:00:00Z, the `since` of a first poll. */
const SINCE = 1767225600000n;
const QUERY = 'dates_are_gmt=true&orderby=modified&order=asc';

const published = () => JSON.parse(FIXTURE.toString('utf8'));
const fixture = (name) => JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'));
/** The published order 727 under another id, modified at `modified` (GMT). */
const order = (id, modified, changes = {}) => ({ ...published(), id, number: String(id), date_modified_gmt: modified, ...changes });

/** A shop answering from a script, recording the URLs and headers it was sent. */
function peer(answers) {
  const sent = [];
  const send = (req) => {
    sent.push({ method: req.method, url: req.url, headers: Object.fromEntries(req.headers.map((h) => [h.name, h.value])) });
    const answer = answers.shift();
    if (!answer) throw new Error(`unexpected request ${req.method} ${req.url}`);
    if (answer instanceof Error) throw answer;
    const [status, json] = answer;
    return { status, headers: [], body: new TextEncoder().encode(typeof json === 'string' ? json : JSON.stringify(json)) };
  };
  return { send, sent };
}

test('the first poll asks for the orders modified since `since`, and places them', () => {
  const { send, sent } = peer([[200, [published()]]]);
  // 2017-03-22T00:00:00Z: the published order 727 was modified that evening.
  const result = poll({ cursor: undefined, since: 1490140800000n }, config(), send);
  // Strictly after the second before `since`, in GMT without an offset (see poll.js).
  assert.deepEqual(sent.map((r) => `${r.method} ${r.url}`), [
    `GET ${API}/orders?modified_after=2017-03-21T23:59:59&${QUERY}&per_page=2`,
  ]);
  assert.equal(sent[0].headers.authorization, AUTH);
  assert.equal(sent[0].headers.accept, 'application/json');
  // The same translation as a webhook's.
  assert.deepEqual(result.events, orderEvents(published()));
  assert.equal(result.events[0].tag, 'order-placed');
  assert.equal(result.events[0].val.externalId, '727');
  assert.deepEqual(result.events[0].val.total, { amountMinor: 2935n, currency: 'USD' });
  assert.equal(result.nextCursor, '{"modified":"2017-03-22T19:28:08","ids":[727]}');
  assert.equal(result.more, false);
});

test('`since` is taken to the second; an empty first poll still returns a cursor', () => {
  const { send, sent } = peer([[200, []]]);
  const result = poll({ cursor: undefined, since: SINCE + 999n }, config(50), send);
  assert.equal(sent[0].url, `${API}/orders?modified_after=2025-12-31T23:59:59&${QUERY}&per_page=50`);
  assert.deepEqual(result, { events: [], nextCursor: '{"modified":"2026-01-01T00:00:00","ids":[]}', more: false, count: 0, skipped: [] });
});

test('a full page asks for more; the next page starts at its last second, less what was read', () => {
  const first = peer([[200, [order(801, '2026-01-01T08:00:00'), order(802, '2026-01-01T09:30:00')]]]);
  const page1 = poll({ cursor: undefined, since: SINCE }, config(), first.send);
  assert.equal(page1.more, true);
  assert.deepEqual(page1.events.map((e) => e.val.externalId), ['801', '802']);
  assert.equal(page1.nextCursor, '{"modified":"2026-01-01T09:30:00","ids":[802]}');

  const second = peer([[200, [order(803, '2026-01-01T10:00:00')]]]);
  const page2 = poll({ cursor: page1.nextCursor, since: SINCE }, config(), second.send);
  assert.equal(second.sent[0].url, `${API}/orders?modified_after=2026-01-01T09:29:59&${QUERY}&per_page=2&exclude=802`);
  assert.deepEqual(page2.events.map((e) => e.val.externalId), ['803']);
  assert.equal(page2.nextCursor, '{"modified":"2026-01-01T10:00:00","ids":[803]}');
  assert.equal(page2.more, false);
});

test('orders sharing the last second of a page are read by the next poll, not skipped', () => {
  // 805 and 806 were modified in the same second as 804; the page ends at 804.
  const first = peer([[200, [order(803, '2026-01-01T10:00:00'), order(804, '2026-01-01T10:00:05')]]]);
  const page1 = poll({ cursor: undefined, since: SINCE }, config(), first.send);
  assert.equal(page1.nextCursor, '{"modified":"2026-01-01T10:00:05","ids":[804]}');

  const second = peer([[200, [order(805, '2026-01-01T10:00:05'), order(806, '2026-01-01T10:00:05')]]]);
  const page2 = poll({ cursor: page1.nextCursor, since: SINCE }, config(), second.send);
  // `modified_after` is strict: one second earlier keeps 805 and 806; `exclude` drops 804.
  assert.equal(second.sent[0].url, `${API}/orders?modified_after=2026-01-01T10:00:04&${QUERY}&per_page=2&exclude=804`);
  assert.deepEqual(page2.events.map((e) => e.val.externalId), ['805', '806']);
  // A full page within one second moves on by excluding what it read: no loop.
  assert.equal(page2.nextCursor, '{"modified":"2026-01-01T10:00:05","ids":[804,805,806]}');
  assert.equal(page2.more, true);

  const third = peer([[200, []]]);
  const page3 = poll({ cursor: page2.nextCursor, since: SINCE }, config(), third.send);
  assert.equal(third.sent[0].url, `${API}/orders?modified_after=2026-01-01T10:00:04&${QUERY}&per_page=2&exclude=804,805,806`);
  assert.deepEqual(page3, { events: [], nextCursor: page2.nextCursor, more: false, count: 0, skipped: [] });
});

test('past MAX_EXCLUDED orders in one second, the cursor reads that second page by page', () => {
  const t = parseGmt('2026-01-01T10:00:00');
  const t2 = parseGmt('2026-01-01T10:00:01');
  const ids = Array.from({ length: MAX_EXCLUDED }, (_, i) => 1000 + i);
  const full = { modified: t, ids, page: 1 };
  const at = (time, ...list) => list.map((id) => ({ id, modified: time }));
  // A full page at the same second: `ids` cannot grow, the page number does.
  assert.deepEqual(advance(full, at(t, 2000, 2001), true), { modified: t, ids, page: 2 });
  assert.deepEqual(advance({ ...full, page: 2 }, at(t, 2002, 2003), true), { modified: t, ids, page: 3 });
  // A partial page is read again: orders modified since are appended to it.
  assert.deepEqual(advance({ ...full, page: 3 }, at(t, 2004), false), { ...full, page: 3 });
  // A page reaching a later second goes back to excluding.
  assert.deepEqual(advance({ ...full, page: 3 }, [...at(t, 2004), ...at(t2, 3000)], true), { modified: t2, ids: [3000], page: 1 });
  // A shop that ignores `exclude` answers the same page again: the page number moves it on.
  assert.deepEqual(advance({ modified: t, ids: [1, 2], page: 1 }, at(t, 1, 2), true), { modified: t, ids: [1, 2], page: 2 });
  // The cursor and URL carry the page.
  const { send, sent } = peer([[200, []]]);
  const cursor = JSON.stringify({ modified: '2026-01-01T10:00:00', ids: [1000, 1001], page: 3 });
  assert.equal(poll({ cursor, since: SINCE }, config(), send).nextCursor, cursor);
  assert.equal(sent[0].url, `${API}/orders?modified_after=2026-01-01T09:59:59&${QUERY}&per_page=2&exclude=1000,1001&page=3`);
});

test('a cancelled order is cancelled; an order awaiting payment moves the cursor only', () => {
  const cancelled = fixture('order-727-cancelled.json');
  const pending = { ...fixture('order-727-pending.json'), id: 728, date_modified_gmt: '2017-03-23T09:00:00' };
  const { send } = peer([[200, [cancelled, pending]]]);
  const result = poll({ cursor: undefined, since: 1490140800000n }, config(), send);
  assert.deepEqual(result.events, [
    { tag: 'order-cancelled', val: { externalId: '727', reason: undefined, cancelledAt: 1490256000000n } },
  ]);
  assert.equal(result.nextCursor, '{"modified":"2017-03-23T09:00:00","ids":[728]}');
  assert.equal(result.more, true);
});

test('an order that cannot be translated is left out; the others go on', () => {
  const broken = order(810, '2026-01-01T08:00:00', { currency: 'XXY' });
  const { send } = peer([[200, [broken, order(811, '2026-01-01T08:00:01')]]]);
  const result = poll({ cursor: undefined, since: SINCE }, config(), send);
  assert.deepEqual(result.events.map((e) => e.val.externalId), ['811']);
  assert.deepEqual(result.skipped, [{ id: 810, message: '`currency`: unknown currency `XXY`' }]);
  assert.equal(result.nextCursor, '{"modified":"2026-01-01T08:00:01","ids":[811]}');
});

test('refused calls: 401 and 403 are permanent, 429 and 5xx and an unreachable shop transient', () => {
  const cases = [
    [401, { code: 'woocommerce_rest_cannot_view', message: 'Sorry, you cannot list resources.', data: { status: 401 } }, 'permanent',
      /^GET .*orders\?modified_after=.* answered 401 \(check the consumer key and secret.*\): woocommerce_rest_cannot_view: Sorry, you cannot list resources\.$/],
    [403, { code: 'woocommerce_rest_cannot_view', message: 'Sorry, you cannot list resources.' }, 'permanent', /answered 403 \(the key's user may not read orders/],
    [400, { code: 'rest_invalid_param', message: 'Invalid parameter(s): orderby' }, 'permanent', /answered 400 \(polling needs `modified_after` and `orderby=modified`.*rest_invalid_param/],
    [404, { code: 'rest_no_route', message: 'No route was found matching the URL and request method.' }, 'permanent', /the orders was not found, or the shop's permalinks/],
    [429, 'Too Many Requests', 'transient', /answered 429: Too Many Requests/],
    [503, '<html><body>Service Unavailable</body></html>', 'transient', /answered 503/],
    [200, { id: 727 }, 'permanent', /without a list of orders/],
    [200, '<html>maintenance</html>', 'permanent', /not JSON/],
  ];
  for (const [status, body, kind, message] of cases) {
    const { send } = peer([[status, body]]);
    assert.throws(() => poll({ cursor: undefined, since: SINCE }, config(), send), { kind, message }, String(status));
  }
  const unreachable = transportError({ payload: { tag: 'unreachable', val: 'connection refused' } });
  const { send } = peer([unreachable]);
  assert.throws(() => poll({ cursor: undefined, since: SINCE }, config(), send), { kind: 'transient', message: 'shop unreachable: connection refused' });
});

test('answers that cannot be placed in the sequence are permanent', () => {
  const cases = [
    [[order(812, null)], /order 812 has no valid `date_modified_gmt`/],
    [[{ ...published(), id: undefined }], /an order without an id \(item 0\)/],
    [['727'], /item 0 is not an order/],
    // A shop without `modified_after` lists every order: old ones are not taken as new.
    [[order(1, '2017-03-22T19:28:08')], /woocommerce ignored `modified_after`: order 1 was modified at 2017-03-22T19:28:08, before 2026-01-01T00:00:00/],
  ];
  for (const [body, message] of cases) {
    assert.throws(() => poll({ cursor: undefined, since: SINCE }, config(), peer([[200, body]]).send), { kind: 'permanent', message });
  }
});

test('cursors this plugin did not write are refused', () => {
  for (const cursor of [
    'not json', '[]', '{}', '{"modified":"2026-01-01T10:00:00"}', '{"modified":"2026-01-01T10:00:00Z","ids":[]}',
    '{"modified":"2026-02-30T10:00:00","ids":[]}', '{"modified":"2026-01-01T10:00:00","ids":["727"]}',
    '{"modified":"2026-01-01T10:00:00","ids":[],"page":0}', '{"modified":"2026-01-01T10:00:00","ids":[],"since":1}',
    JSON.stringify({ modified: '2026-01-01T10:00:00', ids: Array.from({ length: MAX_EXCLUDED + 1 }, (_, i) => i + 1) }),
  ]) {
    assert.throws(() => poll({ cursor, since: SINCE }, config(), peer([]).send), { kind: 'permanent', message: /is not one this plugin wrote$/ }, cursor);
  }
  assert.deepEqual(parseCursor('{"modified":"2026-01-01T10:00:00","ids":[727]}'), { modified: 1767261600000n, ids: [727], page: 1 });
});

test('the page size setting', () => {
  assert.equal(pollPageSize(undefined), DEFAULT_POLL_PAGE_SIZE);
  assert.equal(pollPageSize(' 100 '), 100);
  assert.equal(pollPageSize('1'), 1);
  for (const value of ['0', '101', '-5', 'ten', '2.5']) {
    assert.throws(() => pollPageSize(value), { kind: 'permanent', message: /`poll_page_size` must be a number from 1 to 100/ }, value);
  }
  assert.equal(formatGmt(1767225600999n), '2026-01-01T00:00:00');
  assert.equal(formatGmt(-62167219200001n), undefined);
});

/**
 * A WooCommerce double that answers `GET /orders` as `WC_REST_CRUD_Controller` does: strictly
 * after `modified_after` (GMT, seconds), less `exclude`, by modification time then id, paged.
 */
function shop(orders) {
  const requests = [];
  const send = (req) => {
    const url = new URL(req.url);
    const q = url.searchParams;
    requests.push(req.url);
    assert.equal(q.get('dates_are_gmt'), 'true');
    assert.equal(q.get('orderby'), 'modified');
    assert.equal(q.get('order'), 'asc');
    const after = parseGmt(q.get('modified_after'));
    const exclude = new Set((q.get('exclude') ?? '').split(',').filter(Boolean).map(Number));
    const perPage = Number(q.get('per_page'));
    const page = Number(q.get('page') ?? 1);
    const list = [...orders.values()]
      .filter((o) => o.modified > after && !exclude.has(o.id))
      .sort((a, b) => (a.modified === b.modified ? a.id - b.id : a.modified < b.modified ? -1 : 1))
      .slice((page - 1) * perPage, page * perPage)
      .map((o) => order(o.id, formatGmt(o.modified)));
    return { status: 200, headers: [], body: new TextEncoder().encode(JSON.stringify(list)) };
  };
  return { send, requests };
}

/** Polls as the gateway does: again at once while `more`, keeping the cursor. */
function drain(send, cursor, pageSize, between = () => {}) {
  const read = [];
  for (let calls = 1; ; calls++) {
    assert.ok(calls < 1000, 'polling does not end');
    const result = poll({ cursor, since: SINCE }, config(pageSize), send);
    read.push(...result.events.map((e) => Number(e.val.externalId)));
    cursor = result.nextCursor;
    if (!result.more) return { read, cursor, calls };
    between();
  }
}

test('polling a shop reads every order once modified, ties and bulk actions included, and ends', () => {
  const orders = new Map();
  const add = (id, time) => orders.set(id, { id, modified: parseGmt(time) });
  add(1, '2026-01-01T00:00:00');
  for (let id = 2; id <= 8; id++) add(id, '2026-01-01T01:00:00'); // seven in one second
  add(9, '2026-01-01T02:00:00');
  // A bulk action: more orders in one second than a cursor may exclude.
  for (let id = 100; id < 100 + MAX_EXCLUDED + 30; id++) add(id, '2026-01-01T03:00:00');
  add(999, '2026-01-01T04:00:00');
  add(50, '2025-12-31T23:59:59'); // before `since`: not read

  for (const pageSize of [1, 2, 3, 50, 100]) {
    const { send } = shop(orders);
    const { read, cursor } = drain(send, undefined, pageSize);
    const expected = [...orders.keys()].filter((id) => id !== 50).sort((a, b) => a - b);
    assert.deepEqual([...new Set(read)].sort((a, b) => a - b), expected, `page size ${pageSize}`);
    // Nothing new: the next poll reads nothing and keeps the cursor.
    const again = drain(send, cursor, pageSize);
    assert.deepEqual(again, { read: [], cursor, calls: 1 });
    // An order modified later is read by the next poll.
    orders.set(7, { id: 7, modified: parseGmt('2026-01-02T00:00:00') });
    assert.deepEqual(drain(send, cursor, pageSize).read, [7]);
    orders.set(7, { id: 7, modified: parseGmt('2026-01-01T01:00:00') });
  }
});

test('orders modified while a poll is under way are read by it or by the next one', () => {
  const orders = new Map();
  for (let id = 1; id <= 40; id++) orders.set(id, { id, modified: parseGmt('2026-01-01T00:00:00') + BigInt(Math.floor(id / 4)) * 1000n });
  const { send } = shop(orders);
  let clock = parseGmt('2026-01-01T05:00:00');
  let next = 1;
  const modified = [];
  // Between pages, the shop modifies an order already read, as a customer or the merchant would.
  const { read, cursor } = drain(send, undefined, 3, () => {
    clock += 1000n;
    orders.set(next, { id: next, modified: clock });
    modified.push(next);
    next += 2;
  });
  assert.deepEqual([...new Set(read)].sort((a, b) => a - b), [...orders.keys()].sort((a, b) => a - b));
  // Each modified order is read again after its modification, by this poll or the next.
  const after = drain(send, cursor, 3).read;
  for (const id of modified) assert.ok(read.lastIndexOf(id) > read.indexOf(id) || after.includes(id), `order ${id}`);
});
