//! The plugins that ship with the gateway, built to wasm components by `build.rs`.
//!
//! `PLUGINS` is what the gateway loads. `TEST_PLUGINS` holds components that misbehave on purpose
//! for the host's tests (`plugin-sdk/host/tests/`); they are built alongside so that the tests
//! run real components, and kept apart so that no connection can name them.

/// A plugin component embedded in the gateway binary.
#[derive(Debug, Clone, Copy)]
pub struct BundledPlugin {
    pub name: &'static str,
    /// `channel` or `supplier`.
    pub kind: &'static str,
    pub version: &'static str,
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// A bundled plugin by name (never one of `TEST_PLUGINS`).
pub fn get(name: &str) -> Option<&'static BundledPlugin> {
    PLUGINS.iter().find(|p| p.name == name)
}
