//! The peer a case's plugin talks to: answers each outbound request from the case's `http` list,
//! in order, and notes every request that is not the one the case lists.

use super::{ExpectedRequest, PeerError, ScriptedExchange, run::diff};
use crate::bindings::host::HttpError;
use crate::bindings::types::{OutboundRequest, OutboundResponse};
use crate::outbound::{FetchOptions, OutboundHttp};
use reqwest::Url;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};

/// One engine serves all the cases of a run, one case at a time: [`CasePeer::begin`] gives it
/// the case's exchanges, [`CasePeer::finish`] takes back what went wrong.
#[derive(Default)]
pub struct CasePeer {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    script: Vec<ScriptedExchange>,
    next: usize,
    problems: Vec<String>,
}

impl CasePeer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a case: its exchanges, none made yet.
    pub fn begin(&self, script: Vec<ScriptedExchange>) {
        *self.lock() = State {
            script,
            next: 0,
            problems: Vec::new(),
        };
    }

    /// Ends a case: the requests that did not match, the extra ones and the ones never made.
    pub fn finish(&self) -> Vec<String> {
        let mut state = std::mem::take(&mut *self.lock());
        for (i, missing) in state.script.iter().enumerate().skip(state.next) {
            state.problems.push(format!(
                "http[{i}]: the plugin never made the request {} {}",
                missing.request.method, missing.request.url
            ));
        }
        state.problems
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks one request and picks its answer. A request that does not match still gets the
    /// answer listed at its place, so that the call runs on and the report shows all of it.
    fn answer(&self, request: &OutboundRequest) -> Result<OutboundResponse, HttpError> {
        let mut state = self.lock();
        let index = state.next;
        let Some(exchange) = state.script.get(index).cloned() else {
            let listed = state.script.len();
            state.problems.push(format!(
                "http[{index}]: the plugin made an unexpected request {} {} (the case lists {listed})",
                request.method, request.url
            ));
            return Err(HttpError::Unreachable(format!(
                "the case lists no request after {listed}"
            )));
        };
        state.next += 1;
        let at = format!("http[{index}].request");
        state.problems.extend(
            mismatches(&exchange.request, request)
                .into_iter()
                .map(|m| format!("{at}: {m}")),
        );
        match exchange.answer {
            Ok(response) => Ok(response),
            Err(PeerError::Unreachable) => Err(HttpError::Unreachable(
                "the case's peer is unreachable".into(),
            )),
        }
    }
}

impl OutboundHttp for CasePeer {
    fn fetch(
        &self,
        _url: Url,
        request: OutboundRequest,
        _options: FetchOptions,
    ) -> Pin<Box<dyn Future<Output = Result<OutboundResponse, HttpError>> + Send + '_>> {
        let answer = self.answer(&request);
        Box::pin(async move { answer })
    }
}

/// How `actual` differs from what the case lists: method and URL exactly, each listed header,
/// the body as JSON (`body_json`) or as text (`body`).
pub fn mismatches(expected: &ExpectedRequest, actual: &OutboundRequest) -> Vec<String> {
    let mut problems = Vec::new();
    if actual.method != expected.method {
        problems.push(format!(
            "method is `{}`, the case expects `{}`",
            actual.method, expected.method
        ));
    }
    if actual.url != expected.url {
        problems.push(format!(
            "url is `{}`, the case expects `{}`",
            actual.url, expected.url
        ));
    }
    for (name, value) in &expected.headers {
        let values: Vec<&str> = actual
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
            .collect();
        if values.is_empty() {
            problems.push(format!(
                "header `{name}` is missing, the case expects `{value}`"
            ));
        } else if !values.contains(&value.as_str()) {
            problems.push(format!(
                "header `{name}` is `{}`, the case expects `{value}`",
                values.join("`, `")
            ));
        }
    }
    if let Some(expected_json) = &expected.body_json {
        match serde_json::from_slice::<serde_json::Value>(&actual.body) {
            Ok(actual_json) if &actual_json == expected_json => {}
            Ok(actual_json) => problems.push(format!(
                "body_json differs:\n{}",
                diff(&pretty(expected_json), &pretty(&actual_json))
            )),
            Err(e) => problems.push(format!(
                "the body is not JSON ({e}): {}",
                excerpt(&actual.body)
            )),
        }
    }
    if let Some(expected_text) = &expected.body {
        let actual_text = String::from_utf8_lossy(&actual.body);
        if actual_text != expected_text.as_str() {
            problems.push(format!(
                "body differs:\n{}",
                diff(expected_text, &actual_text)
            ));
        }
    }
    problems
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn excerpt(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
    format!("`{text}`")
}
