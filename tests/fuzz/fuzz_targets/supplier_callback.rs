//! The supplier callback parser (the webhook-supplier plugin) on any verified body: it must
//! answer an error or one canonical event, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = daifa_plugin_webhook_supplier::callback::parse(body);
});
