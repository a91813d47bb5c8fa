//! 17TRACK's `track_info` (the same object in `gettrackinfo` answers and `TRACKING_UPDATED`
//! pushes) → a canonical `tracking-update`.
//!
//! Every field is optional here: 17TRACK fills what the carrier gave and sends `null` for the
//! rest (see the fixture), and a missing field must not cost the whole update.

use daifa_plugin_sdk::time::parse_rfc3339;
use daifa_plugin_sdk::types::{TimestampMs, TrackingEvent, TrackingStatus, TrackingUpdate};
use serde::Deserialize;
use serde_json::Value;

use crate::status;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TrackInfo {
    #[serde(default)]
    pub latest_status: Option<LatestStatus>,
    #[serde(default)]
    pub latest_event: Option<Event>,
    #[serde(default)]
    pub time_metrics: Option<TimeMetrics>,
    #[serde(default)]
    pub milestone: Option<Vec<Milestone>>,
    #[serde(default)]
    pub tracking: Option<Tracking>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LatestStatus {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub sub_status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Event {
    #[serde(default)]
    pub time_iso: Option<String>,
    #[serde(default)]
    pub time_utc: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub sub_status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TimeMetrics {
    #[serde(default)]
    pub estimated_delivery_date: Option<EstimatedDelivery>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EstimatedDelivery {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Milestone {
    #[serde(default)]
    pub key_stage: Option<String>,
    #[serde(default)]
    pub time_iso: Option<String>,
    #[serde(default)]
    pub time_utc: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Tracking {
    #[serde(default)]
    pub providers: Option<Vec<Provider>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Provider {
    #[serde(default)]
    pub events: Option<Vec<Event>>,
}

/// 17TRACK's carrier key (`data.carrier`, `accepted[].carrier`) as the canonical carrier code:
/// its decimal text ("3011"). 0 and `null` mean 17TRACK has not identified the carrier.
pub fn carrier_key(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n.as_i64().filter(|k| *k > 0).map(|k| k.to_string()),
        Value::String(s) => Some(s.trim())
            .filter(|s| !s.is_empty() && *s != "0")
            .map(str::to_string),
        _ => None,
    }
}

/// The update of one parcel: `number` as 17TRACK (or the gateway) names it, `carrier` its
/// `carrier` field.
pub fn update(number: &str, carrier: &Value, info: &TrackInfo) -> TrackingUpdate {
    let latest = info.latest_status.clone().unwrap_or_default();
    let (status, detail) = status::latest(latest.status.as_deref(), latest.sub_status.as_deref());
    let events = events(info, (status, detail));
    let delivered_at = (status == TrackingStatus::Delivered)
        .then(|| delivered_at(info, &events))
        .flatten();
    TrackingUpdate {
        tracking_number: number.to_string(),
        carrier_code: carrier_key(carrier),
        status,
        detail,
        events,
        estimated_delivery: estimated_delivery(info),
        delivered_at,
    }
}

/// The events of all providers (a parcel handed from China Post to USPS has two), oldest first.
/// 17TRACK lists each provider's events newest first. An event without a time cannot be placed
/// (nor kept once by the gateway, which identifies events by time and text) and is left out.
fn events(info: &TrackInfo, latest: status::Mapped) -> Vec<TrackingEvent> {
    let providers = info
        .tracking
        .as_ref()
        .and_then(|t| t.providers.as_deref())
        .unwrap_or_default();
    let mut timed: Vec<(&Event, TimestampMs)> = providers
        .iter()
        .flat_map(|p| p.events.as_deref().unwrap_or_default().iter().rev())
        .filter_map(|e| event_time(e.time_utc.as_deref(), e.time_iso.as_deref()).map(|t| (e, t)))
        .collect();
    // Stable: events of one instant keep 17TRACK's order, reversed to oldest first.
    timed.sort_by_key(|(_, t)| *t);
    let last = timed.len().saturating_sub(1);
    timed
        .into_iter()
        .enumerate()
        .map(|(i, (e, occurred_at))| {
            // Most scans carry no stage. They are in transit, except the newest one, from which
            // 17TRACK derived the parcel's status.
            let (status, detail) = status::event(e.stage.as_deref(), e.sub_status.as_deref())
                .unwrap_or(if i == last {
                    latest
                } else {
                    (TrackingStatus::InTransit, None)
                });
            TrackingEvent {
                status,
                detail,
                description: e.description.clone().unwrap_or_default(),
                location: e
                    .location
                    .as_deref()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
                occurred_at,
            }
        })
        .collect()
}

/// When the parcel was delivered: the `Delivered` milestone, else the latest event, else the
/// newest event listed.
fn delivered_at(info: &TrackInfo, events: &[TrackingEvent]) -> Option<TimestampMs> {
    let milestone = info
        .milestone
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|m| m.key_stage.as_deref() == Some("Delivered"))
        .find_map(|m| event_time(m.time_utc.as_deref(), m.time_iso.as_deref()));
    milestone
        .or_else(|| {
            info.latest_event
                .as_ref()
                .and_then(|e| event_time(e.time_utc.as_deref(), e.time_iso.as_deref()))
        })
        .or_else(|| events.last().map(|e| e.occurred_at))
}

/// The end of 17TRACK's estimated delivery window (`to`, else `from`): the gateway reads it as
/// the date after which the parcel is late.
fn estimated_delivery(info: &TrackInfo) -> Option<TimestampMs> {
    let window = info
        .time_metrics
        .as_ref()
        .and_then(|m| m.estimated_delivery_date.as_ref())?;
    [window.to.as_deref(), window.from.as_deref()]
        .into_iter()
        .flatten()
        .find_map(timestamp)
}

/// `time_utc`, else `time_iso`.
fn event_time(utc: Option<&str>, iso: Option<&str>) -> Option<TimestampMs> {
    [utc, iso].into_iter().flatten().find_map(timestamp)
}

/// An RFC 3339 time; also a date-time without offset (taken as UTC) and a bare date (its
/// midnight UTC), which carriers' estimates sometimes are. Anything else is no time.
fn timestamp(text: &str) -> Option<TimestampMs> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    parse_rfc3339(text)
        .or_else(|_| parse_rfc3339(&format!("{text}Z")))
        .or_else(|_| parse_rfc3339(&format!("{text}T00:00:00Z")))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use daifa_plugin_sdk::types::TrackingDetail;
    use serde_json::json;

    fn info(value: Value) -> TrackInfo {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn parses_the_times_17track_sends() {
        assert_eq!(timestamp("2022-04-04T23:35:22Z"), Some(1_649_115_322_000));
        assert_eq!(
            timestamp("2022-04-04T16:35:22-07:00"),
            Some(1_649_115_322_000)
        );
        assert_eq!(timestamp("2022-04-04T23:35:22"), Some(1_649_115_322_000));
        assert_eq!(timestamp("2022-04-05"), Some(1_649_116_800_000));
        assert_eq!(timestamp("soon"), None);
        assert_eq!(timestamp(""), None);
    }

    #[test]
    fn carrier_keys_become_text() {
        assert_eq!(carrier_key(&json!(3011)), Some("3011".into()));
        assert_eq!(carrier_key(&json!("100002")), Some("100002".into()));
        assert_eq!(carrier_key(&json!(0)), None);
        assert_eq!(carrier_key(&json!(null)), None);
    }

    #[test]
    fn an_empty_track_info_is_not_found() {
        let update = update("RR123456789CN", &json!(null), &info(json!({})));
        assert_eq!(update.status, TrackingStatus::NotFound);
        assert_eq!(update.detail, None);
        assert!(update.events.is_empty());
        assert_eq!(update.carrier_code, None);
        assert_eq!(update.estimated_delivery, None);
        assert_eq!(update.delivered_at, None);
    }

    #[test]
    fn merges_providers_oldest_first_and_keeps_timeless_events_out() {
        let info = info(json!({
            "latest_status": { "status": "Exception", "sub_status": "Exception_Returning" },
            "time_metrics": { "estimated_delivery_date": { "source": "Official", "from": "2024-03-10", "to": null } },
            "tracking": { "providers": [
                { "provider": { "key": 21051 }, "events": [
                    { "time_utc": "2024-03-08T10:00:00Z", "description": "Return to sender", "location": " ", "stage": null },
                    { "time_utc": "2024-03-06T10:00:00Z", "description": "Arrived at USPS facility", "location": "LOS ANGELES, CA" },
                    { "time_utc": null, "time_iso": null, "description": "no time" }
                ] },
                { "provider": { "key": 3011 }, "events": [
                    { "time_iso": "2024-03-02T18:00:00+08:00", "description": "离开处理中心", "stage": "Departure" },
                    { "time_utc": "2024-03-01T02:00:00Z", "description": "收寄", "sub_status": "InTransit_PickedUp" }
                ] }
            ] }
        }));
        let update = update("RR123456789CN", &json!(3011), &info);
        assert_eq!(update.carrier_code.as_deref(), Some("3011"));
        assert_eq!(update.status, TrackingStatus::Exception);
        assert_eq!(update.detail, Some(TrackingDetail::ReturningToSender));
        assert_eq!(update.delivered_at, None);
        assert_eq!(update.estimated_delivery, Some(1_710_028_800_000));
        let summary: Vec<(&str, TrackingStatus, Option<TrackingDetail>, Option<&str>)> = update
            .events
            .iter()
            .map(|e| {
                (
                    e.description.as_str(),
                    e.status,
                    e.detail,
                    e.location.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("收寄", TrackingStatus::InTransit, None, None),
                ("离开处理中心", TrackingStatus::InTransit, None, None),
                (
                    "Arrived at USPS facility",
                    TrackingStatus::InTransit,
                    None,
                    Some("LOS ANGELES, CA")
                ),
                (
                    "Return to sender",
                    TrackingStatus::Exception,
                    Some(TrackingDetail::ReturningToSender),
                    None
                ),
            ]
        );
        assert_eq!(update.events[1].occurred_at, 1_709_373_600_000);
    }

    #[test]
    fn delivered_at_falls_back_to_the_latest_event() {
        let info = info(json!({
            "latest_status": { "status": "Delivered", "sub_status": "Delivered_Other" },
            "latest_event": { "time_utc": "2024-03-09T15:00:00Z", "description": "Delivered" },
            "milestone": [ { "key_stage": "Delivered", "time_utc": null, "time_iso": null } ]
        }));
        let update = update("9400100000000000000000", &json!(21051), &info);
        assert_eq!(update.status, TrackingStatus::Delivered);
        assert_eq!(update.delivered_at, Some(1_709_996_400_000));
    }
}
