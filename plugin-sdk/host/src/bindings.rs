//! Host bindings generated from `plugin-sdk/wit/`, one module per world.

/// The storefront world.
pub mod channel_world {
    wasmtime::component::bindgen!({
        world: "channel-plugin",
        path: "../wit",
        imports: {
            "daifa:plugin/host.http-fetch": async,
            default: trappable,
        },
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

/// The supplier world; shares the `types` and `host` bindings of the storefront world.
pub mod supplier_world {
    wasmtime::component::bindgen!({
        world: "supplier-plugin",
        path: "../wit",
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        with: {
            "daifa:plugin/types": super::channel_world::daifa::plugin::types,
            "daifa:plugin/host": super::channel_world::daifa::plugin::host,
        },
    });
}

/// The carrier world (since 0.3.0); shares the `types` and `host` bindings of the storefront world.
pub mod carrier_world {
    wasmtime::component::bindgen!({
        world: "carrier-plugin",
        path: "../wit",
        exports: { default: async },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
        with: {
            "daifa:plugin/types": super::channel_world::daifa::plugin::types,
            "daifa:plugin/host": super::channel_world::daifa::plugin::host,
        },
    });
}

pub use channel_world::daifa::plugin::{host, types};

/// The storefront interface's types.
pub mod channel {
    pub use super::channel_world::exports::daifa::plugin::channel::*;
}

/// The supplier interface's types.
pub mod supplier {
    pub use super::supplier_world::exports::daifa::plugin::supplier::*;
}

/// The carrier interface's types.
pub mod carrier {
    pub use super::carrier_world::exports::daifa::plugin::carrier::*;
}

use types::PluginError;

impl PluginError {
    /// The kind as a short, stable name ("bad-signature").
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadSignature(_) => "bad-signature",
            Self::BadPayload(_) => "bad-payload",
            Self::Unsupported(_) => "unsupported",
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "permanent",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::BadSignature(m)
            | Self::BadPayload(m)
            | Self::Unsupported(m)
            | Self::Transient(m)
            | Self::Permanent(m) => m,
        }
    }
}

/// The version of the `daifa:plugin` WIT package the host is generated from.
pub const WIT_VERSION: &str = "0.4.0";

/// The version line of [`WIT_VERSION`] (`0.x`: the minor plays the major's part).
pub const WIT_LINE: &str = "0.4";

/// Whether the host loads plugins built against WIT `version`: this version and, by the
/// versioning policy (`plugin-sdk/WIT-VERSIONING.md`), the previous minor version. For `0.x`
/// versions the minor plays the part of the major: `0.2.*` are one line, `0.3.*` the next.
pub fn supports_wit(version: &semver::Version) -> bool {
    version.major == 0 && (version.minor == 3 || version.minor == 4) && version.pre.is_empty()
}

/// The previous minor version of the package (`plugin-sdk/wit-archive/0.2.0/`): plugins built
/// against it keep loading. Their values are converted to and from the current types, which
/// have the same shape (a minor version only adds), through their serde form. 0.2 has no
/// carrier world: carrier plugins start at 0.3.
pub mod v0_2 {
    /// The storefront world of 0.2.
    pub mod channel_world {
        wasmtime::component::bindgen!({
            world: "channel-plugin",
            path: "../wit-archive/0.2.0",
            imports: {
                "daifa:plugin/host.http-fetch": async,
                default: trappable,
            },
            exports: { default: async },
            additional_derives: [serde::Serialize, serde::Deserialize],
        });
    }

    /// The supplier world of 0.2.
    pub mod supplier_world {
        wasmtime::component::bindgen!({
            world: "supplier-plugin",
            path: "../wit-archive/0.2.0",
            exports: { default: async },
            additional_derives: [serde::Serialize, serde::Deserialize],
            with: {
                "daifa:plugin/types": super::channel_world::daifa::plugin::types,
                "daifa:plugin/host": super::channel_world::daifa::plugin::host,
            },
        });
    }

    pub use channel_world::daifa::plugin::{host, types};
}

/// A value of one version's generated types as the same value of another's.
pub(crate) fn convert<A: serde::Serialize, B: serde::de::DeserializeOwned>(
    value: A,
) -> wasmtime::Result<B> {
    let json = serde_json::to_value(value).map_err(wasmtime::Error::msg)?;
    serde_json::from_value(json).map_err(wasmtime::Error::msg)
}
