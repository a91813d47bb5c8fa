//! The Shopify storefront adapter of Daifa.
//!
//! Inbound: verifies `orders/*` webhooks and translates the REST order JSON into canonical
//! orders and cancellations ([`webhook`], [`order`]), and `refunds/create` / `returns/request`
//! into after-sales cases ([`aftersales`]); polls the orders that changed through the GraphQL
//! Admin API, as a safety net for missed webhooks ([`poll`]). Outbound, through the GraphQL
//! Admin API: writes shipments back as fulfillments ([`fulfillment`]), refunds customers
//! ([`refund`]), answers their return requests ([`returns`]) and cancels orders the shop
//! cancelled for its suppliers ([`cancel`]).
//!
//! Everything but the [`Shopify`] component itself is plain functions over bytes and canonical
//! types, so it runs in native unit tests; the component only adds what needs the host: the
//! connection's settings and secrets, outbound HTTP, logging.

// Tests unwrap freely; the library build is still held to `clippy::unwrap_used`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod aftersales;
pub mod cancel;
pub mod config;
pub mod fulfillment;
pub mod graphql;
pub mod order;
pub mod poll;
pub mod refund;
pub mod returns;
pub mod webhook;

use daifa_plugin_sdk::channel::{
    CancelOrderRef, CancelOrderRequest, ChannelPlugin, FulfillmentRef, FulfillmentRequest, Inbound,
    PollResult, RefundRef, RefundRequest, ReturnDecision,
};
use daifa_plugin_sdk::types::{InboundRequest, PollRequest};
use daifa_plugin_sdk::{PluginError, connection, http, log, time};

use crate::config::{ACCESS_TOKEN, Config, WEBHOOK_SECRET};
use crate::fulfillment::Outcome;

/// The component.
pub struct Shopify;

impl ChannelPlugin for Shopify {
    fn handle_inbound(request: InboundRequest) -> Result<Inbound, PluginError> {
        let secret = connection::required_secret(WEBHOOK_SECRET)?;
        // One app's secret signs the webhooks of every shop it is installed on: without its
        // shop, a connection would take any of theirs.
        let shop_domain = connection::setting("shop_domain")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                PluginError::permanent(
                    "connection setting `shop_domain` is not set: webhooks are accepted only from the connection's own shop, which it names",
                )
            })?;
        let verifier = webhook::Verifier {
            secret: secret.as_bytes(),
            shop_domain: &shop_domain,
        };
        webhook::handle_received(verifier, &request, Some(time::now_ms()))
    }

    fn push_fulfillment(request: FulfillmentRequest) -> Result<FulfillmentRef, PluginError> {
        let admin = AdminApi::new(&Config::from_connection()?)?;
        let outcome = fulfillment::push(&request, |call| admin.send(call))?;
        match &outcome {
            Outcome::Created(id) => log::info(&format!(
                "fulfillment {id} created for order {} (shipment {})",
                request.order_external_id, request.shipment_id
            )),
            Outcome::AlreadyRecorded(id) => log::info(&format!(
                "shipment {} already recorded as fulfillment {id} of order {}",
                request.shipment_id, request.order_external_id
            )),
        }
        Ok(FulfillmentRef {
            external_id: outcome.fulfillment_id().to_string(),
        })
    }

    fn check_connection() -> Result<String, PluginError> {
        let config = Config::from_connection()?;
        connection::required_secret(WEBHOOK_SECRET)?;
        let admin = AdminApi::new(&config)?;
        graphql::shop_summary(&admin.send(&graphql::shop_query())?)
    }

    fn poll(request: PollRequest) -> Result<PollResult, PluginError> {
        let admin = AdminApi::new(&Config::from_connection()?)?;
        let polled = poll::poll(&request, time::now_ms(), |call| admin.send(call))?;
        for skipped in &polled.skipped {
            log::warn(skipped);
        }
        Ok(polled)
    }

    fn refund(request: RefundRequest) -> Result<RefundRef, PluginError> {
        let config = Config::from_connection()?;
        let admin = AdminApi::new(&config)?;
        let outcome = refund::push(&request, &config.api_version, |call| admin.send(call))?;
        match &outcome {
            refund::Outcome::Created(id) => log::info(&format!(
                "refund {id} created for order {} (case {})",
                request.order_external_id, request.case_id
            )),
            refund::Outcome::AlreadyRecorded(id) => log::info(&format!(
                "case {} already refunded as {id} of order {}",
                request.case_id, request.order_external_id
            )),
        }
        Ok(RefundRef {
            external_id: outcome.refund_id().to_string(),
        })
    }

    fn decide_return(decision: ReturnDecision) -> Result<(), PluginError> {
        // No Shopify return, nothing to answer: said before reading any setting.
        returns::return_id(&decision)?;
        let admin = AdminApi::new(&Config::from_connection()?)?;
        let outcome = returns::decide_return(&decision, |call| admin.send(call))?;
        let verb = if decision.approved {
            "approved"
        } else {
            "declined"
        };
        match outcome {
            returns::Outcome::Answered => log::info(&format!(
                "return {} of order {} {verb} (case {})",
                decision.external_id.as_deref().unwrap_or_default(),
                decision.order_external_id,
                decision.case_id
            )),
            returns::Outcome::AlreadyAnswered => log::info(&format!(
                "return {} of order {} was already {verb} (case {})",
                decision.external_id.as_deref().unwrap_or_default(),
                decision.order_external_id,
                decision.case_id
            )),
        }
        Ok(())
    }

    fn cancel_order(request: CancelOrderRequest) -> Result<CancelOrderRef, PluginError> {
        let config = Config::from_connection()?;
        let admin = AdminApi::new(&config)?;
        match cancel::cancel(&request, &config.api_version, |call| admin.send(call))? {
            cancel::Outcome::Cancelling { job_id } => {
                log::info(&format!(
                    "order {} is being cancelled on shopify (job {})",
                    request.order_external_id,
                    job_id.as_deref().unwrap_or("none")
                ));
                Ok(CancelOrderRef {
                    reference: job_id,
                    already_cancelled: false,
                })
            }
            cancel::Outcome::AlreadyCancelled => {
                log::info(&format!(
                    "order {} was already cancelled on shopify",
                    request.order_external_id
                ));
                Ok(CancelOrderRef {
                    reference: None,
                    already_cancelled: true,
                })
            }
        }
    }
}

/// The GraphQL Admin API of the connection's shop.
struct AdminApi {
    url: String,
    token: String,
}

impl AdminApi {
    fn new(config: &Config) -> Result<Self, PluginError> {
        Ok(Self {
            url: config.graphql_url(),
            token: connection::required_secret(ACCESS_TOKEN)?,
        })
    }

    /// Sends one call; the body of a 2xx answer.
    fn send(&self, call: &graphql::Call) -> Result<Vec<u8>, PluginError> {
        let response = http::Request::post(self.url.as_str())
            .header("accept", "application/json")
            .header("x-shopify-access-token", self.token.as_str())
            .json(call)?
            .send()?;
        graphql::check_status(&format!("POST {}", self.url), response).map(|r| r.body)
    }
}

// Only the wasm build exports the component: its export names ("daifa:plugin/channel@0.3.0#...")
// are not valid symbol names for a native linker, and the native `cdylib` of `cargo test` needs none.
#[cfg(target_arch = "wasm32")]
daifa_plugin_sdk::channel::export_channel_plugin!(Shopify);
