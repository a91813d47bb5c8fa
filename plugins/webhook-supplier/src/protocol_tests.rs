//! The protocol as documented: the doc's schemas and examples against the code, and the
//! signature against the Standard Webhooks test vectors.

use crate::fixtures::{self, SECRET};
use crate::message::sign;
use crate::{callback, push, update};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use daifa_plugin_sdk::signature::{self, hmac_sha256_base64, standard};
use daifa_plugin_sdk::supplier::{
    OfferUpdate, Rejection, RejectionCode, SupplierEvent, SupplierShipment, UpdateAnswer,
    UpdateReport, UpdateRequest,
};
use daifa_plugin_sdk::types::{
    HttpHeader, InboundRequest, LineQuantity, Money, OutboundResponse, PluginError, Shipment,
    SupplierOrderRef,
};
use serde_json::{Value, json};

/// The schema with `additionalProperties: false` on every object it describes: the published
/// schemas let Daifa and suppliers add keys later, but the code and the examples must not
/// carry a key the doc does not describe. Only the schemas typed `object` describe one: a
/// condition such as `{"required": ["stock"], "properties": {"stock": {"type": "integer"}}}`
/// in an `anyOf` says something of one key, and closing it would refuse every other key.
fn strict(schema: &str) -> Value {
    fn describes_an_object(map: &serde_json::Map<String, Value>) -> bool {
        match map.get("type") {
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(types)) => types.iter().any(|t| t == "object"),
            _ => false,
        }
    }
    fn close(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.contains_key("properties") && describes_an_object(map) {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
                map.values_mut().for_each(close);
            }
            Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }
    let mut schema: Value = serde_json::from_str(schema).unwrap();
    close(&mut schema);
    schema
}

fn validate(schema: &str, instance: &Value) -> Result<(), Vec<String>> {
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&strict(schema))
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn example_json(name: &str) -> Value {
    serde_json::from_str(fixtures::example(name)).unwrap()
}

#[test]
fn schemas_are_json_schema_2020_12() {
    for (name, schema) in fixtures::SCHEMAS {
        let schema: Value = serde_json::from_str(schema).unwrap();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        jsonschema::meta::validate(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn examples_match_their_schemas() {
    for (name, _) in fixtures::EXAMPLES {
        let schema = fixtures::schema_of(name);
        validate(schema, &example_json(name)).unwrap_or_else(|e| panic!("{name}: {e:#?}"));
    }
}

#[test]
fn schemas_refuse_what_the_plugin_refuses() {
    let schema = fixtures::schema_of("supplier_order.shipped");
    let mut no_lines = example_json("supplier_order.shipped");
    no_lines["data"]["shipment"]["lines"] = json!([]);
    assert!(validate(schema, &no_lines).is_err());
    let mut zero = example_json("supplier_order.shipped");
    zero["data"]["shipment"]["lines"][0]["quantity"] = json!(0);
    assert!(validate(schema, &zero).is_err());
    let mut no_tracking = example_json("supplier_order.shipped");
    no_tracking["data"]["shipment"]["tracking_number"] = json!(" ");
    assert!(validate(schema, &no_tracking).is_err());

    // product.updated: each of these is refused by the plugin (callback tests) and the schema.
    let schema = fixtures::schema_of("product.updated");
    let bad = [
        json!({"supplier_sku": "YW-1"}),
        json!({"supplier_sku": "YW-1", "discontinued": false}),
        json!({"supplier_sku": "YW-1", "note": "new box"}),
        json!({"supplier_sku": "YW-1", "stock": null, "unit_cost": null}),
        json!({"supplier_sku": " ", "stock": 1}),
        json!({"stock": 1}),
        json!({"supplier_sku": "YW-1", "stock": -1}),
        json!({"supplier_sku": "YW-1", "stock": "5"}),
        json!({"supplier_sku": "YW-1", "stock": 4_294_967_296_u64}),
        json!({"supplier_sku": "YW-1", "lead_time_days": 1.5}),
        json!({"supplier_sku": "YW-1", "unit_cost": {"amount_minor": -5, "currency": "USD"}}),
        json!({"supplier_sku": "YW-1", "unit_cost": {"amount_minor": "7.80", "currency": "USD"}}),
        json!({"supplier_sku": "YW-1", "unit_cost": {"amount_minor": 780}}),
        json!({"supplier_sku": "YW-1", "unit_cost": {"amount_minor": 780, "currency": ""}}),
        json!({"supplier_sku": "YW-1", "discontinued": "yes"}),
        json!([{"supplier_sku": "YW-1", "stock": 1}]),
    ];
    for data in bad {
        let message =
            json!({"type": "product.updated", "timestamp": "2026-03-05T11:00:00Z", "data": data});
        assert!(
            validate(schema, &message).is_err(),
            "the schema takes {data}"
        );
        let err = callback::parse(message.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.kind(), "bad-payload", "{data}");
    }
    let good = [
        json!({"supplier_sku": "YW-1", "stock": 0}),
        json!({"supplier_sku": "YW-1", "lead_time_days": 0, "note": null}),
        json!({"supplier_sku": "YW-1", "discontinued": true}),
        json!({"supplier_sku": "YW-1", "unit_cost": {"amount_minor": 0, "currency": "JPY"}, "stock": null}),
    ];
    for data in good {
        let message =
            json!({"type": "product.updated", "timestamp": "2026-03-05T11:00:00Z", "data": data});
        validate(schema, &message).unwrap_or_else(|e| panic!("{data}: {e:#?}"));
        callback::parse(message.to_string().as_bytes()).unwrap_or_else(|e| panic!("{data}: {e:?}"));
    }

    // The codes the doc lists, and no code, are valid; the plugin reads more than the schema
    // lists (an unknown code is `other`) so that a rejection is never lost over its code.
    let schema = fixtures::schema_of("supplier_order.rejected");
    for code in [
        json!("out_of_stock"),
        json!("cannot_ship_to"),
        json!("invalid_address"),
        json!("price_changed"),
        json!("other"),
        json!(null),
    ] {
        let mut rejected = example_json("supplier_order.rejected.out_of_stock");
        rejected["data"]["code"] = code.clone();
        validate(schema, &rejected).unwrap_or_else(|e| panic!("{code}: {e:#?}"));
    }
    let mut unknown = example_json("supplier_order.rejected.out_of_stock");
    unknown["data"]["code"] = json!("on_holiday");
    assert!(validate(schema, &unknown).is_err());
    assert!(callback::parse(unknown.to_string().as_bytes()).is_ok());

    // supplier_order.update_answered: each refused by the plugin (callback tests) and the schema.
    let schema = fixtures::schema_of("supplier_order.update_answered");
    let bad = [
        json!({"supplier_order_id": "so_1", "applied": true}),
        json!({"supplier_order_id": "so_1", "idempotency_key": " ", "applied": true}),
        json!({"supplier_order_id": "so_1", "idempotency_key": "upd_1"}),
        json!({"supplier_order_id": "so_1", "idempotency_key": "upd_1", "applied": "yes"}),
        json!({"supplier_order_id": "", "idempotency_key": "upd_1", "applied": true}),
        json!({"idempotency_key": "upd_1", "applied": false, "reason": "too late"}),
    ];
    for data in bad {
        let message = json!({"type": "supplier_order.update_answered",
                             "timestamp": "2026-03-02T19:40:12+08:00", "data": data});
        assert!(
            validate(schema, &message).is_err(),
            "the schema takes {data}"
        );
        let err = callback::parse(message.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.kind(), "bad-payload", "{data}");
    }

    let schema = fixtures::schema_of("order.created");
    let mut negative = example_json("order.created");
    negative["data"]["declared_value"]["amount_minor"] = json!(-1);
    assert!(validate(schema, &negative).is_err());
    let mut no_carrier = example_json("order.created");
    no_carrier["data"]["avoid_carriers"] = json!([]);
    assert!(validate(schema, &no_carrier).is_err());
}

#[test]
fn every_order_the_plugin_sends_matches_the_schema() {
    let schema = fixtures::schema_of("order.created");
    let sample = fixtures::sample_order();
    let variants = [
        (sample.declared_value.clone(), sample.avoid_carriers.clone()),
        (sample.declared_value.clone(), None),
        (None, sample.avoid_carriers.clone()),
        (None, Some(vec![])),
        (None, Some(vec![" ".into()])),
        (None, None),
    ];
    for (declared_value, avoid_carriers) in variants {
        let order = daifa_plugin_sdk::supplier::SupplierOrder {
            declared_value: declared_value.clone(),
            avoid_carriers: avoid_carriers.clone(),
            ..fixtures::sample_order()
        };
        let body = push::order_created(&order, fixtures::NOW_MS).unwrap();
        let built: Value = serde_json::from_slice(&body).unwrap();
        validate(schema, &built)
            .unwrap_or_else(|e| panic!("{declared_value:?} {avoid_carriers:?}: {e:#?}"));
    }
}

#[test]
fn the_doc_shows_every_example_and_links_every_schema() {
    for (name, example) in fixtures::EXAMPLES {
        assert!(
            fixtures::DOC.contains(example.trim_end()),
            "the doc does not show examples/{name}.json as it is"
        );
        assert!(
            fixtures::DOC.contains(&format!("(schemas/examples/{name}.json)")),
            "the doc does not link examples/{name}.json"
        );
    }
    for (name, _) in fixtures::SCHEMAS {
        assert!(
            fixtures::DOC.contains(&format!("(schemas/{name}.schema.json)")),
            "the doc does not link {name}.schema.json"
        );
    }
}

#[test]
fn order_created_is_the_documented_example() {
    let body = push::order_created(&fixtures::sample_order(), fixtures::NOW_MS).unwrap();
    let built: Value = serde_json::from_slice(&body).unwrap();
    validate(fixtures::schema_of("order.created"), &built).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(built, example_json("order.created"));
}

#[test]
fn buyer_note_travels_verbatim() {
    let body = push::order_created(&fixtures::sample_order(), fixtures::NOW_MS).unwrap();
    // In the bytes as sent, not only once parsed: no escaping a supplier's parser might mangle.
    let text = std::str::from_utf8(&body).unwrap();
    assert!(
        text.contains(&format!(r#""buyer_note":"{}""#, fixtures::BUYER_NOTE)),
        "{text}"
    );
    assert!(text.contains(r#""note":"Engraving: Für Oma ❤""#), "{text}");
}

/// Standard Webhooks test vectors, as in /work/shared/fixtures/standard-webhooks/test-vectors.json
/// (from the official libraries' tests): (secret, msg_id, timestamp, payload, signature).
const VECTORS: &[(&str, &str, i64, &str, &str)] = &[
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1_614_265_330,
        r#"{"test": 2432232314}"#,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
    (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1_649_367_553,
        r#"{"email":"test@example.com","username":"test_user"}"#,
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    ),
];

/// The scheme spelled out, independently of the signing code: HMAC-SHA256 over
/// `{id}.{timestamp}.{body}` keyed with the base64-decoded secret.
fn reference_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    format!("v1,{}", hmac_sha256_base64(&key, &content))
}

fn header<'a>(headers: &'a [HttpHeader], name: &str) -> &'a str {
    signature::header(headers, name).unwrap_or_else(|| panic!("no header {name}"))
}

#[test]
fn signs_as_the_test_vectors() {
    for (secret, id, timestamp, payload, expected) in VECTORS {
        // Milliseconds into the second must not change the signed second.
        let signed = sign(
            secret,
            id,
            timestamp * 1000 + 999,
            payload.as_bytes().to_vec(),
        )
        .unwrap();
        assert_eq!(header(&signed.headers, "webhook-signature"), *expected);
        assert_eq!(
            header(&signed.headers, "webhook-timestamp"),
            timestamp.to_string()
        );
        assert_eq!(header(&signed.headers, "webhook-id"), *id);
        assert_eq!(
            reference_signature(secret, id, &timestamp.to_string(), payload.as_bytes()),
            *expected
        );
    }
}

#[test]
fn order_created_headers_verify_as_the_standard_says() {
    let order = fixtures::sample_order();
    let now = fixtures::now_ms();
    let signed = push::signed_order_created(SECRET, &order, now).unwrap();
    let (id, timestamp) = (
        header(&signed.headers, "webhook-id"),
        header(&signed.headers, "webhook-timestamp"),
    );
    assert_eq!(
        id, order.idempotency_key,
        "webhook-id is the idempotency key"
    );
    assert_eq!(timestamp, (now / 1000).to_string());
    assert_eq!(header(&signed.headers, "content-type"), "application/json");
    assert_eq!(
        header(&signed.headers, "webhook-signature"),
        reference_signature(SECRET, id, timestamp, &signed.body)
    );
    assert_eq!(
        standard::verify(SECRET, &signed.headers, &signed.body).unwrap(),
        order.idempotency_key
    );

    // A retry carries the same id and data; only the attempt's time changes.
    let retry = push::signed_order_created(SECRET, &order, now + 300_000).unwrap();
    assert_eq!(header(&retry.headers, "webhook-id"), id);
    let data = |body: &[u8]| serde_json::from_slice::<Value>(body).unwrap()["data"].clone();
    assert_eq!(data(&retry.body), data(&signed.body));
}

/// A callback as a supplier sends it, signed `age_secs` ago.
fn callback_request(secret: &str, id: &str, age_secs: i64, body: &str) -> InboundRequest {
    let signed = sign(
        secret,
        id,
        fixtures::now_ms() - age_secs * 1000,
        body.as_bytes().to_vec(),
    )
    .unwrap();
    InboundRequest {
        method: "POST".into(),
        path: "/hooks/yiwu-wholesale".into(),
        headers: signed.headers,
        body: signed.body,
    }
}

fn order_ref() -> SupplierOrderRef {
    SupplierOrderRef {
        supplier_order_id: "so_0195f3c28a10700080005d1e2f3a4b5c".into(),
        external_id: Some("YW-PO-778812".into()),
    }
}

#[test]
fn each_documented_callback_parses_into_its_event() {
    let cases = [
        (
            "supplier_order.accepted",
            SupplierEvent::Accepted(order_ref()),
        ),
        (
            "supplier_order.rejected",
            SupplierEvent::Rejected(Rejection {
                order: order_ref(),
                reason: "Out of stock: YW-88231-RD-M (Red / M) until 2026-03-20".into(),
                code: None,
            }),
        ),
        (
            "supplier_order.rejected.out_of_stock",
            SupplierEvent::Rejected(Rejection {
                order: order_ref(),
                reason: "Out of stock: YW-88231-RD-M (Red / M) until 2026-03-20".into(),
                code: Some(RejectionCode::OutOfStock),
            }),
        ),
        (
            "product.updated",
            SupplierEvent::OfferUpdated(OfferUpdate {
                supplier_sku: "YW-88231-RD-M".into(),
                unit_cost: Some(Money {
                    amount_minor: 780,
                    currency: "USD".into(),
                }),
                stock: Some(1200),
                lead_time_days: Some(3),
                discontinued: false,
                note: Some("New cotton from 2026-04-01: same weight, softer".into()),
            }),
        ),
        (
            "product.updated.discontinued",
            SupplierEvent::OfferUpdated(OfferUpdate {
                supplier_sku: "YW-10442".into(),
                unit_cost: None,
                stock: None,
                lead_time_days: None,
                discontinued: true,
                note: Some(
                    "The enamel factory closed. Nearest replacement: YW-10460 (ceramic mug, engravable)"
                        .into(),
                ),
            }),
        ),
        (
            "supplier_order.update_answered",
            SupplierEvent::UpdateAnswered(UpdateReport {
                order: order_ref(),
                idempotency_key: "upd_0195f4127e3b70008000a1b2c3d4e5f6".into(),
                applied: true,
                reason: Some("Relabelled for the new address; one T-shirt, no mug".into()),
            }),
        ),
        (
            "supplier_order.shipped",
            SupplierEvent::Shipped(SupplierShipment {
                order: order_ref(),
                shipment: Shipment {
                    lines: vec![LineQuantity {
                        external_line_id: "14001".into(),
                        quantity: 2,
                    }],
                    carrier_code: "YunExpress".into(),
                    tracking_number: "YT2606112345678".into(),
                    tracking_url: Some(
                        "https://www.yuntrack.com/parcelTracking?id=YT2606112345678".into(),
                    ),
                    shipped_at: 1_772_608_800_000,
                },
            }),
        ),
        (
            "supplier_order.shipped.rest",
            SupplierEvent::Shipped(SupplierShipment {
                order: order_ref(),
                shipment: Shipment {
                    lines: vec![LineQuantity {
                        external_line_id: "14002".into(),
                        quantity: 1,
                    }],
                    carrier_code: "China Post".into(),
                    tracking_number: "LX123456789CN".into(),
                    tracking_url: None,
                    shipped_at: 1_772_762_700_000,
                },
            }),
        ),
    ];
    for (name, expected) in cases {
        let id = format!("msg_{}", name.replace('.', "_"));
        let inbound = callback::handle(
            SECRET,
            &callback_request(SECRET, &id, 0, fixtures::example(name)),
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(inbound.delivery_id.as_deref(), Some(id.as_str()), "{name}");
        assert_eq!(inbound.events, vec![expected], "{name}");
    }
}

fn kind(result: Result<impl std::fmt::Debug, PluginError>) -> &'static str {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind(),
    }
}

#[test]
fn refuses_callbacks_that_are_not_signed_by_the_supplier() {
    let body = fixtures::example("supplier_order.accepted");
    let good = callback_request(SECRET, "msg_1", 0, body);
    assert!(callback::handle(SECRET, &good).is_ok());

    let mut tampered = good.clone();
    let at = tampered.body.iter().position(|&b| b == b'Y').unwrap();
    tampered.body[at] = b'Z';
    assert_eq!(
        kind(callback::handle(SECRET, &tampered)),
        "bad-signature",
        "tampered body"
    );

    let other_secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    assert_eq!(
        kind(callback::handle(other_secret, &good)),
        "bad-signature",
        "wrong secret"
    );

    let old = callback_request(SECRET, "msg_1", 6 * 60, body);
    assert_eq!(
        kind(callback::handle(SECRET, &old)),
        "bad-signature",
        "six minutes old"
    );
    let future = callback_request(SECRET, "msg_1", -6 * 60, body);
    assert_eq!(
        kind(callback::handle(SECRET, &future)),
        "bad-signature",
        "six minutes ahead"
    );
    let recent = callback_request(SECRET, "msg_1", 4 * 60, body);
    assert!(
        callback::handle(SECRET, &recent).is_ok(),
        "four minutes old is within the tolerance"
    );

    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut missing = good.clone();
        missing.headers.retain(|h| h.name != name);
        assert_eq!(
            kind(callback::handle(SECRET, &missing)),
            "bad-signature",
            "without {name}"
        );
    }
    // `sign` refuses an empty id, so this request is built by hand.
    let ts = (fixtures::now_ms() / 1000).to_string();
    let forged = InboundRequest {
        headers: vec![
            HttpHeader {
                name: "webhook-id".into(),
                value: String::new(),
            },
            HttpHeader {
                name: "webhook-timestamp".into(),
                value: ts.clone(),
            },
            HttpHeader {
                name: "webhook-signature".into(),
                value: reference_signature(SECRET, "", &ts, body.as_bytes()),
            },
        ],
        ..good.clone()
    };
    assert_eq!(
        kind(callback::handle(SECRET, &forged)),
        "bad-signature",
        "empty webhook-id"
    );

    // Verification comes first: a body that would not parse is still a bad signature unsigned.
    let mut garbage = callback_request(SECRET, "msg_2", 0, "not json");
    garbage.headers.retain(|h| h.name != "webhook-signature");
    assert_eq!(kind(callback::handle(SECRET, &garbage)), "bad-signature");
}

#[test]
fn refuses_signed_callbacks_it_cannot_read() {
    let unknown = r#"{"type": "supplier_order.lost", "timestamp": "2026-03-02T10:00:00Z", "data": {"supplier_order_id": "so_1"}}"#;
    let err = callback::handle(SECRET, &callback_request(SECRET, "msg_3", 0, unknown)).unwrap_err();
    assert_eq!(err.kind(), "bad-payload");
    assert!(
        err.message()
            .starts_with("unknown message type `supplier_order.lost`"),
        "{}",
        err.message()
    );

    let mut no_lines = example_json("supplier_order.shipped");
    no_lines["data"]["shipment"]["lines"] = json!([]);
    let err = callback::handle(
        SECRET,
        &callback_request(SECRET, "msg_4", 0, &no_lines.to_string()),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "bad-payload");
    assert!(
        err.message().starts_with("data.shipment.lines is empty"),
        "{}",
        err.message()
    );
}

#[test]
fn the_doc_signature_example_is_real() {
    // The doc's headers sign the example order exactly as Daifa sends it, so that suppliers can
    // check their verification code offline.
    let signed =
        push::signed_order_created(SECRET, &fixtures::sample_order(), fixtures::NOW_MS).unwrap();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let line = format!("{name}: {}", header(&signed.headers, name));
        assert!(
            fixtures::DOC.contains(&line),
            "the doc does not show `{line}`"
        );
    }
    assert!(
        fixtures::DOC.contains(SECRET),
        "the doc does not give the example's secret"
    );
}

#[test]
fn order_update_requested_is_the_documented_example() {
    let body =
        update::update_requested(&fixtures::sample_update(), fixtures::UPDATE_NOW_MS).unwrap();
    let built: Value = serde_json::from_slice(&body).unwrap();
    validate(fixtures::schema_of("order.update_requested"), &built)
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(built, example_json("order.update_requested"));
}

#[test]
fn the_updated_order_is_described_as_order_created_describes_it() {
    // The update's schema repeats order.created's, so that it stands alone for a supplier's
    // validator: the two must not drift apart.
    let created: Value = serde_json::from_str(fixtures::schema_of("order.created")).unwrap();
    let updated: Value =
        serde_json::from_str(fixtures::schema_of("order.update_requested")).unwrap();
    let mut order = updated["properties"]["data"]["properties"]["updated_order"].clone();
    order.as_object_mut().unwrap().remove("description");
    assert_eq!(order, created["properties"]["data"]);
    assert_eq!(updated["$defs"], created["$defs"]);
}

#[test]
fn every_update_the_plugin_sends_matches_the_schema() {
    let schema = fixtures::schema_of("order.update_requested");
    let sample = fixtures::sample_update();
    let mut no_policy = sample.updated.clone();
    no_policy.declared_value = None;
    no_policy.avoid_carriers = None;
    no_policy.buyer_note = None;
    let variants = [
        (vec!["ship-to"], sample.updated.clone()),
        (vec!["buyer-note"], no_policy.clone()),
        (vec!["customer", "customer", " "], no_policy),
        (
            vec!["lines", "ship-to", "buyer-note", "customer"],
            sample.updated.clone(),
        ),
        (vec!["declared-value"], sample.updated.clone()),
    ];
    for (changes, updated) in variants {
        let request = UpdateRequest {
            changes: changes.iter().map(|c| c.to_string()).collect(),
            updated,
            ..fixtures::sample_update()
        };
        let built: Value =
            serde_json::from_slice(&update::update_requested(&request, fixtures::NOW_MS).unwrap())
                .unwrap();
        validate(schema, &built).unwrap_or_else(|e| panic!("{changes:?}: {e:#?}"));
    }
}

#[test]
fn order_update_requested_headers_verify_as_the_standard_says() {
    let request = fixtures::sample_update();
    let now = fixtures::now_ms();
    let signed = update::signed_update_requested(SECRET, &request, now).unwrap();
    let (id, timestamp) = (
        header(&signed.headers, "webhook-id"),
        header(&signed.headers, "webhook-timestamp"),
    );
    assert_eq!(
        id, request.idempotency_key,
        "webhook-id is the update's key"
    );
    assert_ne!(
        id, request.updated.idempotency_key,
        "not the order's: the supplier would drop the update as a duplicate order.created"
    );
    assert_eq!(timestamp, (now / 1000).to_string());
    assert_eq!(header(&signed.headers, "content-type"), "application/json");
    assert_eq!(
        header(&signed.headers, "webhook-signature"),
        reference_signature(SECRET, id, timestamp, &signed.body)
    );
    assert_eq!(
        standard::verify(SECRET, &signed.headers, &signed.body).unwrap(),
        request.idempotency_key
    );
    let other_secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    assert_eq!(
        kind(standard::verify(
            other_secret,
            &signed.headers,
            &signed.body
        )),
        "bad-signature"
    );

    // A retry carries the same id and data; only the attempt's time changes.
    let retry = update::signed_update_requested(SECRET, &request, now + 300_000).unwrap();
    assert_eq!(header(&retry.headers, "webhook-id"), id);
    let data = |body: &[u8]| serde_json::from_slice::<Value>(body).unwrap()["data"].clone();
    assert_eq!(data(&retry.body), data(&signed.body));
}

#[test]
fn each_documented_answer_to_an_update_maps_to_its_answer() {
    let schema = fixtures::schema_of("order.update_requested.response");
    let read = |body: &Value| {
        update::read_update_answer(&OutboundResponse {
            status: 200,
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        })
    };
    let cases = [
        ("applied", UpdateAnswer::Applied),
        ("pending", UpdateAnswer::Requested),
        ("refused", UpdateAnswer::Refused),
    ];
    for (status, expected) in cases {
        let body = json!({"status": status, "reason": "Labelled at 18:58"});
        validate(schema, &body).unwrap_or_else(|e| panic!("{status}: {e:#?}"));
        let answered = read(&body).unwrap();
        assert_eq!(answered.answer, expected, "{status}");
        assert_eq!(answered.reason.as_deref(), Some("Labelled at 18:58"));
        assert_eq!(update::status_name(expected), status);
    }
    // Every status the schema lists is one of those.
    let listed = schema_statuses(schema);
    assert_eq!(listed, ["applied", "pending", "refused"]);

    let example = example_json("order.update_requested.response");
    assert_eq!(read(&example).unwrap().answer, UpdateAnswer::Requested);

    // What the schema refuses, the plugin does not take as an answer either.
    for body in [
        json!({}),
        json!({"status": "done"}),
        json!({"status": null}),
    ] {
        assert!(validate(schema, &body).is_err(), "the schema takes {body}");
        assert!(read(&body).is_err(), "the plugin takes {body}");
    }
}

fn schema_statuses(schema: &str) -> Vec<String> {
    let schema: Value = serde_json::from_str(schema).unwrap();
    schema["properties"]["status"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn refuses_a_forged_update_answer() {
    let body = fixtures::example("supplier_order.update_answered");
    let good = callback_request(SECRET, "msg_update_1", 0, body);
    assert!(callback::handle(SECRET, &good).is_ok());
    let mut tampered = good.clone();
    let at = tampered.body.windows(4).position(|w| w == b"true").unwrap();
    tampered.body.splice(at..at + 4, b"fals".iter().copied());
    assert_eq!(kind(callback::handle(SECRET, &tampered)), "bad-signature");
}

#[test]
fn the_recorded_update_answered_case_is_what_the_plugin_returns() {
    // The component runs the case (`daifa plugin test`); this checks natively that its signature
    // is the example's at the case's time and that its `expect` is what the callback parses to.
    let case: Value =
        serde_json::from_str(include_str!("../cases/callback-update-answered.json")).unwrap();
    let request = &case["request"];
    assert_eq!(
        request["body_file"],
        "../../../docs/schemas/examples/supplier_order.update_answered.json"
    );
    let body = fixtures::example("supplier_order.update_answered");
    let headers = &request["headers"];
    let id = headers["webhook-id"].as_str().unwrap();
    let now = case["now_ms"].as_i64().unwrap();
    assert_eq!(headers["webhook-timestamp"], (now / 1000).to_string());
    let signed = sign(SECRET, id, now, body.as_bytes().to_vec()).unwrap();
    assert_eq!(
        headers["webhook-signature"],
        header(&signed.headers, "webhook-signature")
    );
    let inbound = daifa_plugin_sdk::supplier::SupplierInbound {
        delivery_id: Some(id.into()),
        events: vec![callback::parse(body.as_bytes()).unwrap()],
    };
    assert_eq!(
        serde_json::to_value(&inbound).unwrap(),
        case["expect"]["ok"]
    );
}
