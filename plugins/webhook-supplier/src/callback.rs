//! Supplier → Daifa: `supplier_order.accepted`, `.rejected` and `.shipped` callbacks,
//! `product.updated` (1.1), and the after-sales reports `supplier_order.cancelled`,
//! `return.received` and `return.inspected` (1.2), and `supplier_order.update_answered` (1.3).

use crate::message::{
    self, Envelope, ORDER_ACCEPTED, ORDER_CANCELLED, ORDER_REJECTED, ORDER_SHIPPED,
    PRODUCT_UPDATED, RETURN_INSPECTED, RETURN_RECEIVED, UPDATE_ANSWERED,
};
use daifa_plugin_sdk::signature::standard;
use daifa_plugin_sdk::supplier::{
    Cancellation, Inspection, OfferUpdate, Rejection, RejectionCode, ReturnReport, SupplierEvent,
    SupplierInbound, SupplierShipment, UpdateReport,
};
use daifa_plugin_sdk::time::parse_rfc3339;
use daifa_plugin_sdk::types::{
    InboundRequest, LineQuantity, Money, PluginError, Shipment, SupplierOrderRef, TimestampMs,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashSet;

/// Verifies a callback, then reads it. Nothing of the body is looked at before the signature
/// holds: until then it may come from anyone, and a parse error would tell them what to fix.
pub fn handle(secret: &str, request: &InboundRequest) -> Result<SupplierInbound, PluginError> {
    let delivery_id = standard::verify(secret, &request.headers, &request.body)?;
    // An empty id would make every such callback a duplicate of the first one; the official
    // libraries refuse it as a missing header.
    if delivery_id.trim().is_empty() {
        return Err(PluginError::bad_signature("header `webhook-id` is empty"));
    }
    let event = parse(&request.body)?;
    Ok(SupplierInbound {
        delivery_id: Some(delivery_id),
        events: vec![event],
    })
}

/// Reads a verified callback body into its canonical event.
pub fn parse(body: &[u8]) -> Result<SupplierEvent, PluginError> {
    #[derive(Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: String,
    }
    let Kind { kind } = message::parse(body)?;
    match kind.as_str() {
        ORDER_ACCEPTED => {
            let data: OrderRefData = data(body)?;
            Ok(SupplierEvent::Accepted(data.into_ref("data")?))
        }
        ORDER_REJECTED => {
            let data: RejectedData = data(body)?;
            Ok(SupplierEvent::Rejected(data.into_rejection()?))
        }
        ORDER_SHIPPED => {
            let data: ShippedData = data(body)?;
            Ok(SupplierEvent::Shipped(data.into_shipment()?))
        }
        PRODUCT_UPDATED => {
            // A batch is the likeliest mistake here, and serde would read a list as a tuple
            // ("data[0]: invalid type: map, expected a string"): say what to do instead.
            if serde_json::from_slice::<Envelope<Vec<serde::de::IgnoredAny>>>(body).is_ok() {
                return Err(PluginError::bad_payload(
                    "data is a list: send one product.updated message per supplier sku",
                ));
            }
            let data: ProductData = data(body)?;
            Ok(SupplierEvent::OfferUpdated(data.into_update()?))
        }
        ORDER_CANCELLED => {
            let data: CancelledData = data(body)?;
            Ok(SupplierEvent::Cancelled(Cancellation {
                order: data.order.into_ref("data")?,
                accepted: data.accepted,
                reason: optional(data.reason),
            }))
        }
        RETURN_RECEIVED => {
            let data: ReceivedData = data(body)?;
            Ok(SupplierEvent::ReturnReceived(ReturnReport {
                order: data.order.into_ref("data")?,
                case_id: optional(data.case_id),
                lines: lines("data.lines", data.lines)?,
                received_at: timestamp("data.received_at", &data.received_at)?,
            }))
        }
        RETURN_INSPECTED => {
            let data: InspectedData = data(body)?;
            let defect = optional(data.defect);
            if !data.resellable && defect.is_none() {
                return Err(PluginError::bad_payload(
                    "data.defect is empty: say what is wrong with goods that are not resellable (it goes on the return-to-supplier note)",
                ));
            }
            Ok(SupplierEvent::Inspected(Inspection {
                order: data.order.into_ref("data")?,
                case_id: optional(data.case_id),
                lines: lines("data.lines", data.lines)?,
                resellable: data.resellable,
                defect,
            }))
        }
        UPDATE_ANSWERED => {
            let data: UpdateAnsweredData = data(body)?;
            let order = data.order.into_ref("data")?;
            // Echoed as received: Daifa finds the update by it, exactly.
            required("data.idempotency_key", &data.idempotency_key)?;
            Ok(SupplierEvent::UpdateAnswered(UpdateReport {
                order,
                idempotency_key: data.idempotency_key,
                applied: data.applied,
                reason: optional(data.reason),
            }))
        }
        other => Err(PluginError::bad_payload(format!(
            "unknown message type `{other}`: expected `{ORDER_ACCEPTED}`, `{ORDER_REJECTED}`, `{ORDER_SHIPPED}`, `{PRODUCT_UPDATED}`, `{ORDER_CANCELLED}`, `{RETURN_RECEIVED}`, `{RETURN_INSPECTED}` or `{UPDATE_ANSWERED}`"
        ))),
    }
}

/// The envelope's `data`, once its `timestamp` is known to be one.
fn data<T: DeserializeOwned>(body: &[u8]) -> Result<T, PluginError> {
    let envelope: Envelope<T> = message::parse(body)?;
    timestamp("timestamp", &envelope.timestamp)?;
    Ok(envelope.data)
}

/// `data` of `supplier_order.accepted`; the first two keys of the other callbacks too.
#[derive(Debug, Deserialize)]
struct OrderRefData {
    supplier_order_id: String,
    external_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RejectedData {
    #[serde(flatten)]
    order: OrderRefData,
    reason: String,
    /// Read as text, not as an enum: a code this version does not know must not lose the
    /// rejection (see [`rejection_code`]).
    #[serde(default)]
    code: Option<String>,
}

/// `data` of `product.updated`: one supplier SKU, and what changed.
#[derive(Debug, Deserialize)]
struct ProductData {
    supplier_sku: String,
    #[serde(default)]
    unit_cost: Option<CostData>,
    #[serde(default)]
    stock: Option<u32>,
    #[serde(default)]
    lead_time_days: Option<u32>,
    #[serde(default)]
    discontinued: Option<bool>,
    #[serde(default)]
    note: Option<String>,
}

/// Written as `order.created` writes prices: minor units and the currency.
#[derive(Debug, Deserialize)]
struct CostData {
    amount_minor: i64,
    currency: String,
}

/// `data` of `supplier_order.cancelled` (1.2).
#[derive(Debug, Deserialize)]
struct CancelledData {
    #[serde(flatten)]
    order: OrderRefData,
    /// Cancelled (or the parcel stopped); false: too late.
    accepted: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// `data` of `supplier_order.update_answered` (1.3).
#[derive(Debug, Deserialize)]
struct UpdateAnsweredData {
    #[serde(flatten)]
    order: OrderRefData,
    /// `data.idempotency_key` of the `order.update_requested` answered.
    idempotency_key: String,
    /// Applied: the order ships as updated; false: as it was.
    applied: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// `data` of `return.received` (1.2).
#[derive(Debug, Deserialize)]
struct ReceivedData {
    #[serde(flatten)]
    order: OrderRefData,
    #[serde(default)]
    case_id: Option<String>,
    lines: Vec<LineData>,
    received_at: String,
}

/// `data` of `return.inspected` (1.2).
#[derive(Debug, Deserialize)]
struct InspectedData {
    #[serde(flatten)]
    order: OrderRefData,
    #[serde(default)]
    case_id: Option<String>,
    lines: Vec<LineData>,
    resellable: bool,
    #[serde(default)]
    defect: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ShippedData {
    #[serde(flatten)]
    order: OrderRefData,
    shipment: ShipmentData,
}

#[derive(Debug, Deserialize)]
struct ShipmentData {
    carrier: String,
    tracking_number: String,
    tracking_url: Option<String>,
    shipped_at: String,
    lines: Vec<LineData>,
}

#[derive(Debug, Deserialize)]
struct LineData {
    line_id: String,
    quantity: u32,
}

impl OrderRefData {
    fn into_ref(self, path: &str) -> Result<SupplierOrderRef, PluginError> {
        required(
            &format!("{path}.supplier_order_id"),
            &self.supplier_order_id,
        )?;
        Ok(SupplierOrderRef {
            supplier_order_id: self.supplier_order_id,
            external_id: optional(self.external_id),
        })
    }
}

impl RejectedData {
    fn into_rejection(self) -> Result<Rejection, PluginError> {
        let order = self.order.into_ref("data")?;
        required("data.reason", &self.reason)?;
        // Verbatim: the shop reads the supplier's own words.
        Ok(Rejection {
            order,
            reason: self.reason,
            code: rejection_code(self.code),
        })
    }
}

/// The supplier's `code`, as the WIT's. A code Daifa does not know (a newer version's, a typo)
/// is `other`: the rejection itself is what matters, and refusing it would leave the order
/// waiting on a supplier that said no. The case and surrounding spaces are forgiven for the
/// same reason; an empty code, like `null`, is no code.
fn rejection_code(code: Option<String>) -> Option<RejectionCode> {
    let code = optional(code)?.to_ascii_lowercase();
    Some(match code.as_str() {
        "out_of_stock" => RejectionCode::OutOfStock,
        "cannot_ship_to" => RejectionCode::CannotShipTo,
        "invalid_address" => RejectionCode::InvalidAddress,
        "price_changed" => RejectionCode::PriceChanged,
        _ => RejectionCode::Other,
    })
}

impl ProductData {
    fn into_update(self) -> Result<OfferUpdate, PluginError> {
        // Trimmed: Daifa finds the offers by it, and a SKU pasted with a space would match none.
        let supplier_sku = required("data.supplier_sku", &self.supplier_sku)?.to_string();
        let unit_cost = self.unit_cost.map(CostData::into_money).transpose()?;
        let discontinued = self.discontinued.unwrap_or(false);
        // Unknown keys are ignored, so a misspelt one (`price`, `qty`) would otherwise be a
        // message accepted with nothing in it: say so instead.
        if unit_cost.is_none()
            && self.stock.is_none()
            && self.lead_time_days.is_none()
            && !discontinued
        {
            return Err(PluginError::bad_payload(
                "data names no change: give at least one of `unit_cost`, `stock`, `lead_time_days` or `\"discontinued\": true`",
            ));
        }
        Ok(OfferUpdate {
            supplier_sku,
            unit_cost,
            stock: self.stock,
            lead_time_days: self.lead_time_days,
            discontinued,
            // Verbatim, as the supplier wrote it; only a blank note is none.
            note: self.note.filter(|n| !n.trim().is_empty()),
        })
    }
}

impl CostData {
    fn into_money(self) -> Result<Money, PluginError> {
        if self.amount_minor < 0 {
            return Err(PluginError::bad_payload(format!(
                "data.unit_cost.amount_minor must not be negative, got {}",
                self.amount_minor
            )));
        }
        let currency = required("data.unit_cost.currency", &self.currency)?;
        // Daifa compares the new cost with the offer's in the same currency: an unknown code
        // would never compare, and a lower-case one would look like another currency.
        daifa_plugin_sdk::money::exponent(currency).map_err(|e| {
            PluginError::bad_payload(format!("data.unit_cost.currency: {}", e.message()))
        })?;
        Ok(Money {
            amount_minor: self.amount_minor,
            currency: currency.to_ascii_uppercase(),
        })
    }
}

impl ShippedData {
    fn into_shipment(self) -> Result<SupplierShipment, PluginError> {
        let order = self.order.into_ref("data")?;
        let s = self.shipment;
        let carrier_code = required("data.shipment.carrier", &s.carrier)?.to_string();
        let tracking_number =
            required("data.shipment.tracking_number", &s.tracking_number)?.to_string();
        let tracking_url = optional(s.tracking_url);
        if let Some(url) = &tracking_url {
            // The storefront shows the link to the buyer: nothing but a web address may get there.
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) {
                return Err(PluginError::bad_payload(format!(
                    "data.shipment.tracking_url `{url}` is not an http(s) url"
                )));
            }
        }
        let shipped_at = timestamp("data.shipment.shipped_at", &s.shipped_at)?;
        if s.lines.is_empty() {
            return Err(PluginError::bad_payload(
                "data.shipment.lines is empty: list the order lines this parcel carries",
            ));
        }
        let lines = lines("data.shipment.lines", s.lines)?;
        Ok(SupplierShipment {
            order,
            shipment: Shipment {
                lines,
                carrier_code,
                tracking_number,
                tracking_url,
                shipped_at,
            },
        })
    }
}

/// Order lines and quantities: at least one, each once, each at least 1.
fn lines(path: &str, data: Vec<LineData>) -> Result<Vec<LineQuantity>, PluginError> {
    if data.is_empty() {
        return Err(PluginError::bad_payload(format!(
            "{path} is empty: list the order lines concerned"
        )));
    }
    let mut seen = HashSet::new();
    let mut lines = Vec::with_capacity(data.len());
    for (i, line) in data.into_iter().enumerate() {
        required(&format!("{path}[{i}].line_id"), &line.line_id)?;
        if line.quantity == 0 {
            return Err(PluginError::bad_payload(format!(
                "{path}[{i}].quantity must be at least 1"
            )));
        }
        if !seen.insert(line.line_id.clone()) {
            return Err(PluginError::bad_payload(format!(
                "{path}[{i}].line_id `{}` appears twice: give each line once with its total quantity",
                line.line_id
            )));
        }
        lines.push(LineQuantity {
            external_line_id: line.line_id,
            quantity: line.quantity,
        });
    }
    Ok(lines)
}

/// A value that must say something; returned trimmed for the fields where stray spaces would
/// break a lookup (a tracking number pasted from a spreadsheet).
fn required<'a>(path: &str, value: &'a str) -> Result<&'a str, PluginError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(PluginError::bad_payload(format!("{path} is empty")));
    }
    Ok(trimmed)
}

/// An optional value; an empty string, which many backends write for "none", is none.
fn optional(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn timestamp(path: &str, value: &str) -> Result<TimestampMs, PluginError> {
    parse_rfc3339(value).map_err(|e| PluginError::bad_payload(format!("{path}: {}", e.message())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shipped(shipment: serde_json::Value) -> Result<SupplierEvent, PluginError> {
        let body = json!({
            "type": ORDER_SHIPPED,
            "timestamp": "2026-03-04T08:00:00Z",
            "data": {"supplier_order_id": "so_1", "shipment": shipment},
        });
        parse(body.to_string().as_bytes())
    }

    fn shipment_with(key: &str, value: serde_json::Value) -> serde_json::Value {
        let mut s = json!({
            "carrier": "YunExpress",
            "tracking_number": "YT2406112345678",
            "shipped_at": "2026-03-04T07:55:00+08:00",
            "lines": [{"line_id": "14001", "quantity": 2}],
        });
        s[key] = value;
        s
    }

    fn payload_error(result: Result<SupplierEvent, PluginError>) -> String {
        match result {
            Err(PluginError::BadPayload(m)) => m,
            other => panic!("expected bad-payload, got {other:?}"),
        }
    }

    #[test]
    fn names_the_field_that_is_wrong() {
        let cases = [
            (
                "lines",
                json!([]),
                "data.shipment.lines is empty: list the order lines this parcel carries",
            ),
            (
                "lines",
                json!([{"line_id": "14001", "quantity": 0}]),
                "data.shipment.lines[0].quantity must be at least 1",
            ),
            (
                "tracking_number",
                json!(""),
                "data.shipment.tracking_number is empty",
            ),
            ("carrier", json!("  "), "data.shipment.carrier is empty"),
            (
                "tracking_url",
                json!("javascript:alert(1)"),
                "data.shipment.tracking_url `javascript:alert(1)` is not an http(s) url",
            ),
            (
                "lines",
                json!([{"line_id": "14001", "quantity": 1}, {"line_id": "14001", "quantity": 1}]),
                "data.shipment.lines[1].line_id `14001` appears twice: give each line once with its total quantity",
            ),
        ];
        for (key, value, expected) in cases {
            assert_eq!(
                payload_error(shipped(shipment_with(key, value))),
                expected,
                "{key}"
            );
        }

        let mut missing = shipment_with("lines", json!([]));
        missing.as_object_mut().unwrap().remove("tracking_number");
        let message = payload_error(shipped(missing));
        assert!(
            message.starts_with("data.shipment: missing field `tracking_number`"),
            "{message}"
        );

        let message = payload_error(shipped(shipment_with(
            "lines",
            json!([{"line_id": "14001", "quantity": "2"}]),
        )));
        assert!(
            message.starts_with("data.shipment.lines[0].quantity: invalid type: string \"2\""),
            "{message}"
        );

        let message = payload_error(shipped(shipment_with(
            "lines",
            json!([{"line_id": "14001", "quantity": -1}]),
        )));
        assert!(
            message.starts_with("data.shipment.lines[0].quantity: invalid value: integer `-1`"),
            "{message}"
        );

        let message = payload_error(shipped(shipment_with("shipped_at", json!("yesterday"))));
        assert!(
            message.starts_with("data.shipment.shipped_at: invalid timestamp `yesterday`"),
            "{message}"
        );
    }

    #[test]
    fn reads_optional_values_leniently() {
        let event = shipped(shipment_with("tracking_url", json!(""))).unwrap();
        let SupplierEvent::Shipped(s) = event else {
            panic!("{event:?}")
        };
        assert_eq!(s.shipment.tracking_url, None);
        assert_eq!(s.order.external_id, None);
        assert_eq!(
            s.shipment.shipped_at, 1_772_582_100_000,
            "offsets are read as UTC"
        );

        let body = json!({
            "type": ORDER_ACCEPTED,
            "timestamp": "2026-03-02T10:00:00Z",
            "data": {"supplier_order_id": "so_1", "external_id": null, "warehouse": "SZ-2"},
        });
        let event = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            event,
            SupplierEvent::Accepted(SupplierOrderRef {
                supplier_order_id: "so_1".into(),
                external_id: None
            }),
            "unknown keys are ignored, as the doc promises"
        );
    }

    fn rejected(code: serde_json::Value) -> Result<SupplierEvent, PluginError> {
        let body = json!({
            "type": ORDER_REJECTED,
            "timestamp": "2026-03-02T10:00:00Z",
            "data": {"supplier_order_id": "so_1", "reason": "no stock", "code": code},
        });
        parse(body.to_string().as_bytes())
    }

    fn code_of(result: Result<SupplierEvent, PluginError>) -> Option<RejectionCode> {
        match result {
            Ok(SupplierEvent::Rejected(r)) => {
                assert_eq!(r.reason, "no stock");
                r.code
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn reads_rejection_codes() {
        let cases = [
            (json!("out_of_stock"), Some(RejectionCode::OutOfStock)),
            (json!("cannot_ship_to"), Some(RejectionCode::CannotShipTo)),
            (
                json!("invalid_address"),
                Some(RejectionCode::InvalidAddress),
            ),
            (json!("price_changed"), Some(RejectionCode::PriceChanged)),
            (json!("other"), Some(RejectionCode::Other)),
            (json!(" Out_Of_Stock "), Some(RejectionCode::OutOfStock)),
            // Unknown codes keep the rejection: a newer supplier talking to an older Daifa.
            (json!("supplier_on_holiday"), Some(RejectionCode::Other)),
            (json!("out-of-stock"), Some(RejectionCode::Other)),
            (json!(null), None),
            (json!(""), None),
            (json!("  "), None),
        ];
        for (code, expected) in cases {
            assert_eq!(code_of(rejected(code.clone())), expected, "{code}");
        }

        let body = json!({
            "type": ORDER_REJECTED,
            "timestamp": "2026-03-02T10:00:00Z",
            "data": {"supplier_order_id": "so_1", "reason": "no stock"},
        });
        assert_eq!(code_of(parse(body.to_string().as_bytes())), None, "no code");

        let message = payload_error(rejected(json!(3)));
        assert!(
            message.starts_with("data.code: invalid type: integer `3`, expected a string"),
            "a code that is not text is a mistake to fix, not an unknown code: {message}"
        );
    }

    fn product(data: serde_json::Value) -> Result<SupplierEvent, PluginError> {
        let body = json!({
            "type": PRODUCT_UPDATED,
            "timestamp": "2026-03-05T11:00:00+08:00",
            "data": data,
        });
        parse(body.to_string().as_bytes())
    }

    fn update_of(result: Result<SupplierEvent, PluginError>) -> OfferUpdate {
        match result {
            Ok(SupplierEvent::OfferUpdated(u)) => u,
            other => panic!("expected an offer update, got {other:?}"),
        }
    }

    #[test]
    fn reads_product_updates() {
        let full = update_of(product(json!({
            "supplier_sku": " YW-88231-RD-M ",
            "unit_cost": {"amount_minor": 780, "currency": "usd"},
            "stock": 1200,
            "lead_time_days": 3,
            "discontinued": false,
            "note": " Softer cotton from April ",
            "warehouse": "SZ-2",
        })));
        assert_eq!(
            full,
            OfferUpdate {
                supplier_sku: "YW-88231-RD-M".into(),
                unit_cost: Some(Money {
                    amount_minor: 780,
                    currency: "USD".into()
                }),
                stock: Some(1200),
                lead_time_days: Some(3),
                discontinued: false,
                note: Some(" Softer cotton from April ".into()),
            }
        );

        let minimal = update_of(product(
            json!({"supplier_sku": "YW-88231-RD-M", "stock": 0}),
        ));
        assert_eq!(
            minimal,
            OfferUpdate {
                supplier_sku: "YW-88231-RD-M".into(),
                unit_cost: None,
                stock: Some(0),
                lead_time_days: None,
                discontinued: false,
                note: None,
            }
        );

        let nulls = update_of(product(json!({
            "supplier_sku": "YW-10442",
            "unit_cost": null,
            "stock": null,
            "lead_time_days": 12,
            "discontinued": null,
            "note": "",
        })));
        assert_eq!(
            (
                nulls.unit_cost,
                nulls.stock,
                nulls.lead_time_days,
                nulls.discontinued,
                nulls.note
            ),
            (None, None, Some(12), false, None),
            "null is the same as absent, an empty note is none"
        );

        let gone = update_of(product(
            json!({"supplier_sku": "YW-10442", "discontinued": true}),
        ));
        assert!(gone.discontinued);

        let free = update_of(product(json!({
            "supplier_sku": "YW-10442",
            "unit_cost": {"amount_minor": 0, "currency": "JPY"},
        })));
        assert_eq!(free.unit_cost.map(|m| m.amount_minor), Some(0));
    }

    #[test]
    fn refuses_product_updates_it_cannot_apply() {
        let nothing = "data names no change: give at least one of `unit_cost`, `stock`, `lead_time_days` or `\"discontinued\": true`";
        let exact = [
            (json!({"supplier_sku": "YW-1"}), nothing),
            (
                json!({"supplier_sku": "YW-1", "discontinued": false}),
                nothing,
            ),
            (json!({"supplier_sku": "YW-1", "note": "new box"}), nothing),
            (
                json!({"supplier_sku": "YW-1", "price": 780, "qty": 5}),
                nothing,
            ),
            (
                json!({"supplier_sku": " ", "stock": 1}),
                "data.supplier_sku is empty",
            ),
            (
                json!({"supplier_sku": "YW-1", "unit_cost": {"amount_minor": -5, "currency": "USD"}}),
                "data.unit_cost.amount_minor must not be negative, got -5",
            ),
            (
                json!({"supplier_sku": "YW-1", "unit_cost": {"amount_minor": 5, "currency": ""}}),
                "data.unit_cost.currency is empty",
            ),
            (
                json!({"supplier_sku": "YW-1", "unit_cost": {"amount_minor": 5, "currency": "XYZ"}}),
                "data.unit_cost.currency: unknown currency `XYZ`",
            ),
        ];
        for (data, expected) in exact {
            assert_eq!(payload_error(product(data.clone())), expected, "{data}");
        }

        let prefixed = [
            (json!({"stock": 1}), "data: missing field `supplier_sku`"),
            (
                json!({"supplier_sku": "YW-1", "stock": -1}),
                "data.stock: invalid value: integer `-1`, expected u32",
            ),
            (
                json!({"supplier_sku": "YW-1", "stock": "5"}),
                "data.stock: invalid type: string \"5\", expected u32",
            ),
            (
                json!({"supplier_sku": "YW-1", "lead_time_days": 1.5}),
                "data.lead_time_days: invalid type: floating point `1.5`, expected u32",
            ),
            (
                json!({"supplier_sku": "YW-1", "unit_cost": {"amount_minor": "7.80", "currency": "USD"}}),
                "data.unit_cost.amount_minor: invalid type: string \"7.80\", expected i64",
            ),
            (
                json!({"supplier_sku": "YW-1", "unit_cost": {"amount_minor": 780}}),
                "data.unit_cost: missing field `currency`",
            ),
            (
                json!({"supplier_sku": "YW-1", "discontinued": "yes"}),
                "data.discontinued: invalid type: string \"yes\", expected a boolean",
            ),
            (
                json!([{"supplier_sku": "YW-1", "stock": 1}]),
                "data is a list: send one product.updated message per supplier sku",
            ),
        ];
        for (data, expected) in prefixed {
            let message = payload_error(product(data.clone()));
            assert!(message.starts_with(expected), "{data}: {message}");
        }

        let message = payload_error(parse(
            br#"{"type": "product.updated", "timestamp": "soon", "data": {"supplier_sku": "YW-1", "stock": 1}}"#,
        ));
        assert!(
            message.starts_with("timestamp: invalid timestamp `soon`"),
            "{message}"
        );
    }

    #[test]
    fn refuses_what_is_not_a_callback() {
        let cases = [
            (
                r#"{"type": "order.created", "timestamp": "2026-03-02T10:00:00Z", "data": {}}"#,
                "unknown message type `order.created`",
            ),
            (
                r#"{"timestamp": "2026-03-02T10:00:00Z", "data": {}}"#,
                "missing field `type`",
            ),
            (r#"{"type": 5}"#, "type: invalid type: integer `5`"),
            (
                r#"{"type": "supplier_order.accepted", "data": {"supplier_order_id": "so_1"}}"#,
                "missing field `timestamp`",
            ),
            (
                r#"{"type": "supplier_order.accepted", "timestamp": "now", "data": {"supplier_order_id": "so_1"}}"#,
                "timestamp: invalid timestamp `now`",
            ),
            (
                r#"{"type": "supplier_order.accepted", "timestamp": "2026-03-02T10:00:00Z", "data": {"supplier_order_id": ""}}"#,
                "data.supplier_order_id is empty",
            ),
            (
                r#"{"type": "supplier_order.rejected", "timestamp": "2026-03-02T10:00:00Z", "data": {"supplier_order_id": "so_1", "reason": ""}}"#,
                "data.reason is empty",
            ),
            (
                r#"{"type": "supplier_order.rejected", "timestamp": "2026-03-02T10:00:00Z", "data": {"supplier_order_id": "so_1"}}"#,
                "data: missing field `reason`",
            ),
            ("not json", "invalid JSON body"),
            (
                r#"{"type": "supplier_order.accepted"} trailing"#,
                "invalid JSON body",
            ),
        ];
        for (body, expected) in cases {
            let message = payload_error(parse(body.as_bytes()));
            assert!(message.starts_with(expected), "{body}: {message}");
        }
    }

    fn report(kind: &str, data: serde_json::Value) -> Result<SupplierEvent, PluginError> {
        let body = json!({"type": kind, "timestamp": "2026-12-05T09:00:00Z", "data": data});
        parse(body.to_string().as_bytes())
    }

    #[test]
    fn reads_after_sales_reports() {
        let cancelled = report(
            "supplier_order.cancelled",
            json!({"supplier_order_id": "so_1", "external_id": "", "accepted": false, "reason": "already shipped"}),
        )
        .unwrap();
        assert_eq!(
            cancelled,
            SupplierEvent::Cancelled(Cancellation {
                order: SupplierOrderRef {
                    supplier_order_id: "so_1".into(),
                    external_id: None
                },
                accepted: false,
                reason: Some("already shipped".into()),
            })
        );

        let received = report(
            "return.received",
            json!({"supplier_order_id": "so_1", "case_id": "case_9", "received_at": "2026-12-05T16:58:00+08:00",
                   "lines": [{"line_id": "14001", "quantity": 1}]}),
        )
        .unwrap();
        let SupplierEvent::ReturnReceived(r) = received else {
            panic!("{received:?}")
        };
        assert_eq!(r.case_id.as_deref(), Some("case_9"));
        assert_eq!(r.received_at, 1_796_461_080_000);
        assert_eq!(r.lines[0].external_line_id, "14001");

        let inspected = report(
            "return.inspected",
            json!({"supplier_order_id": "so_1", "lines": [{"line_id": "14001", "quantity": 1}],
                   "resellable": false, "defect": "zip torn off"}),
        )
        .unwrap();
        let SupplierEvent::Inspected(i) = inspected else {
            panic!("{inspected:?}")
        };
        assert!(!i.resellable);
        assert_eq!(i.case_id, None);
        assert_eq!(i.defect.as_deref(), Some("zip torn off"));
    }

    #[test]
    fn refuses_after_sales_reports_it_cannot_apply() {
        let line = json!([{"line_id": "14001", "quantity": 1}]);
        let cases = [
            (
                "supplier_order.cancelled",
                json!({"supplier_order_id": "so_1"}),
                "data: missing field `accepted`",
            ),
            (
                "return.received",
                json!({"supplier_order_id": "so_1", "lines": [], "received_at": "2026-12-05T09:00:00Z"}),
                "data.lines is empty: list the order lines concerned",
            ),
            (
                "return.received",
                json!({"supplier_order_id": "so_1", "lines": line, "received_at": "yesterday"}),
                "data.received_at: ",
            ),
            (
                "return.inspected",
                json!({"supplier_order_id": "so_1", "lines": line, "resellable": false}),
                "data.defect is empty",
            ),
            (
                "return.inspected",
                json!({"supplier_order_id": "so_1", "lines": [{"line_id": "14001", "quantity": 0}], "resellable": true}),
                "data.lines[0].quantity must be at least 1",
            ),
            (
                "return.inspected",
                json!({"supplier_order_id": " ", "lines": line, "resellable": true}),
                "data.supplier_order_id is empty",
            ),
        ];
        for (kind, data, message) in cases {
            let err = report(kind, data.clone()).unwrap_err();
            assert_eq!(err.kind(), "bad-payload", "{kind} {data}");
            assert!(
                err.message().starts_with(message),
                "{kind} {data}: {}",
                err.message()
            );
        }
    }

    #[test]
    fn reads_update_answers() {
        let answered = report(
            "supplier_order.update_answered",
            json!({"supplier_order_id": "so_1", "external_id": " ", "idempotency_key": "upd_1",
                   "applied": false, "reason": " Labelled at 18:58 ", "warehouse": "SZ-2"}),
        )
        .unwrap();
        assert_eq!(
            answered,
            SupplierEvent::UpdateAnswered(UpdateReport {
                order: SupplierOrderRef {
                    supplier_order_id: "so_1".into(),
                    external_id: None
                },
                idempotency_key: "upd_1".into(),
                applied: false,
                reason: Some("Labelled at 18:58".into()),
            })
        );
        let applied = report(
            "supplier_order.update_answered",
            json!({"supplier_order_id": "so_1", "idempotency_key": "upd_1", "applied": true,
                   "reason": null}),
        )
        .unwrap();
        let SupplierEvent::UpdateAnswered(r) = applied else {
            panic!("{applied:?}")
        };
        assert!(r.applied);
        assert_eq!(r.reason, None);
    }

    #[test]
    fn refuses_update_answers_it_cannot_apply() {
        let cases = [
            (
                json!({"supplier_order_id": "so_1", "applied": true}),
                "data: missing field `idempotency_key`",
            ),
            (
                json!({"supplier_order_id": "so_1", "idempotency_key": " ", "applied": true}),
                "data.idempotency_key is empty",
            ),
            (
                json!({"supplier_order_id": "so_1", "idempotency_key": "upd_1"}),
                "data: missing field `applied`",
            ),
            (
                json!({"supplier_order_id": "so_1", "idempotency_key": "upd_1", "applied": "yes"}),
                "data",
            ),
            (
                json!({"supplier_order_id": "", "idempotency_key": "upd_1", "applied": true}),
                "data.supplier_order_id is empty",
            ),
            (
                json!({"idempotency_key": "upd_1", "applied": true}),
                "data: missing field `supplier_order_id`",
            ),
        ];
        for (data, message) in cases {
            let err = report("supplier_order.update_answered", data.clone()).unwrap_err();
            assert_eq!(err.kind(), "bad-payload", "{data}");
            assert!(
                err.message().starts_with(message),
                "{data}: {}",
                err.message()
            );
        }
    }
}
