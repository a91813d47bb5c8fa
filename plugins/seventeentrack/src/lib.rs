//! The 17TRACK carrier adapter of Daifa (tracking API v2.2).
//!
//! Registers shipped parcels with 17TRACK ([`ops::Client::register`]), fetches their tracking
//! for the gateway's polling ([`ops::Client::fetch_tracking`]), and turns 17TRACK's signed
//! pushes into tracking updates ([`webhook`]). [`status`] maps 17TRACK's statuses to the
//! canonical ones, [`track`] its `track_info` to a `tracking-update`, [`carriers`] shippers'
//! carrier names to 17TRACK's keys.
//!
//! Everything but the [`SeventeenTrack`] component itself is plain functions over bytes and
//! canonical types (the outbound operations take the transport as a closure), so it runs in
//! native tests; the component only adds what needs the host: settings, the secret, outbound
//! HTTP, logging.

// Tests unwrap freely; the library build is still held to `clippy::unwrap_used`.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod carriers;
pub mod config;
pub mod ops;
pub mod status;
pub mod track;
pub mod webhook;

use daifa_plugin_sdk::carrier::{CarrierInbound, CarrierPlugin, Parcel, Registration};
use daifa_plugin_sdk::types::{InboundRequest, OutboundRequest, OutboundResponse, TrackingUpdate};
use daifa_plugin_sdk::{PluginError, connection, http, log};

use crate::config::{API_KEY, Config};

/// The component.
pub struct SeventeenTrack;

/// How the component sends: through the host.
type HostSend = fn(OutboundRequest) -> Result<OutboundResponse, PluginError>;

/// Sends through the host (only to the connection's allowed hosts).
fn send(request: OutboundRequest) -> Result<OutboundResponse, PluginError> {
    http::Request::new(&request.method, request.url)
        .headers(request.headers)
        .body(request.body)
        .send()
}

/// The client of the connection the current call runs for.
fn client() -> Result<ops::Client<HostSend>, PluginError> {
    let api_key = connection::required_secret(API_KEY)?;
    Ok(ops::Client::new(Config::from_connection(), api_key, send))
}

impl CarrierPlugin for SeventeenTrack {
    fn register(parcel: Parcel) -> Result<Registration, PluginError> {
        let registered = client()?.register(&parcel)?;
        let carrier = registered
            .registration
            .carrier_code
            .as_deref()
            .unwrap_or("not reported");
        if registered.already {
            log::info(&format!(
                "{} was already registered with 17track (shipment {}, carrier {carrier})",
                parcel.tracking_number, parcel.shipment_id
            ));
        } else {
            log::info(&format!(
                "{} registered with 17track (shipment {}, carrier {carrier})",
                parcel.tracking_number, parcel.shipment_id
            ));
        }
        Ok(registered.registration)
    }

    fn fetch_tracking(parcels: Vec<Parcel>) -> Result<Vec<TrackingUpdate>, PluginError> {
        let fetched = client()?.fetch_tracking(&parcels)?;
        for note in &fetched.notes {
            log::debug(note);
        }
        if let Some(stopped) = &fetched.stopped_early {
            log::warn(stopped);
        }
        Ok(fetched.updates)
    }

    fn handle_webhook(request: InboundRequest) -> Result<CarrierInbound, PluginError> {
        let api_key = connection::required_secret(API_KEY)?;
        webhook::handle(&api_key, &request)
    }

    fn check_connection() -> Result<String, PluginError> {
        client()?.check_connection()
    }
}

// Only the wasm build exports the component: its export names ("daifa:plugin/carrier@0.3.0#...")
// are not valid symbol names for a native linker, and the native `cdylib` of `cargo test` needs none.
#[cfg(target_arch = "wasm32")]
daifa_plugin_sdk::carrier::export_carrier_plugin!(SeventeenTrack);
