//! Changes to orders a supplier already has (`changes.rs` decides to ask): the `supplier.update`
//! job calls the supplier plugin's `update-order` with the order as it now is, and the answer,
//! at once or later (an `update-answered` event), is applied:
//!
//! - applied: the supplier order takes the new quantities (a line at 0 leaves it);
//! - refused (too late): the order ships as it was, and a task tells the shop;
//! - the supplier cannot take changes (`unsupported`, a plugin built before WIT 0.4), or the
//!   job dies: a task to tell it by hand.
//!
//! Owns the `supplier_order_updates` table.

use crate::calls::{callee, outcome_of};
use crate::db::{Tx, new_id, now_ms};
use crate::routing::{self, SoStatus, status};
use crate::services::Services;
use crate::store::jobs::{Attempt, ClaimedJob, JobKind, NewJob, Outcome};
use crate::store::orders;
use crate::store::{jobs, tasks};
use daifa_plugin_host::supplier::{UpdateAnswer, UpdateRequest};
use daifa_plugin_host::{CallError, PluginError, SupplierOrderRef};
use serde_json::json;
use sqlx::Row;

/// Where an update stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateStatus {
    /// Waiting for the supplier order's push to be answered (it may have reached the supplier
    /// with the copy before): queued then.
    Waiting,
    /// Waiting for its job.
    Queued,
    /// Sent; the supplier answers later.
    Requested,
    Applied,
    Refused,
    /// The supplier cannot take it through its plugin: a task asks the shop to.
    ByHand,
    /// Not sent: the supplier order shipped, or was cancelled or failed over, first.
    Dropped,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Queued => "queued",
            Self::Requested => "requested",
            Self::Applied => "applied",
            Self::Refused => "refused",
            Self::ByHand => "by_hand",
            Self::Dropped => "dropped",
        }
    }

    /// The statuses an update may move to `self` from.
    fn allowed_from(self) -> &'static [UpdateStatus] {
        use UpdateStatus::*;
        match self {
            Waiting => &[],
            Queued => &[Waiting],
            Requested => &[Queued],
            // A later answer (`update-answered`) follows `Requested`; a prompt one, `Queued`.
            Applied | Refused => &[Queued, Requested],
            ByHand => &[Queued, Requested],
            Dropped => &[Waiting, Queued],
        }
    }
}

/// Asks the supplier of `supplier_order_id` to change it: `lines` are the quantities its lines
/// now have (0: removed), `changes` the names of what changed. Inside the caller's transaction.
/// `after_push`: the supplier order's push is on its way; the change goes once it is answered
/// ([`push_answered`]).
pub async fn request(
    tx: &mut Tx,
    order_id: &str,
    supplier_order_id: &str,
    supplier_connection_id: &str,
    changes: &[&str],
    lines: &[(String, u32)],
    after_push: bool,
) -> anyhow::Result<()> {
    let id = new_id("upd");
    let status = if after_push {
        UpdateStatus::Waiting
    } else {
        UpdateStatus::Queued
    };
    let lines_json = json!(
        lines
            .iter()
            .map(|(line, quantity)| json!({ "external_line_id": line, "quantity": quantity }))
            .collect::<Vec<_>>()
    );
    sqlx::query(
        "insert into supplier_order_updates (id, supplier_order_id, order_id, changes, lines, status, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(supplier_order_id)
    .bind(order_id)
    .bind(json!(changes).to_string())
    .bind(lines_json.to_string())
    .bind(status.as_str())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    if !after_push {
        enqueue(tx, order_id, &id, supplier_connection_id).await?;
    }
    orders::record_event(
        tx,
        order_id,
        "supplier_order.update_queued",
        json!({ "supplier_order_id": supplier_order_id, "update_id": id, "changes": changes,
                "lines": lines_json, "after_push": after_push }),
    )
    .await?;
    Ok(())
}

async fn enqueue(
    tx: &mut Tx,
    order_id: &str,
    update_id: &str,
    supplier_connection_id: &str,
) -> sqlx::Result<bool> {
    jobs::enqueue(
        tx,
        NewJob {
            kind: JobKind::SupplierUpdate,
            idempotency_key: update_id.to_string(),
            subject_id: update_id,
            order_id,
            connection_id: supplier_connection_id,
        },
    )
    .await
}

/// A supplier order's push was answered, or failed for good, with the supplier order now in
/// `status`: the changes waiting for it go to the supplier if it has the order, and are dropped
/// if it has not (its lines went to another supplier order, which is pushed with the current
/// copy). Inside the transaction that moves the supplier order.
pub async fn push_answered(
    tx: &mut Tx,
    order_id: &str,
    supplier_order_id: &str,
    supplier_connection_id: &str,
    status: SoStatus,
) -> anyhow::Result<()> {
    let waiting: Vec<String> = sqlx::query_scalar(
        "select id from supplier_order_updates where supplier_order_id = $1 and status = 'waiting' order by created_at_ms, id",
    )
    .bind(supplier_order_id)
    .fetch_all(&mut **tx)
    .await?;
    for id in waiting {
        if matches!(status, SoStatus::Submitted | SoStatus::Accepted) {
            if set_status(tx, &id, UpdateStatus::Queued, None).await? {
                enqueue(tx, order_id, &id, supplier_connection_id).await?;
            }
        } else {
            drop_update(tx, order_id, supplier_order_id, &id, status).await?;
        }
    }
    Ok(())
}

/// A change not sent: the supplier order is no longer one the supplier can change (`status`).
/// Shipped, the parcel left as it was, and the shop is told.
async fn drop_update(
    tx: &mut Tx,
    order_id: &str,
    supplier_order_id: &str,
    update_id: &str,
    status: SoStatus,
) -> anyhow::Result<()> {
    let reason = format!("the supplier order is {}", status.as_str());
    if !set_status(tx, update_id, UpdateStatus::Dropped, Some(&reason)).await? {
        return Ok(());
    }
    let detail =
        json!({ "supplier_order_id": supplier_order_id, "update_id": update_id, "reason": reason });
    orders::record_event(
        tx,
        order_id,
        "supplier_order.update_dropped",
        detail.clone(),
    )
    .await?;
    if status == SoStatus::Shipped {
        tasks::open(
            tx,
            "changed_after_shipping",
            &format!("{update_id}.shipped"),
            Some(order_id),
            None,
            "The storefront changed an order that shipped before its supplier could be told: tell the customer what was sent",
            detail,
        )
        .await?;
    }
    Ok(())
}

struct Stored {
    id: String,
    supplier_order_id: String,
    order_id: String,
    changes: Vec<String>,
    lines: Vec<(String, u32)>,
    status: String,
    created_at_ms: i64,
}

async fn load(tx: &mut Tx, id: &str) -> anyhow::Result<Option<Stored>> {
    let Some(r) = sqlx::query(
        "select id, supplier_order_id, order_id, changes, lines, status, created_at_ms from supplier_order_updates where id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let lines: Vec<serde_json::Value> = serde_json::from_str(&r.try_get::<String, _>("lines")?)?;
    Ok(Some(Stored {
        id: r.try_get("id")?,
        supplier_order_id: r.try_get("supplier_order_id")?,
        order_id: r.try_get("order_id")?,
        changes: serde_json::from_str(&r.try_get::<String, _>("changes")?)?,
        lines: lines
            .iter()
            .filter_map(|l| {
                Some((
                    l["external_line_id"].as_str()?.to_string(),
                    u32::try_from(l["quantity"].as_u64()?).ok()?,
                ))
            })
            .collect(),
        status: r.try_get("status")?,
        created_at_ms: r.try_get("created_at_ms")?,
    }))
}

/// A later change of the same supplier order that is not dropped, if there is one.
async fn newer_than(tx: &mut Tx, update: &Stored) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select id from supplier_order_updates where supplier_order_id = $1 and status <> 'dropped' \
         and (created_at_ms > $2 or (created_at_ms = $2 and id > $3)) order by created_at_ms desc, id desc limit 1",
    )
    .bind(&update.supplier_order_id)
    .bind(update.created_at_ms)
    .bind(&update.id)
    .fetch_optional(&mut **tx)
    .await
}

/// Moves an update by compare-and-set; false when it was not in a status the move is allowed
/// from (answered already).
async fn set_status(
    tx: &mut Tx,
    id: &str,
    to: UpdateStatus,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    let from = to
        .allowed_from()
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
        "update supplier_order_updates set status = $1, reason = $2, answered_at_ms = $3 where id = $4 and status in ({from})"
    )))
    .bind(to.as_str())
    .bind(reason)
    .bind(now_ms())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// The `supplier.update` job.
pub async fn run(state: &Services, job: &ClaimedJob) -> anyhow::Result<Attempt> {
    let mut tx = state.db.snapshot().await?;
    let Some(update) = load(&mut tx, &job.subject_id).await? else {
        return Ok(Outcome::Refused {
            kind: "missing".into(),
            error: format!("update {} does not exist", job.subject_id),
        }
        .into());
    };
    drop(tx);
    if update.status != UpdateStatus::Queued.as_str() {
        return Ok(Outcome::Succeeded.into());
    }
    let Some(mut so) = routing::supplier_order(&state.db, &update.supplier_order_id).await? else {
        anyhow::bail!("supplier order {} is missing", update.supplier_order_id);
    };
    if !matches!(
        SoStatus::parse(&so.status),
        Some(SoStatus::Submitted | SoStatus::Accepted)
    ) {
        let mut tx = state.db.begin().await?;
        orders::lock(&mut tx, &update.order_id).await?;
        let status = SoStatus::parse(&so.status).unwrap_or(SoStatus::Cancelled);
        drop_update(&mut tx, &update.order_id, &so.id, &update.id, status).await?;
        return Ok(Attempt::done(tx));
    }
    let mut tx = state.db.begin().await?;
    if let Some(newer) = newer_than(&mut tx, &update).await? {
        // The later change sends the whole order as it now is: this one would only undo it.
        orders::lock(&mut tx, &update.order_id).await?;
        let reason = format!("superseded by the later change {newer}");
        if set_status(&mut tx, &update.id, UpdateStatus::Dropped, Some(&reason)).await? {
            orders::record_event(
                &mut tx,
                &update.order_id,
                "supplier_order.update_dropped",
                json!({ "supplier_order_id": so.id, "update_id": update.id, "reason": reason }),
            )
            .await?;
        }
        return Ok(Attempt::done(tx));
    }
    drop(tx);
    let order = orders::get(&state.db, &update.order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {} is missing", update.order_id))?;
    for line in &mut so.lines {
        if let Some((_, quantity)) = update
            .lines
            .iter()
            .find(|(id, _)| *id == line.external_line_id)
        {
            line.quantity = i64::from(*quantity);
        }
    }
    so.lines.retain(|l| l.quantity > 0);
    if so.lines.is_empty() {
        // Every line it carries was removed: not a change but a cancellation.
        let mut tx = state.db.begin().await?;
        orders::lock(&mut tx, &update.order_id).await?;
        if set_status(
            &mut tx,
            &update.id,
            UpdateStatus::Dropped,
            Some("every line removed: the supplier is asked to cancel instead"),
        )
        .await?
            && status::transition_from(
                &mut tx,
                &so.id,
                &[SoStatus::Submitted, SoStatus::Accepted],
                SoStatus::CancelRequested,
                status::Change {
                    external_id: None,
                    reason: Some("the storefront removed every line"),
                },
            )
            .await?
            .happened()
        {
            crate::cancellation::ask_to_cancel(
                &mut tx,
                &update.order_id,
                &so.id,
                &so.supplier_connection_id,
                "lines_removed",
            )
            .await?;
        }
        return Ok(Attempt::done(tx));
    }
    let push_key = format!("{}.submit", so.id);
    let updated = match super::supplier_order_request(&so, &order.canonical_order()?, &push_key) {
        Ok(updated) => updated,
        Err(outcome) => return Ok(outcome.into()),
    };
    let (_, plugin, ctx) = match callee(state, &so.supplier_connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome.into()),
    };
    let request = UpdateRequest {
        order: SupplierOrderRef {
            supplier_order_id: so.id.clone(),
            external_id: so.external_id.clone(),
        },
        idempotency_key: update.id.clone(),
        updated,
        changes: update.changes.clone(),
    };
    let answer = plugin.update_order(ctx, &request).await;
    let mut tx = state.db.begin().await?;
    orders::lock(&mut tx, &update.order_id).await?;
    match answer {
        Ok(UpdateAnswer::Applied) => answered(&mut tx, &update, true, None).await?,
        Ok(UpdateAnswer::Refused) => answered(&mut tx, &update, false, None).await?,
        Ok(UpdateAnswer::Requested) => {
            if set_status(&mut tx, &update.id, UpdateStatus::Requested, None).await? {
                orders::record_event(
                    &mut tx,
                    &update.order_id,
                    "supplier_order.update_requested",
                    json!({ "supplier_order_id": update.supplier_order_id, "update_id": update.id }),
                )
                .await?;
            }
        }
        Err(failure) => {
            if let CallError::Plugin(PluginError::Unsupported(message)) = &failure.error {
                by_hand(&mut tx, &update, message).await?;
            } else {
                return Ok(outcome_of(failure).into());
            }
        }
    }
    Ok(Attempt::done(tx))
}

/// The supplier's answer, now or later: applied, the supplier order takes the quantities;
/// refused, a task. An answer to an update answered already changes nothing.
async fn answered(
    tx: &mut Tx,
    update: &Stored,
    applied: bool,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let to = if applied {
        UpdateStatus::Applied
    } else {
        UpdateStatus::Refused
    };
    if !set_status(tx, &update.id, to, reason).await? {
        return Ok(());
    }
    let detail = json!({ "supplier_order_id": update.supplier_order_id, "update_id": update.id,
                         "changes": update.changes, "reason": reason });
    if applied {
        routing::set_line_quantities(tx, &update.supplier_order_id, &update.lines).await?;
        orders::record_event(
            tx,
            &update.order_id,
            "supplier_order.update_applied",
            detail,
        )
        .await?;
    } else {
        orders::record_event(
            tx,
            &update.order_id,
            "supplier_order.update_refused",
            detail.clone(),
        )
        .await?;
        tasks::open(
            tx,
            "update_refused",
            &format!("{}.refused", update.id),
            Some(&update.order_id),
            None,
            "A supplier refused a change to an order (too late): it ships as it was; tell the customer",
            detail,
        )
        .await?;
    }
    Ok(())
}

/// The supplier cannot take the change through its plugin: the shop tells it.
async fn by_hand(tx: &mut Tx, update: &Stored, why: &str) -> anyhow::Result<()> {
    if !set_status(tx, &update.id, UpdateStatus::ByHand, Some(why)).await? {
        return Ok(());
    }
    let detail = json!({ "supplier_order_id": update.supplier_order_id, "update_id": update.id,
                         "changes": update.changes, "lines": update.lines, "reason": why });
    orders::record_event(
        tx,
        &update.order_id,
        "supplier_order.update_by_hand",
        detail.clone(),
    )
    .await?;
    tasks::open(
        tx,
        "update_by_hand",
        &format!("{}.by_hand", update.id),
        Some(&update.order_id),
        None,
        "The storefront changed an order its supplier already has, and the supplier cannot be told through its connection: tell it by hand",
        detail,
    )
    .await?;
    Ok(())
}

/// A `supplier.update` job failed for good: the shop tells the supplier by hand.
pub async fn on_dead(tx: &mut Tx, job: &ClaimedJob, error: &str) -> anyhow::Result<()> {
    if let Some(update) = load(tx, &job.subject_id).await? {
        by_hand(tx, &update, error).await?;
    }
    Ok(())
}

/// A supplier's later answer (`update-answered`), inside the ingest transaction. `Err` refuses
/// the request: the update is not one of this supplier order's.
pub async fn on_answer(
    tx: &mut Tx,
    supplier_order_id: &str,
    update_id: &str,
    applied: bool,
    reason: Option<&str>,
) -> anyhow::Result<Result<serde_json::Value, String>> {
    let Some(update) = load(tx, update_id)
        .await?
        .filter(|u| u.supplier_order_id == supplier_order_id)
    else {
        return Ok(Err(format!(
            "no update `{update_id}` of supplier order `{supplier_order_id}`"
        )));
    };
    orders::lock(tx, &update.order_id).await?;
    answered(tx, &update, applied, reason).await?;
    Ok(Ok(json!({
        "order_id": update.order_id,
        "supplier_order_id": supplier_order_id,
        "update_id": update_id,
        "applied": applied,
    })))
}
