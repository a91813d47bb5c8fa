//! Shopify webhooks: signature, headers, topics.

use daifa_plugin_sdk::channel::{ChannelEvent, Inbound};
use daifa_plugin_sdk::types::{HttpHeader, InboundRequest, TimestampMs};
use daifa_plugin_sdk::{PluginError, signature, time};

use crate::aftersales::{refund_case_from_json, return_case_from_json};
use crate::config::normalize_shop_domain;
use crate::order::{cancellation_from_json, order_from_json};

/// Header names, the classic one first. Newer deliveries send them without the `X-` prefix.
const HMAC: [&str; 2] = ["x-shopify-hmac-sha256", "shopify-hmac-sha256"];
const TOPIC: [&str; 2] = ["x-shopify-topic", "shopify-topic"];
const WEBHOOK_ID: [&str; 2] = ["x-shopify-webhook-id", "shopify-webhook-id"];
const SHOP_DOMAIN: [&str; 2] = ["x-shopify-shop-domain", "shopify-shop-domain"];
const TRIGGERED_AT: [&str; 2] = ["x-shopify-triggered-at", "shopify-triggered-at"];

/// What verifying a webhook takes, passed in so that it runs without the host.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    /// The app's client secret.
    pub secret: &'a [u8],
    /// The connection's shop. One app (and so one secret) can be installed on many shops: a
    /// webhook of another shop verifies with the same secret and must still be refused, so
    /// a webhook that does not say its shop is refused too.
    pub shop_domain: &'a str,
}

/// Verifies a webhook on its raw body, then turns it into canonical events.
pub fn handle(verifier: Verifier<'_>, request: &InboundRequest) -> Result<Inbound, PluginError> {
    handle_received(verifier, request, None)
}

/// [`handle`], with the time the webhook was received: the time of a request whose body and
/// `X-Shopify-Triggered-At` header both lack one.
pub fn handle_received(
    verifier: Verifier<'_>,
    request: &InboundRequest,
    received_at: Option<TimestampMs>,
) -> Result<Inbound, PluginError> {
    verify(verifier, request)?;
    let topic = first_header(&request.headers, &TOPIC)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| PluginError::bad_payload("header `x-shopify-topic` is missing"))?
        .to_string();
    let delivery_id = first_header(&request.headers, &WEBHOOK_ID)
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    // When Shopify triggered the webhook: the time of requests whose body has none.
    let triggered_at = first_header(&request.headers, &TRIGGERED_AT)
        .and_then(|at| time::parse_rfc3339(at.trim()).ok())
        .or(received_at);
    let events = events(&topic, &request.body, triggered_at)?;
    Ok(Inbound {
        delivery_id,
        topic: Some(topic),
        events,
    })
}

/// The events of a verified webhook body; `triggered_at` is when Shopify sent it, if known.
pub fn events(
    topic: &str,
    body: &[u8],
    triggered_at: Option<TimestampMs>,
) -> Result<Vec<ChannelEvent>, PluginError> {
    Ok(match topic.to_ascii_lowercase().as_str() {
        // Shopify sends the whole order on every change (`orders/paid` when its payment is
        // captured): each is a copy of the order, and the gateway applies the latest by
        // `updated-at`.
        "orders/create" | "orders/updated" | "orders/paid" => {
            vec![ChannelEvent::OrderPlaced(order_from_json(body)?)]
        }
        "orders/cancelled" => vec![ChannelEvent::OrderCancelled(cancellation_from_json(body)?)],
        // A refund made in Shopify's admin; the refunds Daifa makes come back here too and are
        // recognised by their note.
        "refunds/create" => refund_case_from_json(body, triggered_at)?
            .map(ChannelEvent::CaseOpened)
            .into_iter()
            .collect(),
        "returns/request" => vec![ChannelEvent::CaseOpened(return_case_from_json(
            body,
            triggered_at,
        )?)],
        // Authentic but of no interest: acknowledged so that Shopify does not retry it.
        _ => Vec::new(),
    })
}

/// Checks `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(secret, raw body)) in constant time,
/// then that `X-Shopify-Shop-Domain` names the connection's shop.
pub fn verify(verifier: Verifier<'_>, request: &InboundRequest) -> Result<(), PluginError> {
    // Anyone can compute an HMAC with an empty key.
    if verifier.secret.is_empty() {
        return Err(PluginError::permanent(
            "connection secret `webhook_secret` is empty",
        ));
    }
    let expected = normalize_shop_domain(verifier.shop_domain).ok_or_else(|| {
        PluginError::permanent(format!(
            "connection setting `shop_domain` must be a host name like `demo-shop.myshopify.com`, not `{}`",
            verifier.shop_domain
        ))
    })?;
    let given = first_header(&request.headers, &HMAC)
        .ok_or_else(|| PluginError::bad_signature("header `x-shopify-hmac-sha256` is missing"))?;
    signature::verify_hmac_sha256_base64(verifier.secret, &request.body, Some(given)).map_err(
        |e| PluginError::bad_signature(format!("shopify webhook refused: {}", e.message())),
    )?;
    // Shopify names the shop in every webhook; without it, a webhook of any shop the app is
    // installed on would pass for this one's.
    let sender = first_header(&request.headers, &SHOP_DOMAIN).ok_or_else(|| {
        PluginError::bad_signature(format!(
            "header `x-shopify-shop-domain` is missing: this connection accepts webhooks of `{expected}` only, and the webhook does not say its shop"
        ))
    })?;
    let sender = normalize_shop_domain(sender);
    if sender.as_deref() != Some(expected.as_str()) {
        return Err(PluginError::bad_signature(format!(
            "webhook is from shop `{}`, this connection is for `{expected}`",
            sender.unwrap_or_default(),
        )));
    }
    Ok(())
}

/// The first header present under any of `names`.
fn first_header<'a>(headers: &'a [HttpHeader], names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|name| signature::header(headers, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use daifa_plugin_sdk::channel::OrderCancellation;
    use daifa_plugin_sdk::types::{Order, PaymentStatus};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/shopify/");
    const ORDERS_CREATE: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/shopify/webhook-orders-create.sample.json"
    ));
    const ORDERS_CANCELLED: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/shopify/webhook-orders-cancelled.sample.json"
    ));
    const SECRET: &[u8] = b"hush";
    const SHOP: &str = "demo-shop.myshopify.com";

    fn verifier() -> Verifier<'static> {
        Verifier {
            secret: SECRET,
            shop_domain: SHOP,
        }
    }

    fn header(name: &str, value: &str) -> HttpHeader {
        HttpHeader {
            name: name.into(),
            value: value.into(),
        }
    }

    /// A delivery as Shopify makes it: signed with `SECRET`, from `SHOP`.
    fn delivery(topic: &str, body: &[u8]) -> InboundRequest {
        InboundRequest {
            method: "POST".into(),
            path: "/hooks/demo-shop".into(),
            headers: vec![
                header("x-shopify-topic", topic),
                header(
                    "x-shopify-hmac-sha256",
                    &signature::hmac_sha256_base64(SECRET, body),
                ),
                header("x-shopify-shop-domain", SHOP),
                header("x-shopify-api-version", "2025-07"),
                header(
                    "x-shopify-webhook-id",
                    "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                ),
            ],
            body: body.to_vec(),
        }
    }

    #[test]
    fn published_hmac_test_vector_verifies() {
        let vector: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!("{FIXTURES}webhook-hmac-test-vector.json")).unwrap(),
        )
        .unwrap();
        let text = |key: &str| vector[key].as_str().unwrap().to_string();
        let other = &vector["other_headers_in_test"];
        let request = InboundRequest {
            method: "POST".into(),
            path: "/".into(),
            // Header names as the test sends them: they compare case-insensitively.
            headers: vec![
                header(&text("header"), &text("expected_header_value")),
                header(
                    "X-Shopify-Topic",
                    other["X-Shopify-Topic"].as_str().unwrap(),
                ),
                header(
                    "X-Shopify-Shop-Domain",
                    other["X-Shopify-Shop-Domain"].as_str().unwrap(),
                ),
                header(
                    "X-Shopify-Webhook-Id",
                    other["X-Shopify-Webhook-Id"].as_str().unwrap(),
                ),
            ],
            body: text("raw_body").into_bytes(),
        };
        let secret = text("secret");
        let verifier = Verifier {
            secret: secret.as_bytes(),
            shop_domain: "shop1.myshopify.io",
        };
        let inbound = handle(verifier, &request).unwrap();
        // `products/create` is authentic but not for Daifa: acknowledged with no events.
        assert_eq!(
            inbound,
            Inbound {
                delivery_id: Some("123456789".into()),
                topic: Some("products/create".into()),
                events: vec![]
            }
        );

        let mut tampered = request.clone();
        tampered.body = br#"{"foo": "baz"}"#.to_vec();
        assert_eq!(
            handle(verifier, &tampered).unwrap_err().kind(),
            "bad-signature"
        );
        let wrong_secret = Verifier {
            secret: b"other_secret_key",
            ..verifier
        };
        assert_eq!(
            handle(wrong_secret, &request).unwrap_err().kind(),
            "bad-signature"
        );
    }

    #[test]
    fn orders_create_becomes_order_placed() {
        let inbound = handle(verifier(), &delivery("orders/create", ORDERS_CREATE)).unwrap();
        assert_eq!(inbound.topic.as_deref(), Some("orders/create"));
        assert_eq!(
            inbound.delivery_id.as_deref(),
            Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
        );
        let [ChannelEvent::OrderPlaced(order)] = inbound.events.as_slice() else {
            panic!("expected one order-placed event, got {:?}", inbound.events);
        };
        assert_eq!(order.external_id, "820982911946154508");
    }

    #[test]
    fn updated_and_paid_also_place_the_order() {
        for topic in ["orders/updated", "orders/paid", "Orders/Paid"] {
            let inbound = handle(verifier(), &delivery(topic, ORDERS_CREATE)).unwrap();
            assert!(
                matches!(inbound.events.as_slice(), [ChannelEvent::OrderPlaced(_)]),
                "{topic}"
            );
        }
    }

    const ORDERS_PAID: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhook-orders-paid.derived.json"
    ));
    const ORDERS_CREATE_COD: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhook-orders-create-cod.derived.json"
    ));

    /// The order of the one `order-placed` event of a delivery.
    fn placed(topic: &str, body: &[u8]) -> Order {
        let inbound = handle(verifier(), &delivery(topic, body)).unwrap();
        assert_eq!(inbound.topic.as_deref(), Some(topic));
        match inbound.events.as_slice() {
            [ChannelEvent::OrderPlaced(order)] => order.clone(),
            other => panic!("expected one order-placed event, got {other:?}"),
        }
    }

    #[test]
    fn orders_paid_is_a_later_copy_of_the_order_that_says_paid() {
        let created = placed("orders/create", ORDERS_CREATE);
        let paid = placed("orders/paid", ORDERS_PAID);
        assert_eq!(paid.external_id, created.external_id);
        assert_eq!(paid.payment, Some(PaymentStatus::Paid));
        assert!(paid.updated_at > created.updated_at, "{paid:?}");
    }

    #[test]
    fn orders_updated_carries_the_change_and_its_time() {
        let mut body: serde_json::Value = serde_json::from_slice(ORDERS_CREATE).unwrap();
        body["shipping_address"]["address1"] = serde_json::json!("125 Shipping Street");
        body["updated_at"] = serde_json::json!("2022-01-01T08:00:00-05:00");
        let created = placed("orders/create", ORDERS_CREATE);
        let updated = placed("orders/updated", &serde_json::to_vec(&body).unwrap());
        assert_eq!(updated.external_id, created.external_id);
        assert_eq!(updated.updated_at, Some(1_641_042_000_000));
        assert!(updated.updated_at > created.updated_at);
        assert_eq!(
            updated.shipping_address.map(|a| a.line1).as_deref(),
            Some("125 Shipping Street")
        );
    }

    #[test]
    fn a_cash_on_delivery_order_is_placed_as_cash_on_delivery() {
        let order = placed("orders/create", ORDERS_CREATE_COD);
        assert_eq!(order.payment, Some(PaymentStatus::CashOnDelivery));
    }

    #[test]
    fn orders_cancelled_becomes_order_cancelled() {
        let inbound = handle(verifier(), &delivery("orders/cancelled", ORDERS_CANCELLED)).unwrap();
        assert_eq!(
            inbound.events,
            vec![ChannelEvent::OrderCancelled(OrderCancellation {
                external_id: "820982911946154508".into(),
                reason: Some("customer".into()),
                cancelled_at: 1_640_995_200_000,
            })]
        );
    }

    #[test]
    fn unknown_topic_is_acknowledged_without_events() {
        let inbound = handle(verifier(), &delivery("products/update", br#"{"id": 1}"#)).unwrap();
        assert_eq!(inbound.topic.as_deref(), Some("products/update"));
        assert!(inbound.events.is_empty());
    }

    #[test]
    fn tampered_body_is_refused_before_parsing() {
        let mut request = delivery("orders/create", ORDERS_CREATE);
        request.body = String::from_utf8(request.body)
            .unwrap()
            .replace("\"199.00\"", "\"1.00\"")
            .into_bytes();
        let err = handle(verifier(), &request).unwrap_err();
        assert_eq!(err.kind(), "bad-signature");
        assert!(
            err.message().contains("does not match"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn missing_or_malformed_signature_is_refused() {
        let mut request = delivery("orders/create", ORDERS_CREATE);
        request
            .headers
            .retain(|h| h.name != "x-shopify-hmac-sha256");
        let err = handle(verifier(), &request).unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            ("bad-signature", "header `x-shopify-hmac-sha256` is missing")
        );
        request
            .headers
            .push(header("x-shopify-hmac-sha256", "not base64!"));
        assert_eq!(
            handle(verifier(), &request).unwrap_err().kind(),
            "bad-signature"
        );
    }

    #[test]
    fn new_style_header_names_are_accepted() {
        let body = ORDERS_CANCELLED;
        let request = InboundRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: vec![
                header(
                    "shopify-hmac-sha256",
                    &signature::hmac_sha256_base64(SECRET, body),
                ),
                header("shopify-topic", "orders/cancelled"),
                header("shopify-webhook-id", "42"),
                header("shopify-shop-domain", SHOP),
            ],
            body: body.to_vec(),
        };
        let inbound = handle(verifier(), &request).unwrap();
        assert_eq!(inbound.delivery_id.as_deref(), Some("42"));
        assert!(matches!(
            inbound.events.as_slice(),
            [ChannelEvent::OrderCancelled(_)]
        ));
    }

    #[test]
    fn webhook_of_another_shop_is_refused() {
        let mut request = delivery("orders/create", ORDERS_CREATE);
        request
            .headers
            .retain(|h| h.name != "x-shopify-shop-domain");
        request
            .headers
            .push(header("x-shopify-shop-domain", "other-shop.myshopify.com"));
        let err = handle(verifier(), &request).unwrap_err();
        assert_eq!(err.kind(), "bad-signature");
        assert!(
            err.message().contains("other-shop.myshopify.com"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn garbage_body_is_a_bad_payload() {
        let err = handle(
            verifier(),
            &delivery("orders/create", b"<html>not json</html>"),
        )
        .unwrap_err();
        assert_eq!(err.kind(), "bad-payload");
        let err = handle(verifier(), &delivery("orders/create", br#"{"id": 5}"#)).unwrap_err();
        assert_eq!(err.kind(), "bad-payload");
        assert!(err.message().contains("currency"), "{}", err.message());
    }

    #[test]
    fn missing_topic_is_a_bad_payload() {
        let mut request = delivery("orders/create", ORDERS_CREATE);
        request.headers.retain(|h| h.name != "x-shopify-topic");
        let err = handle(verifier(), &request).unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            ("bad-payload", "header `x-shopify-topic` is missing")
        );
    }

    const REFUNDS_CREATE: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhook-refunds-create.pipedream-devstore.json"
    ));
    const RETURNS_REQUEST: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhook-returns-request.yellowai-docs.json"
    ));

    #[test]
    fn refunds_create_opens_a_refunded_case() {
        let inbound = handle(verifier(), &delivery("refunds/create", REFUNDS_CREATE)).unwrap();
        assert_eq!(inbound.topic.as_deref(), Some("refunds/create"));
        let [ChannelEvent::CaseOpened(case)] = inbound.events.as_slice() else {
            panic!("expected one case-opened event, got {:?}", inbound.events);
        };
        assert_eq!(
            (case.order_external_id.as_str(), case.external_id.as_str()),
            ("6273085767965", "1002961240349")
        );
        assert!(case.refunded);
        assert_eq!(case.kind, daifa_plugin_sdk::types::CaseKind::RefundOnly);
    }

    #[test]
    fn a_refund_daifa_made_comes_back_without_events() {
        let body = String::from_utf8(REFUNDS_CREATE.to_vec())
            .unwrap()
            .replace(
                r#""note": """#,
                r#""note": "daifa case case_7: ordered twice""#,
            )
            .into_bytes();
        let inbound = handle(verifier(), &delivery("refunds/create", &body)).unwrap();
        assert_eq!(inbound.topic.as_deref(), Some("refunds/create"));
        assert!(inbound.events.is_empty(), "{:?}", inbound.events);
    }

    #[test]
    fn returns_request_opens_a_return_case_at_the_time_shopify_sent_it() {
        let mut request = delivery("returns/request", RETURNS_REQUEST);
        request
            .headers
            .push(header("x-shopify-triggered-at", "2023-10-19T10:19:34.123Z"));
        let inbound = handle(verifier(), &request).unwrap();
        let [ChannelEvent::CaseOpened(case)] = inbound.events.as_slice() else {
            panic!("expected one case-opened event, got {:?}", inbound.events);
        };
        assert_eq!(case.external_id, "3547267221");
        assert_eq!(case.requested_at, 1_697_710_774_123);
        assert!(!case.refunded);

        // Without the header, the time the gateway received it.
        let request = delivery("returns/request", RETURNS_REQUEST);
        let inbound = handle_received(verifier(), &request, Some(7)).unwrap();
        let [ChannelEvent::CaseOpened(case)] = inbound.events.as_slice() else {
            panic!("expected one case-opened event, got {:?}", inbound.events);
        };
        assert_eq!(case.requested_at, 7);
        assert_eq!(
            handle(verifier(), &request).unwrap_err().kind(),
            "bad-payload"
        );
    }

    #[test]
    fn webhook_that_does_not_say_its_shop_is_refused() {
        for name in ["x-shopify-shop-domain", "shopify-shop-domain"] {
            let mut request = delivery("orders/create", ORDERS_CREATE);
            request
                .headers
                .retain(|h| h.name != "x-shopify-shop-domain");
            let err = handle(verifier(), &request).unwrap_err();
            assert_eq!(err.kind(), "bad-signature");
            assert!(
                err.message()
                    .starts_with("header `x-shopify-shop-domain` is missing"),
                "{}",
                err.message()
            );
            // Either form of the header name is enough.
            request.headers.push(header(name, SHOP));
            assert!(handle(verifier(), &request).is_ok(), "{name}");
        }
    }

    #[test]
    fn shop_domain_is_compared_as_a_host() {
        let mut request = delivery("orders/create", ORDERS_CREATE);
        request
            .headers
            .retain(|h| h.name != "x-shopify-shop-domain");
        request
            .headers
            .push(header("x-shopify-shop-domain", "Demo-Shop.myshopify.com"));
        let pasted = Verifier {
            shop_domain: "https://demo-shop.myshopify.com/",
            ..verifier()
        };
        assert!(handle(pasted, &request).is_ok());
    }

    #[test]
    fn empty_secret_or_shop_is_never_used() {
        let request = delivery("orders/create", ORDERS_CREATE);
        let no_secret = Verifier {
            secret: b"",
            shop_domain: SHOP,
        };
        assert_eq!(handle(no_secret, &request).unwrap_err().kind(), "permanent");
        for shop in ["", " ", "demo shop"] {
            let no_shop = Verifier {
                secret: SECRET,
                shop_domain: shop,
            };
            let err = handle(no_shop, &request).unwrap_err();
            assert_eq!(err.kind(), "permanent", "{shop:?}");
            assert!(err.message().contains("shop_domain"), "{}", err.message());
        }
    }
}
