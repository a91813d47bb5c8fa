//! Supplier → Daifa: `supplier_order.accepted`, `.rejected` and `.shipped` callbacks.

use crate::message::{self, Envelope, ORDER_ACCEPTED, ORDER_REJECTED, ORDER_SHIPPED};
use daifa_plugin_sdk::signature::standard;
use daifa_plugin_sdk::supplier::{Rejection, SupplierEvent, SupplierInbound, SupplierShipment};
use daifa_plugin_sdk::time::parse_rfc3339;
use daifa_plugin_sdk::types::{
    InboundRequest, LineQuantity, PluginError, Shipment, SupplierOrderRef, TimestampMs,
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
        other => Err(PluginError::bad_payload(format!(
            "unknown message type `{other}`: expected `{ORDER_ACCEPTED}`, `{ORDER_REJECTED}` or `{ORDER_SHIPPED}`"
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
            code: None,
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
        let mut seen = HashSet::new();
        let mut lines = Vec::with_capacity(s.lines.len());
        for (i, line) in s.lines.into_iter().enumerate() {
            required(&format!("data.shipment.lines[{i}].line_id"), &line.line_id)?;
            if line.quantity == 0 {
                return Err(PluginError::bad_payload(format!(
                    "data.shipment.lines[{i}].quantity must be at least 1"
                )));
            }
            if !seen.insert(line.line_id.clone()) {
                return Err(PluginError::bad_payload(format!(
                    "data.shipment.lines[{i}].line_id `{}` appears twice: give each line once with its total quantity",
                    line.line_id
                )));
            }
            lines.push(LineQuantity {
                external_line_id: line.line_id,
                quantity: line.quantity,
            });
        }
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
}
