//! Running a case against a component and comparing the result with its `expect`.

use super::{CasePeer, Expect, Input, LoadedCase};
use crate::engine::{
    CallFailure, EngineConfig, HostError, LoadedPlugin, PluginEngine, PluginKind, PluginSpec,
};
use crate::manifest::Manifest;
use crate::state::ConnectionContext;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A component loaded in an engine of its own, whose outbound requests go to a [`CasePeer`].
pub struct CaseRunner {
    plugin: LoadedPlugin,
    peer: Arc<CasePeer>,
    manifest: Option<Manifest>,
}

/// How a case went.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseOutcome {
    pub name: String,
    pub description: String,
    pub elapsed: Duration,
    /// Empty when the case passed.
    pub problems: Vec<String>,
    /// Expected and actual result, when they differ.
    pub diff: Option<String>,
    /// The result in the form of `expect`; `None` when the call was not made.
    pub actual: Option<Value>,
    /// Whether the plugin made exactly the requests the case lists.
    pub http_matched: bool,
}

impl CaseOutcome {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// What `--bless` writes as the case's `expect`: the actual result, when the call was made
    /// with the exchanges the case lists (a result obtained otherwise records nothing useful).
    pub fn blessable(&self) -> Option<Value> {
        if self.passed() || !self.http_matched {
            return None;
        }
        match &self.actual {
            Some(Value::Object(o)) if o.contains_key("error") => {
                let error = &o["error"];
                Some(json!({ "error": {
                    "kind": error["kind"],
                    "message_contains": error["message"],
                }}))
            }
            other => other.clone(),
        }
    }

    /// The problems and the diff, indented for the report.
    pub fn details(&self) -> String {
        let mut out = String::new();
        for problem in &self.problems {
            for (i, line) in problem.lines().enumerate() {
                out.push_str(if i == 0 { "    - " } else { "      " });
                out.push_str(line);
                out.push('\n');
            }
        }
        if let Some(diff) = &self.diff {
            for line in diff.lines() {
                out.push_str("      ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl CaseRunner {
    /// Loads `wasm` as `spec` in a new engine. `manifest` gives the hosts a connection may call
    /// by declaration (`capabilities.hosts`), to which each case adds its `allowed_hosts`.
    pub fn new(
        config: EngineConfig,
        spec: PluginSpec,
        wasm: &[u8],
        manifest: Option<Manifest>,
    ) -> Result<Self, HostError> {
        let peer = Arc::new(CasePeer::new());
        let engine = PluginEngine::new(config, peer.clone())?;
        let plugin = engine.load_spec(spec, wasm)?;
        Ok(Self {
            plugin,
            peer,
            manifest,
        })
    }

    /// Runs one case. Cases of one runner run one after the other: they share the peer.
    pub async fn run(&mut self, case: &LoadedCase) -> CaseOutcome {
        let mut outcome = CaseOutcome {
            name: case.name.clone(),
            description: case.case.description.clone(),
            elapsed: Duration::ZERO,
            problems: Vec::new(),
            diff: None,
            actual: None,
            http_matched: false,
        };
        let call = case.case.call;
        if !call.kinds().contains(&self.plugin.kind()) {
            let kinds: Vec<&str> = call.kinds().iter().map(|k| k.as_str()).collect();
            outcome.problems.push(format!(
                "`{}` is a {} export; this plugin is a {}",
                call.name(),
                kinds.join(" or "),
                self.plugin.kind().as_str()
            ));
            return outcome;
        }

        self.peer.begin(case.exchanges.clone());
        let ctx = Arc::new(self.context(case));
        let started = Instant::now();
        let actual = self.call(ctx, case).await;
        outcome.elapsed = started.elapsed();
        let http_problems = self.peer.finish();
        outcome.http_matched = http_problems.is_empty();
        outcome.problems = http_problems;

        let Some(actual) = actual else {
            outcome
                .problems
                .push("the case has no input for its call".into());
            return outcome;
        };
        compare(case.case.expect.as_ref(), &actual, &mut outcome);
        outcome.actual = Some(actual);
        outcome
    }

    fn context(&self, case: &LoadedCase) -> ConnectionContext {
        let connection = &case.case.connection;
        let allowed_hosts = match &self.manifest {
            Some(m) => m.allowed_hosts(&connection.settings, &connection.allowed_hosts),
            None => connection.allowed_hosts.clone(),
        };
        ConnectionContext {
            plugin: self.plugin.name().to_string(),
            plugin_version: self.plugin.version().to_string(),
            connection: format!("case:{}", case.name),
            settings: connection.settings.clone(),
            secrets: connection.secrets.clone(),
            allowed_hosts,
            allow_private_network: connection.allow_private_network,
            fixed_now_ms: case.case.now_ms,
            recorder: None,
        }
    }

    /// The result in the form of `expect`; `None` when the case lacks what its call takes
    /// (`load` refuses such cases).
    async fn call(&self, ctx: Arc<ConnectionContext>, case: &LoadedCase) -> Option<Value> {
        use super::Call;
        let result = match (case.case.call, &case.inbound, &case.input) {
            (Call::HandleInbound, Some(request), _) => {
                to_json(self.plugin.handle_inbound(ctx, request).await)
            }
            (Call::HandleCallback, Some(request), _) => {
                to_json(self.plugin.handle_callback(ctx, request).await)
            }
            (Call::PushFulfillment, _, Some(Input::Fulfillment(request))) => {
                to_json(self.plugin.push_fulfillment(ctx, request).await)
            }
            (Call::SubmitOrder, _, Some(Input::Order(order))) => {
                to_json(self.plugin.submit_order(ctx, order).await)
            }
            (Call::CheckConnection, _, _) => to_json(self.plugin.check_connection(ctx).await),
            (Call::Poll, _, Some(Input::Poll(request))) => match self.plugin.kind() {
                PluginKind::Supplier => to_json(self.plugin.poll_supplier(ctx, request).await),
                _ => to_json(self.plugin.poll_channel(ctx, request).await),
            },
            (Call::Register, _, Some(Input::Parcel(parcel))) => {
                to_json(self.plugin.register_parcel(ctx, parcel).await)
            }
            (Call::FetchTracking, _, Some(Input::Parcels(parcels))) => {
                to_json(self.plugin.fetch_tracking(ctx, parcels).await)
            }
            (Call::HandleWebhook, Some(request), _) => {
                to_json(self.plugin.handle_webhook(ctx, request).await)
            }
            (Call::Refund, _, Some(Input::Refund(request))) => {
                to_json(self.plugin.refund(ctx, request).await)
            }
            (Call::DecideReturn, _, Some(Input::ReturnDecision(decision))) => {
                to_json(self.plugin.decide_return(ctx, decision).await)
            }
            (Call::CancelOrder, _, Some(Input::Cancel(request))) => {
                to_json(self.plugin.cancel_order(ctx, request).await)
            }
            (Call::CancelOrder, _, Some(Input::StorefrontCancel(request))) => {
                to_json(self.plugin.cancel_storefront_order(ctx, request).await)
            }
            (Call::AuthorizeReturn, _, Some(Input::Return(request))) => {
                to_json(self.plugin.authorize_return(ctx, request).await)
            }
            _ => return None,
        };
        Some(result)
    }
}

/// `{"ok": record}` or `{"error": {"kind", "message"}}`.
fn to_json<T: serde::Serialize>(result: Result<T, CallFailure>) -> Value {
    match result {
        Ok(value) => match serde_json::to_value(&value) {
            Ok(value) => json!({ "ok": value }),
            Err(e) => {
                json!({ "error": { "kind": "output", "message": format!("the result cannot be shown as JSON: {e}") } })
            }
        },
        Err(failure) => {
            let message = match &failure.error {
                crate::engine::CallError::Plugin(e) => e.message().to_string(),
                other => other.to_string(),
            };
            json!({ "error": { "kind": failure.error.kind(), "message": message } })
        }
    }
}

/// Compares the result with `expect`; notes the problem and the diff when they differ.
pub(super) fn compare(expect: Option<&Expect>, actual: &Value, outcome: &mut CaseOutcome) {
    let actual_error = actual.get("error");
    let (expected_json, problem) = match expect {
        None => (
            None,
            Some("the case has no `expect`: run with --bless to record the result".to_string()),
        ),
        Some(Expect::Ok(expected)) => {
            let expected_json = json!({ "ok": expected });
            let problem = (&expected_json != actual).then(|| match actual_error {
                Some(error) => format!(
                    "expected ok, the call failed: {}: {}",
                    text(&error["kind"]),
                    text(&error["message"])
                ),
                None => "the result differs from `expect`".to_string(),
            });
            (Some(expected_json), problem)
        }
        Some(Expect::Error(expected)) => {
            let expected_json = json!({ "error": {
                "kind": expected.kind,
                "message_contains": expected.message_contains,
            }});
            let problem = match actual_error {
                None => Some(format!(
                    "expected a `{}` error, the call returned ok",
                    expected.kind
                )),
                Some(error) if error["kind"] != expected.kind.as_str() => Some(format!(
                    "expected a `{}` error, got `{}`: {}",
                    expected.kind,
                    text(&error["kind"]),
                    text(&error["message"])
                )),
                Some(error) => expected.message_contains.as_ref().and_then(|needle| {
                    let message = text(&error["message"]);
                    (!message.contains(needle.as_str())).then(|| {
                        format!("the error message `{message}` does not contain `{needle}`")
                    })
                }),
            };
            (Some(expected_json), problem)
        }
    };
    if let Some(problem) = problem {
        outcome.problems.push(problem);
        let expected_text = expected_json.as_ref().map(pretty).unwrap_or_default();
        outcome.diff = Some(diff(&expected_text, &pretty(actual)));
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string())
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A unified line diff of `expected` and `actual` (`-` expected, `+` actual), with three lines
/// of context around each change.
pub fn diff(expected: &str, actual: &str) -> String {
    let expected = with_newline(expected);
    let actual = with_newline(actual);
    similar::TextDiff::from_lines(expected.as_str(), actual.as_str())
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}
