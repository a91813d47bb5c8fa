//! Amounts in minor units (what the canonical schema carries) and in major units (what people
//! and rates use), through each currency's minor unit (ISO 4217: 2 for USD, 0 for JPY).

/// The minor units of `currency` in one major unit (100 for USD, 1 for JPY).
fn scale(currency: &str) -> Option<f64> {
    let c = iso_currency::Currency::from_code(currency)?;
    Some(10f64.powi(i32::from(c.exponent().unwrap_or(0))))
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

/// An amount someone typed (an offer's cost, a discount), in major units, as minor units; or
/// what is wrong with it: an unknown currency, not a number, beyond [`MAX_MINOR`].
pub fn minor_of(major: f64, currency: &str) -> Result<i64, String> {
    let scale =
        scale(currency).ok_or_else(|| format!("`{currency}` is not an ISO 4217 currency"))?;
    let minor = (major * scale).round();
    if !minor.is_finite() || minor.abs() > MAX_MINOR as f64 {
        let shown = if major.abs() < 1e15 {
            major.to_string()
        } else {
            format!("{major:e}")
        };
        return Err(format!(
            "{shown} {currency} is not an amount the gateway takes (at most {} {currency})",
            MAX_MINOR as f64 / scale
        ));
    }
    Ok(minor as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_typed_by_people_are_bounded() {
        assert_eq!(minor_of(12.5, "USD"), Ok(1250));
        assert_eq!(minor_of(600.0, "JPY"), Ok(600));
        assert_eq!(minor_of(-1.25, "EUR"), Ok(-125));
        assert!(
            minor_of(1e308, "USD")
                .unwrap_err()
                .contains("not an amount")
        );
        assert!(minor_of(f64::NAN, "USD").is_err());
        assert!(minor_of(f64::INFINITY, "USD").is_err());
        assert!(minor_of(1e13 + 1.0, "USD").is_err(), "above 10^15 cents");
        assert_eq!(minor_of(1e13, "USD"), Ok(MAX_MINOR));
        assert!(minor_of(1.0, "XYZ").unwrap_err().contains("ISO 4217"));
    }
}
