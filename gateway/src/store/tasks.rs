//! The exception queue: what a person has to look at (a clock that ran out, a supplier that
//! shipped an order it lost or that was cancelled, a request that could not be processed).
//! Tasks are opened once per dedupe key, inside the transaction of what calls for them, and
//! shown by `GET /api/v1/tasks`. This module owns the `tasks` table.

use crate::db::{Db, Tx, new_id, now_ms};
use crate::store::orders;
use serde_json::{Value, json};
use sqlx::Row;

/// Opens a task, once per `dedupe_key`. Returns whether it is new.
pub async fn open(
    tx: &mut Tx,
    kind: &str,
    dedupe_key: &str,
    order_id: Option<&str>,
    case_id: Option<&str>,
    title: &str,
    detail: Value,
) -> sqlx::Result<bool> {
    let now = now_ms();
    let r = sqlx::query(
        "insert into tasks (id, kind, order_id, case_id, title, detail, status, due_at_ms, created_at_ms, dedupe_key) \
         values ($1, $2, $3, $4, $5, $6, 'open', $7, $7, $8) on conflict (dedupe_key) do nothing",
    )
    .bind(new_id("tsk"))
    .bind(kind)
    .bind(order_id)
    .bind(case_id)
    .bind(title)
    .bind(detail.to_string())
    .bind(now)
    .bind(dedupe_key)
    .execute(&mut **tx)
    .await?;
    let new = r.rows_affected() == 1;
    if new {
        if let Some(order_id) = order_id {
            orders::record_event(
                tx,
                order_id,
                "task.opened",
                json!({ "kind": kind, "title": title, "case_id": case_id }),
            )
            .await?;
        }
        tracing::warn!(kind, title, order_id, "task opened");
    }
    Ok(new)
}

/// Tasks by status (`open`, `done`, `all`), order and kind (empty: any), oldest first.
pub async fn list(db: &Db, status: &str, order_id: &str, kind: &str) -> anyhow::Result<Vec<Value>> {
    let rows = sqlx::query(
        "select id, kind, order_id, case_id, title, detail, status, due_at_ms, created_at_ms, done_at_ms, done_by from tasks \
         where ($1 = 'all' or status = $1) and ($2 = '' or order_id = $2) and ($3 = '' or kind = $3) order by created_at_ms, id limit 500",
    )
    .bind(status)
    .bind(order_id)
    .bind(kind)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(json!({
                "id": r.try_get::<String, _>("id")?, "kind": r.try_get::<String, _>("kind")?,
                "order_id": r.try_get::<Option<String>, _>("order_id")?, "case_id": r.try_get::<Option<String>, _>("case_id")?,
                "title": r.try_get::<String, _>("title")?,
                "detail": serde_json::from_str::<Value>(&r.try_get::<String, _>("detail")?).unwrap_or(Value::Null),
                "status": r.try_get::<String, _>("status")?, "due_at_ms": r.try_get::<i64, _>("due_at_ms")?,
                "created_at_ms": r.try_get::<i64, _>("created_at_ms")?, "done_at_ms": r.try_get::<Option<i64>, _>("done_at_ms")?,
                "done_by": r.try_get::<Option<String>, _>("done_by")?,
            }))
        })
        .collect()
}

/// Marks an open task done; false when there is no open task of that id.
pub async fn done(db: &Db, id: &str, by: &str) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "update tasks set status = 'done', done_at_ms = $1, done_by = $2 where id = $3 and status = 'open'",
    )
    .bind(now_ms())
    .bind(by)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() == 1)
}
