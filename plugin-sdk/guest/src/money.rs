//! Money in minor units, parsed from the decimal strings platforms send.

use crate::types::{Money, PluginError};
use iso_currency::Currency;

/// The number of decimal places of an ISO 4217 currency (2 for USD, 0 for JPY, 3 for KWD).
pub fn exponent(currency: &str) -> Result<u32, PluginError> {
    let c = Currency::from_code(&currency.to_ascii_uppercase())
        .ok_or_else(|| PluginError::bad_payload(format!("unknown currency `{currency}`")))?;
    // Currencies without minor units (XAU and the like) have no exponent; treat as 0.
    Ok(c.exponent().map(u32::from).unwrap_or(0))
}

/// Parses a decimal amount ("199.00", "-5.5", "1000") of `currency` into minor units.
/// More decimals than the currency has are refused rather than rounded.
pub fn parse(amount: &str, currency: &str) -> Result<Money, PluginError> {
    let exp = exponent(currency)?;
    let invalid = || PluginError::bad_payload(format!("invalid amount `{amount}` for {currency}"));
    let s = amount.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let frac_trimmed = frac_part.trim_end_matches('0');
    if frac_trimmed.len() > exp as usize {
        return Err(invalid());
    }
    let scale = 10i64.checked_pow(exp).ok_or_else(invalid)?;
    let whole: i64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| invalid())?
    };
    let mut frac: i64 = 0;
    for (i, b) in frac_trimmed.bytes().enumerate() {
        frac += i64::from(b - b'0') * 10i64.pow(exp - 1 - i as u32);
    }
    let minor = whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(invalid)?;
    Ok(Money {
        amount_minor: if negative { -minor } else { minor },
        currency: currency.to_ascii_uppercase(),
    })
}

/// Formats minor units as a decimal string ("199.00").
pub fn format(money: &Money) -> Result<String, PluginError> {
    let exp = exponent(&money.currency)?;
    let sign = if money.amount_minor < 0 { "-" } else { "" };
    let abs = money.amount_minor.unsigned_abs();
    if exp == 0 {
        return Ok(format!("{sign}{abs}"));
    }
    let scale = 10u64.pow(exp);
    Ok(format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = exp as usize
    ))
}

/// Zero of a currency.
pub fn zero(currency: &str) -> Money {
    Money {
        amount_minor: 0,
        currency: currency.to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_by_the_currency_exponent() {
        let cases = [
            ("199.00", "USD", Some(19_900)),
            ("199", "usd", Some(19_900)),
            ("0.5", "EUR", Some(50)),
            ("-5.25", "GBP", Some(-525)),
            ("1000", "JPY", Some(1_000)),
            ("1.500", "KWD", Some(1_500)),
            ("1.005", "USD", None),
            ("12a", "USD", None),
            ("", "USD", None),
            ("1.00", "XXY", None),
        ];
        for (input, currency, expected) in cases {
            let got = parse(input, currency).ok().map(|m| m.amount_minor);
            assert_eq!(got, expected, "{input} {currency}");
        }
    }

    #[test]
    fn formats_back() {
        for (minor, cur, text) in [
            (19_900, "USD", "199.00"),
            (-5, "EUR", "-0.05"),
            (1000, "JPY", "1000"),
        ] {
            assert_eq!(
                format(&Money {
                    amount_minor: minor,
                    currency: cur.into()
                })
                .as_deref(),
                Ok(text)
            );
        }
    }
}
