//! Timestamps: the canonical schema counts milliseconds since the Unix epoch.

use crate::types::{PluginError, TimestampMs};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 timestamp ("2021-12-31T19:00:00-05:00").
pub fn parse_rfc3339(value: &str) -> Result<TimestampMs, PluginError> {
    let t = OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|e| PluginError::bad_payload(format!("invalid timestamp `{value}`: {e}")))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as TimestampMs)
}

/// Formats a timestamp as RFC 3339 in UTC ("2021-12-31T19:00:00Z").
pub fn format_rfc3339(ms: TimestampMs) -> Result<String, PluginError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| PluginError::permanent(format!("timestamp {ms} is out of range")))
}

/// The host's clock.
pub fn now_ms() -> TimestampMs {
    crate::host::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_to_utc_milliseconds() {
        assert_eq!(
            parse_rfc3339("2021-12-31T19:00:00-05:00"),
            Ok(1_640_995_200_000)
        );
        assert_eq!(
            format_rfc3339(1_640_995_200_000).as_deref(),
            Ok("2022-01-01T00:00:00Z")
        );
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
