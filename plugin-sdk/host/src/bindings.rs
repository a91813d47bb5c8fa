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
pub const WIT_VERSION: &str = "0.5.0";

/// The version line of [`WIT_VERSION`] (`0.x`: the minor plays the major's part).
pub const WIT_LINE: &str = "0.5";

/// Whether the host loads plugins built against WIT `version`: this version and, by the
/// versioning policy (`plugin-sdk/WIT-VERSIONING.md`), the previous minor version. For `0.x`
/// versions the minor plays the part of the major: `0.4.*` are one line, `0.5.*` the next.
/// Pre-releases are not loaded.
pub fn supports_wit(version: &semver::Version) -> bool {
    version.major == 0 && (version.minor == 4 || version.minor == 5) && version.pre.is_empty()
}

/// The previous minor version of the package (`plugin-sdk/wit-archive/0.4.0/`): plugins built
/// against it keep loading. Their values are converted to and from the current types, which
/// have the same shape (a minor version only adds), through their serde form.
pub mod v0_4 {
    /// The storefront world of 0.4.
    pub mod channel_world {
        wasmtime::component::bindgen!({
            world: "channel-plugin",
            path: "../wit-archive/0.4.0",
            imports: {
                "daifa:plugin/host.http-fetch": async,
                default: trappable,
            },
            exports: { default: async },
            additional_derives: [serde::Serialize, serde::Deserialize],
        });
    }

    /// The supplier world of 0.4.
    pub mod supplier_world {
        wasmtime::component::bindgen!({
            world: "supplier-plugin",
            path: "../wit-archive/0.4.0",
            exports: { default: async },
            additional_derives: [serde::Serialize, serde::Deserialize],
            with: {
                "daifa:plugin/types": super::channel_world::daifa::plugin::types,
                "daifa:plugin/host": super::channel_world::daifa::plugin::host,
            },
        });
    }

    /// The carrier world of 0.4.
    pub mod carrier_world {
        wasmtime::component::bindgen!({
            world: "carrier-plugin",
            path: "../wit-archive/0.4.0",
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

#[cfg(test)]
mod tests {
    use super::{channel, convert, supports_wit, types, v0_4};

    fn money(amount_minor: i64) -> types::Money {
        types::Money {
            amount_minor,
            currency: "EUR".into(),
        }
    }

    /// An order of the current version, with the fields 0.4.0 added set.
    fn order() -> types::Order {
        types::Order {
            external_id: "1001".into(),
            order_number: Some("#1001".into()),
            storefront: "test".into(),
            currency: "EUR".into(),
            subtotal: money(1000),
            shipping: money(500),
            tax: money(0),
            total: money(1500),
            placed_at: 1_700_000_000_000,
            buyer_note: Some("blue".into()),
            customer: types::Contact {
                name: Some("Ada".into()),
                email: None,
                phone: None,
            },
            shipping_address: None,
            lines: vec![types::OrderLine {
                external_line_id: "l1".into(),
                storefront_sku: "SKU-1".into(),
                title: "Mug".into(),
                variant_title: None,
                quantity: 2,
                unit_price: money(500),
                note: None,
            }],
            payment: Some(types::PaymentStatus::PartiallyRefunded),
            updated_at: Some(1_700_000_100_000),
        }
    }

    #[test]
    fn the_loaded_wit_versions_are_the_current_and_previous_minor() {
        let loads = |v: &str| supports_wit(&semver::Version::parse(v).expect("a version"));
        for version in ["0.4.0", "0.4.7", "0.5.0", "0.5.2"] {
            assert!(loads(version), "{version}");
        }
        for version in [
            "0.3.0",
            "0.3.9",
            "0.6.0",
            "1.5.0",
            "0.5.0-rc.1",
            "0.4.1-alpha",
        ] {
            assert!(!loads(version), "{version}");
        }
        assert!(loads(super::WIT_VERSION));
    }

    /// 0.5.0 added a function and its types only: an order (with the payment and update time
    /// 0.4.0 added) crosses to a 0.4 plugin and back whole.
    #[test]
    fn an_order_converts_to_0_4_and_back_whole() {
        let old: v0_4::types::Order = convert(order()).expect("0.5 to 0.4");
        let event =
            v0_4::channel_world::exports::daifa::plugin::channel::ChannelEvent::OrderPlaced(old);
        let current: channel::ChannelEvent = convert(event).expect("0.4 to 0.5");
        assert_eq!(current, channel::ChannelEvent::OrderPlaced(order()));
    }

    /// A current value given to a 0.4 plugin keeps every field 0.4 has.
    #[test]
    fn an_order_given_to_a_0_4_plugin_keeps_its_payment() {
        let old: v0_4::types::Order = convert(order()).expect("0.5 to 0.4");
        let json = serde_json::to_value(&old).expect("serializes");
        assert_eq!(json["payment"], "PartiallyRefunded");
        assert_eq!(json["updated_at"], 1_700_000_100_000_i64);
        assert_eq!(json["external_id"], "1001");
        assert_eq!(json["lines"][0]["quantity"], 2);
        assert_eq!(json["customer"]["name"], "Ada");
    }

    /// A plugin error keeps its case and message both ways.
    #[test]
    fn plugin_errors_convert_case_for_case() {
        let old: v0_4::types::PluginError =
            convert(types::PluginError::Transient("later".into())).expect("0.5 to 0.4");
        let back: types::PluginError = convert(old).expect("0.4 to 0.5");
        assert_eq!(back, types::PluginError::Transient("later".into()));
    }
}
