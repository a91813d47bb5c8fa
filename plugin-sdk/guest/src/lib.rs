//! The guest SDK of Daifa plugins.
//!
//! A plugin is a Rust crate built for `wasm32-wasip2` that depends on this crate with exactly
//! one world feature (`channel`, `supplier` or `carrier`), implements that world's trait and exports it:
//!
//! ```ignore
//! use daifa_plugin_sdk::channel::{ChannelPlugin, export_channel_plugin};
//! struct MyShop;
//! impl ChannelPlugin for MyShop { /* handle_inbound, push_fulfillment */ }
//! // Only the component exports it: native builds (unit tests) cannot link the export names.
//! #[cfg(target_arch = "wasm32")]
//! export_channel_plugin!(MyShop);
//! ```
//!
//! Bindings are generated from the WIT package in `plugin-sdk/wit/`, the single source of truth
//! of the canonical schema. Keep translation logic in plain functions over these types: they run
//! natively in `cargo test` as well as inside the component.

// The generated export macros name the runtime through this crate's own path.
extern crate self as daifa_plugin_sdk;

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

mod bindings {
    wit_bindgen::generate!({
        world: "sdk",
        path: "../wit",
        runtime_path: "daifa_plugin_sdk::__private::wit_bindgen::rt",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        generate_all,
    });
}

/// The canonical schema: orders, lines, money, addresses, shipments, errors.
pub mod types {
    pub use crate::bindings::daifa::plugin::types::*;
}

/// Raw host imports; prefer the wrappers in [`http`], [`log`] and [`connection`].
pub mod host {
    pub use crate::bindings::daifa::plugin::host::*;
}

#[cfg(feature = "channel")]
pub mod channel {
    //! The storefront world: verify and parse webhooks, write fulfillments back.
    wit_bindgen::generate!({
        world: "channel-plugin",
        path: "../wit",
        runtime_path: "daifa_plugin_sdk::__private::wit_bindgen::rt",
        with: {
            "daifa:plugin/types@0.5.0": crate::types,
            "daifa:plugin/host@0.5.0": crate::host,
        },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        pub_export_macro: true,
        export_macro_name: "export_channel_plugin",
        default_bindings_module: "daifa_plugin_sdk::channel",
    });
    pub use self::exports::daifa::plugin::channel::Guest as ChannelPlugin;
    pub use self::exports::daifa::plugin::channel::*;
}

#[cfg(feature = "supplier")]
pub mod supplier {
    //! The supplier world: submit orders, verify and parse supplier callbacks.
    wit_bindgen::generate!({
        world: "supplier-plugin",
        path: "../wit",
        runtime_path: "daifa_plugin_sdk::__private::wit_bindgen::rt",
        with: {
            "daifa:plugin/types@0.5.0": crate::types,
            "daifa:plugin/host@0.5.0": crate::host,
        },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        pub_export_macro: true,
        export_macro_name: "export_supplier_plugin",
        default_bindings_module: "daifa_plugin_sdk::supplier",
    });
    pub use self::exports::daifa::plugin::supplier::Guest as SupplierPlugin;
    pub use self::exports::daifa::plugin::supplier::*;
}

#[cfg(feature = "carrier")]
pub mod carrier {
    //! The carrier world: register parcels with a tracking service, fetch their tracking, verify
    //! and parse its webhooks.
    wit_bindgen::generate!({
        world: "carrier-plugin",
        path: "../wit",
        runtime_path: "daifa_plugin_sdk::__private::wit_bindgen::rt",
        with: {
            "daifa:plugin/types@0.5.0": crate::types,
            "daifa:plugin/host@0.5.0": crate::host,
        },
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        pub_export_macro: true,
        export_macro_name: "export_carrier_plugin",
        default_bindings_module: "daifa_plugin_sdk::carrier",
    });
    pub use self::exports::daifa::plugin::carrier::Guest as CarrierPlugin;
    pub use self::exports::daifa::plugin::carrier::*;
}

pub mod connection;
pub mod error;
pub mod http;
pub mod json;
pub mod log;
pub mod money;
pub mod signature;
pub mod time;

pub use types::PluginError;
/// The result type of every plugin function.
pub type Result<T, E = PluginError> = std::result::Result<T, E>;
