//! Amounts in minor units (what the canonical schema carries) and in major units (what people
//! and rates use), through each currency's minor unit (ISO 4217: 2 for USD, 0 for JPY).

/// The decimals of `currency`'s minor unit (2 for USD, 0 for JPY); none for an unknown code.
fn exponent(currency: &str) -> Option<u32> {
    let c = iso_currency::Currency::from_code(currency)?;
    Some(u32::from(c.exponent().unwrap_or(0)))
}

/// The minor units of `currency` in one major unit (100 for USD, 1 for JPY).
fn scale(currency: &str) -> Option<f64> {
    Some(10f64.powi(exponent(currency)? as i32))
}

/// An amount in minor units as major units.
pub fn to_major(minor: i64, currency: &str) -> Option<f64> {
    Some(minor as f64 / scale(currency)?)
}

/// Major units as minor units, rounded to the nearest.
pub fn to_minor(major: f64, currency: &str) -> Option<i64> {
    Some((major * scale(currency)?).round() as i64)
}

/// The largest amount the gateway takes from people, in minor units: 10^15 (ten trillion
/// dollars), where an `f64` still counts every cent exactly.
pub const MAX_MINOR: i64 = 1_000_000_000_000_000;

/// `minor` if `currency` is an ISO 4217 currency and `minor` within ±[`MAX_MINOR`].
pub fn bounded(minor: i64, currency: &str) -> Result<i64, String> {
    if exponent(currency).is_none() {
        return Err(format!("`{currency}` is not an ISO 4217 currency"));
    }
    if minor.unsigned_abs() > MAX_MINOR as u64 {
        return Err(format!(
            "{minor} minor units of {currency} is not an amount the gateway takes (at most {MAX_MINOR})"
        ));
    }
    Ok(minor)
}

/// An amount written by a person in major units (`12.50`, a CSV cell) as minor units, exactly:
/// no rounding, so more decimals than the currency has (`12.345` USD, `1.5` JPY) is an error, as
/// is anything but digits with one optional point, or more than [`MAX_MINOR`].
pub fn parse_major(text: &str, currency: &str) -> Result<i64, String> {
    let exponent = exponent(currency)
        .ok_or_else(|| format!("`{currency}` is not an ISO 4217 currency"))?
        as usize;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return Err(format!(
            "`{text}` is not an amount (digits with one optional point)"
        ));
    }
    if fraction.len() > exponent {
        return Err(format!(
            "`{text}` has more decimals than {currency}'s {exponent}"
        ));
    }
    let too_large = || {
        format!(
            "`{text}` {currency} is not an amount the gateway takes (at most {})",
            format_major(MAX_MINOR, currency).unwrap_or_default()
        )
    };
    let mut minor: i64 = 0;
    let padded = format!("{fraction:0<exponent$}");
    for b in whole.bytes().chain(padded.bytes()) {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .filter(|m| *m <= MAX_MINOR)
            .ok_or_else(too_large)?;
    }
    Ok(minor)
}

/// Minor units as a person reads them in major units, exactly (`1250` USD → `12.50`).
pub fn format_major(minor: i64, currency: &str) -> Option<String> {
    let exponent = exponent(currency)?;
    let unit = 10u64.pow(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    Some(if exponent == 0 {
        format!("{sign}{abs}")
    } else {
        format!(
            "{sign}{}.{:0width$}",
            abs / unit,
            abs % unit,
            width = exponent as usize
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_typed_by_people_are_exact_and_bounded() {
        assert_eq!(parse_major("12.5", "USD"), Ok(1250));
        assert_eq!(parse_major("12.50", "USD"), Ok(1250));
        assert_eq!(parse_major("12", "USD"), Ok(1200));
        assert_eq!(parse_major(".5", "USD"), Ok(50));
        assert_eq!(parse_major("600", "JPY"), Ok(600));
        assert_eq!(parse_major("1.005", "KWD"), Ok(1005), "three decimals");
        for (text, currency, why) in [
            ("12.345", "USD", "more decimals than USD's 2"),
            ("1.5", "JPY", "more decimals than JPY's 0"),
            ("-1", "USD", "not an amount"),
            ("1e308", "USD", "not an amount"),
            ("NaN", "USD", "not an amount"),
            ("", "USD", "not an amount"),
            (".", "USD", "not an amount"),
            ("1.2.3", "USD", "not an amount"),
            (
                "99999999999999999999999",
                "USD",
                "at most 10000000000000.00",
            ),
            ("10000000000000.01", "USD", "at most"),
            ("1", "XYZ", "ISO 4217"),
        ] {
            let e = parse_major(text, currency).unwrap_err();
            assert!(e.contains(why), "{text} {currency}: {e}");
        }
        assert_eq!(parse_major("10000000000000", "USD"), Ok(MAX_MINOR));

        assert_eq!(format_major(1250, "USD").as_deref(), Some("12.50"));
        assert_eq!(format_major(5, "USD").as_deref(), Some("0.05"));
        assert_eq!(format_major(-125, "EUR").as_deref(), Some("-1.25"));
        assert_eq!(format_major(600, "JPY").as_deref(), Some("600"));
        for minor in [0, 1, 99, 100, 1250, 123_456_789, MAX_MINOR] {
            let text = format_major(minor, "USD").unwrap();
            assert_eq!(parse_major(&text, "USD"), Ok(minor), "{text}");
        }

        assert_eq!(bounded(-MAX_MINOR, "EUR"), Ok(-MAX_MINOR));
        assert!(
            bounded(MAX_MINOR + 1, "USD")
                .unwrap_err()
                .contains("not an amount")
        );
        assert!(bounded(i64::MIN, "USD").is_err());
        assert!(bounded(1, "usd").unwrap_err().contains("ISO 4217"));
    }
}
