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
/// versions the minor plays the part of the major: `0.3.*` are one line, `0.4.*` the next.
/// Pre-releases are not loaded.
pub fn supports_wit(version: &semver::Version) -> bool {
    version.major == 0 && (version.minor == 3 || version.minor == 4) && version.pre.is_empty()
}

/// The previous minor version of the package (`plugin-sdk/wit-archive/0.3.0/`): plugins built
/// against it keep loading. Their values are converted to and from the current types, which
/// have the same shape (a minor version only adds), through their serde form.
pub mod v0_3 {
    /// The storefront world of 0.3.
    pub mod channel_world {
        wasmtime::component::bindgen!({
            world: "channel-plugin",
            path: "../wit-archive/0.3.0",
            imports: {
                "daifa:plugin/host.http-fetch": async,
                default: trappable,
            },
            exports: { default: async },
            additional_derives: [serde::Serialize, serde::Deserialize],
        });
    }

    /// The supplier world of 0.3.
    pub mod supplier_world {
        wasmtime::component::bindgen!({
            world: "supplier-plugin",
            path: "../wit-archive/0.3.0",
            exports: { default: async },
            additional_derives: [serde::Serialize, serde::Deserialize],
            with: {
                "daifa:plugin/types": super::channel_world::daifa::plugin::types,
                "daifa:plugin/host": super::channel_world::daifa::plugin::host,
            },
        });
    }

    /// The carrier world of 0.3 (the version that introduced it).
    pub mod carrier_world {
        wasmtime::component::bindgen!({
            world: "carrier-plugin",
            path: "../wit-archive/0.3.0",
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
    use super::{channel, convert, supports_wit, types, v0_3};

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
        for version in ["0.3.0", "0.3.7", "0.4.0", "0.4.2"] {
            assert!(loads(version), "{version}");
        }
        for version in [
            "0.2.0",
            "0.2.9",
            "0.5.0",
            "1.4.0",
            "0.4.0-rc.1",
            "0.3.1-alpha",
        ] {
            assert!(!loads(version), "{version}");
        }
        assert!(loads(super::WIT_VERSION));
    }

    /// A 0.3 plugin's order gets `none` in the fields 0.4.0 added (serde's derive fills a
    /// missing `Option` field with `None`), and the rest is kept.
    #[test]
    fn an_order_of_0_3_converts_with_the_new_fields_none() {
        let old: v0_3::types::Order = convert(order()).expect("0.4 to 0.3");
        let event =
            v0_3::channel_world::exports::daifa::plugin::channel::ChannelEvent::OrderPlaced(old);
        let current: channel::ChannelEvent = convert(event).expect("0.3 to 0.4");
        let channel::ChannelEvent::OrderPlaced(current) = current else {
            panic!("an order-placed event stays one: {current:?}")
        };
        assert_eq!(current.payment, None);
        assert_eq!(current.updated_at, None);
        assert_eq!(
            current,
            types::Order {
                payment: None,
                updated_at: None,
                ..order()
            }
        );
    }

    /// A current value given to a 0.3 plugin loses the fields 0.3 does not have (serde ignores
    /// unknown fields) and keeps the others.
    #[test]
    fn an_order_of_0_4_converts_to_0_3_without_the_new_fields() {
        let old: v0_3::types::Order = convert(order()).expect("unknown fields are ignored");
        let json = serde_json::to_value(&old).expect("serializes");
        assert!(
            json.get("payment").is_none() && json.get("updated_at").is_none(),
            "{json}"
        );
        assert_eq!(json["external_id"], "1001");
        assert_eq!(json["lines"][0]["quantity"], 2);
        assert_eq!(json["customer"]["name"], "Ada");
    }

    /// A plugin error keeps its case and message both ways.
    #[test]
    fn plugin_errors_convert_case_for_case() {
        let old: v0_3::types::PluginError =
            convert(types::PluginError::Transient("later".into())).expect("0.4 to 0.3");
        let back: types::PluginError = convert(old).expect("0.3 to 0.4");
        assert_eq!(back, types::PluginError::Transient("later".into()));
    }
}
