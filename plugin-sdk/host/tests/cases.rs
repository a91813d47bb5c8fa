//! The recorded cases of the bundled plugins (`plugins/*/cases/`), run by [`CaseRunner`]
//! against the components the gateway ships, as `daifa plugin test` runs them.
//!
//! The webhook supplier's callbacks are signed months before the machine's clock: they verify
//! only because a case's `now_ms` also fixes the component's WASI wall clock.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use daifa_bundled_plugins::BundledPlugin;
use daifa_plugin_host::cases::{self, CaseRunner};
use daifa_plugin_host::{EngineConfig, Package, PluginSpec};
use std::path::Path;

fn runner(plugin: &BundledPlugin) -> CaseRunner {
    let manifest = Package::read(plugin.wasm).unwrap().manifest;
    let config = EngineConfig::default();
    let spec = PluginSpec {
        name: manifest.name.clone(),
        version: manifest.version.to_string(),
        kind: manifest.kind,
        limits: manifest.limits.resolve(&config.limits, &config.ceiling),
        // Every case gets a fresh instance: no case sees what an earlier one left behind.
        reuse_calls: 0,
    };
    CaseRunner::new(config, spec, plugin.wasm, Some(manifest)).unwrap()
}

async fn run_all(plugin: &str) -> usize {
    let bundled = daifa_bundled_plugins::get(plugin).unwrap();
    let mut runner = runner(bundled);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins")
        .join(plugin);
    let files = cases::discover(&dir).unwrap();
    for file in &files {
        let case = cases::load(file).unwrap_or_else(|e| panic!("{e}"));
        let outcome = runner.run(&case).await;
        assert!(
            outcome.passed(),
            "{plugin} case {}:\n{}",
            outcome.name,
            outcome.details()
        );
        assert!(outcome.http_matched);
    }
    files.len()
}

#[tokio::test]
async fn shopify_passes_its_recorded_cases() {
    assert!(run_all("shopify").await >= 5);
}

#[tokio::test]
async fn the_webhook_supplier_passes_its_recorded_cases() {
    assert!(run_all("webhook-supplier").await >= 5);
}

#[tokio::test]
async fn a_case_for_the_other_world_is_refused_without_a_call() {
    let mut runner = runner(daifa_bundled_plugins::get("shopify").unwrap());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/webhook-supplier");
    let case = cases::load(&dir.join("cases/submit-order.json")).unwrap();
    let outcome = runner.run(&case).await;
    assert_eq!(
        outcome.problems,
        ["`submit-order` is a supplier export; this plugin is a channel"]
    );
    assert_eq!(outcome.actual, None);
}

#[tokio::test]
async fn without_its_fixed_clock_a_recorded_callback_is_too_old() {
    let mut runner = runner(daifa_bundled_plugins::get("webhook-supplier").unwrap());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/webhook-supplier");
    let mut case = cases::load(&dir.join("cases/callback-accepted.json")).unwrap();
    case.case.now_ms = None;
    let outcome = runner.run(&case).await;
    assert!(!outcome.passed());
    let error = &outcome.actual.unwrap()["error"];
    assert_eq!(error["kind"], "bad-signature");
    assert_eq!(error["message"], "signature timestamp too old");
}
