//! `PUT /api/v1/policies/{name}` on any body (a first byte picks the policy): the document
//! merged over the defaults and checked. It must refuse it or give the policy in force, which
//! must itself pass the check (what `GET` shows can be put back); the after-sales policy's next
//! refund sweep must come after any time; never panic.
#![no_main]

use daifa_inputs::policy::{self, AfterSalesPolicy, NAMES, Policy, RoutingPolicy};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn defaults(name: &str) -> Value {
    match name {
        RoutingPolicy::NAME => serde_json::to_value(RoutingPolicy::default()),
        _ => serde_json::to_value(AfterSalesPolicy::default()),
    }
    .expect("the defaults are JSON")
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, body)) = input.split_first() else {
        return;
    };
    let name = NAMES[usize::from(selector) % NAMES.len()];
    let Ok(document) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    if !document.is_object() {
        return;
    }
    let mut value = defaults(name);
    policy::merge(&mut value, &document);
    let Ok(in_force) = policy::check(name, value) else {
        return;
    };
    if let Err(e) = policy::check(name, in_force.clone()) {
        panic!("the policy in force is refused when put back: {e}\n{in_force}");
    }
    if name == AfterSalesPolicy::NAME {
        let p: AfterSalesPolicy = serde_json::from_value(in_force).expect("checked");
        // From the epoch to the year 2100, in milliseconds.
        for now in [0, 1_796_256_000_000, 4_102_444_800_000] {
            let next = p.next_sweep(now).expect("checked at 0");
            assert!(next > now, "the next sweep {next} is not after {now}");
        }
    }
});
