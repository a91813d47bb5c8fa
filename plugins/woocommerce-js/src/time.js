// WooCommerce timestamps: `*_gmt` fields are UTC without an offset ("2017-03-22T19:28:02").

import { badPayload } from './errors.js';

const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})?$/;

/**
 * Milliseconds since the Unix epoch (a BigInt, the WIT `timestamp-ms`) of a WooCommerce GMT
 * timestamp. An explicit `Z` or offset is honoured; without one the time is UTC.
 */
export function parseGmt(value) {
  const invalid = () => badPayload(`invalid timestamp \`${value}\``);
  if (typeof value !== 'string') throw invalid();
  const match = TIMESTAMP.exec(value.trim());
  if (!match) throw invalid();
  const [, y, mo, d, h, mi, s, fraction = '', offset = 'Z'] = match;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number);
  const millis = Number(fraction.padEnd(3, '0').slice(0, 3));
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  // Date.UTC rolls 2017-02-30 over into March: refuse what does not come back unchanged.
  const back = new Date(utc);
  if (
    back.getUTCFullYear() !== year ||
    back.getUTCMonth() !== month - 1 ||
    back.getUTCDate() !== day ||
    back.getUTCHours() !== hour ||
    back.getUTCMinutes() !== minute ||
    back.getUTCSeconds() !== second
  ) {
    throw invalid();
  }
  let offsetMinutes = 0;
  if (offset !== 'Z') {
    const sign = offset[0] === '-' ? -1 : 1;
    const [oh, om] = offset.slice(1).split(':').map(Number);
    if (oh > 23 || om > 59) throw invalid();
    offsetMinutes = sign * (oh * 60 + om);
  }
  return BigInt(utc - offsetMinutes * 60_000);
}

/** RFC 3339 in UTC ("2026-01-01T00:00:00Z") of a WIT timestamp. */
export function formatUtc(ms) {
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return String(ms);
  return date.toISOString().replace(/\.000Z$/, 'Z');
}

/**
 * A WIT timestamp as WooCommerce writes its `*_gmt` fields: UTC, whole seconds, no offset
 * ("2026-01-01T00:00:00"); the milliseconds are dropped. `undefined` outside years 0000–9999.
 */
export function formatGmt(ms) {
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return undefined;
  const text = date.toISOString();
  return /^\d{4}-/.test(text) ? text.slice(0, 19) : undefined;
}
