//! Recorded test cases of a plugin (`daifa plugin test`): the format of `cases/*.json`, the
//! scripted peer that checks the plugin's outbound requests, the comparison of a call's result
//! with the case's `expect`, and `--bless`. The format is documented in `docs/plugin-cases.md`.
//!
//! A case is one call of one export: [`load`] reads and checks a case file, [`CaseRunner`] runs
//! it against a component in the real engine and returns a [`CaseOutcome`].

mod bless;
mod peer;
mod run;

pub use bless::bless;
pub use peer::CasePeer;
pub use run::{CaseOutcome, CaseRunner, diff};

use crate::bindings::carrier::Parcel;
use crate::bindings::channel::{
    CancelOrderRequest, FulfillmentRequest, RefundRequest, ReturnDecision,
};
use crate::bindings::supplier::{CancelRequest, ReturnRequest, SupplierOrder};
use crate::bindings::types::{HttpHeader, InboundRequest, OutboundResponse, PollRequest};
use crate::engine::PluginKind;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The error kinds an `expect` may name: the WIT `plugin-error` cases and the host's own.
pub const ERROR_KINDS: &[&str] = &[
    "bad-signature",
    "bad-payload",
    "unsupported",
    "transient",
    "permanent",
    "trap",
    "deadline",
    "instantiate",
    "input-too-large",
    "output-too-large",
];

/// A case file that cannot be used, with the file and the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct CaseError {
    pub file: PathBuf,
    pub message: String,
}

/// One case as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub description: String,
    pub call: Call,
    #[serde(default)]
    pub connection: Connection,
    #[serde(default)]
    pub now_ms: Option<i64>,
    #[serde(default)]
    pub request: Option<RequestSpec>,
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub http: Vec<Exchange>,
    /// Missing in a case written to be blessed: the case then fails and shows the result.
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// The export a case calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Call {
    HandleInbound,
    PushFulfillment,
    SubmitOrder,
    HandleCallback,
    /// Any kind: takes neither a request nor an input.
    CheckConnection,
    /// Channel or supplier: takes a `poll-request` as `input`.
    Poll,
    /// Carrier: takes a `parcel` as `input`.
    Register,
    /// Carrier: takes a list of `parcel` as `input`.
    FetchTracking,
    /// Carrier: takes a `request`.
    HandleWebhook,
    /// Channel: takes a `refund-request` as `input`.
    Refund,
    /// Channel: takes a `return-decision` as `input`.
    DecideReturn,
    /// Supplier: takes a `cancel-request` as `input`; channel (since WIT 0.5.0): takes a
    /// `cancel-order-request` (told apart by its `order_external_id`).
    CancelOrder,
    /// Supplier: takes a `return-request` as `input`.
    AuthorizeReturn,
}

impl Call {
    pub fn name(self) -> &'static str {
        match self {
            Self::HandleInbound => "handle-inbound",
            Self::PushFulfillment => "push-fulfillment",
            Self::SubmitOrder => "submit-order",
            Self::HandleCallback => "handle-callback",
            Self::CheckConnection => "check-connection",
            Self::Poll => "poll",
            Self::Register => "register",
            Self::FetchTracking => "fetch-tracking",
            Self::HandleWebhook => "handle-webhook",
            Self::Refund => "refund",
            Self::DecideReturn => "decide-return",
            Self::CancelOrder => "cancel-order",
            Self::AuthorizeReturn => "authorize-return",
        }
    }

    /// The worlds that export it.
    pub fn kinds(self) -> &'static [PluginKind] {
        match self {
            Self::HandleInbound | Self::PushFulfillment | Self::Refund | Self::DecideReturn => {
                &[PluginKind::Channel]
            }
            Self::SubmitOrder | Self::HandleCallback | Self::AuthorizeReturn => {
                &[PluginKind::Supplier]
            }
            Self::CancelOrder => &[PluginKind::Channel, PluginKind::Supplier],
            Self::Register | Self::FetchTracking | Self::HandleWebhook => &[PluginKind::Carrier],
            Self::Poll => &[PluginKind::Channel, PluginKind::Supplier],
            Self::CheckConnection => &PluginKind::ALL,
        }
    }

    /// Whether it takes an inbound HTTP request (`request`).
    pub fn takes_request(self) -> bool {
        matches!(
            self,
            Self::HandleInbound | Self::HandleCallback | Self::HandleWebhook
        )
    }

    /// Whether it takes a WIT record (`input`).
    pub fn takes_input(self) -> bool {
        matches!(
            self,
            Self::PushFulfillment
                | Self::SubmitOrder
                | Self::Poll
                | Self::Register
                | Self::FetchTracking
                | Self::Refund
                | Self::DecideReturn
                | Self::CancelOrder
                | Self::AuthorizeReturn
        )
    }
}

/// The connection the call runs for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Added to the hosts the manifest declares, as the gateway does for a connection.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(default)]
    pub allow_private_network: bool,
}

/// The inbound request of `handle-inbound` / `handle-callback`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub body_file: Option<PathBuf>,
}

fn default_method() -> String {
    "POST".into()
}

fn default_path() -> String {
    "/hooks/test".into()
}

/// One outbound request the plugin must make, and what its peer answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    pub request: ExpectedRequest,
    #[serde(default)]
    pub response: Option<ResponseSpec>,
    #[serde(default)]
    pub error: Option<PeerError>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRequest {
    pub method: String,
    pub url: String,
    /// Each must be present with this value; other headers may be present too.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body_json: Option<Value>,
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub body_file: Option<PathBuf>,
}

fn default_status() -> u16 {
    200
}

/// A failure of the network instead of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerError {
    Unreachable,
}

/// What the call must return.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Ok(Value),
    Error(ExpectedError),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedError {
    pub kind: String,
    #[serde(default)]
    pub message_contains: Option<String>,
}

/// The WIT record a `push-fulfillment` or `submit-order` case passes.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Fulfillment(FulfillmentRequest),
    Order(Box<SupplierOrder>),
    Poll(PollRequest),
    Parcel(Parcel),
    Parcels(Vec<Parcel>),
    Refund(RefundRequest),
    ReturnDecision(ReturnDecision),
    Cancel(CancelRequest),
    StorefrontCancel(CancelOrderRequest),
    Return(Box<ReturnRequest>),
}

/// An outbound exchange with its answer ready to give.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptedExchange {
    pub request: ExpectedRequest,
    /// `Err` simulates a network failure.
    pub answer: Result<OutboundResponse, PeerError>,
}

/// A case read, checked and ready to run: files read, the input converted to its WIT record.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedCase {
    pub path: PathBuf,
    /// The file name without `.json`.
    pub name: String,
    /// The file as written, for `--bless`.
    pub text: String,
    pub case: Case,
    pub inbound: Option<InboundRequest>,
    pub input: Option<Input>,
    pub exchanges: Vec<ScriptedExchange>,
}

/// The case files of a plugin project: `DIR/cases/*.json`, sorted by name.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.join("cases"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads and checks a case file.
pub fn load(path: &Path) -> Result<LoadedCase, CaseError> {
    let fail = |message: String| CaseError {
        file: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    parse(path, text).map_err(fail)
}

/// Checks a case's text; `path` locates the case's `body_file`s.
pub fn parse(path: &Path, text: String) -> Result<LoadedCase, String> {
    let case: Case = from_json(&text)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let call = case.call;

    let takes = if call.takes_request() {
        "a `request`"
    } else if call.takes_input() {
        "an `input`"
    } else {
        "neither a `request` nor an `input`"
    };
    if case.input.is_some() && !call.takes_input() {
        return Err(format!(
            "`input` is for push-fulfillment, submit-order, poll, register, fetch-tracking, refund, decide-return, cancel-order and authorize-return; `{}` takes {takes}",
            call.name()
        ));
    }
    if case.request.is_some() && !call.takes_request() {
        return Err(format!(
            "`request` is for handle-inbound, handle-callback and handle-webhook; `{}` takes {takes}",
            call.name()
        ));
    }
    let inbound = match &case.request {
        Some(spec) => Some(inbound_request(base, spec)?),
        None if call.takes_request() => {
            return Err(format!(
                "`{}` needs a `request` (method, path, headers, body)",
                call.name()
            ));
        }
        None => None,
    };
    let input = match (&case.input, call) {
        (None, _) if call.takes_input() => {
            return Err(format!(
                "`{}` needs an `input`: the WIT record it is called with",
                call.name()
            ));
        }
        (Some(value), Call::PushFulfillment) => {
            Some(Input::Fulfillment(from_value(value, "input")?))
        }
        (Some(value), Call::SubmitOrder) => Some(Input::Order(from_value(value, "input")?)),
        (Some(value), Call::Poll) => Some(Input::Poll(from_value(value, "input")?)),
        (Some(value), Call::Register) => Some(Input::Parcel(from_value(value, "input")?)),
        (Some(value), Call::FetchTracking) => Some(Input::Parcels(from_value(value, "input")?)),
        (Some(value), Call::Refund) => Some(Input::Refund(from_value(value, "input")?)),
        (Some(value), Call::DecideReturn) => {
            Some(Input::ReturnDecision(from_value(value, "input")?))
        }
        (Some(value), Call::CancelOrder) if value.get("order_external_id").is_some() => {
            Some(Input::StorefrontCancel(from_value(value, "input")?))
        }
        (Some(value), Call::CancelOrder) => Some(Input::Cancel(from_value(value, "input")?)),
        (Some(value), Call::AuthorizeReturn) => Some(Input::Return(from_value(value, "input")?)),
        _ => None,
    };

    let mut exchanges = Vec::with_capacity(case.http.len());
    for (i, exchange) in case.http.iter().enumerate() {
        let at = format!("http[{i}]");
        if exchange.request.body.is_some() && exchange.request.body_json.is_some() {
            return Err(format!(
                "{at}.request: give `body_json` or `body`, not both"
            ));
        }
        let answer = match (&exchange.response, exchange.error) {
            (Some(response), None) => Ok(outbound_response(base, response, &at)?),
            (None, Some(error)) => Err(error),
            (Some(_), Some(_)) => {
                return Err(format!("{at}: give `response` or `error`, not both"));
            }
            (None, None) => {
                return Err(format!(
                    "{at}: give the peer's `response` (or `\"error\": \"unreachable\"`)"
                ));
            }
        };
        exchanges.push(ScriptedExchange {
            request: exchange.request.clone(),
            answer,
        });
    }

    if let Some(Expect::Error(expected)) = &case.expect
        && !ERROR_KINDS.contains(&expected.kind.as_str())
    {
        return Err(format!(
            "expect.error.kind: `{}` is not one of {}",
            expected.kind,
            ERROR_KINDS.join(", ")
        ));
    }

    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(LoadedCase {
        path: path.to_path_buf(),
        name,
        text,
        case,
        inbound,
        input,
        exchanges,
    })
}

/// Parses JSON, naming the field at fault: `http[0].request.url: invalid type: ... at line 9
/// column 14`.
fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| format!("invalid JSON: {e}"))?;
    Ok(value)
}

/// Converts a JSON value of the case into a WIT record, naming the field at fault under `root`.
fn from_value<T: DeserializeOwned>(value: &Value, root: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        // A path into a list starts with its index (`[0].shipped_at`): no dot before it.
        let at = if path == "." {
            root.to_string()
        } else if path.starts_with('[') {
            format!("{root}{path}")
        } else {
            format!("{root}.{path}")
        };
        format!("{at}: {}", e.into_inner())
    })
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() || path == "." {
        format!("invalid case: {inner}")
    } else {
        format!("{path}: {inner}")
    }
}

fn inbound_request(base: &Path, spec: &RequestSpec) -> Result<InboundRequest, String> {
    let body = body_bytes(
        base,
        spec.body.as_ref(),
        spec.body_file.as_deref(),
        "request",
    )?;
    Ok(InboundRequest {
        method: spec.method.clone(),
        path: spec.path.clone(),
        headers: headers(&spec.headers),
        body,
    })
}

fn outbound_response(
    base: &Path,
    spec: &ResponseSpec,
    at: &str,
) -> Result<OutboundResponse, String> {
    let at = format!("{at}.response");
    let body = body_bytes(base, spec.body.as_ref(), spec.body_file.as_deref(), &at)?;
    let mut headers = headers(&spec.headers);
    // A JSON value is sent as JSON: say so unless the case says otherwise.
    let json_body = matches!(&spec.body, Some(v) if !v.is_string());
    if json_body && !headers.iter().any(|h| h.name == "content-type") {
        headers.push(HttpHeader {
            name: "content-type".into(),
            value: "application/json".into(),
        });
    }
    Ok(OutboundResponse {
        status: spec.status,
        headers,
        body,
    })
}

/// Header names in lower case, as the host gives them to plugins, sorted by name.
fn headers(map: &BTreeMap<String, String>) -> Vec<HttpHeader> {
    let mut headers: Vec<HttpHeader> = map
        .iter()
        .map(|(name, value)| HttpHeader {
            name: name.to_ascii_lowercase(),
            value: value.clone(),
        })
        .collect();
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    headers
}

/// A body given as `body` (a string as its UTF-8 bytes, another value as compact JSON) or as
/// `body_file` (raw bytes, relative to the case file).
fn body_bytes(
    base: &Path,
    body: Option<&Value>,
    file: Option<&Path>,
    at: &str,
) -> Result<Vec<u8>, String> {
    match (body, file) {
        (Some(_), Some(_)) => Err(format!("{at}: give `body` or `body_file`, not both")),
        (Some(Value::String(text)), None) => Ok(text.as_bytes().to_vec()),
        (Some(value), None) => Ok(value.to_string().into_bytes()),
        (None, Some(file)) => {
            let path = base.join(file);
            std::fs::read(&path)
                .map_err(|e| format!("{at}.body_file: cannot read {}: {e}", path.display()))
        }
        (None, None) => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests;
