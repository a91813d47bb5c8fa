//! The bare pipeline's two tables (`bare_requests`, `bare_orders`), for `daifa bench ingest`:
//! what the least a gateway must do with a webhook costs on this database — store the raw
//! body and one order row durably, many webhooks per transaction. Only the benchmark creates
//! them, in a database of its own.

use crate::db::Db;

/// Creates the tables (in a scratch database).
pub async fn create(db: &Db) -> sqlx::Result<()> {
    for statement in [
        "create table if not exists bare_requests (id text primary key, body text not null, received_at_ms bigint not null)",
        "create table if not exists bare_orders (id text primary key, external_id text not null unique, raw_id text not null)",
    ] {
        sqlx::query(statement).execute(&db.pool).await?;
    }
    Ok(())
}

/// One webhook to store: its raw body and the order it carries.
pub struct BareWebhook {
    pub raw_id: String,
    pub body: String,
    pub received_at_ms: i64,
    pub order_id: String,
    pub external_id: String,
}

/// Stores a batch of webhooks in one transaction: each raw body, and its order unless the
/// order is stored already. Durable when this returns.
pub async fn store_batch(db: &Db, batch: &[BareWebhook]) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    for w in batch {
        sqlx::query("insert into bare_requests (id, body, received_at_ms) values ($1, $2, $3)")
            .bind(&w.raw_id)
            .bind(&w.body)
            .bind(w.received_at_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "insert into bare_orders (id, external_id, raw_id) values ($1, $2, $3) on conflict (external_id) do nothing",
        )
        .bind(&w.order_id)
        .bind(&w.external_id)
        .bind(&w.raw_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}
