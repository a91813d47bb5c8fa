//! The `policies` table: each stored policy document (a JSON object, partial: what it changes
//! over the defaults) by policy name and scope (`global`, a channel, a channel's category). What
//! the documents mean, and how they merge, is `policy.rs`'s.

use crate::db::{Conn, now_ms, placeholders};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

/// The document stored for a policy in a scope, if any.
pub async fn get(conn: &mut Conn, name: &str, scope: &str) -> anyhow::Result<Option<Value>> {
    let text: Option<String> =
        sqlx::query_scalar("select value from policies where name = $1 and scope = $2")
            .bind(name)
            .bind(scope)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
}

/// The documents stored for a policy in any of `scopes`, by scope, in one statement.
pub async fn get_many(
    conn: &mut Conn,
    name: &str,
    scopes: &[String],
) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut query = sqlx::query(AssertSqlSafe(format!(
        "select scope, value from policies where name = $1 and scope in ({})",
        placeholders(2, scopes.len().max(1))
    )))
    .bind(name);
    for scope in scopes {
        query = query.bind(scope);
    }
    if scopes.is_empty() {
        query = query.bind("");
    }
    let mut documents = BTreeMap::new();
    for row in query.fetch_all(&mut *conn).await? {
        let text: String = row.try_get("value")?;
        documents.insert(row.try_get("scope")?, serde_json::from_str(&text)?);
    }
    Ok(documents)
}

/// Stores (or replaces) a policy's document for a scope.
pub async fn put(conn: &mut Conn, name: &str, scope: &str, document: &Value) -> sqlx::Result<()> {
    sqlx::query(
        "insert into policies (name, scope, value, updated_at_ms) values ($1, $2, $3, $4) \
         on conflict (name, scope) do update set value = excluded.value, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(name)
    .bind(scope)
    .bind(document.to_string())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
