import { test } from 'node:test';
import assert from 'node:assert/strict';
import { currency, divideRounded, parseMinor } from '../src/money.js';
import { parseGmt, formatUtc } from '../src/time.js';
import * as base64 from '../src/base64.js';
import { sign, equalInConstantTime } from '../src/signature.js';
import { sign as nodeSign } from './helpers.js';
import { decodeEntities } from '../src/text.js';

test('amounts parse by the currency exponent, never rounding', () => {
  const cases = [
    ['199.00', 'USD', 19900n], ['199', 'usd', 19900n], ['0.5', 'EUR', 50n], ['-5.25', 'GBP', -525n],
    ['1000', 'JPY', 1000n], ['1.500', 'KWD', 1500n], ['.5', 'USD', 50n], ['29.35', 'USD', 2935n],
    ['1.005', 'USD', undefined], ['12a', 'USD', undefined], ['', 'USD', undefined], ['1.5', 'JPY', undefined],
    ['9223372036854775808', 'JPY', undefined],
  ];
  for (const [input, code, expected] of cases) {
    let got;
    try { got = parseMinor(input, currency(code)); } catch { got = undefined; }
    assert.equal(got, expected, `${input} ${code}`);
  }
  assert.throws(() => currency('XXY'), { kind: 'bad-payload', message: 'unknown currency `XXY`' });
});

test('division rounds halves away from zero', () => {
  assert.equal(divideRounded(1000n, 3n), 333n);
  assert.equal(divideRounded(1001n, 2n), 501n);
  assert.equal(divideRounded(-1001n, 2n), -501n);
  assert.equal(divideRounded(600n, 2n), 300n);
});

test('gmt timestamps are utc; offsets are honoured; impossible dates refused', () => {
  assert.equal(parseGmt('2017-03-22T19:28:02'), 1490210882000n);
  assert.equal(parseGmt('2017-03-22T19:28:02Z'), 1490210882000n);
  assert.equal(parseGmt('2017-03-22T14:28:02-05:00'), 1490210882000n);
  assert.equal(parseGmt('2017-03-22T19:28:02.250'), 1490210882250n);
  assert.throws(() => parseGmt('2017-02-30T00:00:00'), { kind: 'bad-payload' });
  assert.throws(() => parseGmt('yesterday'), { kind: 'bad-payload' });
  assert.equal(formatUtc(1767225600000n), '2026-01-01T00:00:00Z');
});

test('base64 round-trips and refuses garbage', () => {
  for (const text of ['', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar']) {
    const encoded = base64.encode(base64.utf8(text));
    assert.equal(encoded, Buffer.from(text).toString('base64'));
    assert.deepEqual(Buffer.from(base64.decode(encoded)).toString(), text);
  }
  assert.equal(base64.decode('not base64!'), undefined);
  assert.equal(base64.decode('Zm9v='), undefined);
});

test('hmac matches the published shopify test vector (same scheme as woocommerce)', async () => {
  assert.equal(await sign('test_secret_key', base64.utf8('{"foo": "bar"}')), 'B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=');
  const body = base64.utf8('{"id":727,"name":"caf\u00e9 \u2013 \u{1f600}"}');
  assert.equal(await sign('s\u00e9cret', body), nodeSign('s\u00e9cret', body));
  assert.equal(equalInConstantTime(new Uint8Array([1, 2]), new Uint8Array([1, 2])), true);
  assert.equal(equalInConstantTime(new Uint8Array([1, 2]), new Uint8Array([1, 3])), false);
  assert.equal(equalInConstantTime(new Uint8Array([1]), new Uint8Array([1, 3])), false);
});

test('html character references in product names are decoded', () => {
  assert.equal(decodeEntities('Ship Your Idea &ndash; Black'), 'Ship Your Idea \u2013 Black');
  assert.equal(decodeEntities('Tom &amp; Jerry &#8220;mug&#8221; &#x263A; &bogus;'), 'Tom & Jerry \u201cmug\u201d \u263a &bogus;');
});
