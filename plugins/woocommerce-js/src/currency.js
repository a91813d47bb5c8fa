// ISO 4217 codes and the number of decimal places of their minor unit: the same table the Rust
// plugin SDK uses (the `iso_currency` crate, 0.7.1). Codes without a minor unit (XAU, XDR, ...)
// count whole units, as there.

const TWO_DECIMALS =
  'AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD ' +
  'CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP ' +
  'GEL GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK ' +
  'LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK ' +
  'NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD ' +
  'SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XAD XCD ' +
  'XCG YER ZAR ZMW ZWG ZWL';
const ZERO_DECIMALS =
  'BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF ' +
  // No minor unit at all: precious metals, bond units, SDR, test and "no currency" codes.
  'XAG XAU XBA XBB XBC XBD XDR XPD XPT XSU XTS XUA XXX';
const THREE_DECIMALS = 'BHD IQD JOD KWD LYD OMR TND';
const FOUR_DECIMALS = 'CLF UYW';

const EXPONENTS = new Map();
for (const [codes, exponent] of [
  [TWO_DECIMALS, 2],
  [ZERO_DECIMALS, 0],
  [THREE_DECIMALS, 3],
  [FOUR_DECIMALS, 4],
]) {
  for (const code of codes.split(' ')) EXPONENTS.set(code, exponent);
}

/** The number of decimal places of a currency's minor unit, or `undefined` for an unknown code. */
export function exponent(code) {
  return EXPONENTS.get(code);
}
