//! The `webhook-supplier` adapter: Daifa's own signed-webhook protocol for suppliers that have
//! no API of their own, or that would rather receive orders than be polled.
//!
//! Daifa pushes each supplier order to the connection's `url` as a Standard Webhooks message
//! (`order.created`); the supplier calls back `POST /hooks/{connection}` with
//! `supplier_order.accepted`, `.rejected` and `.shipped`, and with `product.updated` when its
//! catalogue changes, signed with the same secret. The protocol is written for suppliers' developers in `docs/supplier-webhook-protocol.md`, with a
//! JSON Schema per message in `docs/schemas/`.
//!
//! After-sales (revision 1.2): Daifa sends `order.cancel_requested` and `return.requested` to
//! the same `url`; the supplier answers, and calls back with `supplier_order.cancelled`,
//! `return.received` and `return.inspected`.
//!
//! Changes to an order not yet shipped (revision 1.3): Daifa sends `order.update_requested`
//! with the whole order as it now is; the supplier answers `applied`, `refused` or `pending`,
//! and a `pending` later with `supplier_order.update_answered`.
//!
//! Code map: [`message`] holds the envelope and the signature both directions share, [`push`]
//! builds `order.created` and reads the supplier's answer, [`aftersales`] does the same for
//! cancellations and returns, [`update`] for changes to an order, [`callback`] verifies and
//! reads callbacks. They are plain functions, given the secret and the time, so they run
//! natively in tests; only the [`SupplierPlugin`] impl below touches the host.

pub mod aftersales;
pub mod callback;
pub mod message;
pub mod push;
pub mod update;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod protocol_tests;

use daifa_plugin_sdk::connection;
use daifa_plugin_sdk::http::Request;
use daifa_plugin_sdk::log;
use daifa_plugin_sdk::supplier::{
    CancelRequest, ReturnAuthorization, ReturnRequest, Submission, SupplierInbound, SupplierOrder,
    SupplierPlugin, SupplierPollResult, UpdateAnswer, UpdateRequest,
};
use daifa_plugin_sdk::types::{
    InboundRequest, OutboundResponse, PluginError, PollRequest, SupplierOrderStatus, TimestampMs,
};
use message::SignedMessage;

/// Setting: the supplier's endpoint that receives `order.created`.
pub const URL_SETTING: &str = "url";
/// Secret: the `whsec_...` key both sides sign with.
pub const SIGNING_SECRET: &str = "signing_secret";

/// The plugin as the host sees it.
pub struct WebhookSupplier;

impl SupplierPlugin for WebhookSupplier {
    fn submit_order(order: SupplierOrder) -> Result<Submission, PluginError> {
        let response = send_signed(|secret, now| push::signed_order_created(secret, &order, now))?;
        push::read_answer(&response)
    }

    fn handle_callback(request: InboundRequest) -> Result<SupplierInbound, PluginError> {
        let secret = connection::required_secret(SIGNING_SECRET)?;
        callback::handle(&secret, &request)
    }

    /// The protocol has no read-only endpoint to call: the check is that the URL and the signing
    /// secret are usable (the secret decodes as a Standard Webhooks key).
    fn check_connection() -> Result<String, PluginError> {
        let url = connection::required_setting(URL_SETTING)?;
        let secret = connection::required_secret(SIGNING_SECRET)?;
        // Signing a probe fails the way a push would with a key that is not a whsec_ key.
        message::sign(&secret, "check", 0, b"{}".to_vec())?;
        Ok(format!("orders are pushed to {url}, signed"))
    }

    /// The protocol pushes: suppliers call back, there is nothing to poll.
    fn poll(_request: PollRequest) -> Result<SupplierPollResult, PluginError> {
        Err(PluginError::unsupported(
            "the webhook protocol pushes: suppliers call back, nothing is polled",
        ))
    }

    fn cancel_order(request: CancelRequest) -> Result<SupplierOrderStatus, PluginError> {
        let response =
            send_signed(|secret, now| aftersales::signed_cancel_requested(secret, &request, now))?;
        aftersales::read_cancel_answer(&response)
    }

    fn authorize_return(request: ReturnRequest) -> Result<ReturnAuthorization, PluginError> {
        let response =
            send_signed(|secret, now| aftersales::signed_return_requested(secret, &request, now))?;
        aftersales::read_return_answer(&response)
    }

    fn update_order(request: UpdateRequest) -> Result<UpdateAnswer, PluginError> {
        let response =
            send_signed(|secret, now| update::signed_update_requested(secret, &request, now))?;
        let answered = update::read_update_answer(&response)?;
        // The WIT's answer has no room for the supplier's words: the log keeps them, tagged by
        // the host with the connection.
        if let Some(reason) = &answered.reason {
            log::info(&format!(
                "supplier order `{}`: update `{}` {}: {reason}",
                request.order.supplier_order_id,
                request.idempotency_key,
                update::status_name(answered.answer)
            ));
        }
        Ok(answered.answer)
    }
}

/// Every message Daifa sends goes the same way: signed with the connection's secret at this
/// attempt's time, POSTed to its `url`.
fn send_signed(
    sign: impl FnOnce(&str, TimestampMs) -> Result<SignedMessage, PluginError>,
) -> Result<OutboundResponse, PluginError> {
    let url = connection::required_setting(URL_SETTING)?;
    let secret = connection::required_secret(SIGNING_SECRET)?;
    let signed = sign(&secret, daifa_plugin_sdk::time::now_ms())?;
    Request::post(url)
        .headers(signed.headers)
        .body(signed.body)
        .send()
}

// Only in the component: natively the cdylib would export the WIT names
// (`daifa:plugin/supplier@0.1.0#submit-order`), which the native linker's version script
// refuses, and native tests call the plain functions anyway.
#[cfg(target_arch = "wasm32")]
daifa_plugin_sdk::supplier::export_supplier_plugin!(WebhookSupplier);
