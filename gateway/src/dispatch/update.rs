//! Changes to orders a supplier already has (`changes.rs` decides to ask): the `supplier.update`
//! job calls the supplier plugin's `update-order` with the order as it now is, and the answer,
//! at once or later (an `update-answered` event), is applied:
//!
//! - applied: the supplier order takes the new quantities (a line at 0 leaves it);
//! - refused (too late): the order ships as it was, and a task tells the shop;
//! - the supplier cannot take changes (`unsupported`, a plugin built before WIT 0.4), or the
//!   job dies: a task to tell it by hand.
//!
//! The changes are [`crate::store::supplier_orders`]' `supplier_order_updates` rows.

use crate::calls::{callee, outcome_of};
use crate::db::{Tx, new_id};
use crate::services::Services;
use crate::store::jobs::{Attempt, ClaimedJob, JobKind, NewJob, Outcome};
use crate::store::orders;
use crate::store::supplier_orders::{self, SoStatus, Update, UpdateStatus};
use crate::store::{jobs, tasks};
use daifa_plugin_host::supplier::{UpdateAnswer, UpdateRequest};
use daifa_plugin_host::{CallError, PluginError, SupplierOrderRef};
use serde_json::json;

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
    supplier_orders::insert_update(
        tx,
        &id,
        supplier_order_id,
        order_id,
        changes,
        &lines_json,
        status,
    )
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
    let waiting = supplier_orders::waiting_updates(tx, supplier_order_id).await?;
    for id in waiting {
        if matches!(status, SoStatus::Submitted | SoStatus::Accepted) {
            if supplier_orders::set_update_status(tx, &id, UpdateStatus::Queued, None).await? {
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
    if !supplier_orders::set_update_status(tx, update_id, UpdateStatus::Dropped, Some(&reason))
        .await?
    {
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

/// The `supplier.update` job.
pub async fn run(state: &Services, job: &ClaimedJob) -> anyhow::Result<Attempt> {
    let mut tx = state.db.snapshot().await?;
    let Some(update) = supplier_orders::get_update(&mut tx, &job.subject_id).await? else {
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
    let Some(mut so) = supplier_orders::get(&state.db, &update.supplier_order_id).await? else {
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
    if let Some(newer) = supplier_orders::newer_update(&mut tx, &update).await? {
        // The later change sends the whole order as it now is: this one would only undo it.
        orders::lock(&mut tx, &update.order_id).await?;
        let reason = format!("superseded by the later change {newer}");
        if supplier_orders::set_update_status(
            &mut tx,
            &update.id,
            UpdateStatus::Dropped,
            Some(&reason),
        )
        .await?
        {
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
        if supplier_orders::set_update_status(
            &mut tx,
            &update.id,
            UpdateStatus::Dropped,
            Some("every line removed: the supplier is asked to cancel instead"),
        )
        .await?
            && supplier_orders::transition_from(
                &mut tx,
                &so.id,
                &[SoStatus::Submitted, SoStatus::Accepted],
                SoStatus::CancelRequested,
                supplier_orders::Change {
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
            if supplier_orders::set_update_status(
                &mut tx,
                &update.id,
                UpdateStatus::Requested,
                None,
            )
            .await?
            {
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
    update: &Update,
    applied: bool,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let to = if applied {
        UpdateStatus::Applied
    } else {
        UpdateStatus::Refused
    };
    if !supplier_orders::set_update_status(tx, &update.id, to, reason).await? {
        return Ok(());
    }
    let detail = json!({ "supplier_order_id": update.supplier_order_id, "update_id": update.id,
                         "changes": update.changes, "reason": reason });
    if applied {
        supplier_orders::set_line_quantities(tx, &update.supplier_order_id, &update.lines).await?;
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
async fn by_hand(tx: &mut Tx, update: &Update, why: &str) -> anyhow::Result<()> {
    if !supplier_orders::set_update_status(tx, &update.id, UpdateStatus::ByHand, Some(why)).await? {
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
    if let Some(update) = supplier_orders::get_update(tx, &job.subject_id).await? {
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
    let Some(update) = supplier_orders::get_update(tx, update_id)
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
