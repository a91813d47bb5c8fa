//! Bad bodies at every admin endpoint that takes one: malformed JSON, the wrong JSON type,
//! each field of a valid body replaced by a value of another type or out of range, text with
//! a NUL. Each is answered with a client error (4xx) and a message — never a 5xx, a panic or
//! a dropped connection — and the gateway goes on serving.

use crate::helpers::*;
use serde_json::{Value, json};

/// Values a field should not take.
fn wrong_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(1e308),
        json!(u64::MAX),
        json!("x\u{0}y"),
        json!(""),
        json!([]),
        json!({}),
        json!([[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]),
    ]
}

/// Bodies no endpoint takes.
fn malformed() -> Vec<(String, &'static str)> {
    let deep = "[".repeat(5_000) + &"]".repeat(5_000);
    vec![
        (String::new(), "empty"),
        ("{".into(), "truncated"),
        ("null".into(), "null"),
        ("[]".into(), "an array"),
        ("\"text\"".into(), "a string"),
        (deep, "5,000 nested arrays"),
        ("{\"a\": 1e999999}".into(), "a number out of range"),
        ("\u{feff}{}".into(), "a byte-order mark"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_body_that_is_wrong_is_answered_4xx_with_a_message() {
    let w = crate::world().await;
    let app = &w.app;
    let order_id = {
        let body = shopify_sample();
        let r = app
            .send_shopify("orders/create", "wh-bad-input", &body, SHOPIFY_SECRET)
            .await;
        assert_eq!(r.status(), 200);
        let answer: Value = r.json().await.unwrap();
        answer["orders"][0]["order_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // (method, path, a valid body whose fields are each replaced in turn)
    let endpoints: Vec<(reqwest::Method, String, Value)> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/connections".into(),
            json!({ "name": "another", "plugin": "webhook-supplier", "settings": { "url": "http://127.0.0.1:9/orders" },
                    "secrets": { "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" },
                    "allowed_hosts": ["127.0.0.1"], "allow_private_network": true }),
        ),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/connections/{SHOP_CONNECTION}"),
            json!({ "settings": { "api_version": "2025-07" }, "enabled": true }),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/offers".into(),
            json!({ "channel": SHOP_CONNECTION, "storefront_sku": "SKU-X", "supplier": "supplier",
                    "supplier_sku": "S-X", "priority": 1, "unit_cost_minor": 150, "currency": "USD" }),
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/policies/routing".into(),
            json!({ "strategy": "cheapest", "daily_caps": { "supplier": 3 }, "ack_deadline": "24h" }),
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/policies/after_sales".into(),
            json!({ "return_window": "7d", "exchange_window": "30d" }),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/cases".into(),
            json!({ "order_id": order_id, "kind": "refund_only", "refund_minor": 100, "reason": "broken" }),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/routing/dry-run".into(),
            json!({ "channel": SHOP_CONNECTION, "order": { "external_id": "1" } }),
        ),
        (
            reqwest::Method::POST,
            format!("/api/v1/orders/{order_id}/cancel"),
            json!({ "reason": "customer asked" }),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/holds/hold_missing/resolve".into(),
            json!({ "choice": "refund" }),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/cases/case_missing/actions".into(),
            json!({ "action": "approve" }),
        ),
    ];
    let mut server_errors = Vec::new();
    let mut sent = 0;
    for (method, path, valid) in &endpoints {
        let mut bodies: Vec<(String, String)> = malformed()
            .into_iter()
            .map(|(b, what)| (b, what.to_string()))
            .collect();
        for (key, _) in valid.as_object().unwrap() {
            for wrong in wrong_values() {
                let mut body = valid.clone();
                body[key] = wrong.clone();
                bodies.push((body.to_string(), format!("`{key}` = {wrong}")));
            }
        }
        for (body, what) in bodies {
            let r = app
                .http
                .request(method.clone(), app.url(path))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path} with {what}: no answer: {e}"));
            sent += 1;
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            if status.is_server_error() {
                server_errors.push(format!("{method} {path} with {what}: {status} {text}"));
            } else if status.is_client_error() {
                assert!(
                    !text.trim().is_empty(),
                    "{method} {path} with {what}: {status} without a message"
                );
            }
        }
    }
    assert!(
        server_errors.is_empty(),
        "{} of {sent} bad bodies got a server error:\n{}",
        server_errors.len(),
        server_errors.join("\n")
    );
    // Still serving.
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(sent > 300, "{sent}");
    w.app.stop().await;
}

/// Bad CSV files at the offers import: each is answered with a client error and a message
/// (every problem with its line), never a 5xx, and a refused file imports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_csv_import_is_answered_4xx_with_a_message() {
    let w = crate::world().await;
    let app = &w.app;
    let header = "channel,storefront_sku,supplier,supplier_sku,unit_cost,currency,stock,ships_to";
    let good = [
        SHOP_CONNECTION,
        "SKU-X",
        "supplier",
        "S-X",
        "1.50",
        "USD",
        "3",
        "US",
    ];
    let mut files: Vec<(Vec<u8>, String)> = vec![
        (Vec::new(), "empty".into()),
        (b"\xff\xfe,\x00\n".to_vec(), "no header, bytes".into()),
        (
            format!("{header},colour\n{}\n", good.join(",")).into_bytes(),
            "an unknown column".into(),
        ),
        (
            format!("{header}\n{}\n", good[..3].join(",")).into_bytes(),
            "a short row".into(),
        ),
        (
            format!("{header}\n{},extra\n", good.join(",")).into_bytes(),
            "a long row".into(),
        ),
        (
            format!("{header}\n\"{}\n", good.join(",")).into_bytes(),
            "an unclosed quote".into(),
        ),
    ];
    for (i, _) in good.iter().enumerate() {
        for wrong in [
            "x\0y",
            "\u{feff}",
            "\u{fffd}\u{202e}",
            "-1",
            "1e308",
            "99999999999999999999999",
            "0.001",
            "NaN",
            "abc",
            "\"\"\"",
        ] {
            let mut row: Vec<String> = good.iter().map(|c| c.to_string()).collect();
            row[i] = wrong.to_string();
            files.push((
                format!("{header}\n{}\n", row.join(",")).into_bytes(),
                format!("column {} = {wrong:?}", header.split(',').nth(i).unwrap()),
            ));
            let mut bytes = format!("{header}\n").into_bytes();
            bytes.extend(
                row.join(",")
                    .bytes()
                    .map(|b| if b == b'x' { 0xff } else { b }),
            );
            files.push((
                bytes,
                format!("column {i} = {wrong:?}, with an invalid UTF-8 byte"),
            ));
        }
    }
    let mut server_errors = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let offers = || async {
        app.get_json("/api/v1/offers").await["offers"]
            .as_array()
            .unwrap()
            .len()
    };
    for (body, what) in &files {
        let before = offers().await;
        let r = app
            .http
            .post(app.url("/api/v1/offers.csv"))
            .header("content-type", "text/csv")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        *statuses.entry(status.as_u16()).or_default() += 1;
        if status.is_server_error() {
            server_errors.push(format!("{what}: {status} {text}"));
        } else if status.is_client_error() {
            assert!(
                !text.trim().is_empty(),
                "{what}: {status} without a message"
            );
            assert_eq!(offers().await, before, "{what}: refused, yet imported");
        }
    }
    assert!(
        server_errors.is_empty(),
        "{} of {} bad files got a server error:\n{}",
        server_errors.len(),
        files.len(),
        server_errors.join("\n")
    );
    // Most of them are refused (some variants are valid: an empty stock cell, say).
    let refused: usize = statuses
        .iter()
        .filter(|(s, _)| **s >= 400)
        .map(|(_, n)| n)
        .sum();
    assert!(refused > 120, "{statuses:?}");
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    w.app.stop().await;
}
