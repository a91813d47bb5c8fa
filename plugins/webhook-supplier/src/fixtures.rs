//! Test data: the sample order of the doc's `order.created` example, and the doc's files.

use daifa_plugin_sdk::supplier::{SupplierOrder, SupplierOrderLine, UpdateRequest};
use daifa_plugin_sdk::types::{Address, Contact, Money, SupplierOrderRef, TimestampMs};
use std::time::{SystemTime, UNIX_EPOCH};

/// The Standard Webhooks test-vector secret (24 bytes).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// 2026-03-02T09:30:05Z, the example's `timestamp`.
pub const NOW_MS: TimestampMs = 1_772_443_805_000;
/// 2026-03-02T11:05:00Z, the `timestamp` of the `order.update_requested` example.
pub const UPDATE_NOW_MS: TimestampMs = 1_772_449_500_000;
pub const BUYER_NOTE: &str = "请用礼品包装 / gift wrap, colour: red";

/// The files of `docs/`, read at compile time so that a changed example recompiles the tests.
pub const DOC: &str = include_str!("../../../docs/supplier-webhook-protocol.md");

macro_rules! schema_file {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../docs/schemas/", $name, ".schema.json")),
        )
    };
}
macro_rules! example_file {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../docs/schemas/examples/", $name, ".json")),
        )
    };
}

/// (message name, schema).
pub const SCHEMAS: &[(&str, &str)] = &[
    schema_file!("order.created"),
    schema_file!("order.created.response"),
    schema_file!("supplier_order.accepted"),
    schema_file!("supplier_order.rejected"),
    schema_file!("supplier_order.shipped"),
    schema_file!("product.updated"),
    schema_file!("order.cancel_requested"),
    schema_file!("order.cancel_requested.response"),
    schema_file!("return.requested"),
    schema_file!("return.requested.response"),
    schema_file!("supplier_order.cancelled"),
    schema_file!("return.received"),
    schema_file!("return.inspected"),
    schema_file!("order.update_requested"),
    schema_file!("order.update_requested.response"),
    schema_file!("supplier_order.update_answered"),
];

/// (example name, example); an example's schema is the longest schema name it starts with.
pub const EXAMPLES: &[(&str, &str)] = &[
    example_file!("order.created"),
    example_file!("order.created.response"),
    example_file!("supplier_order.accepted"),
    example_file!("supplier_order.rejected"),
    example_file!("supplier_order.rejected.out_of_stock"),
    example_file!("supplier_order.shipped"),
    example_file!("supplier_order.shipped.rest"),
    example_file!("product.updated"),
    example_file!("product.updated.discontinued"),
    example_file!("order.cancel_requested"),
    example_file!("order.cancel_requested.response"),
    example_file!("return.requested"),
    example_file!("return.requested.response"),
    example_file!("supplier_order.cancelled"),
    example_file!("return.received"),
    example_file!("return.inspected"),
    example_file!("order.update_requested"),
    example_file!("order.update_requested.response"),
    example_file!("supplier_order.update_answered"),
];

pub fn example(name: &str) -> &'static str {
    EXAMPLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, e)| *e)
        .expect("no such example")
}

pub fn schema_of(example: &str) -> &'static str {
    SCHEMAS
        .iter()
        .filter(|(n, _)| example == *n || example.starts_with(&format!("{n}.")))
        .max_by_key(|(n, _)| n.len())
        .map(|(_, s)| *s)
        .expect("no schema for the example")
}

pub fn now_ms() -> TimestampMs {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(now.as_millis()).expect("milliseconds fit in i64")
}

/// Two lines of a Shopify order routed to one supplier, with the details that tend to get lost
/// on the way: a unicode buyer note, a line note, a missing company; and what the shop's policy
/// adds for the destination, a declared value and carriers to avoid.
pub fn sample_order() -> SupplierOrder {
    let usd = |amount_minor| Money {
        amount_minor,
        currency: "USD".into(),
    };
    SupplierOrder {
        supplier_order_id: "so_0195f3c28a10700080005d1e2f3a4b5c".into(),
        idempotency_key: "so_0195f3c28a10700080005d1e2f3a4b5c.submit".into(),
        order_external_id: "5861234567890".into(),
        order_number: Some("#1042".into()),
        storefront: "shopify".into(),
        placed_at: 1_772_442_764_000,
        currency: "USD".into(),
        buyer_note: Some(BUYER_NOTE.into()),
        ship_to: Address {
            name: Some("Jane Doe".into()),
            company: None,
            line1: "350 Fifth Avenue".into(),
            line2: Some("Suite 2100".into()),
            city: "New York".into(),
            province: Some("New York".into()),
            province_code: Some("NY".into()),
            postal_code: Some("10118".into()),
            country_code: "US".into(),
            phone: Some("+1 212 555 0100".into()),
        },
        customer: Contact {
            name: Some("Jane Doe".into()),
            email: Some("jane.doe@example.com".into()),
            phone: None,
        },
        lines: vec![
            SupplierOrderLine {
                external_line_id: "14001".into(),
                storefront_sku: "TEE-RED-M".into(),
                supplier_sku: "YW-88231-RD-M".into(),
                title: "Organic cotton T-shirt".into(),
                variant_title: Some("Red / M".into()),
                quantity: 2,
                unit_price: usd(1999),
                note: None,
            },
            SupplierOrderLine {
                external_line_id: "14002".into(),
                storefront_sku: "MUG-ENGRAVED".into(),
                supplier_sku: "YW-10442".into(),
                title: "Engraved enamel mug".into(),
                variant_title: None,
                quantity: 1,
                unit_price: usd(1250),
                note: Some("Engraving: Für Oma ❤".into()),
            },
        ],
        declared_value: Some(usd(2500)),
        avoid_carriers: Some(vec!["EMS".into(), "DHL".into()]),
        reship_of: None,
    }
}

/// The documented update of the sample order: the buyer corrected the address (another
/// building, no suite) and kept one T-shirt of the two, without the mug; the shop's policy
/// declares the smaller parcel's value.
pub fn sample_update() -> UpdateRequest {
    let mut updated = sample_order();
    updated.ship_to.line1 = "20 West 34th Street".into();
    updated.ship_to.line2 = None;
    updated.ship_to.postal_code = Some("10001".into());
    updated.lines.truncate(1);
    updated.lines[0].quantity = 1;
    updated.declared_value = Some(Money {
        amount_minor: 1999,
        currency: "USD".into(),
    });
    UpdateRequest {
        order: SupplierOrderRef {
            supplier_order_id: updated.supplier_order_id.clone(),
            external_id: Some("YW-PO-778812".into()),
        },
        idempotency_key: "upd_0195f4127e3b70008000a1b2c3d4e5f6".into(),
        updated,
        changes: vec!["ship-to".into(), "lines".into()],
    }
}
