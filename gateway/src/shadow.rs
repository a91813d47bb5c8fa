//! Running a plugin version on a request without acting on its result: shadow mode on live
//! traffic, and the comparison `daifa replay` uses. The results are kept by
//! [`crate::store::shadow`].
//!
//! A shadow call gets the connection's settings and secrets but no outbound hosts, so it cannot
//! reach any peer; its result is compared with the pinned version's, recorded, and dropped.

use crate::error::{ApiError, ApiResult};
use crate::plugins::{Installed, Parsed, parse};
use crate::services::Services;
use crate::store::connections::{self, Connection};
use crate::store::shadow as shadow_results;
use axum::Json;
use axum::extract::{Path, Query, State};
use daifa_plugin_host::{CallFailure, ConnectionContext, InboundRequest};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The canonical result as JSON, errors included: what two versions are compared on.
pub fn canonical(result: &Result<Parsed, CallFailure>) -> Value {
    let value = match result {
        Ok(Parsed::Channel(inbound)) => serde_json::to_value(inbound),
        Ok(Parsed::Supplier(inbound)) => serde_json::to_value(inbound),
        Ok(Parsed::Carrier(inbound)) => serde_json::to_value(inbound),
        Err(failure) => Ok(
            json!({ "error": { "kind": failure.error.kind(), "message": failure.error.to_string() } }),
        ),
    };
    value.unwrap_or_else(|e| json!({ "error": { "kind": "serialize", "message": e.to_string() } }))
}

/// The JSON paths where `a` and `b` differ (`/events/0/OrderPlaced/total/amount_minor`), at most
/// `limit` of them.
pub fn differences(a: &Value, b: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    walk(a, b, &mut String::new(), &mut out, limit);
    out
}

fn walk(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let len = path.len();
                path.push('/');
                path.push_str(key);
                walk(
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    path,
                    out,
                    limit,
                );
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                walk(
                    x.get(i).unwrap_or(&Value::Null),
                    y.get(i).unwrap_or(&Value::Null),
                    path,
                    out,
                    limit,
                );
                path.truncate(len);
            }
        }
        _ => out.push(if path.is_empty() {
            "/".into()
        } else {
            path.clone()
        }),
    }
}

/// The call context of a version run for comparison: the connection's settings and secrets,
/// no outbound host.
pub fn isolated_context(
    state: &Services,
    connection: &Connection,
    plugin: &Installed,
) -> anyhow::Result<Arc<ConnectionContext>> {
    let mut ctx = connection.context(&state.secrets, plugin)?;
    ctx.allowed_hosts.clear();
    ctx.allow_private_network = false;
    Ok(Arc::new(ctx))
}

/// Runs the connection's shadow version on a request the pinned version has handled, in the
/// background, and records both results. Never fails the request: problems are logged.
pub fn spawn(
    state: &Services,
    connection: &Connection,
    raw_request_id: &str,
    request: &InboundRequest,
    primary: Value,
) {
    let Some(candidate) = connection.shadow_plugin_version.clone() else {
        return;
    };
    let (state, connection, raw_id, request) = (
        state.clone(),
        connection.clone(),
        raw_request_id.to_string(),
        request.clone(),
    );
    tokio::spawn(async move {
        if let Err(e) = run(&state, &connection, &raw_id, &request, primary, &candidate).await {
            tracing::warn!(connection = %connection.name, candidate = %candidate, raw_request_id = %raw_id, error = format!("{e:#}"), "shadow run failed");
        }
    });
}

async fn run(
    state: &Services,
    connection: &Connection,
    raw_id: &str,
    request: &InboundRequest,
    primary: Value,
    candidate: &str,
) -> anyhow::Result<()> {
    let plugin = state.plugins.get(&connection.plugin, candidate).await?;
    let ctx = isolated_context(state, connection, &plugin)?;
    let shadow = canonical(&parse(&plugin, connection.kind, ctx, request).await);
    let diff = differences(&primary, &shadow, 20);
    metrics::counter!("daifa_shadow_results_total", "connection" => connection.name.clone(), "candidate" => candidate.to_string(), "same" => if diff.is_empty() { "true" } else { "false" }).increment(1);
    shadow_results::insert(
        &state.db,
        &shadow_results::NewShadowResult {
            connection_id: &connection.id,
            raw_request_id: raw_id,
            primary_version: &connection.plugin_version,
            candidate_version: candidate,
            differences: &diff,
            primary_result: &primary.to_string(),
            candidate_result: &shadow.to_string(),
        },
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct ResultsQuery {
    /// Only the results that differ.
    #[serde(default)]
    pub differing: bool,
    #[serde(default = "default_limit")]
    pub limit: i64,
}

fn default_limit() -> i64 {
    100
}

pub fn router() -> axum::Router<Services> {
    axum::Router::new().route(
        "/connections/{name}/shadow-results",
        axum::routing::get(results_handler),
    )
}

/// `GET /connections/{name}/shadow-results`: counts per candidate and the latest results.
async fn results_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> ApiResult<Json<Value>> {
    let connection = connections::by_name(&state.db, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection named `{name}`")))?;
    let summary: Vec<Value> = shadow_results::counts(&state.db, &connection.id)
        .await?
        .into_iter()
        .map(|c| json!({ "candidate_version": c.candidate_version, "total": c.total, "same": c.same, "differing": c.total - c.same }))
        .collect();
    let results = shadow_results::latest(
        &state.db,
        &connection.id,
        q.differing,
        q.limit.clamp(1, 1000),
    )
    .await?;
    Ok(Json(json!({ "summary": summary, "results": results })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_every_path_that_differs() {
        let a = json!({ "events": [{ "total": 100, "lines": [1, 2] }], "topic": "x" });
        let b = json!({ "events": [{ "total": 101, "lines": [1, 2, 3] }], "topic": "x", "extra": true });
        assert_eq!(
            differences(&a, &b, 10),
            ["/events/0/lines/2", "/events/0/total", "/extra"]
        );
        assert!(differences(&a, &a, 10).is_empty());
        assert_eq!(differences(&a, &b, 1).len(), 1);
        assert_eq!(differences(&json!(1), &json!(2), 10), ["/"]);
    }
}
