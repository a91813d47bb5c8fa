//! Running a plugin version on a request without acting on its result: shadow mode on live
//! traffic, and the comparison `daifa replay` uses. Owns the `shadow_results` table.
//!
//! A shadow call gets the connection's settings and secrets but no outbound hosts, so it cannot
//! reach any peer; its result is compared with the pinned version's, recorded, and dropped.

use crate::connections::{self, Connection};
use crate::db::{new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::plugins::{Installed, Parsed, parse};
use crate::services::Services;
use axum::Json;
use axum::extract::{Path, Query, State};
use daifa_plugin_host::{CallFailure, ConnectionContext, InboundRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;
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
    sqlx::query(
        "insert into shadow_results (id, connection_id, raw_request_id, primary_version, candidate_version, same, differences, primary_result, candidate_result, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new_id("shd"))
    .bind(&connection.id)
    .bind(raw_id)
    .bind(&connection.plugin_version)
    .bind(candidate)
    .bind(i64::from(diff.is_empty()))
    .bind(serde_json::to_string(&diff)?)
    .bind(primary.to_string())
    .bind(shadow.to_string())
    .bind(now_ms())
    .execute(&state.db.pool)
    .await?;
    Ok(())
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

#[derive(Debug, Serialize)]
pub struct ShadowResult {
    pub raw_request_id: String,
    pub primary_version: String,
    pub candidate_version: String,
    pub same: bool,
    pub differences: Vec<String>,
    pub primary_result: Value,
    pub candidate_result: Value,
    pub created_at_ms: i64,
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
    let counts = sqlx::query(
        "select candidate_version, cast(sum(same) as bigint) as same, cast(count(*) as bigint) as total from shadow_results where connection_id = $1 group by candidate_version order by candidate_version",
    )
    .bind(&connection.id)
    .fetch_all(&state.db.pool)
    .await?;
    let summary: Vec<Value> = counts
        .iter()
        .map(|r| {
            let total: i64 = r.try_get("total")?;
            let same: i64 = r.try_get("same")?;
            Ok(json!({ "candidate_version": r.try_get::<String, _>("candidate_version")?, "total": total, "same": same, "differing": total - same }))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let rows = sqlx::query(
        "select raw_request_id, primary_version, candidate_version, same, differences, primary_result, candidate_result, created_at_ms \
         from shadow_results where connection_id = $1 and ($2 = 0 or same = 0) order by created_at_ms desc, id desc limit $3",
    )
    .bind(&connection.id)
    .bind(i64::from(q.differing))
    .bind(q.limit.clamp(1, 1000))
    .fetch_all(&state.db.pool)
    .await?;
    let results = rows
        .iter()
        .map(|r| {
            let parse = |s: String| serde_json::from_str(&s).unwrap_or(Value::String(s));
            Ok(ShadowResult {
                raw_request_id: r.try_get("raw_request_id")?,
                primary_version: r.try_get("primary_version")?,
                candidate_version: r.try_get("candidate_version")?,
                same: r.try_get::<i64, _>("same")? != 0,
                differences: serde_json::from_str(&r.try_get::<String, _>("differences")?)
                    .unwrap_or_default(),
                primary_result: parse(r.try_get("primary_result")?),
                candidate_result: parse(r.try_get("candidate_result")?),
                created_at_ms: r.try_get("created_at_ms")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
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
