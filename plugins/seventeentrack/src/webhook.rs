//! 17TRACK pushes (webhooks, API v2.2): signature, delivery id, events.
//!
//! 17TRACK POSTs `{"event": "...", "data": {...}}` to the URL set in its API dashboard, with a
//! header `sign` = lower-case hex SHA-256 of `raw body + "/" + api key` (a plain hash of the two,
//! not an HMAC). Events: `TRACKING_UPDATED` (`data` holds `number`, `carrier` and `track_info`,
//! the object `gettrackinfo` returns) and `TRACKING_STOPPED` (`number`, `carrier`: 17TRACK no
//! longer follows the number).

use daifa_plugin_sdk::PluginError;
use daifa_plugin_sdk::carrier::CarrierInbound;
use daifa_plugin_sdk::json;
use daifa_plugin_sdk::signature;
use daifa_plugin_sdk::types::InboundRequest;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::track::{self, TrackInfo};

/// The header 17TRACK signs pushes in.
pub const SIGN: &str = "sign";

#[derive(Debug, Deserialize)]
struct Push {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    data: Option<PushData>,
}

#[derive(Debug, Deserialize)]
struct PushData {
    #[serde(default)]
    number: Option<String>,
    #[serde(default)]
    carrier: Value,
    #[serde(default)]
    track_info: Option<TrackInfo>,
}

/// `hex(sha256(body + "/" + api_key))`: the value of `sign`.
pub fn sign(api_key: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(body);
    hash.update(b"/");
    hash.update(api_key.as_bytes());
    hex::encode(hash.finalize())
}

/// Checks `sign` on the raw body, in constant time.
pub fn verify(api_key: &str, request: &InboundRequest) -> Result<(), PluginError> {
    // Anyone can hash a body with an empty key.
    if api_key.is_empty() {
        return Err(PluginError::permanent(
            "connection secret `api_key` is empty",
        ));
    }
    let given = signature::header(&request.headers, SIGN)
        .ok_or_else(|| PluginError::bad_signature("header `sign` is missing"))?;
    let expected = sign(api_key, &request.body);
    if constant_time_eq(
        given.trim().to_ascii_lowercase().as_bytes(),
        expected.as_bytes(),
    ) {
        Ok(())
    } else {
        Err(PluginError::bad_signature(
            "17track push refused: `sign` does not match the body and the api key",
        ))
    }
}

/// Equality whose time does not depend on where the inputs differ (only on their lengths, which
/// are public: a SHA-256 in hex is 64 characters).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The delivery id of a push. 17TRACK sends none, and retries a push it could not deliver (10,
/// 30 and 60 minutes later) with the same body: the body's hash identifies it. Two pushes with
/// the same bytes say the same thing, so dropping the second loses nothing.
pub fn delivery_id(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// Verifies a push on its raw body, then turns it into tracking updates.
pub fn handle(api_key: &str, request: &InboundRequest) -> Result<CarrierInbound, PluginError> {
    verify(api_key, request)?;
    let push: Push = json::from_slice(&request.body)?;
    let event = push
        .event
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .ok_or_else(|| PluginError::bad_payload("field `event` is missing"))?;
    let updates = if event.eq_ignore_ascii_case("TRACKING_UPDATED") {
        let data = push
            .data
            .ok_or_else(|| PluginError::bad_payload("field `data` is missing"))?;
        let number = data
            .number
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| PluginError::bad_payload("field `data.number` is missing"))?;
        let info = data
            .track_info
            .ok_or_else(|| PluginError::bad_payload("field `data.track_info` is missing"))?;
        vec![track::update(&number, &data.carrier, &info)]
    } else {
        // `TRACKING_STOPPED` carries no tracking: 17TRACK stops following a number that was
        // delivered or silent for long, or that someone stopped. What it pushed last stands
        // (an `Expired` parcel was pushed as such); an update here would be news of "now"
        // without news. Other events are acknowledged so that 17TRACK does not retry them.
        Vec::new()
    };
    Ok(CarrierInbound {
        delivery_id: Some(delivery_id(&request.body)),
        topic: Some(event),
        updates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use daifa_plugin_sdk::types::{HttpHeader, TrackingEvent, TrackingStatus, TrackingUpdate};

    const FIXTURE: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhook-TRACKING_UPDATED.v2.json"
    ));
    const KEY: &str = "17track-test-key";

    fn push(body: &[u8], sign: Option<&str>) -> InboundRequest {
        let mut headers = vec![HttpHeader {
            name: "content-type".into(),
            value: "application/json".into(),
        }];
        if let Some(sign) = sign {
            headers.push(HttpHeader {
                name: SIGN.into(),
                value: sign.into(),
            });
        }
        InboundRequest {
            method: "POST".into(),
            path: "/hooks/17track".into(),
            headers,
            body: body.to_vec(),
        }
    }

    fn signed(body: &[u8]) -> InboundRequest {
        push(body, Some(&sign(KEY, body)))
    }

    #[test]
    fn signs_as_a_plain_hash_of_body_slash_key() {
        // `printf '{}/k' | sha256sum`
        assert_eq!(
            sign("k", b"{}"),
            "b46c2b8292d50affff807248811c13b448cb2b46949460bc740284221257a064"
        );
    }

    #[test]
    fn the_fixture_signed_becomes_one_update() {
        let inbound = handle(KEY, &signed(FIXTURE)).unwrap();
        assert_eq!(inbound.topic.as_deref(), Some("TRACKING_UPDATED"));
        assert_eq!(inbound.delivery_id, Some(delivery_id(FIXTURE)));
        let event = |status, description: &str, location: &str, occurred_at| TrackingEvent {
            status,
            detail: None,
            description: description.into(),
            location: Some(location.into()),
            occurred_at,
        };
        let expected = TrackingUpdate {
            tracking_number: "1Z2617V10397725789".into(),
            // `data.carrier`, as the fixture has it (its provider is UPS, 100002).
            carrier_code: Some("3011".into()),
            status: TrackingStatus::Delivered,
            detail: None,
            events: vec![
                event(
                    TrackingStatus::InfoReceived,
                    "Shipper created a label, UPS has not received the package yet.",
                    "US",
                    1_648_532_588_000,
                ),
                event(
                    TrackingStatus::InTransit,
                    "Origin Scan",
                    "Ontario, CA, US",
                    1_648_769_807_000,
                ),
                event(
                    TrackingStatus::InTransit,
                    "Arrived at Facility",
                    "Anderson, CA, US",
                    1_648_890_900_000,
                ),
                event(
                    TrackingStatus::OutForDelivery,
                    "Out For Delivery Today",
                    "Crescent City, CA, US",
                    1_649_087_166_000,
                ),
                event(
                    TrackingStatus::Delivered,
                    "DELIVERED",
                    "GASQUET, CA, US",
                    1_649_115_322_000,
                ),
            ],
            // `estimated_delivery_date` is all null in the fixture.
            estimated_delivery: None,
            delivered_at: Some(1_649_115_322_000),
        };
        assert_eq!(inbound.updates, vec![expected]);
    }

    #[test]
    fn a_wrong_or_missing_signature_is_refused_before_parsing() {
        let err = handle("another-key", &signed(FIXTURE)).unwrap_err();
        assert_eq!(err.kind(), "bad-signature");
        let err = handle(KEY, &push(FIXTURE, None)).unwrap_err();
        assert_eq!(err.kind(), "bad-signature");
        assert_eq!(err.message(), "header `sign` is missing");
        let err = handle(KEY, &push(FIXTURE, Some(""))).unwrap_err();
        assert_eq!(err.kind(), "bad-signature");
        // A body changed after signing (here re-serialized JSON) no longer matches.
        let reserialized =
            serde_json::to_vec(&serde_json::from_slice::<Value>(FIXTURE).unwrap()).unwrap();
        let mut request = signed(FIXTURE);
        request.body = reserialized;
        assert_eq!(handle(KEY, &request).unwrap_err().kind(), "bad-signature");
        // Not even garbage is parsed when unsigned.
        assert_eq!(
            handle(KEY, &push(b"not json", Some("00")))
                .unwrap_err()
                .kind(),
            "bad-signature"
        );
    }

    #[test]
    fn an_upper_case_signature_is_accepted() {
        let request = push(FIXTURE, Some(&sign(KEY, FIXTURE).to_ascii_uppercase()));
        assert!(verify(KEY, &request).is_ok());
    }

    #[test]
    fn an_empty_key_is_a_configuration_error() {
        let err = verify("", &signed(FIXTURE)).unwrap_err();
        assert_eq!(err.kind(), "permanent");
    }

    #[test]
    fn tracking_stopped_is_acknowledged_without_updates() {
        let body = br#"{"event":"TRACKING_STOPPED","data":{"number":"RR123456789CN","carrier":3011,"param":null,"tag":""}}"#;
        let inbound = handle(KEY, &signed(body)).unwrap();
        assert_eq!(inbound.topic.as_deref(), Some("TRACKING_STOPPED"));
        assert!(inbound.updates.is_empty());
        assert_eq!(inbound.delivery_id, Some(delivery_id(body)));
    }

    #[test]
    fn other_events_are_acknowledged() {
        let body = br#"{"event":"AWB_UPDATED","data":{}}"#;
        let inbound = handle(KEY, &signed(body)).unwrap();
        assert_eq!(inbound.topic.as_deref(), Some("AWB_UPDATED"));
        assert!(inbound.updates.is_empty());
    }

    #[test]
    fn authentic_but_unusable_bodies_are_bad_payloads() {
        for body in [
            &b"[1,2]"[..],
            br#"{"data":{}}"#,
            br#"{"event":"TRACKING_UPDATED"}"#,
            br#"{"event":"TRACKING_UPDATED","data":{"number":"","track_info":{}}}"#,
            br#"{"event":"TRACKING_UPDATED","data":{"number":"RR1"}}"#,
        ] {
            let err = handle(KEY, &signed(body)).unwrap_err();
            assert_eq!(
                err.kind(),
                "bad-payload",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn delivery_ids_follow_the_bytes() {
        assert_eq!(delivery_id(FIXTURE), delivery_id(FIXTURE));
        assert_ne!(delivery_id(FIXTURE), delivery_id(b"{}"));
        assert_eq!(
            delivery_id(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
