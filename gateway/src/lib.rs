//! Daifa, the integration gateway for dropshipping shops.
//!
//! An order's path through the modules (see ARCHITECTURE.md):
//! [`ingest`] (raw request kept, plugin verifies and parses) → [`orders`] (canonical order
//! stored) → [`routing`] (supplier orders, or a hold) → [`jobs`] + [`dispatch`] (pushed to the
//! supplier) → [`fulfilment`] (the supplier's shipment comes back and is written back to the
//! storefront).

pub mod admin;
pub mod aftersales;
pub mod app;
pub mod calls;
pub mod cancellation;
pub mod changes;
pub mod cli;
pub mod client;
pub mod config;
pub mod connections;
pub mod context;
pub mod db;
pub mod demo;
pub mod devkit;
pub mod dispatch;
pub mod error;
pub mod fulfilment;
pub mod ingest;
pub mod jobs;
pub mod orders;
pub mod plugins;
pub mod policy;
pub mod polling;
pub mod replay;
pub mod routing;
pub mod secrets;
pub mod shadow;
pub mod tasks;
pub mod telemetry;
pub mod tracking;

pub use app::{AppState, Application};
pub use config::Settings;
