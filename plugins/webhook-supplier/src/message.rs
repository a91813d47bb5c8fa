//! What both directions share: the envelope, the message types and the signature.
//!
//! The envelope is the one Standard Webhooks recommends, so that suppliers who already consume
//! Standard Webhooks from other platforms can reuse their receiving code unchanged.

use daifa_plugin_sdk::signature::standard;
use daifa_plugin_sdk::types::{HttpHeader, PluginError, TimestampMs};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Daifa → supplier: a new order to ship.
pub const ORDER_CREATED: &str = "order.created";
/// Supplier → Daifa: the supplier will ship the order.
pub const ORDER_ACCEPTED: &str = "supplier_order.accepted";
/// Supplier → Daifa: the supplier will not ship the order.
pub const ORDER_REJECTED: &str = "supplier_order.rejected";
/// Supplier → Daifa: a parcel left the supplier's warehouse.
pub const ORDER_SHIPPED: &str = "supplier_order.shipped";
/// Daifa → supplier: cancel an order, or stop its parcel (1.2).
pub const CANCEL_REQUESTED: &str = "order.cancel_requested";
/// Daifa → supplier: goods are coming back; where to (1.2).
pub const RETURN_REQUESTED: &str = "return.requested";
/// Supplier → Daifa: the answer to a cancellation, when it came later (1.2).
pub const ORDER_CANCELLED: &str = "supplier_order.cancelled";
/// Supplier → Daifa: returned goods arrived (1.2).
pub const RETURN_RECEIVED: &str = "return.received";
/// Supplier → Daifa: returned goods were inspected (1.2).
pub const RETURN_INSPECTED: &str = "return.inspected";
/// Daifa → supplier: an order it has not shipped changed; ship it as it now is (1.3).
pub const UPDATE_REQUESTED: &str = "order.update_requested";
/// Supplier → Daifa: the answer to an update, when it came later (1.3).
pub const UPDATE_ANSWERED: &str = "supplier_order.update_answered";
/// Supplier → Daifa: a product's cost, stock or lead time changed, or it is discontinued (1.1).
pub const PRODUCT_UPDATED: &str = "product.updated";

/// `{"type": "...", "timestamp": "RFC 3339", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event happened (RFC 3339); informational, the signature carries its own time.
    pub timestamp: String,
    pub data: T,
}

/// A body and the headers that go with it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedMessage {
    /// `content-type` and the three Standard Webhooks headers.
    pub headers: Vec<HttpHeader>,
    pub body: Vec<u8>,
}

/// Signs `body` as message `id` sent at `now_ms`: what Daifa does for every push and what a
/// supplier does for every callback (so the gateway's tests can play the supplier with it).
pub fn sign(
    secret: &str,
    id: &str,
    now_ms: TimestampMs,
    body: Vec<u8>,
) -> Result<SignedMessage, PluginError> {
    if id.is_empty() {
        return Err(PluginError::permanent("a message id cannot be empty"));
    }
    let mut headers = vec![HttpHeader {
        name: "content-type".into(),
        value: "application/json".into(),
    }];
    // The header counts whole seconds; flooring keeps a message signed at 12.999 s in second 12,
    // as the official libraries do.
    headers.extend(standard::sign(secret, id, now_ms.div_euclid(1000), &body)?);
    Ok(SignedMessage { headers, body })
}

/// Parses JSON into `T`; on failure the message names the field that did not fit
/// (`data.shipment.lines[0].quantity: invalid type: string "2", expected u32`).
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, PluginError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            PluginError::bad_payload(format!("invalid JSON body: {inner}"))
        } else if path == "." {
            PluginError::bad_payload(inner.to_string())
        } else {
            PluginError::bad_payload(format!("{path}: {inner}"))
        }
    })?;
    // Trailing bytes after the JSON value are refused, as `serde_json::from_slice` does.
    de.end()
        .map_err(|e| PluginError::bad_payload(format!("invalid JSON body: {e}")))?;
    Ok(value)
}
