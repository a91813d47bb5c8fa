//! Daifa, the integration gateway for dropshipping shops.
//!
//! An order's path through the modules (see ARCHITECTURE.md):
//! [`ingest`] (raw request kept, plugin verifies and parses) → [`orders`] (canonical order
//! stored) → [`routing`] (supplier orders, or a hold) → [`jobs`] + [`worker`] + [`dispatch`]
//! (pushed to the supplier) → [`ingest::supplier_events`] + [`fulfilment`] (the supplier's
//! shipment comes back and is written back to the storefront). The layers the modules sit in
//! are drawn in ARCHITECTURE.md and checked by `tests/architecture.rs`.

pub mod admin;
pub mod aftersales;
pub mod app;
pub mod bench;
pub mod cache;
pub mod calls;
pub mod cancellation;
pub mod catalogue;
pub mod changes;
pub mod cli;
pub mod client;
pub mod clocks;
pub mod config;
pub mod connections;
pub mod db;
pub mod demo;
pub mod devkit;
pub mod dispatch;
pub mod error;
pub mod fulfilment;
pub mod ingest;
pub mod plugins;
pub mod policy;
pub mod polling;
pub mod replay;
pub mod routing;
pub mod secrets;
pub mod services;
pub mod shadow;
pub mod store;
pub mod telemetry;
pub mod tracking;
pub mod worker;

pub use app::Application;
pub use config::Settings;
pub use daifa_inputs::money;
pub use services::Services;
