//! `POST /api/v1/offers` on any body: the body parsed as an offer and checked against a shop's
//! connections. It must answer an error or an offer that keeps the checks' promises (amounts in
//! bounds and not negative, with an ISO 4217 currency; countries as ISO 3166 alpha-2 codes;
//! connections of the right kind), never panic.
#![no_main]

use daifa_inputs::money;
use daifa_inputs::offer::{Connections, OfferInput, check};
use libfuzzer_sys::fuzz_target;

fn connections() -> Connections {
    [
        ("shop", "channel", "con_shop"),
        ("acme", "supplier", "con_acme"),
        ("post", "carrier", "con_post"),
    ]
    .into_iter()
    .map(|(name, kind, id)| (name.to_string(), (kind.to_string(), id.to_string())))
    .collect()
}

fuzz_target!(|body: &[u8]| {
    let Ok(input) = serde_json::from_slice::<OfferInput>(body) else {
        return;
    };
    let Ok(offer) = check(input, &connections()) else {
        return;
    };
    assert_eq!(offer.channel_connection_id, "con_shop");
    assert_eq!(offer.supplier_connection_id, "con_acme");
    for amount in [offer.unit_cost_minor, offer.shipping_cost_minor]
        .into_iter()
        .flatten()
    {
        let currency = offer.input.currency.as_deref().unwrap_or_default().trim();
        assert!((0..=money::MAX_MINOR).contains(&amount), "{amount}");
        assert!(
            money::format_major(amount, currency).is_some(),
            "{currency}"
        );
    }
    for country in &offer.input.ships_to {
        assert!(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()));
    }
    assert!(!offer.input.storefront_sku.trim().is_empty());
});
