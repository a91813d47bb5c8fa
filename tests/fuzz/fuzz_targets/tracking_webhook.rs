//! The 17TRACK push adapter on any body, correctly signed (so that the fuzzer reaches the
//! parsing, not only the signature check): it must answer an error or tracking updates, never
//! panic.
#![no_main]

use daifa_plugin_sdk::types::{HttpHeader, InboundRequest};
use daifa_plugin_seventeentrack::webhook::{handle, sign};
use libfuzzer_sys::fuzz_target;

const API_KEY: &str = "fuzz-api-key";

fuzz_target!(|body: &[u8]| {
    let request = InboundRequest {
        method: "POST".into(),
        path: "/hooks/17track".into(),
        headers: vec![HttpHeader {
            name: "sign".into(),
            value: sign(API_KEY, body),
        }],
        body: body.to_vec(),
    };
    let _ = handle(API_KEY, &request);
});
