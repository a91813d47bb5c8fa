//! Plugin packages and versions through the admin API and the CLI: install, inspect, refuse bad
//! packages, pin, upgrade and roll back a connection while traffic flows, and the allocator.

use super::*;
use daifa_plugin_host::manifest::{Package, repack, strip};

/// A bundled package as another version: same component, the manifest's version changed (and
/// `edit` applied to the manifest text).
fn as_version(plugin: &str, version: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    let bundled = daifa_bundled_plugins::get(plugin).expect("bundled").wasm;
    let manifest = Package::read(bundled).expect("a package").manifest_toml;
    repack(bundled, &edit(with_version(&manifest, version))).expect("repacks")
}

/// A manifest's text with its `version` replaced.
fn with_version(manifest: &str, version: &str) -> String {
    manifest
        .lines()
        .map(|line| {
            if line.starts_with("version = ") {
                format!("version = \"{version}\"")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A package with a manifest `pack` would refuse: the section written by hand.
fn with_raw_manifest(plugin: &str, manifest: &str) -> Vec<u8> {
    use wasm_encoder::ComponentSection as _;
    let mut bytes = strip(daifa_bundled_plugins::get(plugin).unwrap().wasm).unwrap();
    wasm_encoder::CustomSection {
        name: "daifa-plugin".into(),
        data: manifest.as_bytes().into(),
    }
    .append_to_component(&mut bytes);
    bytes
}

async fn install(app: &TestApp, bytes: Vec<u8>) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/plugins"))
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn error_of(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_install_side_by_side_and_bad_ones_are_refused_with_the_reason() {
    let app = TestApp::spawn_with(TestDb::new().await, |_| {}).await;
    let list = app.get_json("/api/v1/plugins").await;
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["source"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "seventeentrack 0.1.0 bundled",
            "shopify 0.5.0 bundled",
            "webhook-supplier 0.3.0 bundled"
        ]
    );

    // A second version installs beside the first; the same bytes again change nothing.
    let v2 = as_version("shopify", "0.6.0", |m| m);
    let r = install(&app, v2.clone()).await;
    assert_eq!(r.status(), 201);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["version"], "0.6.0");
    assert_eq!(info["source"], "upload");
    assert_eq!(install(&app, v2).await.status(), 200);
    let versions = app.get_json("/api/v1/plugins/shopify").await;
    let versions: Vec<_> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].clone())
        .collect();
    assert_eq!(versions, [json!("0.6.0"), json!("0.5.0")], "newest first");

    // Inspect: manifest, capabilities, settings schema, which settings are secrets.
    let info = app.get_json("/api/v1/plugins/shopify/0.6.0").await;
    assert_eq!(info["kind"], "channel");
    assert_eq!(info["wit_version"], "0.5.0");
    assert_eq!(
        info["secret_settings"],
        json!(["access_token", "webhook_secret"])
    );
    assert_eq!(
        info["manifest"]["capabilities"]["hosts"],
        json!(["{shop_domain}", "{admin_base_url}"])
    );
    assert_eq!(
        info["manifest"]["settings"]["required"],
        json!(["shop_domain", "webhook_secret"])
    );

    // A version never changes.
    let changed = as_version("shopify", "0.6.0", |m| {
        m.replace("description = \"", "description = \"Changed. ")
    });
    let r = install(&app, changed).await;
    assert_eq!(r.status(), 409);
    assert!(error_of(r).await.contains("bump the version"));

    // Bad packages: each refused with its reason, nothing installed.
    let component = strip(daifa_bundled_plugins::get("shopify").unwrap().wasm).unwrap();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"not wasm at all".to_vec(), 422, "not a wasm component"),
        (component, 422, "no `daifa-plugin` section"),
        (
            as_version("shopify", "0.7.0", |m| {
                m.replace("wit = \"0.5.0\"", "wit = \"0.9.0\"")
            }),
            422,
            "does not load",
        ),
        (
            as_version("shopify", "0.8.0", |m| {
                m.replace("kind = \"channel\"", "kind = \"supplier\"")
            }),
            422,
            "does not implement the supplier world",
        ),
        (
            with_raw_manifest(
                "shopify",
                &Package::read(daifa_bundled_plugins::get("shopify").unwrap().wasm)
                    .unwrap()
                    .manifest_toml
                    .replace("[settings]", "[settings]\nminProperties = \"x\""),
            ),
            422,
            "not a valid JSON Schema",
        ),
    ];
    for (bytes, status, needle) in cases {
        let r = install(&app, bytes).await;
        assert_eq!(r.status(), status, "{needle}");
        let error = error_of(r).await;
        assert!(error.contains(needle), "`{needle}` not in `{error}`");
    }
    let r = app
        .http
        .post(app.url("/api/v1/plugins"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        app.get_json("/api/v1/plugins")
            .await
            .as_array()
            .unwrap()
            .len(),
        4,
        "the three bundled packages and the one uploaded"
    );

    // The CLI lists what the API lists.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_daifa"))
        .args(["plugin", "list", "--url", &app.base])
        .output()
        .expect("running daifa");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shopify") && text.contains("0.6.0") && text.contains("upload"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_pin_upgrade_and_roll_back_with_their_settings_checked() {
    let w = world().await;
    let shop = w.app.get_json("/api/v1/connections/shop").await;
    assert_eq!(shop["plugin_version"], "0.5.0");
    // The plugin checks the connection's credentials against the (fake) Admin API.
    let check: Value = w
        .app
        .post_json("/api/v1/connections/shop/check", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["detail"], "shop Test Shop (test-shop.myshopify.com)");

    // Settings are checked against the plugin's schema, every problem named, no value echoed.
    let r = w
        .app
        .post_json(
            "/api/v1/connections",
            &json!({ "name": "shop2", "plugin": "shopify",
                     "settings": { "api_version": "July", "webhook_secret": "s3cr3t-value", "colour": "red" } }),
        )
        .await;
    assert_eq!(r.status(), 422);
    let error = error_of(r).await;
    for needle in [
        "shop_domain",
        "api_version",
        "`webhook_secret` is a secret",
        "colour",
    ] {
        assert!(error.contains(needle), "`{needle}` not in `{error}`");
    }
    assert!(!error.contains("s3cr3t-value"), "{error}");

    assert_eq!(
        install(&w.app, as_version("shopify", "0.6.0", |m| m))
            .await
            .status(),
        201
    );
    // A version needing a setting the connection lacks is refused before anything changes.
    let strict = as_version("shopify", "0.7.0", |m| {
        m.replace(
            "required = [\"shop_domain\", \"webhook_secret\"]",
            "required = [\"shop_domain\", \"webhook_secret\", \"region\"]",
        )
        .replace(
            "[settings.properties.shop_domain]",
            "[settings.properties.region]\ntype = \"string\"\n\n[settings.properties.shop_domain]",
        )
    });
    assert_eq!(install(&w.app, strict).await.status(), 201);
    let r = w
        .app
        .post_json(
            "/api/v1/connections/shop/upgrade",
            &json!({ "version": "0.7.0" }),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(error_of(r).await.contains("region"));

    // With the setting it needs, given in the same step, the strict version fits.
    let new_settings = json!({ "shop_domain": "test-shop.myshopify.com", "admin_base_url": w.shopify.base_url, "api_version": "2025-07", "region": "eu" });
    let r = w
        .app
        .post_json(
            "/api/v1/connections/shop/upgrade",
            &json!({ "version": "0.7.0", "settings": new_settings }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let c = w.app.get_json("/api/v1/connections/shop").await;
    assert_eq!(c["settings"]["region"], "eu");
    // The rollback restores the version and the settings it had.
    let r = w
        .app
        .post_json("/api/v1/connections/shop/rollback", &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let c = w.app.get_json("/api/v1/connections/shop").await;
    assert!(c["settings"].get("region").is_none(), "{c}");
    assert_eq!(c["plugin_version"], "0.5.0");
    // A secret the schema does not know is refused; a required one cannot be removed.
    let r = w
        .app
        .http
        .patch(w.app.url("/api/v1/connections/shop"))
        .json(&json!({ "secrets": { "webhook_secret": null } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(error_of(r).await.contains("webhook_secret"));

    let r = w
        .app
        .post_json(
            "/api/v1/connections/shop/upgrade",
            &json!({ "version": "0.6.0" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    assert_eq!(
        (
            c["plugin_version"].as_str(),
            c["previous_plugin_version"].as_str()
        ),
        (Some("0.6.0"), Some("0.5.0"))
    );

    // Traffic now runs on 0.6.0: the raw request says which version parsed it.
    let (_, body) = sample_with_note();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-v2", &body, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    let raw = w.app.get_json("/api/v1/raw-requests?connection=shop").await;
    assert_eq!(raw["raw_requests"][0]["plugin_version"], "0.6.0", "{raw}");
    let metrics = w
        .app
        .http
        .get(w.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"daifa_plugin_calls_total{plugin="shopify",version="0.6.0",connection="shop",function="handle-inbound"}"#), "{metrics}");

    // A version in use cannot be disabled; a disabled one cannot be pinned.
    let r = w
        .app
        .post_json("/api/v1/plugins/shopify/0.6.0/disable", &json!({}))
        .await;
    assert_eq!(r.status(), 409);
    assert!(error_of(r).await.contains("shop"));
    assert_eq!(
        w.app
            .post_json("/api/v1/plugins/shopify/0.7.0/disable", &json!({}))
            .await
            .status(),
        200
    );
    let r = w
        .app
        .post_json(
            "/api/v1/connections/shop/upgrade",
            &json!({ "version": "0.7.0" }),
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(error_of(r).await.contains("disabled"));
    let r = w
        .app
        .post_json(
            "/api/v1/connections/shop/upgrade",
            &json!({ "version": "0.6.0" }),
        )
        .await;
    assert_eq!(r.status(), 409, "already on 0.6.0");

    // Roll back, through the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_daifa"))
        .args(["connection", "rollback", "shop", "--url", &w.app.base])
        .output()
        .expect("running daifa");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("shopify 0.5.0"));
    let shop = w.app.get_json("/api/v1/connections/shop").await;
    assert_eq!(shop["plugin_version"], "0.5.0");
    let history = w.app.get_json("/api/v1/connections/shop/history").await;
    let actions: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            format!(
                "{} {}→{}",
                h["action"].as_str().unwrap(),
                h["from_version"].as_str().unwrap(),
                h["to_version"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "upgrade 0.5.0→0.7.0",
            "rollback 0.7.0→0.5.0",
            "upgrade 0.5.0→0.6.0",
            "rollback 0.6.0→0.5.0"
        ]
    );
    w.app.stop().await;
}

/// The supplier takes 1.5 s to answer. The connection is upgraded while the push is in flight:
/// that push finishes on 0.3.0, the next order's push runs on 0.4.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_finishes_on_the_version_it_started_with() {
    let w = world().await;
    assert_eq!(
        install(&w.app, as_version("webhook-supplier", "0.4.0", |m| m))
            .await
            .status(),
        201
    );
    w.supplier.delay(Duration::from_millis(1500));
    let (_, body) = sample_with_note();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-flight-1", &body, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    wait_for_pushes(&w.supplier, 1).await;
    let r = w
        .app
        .post_json(
            "/api/v1/connections/supplier/upgrade",
            &json!({ "version": "0.4.0" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    w.supplier.delay(Duration::ZERO);

    let attempts = |jobs: &Value| -> Vec<(String, String)> {
        jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == "supplier.submit")
            .flat_map(|j| j["attempt_log"].as_array().unwrap().clone())
            .map(|a| {
                (
                    a["outcome"].as_str().unwrap().to_string(),
                    a["plugin_version"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let first = eventually("the in-flight push to finish", WAIT, || async {
        let a = attempts(&w.app.get_json("/api/v1/jobs?status=succeeded").await);
        (!a.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(first, [("succeeded".to_string(), "0.3.0".to_string())]);

    let mut order: Value = serde_json::from_slice(&body).unwrap();
    order["id"] = json!(5_550_001_i64);
    let body2 = serde_json::to_vec(&order).unwrap();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-flight-2", &body2, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    let both = eventually("the second push", WAIT, || async {
        let a = attempts(&w.app.get_json("/api/v1/jobs?status=succeeded").await);
        (a.len() == 2).then_some(a)
    })
    .await;
    assert!(
        both.contains(&("succeeded".to_string(), "0.4.0".to_string())),
        "{both:?}"
    );
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_starts_on_demand_when_the_instance_pool_cannot_be_reserved() {
    let pooled = TestApp::spawn_with(TestDb::new().await, |_| {}).await;
    let health = pooled.get_json("/healthz").await;
    assert_eq!(health["plugin_allocator"], "pooling");
    pooled.stop().await;

    // 100 million instances of 128 MiB each: far beyond any address space.
    let w = world_with(|s| s.plugins.pool.instances = 100_000_000).await;
    let health = w.app.get_json("/healthz").await;
    assert_eq!(health["plugin_allocator"], "on-demand");
    // And plugins still run.
    let (_, body) = sample_with_note();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-ondemand", &body, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    wait_for_pushes(&w.supplier, 1).await;
    w.app.stop().await;
}

/// The misbehaving test component under the Shopify plugin's name: a candidate version whose
/// results differ from Shopify's on every request (it echoes the body as the topic).
fn different_shopify(version: &str) -> Vec<u8> {
    let manifest = with_version(
        &Package::read(daifa_bundled_plugins::get("shopify").unwrap().wasm)
            .unwrap()
            .manifest_toml,
        version,
    );
    let misbehaving = daifa_bundled_plugins::TEST_PLUGINS
        .iter()
        .find(|p| p.name == "misbehaving")
        .unwrap()
        .wasm;
    repack(misbehaving, &manifest).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reports_differences_without_side_effects_and_shadow_records_them() {
    let w = world().await;
    let (mut order, body) = sample_with_note();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-r1", &body, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    order["id"] = json!(5_550_002_i64);
    let body2 = serde_json::to_vec(&order).unwrap();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-r2", &body2, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-r3", &body2, "wrong-secret")
            .await
            .status(),
        401
    );
    wait_for_pushes(&w.supplier, 2).await;
    assert_eq!(
        install(&w.app, as_version("shopify", "0.6.0", |m| m))
            .await
            .status(),
        201
    );
    assert_eq!(
        install(&w.app, different_shopify("0.9.0")).await.status(),
        201
    );

    // The same component under another version: every result the same.
    let r = w
        .app
        .post_json(
            "/api/v1/connections/shop/replay",
            &json!({ "version": "0.6.0" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(
        (
            report["total"].as_u64(),
            report["same"].as_u64(),
            report["differing"].as_u64()
        ),
        (Some(3), Some(3), Some(0)),
        "{report}"
    );

    // Another component: every result differs, with the paths and both results.
    let report: Value = w
        .app
        .post_json(
            "/api/v1/connections/shop/replay",
            &json!({ "version": "0.9.0", "limit": 2 }),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (report["total"].as_u64(), report["differing"].as_u64()),
        (Some(2), Some(2)),
        "{report}"
    );
    let first = &report["differences"][0];
    assert!(
        first["paths"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "/events/0"),
        "{first}"
    );
    assert!(
        first["baseline"]["events"][0]["OrderPlaced"]["external_id"].is_string(),
        "{first}"
    );
    assert_eq!(first["candidate"]["events"], json!([]));
    assert_eq!(
        w.app
            .post_json(
                "/api/v1/connections/shop/replay",
                &json!({ "version": "7.7.7" })
            )
            .await
            .status(),
        422
    );

    // Nothing happened: no order, push or stored request more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.app.orders().await.len(), 2);
    assert_eq!(w.supplier.received().len(), 2);
    let raw = w.app.get_json("/api/v1/raw-requests?connection=shop").await;
    assert_eq!(raw["raw_requests"].as_array().unwrap().len(), 3);

    // The command line does the same on the database.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_daifa"))
        .args(["replay", "--connection", "shop", "--version", "0.9.0"])
        .env("DATABASE_URL", &w.app.db.url)
        .env("DAIFA_SECRET_KEY", TEST_SECRET_KEY)
        .env("DAIFA_PLUGINS__CACHE_DIR", plugin_cache_dir())
        .output()
        .expect("running daifa replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 request(s), 0 same, 3 differing"), "{text}");

    // Shadow: the candidate parses live traffic too; its results are recorded, never acted on.
    let r = w
        .app
        .http
        .put(w.app.url("/api/v1/connections/shop/shadow"))
        .json(&json!({ "version": "0.9.0" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    order["id"] = json!(5_550_003_i64);
    let body3 = serde_json::to_vec(&order).unwrap();
    assert_eq!(
        w.app
            .send_shopify("orders/create", "wh-r4", &body3, SHOPIFY_SECRET)
            .await
            .status(),
        200
    );
    let results = eventually("a shadow result", WAIT, || async {
        let r = w
            .app
            .get_json("/api/v1/connections/shop/shadow-results")
            .await;
        (!r["results"].as_array().unwrap().is_empty()
            && !r["summary"].as_array().unwrap().is_empty())
        .then_some(r)
    })
    .await;
    assert_eq!(
        results["summary"],
        json!([{ "candidate_version": "0.9.0", "total": 1, "same": 0, "differing": 1 }])
    );
    let result = &results["results"][0];
    assert_eq!(
        (result["primary_version"].as_str(), result["same"].as_bool()),
        (Some("0.5.0"), Some(false))
    );
    assert!(
        result["primary_result"]["events"][0]["OrderPlaced"].is_object(),
        "{result}"
    );
    wait_for_pushes(&w.supplier, 3).await;
    assert_eq!(
        w.app.orders().await.len(),
        3,
        "the primary's result was acted on, once"
    );
    let r = w
        .app
        .http
        .delete(w.app.url("/api/v1/connections/shop/shadow"))
        .send()
        .await
        .unwrap();
    let c: Value = r.json().await.unwrap();
    assert!(c["shadow_plugin_version"].is_null());
    w.app.stop().await;
}

/// A package built against the previous minor WIT (0.4) installs and serves a connection beside
/// current ones; it answers what 0.4 has (check-connection), nothing polls it (its manifest does
/// not ask for polling), and an order it brought that the operator cancels cannot be cancelled
/// through it (`cancel-order` came in 0.5.0): a task says to do it by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_of_the_previous_wit_minor_installs_and_serves_a_connection() {
    let app = TestApp::spawn_with(TestDb::new().await, |_| {}).await;
    let legacy = daifa_bundled_plugins::TEST_PLUGINS
        .iter()
        .find(|p| p.name == "legacy")
        .unwrap()
        .wasm
        .to_vec();
    let r = install(&app, legacy).await;
    assert_eq!(r.status(), 201);
    let info: Value = r.json().await.unwrap();
    assert_eq!(info["wit_version"], "0.4.0");
    let r = app
        .post_json(
            "/api/v1/connections",
            &json!({ "name": "old", "plugin": "legacy", "settings": { "prefix": "v0.4:" } }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .http
        .post(app.url("/hooks/old"))
        .body("ping")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let raw = app.get_json("/api/v1/raw-requests?connection=old").await;
    assert_eq!(raw["raw_requests"][0]["topic"], "v0.4:ping", "{raw}");
    let check: Value = app
        .post_json("/api/v1/connections/old/check", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(check["ok"], true, "{check}");
    assert!(
        check["detail"]
            .as_str()
            .is_some_and(|m| m.contains("v0.4:")),
        "{check}"
    );
    let poll = app.get_json("/api/v1/connections/old/poll").await;
    assert_eq!(poll["polling"], false, "{poll}");

    // An order from it, cancelled by the operator: the 0.4 plugin is not asked, a task is left.
    let r = app
        .http
        .post(app.url("/hooks/old"))
        .body("order:555")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let answer: Value = r.json().await.unwrap();
    let order_id = answer["orders"][0]["order_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"))
        .to_string();
    let r = app
        .post_as(
            &format!("/api/v1/orders/{order_id}/cancel"),
            "mei",
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let tasks = eventually(
        "a cancel_on_storefront task",
        Duration::from_secs(20),
        || async {
            let t = app
                .get_json(&format!(
                    "/api/v1/tasks?order_id={order_id}&kind=cancel_on_storefront"
                ))
                .await["tasks"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            (!t.is_empty()).then_some(t)
        },
    )
    .await;
    let error = tasks[0]["detail"]["error"].as_str().unwrap();
    assert!(
        error.contains("cancel-order") && error.contains("0.5.0"),
        "{error}"
    );
    app.stop().await;
}
