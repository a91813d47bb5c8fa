//! Daifa → supplier: the `order.created` message and the supplier's answer to it.

use crate::message::{self, Envelope, ORDER_CREATED, SignedMessage};
use daifa_plugin_sdk::supplier::{Submission, SupplierOrder, SupplierOrderLine};
use daifa_plugin_sdk::time::format_rfc3339;
use daifa_plugin_sdk::types::{
    Address, Contact, Money, OutboundResponse, PluginError, SupplierOrderStatus, TimestampMs,
};
use serde::{Deserialize, Serialize};

/// The `data` of `order.created`. Every key of version 1.0 is always written, `null` when Daifa
/// does not know the value, so that a supplier's parser meets one shape whatever the storefront
/// sent. The keys added in 1.1 are written only when the shop's policy sets them: an order
/// without them is then the same message, byte for byte, as before 1.1.
#[derive(Debug, Serialize)]
pub struct OrderCreated<'a> {
    pub supplier_order_id: &'a str,
    pub order: OrderInfo<'a>,
    pub currency: &'a str,
    /// Verbatim: colour, size and packing requests only reach the packer through it.
    pub buyer_note: Option<&'a str>,
    pub ship_to: ShipTo<'a>,
    pub customer: Customer<'a>,
    pub lines: Vec<Line<'a>>,
    /// The customs value to write on the parcel (1.1). The shop decides it per destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_value: Option<Price<'a>>,
    /// Carriers not to ship this parcel with, by name (1.1). Never empty when present: an
    /// empty list would say nothing a supplier has to act on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub avoid_carriers: Vec<&'a str>,
    /// The supplier order this one sends again: a reship of a lost, missing or wrong item
    /// (1.2). Only written for a reship.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reship_of: Option<&'a str>,
}

/// The storefront order the lines come from, for the supplier's packing slip and support.
#[derive(Debug, Serialize)]
pub struct OrderInfo<'a> {
    pub external_id: &'a str,
    pub number: Option<&'a str>,
    pub storefront: &'a str,
    pub placed_at: String,
}

#[derive(Debug, Serialize)]
pub struct ShipTo<'a> {
    pub name: Option<&'a str>,
    pub company: Option<&'a str>,
    pub line1: &'a str,
    pub line2: Option<&'a str>,
    pub city: &'a str,
    pub province: Option<&'a str>,
    pub province_code: Option<&'a str>,
    pub postal_code: Option<&'a str>,
    pub country_code: &'a str,
    pub phone: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct Customer<'a> {
    pub name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct Line<'a> {
    /// The storefront's id of the line: shipments name lines by it.
    pub line_id: &'a str,
    pub storefront_sku: &'a str,
    pub supplier_sku: &'a str,
    pub title: &'a str,
    pub variant_title: Option<&'a str>,
    pub quantity: u32,
    pub unit_price: Price<'a>,
    pub note: Option<&'a str>,
}

/// Minor units, never a float: 19.99 USD is 1999, 1500 JPY is 1500. Unit prices and the
/// declared value are written alike.
#[derive(Debug, Serialize)]
pub struct Price<'a> {
    pub amount_minor: i64,
    pub currency: &'a str,
}

impl<'a> OrderCreated<'a> {
    /// Refuses what no supplier could ship, so that every message sent matches the schema.
    pub fn new(order: &'a SupplierOrder) -> Result<Self, PluginError> {
        let refuse = |what: String| {
            PluginError::permanent(format!(
                "supplier order `{}` {what}",
                order.supplier_order_id
            ))
        };
        if order.lines.is_empty() {
            return Err(refuse("has no lines".into()));
        }
        if let Some(line) = order.lines.iter().find(|l| l.quantity == 0) {
            return Err(refuse(format!(
                "line `{}` has quantity 0",
                line.external_line_id
            )));
        }
        if let Some(line) = order
            .lines
            .iter()
            .find(|l| l.supplier_sku.trim().is_empty())
        {
            return Err(refuse(format!(
                "line `{}` has no supplier sku",
                line.external_line_id
            )));
        }
        // A negative value cannot be declared to customs: it is a fault in the policy, which the
        // shop must see rather than the supplier guess at.
        if let Some(value) = order.declared_value.as_ref().filter(|v| v.amount_minor < 0) {
            return Err(refuse(format!(
                "has a negative declared value ({} {})",
                value.amount_minor, value.currency
            )));
        }
        Ok(Self {
            supplier_order_id: &order.supplier_order_id,
            order: OrderInfo {
                external_id: &order.order_external_id,
                number: order.order_number.as_deref(),
                storefront: &order.storefront,
                placed_at: format_rfc3339(order.placed_at)?,
            },
            currency: &order.currency,
            buyer_note: order.buyer_note.as_deref(),
            ship_to: ShipTo::from(&order.ship_to),
            customer: Customer::from(&order.customer),
            lines: order.lines.iter().map(Line::from).collect(),
            declared_value: order.declared_value.as_ref().map(Price::from),
            // A blank name matches no carrier: leave it out rather than send it.
            avoid_carriers: order
                .avoid_carriers
                .iter()
                .flatten()
                .map(|c| c.trim())
                .filter(|c| !c.is_empty())
                .collect(),
            reship_of: order.reship_of.as_deref().filter(|r| !r.trim().is_empty()),
        })
    }
}

impl<'a> From<&'a Address> for ShipTo<'a> {
    fn from(a: &'a Address) -> Self {
        Self {
            name: a.name.as_deref(),
            company: a.company.as_deref(),
            line1: &a.line1,
            line2: a.line2.as_deref(),
            city: &a.city,
            province: a.province.as_deref(),
            province_code: a.province_code.as_deref(),
            postal_code: a.postal_code.as_deref(),
            country_code: &a.country_code,
            phone: a.phone.as_deref(),
        }
    }
}

impl<'a> From<&'a Contact> for Customer<'a> {
    fn from(c: &'a Contact) -> Self {
        Self {
            name: c.name.as_deref(),
            email: c.email.as_deref(),
            phone: c.phone.as_deref(),
        }
    }
}

impl<'a> From<&'a SupplierOrderLine> for Line<'a> {
    fn from(l: &'a SupplierOrderLine) -> Self {
        Self {
            line_id: &l.external_line_id,
            storefront_sku: &l.storefront_sku,
            supplier_sku: &l.supplier_sku,
            title: &l.title,
            variant_title: l.variant_title.as_deref(),
            quantity: l.quantity,
            unit_price: Price::from(&l.unit_price),
            note: l.note.as_deref(),
        }
    }
}

impl<'a> From<&'a Money> for Price<'a> {
    fn from(m: &'a Money) -> Self {
        Self {
            amount_minor: m.amount_minor,
            currency: &m.currency,
        }
    }
}

/// The body of the `order.created` message for `order`, produced at `now_ms`.
pub fn order_created(order: &SupplierOrder, now_ms: TimestampMs) -> Result<Vec<u8>, PluginError> {
    let envelope = Envelope {
        kind: ORDER_CREATED.to_string(),
        timestamp: format_rfc3339(now_ms)?,
        data: OrderCreated::new(order)?,
    };
    daifa_plugin_sdk::json::to_vec(&envelope)
}

/// The signed push of `order`. Its `webhook-id` is the order's idempotency key, the same on
/// every attempt, so the supplier can drop what it already has; the timestamp is the
/// attempt's, since receivers refuse signatures older than five minutes.
pub fn signed_order_created(
    secret: &str,
    order: &SupplierOrder,
    now_ms: TimestampMs,
) -> Result<SignedMessage, PluginError> {
    let body = order_created(order, now_ms)?;
    message::sign(secret, &order.idempotency_key, now_ms, body)
}

/// The optional JSON body of a 2xx or 409 answer.
#[derive(Debug, Default, Deserialize)]
struct AnswerBody {
    #[serde(default)]
    external_id: Option<ExternalId>,
    #[serde(default)]
    status: Option<String>,
}

/// Many suppliers number their orders; a number is taken as its decimal text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ExternalId {
    Text(String),
    Number(serde_json::Number),
}

/// Reads the supplier's answer to a push.
///
/// 2xx: received. 409: the supplier already has the order (an earlier attempt reached it),
/// which is the same success. 408, 429 and 5xx: try again later (the host keeps the
/// `Retry-After` of 429 and 503). Anything else, 3xx included since the host does not follow
/// redirects: refused for good.
pub fn read_answer(response: &OutboundResponse) -> Result<Submission, PluginError> {
    let status = response.status;
    match status {
        200..=299 | 409 => Ok(submission(&response.body)),
        408 | 429 | 500.. => Err(PluginError::transient(format!(
            "supplier endpoint answered {status}{}",
            excerpt(&response.body)
        ))),
        300..=399 => Err(redirect(response)),
        _ => Err(PluginError::permanent(format!(
            "supplier endpoint refused the order with {status}{}",
            excerpt(&response.body)
        ))),
    }
}

/// The answer body is optional and informative: once the supplier said 2xx it has the order,
/// so a body that is empty, not JSON or of another shape must not turn that into a failure
/// (a retry would be dropped as a duplicate and the order would look lost).
fn submission(body: &[u8]) -> Submission {
    let answer: AnswerBody = serde_json::from_slice(body).unwrap_or_default();
    let external_id = match answer.external_id {
        Some(ExternalId::Text(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Some(ExternalId::Number(n)) => Some(n.to_string()),
        None => None,
    };
    let status = match answer.status.as_deref() {
        Some("accepted") => SupplierOrderStatus::Accepted,
        _ => SupplierOrderStatus::Submitted,
    };
    Submission {
        external_id,
        status,
    }
}

/// A 3xx answer to any message: the host follows no redirect, so only the operator can fix it.
pub(crate) fn redirect(response: &OutboundResponse) -> PluginError {
    let to = response.header("location").unwrap_or("nowhere");
    PluginError::permanent(format!(
        "supplier endpoint answered {} redirecting to `{to}`: set the connection's `url` to the final address",
        response.status
    ))
}

/// The start of an error body, for the timeline: suppliers often say why in it.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body).chars().take(300).collect();
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use daifa_plugin_sdk::types::HttpHeader;

    fn answer(status: u16, body: &str) -> Result<Submission, PluginError> {
        read_answer(&OutboundResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn submitted(external_id: Option<&str>) -> Result<Submission, PluginError> {
        Ok(Submission {
            external_id: external_id.map(String::from),
            status: SupplierOrderStatus::Submitted,
        })
    }

    #[test]
    fn classifies_the_supplier_answer() {
        let accepted = Ok(Submission {
            external_id: Some("PO-1".into()),
            status: SupplierOrderStatus::Accepted,
        });
        assert_eq!(answer(200, ""), submitted(None));
        assert_eq!(
            answer(200, r#"{"external_id": "PO-1", "status": "submitted"}"#),
            submitted(Some("PO-1"))
        );
        assert_eq!(
            answer(200, r#"{"external_id": "PO-1", "status": "accepted"}"#),
            accepted
        );
        assert_eq!(
            answer(201, r#"{"external_id": 778812}"#),
            submitted(Some("778812"))
        );
        assert_eq!(answer(202, ""), submitted(None));
        assert_eq!(answer(204, ""), submitted(None));
        assert_eq!(
            answer(200, "OK"),
            submitted(None),
            "a body that is not JSON is still a receipt"
        );
        assert_eq!(answer(200, r#"{"external_id": ""}"#), submitted(None));
        assert_eq!(answer(200, r#"{"status": "done"}"#), submitted(None));
        assert_eq!(answer(409, ""), submitted(None));
        assert_eq!(
            answer(409, r#"{"external_id": "PO-1", "status": "accepted"}"#),
            accepted
        );

        for status in [408, 429, 500, 502, 503, 504] {
            let err = answer(status, "busy").unwrap_err();
            assert_eq!(err.kind(), "transient", "{status}");
            assert_eq!(
                err.message(),
                format!("supplier endpoint answered {status}: busy")
            );
        }
        for status in [400, 401, 403, 404, 410, 422] {
            assert_eq!(
                answer(status, "").unwrap_err().kind(),
                "permanent",
                "{status}"
            );
        }
        let err = answer(400, r#"{"error": "unknown sku YW-1"}"#).unwrap_err();
        assert_eq!(
            err.message(),
            r#"supplier endpoint refused the order with 400: {"error": "unknown sku YW-1"}"#
        );
    }

    #[test]
    fn a_redirect_names_where_it_points() {
        let response = OutboundResponse {
            status: 301,
            headers: vec![HttpHeader {
                name: "location".into(),
                value: "https://new.example/orders".into(),
            }],
            body: Vec::new(),
        };
        let err = read_answer(&response).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(
            err.message().contains("https://new.example/orders"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn refuses_orders_no_supplier_could_ship() {
        let mut order = fixtures::sample_order();
        order.lines[1].quantity = 0;
        let err = order_created(&order, fixtures::NOW_MS).unwrap_err();
        assert_eq!(
            err.message(),
            "supplier order `so_0195f3c28a10700080005d1e2f3a4b5c` line `14002` has quantity 0"
        );

        order.lines.clear();
        assert_eq!(
            order_created(&order, fixtures::NOW_MS).unwrap_err().kind(),
            "permanent"
        );
    }

    fn data(order: &SupplierOrder) -> serde_json::Value {
        let body: serde_json::Value =
            serde_json::from_slice(&order_created(order, fixtures::NOW_MS).unwrap()).unwrap();
        body["data"].clone()
    }

    #[test]
    fn policy_keys_are_written_exactly_when_set() {
        let mut order = fixtures::sample_order();
        let both = data(&order);
        assert_eq!(
            both["declared_value"],
            serde_json::json!({"amount_minor": 2500, "currency": "USD"})
        );
        assert_eq!(both["avoid_carriers"], serde_json::json!(["EMS", "DHL"]));

        order.avoid_carriers = None;
        let value_only = data(&order);
        assert!(value_only.get("declared_value").is_some());
        assert!(value_only.get("avoid_carriers").is_none(), "{value_only}");

        order.declared_value = None;
        order.avoid_carriers = Some(vec!["China Post".into()]);
        let carriers_only = data(&order);
        assert!(
            carriers_only.get("declared_value").is_none(),
            "{carriers_only}"
        );
        assert_eq!(
            carriers_only["avoid_carriers"],
            serde_json::json!(["China Post"])
        );

        // Nothing to avoid is not a key: the message is then the one sent before 1.1.
        for nothing in [
            None,
            Some(vec![]),
            Some(vec![" ".to_string(), String::new()]),
        ] {
            order.avoid_carriers = nothing.clone();
            let neither = data(&order);
            assert!(neither.get("declared_value").is_none(), "{nothing:?}");
            assert!(neither.get("avoid_carriers").is_none(), "{nothing:?}");
        }

        order.avoid_carriers = Some(vec![" EMS ".into(), "".into(), "DHL".into()]);
        assert_eq!(
            data(&order)["avoid_carriers"],
            serde_json::json!(["EMS", "DHL"])
        );
    }

    #[test]
    fn an_order_without_policy_keys_is_sent_as_before() {
        // The message of 1.0, key for key, in the same order: suppliers that sign-check or
        // snapshot it see no change.
        let mut order = fixtures::sample_order();
        order.declared_value = None;
        order.avoid_carriers = None;
        let body = order_created(&order, fixtures::NOW_MS).unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(
            text.ends_with(r#""note":"Engraving: Für Oma ❤"}]}}"#),
            "{text}"
        );
        let signed = signed_order_created(fixtures::SECRET, &order, fixtures::NOW_MS).unwrap();
        let signature = signed
            .headers
            .iter()
            .find(|h| h.name == "webhook-signature")
            .map(|h| h.value.as_str());
        // The signature the doc showed before 1.1, and the existing recorded cases still carry.
        assert_eq!(
            signature,
            Some("v1,SRLrjsbsL7kQR08oZoEevpdCDeMqVPlcOeVfCAj2ZKc=")
        );
    }

    #[test]
    fn refuses_a_negative_declared_value() {
        let mut order = fixtures::sample_order();
        order.declared_value = Some(Money {
            amount_minor: -1,
            currency: "USD".into(),
        });
        let err = order_created(&order, fixtures::NOW_MS).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert_eq!(
            err.message(),
            "supplier order `so_0195f3c28a10700080005d1e2f3a4b5c` has a negative declared value (-1 USD)"
        );
        order.declared_value = Some(Money {
            amount_minor: 0,
            currency: "USD".into(),
        });
        assert_eq!(data(&order)["declared_value"]["amount_minor"], 0);
    }

    #[test]
    fn absent_values_are_written_as_null() {
        let mut order = fixtures::sample_order();
        order.buyer_note = None;
        order.order_number = None;
        order.ship_to.line2 = None;
        let body: serde_json::Value =
            serde_json::from_slice(&order_created(&order, fixtures::NOW_MS).unwrap()).unwrap();
        assert_eq!(body["data"]["buyer_note"], serde_json::Value::Null);
        assert_eq!(body["data"]["order"]["number"], serde_json::Value::Null);
        assert!(
            body["data"]["ship_to"]
                .as_object()
                .unwrap()
                .contains_key("line2")
        );
    }
}
