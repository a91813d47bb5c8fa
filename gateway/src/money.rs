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
