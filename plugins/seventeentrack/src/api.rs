//! The 17TRACK API v2.2: request bodies, the answer envelope and its error codes.
//!
//! Every endpoint is a `POST` of JSON answered `{"code": 0, "data": {...}}`. Batch endpoints
//! (`register`, `gettrackinfo`) take a list of `{number, carrier}` and answer with
//! `data.accepted[]` and `data.rejected[]` (`{number, error: {code, message}}`); a failure of the
//! whole call has a non-zero `code` and `data.errors[]`. The codes are listed in 17TRACK's "Error
//! Codes and Troubleshooting" article (see README.md).

use daifa_plugin_sdk::PluginError;
use daifa_plugin_sdk::json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// "Tracking number {0} is already registered": registering twice is not an error.
pub const ALREADY_REGISTERED: i64 = -18019901;
/// "Tracking number {0} is not registered yet."
pub const NOT_REGISTERED: i64 = -18019902;
/// "No tracking information at the moment."
pub const NO_TRACKING_INFO: i64 = -18019909;

/// The most numbers 17TRACK takes in one request (`-18010014` beyond).
pub const MAX_NUMBERS: usize = 40;

/// One number of a batch request. `carrier` is left out when unknown: 17TRACK then detects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackItem {
    pub number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<u32>,
}

/// The answer of a batch endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Batch<A> {
    #[serde(default = "Vec::new")]
    pub accepted: Vec<A>,
    #[serde(default)]
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Rejected {
    #[serde(default)]
    pub number: String,
    #[serde(default)]
    pub carrier: Value,
    #[serde(default)]
    pub error: ApiError,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    data: Value,
}

#[derive(Debug, Default, Deserialize)]
struct Failure {
    #[serde(default)]
    errors: Vec<ApiError>,
}

/// The `data` of a 2xx answer of `endpoint`, or the error its envelope reports.
pub fn open<T: DeserializeOwned>(endpoint: &str, body: &[u8]) -> Result<T, PluginError> {
    let envelope: Envelope = json::from_response(body)?;
    if envelope.code != 0 {
        let failure: Failure = serde_json::from_value(envelope.data).unwrap_or_default();
        let message = failure.errors.first().and_then(|e| e.message.as_deref());
        return Err(code_error(
            &format!("17track {endpoint} failed"),
            envelope.code,
            message,
        ));
    }
    serde_json::from_value(envelope.data)
        .map_err(|e| PluginError::permanent(format!("unexpected 17track {endpoint} answer: {e}")))
}

/// Whether retrying later may succeed.
pub fn is_transient(code: i64) -> bool {
    matches!(
        code,
        // Internal service error; daily limit; quota used up (the operator tops it up); the
        // carrier does not take registrations for now.
        -18010003 | -18019907 | -18019908 | -18019911
    ) || code == 429
        || (500..600).contains(&code)
}

/// What a code means, in this plugin's words (17TRACK's own messages end with a full stop and
/// carry placeholders).
fn describe(code: i64) -> Option<&'static str> {
    Some(match code {
        -18010001 => "the caller's ip address is not in the account's whitelist",
        -18010002 => "the api key is not valid",
        -18010003 => "17track had an internal error",
        -18010004 => "the 17track account is disabled",
        -18010005 => "unauthorized access",
        -18010011..=-18010010 | -18010013 => "the submitted data is not valid",
        -18010012 => "the tracking number's format is not valid",
        -18010014 => "more than 40 tracking numbers in one request",
        -18010020..=-18010018 => "the carrier needs more data (postal code, phone number)",
        ALREADY_REGISTERED => "the tracking number is already registered",
        NOT_REGISTERED => "the tracking number is not registered",
        -18019903 => "the carrier cannot be detected; give a known carrier",
        -18019907 => "the daily tracking limit of the account is reached",
        -18019908 => "the tracking quota of the account is used up",
        NO_TRACKING_INFO => "no tracking information yet",
        -18019910 => "the carrier key is not valid",
        -18019911 => "the carrier does not accept registrations for now",
        429 => "too many requests",
        _ => return None,
    })
}

/// The plugin error of a 17TRACK code: `transient` or `permanent` by [`is_transient`].
pub fn code_error(context: &str, code: i64, message: Option<&str>) -> PluginError {
    let reason = describe(code).map(str::to_string).unwrap_or_else(|| {
        message
            .map(|m| m.trim().trim_end_matches('.').to_string())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "no reason given".to_string())
    });
    let message = format!("{context}: {reason} (code {code})");
    if is_transient(code) {
        PluginError::transient(message)
    } else {
        PluginError::permanent(message)
    }
}

/// The same number as 17TRACK may echo it: case and spaces do not count.
pub fn same_number(a: &str, b: &str) -> bool {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    clean(a) == clean(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn omits_an_unknown_carrier() {
        let items = [
            TrackItem {
                number: "RR123456789CN".into(),
                carrier: Some(3011),
            },
            TrackItem {
                number: "YT2412345678901234".into(),
                carrier: None,
            },
        ];
        assert_eq!(
            serde_json::to_value(items).unwrap(),
            json!([{ "number": "RR123456789CN", "carrier": 3011 }, { "number": "YT2412345678901234" }])
        );
    }

    #[test]
    fn a_failed_envelope_is_an_error_by_its_code() {
        let body = br#"{"code":-18010002,"data":{"errors":[{"code":-18010002,"message":"Invalid security key."}]}}"#;
        let err = open::<Value>("register", body).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert_eq!(
            err.message(),
            "17track register failed: the api key is not valid (code -18010002)"
        );

        let body =
            br#"{"code":429,"data":{"errors":[{"code":429,"message":"Too many requests."}]}}"#;
        let err = open::<Value>("gettrackinfo", body).unwrap_err();
        assert_eq!(err.kind(), "transient");

        // An unknown code keeps 17TRACK's message, without its full stop.
        let body = br#"{"code":-18099999,"data":{"errors":[{"code":-18099999,"message":"Something new."}]}}"#;
        let err = open::<Value>("getquota", body).unwrap_err();
        assert_eq!(
            err.message(),
            "17track getquota failed: Something new (code -18099999)"
        );
    }

    #[test]
    fn a_body_that_is_not_17track_json_is_permanent() {
        let err = open::<Value>("register", b"<html>").unwrap_err();
        assert_eq!(err.kind(), "permanent");
    }

    #[test]
    fn classifies_codes() {
        for code in [-18010003, -18019907, -18019908, -18019911, 429, 503] {
            assert!(is_transient(code), "{code}");
        }
        for code in [
            -18010001, -18010002, -18010012, -18019902, -18019903, -18019910, 0,
        ] {
            assert!(!is_transient(code), "{code}");
        }
    }

    #[test]
    fn compares_numbers_as_17track_does() {
        assert!(same_number("rr123456789cn", "RR123456789CN"));
        assert!(same_number(" RR 1234 ", "RR1234"));
        assert!(!same_number("RR1234", "RR1235"));
    }
}
