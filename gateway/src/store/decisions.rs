//! Routing decisions: each decision routing made for an order, with its reasons, as it was
//! made. This module owns the `routing_decisions` table.

use crate::db::{Conn, Tx, deferred};
use serde_json::{Value, json};
use sqlx::Row;

/// A decision to store.
pub struct NewDecision<'a> {
    pub id: &'a str,
    pub order_id: &'a str,
    /// What set the routing off (`route`, `fallback`, `release` …).
    pub trigger: &'a str,
    /// `routed`, `partial` or `held`.
    pub outcome: &'a str,
    /// The decision, as JSON.
    pub decision: &'a str,
    pub created_at_ms: i64,
}

/// Stores a routing decision (it may wait for `deferred::flush`: nothing reads it back in the
/// transaction that makes it).
pub async fn insert(tx: &mut Tx, decision: &NewDecision<'_>) -> sqlx::Result<()> {
    static DECISION: deferred::Insert = deferred::Insert {
        head: "insert into routing_decisions (id, order_id, trigger, outcome, decision, created_at_ms)",
        columns: 6,
        tail: "",
    };
    let row = vec![
        decision.id.into(),
        decision.order_id.into(),
        decision.trigger.into(),
        decision.outcome.into(),
        decision.decision.into(),
        decision.created_at_ms.into(),
    ];
    deferred::insert(tx, &DECISION, vec![row]).await
}

/// The routing decisions of an order, oldest first.
pub async fn of_order(conn: &mut Conn, order_id: &str) -> anyhow::Result<Vec<Value>> {
    let rows = sqlx::query(
        "select id, trigger, outcome, decision, created_at_ms from routing_decisions where order_id = $1 order by created_at_ms, id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(json!({
                "id": r.try_get::<String, _>("id")?,
                "trigger": r.try_get::<String, _>("trigger")?,
                "outcome": r.try_get::<String, _>("outcome")?,
                "decision": serde_json::from_str::<Value>(&r.try_get::<String, _>("decision")?)?,
                "created_at_ms": r.try_get::<i64, _>("created_at_ms")?,
            }))
        })
        .collect()
}
