//! After-sales requests made on Shopify, as `case-opened` events: a refund the merchant made in
//! Shopify's admin (`refunds/create`), a return the customer asked for (`returns/request`).
//!
//! Only the fields Daifa uses are declared; serde skips the rest.

use daifa_plugin_sdk::channel::CaseRequest;
use daifa_plugin_sdk::types::{CaseKind, CaseReason, LineQuantity, Money, TimestampMs};
use daifa_plugin_sdk::{PluginError, json, money, time};
use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::order::{Id, in_field, missing};
use crate::refund;

/// A `refunds/create` body (the REST `Refund`): the case of a refund the storefront already paid.
/// `None` for a refund Daifa made itself (its note names the case, see [`refund::note`]) and for
/// one that moves no money and refunds no line: neither is a new request.
pub fn refund_case_from_json(
    body: &[u8],
    triggered_at: Option<TimestampMs>,
) -> Result<Option<CaseRequest>, PluginError> {
    let refund: ShopifyRefund = json::from_slice(body)?;
    if refund
        .note
        .as_deref()
        .and_then(refund::case_of_note)
        .is_some()
    {
        return Ok(None);
    }
    let lines: Vec<LineQuantity> = refund
        .refund_line_items
        .iter()
        .filter(|l| l.quantity > 0)
        .map(|l| LineQuantity {
            external_line_id: l.line_item_id.to_string(),
            quantity: l.quantity,
        })
        .collect();
    let returned = refund.r#return.as_ref().is_some_and(|r| !r.is_null())
        || refund
            .refund_line_items
            .iter()
            .any(|l| l.restock_type.as_deref() == Some("return"));
    let amount = refunded_amount(&refund.transactions)?;
    if lines.is_empty() && amount.as_ref().is_none_or(|m| m.amount_minor == 0) {
        return Ok(None);
    }
    let requested_at = match (non_blank(refund.created_at), non_blank(refund.processed_at)) {
        (Some(at), _) => timestamp("created_at", &at)?,
        (None, Some(at)) => timestamp("processed_at", &at)?,
        (None, None) => triggered_at.ok_or_else(|| missing("created_at"))?,
    };
    // A refund made for a return names the return: the case `returns/request` opened for it
    // (whose id is the return's) is the same case, and records the money instead of a second
    // case opening.
    let return_id = refund.r#return.as_ref().and_then(|r| match &r["id"] {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    });
    Ok(Some(CaseRequest {
        order_external_id: refund.order_id.to_string(),
        external_id: return_id.unwrap_or_else(|| refund.id.to_string()),
        kind: if returned {
            CaseKind::ReturnRefund
        } else {
            CaseKind::RefundOnly
        },
        reason: None,
        note: refund.note.filter(|n| !n.trim().is_empty()),
        lines,
        amount,
        refunded: true,
        evidence: Vec::new(),
        requested_at,
    }))
}

/// The money a refund moved: its `refund` transactions that succeeded (or are pending, which
/// Shopify settles later), in the currency they name. `None` when it has none.
fn refunded_amount(transactions: &[RefundTransaction]) -> Result<Option<Money>, PluginError> {
    let mut total: Option<Money> = None;
    for (i, t) in transactions.iter().enumerate() {
        let counts = t.kind.eq_ignore_ascii_case("refund")
            && matches!(
                t.status.to_ascii_lowercase().as_str(),
                "success" | "pending"
            );
        if !counts {
            continue;
        }
        let field = format!("transactions[{i}]");
        let currency = non_blank(t.currency.clone())
            .ok_or_else(|| missing(&format!("{field}.currency")))?
            .trim()
            .to_ascii_uppercase();
        let text = t
            .amount
            .as_deref()
            .ok_or_else(|| missing(&format!("{field}.amount")))?;
        let amount =
            money::parse(text, &currency).map_err(|e| in_field(&format!("{field}.amount"), e))?;
        total = Some(match total {
            None => amount,
            Some(sum) if sum.currency == amount.currency => Money {
                amount_minor: sum.amount_minor.saturating_add(amount.amount_minor),
                currency: sum.currency,
            },
            Some(sum) => {
                return Err(PluginError::bad_payload(format!(
                    "`{field}.currency` is {}, an earlier refund transaction's {}",
                    amount.currency, sum.currency
                )));
            }
        });
    }
    Ok(total)
}

/// A `returns/request` body (the REST `Return`): the customer asks to send goods back. The case
/// is a return then refund, not refunded yet; the merchant answers it with `decide-return`.
pub fn return_case_from_json(
    body: &[u8],
    triggered_at: Option<TimestampMs>,
) -> Result<CaseRequest, PluginError> {
    let ret: ShopifyReturn = json::from_slice(body)?;
    let mut lines: Vec<LineQuantity> = Vec::new();
    let mut reasons: Vec<CaseReason> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for (i, item) in ret.return_line_items.iter().enumerate() {
        let line_item = item
            .fulfillment_line_item
            .as_ref()
            .and_then(|f| f.line_item.as_ref())
            .or(item.line_item.as_ref())
            .ok_or_else(|| {
                missing(&format!(
                    "return_line_items[{i}].fulfillment_line_item.line_item.id"
                ))
            })?;
        if item.quantity > 0 {
            let external_line_id = line_item.id.to_string();
            match lines
                .iter_mut()
                .find(|l| l.external_line_id == external_line_id)
            {
                Some(line) => line.quantity += item.quantity,
                None => lines.push(LineQuantity {
                    external_line_id,
                    quantity: item.quantity,
                }),
            }
        }
        if let Some(reason) = item_reason(item) {
            reasons.push(reason);
        }
        // The customer's words, verbatim: the reason's note, then the note on the item.
        for note in [&item.return_reason_note, &item.customer_note]
            .into_iter()
            .flatten()
        {
            if !note.trim().is_empty() && !notes.contains(note) {
                notes.push(note.clone());
            }
        }
    }
    if lines.is_empty() {
        return Err(PluginError::bad_payload(
            "`return_line_items` lists no item with a quantity",
        ));
    }
    // The first precise reason; `other` only when no line gives a better one.
    let reason = reasons
        .iter()
        .copied()
        .find(|r| *r != CaseReason::Other)
        .or(reasons.first().copied());
    let requested_at = match (non_blank(ret.requested_at), non_blank(ret.created_at)) {
        (Some(at), _) => timestamp("requested_at", &at)?,
        (None, Some(at)) => timestamp("created_at", &at)?,
        (None, None) => triggered_at.ok_or_else(|| missing("requested_at"))?,
    };
    Ok(CaseRequest {
        order_external_id: ret.order.id.to_string(),
        external_id: ret.id.to_string(),
        kind: CaseKind::ReturnRefund,
        reason,
        note: (!notes.is_empty()).then(|| notes.join("\n")),
        lines,
        amount: None,
        refunded: false,
        evidence: Vec::new(),
        requested_at,
    })
}

/// A return line's reason: the `ReturnReason` enum (`return_reason`, lower case in webhooks),
/// else the handle of the return reason definition that replaces it from API 2026-01.
fn item_reason(item: &ReturnLineItem) -> Option<CaseReason> {
    if let Some(reason) = item.return_reason.as_deref().map(str::trim)
        && !reason.is_empty()
        && !reason.eq_ignore_ascii_case("unknown")
    {
        return Some(case_reason(reason));
    }
    item.return_reason_definition
        .as_ref()
        .and_then(|d| d.handle.as_deref())
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(reason_of_handle)
}

/// Shopify's `ReturnReason` as a case reason.
pub fn case_reason(reason: &str) -> CaseReason {
    match reason.trim().to_ascii_uppercase().as_str() {
        "DEFECTIVE" => CaseReason::Quality,
        "WRONG_ITEM" => CaseReason::WrongItem,
        "NOT_AS_DESCRIBED" => CaseReason::NotAsDescribed,
        "UNWANTED" | "SIZE_TOO_SMALL" | "SIZE_TOO_LARGE" | "STYLE" | "COLOR" => {
            CaseReason::ChangedMind
        }
        _ => CaseReason::Other,
    }
}

/// A return reason definition's handle ("wrong-item", "arrived-late", "too-tight") as a case
/// reason: the enum's values spelled as handles, and the obvious families of the newer library.
fn reason_of_handle(handle: &str) -> CaseReason {
    let handle = handle.to_ascii_lowercase();
    let enum_like = handle.replace('-', "_");
    match case_reason(&enum_like) {
        CaseReason::Other => {}
        known => return known,
    }
    let has = |part: &str| handle.contains(part);
    if has("damaged") {
        CaseReason::Damaged
    } else if has("defect") || has("quality") || has("broken") || has("faulty") {
        CaseReason::Quality
    } else if has("wrong") {
        CaseReason::WrongItem
    } else if has("late") {
        CaseReason::LateDelivery
    } else if has("missing") {
        CaseReason::WrongQuantity
    } else if has("described") {
        CaseReason::NotAsDescribed
    } else if has("unwanted")
        || has("changed-mind")
        || has("size")
        || has("too-")
        || has("style")
        || has("color")
        || has("colour")
        || has("fit")
    {
        CaseReason::ChangedMind
    } else {
        CaseReason::Other
    }
}

#[derive(Debug, Deserialize)]
struct ShopifyRefund {
    id: Id,
    order_id: Id,
    note: Option<String>,
    created_at: Option<String>,
    processed_at: Option<String>,
    /// The return the refund belongs to, when it was made for one.
    #[serde(default, rename = "return")]
    r#return: Option<serde_json::Value>,
    #[serde(default)]
    refund_line_items: Vec<RefundLineItem>,
    #[serde(default)]
    transactions: Vec<RefundTransaction>,
}

#[derive(Debug, Deserialize)]
struct RefundLineItem {
    line_item_id: Id,
    quantity: u32,
    /// `no_restock`, `cancel`, `return` (or the legacy `legacy_restock`).
    restock_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RefundTransaction {
    kind: String,
    status: String,
    /// A decimal string ("20", "41.94"); a JSON number is read as written.
    #[serde(default, deserialize_with = "decimal")]
    amount: Option<String>,
    currency: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ShopifyReturn {
    id: Id,
    order: OrderRef,
    requested_at: Option<String>,
    created_at: Option<String>,
    #[serde(default)]
    return_line_items: Vec<ReturnLineItem>,
}

#[derive(Debug, Deserialize)]
struct OrderRef {
    id: Id,
}

#[derive(Debug, Deserialize)]
struct ReturnLineItem {
    quantity: u32,
    return_reason: Option<String>,
    return_reason_definition: Option<ReasonDefinition>,
    return_reason_note: Option<String>,
    customer_note: Option<String>,
    fulfillment_line_item: Option<FulfillmentLineItem>,
    /// Not in the documented payload; read should a line carry its order line directly.
    line_item: Option<LineItemRef>,
}

#[derive(Debug, Deserialize)]
struct ReasonDefinition {
    handle: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FulfillmentLineItem {
    line_item: Option<LineItemRef>,
}

#[derive(Debug, Deserialize)]
struct LineItemRef {
    id: Id,
}

/// A decimal as text, whether the JSON has a string or a number.
fn decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(de::Error::custom(format!(
            "expected a decimal amount, got {other}"
        ))),
    }
}

fn timestamp(field: &str, value: &str) -> Result<TimestampMs, PluginError> {
    time::parse_rfc3339(value).map_err(|e| in_field(field, e))
}

fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).unwrap()
    }

    fn usd(amount_minor: i64) -> Option<Money> {
        Some(Money {
            amount_minor,
            currency: "USD".into(),
        })
    }

    fn line(id: &str, quantity: u32) -> LineQuantity {
        LineQuantity {
            external_line_id: id.into(),
            quantity,
        }
    }

    #[test]
    fn a_refund_made_in_shopify_is_a_refunded_case() {
        let case = refund_case_from_json(
            &fixture("webhook-refunds-create.pipedream-devstore.json"),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            case,
            CaseRequest {
                order_external_id: "6273085767965".into(),
                external_id: "1002961240349".into(),
                kind: CaseKind::RefundOnly,
                reason: None,
                // "" in the delivery: no note.
                note: None,
                lines: vec![line("16014782595357", 1)],
                // VND has no minor unit.
                amount: Some(Money {
                    amount_minor: 20,
                    currency: "VND".into()
                }),
                refunded: true,
                evidence: vec![],
                // 2024-08-20T11:19:18-04:00
                requested_at: 1_724_167_158_000,
            }
        );
    }

    #[test]
    fn the_rest_refund_sample_is_read_the_same_way() {
        let body: Value =
            serde_json::from_slice(&fixture("rest-2025-07-refund-create.response.json")).unwrap();
        let case = refund_case_from_json(&serde_json::to_vec(&body["refund"]).unwrap(), None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (case.order_external_id.as_str(), case.external_id.as_str()),
            ("450789469", "929361472")
        );
        assert_eq!(case.kind, CaseKind::RefundOnly);
        assert_eq!(case.note.as_deref(), Some("wrong size"));
        assert_eq!(case.lines, vec![line("518995019", 1)]);
        assert_eq!(case.amount, usd(4_194));
    }

    fn refund_body() -> Value {
        json!({
            "id": 929361472, "order_id": 450789469, "note": "scratched", "created_at": "2025-07-02T11:38:34-05:00",
            "return": null,
            "refund_line_items": [
                { "line_item_id": 518995019, "quantity": 1, "restock_type": "no_restock" },
                { "line_item_id": 518995020, "quantity": 0, "restock_type": "no_restock" }
            ],
            "transactions": [
                { "kind": "refund", "status": "success", "amount": "10.00", "currency": "USD" },
                { "kind": "refund", "status": "failure", "amount": "99.00", "currency": "USD" },
                { "kind": "refund", "status": "pending", "amount": 2.5, "currency": "USD" },
                { "kind": "sale", "status": "success", "amount": "50.00", "currency": "USD" }
            ]
        })
    }

    fn map(body: &Value) -> Result<Option<CaseRequest>, PluginError> {
        refund_case_from_json(&serde_json::to_vec(body).unwrap(), None)
    }

    #[test]
    fn the_amount_is_what_the_refund_transactions_moved() {
        let case = map(&refund_body()).unwrap().unwrap();
        assert_eq!(case.amount, usd(1_250));
        assert_eq!(case.lines, vec![line("518995019", 1)]);
        assert_eq!(case.note.as_deref(), Some("scratched"));

        let mut mixed = refund_body();
        mixed["transactions"][2]["currency"] = json!("EUR");
        let err = map(&mixed).unwrap_err();
        assert_eq!(err.kind(), "bad-payload");
        assert!(
            err.message().contains("transactions[2].currency"),
            "{}",
            err.message()
        );
        let mut bad = refund_body();
        bad["transactions"][0]["amount"] = json!("ten");
        let err = map(&bad).unwrap_err();
        assert!(
            err.message().contains("transactions[0].amount"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn a_refund_with_a_return_is_a_return_then_refund() {
        let mut body = refund_body();
        body["refund_line_items"][0]["restock_type"] = json!("return");
        assert_eq!(map(&body).unwrap().unwrap().kind, CaseKind::ReturnRefund);
        let mut body = refund_body();
        body["return"] =
            json!({ "id": 945000959, "admin_graphql_api_id": "gid://shopify/Return/945000959" });
        let case = map(&body).unwrap().unwrap();
        assert_eq!(case.kind, CaseKind::ReturnRefund);
        // The return's id: the case `returns/request` opened is the same case.
        assert_eq!(case.external_id, "945000959");
    }

    #[test]
    fn refunds_daifa_made_or_that_change_nothing_open_no_case() {
        let mut ours = refund_body();
        ours["note"] = json!("daifa case case_01JZ8Q7C: ordered twice");
        assert_eq!(map(&ours).unwrap(), None);
        let mut empty = refund_body();
        empty["refund_line_items"] = json!([]);
        empty["transactions"] = json!([]);
        assert_eq!(map(&empty).unwrap(), None);
        // Money without lines (an amount only) is a case.
        let mut amount_only = refund_body();
        amount_only["refund_line_items"] = json!([]);
        assert_eq!(map(&amount_only).unwrap().unwrap().lines, vec![]);
    }

    #[test]
    fn a_refund_without_a_time_takes_the_delivery_time() {
        let mut body = refund_body();
        body["created_at"] = json!(null);
        let err = map(&body).unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            ("bad-payload", "missing field `created_at`")
        );
        let case = refund_case_from_json(&serde_json::to_vec(&body).unwrap(), Some(42))
            .unwrap()
            .unwrap();
        assert_eq!(case.requested_at, 42);
        body["created_at"] = json!("soon");
        assert!(map(&body).unwrap_err().message().contains("created_at"));
    }

    #[test]
    fn the_returns_request_capture_is_a_return_case() {
        let case = return_case_from_json(
            &fixture("webhook-returns-request.yellowai-docs.json"),
            Some(1_700_000_000_000),
        )
        .unwrap();
        assert_eq!(
            case,
            CaseRequest {
                order_external_id: "5196695273621".into(),
                external_id: "3547267221".into(),
                kind: CaseKind::ReturnRefund,
                reason: Some(CaseReason::ChangedMind),
                note: None,
                lines: vec![line("12695210000533", 1)],
                amount: None,
                refunded: false,
                evidence: vec![],
                // The capture has no time: the delivery's.
                requested_at: 1_700_000_000_000,
            }
        );
        let err =
            return_case_from_json(&fixture("webhook-returns-request.yellowai-docs.json"), None)
                .unwrap_err();
        assert_eq!(err.message(), "missing field `requested_at`");
    }

    fn return_body() -> Value {
        json!({
            "id": 945000959, "admin_graphql_api_id": "gid://shopify/Return/945000959", "status": "requested",
            "order": { "id": 450789469, "admin_graphql_api_id": "gid://shopify/Order/450789469" },
            "requested_at": "2025-07-02T11:38:34-05:00",
            "return_line_items": [
                { "id": 1, "quantity": 1, "return_reason": "unknown", "return_reason_note": "", "customer_note": null,
                  "fulfillment_line_item": { "id": 11, "line_item": { "id": 518995019 } } },
                { "id": 2, "quantity": 2, "return_reason": "defective", "return_reason_note": "screen flickers",
                  "customer_note": "Bought as a gift", "fulfillment_line_item": { "id": 12, "line_item": { "id": 518995020 } } },
                { "id": 3, "quantity": 1, "return_reason": "other", "return_reason_note": "screen flickers",
                  "customer_note": null, "fulfillment_line_item": { "id": 13, "line_item": { "id": 518995019 } } }
            ]
        })
    }

    fn map_return(body: &Value) -> Result<CaseRequest, PluginError> {
        return_case_from_json(&serde_json::to_vec(body).unwrap(), None)
    }

    #[test]
    fn return_lines_reasons_and_notes() {
        let case = map_return(&return_body()).unwrap();
        assert_eq!(case.lines, vec![line("518995019", 2), line("518995020", 2)]);
        assert_eq!(case.reason, Some(CaseReason::Quality));
        assert_eq!(
            case.note.as_deref(),
            Some("screen flickers\nBought as a gift")
        );
        assert_eq!(case.requested_at, 1_751_474_314_000);
        assert!(!case.refunded);

        let mut body = return_body();
        body["return_line_items"] = json!([body["return_line_items"][0].clone()]);
        assert_eq!(map_return(&body).unwrap().reason, None);
        body["return_line_items"][0]["return_reason"] = json!("OTHER");
        assert_eq!(map_return(&body).unwrap().reason, Some(CaseReason::Other));
        body["return_line_items"][0]["return_reason"] = json!(null);
        body["return_line_items"][0]["return_reason_definition"] = json!({ "id": "gid://shopify/ReturnReasonDefinition/7", "handle": "arrived-damaged", "name": "Arrived damaged" });
        assert_eq!(map_return(&body).unwrap().reason, Some(CaseReason::Damaged));

        let mut broken = return_body();
        broken["return_line_items"][1]["fulfillment_line_item"] = json!({ "id": 12 });
        let err = map_return(&broken).unwrap_err();
        assert_eq!(
            err.message(),
            "missing field `return_line_items[1].fulfillment_line_item.line_item.id`"
        );
        let mut none = return_body();
        none["return_line_items"] = json!([]);
        assert_eq!(map_return(&none).unwrap_err().kind(), "bad-payload");
    }

    #[test]
    fn return_reasons_map_to_case_reasons() {
        for (shopify, ours) in [
            ("DEFECTIVE", CaseReason::Quality),
            ("wrong_item", CaseReason::WrongItem),
            ("NOT_AS_DESCRIBED", CaseReason::NotAsDescribed),
            ("UNWANTED", CaseReason::ChangedMind),
            ("SIZE_TOO_SMALL", CaseReason::ChangedMind),
            ("SIZE_TOO_LARGE", CaseReason::ChangedMind),
            ("STYLE", CaseReason::ChangedMind),
            ("color", CaseReason::ChangedMind),
            ("OTHER", CaseReason::Other),
            ("UNKNOWN", CaseReason::Other),
            ("SOMETHING_NEW", CaseReason::Other),
        ] {
            assert_eq!(case_reason(shopify), ours, "{shopify}");
        }
        for (handle, ours) in [
            ("wrong-item", CaseReason::WrongItem),
            ("not-as-described", CaseReason::NotAsDescribed),
            ("defective", CaseReason::Quality),
            ("quality", CaseReason::Quality),
            ("arrived-late", CaseReason::LateDelivery),
            ("too-tight", CaseReason::ChangedMind),
            ("color-too-bright", CaseReason::ChangedMind),
            ("comfort", CaseReason::Other),
        ] {
            assert_eq!(reason_of_handle(handle), ours, "{handle}");
        }
    }
}
