#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use super::peer::mismatches;
use super::run::compare;
use super::*;
use crate::bindings::host::HttpError;
use crate::outbound::{FetchOptions, OutboundHttp};
use crate::{HttpHeader, OutboundRequest};
use serde_json::json;
use std::time::Duration;

fn case_path() -> PathBuf {
    PathBuf::from("/plugins/demo/cases/orders-create.json")
}

fn parse_json(value: Value) -> Result<LoadedCase, String> {
    parse(&case_path(), serde_json::to_string_pretty(&value).unwrap())
}

fn inbound_case() -> Value {
    json!({
        "description": "an order webhook",
        "call": "handle-inbound",
        "connection": { "secrets": { "webhook_secret": "hush" } },
        "request": {
            "headers": { "X-Signature": "abc", "x-event": "order.created" },
            "body": { "id": 1, "note": "gift wrap" }
        },
        "expect": { "ok": { "delivery_id": null, "topic": "order.created", "events": [] } }
    })
}

fn fulfillment_input() -> Value {
    json!({
        "order_external_id": "1001",
        "shipment_id": "shp_1",
        "shipment": {
            "lines": [ { "external_line_id": "1", "quantity": 2 } ],
            "carrier_code": "UPS",
            "tracking_number": "1Z",
            "tracking_url": null,
            "shipped_at": 1767225600000i64
        },
        "notify_customer": true
    })
}

fn outbound_case() -> Value {
    json!({
        "description": "a shipment written back",
        "call": "push-fulfillment",
        "input": fulfillment_input(),
        "http": [
            {
                "request": { "method": "POST", "url": "https://shop.test/fulfillments",
                             "headers": { "authorization": "Bearer t" }, "body_json": { "a": 1 } },
                "response": { "status": 201, "body": { "id": "F1" } }
            },
            { "request": { "method": "GET", "url": "https://shop.test/x", "body": "plain" },
              "response": { "body": "as text" } },
            { "request": { "method": "GET", "url": "https://shop.test/down" }, "error": "unreachable" }
        ],
        "expect": { "error": { "kind": "transient", "message_contains": "unreachable" } }
    })
}

#[test]
fn parses_an_inbound_case_with_the_defaults_of_the_format() {
    let case = parse_json(inbound_case()).unwrap();
    assert_eq!(case.name, "orders-create");
    assert_eq!(case.case.call, Call::HandleInbound);
    assert_eq!(case.case.now_ms, None);
    let request = case.inbound.unwrap();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/test");
    // A JSON body is sent as its compact text; header names reach the plugin in lower case.
    assert_eq!(request.body, br#"{"id":1,"note":"gift wrap"}"#);
    let names: Vec<&str> = request.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["x-event", "x-signature"]);
    assert_eq!(case.input, None);
    assert_eq!(
        case.case
            .connection
            .secrets
            .get("webhook_secret")
            .map(String::as_str),
        Some("hush")
    );
}

#[test]
fn a_string_body_is_sent_as_its_bytes() {
    let mut value = inbound_case();
    value["request"]["body"] = json!("{\"id\": 1}\n");
    let case = parse_json(value).unwrap();
    assert_eq!(case.inbound.unwrap().body, b"{\"id\": 1}\n");
}

#[test]
fn parses_an_outbound_case_with_its_exchanges() {
    let case = parse_json(outbound_case()).unwrap();
    let Some(Input::Fulfillment(request)) = &case.input else {
        panic!("expected a fulfillment request, got {:?}", case.input);
    };
    assert_eq!(request.shipment.lines[0].quantity, 2);
    assert_eq!(case.exchanges.len(), 3);
    let first = case.exchanges[0].answer.as_ref().unwrap();
    assert_eq!(first.status, 201);
    assert_eq!(first.body, br#"{"id":"F1"}"#);
    assert_eq!(
        first.headers,
        [HttpHeader {
            name: "content-type".into(),
            value: "application/json".into()
        }],
        "a JSON body says it is JSON"
    );
    let second = case.exchanges[1].answer.as_ref().unwrap();
    assert_eq!(
        (second.status, second.body.as_slice()),
        (200, &b"as text"[..])
    );
    assert!(
        second.headers.is_empty(),
        "a text body gets no content type"
    );
    assert_eq!(case.exchanges[2].answer, Err(PeerError::Unreachable));
    assert_eq!(
        case.case.expect,
        Some(Expect::Error(ExpectedError {
            kind: "transient".into(),
            message_contains: Some("unreachable".into())
        }))
    );
}

/// Each broken case, and the words its error must contain.
#[test]
fn refuses_broken_cases_naming_the_field() {
    let broken: Vec<(Value, &[&str])> = vec![
        (
            {
                let mut c = outbound_case();
                c["http"][0]["request"]["methd"] = json!("POST");
                c
            },
            &["http[0].request", "unknown field `methd`"],
        ),
        (
            {
                let mut c = outbound_case();
                c["input"]["shipment"]["lines"][0]["quantity"] = json!("2");
                c
            },
            &["input.shipment.lines[0].quantity", "invalid type"],
        ),
        (
            {
                let mut c = outbound_case();
                c["input"].as_object_mut().unwrap().remove("shipment_id");
                c
            },
            &["input", "missing field `shipment_id`"],
        ),
        (
            {
                let mut c = inbound_case();
                c["call"] = json!("handle-webhooks");
                c
            },
            &["call", "unknown variant `handle-webhooks`"],
        ),
        (
            {
                let mut c = inbound_case();
                c["call"] = json!("check-connection");
                c
            },
            &[
                "`request` is for handle-inbound",
                "`check-connection` takes neither",
            ],
        ),
        (
            {
                let mut c = inbound_case();
                c["call"] = json!("poll");
                c
            },
            &["`request` is for", "`poll` takes an `input`"],
        ),
        (
            {
                let mut c = inbound_case();
                c["input"] = fulfillment_input();
                c
            },
            &["`input` is for push-fulfillment"],
        ),
        (
            {
                let mut c = outbound_case();
                c["request"] = json!({});
                c
            },
            &["`request` is for handle-inbound"],
        ),
        (
            {
                let mut c = outbound_case();
                c.as_object_mut().unwrap().remove("input");
                c
            },
            &["`push-fulfillment` needs an `input`"],
        ),
        (
            {
                let mut c = inbound_case();
                c.as_object_mut().unwrap().remove("request");
                c
            },
            &["`handle-inbound` needs a `request`"],
        ),
        (
            {
                let mut c = inbound_case();
                c["request"]["body_file"] = json!("body.json");
                c
            },
            &["request: give `body` or `body_file`"],
        ),
        (
            {
                let mut c = outbound_case();
                c["http"][1]["request"]["body_json"] = json!({});
                c
            },
            &["http[1].request: give `body_json` or `body`"],
        ),
        (
            {
                let mut c = outbound_case();
                c["http"][2]["response"] = json!({ "status": 200 });
                c
            },
            &["http[2]: give `response` or `error`"],
        ),
        (
            {
                let mut c = outbound_case();
                c["http"][0].as_object_mut().unwrap().remove("response");
                c
            },
            &["http[0]: give the peer's `response`"],
        ),
        (
            {
                let mut c = outbound_case();
                c["http"][2]["error"] = json!("timeout");
                c
            },
            &["http[2].error", "unknown variant `timeout`"],
        ),
        (
            {
                let mut c = outbound_case();
                c["expect"] = json!({ "error": { "kind": "bad-sig" } });
                c
            },
            &[
                "expect.error.kind: `bad-sig` is not one of",
                "bad-signature",
            ],
        ),
        (
            {
                let mut c = outbound_case();
                c["expect"] = json!({ "error": { "kind": "transient", "message": "x" } });
                c
            },
            &["expect.error", "unknown field `message`"],
        ),
    ];
    for (value, words) in broken {
        let error = parse_json(value.clone()).unwrap_err();
        for word in words {
            assert!(error.contains(word), "`{error}` should contain `{word}`");
        }
    }
}

#[test]
fn a_syntax_error_gives_line_and_column() {
    let error = parse(
        &case_path(),
        "{\n  \"description\": \"x\",\n  \"call\" \n}".into(),
    )
    .unwrap_err();
    assert!(error.contains("line 4 column 1"), "{error}");
}

#[test]
fn load_names_the_file_and_reads_body_files_beside_it() {
    let dir = std::env::temp_dir().join(format!("daifa-cases-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("cases")).unwrap();
    std::fs::write(dir.join("fixture.bin"), b"\x00raw \xffbytes").unwrap();
    let mut value = inbound_case();
    value["request"].as_object_mut().unwrap().remove("body");
    value["request"]["body_file"] = json!("../fixture.bin");
    std::fs::write(dir.join("cases/b.json"), value.to_string()).unwrap();
    std::fs::write(dir.join("cases/a.json"), "{\"description\": 1}").unwrap();
    std::fs::write(dir.join("cases/notes.txt"), "not a case").unwrap();

    let files = discover(&dir).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.json", "b.json"]);

    let case = load(&files[1]).unwrap();
    assert_eq!(case.inbound.unwrap().body, b"\x00raw \xffbytes");

    let error = load(&files[0]).unwrap_err();
    assert_eq!(error.file, files[0]);
    let shown = error.to_string();
    assert!(
        shown.starts_with(&files[0].display().to_string()),
        "{shown}"
    );
    assert!(shown.contains("description: invalid type"), "{shown}");

    value["request"]["body_file"] = json!("../missing.bin");
    std::fs::write(dir.join("cases/b.json"), value.to_string()).unwrap();
    let error = load(&files[1]).unwrap_err().to_string();
    assert!(error.contains("request.body_file: cannot read"), "{error}");
    assert!(error.contains("missing.bin"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn expected_request() -> ExpectedRequest {
    ExpectedRequest {
        method: "POST".into(),
        url: "https://shop.test/fulfillments".into(),
        headers: [("authorization".to_string(), "Bearer t".to_string())].into(),
        body_json: Some(json!({ "order": "1001", "lines": [1, 2] })),
        body: None,
    }
}

fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> OutboundRequest {
    OutboundRequest {
        method: method.into(),
        url: url.into(),
        headers: headers
            .iter()
            .map(|(n, v)| HttpHeader {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn a_request_matches_on_method_url_listed_headers_and_json_body() {
    // Key order and whitespace do not matter to `body_json`; unlisted headers are allowed.
    let actual = request(
        "POST",
        "https://shop.test/fulfillments",
        &[
            ("Authorization", "Bearer t"),
            ("content-type", "application/json"),
        ],
        r#"{ "lines": [1, 2], "order": "1001" }"#,
    );
    assert_eq!(
        mismatches(&expected_request(), &actual),
        Vec::<String>::new()
    );
}

#[test]
fn each_difference_of_a_request_is_named() {
    let actual = request(
        "PUT",
        "https://shop.test/fulfillment",
        &[("authorization", "Bearer u")],
        r#"{"order": "1001", "lines": [1, 3]}"#,
    );
    let problems = mismatches(&expected_request(), &actual);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert_eq!(problems[0], "method is `PUT`, the case expects `POST`");
    assert_eq!(
        problems[1],
        "url is `https://shop.test/fulfillment`, the case expects `https://shop.test/fulfillments`"
    );
    assert_eq!(
        problems[2],
        "header `authorization` is `Bearer u`, the case expects `Bearer t`"
    );
    assert!(
        problems[3].starts_with("body_json differs:\n"),
        "{}",
        problems[3]
    );
    assert!(problems[3].contains("-    2\n"), "{}", problems[3]);
    assert!(problems[3].contains("+    3\n"), "{}", problems[3]);

    let missing = request("POST", "https://shop.test/fulfillments", &[], "not json");
    let problems = mismatches(&expected_request(), &missing);
    assert_eq!(
        problems[0],
        "header `authorization` is missing, the case expects `Bearer t`"
    );
    assert!(
        problems[1].starts_with("the body is not JSON"),
        "{}",
        problems[1]
    );
    assert!(problems[1].contains("`not json`"), "{}", problems[1]);

    let text = ExpectedRequest {
        body_json: None,
        body: Some("a=1&b=2".into()),
        headers: BTreeMap::new(),
        ..expected_request()
    };
    let actual = request("POST", "https://shop.test/fulfillments", &[], "a=1&b=3");
    let problems = mismatches(&text, &actual);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].contains("-a=1&b=2\n+a=1&b=3"),
        "{}",
        problems[0]
    );
}

fn fetch(peer: &CasePeer, method: &str, url: &str) -> Result<crate::OutboundResponse, HttpError> {
    let options = FetchOptions {
        timeout: Duration::from_secs(1),
        allow_private_network: false,
        max_response_bytes: 1 << 20,
    };
    let future = peer.fetch(
        reqwest::Url::parse(url).unwrap(),
        request(method, url, &[], ""),
        options,
    );
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn scripted(method: &str, url: &str, answer: Result<u16, PeerError>) -> ScriptedExchange {
    ScriptedExchange {
        request: ExpectedRequest {
            method: method.into(),
            url: url.into(),
            headers: BTreeMap::new(),
            body_json: None,
            body: None,
        },
        answer: answer.map(|status| crate::OutboundResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }),
    }
}

#[test]
fn the_peer_answers_in_order_and_reports_what_went_wrong() {
    let peer = CasePeer::new();
    peer.begin(vec![
        scripted("GET", "https://a.test/1", Ok(200)),
        scripted("GET", "https://a.test/2", Err(PeerError::Unreachable)),
    ]);
    assert_eq!(fetch(&peer, "GET", "https://a.test/1").unwrap().status, 200);
    assert!(matches!(
        fetch(&peer, "GET", "https://a.test/2"),
        Err(HttpError::Unreachable(_))
    ));
    assert_eq!(peer.finish(), Vec::<String>::new());

    // A wrong request still gets its answer; one beyond the list gets none.
    peer.begin(vec![
        scripted("GET", "https://a.test/1", Ok(204)),
        scripted("GET", "https://a.test/2", Ok(200)),
        scripted("POST", "https://a.test/3", Ok(200)),
    ]);
    assert_eq!(
        fetch(&peer, "GET", "https://a.test/one").unwrap().status,
        204
    );
    let problems = peer.finish();
    assert_eq!(
        problems,
        [
            "http[0].request: url is `https://a.test/one`, the case expects `https://a.test/1`",
            "http[1]: the plugin never made the request GET https://a.test/2",
            "http[2]: the plugin never made the request POST https://a.test/3",
        ]
    );

    peer.begin(Vec::new());
    assert!(matches!(
        fetch(&peer, "DELETE", "https://a.test/x"),
        Err(HttpError::Unreachable(_))
    ));
    assert_eq!(
        peer.finish(),
        [
            "http[0]: the plugin made an unexpected request DELETE https://a.test/x (the case lists 0)"
        ]
    );
}

fn outcome() -> CaseOutcome {
    CaseOutcome {
        name: "c".into(),
        description: "d".into(),
        elapsed: Duration::ZERO,
        problems: Vec::new(),
        diff: None,
        actual: None,
        http_matched: true,
    }
}

fn compared(expect: Option<Expect>, actual: Value) -> CaseOutcome {
    let mut outcome = outcome();
    compare(expect.as_ref(), &actual, &mut outcome);
    outcome.actual = Some(actual);
    outcome
}

#[test]
fn an_ok_result_is_compared_as_json() {
    let actual = json!({ "ok": { "external_id": "F1", "lines": [1, 2] } });
    let same = compared(
        Some(Expect::Ok(json!({ "lines": [1, 2], "external_id": "F1" }))),
        actual.clone(),
    );
    assert!(same.passed(), "{:?}", same.problems);
    assert_eq!(same.blessable(), None, "a passing case is not rewritten");

    let other = compared(
        Some(Expect::Ok(json!({ "external_id": "F2", "lines": [1, 2] }))),
        actual.clone(),
    );
    assert_eq!(other.problems, ["the result differs from `expect`"]);
    let diff = other.diff.clone().unwrap();
    assert!(diff.contains("--- expected\n+++ actual\n"), "{diff}");
    assert!(diff.contains("-    \"external_id\": \"F2\","), "{diff}");
    assert!(diff.contains("+    \"external_id\": \"F1\","), "{diff}");
    assert!(
        diff.contains("     \"lines\": ["),
        "context is shown:\n{diff}"
    );
    assert_eq!(other.blessable(), Some(actual.clone()));

    let failed = compared(
        Some(Expect::Ok(json!({ "external_id": "F1" }))),
        json!({ "error": { "kind": "permanent", "message": "refused" } }),
    );
    assert_eq!(
        failed.problems,
        ["expected ok, the call failed: permanent: refused"]
    );
}

#[test]
fn an_error_is_compared_by_kind_and_message_part() {
    let actual = json!({ "error": { "kind": "bad-signature", "message": "signature does not match the body" } });
    let expect = |kind: &str, part: Option<&str>| {
        Some(Expect::Error(ExpectedError {
            kind: kind.into(),
            message_contains: part.map(String::from),
        }))
    };
    assert!(compared(expect("bad-signature", None), actual.clone()).passed());
    assert!(
        compared(
            expect("bad-signature", Some("does not match")),
            actual.clone()
        )
        .passed()
    );

    let wrong_part = compared(expect("bad-signature", Some("missing")), actual.clone());
    assert_eq!(
        wrong_part.problems,
        ["the error message `signature does not match the body` does not contain `missing`"]
    );
    assert_eq!(
        wrong_part.blessable(),
        Some(
            json!({ "error": { "kind": "bad-signature", "message_contains": "signature does not match the body" } })
        )
    );

    let wrong_kind = compared(expect("bad-payload", None), actual.clone());
    assert_eq!(
        wrong_kind.problems,
        ["expected a `bad-payload` error, got `bad-signature`: signature does not match the body"]
    );
    let diff = wrong_kind.diff.unwrap();
    assert!(diff.contains("-    \"kind\": \"bad-payload\""), "{diff}");
    assert!(diff.contains("+    \"kind\": \"bad-signature\""), "{diff}");

    let ok = compared(expect("transient", None), json!({ "ok": { "events": [] } }));
    assert_eq!(
        ok.problems,
        ["expected a `transient` error, the call returned ok"]
    );
}

#[test]
fn a_case_without_expect_fails_and_shows_the_result() {
    let actual = json!({ "ok": { "events": [] } });
    let outcome = compared(None, actual.clone());
    assert_eq!(
        outcome.problems,
        ["the case has no `expect`: run with --bless to record the result"]
    );
    assert!(outcome.diff.as_ref().unwrap().contains("+  \"ok\": {"));
    assert_eq!(outcome.blessable(), Some(actual));
}

#[test]
fn a_result_obtained_with_other_requests_is_not_blessed() {
    let mut outcome = compared(Some(Expect::Ok(json!(1))), json!({ "ok": 2 }));
    outcome.http_matched = false;
    assert_eq!(outcome.blessable(), None);
}

#[test]
fn details_indent_problems_and_the_diff() {
    let mut outcome = compared(Some(Expect::Ok(json!("a"))), json!({ "ok": "b" }));
    outcome.problems.insert(0, "first\nsecond line".into());
    let details = outcome.details();
    assert!(
        details.starts_with("    - first\n      second line\n    - the result differs"),
        "{details}"
    );
    assert!(
        details.contains("      -  \"ok\": \"a\"\n      +  \"ok\": \"b\"\n"),
        "{details}"
    );
}

#[test]
fn bless_replaces_only_the_value_of_expect() {
    let text = r#"{
  "description": "braces } and \"quotes\" in strings: { [",
  "call": "handle-inbound",
  "expect": { "ok": { "old": true } },
  "request": { "body": "x" }
}
"#;
    let blessed = bless(text, &json!({ "ok": { "events": [], "topic": "t" } })).unwrap();
    assert_eq!(
        blessed,
        r#"{
  "description": "braces } and \"quotes\" in strings: { [",
  "call": "handle-inbound",
  "expect": {
    "ok": {
      "events": [],
      "topic": "t"
    }
  },
  "request": { "body": "x" }
}
"#
    );
    // What was blessed parses as the case it was, with the new expect.
    let case: Case = serde_json::from_str(&blessed).unwrap();
    assert_eq!(
        case.expect,
        Some(Expect::Ok(json!({ "events": [], "topic": "t" })))
    );

    let scalar = bless("{\"expect\": 1, \"x\": 2}", &json!(3)).unwrap();
    assert_eq!(scalar, "{\"expect\": 3, \"x\": 2}");
}

#[test]
fn bless_appends_a_missing_expect() {
    let text = "{\n  \"description\": \"new\",\n  \"call\": \"submit-order\"\n}\n";
    let blessed = bless(text, &json!({ "error": { "kind": "permanent" } })).unwrap();
    assert_eq!(
        blessed,
        "{\n  \"description\": \"new\",\n  \"call\": \"submit-order\",\n  \"expect\": {\n    \"error\": {\n      \"kind\": \"permanent\"\n    }\n  }\n}\n"
    );
    assert!(bless("[1]", &json!(1)).is_err());
}

#[test]
fn the_diff_is_a_unified_line_diff() {
    let diff = diff("a\nb\nc", "a\nB\nc\n");
    assert_eq!(
        diff,
        "--- expected\n+++ actual\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
    );
}
