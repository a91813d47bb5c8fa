//! A plugin built against `daifa:plugin@0.4.0` (`plugin-sdk/wit-archive/0.4.0/`), the previous
//! minor version of the WIT package: what a plugin built with the 0.4 SDK is. The host must keep
//! loading it and calling its functions, host imports included (`config`, `log`, `now-ms`,
//! `http-fetch`), its values converted to and from the current types, although the current
//! package has gained the storefront's `cancel-order` (0.5.0).
//!
//! It is installed as a channel plugin (`daifa-plugin.toml`). So that the host's previous-minor
//! path of every kind is tested, the component exports the 0.3 `supplier` and `carrier`
//! interfaces too: the harness loads the same bytes as a supplier and as a carrier plugin.
//!
//! | function | answer |
//! |---|---|
//! | `channel.handle-inbound` | body `order:<id>`: an `order-placed` event of order `<id>` (paid, updated at 1 700 000 000 000), delivery `legacy-order-<id>`; otherwise no event, delivery `legacy-true`; the topic is the `prefix` setting then the body |
//! | `channel.push-fulfillment` | GETs the `url` setting; the fulfillment's id is `<shipment-id>:<status>` |
//! | `channel.poll` | no event; the next cursor is the `prefix` setting then the request's cursor plus one (0 without one) |
//! | `channel.refund` | the refund's id is `refund-<case-id>-<amount-minor>` |
//! | `channel.decide-return` | ok when approved; declined: `permanent("declined <case-id>")` |
//! | `check-connection` (each interface) | `legacy <kind>, prefix "<prefix>"` |
//! | `supplier.submit-order` | `accepted`, the supplier's id `legacy-<supplier-order-id>` |
//! | `supplier.handle-callback` | an `accepted` event of the supplier order the body names |
//! | `supplier.poll` | as `channel.poll` |
//! | `supplier.cancel-order` | `cancellation-accepted`; with a reason: `cancellation-rejected` |
//! | `supplier.authorize-return` | the RMA `rma-<case-id>` |
//! | `supplier.update-order` | `applied`; when the changes name `ship-to`: `requested` |
//! | `carrier.register` | the carrier code as given, the id `legacy-<tracking-number>` |
//! | `carrier.fetch-tracking` | each parcel `in-transit` |
//! | `carrier.handle-webhook` | the body as the topic, no update |
//!
//! When the WIT package gains its next minor version, this plugin moves to the archive of the
//! version before it (plugin-sdk/WIT-VERSIONING.md).

// The generated bindings and export glue are unsafe code (the SDK confines them the same way).
#![allow(unsafe_code)]

wit_bindgen::generate!({
    // The three worlds of 0.4 in one component; each interface as that version's SDK built it.
    inline: "
        package daifa-testing:legacy;

        world legacy {
            include daifa:plugin/channel-plugin@0.4.0;
            include daifa:plugin/supplier-plugin@0.4.0;
            include daifa:plugin/carrier-plugin@0.4.0;
        }
    ",
    path: "../../../plugin-sdk/wit-archive/0.4.0",
    world: "daifa-testing:legacy/legacy",
    generate_all,
});

use daifa::plugin::host::{self, LogLevel};
use daifa::plugin::types::{
    Contact, InboundRequest, Money, Order, OutboundRequest, PaymentStatus, PluginError,
    PollRequest, SupplierOrderRef, SupplierOrderStatus, TrackingStatus, TrackingUpdate,
};
use exports::daifa::plugin::carrier::{CarrierInbound, Parcel, Registration};
use exports::daifa::plugin::channel::{
    ChannelEvent, FulfillmentRef, FulfillmentRequest, Inbound, PollResult, RefundRef,
    RefundRequest, ReturnDecision,
};
use exports::daifa::plugin::supplier::{
    CancelRequest, ReturnAuthorization, ReturnRequest, Submission, SupplierEvent, SupplierInbound,
    SupplierOrder, SupplierPollResult, UpdateAnswer, UpdateRequest,
};

struct Legacy;

fn prefix() -> String {
    host::config("prefix").unwrap_or_default()
}

fn checked(kind: &str) -> String {
    format!("legacy {kind}, prefix {:?}", prefix())
}

/// The `prefix` setting then the request's cursor plus one.
fn next_cursor(request: &PollRequest) -> String {
    let prefix = prefix();
    let last = request
        .cursor
        .as_deref()
        .and_then(|c| c.strip_prefix(prefix.as_str()))
        .and_then(|n| n.parse::<u64>().ok());
    format!("{prefix}{}", last.map_or(0, |n| n + 1))
}

/// A 0.4 order, with the payment status and update time 0.4.0 added.
fn order(external_id: &str) -> Order {
    let eur = |amount_minor| Money {
        amount_minor,
        currency: "EUR".into(),
    };
    Order {
        external_id: external_id.into(),
        order_number: Some(format!("#{external_id}")),
        storefront: "legacy".into(),
        currency: "EUR".into(),
        subtotal: eur(1000),
        shipping: eur(0),
        tax: eur(0),
        total: eur(1000),
        placed_at: host::now_ms(),
        buyer_note: None,
        customer: Contact {
            name: Some("Legacy Buyer".into()),
            email: None,
            phone: None,
        },
        shipping_address: None,
        lines: Vec::new(),
        payment: Some(PaymentStatus::Paid),
        updated_at: Some(1_700_000_000_000),
    }
}

impl exports::daifa::plugin::channel::Guest for Legacy {
    fn handle_inbound(request: InboundRequest) -> Result<Inbound, PluginError> {
        host::log(LogLevel::Info, "legacy plugin called");
        let body = String::from_utf8_lossy(&request.body);
        let events = match body.strip_prefix("order:") {
            Some(id) => vec![ChannelEvent::OrderPlaced(order(id))],
            None => Vec::new(),
        };
        // An order's delivery is its own; anything else shares one id (a redelivery).
        let delivery_id = match body.strip_prefix("order:") {
            Some(id) => format!("legacy-order-{id}"),
            None => format!("legacy-{}", host::now_ms() > 0),
        };
        Ok(Inbound {
            delivery_id: Some(delivery_id),
            topic: Some(format!("{}{body}", prefix())),
            events,
        })
    }

    fn push_fulfillment(request: FulfillmentRequest) -> Result<FulfillmentRef, PluginError> {
        let url = host::config("url").ok_or_else(|| PluginError::Permanent("no url".into()))?;
        let response = host::http_fetch(&OutboundRequest {
            method: "GET".into(),
            url,
            headers: Vec::new(),
            body: Vec::new(),
        })
        .map_err(|e| PluginError::Transient(format!("{e:?}")))?;
        Ok(FulfillmentRef {
            external_id: format!("{}:{}", request.shipment_id, response.status),
        })
    }

    fn check_connection() -> Result<String, PluginError> {
        Ok(checked("channel"))
    }

    fn poll(request: PollRequest) -> Result<PollResult, PluginError> {
        Ok(PollResult {
            events: Vec::new(),
            next_cursor: Some(next_cursor(&request)),
            more: false,
            skipped: Vec::new(),
        })
    }

    fn refund(request: RefundRequest) -> Result<RefundRef, PluginError> {
        Ok(RefundRef {
            external_id: format!("refund-{}-{}", request.case_id, request.amount.amount_minor),
        })
    }

    fn decide_return(decision: ReturnDecision) -> Result<(), PluginError> {
        if decision.approved {
            Ok(())
        } else {
            Err(PluginError::Permanent(format!(
                "declined {}",
                decision.case_id
            )))
        }
    }
}

impl exports::daifa::plugin::supplier::Guest for Legacy {
    fn submit_order(order: SupplierOrder) -> Result<Submission, PluginError> {
        Ok(Submission {
            external_id: Some(format!("legacy-{}", order.supplier_order_id)),
            status: SupplierOrderStatus::Accepted,
        })
    }

    fn handle_callback(request: InboundRequest) -> Result<SupplierInbound, PluginError> {
        Ok(SupplierInbound {
            delivery_id: None,
            events: vec![SupplierEvent::Accepted(SupplierOrderRef {
                supplier_order_id: String::from_utf8_lossy(&request.body).into_owned(),
                external_id: None,
            })],
        })
    }

    fn check_connection() -> Result<String, PluginError> {
        Ok(checked("supplier"))
    }

    fn poll(request: PollRequest) -> Result<SupplierPollResult, PluginError> {
        Ok(SupplierPollResult {
            events: Vec::new(),
            next_cursor: Some(next_cursor(&request)),
            more: false,
            skipped: Vec::new(),
        })
    }

    fn cancel_order(request: CancelRequest) -> Result<SupplierOrderStatus, PluginError> {
        Ok(match request.reason {
            None => SupplierOrderStatus::CancellationAccepted,
            Some(_) => SupplierOrderStatus::CancellationRejected,
        })
    }

    fn authorize_return(request: ReturnRequest) -> Result<ReturnAuthorization, PluginError> {
        Ok(ReturnAuthorization {
            rma: Some(format!("rma-{}", request.case_id)),
            address: None,
            note: None,
        })
    }

    fn update_order(request: UpdateRequest) -> Result<UpdateAnswer, PluginError> {
        Ok(if request.changes.iter().any(|c| c == "ship-to") {
            UpdateAnswer::Requested
        } else {
            UpdateAnswer::Applied
        })
    }
}

impl exports::daifa::plugin::carrier::Guest for Legacy {
    fn register(parcel: Parcel) -> Result<Registration, PluginError> {
        Ok(Registration {
            carrier_code: Some(parcel.carrier_code),
            external_id: Some(format!("legacy-{}", parcel.tracking_number)),
        })
    }

    fn fetch_tracking(parcels: Vec<Parcel>) -> Result<Vec<TrackingUpdate>, PluginError> {
        Ok(parcels
            .into_iter()
            .map(|p| TrackingUpdate {
                tracking_number: p.tracking_number,
                carrier_code: Some(p.carrier_code),
                status: TrackingStatus::InTransit,
                detail: None,
                events: Vec::new(),
                estimated_delivery: None,
                delivered_at: None,
            })
            .collect())
    }

    fn handle_webhook(request: InboundRequest) -> Result<CarrierInbound, PluginError> {
        Ok(CarrierInbound {
            delivery_id: None,
            topic: Some(String::from_utf8_lossy(&request.body).into_owned()),
            updates: Vec::new(),
        })
    }

    fn check_connection() -> Result<String, PluginError> {
        Ok(checked("carrier"))
    }
}

// Only the component exports: the native build (workspace `cargo test`) cannot link WIT names.
#[cfg(target_arch = "wasm32")]
export!(Legacy);
