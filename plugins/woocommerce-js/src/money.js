// Money in minor units, from the decimal strings WooCommerce sends ("29.35"). Integer arithmetic
// only (BigInt): an amount never passes through a float.

import { badPayload } from './errors.js';
import { exponent } from './currency.js';

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?$/;

/** The canonical currency code (trimmed, upper case) and its exponent; unknown codes are refused. */
export function currency(code) {
  const normalized = typeof code === 'string' ? code.trim().toUpperCase() : '';
  const exp = exponent(normalized);
  if (exp === undefined) throw badPayload(`unknown currency \`${code}\``);
  return { code: normalized, exponent: exp };
}

/**
 * Parses a decimal amount ("199.00", "-5.5", "1000") into minor units (a BigInt). More decimals
 * than the currency has are refused rather than rounded ("1.005" USD), as the Rust SDK does.
 */
export function parseMinor(amount, cur) {
  const invalid = () => badPayload(`invalid amount \`${amount}\` for ${cur.code}`);
  if (typeof amount !== 'string') throw invalid();
  const match = DECIMAL.exec(amount.trim());
  if (!match) throw invalid();
  const [, sign, whole, fraction = ''] = match;
  if (whole === '' && fraction === '') throw invalid();
  const significant = fraction.replace(/0+$/, '');
  if (significant.length > cur.exponent) throw invalid();
  const digits = (whole || '0') + significant.padEnd(cur.exponent, '0');
  const minor = BigInt(digits);
  if (minor > MAX_S64) throw invalid();
  return sign === '-' ? -minor : minor;
}

const MAX_S64 = (1n << 63n) - 1n;

/** The WIT `money` record. */
export function money(amountMinor, cur) {
  if (amountMinor > MAX_S64 || amountMinor < -MAX_S64) {
    throw badPayload(`amount of ${amountMinor} ${cur.code} minor units is out of range`);
  }
  return { amountMinor, currency: cur.code };
}

/**
 * Minor units as the decimal string WooCommerce takes (`1800n` USD → `"18.00"`, `1000n` JPY →
 * `"1000"`), by the currency's exponent: the inverse of `parseMinor`.
 */
export function formatMinor(amountMinor, cur) {
  const negative = amountMinor < 0n;
  const digits = (negative ? -amountMinor : amountMinor).toString().padStart(cur.exponent + 1, '0');
  const whole = digits.slice(0, digits.length - cur.exponent);
  const fraction = cur.exponent > 0 ? `.${digits.slice(digits.length - cur.exponent)}` : '';
  return `${negative ? '-' : ''}${whole}${fraction}`;
}

/** `numerator / denominator` rounded to the nearest integer, halves away from zero. */
export function divideRounded(numerator, denominator) {
  const negative = numerator < 0n !== denominator < 0n;
  const n = numerator < 0n ? -numerator : numerator;
  const d = denominator < 0n ? -denominator : denominator;
  const quotient = (2n * n + d) / (2n * d);
  return negative ? -quotient : quotient;
}
