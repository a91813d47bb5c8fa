//! The outbound operations (`register`, `fetch-tracking`, `check-connection`) over any transport:
//! the component sends through the host, tests through a scripted peer.

use daifa_plugin_sdk::PluginError;
use daifa_plugin_sdk::carrier::{Parcel, Registration};
use daifa_plugin_sdk::http::check_status;
use daifa_plugin_sdk::json;
use daifa_plugin_sdk::types::{HttpHeader, OutboundRequest, OutboundResponse, TrackingUpdate};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{self, Batch, MAX_NUMBERS, TrackItem};
use crate::carriers;
use crate::config::Config;
use crate::track::{self, TrackInfo};

/// Requests one `fetch-tracking` may make, and so `8 × 40 = 320` parcels. The manifest asks the
/// host for this many outbound requests per call; the gateway polls 40 parcels per call unless
/// configured otherwise (`polling.carrier_batch`), one request.
pub const MAX_BATCHES: usize = 8;

/// A 17TRACK client of one connection. `send` performs a request (any HTTP status is an answer;
/// a network failure is an error).
pub struct Client<S> {
    config: Config,
    api_key: String,
    send: S,
}

/// What `register` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub registration: Registration,
    /// 17TRACK already followed the number (`-18019901`).
    pub already: bool,
}

/// What `fetch-tracking` found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fetched {
    pub updates: Vec<TrackingUpdate>,
    /// Numbers left out and why, for the log.
    pub notes: Vec<String>,
    /// Why the call stopped before the last batch, when it did.
    pub stopped_early: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RegisterAccepted {
    #[serde(default)]
    number: String,
    #[serde(default)]
    carrier: Value,
}

#[derive(Debug, Deserialize)]
struct TrackAccepted {
    #[serde(default)]
    number: String,
    #[serde(default)]
    carrier: Value,
    #[serde(default)]
    track_info: Option<TrackInfo>,
}

#[derive(Debug, Default, Deserialize)]
struct Quota {
    #[serde(default)]
    quota_total: Value,
    #[serde(default)]
    quota_used: Value,
    #[serde(default)]
    quota_remain: Value,
}

impl<S> Client<S>
where
    S: FnMut(OutboundRequest) -> Result<OutboundResponse, PluginError>,
{
    pub fn new(config: Config, api_key: impl Into<String>, send: S) -> Self {
        Self {
            config,
            api_key: api_key.into(),
            send,
        }
    }

    /// POSTs `body` to an endpoint; the body of a 2xx answer. 408, 429 and 5xx are `transient`,
    /// other statuses `permanent` (401: a wrong key, an IP address not whitelisted).
    fn post<B: Serialize>(&mut self, endpoint: &str, body: &B) -> Result<Vec<u8>, PluginError> {
        let url = self.config.url(endpoint);
        let header = |name: &str, value: &str| HttpHeader {
            name: name.into(),
            value: value.into(),
        };
        let request = OutboundRequest {
            method: "POST".into(),
            url: url.clone(),
            headers: vec![
                header("content-type", "application/json"),
                header("accept", "application/json"),
                header("17token", &self.api_key),
            ],
            body: json::to_vec(body)?,
        };
        let response = (self.send)(request)?;
        Ok(check_status(&format!("POST {url}"), response)?.body)
    }

    /// Asks 17TRACK to follow a parcel. The carrier is sent when its name is known, else 17TRACK
    /// detects it; the carrier 17TRACK settled on is returned.
    pub fn register(&mut self, parcel: &Parcel) -> Result<Registered, PluginError> {
        let number = parcel.tracking_number.trim();
        if number.is_empty() {
            return Err(PluginError::permanent("the parcel has no tracking number"));
        }
        let item = TrackItem {
            number: number.to_string(),
            carrier: carriers::key_for(&parcel.carrier_code),
        };
        let answer = self.post("register", &[item])?;
        let batch: Batch<RegisterAccepted> = api::open("register", &answer)?;
        if let Some(accepted) = batch
            .accepted
            .iter()
            .find(|a| api::same_number(&a.number, number))
        {
            return Ok(Registered {
                registration: Registration {
                    carrier_code: track::carrier_key(&accepted.carrier),
                    external_id: None,
                },
                already: false,
            });
        }
        match batch
            .rejected
            .iter()
            .find(|r| api::same_number(&r.number, number))
        {
            Some(rejected) if rejected.error.code == api::ALREADY_REGISTERED => Ok(Registered {
                registration: Registration {
                    carrier_code: track::carrier_key(&rejected.carrier),
                    external_id: None,
                },
                already: true,
            }),
            Some(rejected) => Err(api::code_error(
                &format!("17track refused to register {number}"),
                rejected.error.code,
                rejected.error.message.as_deref(),
            )),
            None => Err(PluginError::permanent(format!(
                "17track's register answer does not mention {number}"
            ))),
        }
    }

    /// The tracking of parcels, 40 numbers per request. Numbers 17TRACK does not follow (or has
    /// no news of yet) are left out. Only the number is sent: 17TRACK may have registered the
    /// parcel under another carrier than the shipper named (it corrects wrong ones), and asking
    /// with the shipper's would find nothing.
    pub fn fetch_tracking(&mut self, parcels: &[Parcel]) -> Result<Fetched, PluginError> {
        // Each number once (two shipments may share a parcel: asking twice takes a place of the
        // 40 and brings nothing), remembered as the gateway wrote it.
        let mut numbers: Vec<(&str, &str)> = Vec::new();
        for parcel in parcels {
            let number = parcel.tracking_number.trim();
            if !number.is_empty() && !numbers.iter().any(|(n, _)| api::same_number(n, number)) {
                numbers.push((number, parcel.tracking_number.as_str()));
            }
        }
        let most = MAX_NUMBERS * MAX_BATCHES;
        if numbers.len() > most {
            return Err(PluginError::permanent(format!(
                "{} tracking numbers in one call; this plugin fetches at most {most} \
                 ({MAX_BATCHES} requests of {MAX_NUMBERS}): lower the gateway's polling.carrier_batch",
                numbers.len()
            )));
        }
        let mut fetched = Fetched::default();
        for (i, chunk) in numbers.chunks(MAX_NUMBERS).enumerate() {
            let items: Vec<TrackItem> = chunk
                .iter()
                .map(|(number, _)| TrackItem {
                    number: number.to_string(),
                    carrier: None,
                })
                .collect();
            let batch = self
                .post("gettrackinfo", &items)
                .and_then(|answer| api::open::<Batch<TrackAccepted>>("gettrackinfo", &answer));
            let batch = match batch {
                Ok(batch) => batch,
                // 17TRACK allows 3 requests a second: a later batch may be turned away. What was
                // fetched is kept; the rest comes with the next round of polling.
                Err(e) if i > 0 && e.kind() == "transient" => {
                    fetched.stopped_early = Some(format!(
                        "stopped after {} of {} numbers: {}",
                        i * MAX_NUMBERS,
                        numbers.len(),
                        e.message()
                    ));
                    break;
                }
                Err(e) => return Err(e),
            };
            for accepted in batch.accepted {
                let Some(info) = accepted.track_info else {
                    fetched
                        .notes
                        .push(format!("{}: 17track sent no track_info", accepted.number));
                    continue;
                };
                let number = chunk
                    .iter()
                    .find(|(n, _)| api::same_number(n, &accepted.number))
                    .map_or(accepted.number.as_str(), |(_, original)| original);
                fetched
                    .updates
                    .push(track::update(number, &accepted.carrier, &info));
            }
            for rejected in batch.rejected {
                let error = api::code_error(
                    "left out",
                    rejected.error.code,
                    rejected.error.message.as_deref(),
                );
                fetched
                    .notes
                    .push(format!("{}: {}", rejected.number, error.message()));
            }
        }
        Ok(fetched)
    }

    /// Reads the account's quota: a free call that proves the key.
    pub fn check_connection(&mut self) -> Result<String, PluginError> {
        // 17TRACK's endpoints all take a JSON list; getquota's is empty.
        let none: [TrackItem; 0] = [];
        let answer = self.post("getquota", &none)?;
        let quota: Quota = api::open("getquota", &answer)?;
        Ok(quota_summary(&quota))
    }
}

/// A count 17TRACK sends as a number (or, to be lenient, as numeric text).
fn count(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn quota_summary(quota: &Quota) -> String {
    let (total, used, remain) = (
        count(&quota.quota_total),
        count(&quota.quota_used),
        count(&quota.quota_remain),
    );
    let mut summary = match (used, total) {
        (Some(used), Some(total)) => format!("quota: {used} of {total} used"),
        (None, Some(total)) => format!("quota: {total}"),
        (Some(used), None) => format!("quota: {used} used"),
        (None, None) => "connected; 17track reported no quota".to_string(),
    };
    if let Some(remain) = remain {
        summary.push_str(&format!(", {remain} left"));
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use daifa_plugin_sdk::types::TrackingStatus;
    use serde_json::json;
    use std::collections::VecDeque;

    /// A peer answering from a script and recording what it was sent.
    struct Peer {
        answers: VecDeque<Result<OutboundResponse, PluginError>>,
        sent: Vec<OutboundRequest>,
    }

    fn answer(status: u16, body: Value) -> Result<OutboundResponse, PluginError> {
        Ok(OutboundResponse {
            status,
            headers: vec![],
            body: body.to_string().into_bytes(),
        })
    }

    /// Runs `f` with a client whose peer gives `answers` in order; returns what it was sent.
    fn with_peer<T>(
        answers: Vec<Result<OutboundResponse, PluginError>>,
        f: impl FnOnce(
            &mut Client<&mut dyn FnMut(OutboundRequest) -> Result<OutboundResponse, PluginError>>,
        ) -> T,
    ) -> (T, Vec<OutboundRequest>) {
        let mut peer = Peer {
            answers: answers.into(),
            sent: Vec::new(),
        };
        let mut send = |request: OutboundRequest| {
            peer.sent.push(request);
            peer.answers
                .pop_front()
                .unwrap_or_else(|| Err(PluginError::transient("peer unreachable: no answer left")))
        };
        let result = {
            let mut client = Client::new(
                Config::new(None),
                "test-key",
                &mut send
                    as &mut dyn FnMut(OutboundRequest) -> Result<OutboundResponse, PluginError>,
            );
            f(&mut client)
        };
        (result, peer.sent)
    }

    fn parcel(carrier_code: &str, number: &str) -> Parcel {
        Parcel {
            shipment_id: format!("shp_{number}"),
            carrier_code: carrier_code.into(),
            tracking_number: number.into(),
            destination_country: Some("US".into()),
            shipped_at: 1_700_000_000_000,
        }
    }

    fn body_json(request: &OutboundRequest) -> Value {
        serde_json::from_slice(&request.body).unwrap()
    }

    fn header<'a>(request: &'a OutboundRequest, name: &str) -> Option<&'a str> {
        daifa_plugin_sdk::signature::header(&request.headers, name)
    }

    #[test]
    fn registers_with_the_mapped_carrier_and_returns_17tracks() {
        let (result, sent) = with_peer(
            vec![answer(
                200,
                json!({ "code": 0, "data": { "accepted": [ { "origin": 1, "number": "RR123456789CN", "carrier": 3011 } ], "rejected": [] } }),
            )],
            |c| c.register(&parcel("China Post", " RR123456789CN ")),
        );
        let registered = result.unwrap();
        assert_eq!(
            registered.registration.carrier_code.as_deref(),
            Some("3011")
        );
        assert_eq!(registered.registration.external_id, None);
        assert!(!registered.already);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method, "POST");
        assert_eq!(sent[0].url, "https://api.17track.net/track/v2.2/register");
        assert_eq!(header(&sent[0], "17token"), Some("test-key"));
        assert_eq!(header(&sent[0], "content-type"), Some("application/json"));
        assert_eq!(
            body_json(&sent[0]),
            json!([{ "number": "RR123456789CN", "carrier": 3011 }])
        );
    }

    #[test]
    fn registers_an_unknown_carrier_for_detection() {
        let (result, sent) = with_peer(
            vec![answer(
                200,
                json!({ "code": 0, "data": { "accepted": [ { "origin": 3, "number": "LP00123456789012", "carrier": 190271 } ], "rejected": [] } }),
            )],
            |c| c.register(&parcel("AliExpress Standard Shipping", "LP00123456789012")),
        );
        assert_eq!(
            result.unwrap().registration.carrier_code.as_deref(),
            Some("190271")
        );
        assert_eq!(
            body_json(&sent[0]),
            json!([{ "number": "LP00123456789012" }])
        );
    }

    #[test]
    fn already_registered_is_a_success() {
        let (result, _) = with_peer(
            vec![answer(
                200,
                json!({ "code": 0, "data": { "accepted": [], "rejected": [ { "number": "RR123456789CN", "error": { "code": -18019901, "message": "The tracking number 'RR123456789CN' has been registered, don't need to repeat registration." } } ] } }),
            )],
            |c| c.register(&parcel("China Post", "RR123456789CN")),
        );
        let registered = result.unwrap();
        assert!(registered.already);
        assert_eq!(registered.registration.carrier_code, None);
    }

    #[test]
    fn rejections_are_permanent_or_transient_by_code() {
        let rejected = |code: i64| {
            answer(
                200,
                json!({ "code": 0, "data": { "accepted": [], "rejected": [ { "number": "12", "error": { "code": code, "message": "Whatever." } } ] } }),
            )
        };
        for (code, kind, words) in [
            (-18010012, "permanent", "format is not valid"),
            (-18019903, "permanent", "cannot be detected"),
            (-18019908, "transient", "quota of the account is used up"),
            (-18019907, "transient", "daily tracking limit"),
            (-18010003, "transient", "internal error"),
        ] {
            let (result, _) = with_peer(vec![rejected(code)], |c| c.register(&parcel("UPS", "12")));
            let err = result.unwrap_err();
            assert_eq!(err.kind(), kind, "{code}");
            assert!(err.message().contains(words), "{code}: {}", err.message());
            assert!(
                err.message()
                    .starts_with("17track refused to register 12: "),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn http_failures_are_classified_by_status() {
        for (status, kind) in [(429, "transient"), (503, "transient"), (401, "permanent")] {
            let (result, _) = with_peer(vec![answer(status, json!({ "code": status }))], |c| {
                c.register(&parcel("UPS", "1Z2617V10397725789"))
            });
            let err = result.unwrap_err();
            assert_eq!(err.kind(), kind, "{status}");
            assert!(err.message().contains(&format!("answered {status}")));
        }
        let (result, _) = with_peer(vec![], |c| c.register(&parcel("UPS", "1Z2617V10397725789")));
        assert_eq!(result.unwrap_err().kind(), "transient");
    }

    #[test]
    fn an_answer_about_another_number_is_permanent() {
        let (result, _) = with_peer(
            vec![answer(
                200,
                json!({ "code": 0, "data": { "accepted": [], "rejected": [] } }),
            )],
            |c| c.register(&parcel("UPS", "1Z2617V10397725789")),
        );
        assert!(result.unwrap_err().message().contains("does not mention"));
        let (result, sent) = with_peer(vec![], |c| c.register(&parcel("UPS", "  ")));
        assert_eq!(result.unwrap_err().kind(), "permanent");
        assert!(sent.is_empty());
    }

    fn track_answer(numbers: &[&str], unknown: &[&str]) -> Result<OutboundResponse, PluginError> {
        let accepted: Vec<Value> = numbers
            .iter()
            .map(|n| {
                json!({ "number": n, "carrier": 3011, "track_info": {
                    "latest_status": { "status": "InTransit", "sub_status": "InTransit_Other" },
                    "tracking": { "providers": [ { "events": [ { "time_utc": "2024-03-01T02:00:00Z", "description": "Posted" } ] } ] }
                } })
            })
            .collect();
        let rejected: Vec<Value> = unknown
            .iter()
            .map(|n| json!({ "number": n, "error": { "code": -18019902, "message": "The tracking number is not registered." } }))
            .collect();
        answer(
            200,
            json!({ "code": 0, "data": { "accepted": accepted, "rejected": rejected } }),
        )
    }

    #[test]
    fn fetches_in_batches_of_40_and_leaves_unknown_numbers_out() {
        let numbers: Vec<String> = (0..85).map(|i| format!("RR{i:09}CN")).collect();
        let mut parcels: Vec<Parcel> = numbers.iter().map(|n| parcel("China Post", n)).collect();
        // A number twice (two shipments in one parcel) is asked once.
        parcels.push(parcel("China Post", &numbers[3]));
        let names: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let (result, sent) = with_peer(
            vec![
                track_answer(&names[0..39], &names[39..40]),
                track_answer(&names[40..80], &[]),
                track_answer(&names[80..85], &[]),
            ],
            |c| c.fetch_tracking(&parcels),
        );
        let fetched = result.unwrap();
        assert_eq!(sent.len(), 3);
        for request in &sent {
            assert_eq!(
                request.url,
                "https://api.17track.net/track/v2.2/gettrackinfo"
            );
        }
        let sizes: Vec<usize> = sent
            .iter()
            .map(|r| body_json(r).as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [40, 40, 5]);
        assert_eq!(body_json(&sent[2])[0], json!({ "number": "RR000000080CN" }));
        assert_eq!(fetched.updates.len(), 84);
        assert!(
            fetched
                .updates
                .iter()
                .all(|u| u.status == TrackingStatus::InTransit)
        );
        assert!(
            !fetched
                .updates
                .iter()
                .any(|u| u.tracking_number == numbers[39])
        );
        assert_eq!(fetched.notes.len(), 1);
        assert!(
            fetched.notes[0]
                .starts_with("RR000000039CN: left out: the tracking number is not registered")
        );
    }

    #[test]
    fn keeps_the_gateways_spelling_of_a_number() {
        let (result, _) = with_peer(vec![track_answer(&["RR123456789CN"], &[])], |c| {
            c.fetch_tracking(&[parcel("China Post", "rr123456789cn")])
        });
        assert_eq!(result.unwrap().updates[0].tracking_number, "rr123456789cn");
    }

    #[test]
    fn no_parcels_no_request() {
        let (result, sent) = with_peer(vec![], |c| c.fetch_tracking(&[]));
        assert_eq!(result.unwrap(), Fetched::default());
        assert!(sent.is_empty());
    }

    #[test]
    fn refuses_more_parcels_than_its_request_budget() {
        let parcels: Vec<Parcel> = (0..321)
            .map(|i| parcel("UPS", &format!("N{i:05}")))
            .collect();
        let (result, sent) = with_peer(vec![], |c| c.fetch_tracking(&parcels));
        let err = result.unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(err.message().contains("at most 320"), "{}", err.message());
        assert!(sent.is_empty());
    }

    #[test]
    fn a_later_batch_turned_away_keeps_what_was_fetched() {
        let numbers: Vec<String> = (0..50).map(|i| format!("RR{i:09}CN")).collect();
        let parcels: Vec<Parcel> = numbers.iter().map(|n| parcel("China Post", n)).collect();
        let names: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let (result, _) = with_peer(
            vec![
                track_answer(&names[0..40], &[]),
                answer(429, json!({ "code": 429 })),
            ],
            |c| c.fetch_tracking(&parcels),
        );
        let fetched = result.unwrap();
        assert_eq!(fetched.updates.len(), 40);
        let stopped = fetched.stopped_early.unwrap();
        assert!(
            stopped.starts_with("stopped after 40 of 50 numbers"),
            "{stopped}"
        );

        // The first batch turned away fails the call: there is nothing to keep.
        let (result, _) = with_peer(vec![answer(503, json!("down"))], |c| {
            c.fetch_tracking(&parcels)
        });
        assert_eq!(result.unwrap_err().kind(), "transient");
    }

    #[test]
    fn summarises_the_quota() {
        let (result, sent) = with_peer(
            vec![answer(
                200,
                json!({ "code": 0, "data": { "quota_total": 200, "quota_used": 42, "quota_remain": 158, "today_used": 3, "max_track_daily": 0, "free_email_quota": 0, "free_email_quotaused": 0 } }),
            )],
            |c| c.check_connection(),
        );
        assert_eq!(result.unwrap(), "quota: 42 of 200 used, 158 left");
        assert_eq!(sent[0].url, "https://api.17track.net/track/v2.2/getquota");
        assert_eq!(sent[0].body, b"[]");

        let (result, _) = with_peer(
            vec![answer(
                200,
                json!({ "code": -18010002, "data": { "errors": [ { "code": -18010002, "message": "Invalid security key." } ] } }),
            )],
            |c| c.check_connection(),
        );
        let err = result.unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(err.message().contains("api key is not valid"));
        assert_eq!(
            quota_summary(&Quota::default()),
            "connected; 17track reported no quota"
        );
    }
}
