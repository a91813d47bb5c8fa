// Small text helpers shared by the translation modules.

/** A string with content, or `undefined`: WooCommerce sends absent text as "" or `null` alike. */
export function nonBlank(value) {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

/** "John Doe" from a first and a last name, either of which may be blank. */
export function fullName(first, last) {
  const parts = [first, last].map(nonBlank).filter(Boolean).map((p) => p.trim());
  return parts.length > 0 ? parts.join(' ') : undefined;
}

const NAMED_ENTITIES = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0',
  ndash: '\u2013', mdash: '\u2014', hellip: '\u2026', times: '\u00d7',
  lsquo: '\u2018', rsquo: '\u2019', sbquo: '\u201a', ldquo: '\u201c', rdquo: '\u201d',
  bdquo: '\u201e', laquo: '\u00ab', raquo: '\u00bb', copy: '\u00a9', reg: '\u00ae',
  trade: '\u2122', deg: '\u00b0', prime: '\u2032', Prime: '\u2033', euro: '\u20ac',
  pound: '\u00a3', yen: '\u00a5', cent: '\u00a2', middot: '\u00b7', bull: '\u2022',
};

/**
 * Decodes the HTML character references WordPress leaves in product names ("Ship Your Idea
 * &ndash; Black" → "Ship Your Idea – Black"): numeric ones and the named ones `wptexturize` and
 * `esc_html` produce. Unknown names are kept as they are.
 */
export function decodeEntities(text) {
  return text.replace(/&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z]{2,8});/g, (whole, ref) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      const valid = code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff);
      return valid ? String.fromCodePoint(code) : whole;
    }
    return Object.hasOwn(NAMED_ENTITIES, ref) ? NAMED_ENTITIES[ref] : whole;
  });
}
