//! Daifa → supplier changes to an order not yet shipped (revision 1.3): `order.update_requested`
//! and the supplier's answer to it. The supplier's later answer (`supplier_order.update_answered`)
//! is a callback, read in [`crate::callback`].
//!
//! A supplier on revision 1.2 or earlier does not know the message. What it answers (a 4xx, a
//! 409 taking it for a duplicate `order.created`, or a bare 2xx from an endpoint that
//! acknowledges everything) is read as `unsupported`: the gateway then asks the shop to pass the
//! change on by hand, which is the only way the change reaches such a supplier.

use crate::aftersales::envelope;
use crate::message::{self, SignedMessage, UPDATE_REQUESTED};
use crate::push::{OrderCreated, excerpt, redirect};
use daifa_plugin_sdk::supplier::{UpdateAnswer, UpdateRequest};
use daifa_plugin_sdk::types::{OutboundResponse, PluginError, TimestampMs};
use serde::Serialize;
use serde_json::Value;

/// The `data` of `order.update_requested`.
#[derive(Debug, Serialize)]
pub struct UpdateRequested<'a> {
    pub supplier_order_id: &'a str,
    pub external_id: Option<&'a str>,
    /// The update's own key, also its `webhook-id`: the supplier echoes it in
    /// `supplier_order.update_answered`.
    pub idempotency_key: &'a str,
    /// What changed, by the name of the key of `order.created` it changes (`ship_to`, `lines`,
    /// `buyer_note`, `customer`): where a packer has to look.
    pub changes: Vec<String>,
    /// The order as it now is, written as `order.created` writes it: the supplier replaces what
    /// it has with it, and parses it with the code that reads `order.created`.
    pub updated_order: OrderCreated<'a>,
}

/// The WIT's name of a change (`ship-to`, `buyer-note`) as the protocol writes it (`ship_to`,
/// `buyer_note`): the name of the key of `order.created` it changes. A name this version does
/// not know (one a later WIT adds) is written the same way rather than dropped: the supplier
/// still learns that something changed, and has the whole order to compare.
pub fn change_name(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('-', "_")
}

/// What the schema allows a supplier to switch on: `^[a-z][a-z0-9_]*$`.
fn is_change_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl<'a> UpdateRequested<'a> {
    /// Refuses an update no supplier could apply, so that every message sent matches the schema.
    pub fn new(request: &'a UpdateRequest) -> Result<Self, PluginError> {
        let order = &request.order.supplier_order_id;
        let refuse = |what: String| {
            PluginError::permanent(format!(
                "update `{}` of supplier order `{order}` {what}",
                request.idempotency_key
            ))
        };
        if order.trim().is_empty() {
            return Err(PluginError::permanent("the supplier order id is empty"));
        }
        if request.idempotency_key.trim().is_empty() {
            return Err(PluginError::permanent(format!(
                "the update of supplier order `{order}` has an empty idempotency key"
            )));
        }
        if request.updated.supplier_order_id != *order {
            return Err(refuse(format!(
                "carries the order `{}`: an update replaces the order it names",
                request.updated.supplier_order_id
            )));
        }
        // An order without lines ships nothing: that is a cancellation, which the supplier
        // answers differently (and may have to stop a parcel for).
        if request.updated.lines.is_empty() {
            return Err(refuse(
                "removes every line: send order.cancel_requested instead".into(),
            ));
        }
        let mut changes: Vec<String> = Vec::with_capacity(request.changes.len());
        for (given, name) in request.changes.iter().map(|c| (c, change_name(c))) {
            if name.is_empty() || changes.contains(&name) {
                continue;
            }
            if !is_change_name(&name) {
                return Err(refuse(format!(
                    "names the change `{given}`, which is not a name"
                )));
            }
            changes.push(name);
        }
        // The supplier looks where `changes` points: an update naming nothing would have it
        // compare every key of the order, or, likelier, change nothing.
        if changes.is_empty() {
            return Err(refuse("names no change".into()));
        }
        Ok(Self {
            supplier_order_id: order,
            external_id: request.order.external_id.as_deref(),
            idempotency_key: &request.idempotency_key,
            changes,
            updated_order: OrderCreated::new(&request.updated)?,
        })
    }
}

/// The body of `order.update_requested`.
pub fn update_requested(
    request: &UpdateRequest,
    now_ms: TimestampMs,
) -> Result<Vec<u8>, PluginError> {
    envelope(UPDATE_REQUESTED, now_ms, UpdateRequested::new(request)?)
}

/// The signed `order.update_requested`; its `webhook-id` is the update's idempotency key, the
/// same on every retry of this update and new for the next one.
pub fn signed_update_requested(
    secret: &str,
    request: &UpdateRequest,
    now_ms: TimestampMs,
) -> Result<SignedMessage, PluginError> {
    let body = update_requested(request, now_ms)?;
    message::sign(secret, &request.idempotency_key, now_ms, body)
}

/// What the supplier answered to an update, at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub answer: UpdateAnswer,
    /// The supplier's words ("packed at 18:58"), for the timeline: the WIT's answer is a bare
    /// enum, so the plugin logs them.
    pub reason: Option<String>,
}

/// Reads the answer to `order.update_requested`.
///
/// 2xx with `{"status": "applied"}`: the order ships as updated; `"refused"`: it ships as it
/// was; `"pending"`: the supplier answers later with `supplier_order.update_answered`. Unlike
/// the other answers, the status is required: a supplier on 1.2 or earlier that acknowledges
/// every message with a bare 2xx has not read the update, and waiting for its answer would
/// wait for ever (`unsupported`: the shop passes the change on by hand). A status Daifa does
/// not know is `permanent`: the supplier read the update, and someone has to ask what it did.
///
/// 408, 429 and 5xx but 501: try again later. 501, 409 and the other 4xx but 401 and 403:
/// `unsupported`, since a supplier on 1.2 or earlier refuses the unknown message (with a 409
/// when it takes it for a second `order.created` of the order). 401, 403 and 3xx: `permanent`,
/// the connection is wrong (the secret, the URL) and the operator must fix it.
pub fn read_update_answer(response: &OutboundResponse) -> Result<Answered, PluginError> {
    let status = response.status;
    if !(200..=299).contains(&status) {
        return Err(refusal(response));
    }
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let reason = match body.get("reason") {
        Some(Value::String(r)) => Some(r.trim().to_string()).filter(|r| !r.is_empty()),
        _ => None,
    };
    let said = match body.get("status") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim()).filter(|s| !s.is_empty()),
        Some(other) => {
            return Err(PluginError::permanent(format!(
                "supplier endpoint answered order.update_requested with status {other}: expected `applied`, `pending` or `refused` (ask it whether it applied the change)"
            )));
        }
    };
    let Some(said) = said else {
        return Err(PluginError::unsupported(format!(
            "supplier endpoint answered {status} to order.update_requested without a `status`{} (a supplier on protocol revision 1.2 or earlier acknowledges it unread): ask it by hand",
            excerpt(&response.body)
        )));
    };
    let answer = match said.to_ascii_lowercase().as_str() {
        "applied" => UpdateAnswer::Applied,
        "pending" => UpdateAnswer::Requested,
        "refused" => UpdateAnswer::Refused,
        _ => {
            return Err(PluginError::permanent(format!(
                "supplier endpoint answered order.update_requested with status `{said}`: expected `applied`, `pending` or `refused` (ask it whether it applied the change)"
            )));
        }
    };
    Ok(Answered { answer, reason })
}

/// The answer as the supplier wrote it.
pub fn status_name(answer: UpdateAnswer) -> &'static str {
    match answer {
        UpdateAnswer::Applied => "applied",
        UpdateAnswer::Requested => "pending",
        UpdateAnswer::Refused => "refused",
    }
}

/// An answer that is not a 2xx; see [`read_update_answer`].
fn refusal(response: &OutboundResponse) -> PluginError {
    let status = response.status;
    let body = excerpt(&response.body);
    match status {
        501 => PluginError::unsupported(format!(
            "supplier endpoint answered 501{body}: it does not take order.update_requested; ask it by hand"
        )),
        408 | 429 | 500.. => {
            PluginError::transient(format!("supplier endpoint answered {status}{body}"))
        }
        300..=399 => redirect(response),
        401 | 403 => PluginError::permanent(format!(
            "supplier endpoint refused the update with {status}{body}: check the connection's `signing_secret` with the supplier"
        )),
        _ => PluginError::unsupported(format!(
            "supplier endpoint refused the update with {status}{body} (a supplier on protocol revision 1.2 or earlier does not take order.update_requested): ask it by hand"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use daifa_plugin_sdk::types::HttpHeader;
    use serde_json::json;

    fn answer(status: u16, body: &str) -> Result<Answered, PluginError> {
        read_update_answer(&OutboundResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn data(request: &UpdateRequest) -> Value {
        let body: Value =
            serde_json::from_slice(&update_requested(request, fixtures::NOW_MS).unwrap()).unwrap();
        body["data"].clone()
    }

    #[test]
    fn carries_the_whole_order_as_order_created_writes_it() {
        let request = fixtures::sample_update();
        let data = data(&request);
        assert_eq!(
            data["supplier_order_id"],
            "so_0195f3c28a10700080005d1e2f3a4b5c"
        );
        assert_eq!(data["external_id"], "YW-PO-778812");
        assert_eq!(
            data["idempotency_key"],
            "upd_0195f4127e3b70008000a1b2c3d4e5f6"
        );
        assert_eq!(data["changes"], json!(["ship_to", "lines"]));
        let created: Value = serde_json::from_slice(
            &crate::push::order_created(&request.updated, fixtures::NOW_MS).unwrap(),
        )
        .unwrap();
        assert_eq!(data["updated_order"], created["data"]);
    }

    #[test]
    fn signs_with_the_update_key() {
        let signed = signed_update_requested(
            fixtures::SECRET,
            &fixtures::sample_update(),
            fixtures::NOW_MS,
        )
        .unwrap();
        let id = signed.headers.iter().find(|h| h.name == "webhook-id");
        assert_eq!(
            id.map(|h| h.value.as_str()),
            Some("upd_0195f4127e3b70008000a1b2c3d4e5f6")
        );
    }

    #[test]
    fn writes_change_names_in_snake_case() {
        let cases = [
            (vec!["ship-to"], json!(["ship_to"])),
            (
                vec!["buyer-note", "customer"],
                json!(["buyer_note", "customer"]),
            ),
            (vec!["lines", " Lines ", "lines"], json!(["lines"])),
            (vec!["ship-to", "", "ship_to"], json!(["ship_to"])),
            // A name a later WIT adds goes as it is: the supplier still learns of a change.
            (
                vec!["lines", "declared-value"],
                json!(["lines", "declared_value"]),
            ),
        ];
        for (changes, expected) in cases {
            let request = UpdateRequest {
                changes: changes.iter().map(|c| c.to_string()).collect(),
                ..fixtures::sample_update()
            };
            assert_eq!(data(&request)["changes"], expected, "{changes:?}");
        }
    }

    #[test]
    fn refuses_updates_no_supplier_could_apply() {
        let refused = |change: &dyn Fn(&mut UpdateRequest)| {
            let mut request = fixtures::sample_update();
            change(&mut request);
            let err = update_requested(&request, fixtures::NOW_MS).unwrap_err();
            assert_eq!(err.kind(), "permanent", "{}", err.message());
            err.message().to_string()
        };
        let prefix = "update `upd_0195f4127e3b70008000a1b2c3d4e5f6` of supplier order `so_0195f3c28a10700080005d1e2f3a4b5c`";
        assert_eq!(
            refused(&|r| r.changes.clear()),
            format!("{prefix} names no change")
        );
        assert_eq!(
            refused(&|r| r.changes = vec![" ".into()]),
            format!("{prefix} names no change")
        );
        assert_eq!(
            refused(&|r| r.changes = vec!["ship to".into()]),
            format!("{prefix} names the change `ship to`, which is not a name")
        );
        assert_eq!(
            refused(&|r| r.updated.lines.clear()),
            format!("{prefix} removes every line: send order.cancel_requested instead")
        );
        assert_eq!(
            refused(&|r| r.updated.supplier_order_id = "so_other".into()),
            format!("{prefix} carries the order `so_other`: an update replaces the order it names")
        );
        assert_eq!(
            refused(&|r| r.updated.lines[0].quantity = 0),
            "supplier order `so_0195f3c28a10700080005d1e2f3a4b5c` line `14001` has quantity 0"
        );
        assert_eq!(
            refused(&|r| r.idempotency_key = " ".into()),
            "the update of supplier order `so_0195f3c28a10700080005d1e2f3a4b5c` has an empty idempotency key"
        );
        assert_eq!(
            refused(&|r| {
                r.order.supplier_order_id = String::new();
                r.updated.supplier_order_id = String::new();
            }),
            "the supplier order id is empty"
        );
    }

    #[test]
    fn classifies_the_update_answer() {
        use UpdateAnswer as A;
        let ok = |status, body| answer(status, body).unwrap();
        let plain = |answer| Answered {
            answer,
            reason: None,
        };
        assert_eq!(ok(200, r#"{"status": "applied"}"#), plain(A::Applied));
        assert_eq!(ok(202, r#"{"status": "pending"}"#), plain(A::Requested));
        assert_eq!(ok(200, r#"{"status": "refused"}"#), plain(A::Refused));
        assert_eq!(ok(201, r#"{"status": " Applied "}"#), plain(A::Applied));
        assert_eq!(
            ok(
                200,
                r#"{"status": "refused", "reason": " Labelled at 18:58 ", "at": 5}"#
            ),
            Answered {
                answer: A::Refused,
                reason: Some("Labelled at 18:58".into())
            }
        );
        assert_eq!(
            ok(200, r#"{"status": "applied", "reason": ""}"#),
            plain(A::Applied)
        );
        assert_eq!(
            ok(200, r#"{"status": "applied", "reason": 5}"#),
            plain(A::Applied),
            "the reason is informative: one that is not text is dropped, not the answer"
        );
    }

    #[test]
    fn a_2xx_without_a_status_is_an_endpoint_that_did_not_read_it() {
        for body in [
            "",
            "OK",
            "{}",
            r#"{"status": null}"#,
            r#"{"status": " "}"#,
            "[]",
        ] {
            let err = answer(200, body).unwrap_err();
            assert_eq!(err.kind(), "unsupported", "{body:?}");
            assert!(
                err.message().starts_with(
                    "supplier endpoint answered 200 to order.update_requested without a `status`"
                ),
                "{body:?}: {}",
                err.message()
            );
            assert!(
                err.message().ends_with("ask it by hand"),
                "{}",
                err.message()
            );
        }
        for body in [
            r#"{"status": "done"}"#,
            r#"{"status": "cancelled"}"#,
            r#"{"status": true}"#,
        ] {
            let err = answer(200, body).unwrap_err();
            assert_eq!(err.kind(), "permanent", "{body}");
            assert!(
                err.message()
                    .contains("expected `applied`, `pending` or `refused`"),
                "{body}: {}",
                err.message()
            );
        }
        assert_eq!(
            answer(200, r#"{"status": "done"}"#).unwrap_err().message(),
            "supplier endpoint answered order.update_requested with status `done`: expected `applied`, `pending` or `refused` (ask it whether it applied the change)"
        );
    }

    #[test]
    fn maps_refusals_by_what_the_shop_can_do() {
        for status in [408, 429, 500, 502, 503, 504] {
            let err = answer(status, "busy").unwrap_err();
            assert_eq!(err.kind(), "transient", "{status}");
            assert_eq!(
                err.message(),
                format!("supplier endpoint answered {status}: busy")
            );
        }
        // A supplier on 1.2 or earlier: ask it by hand.
        for status in [400, 404, 405, 409, 410, 415, 422] {
            let err = answer(status, "").unwrap_err();
            assert_eq!(err.kind(), "unsupported", "{status}");
        }
        assert_eq!(
            answer(422, r#"{"error":"unknown type order.update_requested"}"#)
                .unwrap_err()
                .message(),
            r#"supplier endpoint refused the update with 422: {"error":"unknown type order.update_requested"} (a supplier on protocol revision 1.2 or earlier does not take order.update_requested): ask it by hand"#
        );
        let err = answer(501, "").unwrap_err();
        assert_eq!(err.kind(), "unsupported");
        assert_eq!(
            err.message(),
            "supplier endpoint answered 501: it does not take order.update_requested; ask it by hand"
        );
        // The connection is wrong: the operator fixes it, asking by hand would hide it.
        for status in [401, 403] {
            let err = answer(status, "bad signature").unwrap_err();
            assert_eq!(err.kind(), "permanent", "{status}");
            assert!(
                err.message().contains("`signing_secret`"),
                "{}",
                err.message()
            );
        }
        let err = read_update_answer(&OutboundResponse {
            status: 308,
            headers: vec![HttpHeader {
                name: "location".into(),
                value: "https://new.example/orders".into(),
            }],
            body: Vec::new(),
        })
        .unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(
            err.message().contains("https://new.example/orders"),
            "{}",
            err.message()
        );
    }
}
