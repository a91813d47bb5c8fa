//! The Shopify adapter on any body, correctly signed (so that the fuzzer reaches the parsing
//! of every topic, not only the signature check), under each topic it takes. It must answer
//! an error or events, never panic.
#![no_main]

use daifa_plugin_sdk::signature::hmac_sha256_base64;
use daifa_plugin_sdk::types::{HttpHeader, InboundRequest};
use daifa_plugin_shopify::webhook::{Verifier, handle_received};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-secret";
const SHOP: &str = "fuzz.myshopify.com";
const TOPICS: [&str; 8] = [
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/cancelled",
    "refunds/create",
    "returns/request",
    "disputes/create",
    "app/uninstalled",
];

fn header(name: &str, value: &str) -> HttpHeader {
    HttpHeader {
        name: name.into(),
        value: value.into(),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    let topic = TOPICS[usize::from(selector) % TOPICS.len()];
    let request = InboundRequest {
        method: "POST".into(),
        path: "/hooks/shop".into(),
        headers: vec![
            header("x-shopify-topic", topic),
            header("x-shopify-hmac-sha256", &hmac_sha256_base64(SECRET, body)),
            header("x-shopify-shop-domain", SHOP),
            header("x-shopify-webhook-id", "fuzz-delivery"),
        ],
        body: body.to_vec(),
    };
    let verifier = Verifier {
        secret: SECRET,
        shop_domain: SHOP,
    };
    let _ = handle_received(verifier, &request, Some(1_700_000_000_000));
});
