//! Daifa → supplier after-sales requests (revision 1.2): `order.cancel_requested` and
//! `return.requested`, and the supplier's answers to them. The supplier's later reports
//! (`supplier_order.cancelled`, `return.received`, `return.inspected`) are callbacks, read in
//! [`crate::callback`].

use crate::message::{self, CANCEL_REQUESTED, Envelope, RETURN_REQUESTED, SignedMessage};
use crate::push::{excerpt, redirect};
use daifa_plugin_sdk::supplier::{CancelRequest, ReturnAuthorization, ReturnRequest};
use daifa_plugin_sdk::time::format_rfc3339;
use daifa_plugin_sdk::types::{
    Address, CaseKind, CaseReason, OutboundResponse, PluginError, ReturnKind, SupplierOrderStatus,
    TimestampMs,
};
use serde::{Deserialize, Serialize};

/// The `data` of `order.cancel_requested`.
#[derive(Debug, Serialize)]
pub struct CancelRequested<'a> {
    pub supplier_order_id: &'a str,
    pub external_id: Option<&'a str>,
    /// Why, for the supplier's record ("the customer cancelled the order").
    pub reason: Option<&'a str>,
}

/// The `data` of `return.requested`.
#[derive(Debug, Serialize)]
pub struct ReturnRequested<'a> {
    pub supplier_order_id: &'a str,
    pub external_id: Option<&'a str>,
    /// Daifa's id of the case: echo it in `return.received` and `return.inspected`.
    pub case_id: &'a str,
    /// What the customer gets: `return_refund`, `exchange`, `warranty_repair`...
    pub kind: &'static str,
    /// How the goods come back: `customer_return`, `in_transit_return`, `refused_parcel`.
    pub return_kind: &'static str,
    pub reason: Option<&'static str>,
    /// The customer's words, verbatim.
    pub note: Option<&'a str>,
    pub lines: Vec<ReturnLine<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ReturnLine<'a> {
    pub line_id: &'a str,
    pub quantity: u32,
}

pub fn kind_name(kind: CaseKind) -> &'static str {
    match kind {
        CaseKind::Cancel => "cancel",
        CaseKind::RefundOnly => "refund_only",
        CaseKind::PartialCompensation => "partial_compensation",
        CaseKind::ReturnRefund => "return_refund",
        CaseKind::Exchange => "exchange",
        CaseKind::Reship => "reship",
        CaseKind::WarrantyRepair => "warranty_repair",
        CaseKind::PaidMaintenance => "paid_maintenance",
    }
}

pub fn return_kind_name(kind: ReturnKind) -> &'static str {
    match kind {
        ReturnKind::CustomerReturn => "customer_return",
        ReturnKind::InTransitReturn => "in_transit_return",
        ReturnKind::RefusedParcel => "refused_parcel",
    }
}

pub fn reason_name(reason: CaseReason) -> &'static str {
    match reason {
        CaseReason::Quality => "quality",
        CaseReason::Damaged => "damaged",
        CaseReason::WrongItem => "wrong_item",
        CaseReason::WrongQuantity => "wrong_quantity",
        CaseReason::NotReceived => "not_received",
        CaseReason::Lost => "lost",
        CaseReason::CustomsHeld => "customs_held",
        CaseReason::ChangedMind => "changed_mind",
        CaseReason::LateDelivery => "late_delivery",
        CaseReason::NotAsDescribed => "not_as_described",
        CaseReason::Other => "other",
    }
}

/// A message Daifa sends: its `type`, the time it is sent, and its `data`.
pub(crate) fn envelope<T: Serialize>(
    kind: &str,
    now_ms: TimestampMs,
    data: T,
) -> Result<Vec<u8>, PluginError> {
    daifa_plugin_sdk::json::to_vec(&Envelope {
        kind: kind.to_string(),
        timestamp: format_rfc3339(now_ms)?,
        data,
    })
}

fn required<'a>(what: &str, value: &'a str) -> Result<&'a str, PluginError> {
    if value.trim().is_empty() {
        return Err(PluginError::permanent(format!("{what} is empty")));
    }
    Ok(value)
}

/// The body of `order.cancel_requested`.
pub fn cancel_requested(
    request: &CancelRequest,
    now_ms: TimestampMs,
) -> Result<Vec<u8>, PluginError> {
    let data = CancelRequested {
        supplier_order_id: required("the supplier order id", &request.order.supplier_order_id)?,
        external_id: request.order.external_id.as_deref(),
        reason: request.reason.as_deref(),
    };
    envelope(CANCEL_REQUESTED, now_ms, data)
}

/// The signed `order.cancel_requested`; its `webhook-id` is the request's idempotency key.
pub fn signed_cancel_requested(
    secret: &str,
    request: &CancelRequest,
    now_ms: TimestampMs,
) -> Result<SignedMessage, PluginError> {
    let body = cancel_requested(request, now_ms)?;
    message::sign(secret, &request.idempotency_key, now_ms, body)
}

/// The body of `return.requested`.
pub fn return_requested(
    request: &ReturnRequest,
    now_ms: TimestampMs,
) -> Result<Vec<u8>, PluginError> {
    if request.lines.is_empty() {
        return Err(PluginError::permanent(format!(
            "return of case `{}` names no lines",
            request.case_id
        )));
    }
    if let Some(line) = request.lines.iter().find(|l| l.quantity == 0) {
        return Err(PluginError::permanent(format!(
            "return of case `{}`: line `{}` has quantity 0",
            request.case_id, line.external_line_id
        )));
    }
    let data = ReturnRequested {
        supplier_order_id: required("the supplier order id", &request.order.supplier_order_id)?,
        external_id: request.order.external_id.as_deref(),
        case_id: required("the case id", &request.case_id)?,
        kind: kind_name(request.kind),
        return_kind: return_kind_name(request.return_kind),
        reason: request.reason.map(reason_name),
        note: request.note.as_deref(),
        lines: request
            .lines
            .iter()
            .map(|l| ReturnLine {
                line_id: &l.external_line_id,
                quantity: l.quantity,
            })
            .collect(),
    };
    envelope(RETURN_REQUESTED, now_ms, data)
}

/// The signed `return.requested`; its `webhook-id` is the request's idempotency key.
pub fn signed_return_requested(
    secret: &str,
    request: &ReturnRequest,
    now_ms: TimestampMs,
) -> Result<SignedMessage, PluginError> {
    let body = return_requested(request, now_ms)?;
    message::sign(secret, &request.idempotency_key, now_ms, body)
}

/// What every after-sales answer shares: retry on 408, 429 and 5xx; a redirect or another
/// refusal is for good. A supplier on revision 1.1 does not know these messages and refuses
/// them (400, 404, 422...): the message says so, for the shop to act by hand.
fn refusal(what: &str, response: &OutboundResponse) -> PluginError {
    let status = response.status;
    match status {
        408 | 429 | 500.. => PluginError::transient(format!(
            "supplier endpoint answered {status}{}",
            excerpt(&response.body)
        )),
        300..=399 => redirect(response),
        _ => PluginError::permanent(format!(
            "supplier endpoint refused the {what} with {status}{} (a supplier on protocol revision 1.1 or earlier does not take it: ask it by hand)",
            excerpt(&response.body)
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
struct CancelAnswer {
    #[serde(default)]
    status: Option<String>,
}

/// Reads the answer to `order.cancel_requested`.
///
/// 2xx with `{"status": "cancelled"}`: done; `"too_late"`: it has left and cannot be stopped;
/// `"pending"`, another status or no body: the supplier answers later with
/// `supplier_order.cancelled`. 409: too late, as `"too_late"`.
pub fn read_cancel_answer(response: &OutboundResponse) -> Result<SupplierOrderStatus, PluginError> {
    match response.status {
        200..=299 => {
            // As with order.created, the body is informative: once the supplier said 2xx it has
            // the request, and an unreadable body means "I will tell you".
            let answer: CancelAnswer = serde_json::from_slice(&response.body).unwrap_or_default();
            Ok(
                match answer
                    .status
                    .as_deref()
                    .map(str::trim)
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("cancelled") => SupplierOrderStatus::CancellationAccepted,
                    Some("too_late") => SupplierOrderStatus::CancellationRejected,
                    _ => SupplierOrderStatus::CancellationRequested,
                },
            )
        }
        409 => Ok(SupplierOrderStatus::CancellationRejected),
        _ => Err(refusal("cancellation", response)),
    }
}

#[derive(Debug, Default, Deserialize)]
struct ReturnAnswer {
    #[serde(default)]
    rma: Option<String>,
    #[serde(default)]
    address: Option<AddressData>,
    #[serde(default)]
    note: Option<String>,
}

/// The return address, in the shape `order.created` writes `ship_to`: a supplier's code writes
/// one address type both ways.
#[derive(Debug, Deserialize)]
struct AddressData {
    name: Option<String>,
    company: Option<String>,
    line1: String,
    line2: Option<String>,
    city: String,
    province: Option<String>,
    province_code: Option<String>,
    postal_code: Option<String>,
    country_code: String,
    phone: Option<String>,
}

fn optional(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl AddressData {
    fn into_address(self) -> Result<Address, PluginError> {
        for (key, value) in [
            ("line1", &self.line1),
            ("city", &self.city),
            ("country_code", &self.country_code),
        ] {
            if value.trim().is_empty() {
                return Err(PluginError::bad_payload(format!(
                    "the supplier's return address has an empty `{key}`"
                )));
            }
        }
        let country_code = self.country_code.trim().to_ascii_uppercase();
        if country_code.len() != 2 || !country_code.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(PluginError::bad_payload(format!(
                "the supplier's return address has `country_code` `{}`: expected two letters (ISO 3166-1 alpha-2)",
                self.country_code
            )));
        }
        Ok(Address {
            name: optional(self.name),
            company: optional(self.company),
            line1: self.line1.trim().to_string(),
            line2: optional(self.line2),
            city: self.city.trim().to_string(),
            province: optional(self.province),
            province_code: optional(self.province_code),
            postal_code: optional(self.postal_code),
            country_code,
            phone: optional(self.phone),
        })
    }
}

/// Reads the answer to `return.requested`: 2xx with an optional `{rma, address, note}`.
///
/// Unlike the other answers, a body that is there must be readable: the address is where the
/// customer sends the goods, and a guessed one loses them. Such an answer is refused for good
/// (the shop sees why) rather than retried.
pub fn read_return_answer(response: &OutboundResponse) -> Result<ReturnAuthorization, PluginError> {
    match response.status {
        200..=299 => {
            let answer: ReturnAnswer = if response.body.iter().all(u8::is_ascii_whitespace) {
                ReturnAnswer::default()
            } else {
                message::parse(&response.body).map_err(|e| {
                    PluginError::bad_payload(format!(
                        "the supplier's answer to return.requested: {}",
                        e.message()
                    ))
                })?
            };
            Ok(ReturnAuthorization {
                rma: optional(answer.rma),
                address: answer.address.map(AddressData::into_address).transpose()?,
                note: optional(answer.note),
            })
        }
        _ => Err(refusal("return", response)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use daifa_plugin_sdk::types::{LineQuantity, SupplierOrderRef};
    use serde_json::{Value, json};

    fn answer(status: u16, body: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn cancel_request() -> CancelRequest {
        CancelRequest {
            order: SupplierOrderRef {
                supplier_order_id: "so_1".into(),
                external_id: Some("SUP-77".into()),
            },
            idempotency_key: "job_cancel_1".into(),
            reason: Some("the customer cancelled the order".into()),
        }
    }

    pub fn return_request() -> ReturnRequest {
        ReturnRequest {
            order: SupplierOrderRef {
                supplier_order_id: "so_1".into(),
                external_id: None,
            },
            case_id: "case_1".into(),
            idempotency_key: "job_return_1".into(),
            kind: CaseKind::Exchange,
            return_kind: ReturnKind::CustomerReturn,
            reason: Some(CaseReason::Quality),
            note: Some("the zip is broken".into()),
            lines: vec![LineQuantity {
                external_line_id: "14001".into(),
                quantity: 1,
            }],
        }
    }

    #[test]
    fn cancel_requested_names_the_order_and_signs_with_the_job_key() {
        let signed =
            signed_cancel_requested(fixtures::SECRET, &cancel_request(), fixtures::NOW_MS).unwrap();
        let body: Value = serde_json::from_slice(&signed.body).unwrap();
        assert_eq!(
            body,
            json!({"type": "order.cancel_requested", "timestamp": "2026-03-02T09:30:05Z",
                   "data": {"supplier_order_id": "so_1", "external_id": "SUP-77",
                            "reason": "the customer cancelled the order"}})
        );
        let id = signed
            .headers
            .iter()
            .find(|h| h.name == "webhook-id")
            .unwrap();
        assert_eq!(id.value, "job_cancel_1");
    }

    #[test]
    fn classifies_the_cancel_answer() {
        use SupplierOrderStatus as S;
        let ok = |status, body| read_cancel_answer(&answer(status, body)).unwrap();
        assert_eq!(
            ok(200, r#"{"status":"cancelled"}"#),
            S::CancellationAccepted
        );
        assert_eq!(
            ok(200, r#"{"status":" Cancelled "}"#),
            S::CancellationAccepted
        );
        assert_eq!(ok(200, r#"{"status":"too_late"}"#), S::CancellationRejected);
        assert_eq!(ok(202, r#"{"status":"pending"}"#), S::CancellationRequested);
        assert_eq!(ok(202, ""), S::CancellationRequested);
        assert_eq!(ok(200, "OK"), S::CancellationRequested);
        assert_eq!(ok(409, ""), S::CancellationRejected);
        for status in [408, 429, 500, 503] {
            assert_eq!(
                read_cancel_answer(&answer(status, "")).unwrap_err().kind(),
                "transient"
            );
        }
        let err = read_cancel_answer(&answer(422, r#"{"error":"unknown type"}"#)).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(err.message().contains("revision 1.1"), "{}", err.message());
    }

    #[test]
    fn return_requested_carries_the_case() {
        let body: Value =
            serde_json::from_slice(&return_requested(&return_request(), fixtures::NOW_MS).unwrap())
                .unwrap();
        assert_eq!(
            body["data"],
            json!({"supplier_order_id": "so_1", "external_id": null, "case_id": "case_1",
                   "kind": "exchange", "return_kind": "customer_return", "reason": "quality",
                   "note": "the zip is broken", "lines": [{"line_id": "14001", "quantity": 1}]})
        );
        let mut none = return_request();
        none.lines.clear();
        assert_eq!(
            return_requested(&none, fixtures::NOW_MS)
                .unwrap_err()
                .message(),
            "return of case `case_1` names no lines"
        );
    }

    #[test]
    fn reads_the_return_authorization() {
        let auth = read_return_answer(&answer(
            200,
            r#"{"rma": "RMA-9", "note": "write the RMA on the parcel",
                "address": {"name": "Returns desk", "line1": "88 Futian Road", "city": "Yiwu",
                            "postal_code": "322000", "country_code": "cn"}}"#,
        ))
        .unwrap();
        assert_eq!(auth.rma.as_deref(), Some("RMA-9"));
        let address = auth.address.unwrap();
        assert_eq!(address.country_code, "CN");
        assert_eq!(address.line1, "88 Futian Road");
        assert_eq!(address.company, None);

        let empty = read_return_answer(&answer(204, "")).unwrap();
        assert_eq!(empty.rma, None);
        assert!(empty.address.is_none());

        let err = read_return_answer(&answer(
            200,
            r#"{"address": {"line1": "", "city": "Yiwu", "country_code": "CN"}}"#,
        ))
        .unwrap_err();
        assert_eq!(err.kind(), "bad-payload");
        assert_eq!(
            err.message(),
            "the supplier's return address has an empty `line1`"
        );
        let err = read_return_answer(&answer(200, r#"{"address": {"city": "Yiwu"}}"#)).unwrap_err();
        assert!(err.message().contains("line1"), "{}", err.message());
        assert_eq!(
            read_return_answer(&answer(503, "")).unwrap_err().kind(),
            "transient"
        );
    }
}
