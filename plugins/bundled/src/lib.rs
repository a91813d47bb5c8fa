//! The plugins that ship with the gateway, built to wasm components by `build.rs`.

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

/// A bundled plugin by name.
pub fn get(name: &str) -> Option<&'static BundledPlugin> {
    PLUGINS.iter().find(|p| p.name == name)
}
