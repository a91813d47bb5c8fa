//! A channel plugin built against `daifa:plugin@0.2.0` (`plugin-sdk/wit-archive/0.2.0/`), the
//! previous minor version of the WIT package: what a plugin built with the 0.2 SDK is. The host
//! must keep loading it and calling its functions, host imports included (`config`, `log`,
//! `now-ms`, `http-fetch`), although the current package has gained `poll` (0.3.0).
//!
//! When the WIT package gains its next minor version, this plugin moves to the archive of the
//! version before it (plugin-sdk/WIT-VERSIONING.md).

// The generated bindings and export glue are unsafe code (the SDK confines them the same way).
#![allow(unsafe_code)]

wit_bindgen::generate!({
    world: "channel-plugin",
    path: "../../../plugin-sdk/wit-archive/0.2.0",
    generate_all,
});

use daifa::plugin::host::{self, LogLevel};
use daifa::plugin::types::{InboundRequest, OutboundRequest, PluginError};
use exports::daifa::plugin::channel::{FulfillmentRef, FulfillmentRequest, Guest, Inbound};

struct Legacy;

impl Guest for Legacy {
    /// Echoes the body as the topic, after the `prefix` setting.
    fn handle_inbound(request: InboundRequest) -> Result<Inbound, PluginError> {
        host::log(LogLevel::Info, "legacy plugin called");
        let prefix = host::config("prefix").unwrap_or_default();
        Ok(Inbound {
            delivery_id: Some(format!("legacy-{}", host::now_ms() > 0)),
            topic: Some(format!(
                "{prefix}{}",
                String::from_utf8_lossy(&request.body)
            )),
            events: Vec::new(),
        })
    }

    /// GETs the `url` setting and answers with the status it got.
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

    /// Answers with the `prefix` setting.
    fn check_connection() -> Result<String, PluginError> {
        Ok(format!(
            "legacy, prefix {:?}",
            host::config("prefix").unwrap_or_default()
        ))
    }
}

// Only the component exports: the native build (workspace `cargo test`) cannot link WIT names.
#[cfg(target_arch = "wasm32")]
export!(Legacy);
