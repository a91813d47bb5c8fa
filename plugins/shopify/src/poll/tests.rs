use super::*;
use crate::order::{cancellation_from_json, order_from_json};
use daifa_plugin_sdk::channel::OrderCancellation;
use daifa_plugin_sdk::types::Order;
use serde_json::Value;

const ORDERS_CREATE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/shopify/webhook-orders-create.sample.json"
));
const ORDERS_CANCELLED: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/shopify/webhook-orders-cancelled.sample.json"
));
/// The first page of a poll: the published sample order, as the GraphQL Admin API gives it.
const PAGE_1: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/graphql-orders-page-1.json"
));
/// The next page: the same order, cancelled since.
const PAGE_2: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/graphql-orders-page-2.json"
));

const ORDER_ID: &str = "820982911946154508";
const ORDER_GID: &str = "gid://shopify/Order/820982911946154508";
/// 2026-01-01T00:00:00Z
const SINCE: TimestampMs = 1_767_225_600_000;
/// 2026-01-01T09:33:20Z
const NOW: TimestampMs = 1_767_260_000_000;
const END_CURSOR_1: &str = "eyJsYXN0X2lkIjo4MjA5ODI5MTE5NDYxNTQ1MDgsImxhc3RfdmFsdWUiOiIyMDI2LTAxLTAxIDA5OjE1OjAwLjAwMDAwMCJ9";

fn at(text: &str) -> TimestampMs {
    time::parse_rfc3339(text).unwrap()
}

fn request(cursor: Option<&str>) -> PollRequest {
    PollRequest {
        cursor: cursor.map(str::to_string),
        since: SINCE,
    }
}

/// Polls once at `now`, answering the calls with `answers` in turn; the outcome and the calls.
fn run(
    request: &PollRequest,
    now: TimestampMs,
    answers: Vec<Vec<u8>>,
) -> (Result<PollResult, PluginError>, Vec<Call>) {
    let mut answers = answers.into_iter();
    let mut calls = Vec::new();
    let outcome = poll(request, now, |call| {
        calls.push(call.clone());
        answers
            .next()
            .ok_or_else(|| PluginError::transient("no answer left"))
    });
    (outcome, calls)
}

fn page_1_order() -> Value {
    let page: Value = serde_json::from_slice(PAGE_1).unwrap();
    page["data"]["orders"]["edges"][0]["node"].clone()
}

/// An answer to the orders query; the cursor of each order is `order-{index}`.
fn orders_page(nodes: Vec<Value>, next: Option<&str>) -> Vec<u8> {
    let edges: Vec<Value> = nodes
        .into_iter()
        .enumerate()
        .map(|(i, node)| json!({ "cursor": format!("order-{i}"), "node": node }))
        .collect();
    serde_json::to_vec(&json!({
        "data": { "orders": {
            "pageInfo": { "hasNextPage": next.is_some(), "endCursor": next },
            "edges": edges
        }}
    }))
    .unwrap()
}

/// An order of the sample's with another id, changed at `updated_at`, whose line items go on
/// over `line_pages` more pages.
fn big_order(id: u64, updated_at: &str, line_pages: usize) -> Value {
    let mut order = page_1_order();
    order["id"] = json!(format!("gid://shopify/Order/{id}"));
    order["updatedAt"] = json!(updated_at);
    if line_pages > 0 {
        order["lineItems"]["pageInfo"] = json!({ "hasNextPage": true, "endCursor": "lines-1" });
    }
    order
}

/// An answer to the line items query, the last of its order's or not.
fn lines_page(last: bool) -> Vec<u8> {
    let mut line = page_1_order()["lineItems"]["nodes"][0].clone();
    line["id"] = json!("gid://shopify/LineItem/3");
    serde_json::to_vec(&json!({
        "data": { "order": { "lineItems": {
            "pageInfo": { "hasNextPage": !last, "endCursor": "lines-n" },
            "nodes": [line]
        }}}
    }))
    .unwrap()
}

fn events(outcome: &Result<PollResult, PluginError>) -> &[ChannelEvent] {
    &outcome.as_ref().unwrap().events
}

fn next_cursor(outcome: &Result<PollResult, PluginError>) -> Cursor {
    Cursor::decode(outcome.as_ref().unwrap().next_cursor.as_deref().unwrap()).unwrap()
}

#[test]
fn a_polled_order_is_the_order_its_webhook_gives() {
    let (outcome, _) = run(&request(None), NOW, vec![PAGE_1.to_vec()]);
    let mut webhook = order_from_json(ORDERS_CREATE).unwrap();
    // The one value the page does not take from the sample: the time of the change, ours.
    assert_eq!(webhook.updated_at, Some(at("2021-12-31T19:00:00-05:00")));
    webhook.updated_at = Some(at("2026-01-01T09:15:00Z"));
    assert_eq!(events(&outcome), [ChannelEvent::OrderPlaced(webhook)]);
}

#[test]
fn a_polled_cancellation_is_the_cancellation_its_webhook_gives() {
    // The sample's `cancelled_at` (2021-12-31T19:00:00-05:00) as GraphQL writes times, in UTC.
    let mut order = page_1_order();
    order["cancelledAt"] = json!("2022-01-01T00:00:00Z");
    order["cancelReason"] = json!("CUSTOMER");
    let (outcome, calls) = run(&request(None), NOW, vec![orders_page(vec![order], None)]);
    let webhook = cancellation_from_json(ORDERS_CANCELLED).unwrap();
    assert_eq!(events(&outcome), [ChannelEvent::OrderCancelled(webhook)]);
    assert_eq!(calls.len(), 1, "a cancellation needs no line items");
}

#[test]
fn the_first_poll_starts_at_since_and_follows_the_end_cursor() {
    let (outcome, calls) = run(&request(None), NOW, vec![PAGE_1.to_vec()]);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].query, ORDERS_QUERY);
    assert_eq!(
        calls[0].variables,
        json!({ "search": "updated_at:>='2026-01-01T00:00:00Z'", "after": null })
    );
    let result = &outcome.as_ref().unwrap();
    assert!(result.more);
    assert_eq!(
        result.next_cursor.as_deref(),
        Some(
            r#"{"since":"2026-01-01T00:00:00Z","after":"eyJsYXN0X2lkIjo4MjA5ODI5MTE5NDYxNTQ1MDgsImxhc3RfdmFsdWUiOiIyMDI2LTAxLTAxIDA5OjE1OjAwLjAwMDAwMCJ9","sent":{"820982911946154508":"2026-01-01T09:15:00Z"}}"#
        )
    );
}

#[test]
fn the_last_page_restarts_from_the_latest_change() {
    let (first, _) = run(&request(None), NOW, vec![PAGE_1.to_vec()]);
    let cursor = first.unwrap().next_cursor;
    let (outcome, calls) = run(&request(cursor.as_deref()), NOW, vec![PAGE_2.to_vec()]);
    assert_eq!(
        calls[0].variables,
        json!({ "search": "updated_at:>='2026-01-01T00:00:00Z'", "after": END_CURSOR_1 })
    );
    assert_eq!(
        events(&outcome),
        [ChannelEvent::OrderCancelled(OrderCancellation {
            external_id: ORDER_ID.into(),
            reason: Some("customer".into()),
            cancelled_at: at("2026-01-01T09:20:00Z"),
        })]
    );
    let result = &outcome.as_ref().unwrap();
    assert!(!result.more);
    assert_eq!(
        result.next_cursor.as_deref(),
        Some(
            r#"{"since":"2026-01-01T09:20:00Z","sent":{"820982911946154508":"2026-01-01T09:20:00Z"}}"#
        )
    );
}

#[test]
fn an_order_listed_again_unchanged_is_not_sent_again() {
    let cursor =
        r#"{"since":"2026-01-01T09:20:00Z","sent":{"820982911946154508":"2026-01-01T09:20:00Z"}}"#;
    let mut order = page_1_order();
    order["updatedAt"] = json!("2026-01-01T09:20:00Z");
    let (outcome, calls) = run(
        &request(Some(cursor)),
        NOW,
        vec![orders_page(vec![order.clone()], None)],
    );
    assert_eq!(
        calls[0].variables["search"],
        "updated_at:>='2026-01-01T09:20:00Z'"
    );
    assert!(events(&outcome).is_empty());
    assert_eq!(
        outcome.as_ref().unwrap().next_cursor.as_deref(),
        Some(cursor)
    );

    // Changed again: sent again, and the run after starts from the change.
    order["updatedAt"] = json!("2026-01-01T09:25:00Z");
    let (outcome, _) = run(
        &request(Some(cursor)),
        NOW,
        vec![orders_page(vec![order], None)],
    );
    assert!(matches!(events(&outcome), [ChannelEvent::OrderPlaced(_)]));
    let next = next_cursor(&outcome);
    assert_eq!(next.since, at("2026-01-01T09:25:00Z"));
    assert_eq!(
        next.sent,
        BTreeMap::from([(ORDER_ID.to_string(), at("2026-01-01T09:25:00Z"))])
    );
}

#[test]
fn the_last_minute_is_read_again() {
    // Changed 10 s before the poll: the next run starts a minute before the poll, and the
    // order is remembered so that it is not sent twice.
    let mut order = page_1_order();
    order["updatedAt"] = json!("2026-01-01T09:33:10Z");
    let (outcome, _) = run(&request(None), NOW, vec![orders_page(vec![order], None)]);
    let next = next_cursor(&outcome);
    assert_eq!(next.since, at("2026-01-01T09:32:20Z"));
    assert_eq!(next.after, None);
    assert_eq!(
        next.sent,
        BTreeMap::from([(ORDER_ID.to_string(), at("2026-01-01T09:33:10Z"))])
    );
}

#[test]
fn a_poll_that_finds_nothing_keeps_its_place() {
    let (outcome, _) = run(&request(None), NOW, vec![orders_page(Vec::new(), None)]);
    let result = &outcome.as_ref().unwrap();
    assert!(result.events.is_empty() && !result.more);
    assert_eq!(
        result.next_cursor.as_deref(),
        Some(r#"{"since":"2026-01-01T00:00:00Z"}"#)
    );
    // `since` is taken to the whole second below: Shopify's times have no fraction.
    let (_, calls) = run(
        &PollRequest {
            cursor: None,
            since: SINCE + 999,
        },
        NOW,
        vec![orders_page(Vec::new(), None)],
    );
    assert_eq!(
        calls[0].variables["search"],
        "updated_at:>='2026-01-01T00:00:00Z'"
    );
}

#[test]
fn cursors_round_trip_and_a_foreign_one_starts_over() {
    let cursor = Cursor {
        since: SINCE,
        after: Some("abc".into()),
        sent: BTreeMap::from([("1".to_string(), SINCE + 5_000)]),
        position: None,
    };
    let text = cursor.encode().unwrap();
    assert_eq!(
        text,
        r#"{"since":"2026-01-01T00:00:00Z","after":"abc","sent":{"1":"2026-01-01T00:00:05Z"}}"#
    );
    assert_eq!(Cursor::decode(&text).unwrap(), cursor);
    for foreign in [
        "page-2",
        r#"{"since":"yesterday"}"#,
        r#"{"since":"2026-01-01T00:00:00Z","page":2}"#,
    ] {
        let err = Cursor::decode(foreign).unwrap_err();
        assert_eq!(err.kind(), "permanent", "{foreign}");
        assert!(
            err.message().contains("not one this plugin wrote"),
            "{}",
            err.message()
        );
    }

    let (outcome, calls) = run(&request(Some("page-2")), NOW, vec![PAGE_1.to_vec()]);
    assert_eq!(
        calls[0].variables,
        json!({ "search": "updated_at:>='2026-01-01T00:00:00Z'", "after": null })
    );
    let warnings = &outcome.as_ref().unwrap().skipped;
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("starts over"), "{}", warnings[0]);
}

#[test]
fn an_order_with_more_lines_than_a_page_has_the_rest_read() {
    let mut order = page_1_order();
    order["lineItems"]["pageInfo"] = json!({ "hasNextPage": true, "endCursor": "lines-1" });
    let mut extra = order["lineItems"]["nodes"][0].clone();
    extra["id"] = json!("gid://shopify/LineItem/3");
    extra["sku"] = json!(null);
    extra["variant"] = json!(null);
    extra["customAttributes"] =
        json!([{ "key": "Engraving", "value": "Für Anna" }, { "key": "_upload", "value": null }]);
    let lines_page = serde_json::to_vec(&json!({
        "data": { "order": { "lineItems": {
            "pageInfo": { "hasNextPage": false, "endCursor": "lines-2" },
            "nodes": [extra]
        }}}
    }))
    .unwrap();
    let (outcome, calls) = run(
        &request(None),
        NOW,
        vec![orders_page(vec![order], None), lines_page],
    );
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].query, ORDER_LINES_QUERY);
    assert_eq!(
        calls[1].variables,
        json!({ "id": ORDER_GID, "after": "lines-1" })
    );
    let [ChannelEvent::OrderPlaced(placed)] = events(&outcome) else {
        panic!("expected one order, got {:?}", events(&outcome));
    };
    let ids: Vec<&str> = placed
        .lines
        .iter()
        .map(|l| l.external_line_id.as_str())
        .collect();
    assert_eq!(ids, ["866550311766439020", "141249953214522974", "3"]);
    let third = &placed.lines[2];
    assert_eq!(third.storefront_sku, "shopify-line:3");
    assert_eq!(
        third.note.as_deref(),
        Some("Engraving: Für Anna; _upload: ")
    );
}

#[test]
fn an_order_that_cannot_be_read_is_skipped_with_a_warning() {
    let mut unreadable = page_1_order();
    unreadable["id"] = json!("gid://shopify/Order/1");
    unreadable["updatedAt"] = json!("2026-01-01T09:00:00Z");
    unreadable["shippingAddress"]["address1"] = json!("");
    let (outcome, _) = run(
        &request(None),
        NOW,
        vec![orders_page(vec![unreadable, page_1_order()], None)],
    );
    let polled = outcome.as_ref().unwrap();
    assert!(matches!(
        polled.events.as_slice(),
        [ChannelEvent::OrderPlaced(o)] if o.external_id == ORDER_ID
    ));
    assert_eq!(
        polled.skipped,
        ["order `1` skipped: missing field `shippingAddress.address1`"]
    );
    // Passed over like the others: the poll does not stall on it.
    assert_eq!(next_cursor(&outcome).since, at("2026-01-01T09:15:00Z"));
}

#[test]
fn graphql_names_the_fields_of_its_errors() {
    let mut order = page_1_order();
    order["currencyCode"] = json!("XXY");
    let mut other_currency = page_1_order();
    other_currency["totalPriceSet"]["shopMoney"]["currencyCode"] = json!("EUR");
    for (node, message) in [
        (order, "`currencyCode`: unknown currency `XXY`"),
        (
            other_currency,
            "`totalPriceSet.shopMoney` is in EUR, the order in USD",
        ),
    ] {
        let (outcome, _) = run(&request(None), NOW, vec![orders_page(vec![node], None)]);
        let warnings = &outcome.as_ref().unwrap().skipped;
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].ends_with(message), "{}", warnings[0]);
    }
}

#[test]
fn shopify_errors_keep_their_kind() {
    let throttled = br#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED","documentation":"https://shopify.dev/api/usage/rate-limits"}}],"extensions":{"cost":{"requestedQueryCost":652,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":120,"restoreRate":100.0}}}}"#;
    let (outcome, _) = run(&request(None), NOW, vec![throttled.to_vec()]);
    let err = outcome.unwrap_err();
    assert_eq!(err.kind(), "transient");
    assert_eq!(
        err.message(),
        "shopify refused the orders query: THROTTLED: Throttled"
    );

    let denied = br#"{"errors":[{"message":"Access denied for orders field. Required access: `read_orders` access scope.","extensions":{"code":"ACCESS_DENIED"}}],"data":null}"#;
    let (outcome, _) = run(&request(None), NOW, vec![denied.to_vec()]);
    let err = outcome.unwrap_err();
    assert_eq!(err.kind(), "permanent");
    assert!(err.message().contains("read_orders"), "{}", err.message());

    // A failed call (an HTTP status, the network) fails the poll as it failed.
    let (outcome, _) = run(&request(None), NOW, Vec::new());
    assert_eq!(outcome.unwrap_err().kind(), "transient");

    // Also when it reads an order's further line items: the page is read again next time.
    let mut order = page_1_order();
    order["lineItems"]["pageInfo"] = json!({ "hasNextPage": true, "endCursor": "lines-1" });
    let (outcome, _) = run(
        &request(None),
        NOW,
        vec![orders_page(vec![order], None), throttled.to_vec()],
    );
    assert_eq!(outcome.unwrap_err().kind(), "transient");
}

#[test]
fn a_next_page_without_an_end_cursor_is_refused() {
    let body = serde_json::to_vec(&json!({
        "data": { "orders": { "pageInfo": { "hasNextPage": true, "endCursor": null }, "edges": [] } }
    }))
    .unwrap();
    let (outcome, _) = run(&request(None), NOW, vec![body]);
    assert_eq!(outcome.unwrap_err().kind(), "permanent");
}

#[test]
fn the_cursor_remembers_a_bounded_number_of_orders() {
    let mut cursor = Cursor::start(SINCE);
    for i in 0..(MAX_SENT as i64 + 50) {
        cursor.sent.insert(format!("{i}"), SINCE + i * 1000);
    }
    cursor.forget_before(SINCE);
    assert_eq!(cursor.sent.len(), MAX_SENT);
    // The oldest go first.
    assert!(!cursor.sent.contains_key("49") && cursor.sent.contains_key("50"));
}

#[test]
fn the_queries_define_the_fragments_they_use() {
    for query in [ORDERS_QUERY, ORDER_LINES_QUERY] {
        for fragment in ["DaifaLineItem", "DaifaMoney"] {
            assert!(query.contains(&format!("...{fragment}")), "{fragment}");
            assert!(
                query.contains(&format!("fragment {fragment} on ")),
                "{fragment}"
            );
        }
        assert_eq!(query.matches('{').count(), query.matches('}').count());
    }
}

#[test]
fn a_poll_out_of_calls_stops_after_the_last_order_it_read() {
    // Two orders of 3 line pages each: the first takes 3 of the 7 calls left after the orders
    // query, the second runs out on its 5th; the next poll continues with it.
    let page = orders_page(
        vec![
            big_order(1, "2026-01-01T09:00:00Z", 3),
            big_order(2, "2026-01-01T09:05:00Z", 5),
            big_order(3, "2026-01-01T09:06:00Z", 0),
        ],
        Some("order-2"),
    );
    let mut answers = vec![page];
    answers.extend([lines_page(false), lines_page(false), lines_page(true)]);
    answers.extend((0..4).map(|_| lines_page(false)));
    let (outcome, calls) = run(&request(None), NOW, answers);
    assert_eq!(calls.len(), CALLS_PER_POLL);
    let polled = outcome.unwrap();
    assert!(matches!(
        polled.events.as_slice(),
        [ChannelEvent::OrderPlaced(o)] if o.external_id == "1" && o.lines.len() == 5
    ));
    assert!(polled.skipped.is_empty(), "{:?}", polled.skipped);
    assert!(polled.more);
    let next = Cursor::decode(polled.next_cursor.as_deref().unwrap()).unwrap();
    assert_eq!(next.since, SINCE);
    assert_eq!(next.after.as_deref(), Some("order-0"));
    assert_eq!(
        next.sent,
        BTreeMap::from([("1".to_string(), at("2026-01-01T09:00:00Z"))])
    );
}

#[test]
fn an_order_too_big_for_every_call_of_a_poll_is_skipped() {
    let page = orders_page(
        vec![
            big_order(1, "2026-01-01T09:00:00Z", 9),
            big_order(2, "2026-01-01T09:05:00Z", 0),
        ],
        None,
    );
    let mut answers = vec![page];
    answers.extend((0..CALLS_PER_POLL).map(|_| lines_page(false)));
    let (outcome, calls) = run(&request(None), NOW, answers);
    assert_eq!(calls.len(), CALLS_PER_POLL);
    let polled = outcome.unwrap();
    assert!(matches!(
        polled.events.as_slice(),
        [ChannelEvent::OrderPlaced(o)] if o.external_id == "2"
    ));
    assert_eq!(
        polled.skipped,
        ["order `1` skipped: it has more line items than one poll reads"]
    );
    assert!(!polled.more);
}

/// The order polled from `node`.
fn polled(node: Value) -> Result<Order, String> {
    let (outcome, _) = run(&request(None), NOW, vec![orders_page(vec![node], None)]);
    let polled = outcome.map_err(|e| e.message().to_string())?;
    match polled.events.as_slice() {
        [ChannelEvent::OrderPlaced(order)] => Ok(order.clone()),
        _ => Err(polled.skipped.join("; ")),
    }
}

#[test]
fn display_financial_status_gives_the_payment_its_rest_status_gives() {
    for (status, gateways, payment) in crate::order::PAYMENTS {
        let mut node = page_1_order();
        node["displayFinancialStatus"] = json!(status.to_ascii_uppercase());
        node["paymentGatewayNames"] = json!(gateways);
        assert_eq!(
            polled(node).unwrap().payment,
            Some(payment),
            "{status} {gateways:?}"
        );
    }
    // Nullable in Shopify's schema: no status, no payment status.
    let mut node = page_1_order();
    node["displayFinancialStatus"] = json!(null);
    assert_eq!(polled(node).unwrap().payment, None);
}

#[test]
fn updated_at_of_a_polled_order_is_its_updated_at() {
    let mut node = page_1_order();
    node["updatedAt"] = json!("2026-01-01T09:31:02Z");
    assert_eq!(
        polled(node.clone()).unwrap().updated_at,
        Some(at("2026-01-01T09:31:02Z"))
    );
    // Skipped, as any order it cannot read: without the time of its change, the gateway could
    // not tell which of two copies is the later.
    node["updatedAt"] = json!("soon");
    let skipped = polled(node).unwrap_err();
    assert!(
        skipped.starts_with("order `gid://shopify/Order/820982911946154508` skipped: `updatedAt`: invalid timestamp `soon`"),
        "{skipped}"
    );
}

#[test]
fn the_orders_query_selects_the_payment_and_the_time_of_the_change() {
    for field in ["displayFinancialStatus", "paymentGatewayNames", "updatedAt"] {
        assert!(
            ORDERS_QUERY.contains(&format!("\n        {field}\n")),
            "{field}"
        );
    }
}
