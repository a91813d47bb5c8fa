//! What a connection's shadow version made of live requests, beside its pinned version's
//! result. This module owns the `shadow_results` table.

use crate::db::{Db, new_id, now_ms};
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

/// A shadow run to record: both versions' canonical results as JSON text, and the paths where
/// they differ.
pub struct NewShadowResult<'a> {
    pub connection_id: &'a str,
    pub raw_request_id: &'a str,
    pub primary_version: &'a str,
    pub candidate_version: &'a str,
    pub differences: &'a [String],
    pub primary_result: &'a str,
    pub candidate_result: &'a str,
}

/// Records a shadow run; it is the same when no path differs.
pub async fn insert(db: &Db, result: &NewShadowResult<'_>) -> anyhow::Result<()> {
    sqlx::query(
        "insert into shadow_results (id, connection_id, raw_request_id, primary_version, candidate_version, same, differences, primary_result, candidate_result, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(new_id("shd"))
    .bind(result.connection_id)
    .bind(result.raw_request_id)
    .bind(result.primary_version)
    .bind(result.candidate_version)
    .bind(i64::from(result.differences.is_empty()))
    .bind(serde_json::to_string(result.differences)?)
    .bind(result.primary_result)
    .bind(result.candidate_result)
    .bind(now_ms())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// How many of a connection's shadow runs a candidate version had, and how many came out the
/// same.
#[derive(Debug)]
pub struct CandidateCount {
    pub candidate_version: String,
    pub same: i64,
    pub total: i64,
}

/// A connection's shadow runs counted per candidate version, by version.
pub async fn counts(db: &Db, connection_id: &str) -> sqlx::Result<Vec<CandidateCount>> {
    let rows = sqlx::query(
        "select candidate_version, cast(sum(same) as bigint) as same, cast(count(*) as bigint) as total from shadow_results where connection_id = $1 group by candidate_version order by candidate_version",
    )
    .bind(connection_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CandidateCount {
                candidate_version: r.try_get("candidate_version")?,
                same: r.try_get("same")?,
                total: r.try_get("total")?,
            })
        })
        .collect()
}

/// A recorded shadow run.
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

/// A connection's latest shadow runs, newest first, at most `limit`; only those that differ
/// when `differing`.
pub async fn latest(
    db: &Db,
    connection_id: &str,
    differing: bool,
    limit: i64,
) -> sqlx::Result<Vec<ShadowResult>> {
    let rows = sqlx::query(
        "select raw_request_id, primary_version, candidate_version, same, differences, primary_result, candidate_result, created_at_ms \
         from shadow_results where connection_id = $1 and ($2 = 0 or same = 0) order by created_at_ms desc, id desc limit $3",
    )
    .bind(connection_id)
    .bind(i64::from(differing))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
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
        .collect()
}
