//! Where orders leave: a supplier order pushed to its supplier through the supplier
//! connection's plugin (`supplier.submit`), its acknowledgement deadline, and the changes sent
//! after it (`update`). The workers that run these jobs are `crate::worker`; writing a shipment
//! back is in `fulfilment`.

pub mod update;

use crate::calls::{callee, outcome_of};
use crate::db::Tx;
use crate::db::{ms, now_ms};
use crate::routing::context::{self, OrderContext};
use crate::services::Services;
use crate::store::jobs::{self, Attempt, ClaimedJob, JobKind, NewJob, Outcome};
use crate::store::offers;
use crate::store::orders::{self, OrderStatus, StoredOrder};
use crate::store::supplier_orders::{self, SoStatus, SupplierOrderView};
use crate::worker::{self, Handler};
use crate::{cancellation, routing};
use daifa_plugin_host::supplier::{SupplierOrder, SupplierOrderLine};
use daifa_plugin_host::{Order, SupplierOrderStatus};
use serde_json::json;
use std::collections::HashMap;

/// The jobs of this stage: the push, its acknowledgement deadline and the changes sent after
/// it.
pub fn jobs() -> Vec<Handler> {
    vec![
        Handler {
            kind: JobKind::SupplierSubmit,
            prepare: Some(|s, jobs| Box::pin(read_pushes(s, jobs))),
            run: |s, job| Box::pin(run_submit(s, job)),
            on_dead: Some(|tx, job, error| Box::pin(on_dead_push(tx, job, error))),
        },
        Handler {
            kind: JobKind::SupplierAckDeadline,
            prepare: None,
            run: |s, job| Box::pin(run_ack_deadline(s, job)),
            on_dead: None,
        },
        Handler {
            kind: JobKind::SupplierUpdate,
            prepare: None,
            run: |s, job| Box::pin(update::run(s, job)),
            on_dead: Some(|tx, job, error| Box::pin(update::on_dead(tx, job, error))),
        },
    ]
}

/// A dead push hands its lines to the next offer, and a change waiting for the push is settled.
async fn on_dead_push(tx: &mut Tx, job: &ClaimedJob, error: &str) -> anyhow::Result<()> {
    let Some(order_id) = &job.order_id else {
        return Ok(());
    };
    let reason = format!("{} failed for good: {error}", job.kind.as_str());
    routing::fail_over(tx, &job.subject_id, SoStatus::Undeliverable, &reason).await?;
    if let Some(supplier) = &job.connection_id {
        let now = supplier_orders::current(tx, &job.subject_id)
            .await?
            .unwrap_or(SoStatus::Undeliverable);
        update::push_answered(tx, order_id, &job.subject_id, supplier, now).await?;
    }
    Ok(())
}

/// What a batch of pushes reads at once before they start ([`Handler::prepare`]): their
/// supplier orders with their lines, their orders (parsed) and the orders' product categories,
/// in four statements for the batch (one more per other channel) instead of four for each push.
/// Each push takes its own ([`Pushes::take`]).
struct Pushes(std::sync::Mutex<HashMap<String, Push>>);

/// One push's reads: its supplier order, and its order with what its context needs, if found.
struct Push {
    so: SupplierOrderView,
    order: Option<context::Known>,
}

impl Pushes {
    /// The reads of the push of supplier order `id`, once.
    fn take(&self, id: &str) -> Option<Push> {
        self.0.lock().ok()?.remove(id)
    }
}

async fn read_pushes(state: &Services, jobs: &[ClaimedJob]) -> anyhow::Result<worker::Prepared> {
    let ids: Vec<&str> = jobs.iter().map(|j| j.subject_id.as_str()).collect();
    let mut conn = state.db.pool.acquire().await?;
    let supplier_orders = supplier_orders::get_many(&mut conn, &ids).await?;
    let mut order_ids: Vec<&str> = supplier_orders
        .iter()
        .map(|so| so.order_id.as_str())
        .collect();
    order_ids.sort_unstable();
    order_ids.dedup();
    let orders = orders::get_many_in(&mut conn, &order_ids).await?;
    let mut known = known_orders(&mut conn, orders).await?;
    // An order with several supplier orders in the batch: each but the last takes a copy.
    let mut left: HashMap<String, usize> = HashMap::new();
    for so in &supplier_orders {
        *left.entry(so.order_id.clone()).or_default() += 1;
    }
    let mut pushes = HashMap::with_capacity(supplier_orders.len());
    for so in supplier_orders {
        let n = left.get_mut(&so.order_id).expect("counted above");
        *n -= 1;
        let order = match n {
            0 => known.remove(&so.order_id),
            _ => known.get(&so.order_id).cloned(),
        };
        pushes.insert(so.id.clone(), Push { so, order });
    }
    Ok(std::sync::Arc::new(Pushes(std::sync::Mutex::new(pushes))))
}
/// Each of `orders` (by id) with its canonical copy parsed and its product category, the
/// categories in one statement per channel.
async fn known_orders(
    conn: &mut sqlx::AnyConnection,
    orders: Vec<StoredOrder>,
) -> anyhow::Result<HashMap<String, context::Known>> {
    let copies = orders
        .iter()
        .map(|o| o.canonical_order())
        .collect::<anyhow::Result<Vec<Order>>>()?;
    let mut skus: HashMap<&str, Vec<&str>> = HashMap::new();
    for (order, copy) in orders.iter().zip(&copies) {
        let of_channel = skus.entry(order.connection_id.as_str()).or_default();
        of_channel.extend(copy.lines.iter().map(|l| l.storefront_sku.as_str()));
    }
    let mut categories = HashMap::new();
    for (channel, mut skus) in skus {
        skus.sort_unstable();
        skus.dedup();
        let mut of_channel = HashMap::new();
        // Below the databases' bind limits whatever the batch holds.
        for chunk in skus.chunks(1_000) {
            of_channel.extend(offers::categories_of(conn, channel, chunk).await?);
        }
        categories.insert(channel.to_string(), of_channel);
    }
    Ok(orders
        .into_iter()
        .zip(copies)
        .map(|(order, canonical)| {
            let category = context::category_of(&canonical, &categories[&order.connection_id]);
            let known = context::Known {
                order,
                canonical,
                category,
            };
            (known.order.id.clone(), known)
        })
        .collect())
}

/// The `supplier.submit` job: pushes a supplier order through the supplier connection's plugin.
///
/// The supplier order's status is read before the call and moved after it by compare-and-set,
/// in the transaction that completes the job: a supplier that calls back `accepted` (or
/// `shipped`) before answering the push keeps that status; one that was cancelled or failed
/// over while the push was in flight is asked to cancel it.
async fn run_submit(state: &Services, job: &ClaimedJob) -> anyhow::Result<Attempt> {
    let read = worker::prepared::<Pushes>().and_then(|r| r.take(&job.subject_id));
    let (so, known) = match read {
        Some(push) => (Some(push.so), push.order),
        None => (
            supplier_orders::get(&state.db, &job.subject_id).await?,
            None,
        ),
    };
    let Some(so) = so else {
        return Ok(Outcome::Refused {
            kind: "missing".into(),
            error: format!("supplier order {} does not exist", job.subject_id),
        }
        .into());
    };
    let context = {
        // Reads, outside any transaction: what the push depends on is checked again under the
        // order's lock when its answer is written (the supplier order's status, by
        // compare-and-set), and the order's copy sent is the one current when it is read.
        let policies = state.policy_cache.reader();
        let mut conn = state.db.pool.acquire().await?;
        match known {
            Some(known) => OrderContext::of_known(&mut conn, known, policies, state).await?,
            None => OrderContext::load_cached(&mut conn, &so.order_id, policies, state)
                .await?
                .ok_or_else(|| anyhow::anyhow!("order {} is missing", so.order_id))?,
        }
    };
    let order = &context.order;
    match SoStatus::parse(&so.status) {
        // A retry of a push whose answer was lost is harmless: the key is the same.
        Some(SoStatus::Pending | SoStatus::Submitted) => {}
        Some(SoStatus::Held) => {
            let mut tx = state.db.begin().await?;
            orders::lock(&mut tx, &order.id).await?;
            if supplier_orders::current(&mut tx, &so.id).await? == Some(SoStatus::Pending) {
                // Released a moment ago: push it now (a retry, due at once).
                return Ok(Outcome::Failed {
                    kind: "released".into(),
                    error: "the supplier order was released while this attempt began".into(),
                    retry_after: Some(std::time::Duration::ZERO),
                }
                .into());
            }
            orders::record_event(
                &mut tx,
                &order.id,
                "supplier_order.not_sent",
                json!({ "supplier_order_id": so.id, "reason": "held for the operator" }),
            )
            .await?;
            return Ok(Attempt::done(tx));
        }
        // Cancelled while an earlier attempt was on its way: that attempt may have reached the
        // supplier and then lost its lease (its effects rolled back, the supplier's answer with
        // them), so the supplier is asked to cancel what it may have.
        Some(SoStatus::Cancelled) if job.attempt > 1 => {
            let mut tx = state.db.begin().await?;
            orders::lock(&mut tx, &order.id).await?;
            if supplier_orders::transition_from(
                &mut tx,
                &so.id,
                &[SoStatus::Cancelled],
                SoStatus::CancelRequested,
                supplier_orders::Change::default(),
            )
            .await?
            .happened()
            {
                cancellation::ask_to_cancel(
                    &mut tx,
                    &order.id,
                    &so.id,
                    &so.supplier_connection_id,
                    "pushed_after_stop",
                )
                .await?;
            }
            update::push_answered(
                &mut tx,
                &order.id,
                &so.id,
                &so.supplier_connection_id,
                SoStatus::CancelRequested,
            )
            .await?;
            return Ok(Attempt::done(tx));
        }
        // Failed over (the supplier was asked to cancel then), or cancelled before any attempt
        // went out, while this push waited for a retry: nothing to send, and no change to
        // follow it.
        found => {
            let mut tx = state.db.begin().await?;
            orders::lock(&mut tx, &order.id).await?;
            update::push_answered(
                &mut tx,
                &order.id,
                &so.id,
                &so.supplier_connection_id,
                found.unwrap_or(SoStatus::Cancelled),
            )
            .await?;
            return Ok(Attempt::done(tx));
        }
    }
    if order.status == OrderStatus::Cancelled.as_str() {
        // The cancellation stops pending supplier orders itself; this one slipped through.
        let mut tx = state.db.begin().await?;
        if supplier_orders::transition_from(
            &mut tx,
            &so.id,
            &[SoStatus::Pending],
            SoStatus::Cancelled,
            supplier_orders::Change {
                external_id: None,
                reason: Some("order cancelled before it was sent"),
            },
        )
        .await?
        .happened()
        {
            orders::record_event(
                &mut tx,
                &order.id,
                "supplier_order.not_sent",
                json!({ "supplier_order_id": so.id, "reason": "order cancelled" }),
            )
            .await?;
        }
        return Ok(Attempt::done(tx));
    }
    let (supplier, plugin, ctx) = match callee(state, &so.supplier_connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome.into()),
    };
    let request = match supplier_order_request(&so, &context.canonical, &job.idempotency_key) {
        Ok(request) => request,
        Err(outcome) => return Ok(outcome.into()),
    };
    let submission = match plugin.submit_order(ctx, &request).await {
        Ok(submission) => submission,
        Err(failure) => return Ok(outcome_of(failure).into()),
    };
    let answered = match submission.status {
        SupplierOrderStatus::Accepted => SoStatus::Accepted,
        _ => SoStatus::Submitted,
    };
    // The answer is written when the job completes, with other pushes' answers (one commit
    // for a batch of pushes).
    let answer = Answer {
        order_id: order.id.clone(),
        so,
        supplier_id: supplier.id,
        supplier_name: supplier.name,
        answered,
        external_id: submission.external_id,
        attempt: job.attempt,
        ack_deadline: context.routing.ack_deadline,
    };
    let answer = std::sync::Arc::new(answer);
    Ok(Attempt::done_later(Box::new(move |tx| {
        let answer = answer.clone();
        Box::pin(async move { record_answer(tx, &answer).await })
    })))
}

/// A supplier's answer to a push, to be written.
struct Answer {
    order_id: String,
    so: SupplierOrderView,
    supplier_id: String,
    supplier_name: String,
    answered: SoStatus,
    external_id: Option<String>,
    attempt: i64,
    ack_deadline: std::time::Duration,
}

/// Writes a supplier's answer to a push, under the order's lock.
async fn record_answer(tx: &mut Tx, answer: &Answer) -> anyhow::Result<()> {
    let Answer {
        order_id,
        so,
        supplier_id,
        supplier_name,
        answered,
        external_id,
        attempt,
        ack_deadline,
    } = answer;
    let (answered, attempt, ack_deadline) = (*answered, *attempt, *ack_deadline);
    // Serializes with a cancellation of the order and with the supplier's callbacks.
    orders::lock(tx, order_id).await?;
    let external_id = external_id.as_deref();
    let moved = supplier_orders::transition_from(
        tx,
        &so.id,
        &[SoStatus::Pending, SoStatus::Held],
        answered,
        supplier_orders::Change {
            external_id,
            reason: None,
        },
    )
    .await?;
    let mut now = match moved {
        supplier_orders::Moved::Yes => answered,
        supplier_orders::Moved::No(found) => found.unwrap_or(SoStatus::Cancelled),
    };
    let mut detail = json!({ "supplier_order_id": so.id, "supplier": supplier_name, "status": now.as_str(),
                             "answer": answered.as_str(), "external_id": external_id, "attempt": attempt });
    match now {
        // Moved now, or by a callback that came first (kept), or a repeated push.
        SoStatus::Submitted | SoStatus::Accepted | SoStatus::Shipped => {
            if !moved.happened()
                && let Some(external_id) = external_id
            {
                supplier_orders::set_external_id(tx, &so.id, external_id).await?;
            }
            // Unacknowledged by then, the lines go to the next offer.
            if now == SoStatus::Submitted {
                jobs::add(
                    tx,
                    vec![(
                        NewJob {
                            kind: JobKind::SupplierAckDeadline,
                            idempotency_key: format!("{}.ack_deadline", so.id),
                            subject_id: &so.id,
                            order_id,
                            connection_id: supplier_id,
                        },
                        now_ms() + ms(ack_deadline),
                    )],
                )
                .await?;
            }
            orders::record_event(tx, order_id, "supplier_order.submitted", detail).await?;
        }
        // The supplier refused it by callback while the push was in flight: it has nothing.
        SoStatus::Rejected => {
            orders::record_event(tx, order_id, "supplier_order.submitted", detail).await?;
        }
        // Cancelled or failed over while the push was in flight: the supplier has an order it
        // must not ship.
        found => {
            // A supplier order cancelled as "never pushed" was pushed after all: the supplier
            // has it and is asked to cancel it.
            if found == SoStatus::Cancelled {
                supplier_orders::transition_from(
                    tx,
                    &so.id,
                    &[SoStatus::Cancelled],
                    SoStatus::CancelRequested,
                    supplier_orders::Change {
                        external_id,
                        reason: None,
                    },
                )
                .await?;
            }
            detail["reason"] =
                json!("the push reached the supplier after its supplier order was stopped");
            orders::record_event(tx, order_id, "supplier_order.pushed_after_stop", detail).await?;
            cancellation::ask_to_cancel(tx, order_id, &so.id, supplier_id, "pushed_after_stop")
                .await?;
            // Where the cancellation just asked for left it.
            now = supplier_orders::current(tx, &so.id).await?.unwrap_or(now);
        }
    }
    // Changes the storefront made while the push was on its way follow it now.
    update::push_answered(tx, order_id, &so.id, supplier_id, now).await?;
    Ok(())
}

/// The supplier order as the supplier receives it: its lines (with the quantities routing gave
/// them) from the order's current canonical copy. `idempotency_key` is the push's.
pub(crate) fn supplier_order_request(
    so: &SupplierOrderView,
    canonical: &Order,
    idempotency_key: &str,
) -> Result<SupplierOrder, Outcome> {
    let Some(ship_to) = canonical.shipping_address.clone() else {
        return Err(Outcome::Refused {
            kind: "no-address".into(),
            error: "order has no shipping address".into(),
        });
    };
    let lines = so
        .lines
        .iter()
        .filter_map(|l| {
            let line = canonical
                .lines
                .iter()
                .find(|c| c.external_line_id == l.external_line_id)?;
            Some(SupplierOrderLine {
                external_line_id: l.external_line_id.clone(),
                storefront_sku: l.storefront_sku.clone(),
                supplier_sku: l.supplier_sku.clone(),
                title: line.title.clone(),
                variant_title: line.variant_title.clone(),
                quantity: u32::try_from(l.quantity).unwrap_or(line.quantity),
                unit_price: line.unit_price.clone(),
                note: line.note.clone(),
            })
        })
        .collect();
    Ok(SupplierOrder {
        supplier_order_id: so.id.clone(),
        idempotency_key: idempotency_key.to_string(),
        order_external_id: canonical.external_id.clone(),
        order_number: canonical.order_number.clone(),
        storefront: canonical.storefront.clone(),
        placed_at: canonical.placed_at,
        currency: canonical.currency.clone(),
        buyer_note: canonical.buyer_note.clone(),
        ship_to,
        customer: canonical.customer.clone(),
        lines,
        declared_value: so.declared_value.clone(),
        avoid_carriers: (!so.avoid_carriers.is_empty()).then(|| so.avoid_carriers.clone()),
        reship_of: so.reship_of.clone(),
    })
}

/// The `supplier.ack_deadline` job: a supplier order still not acknowledged is failed over to
/// the next offer; `routing::fail_over` moves it only from `submitted`, so a supplier that
/// acknowledged, rejected or shipped in time (even a moment ago) is left alone.
async fn run_ack_deadline(state: &Services, job: &ClaimedJob) -> anyhow::Result<Attempt> {
    let mut tx = state.db.begin().await?;
    routing::fail_over(
        &mut tx,
        &job.subject_id,
        SoStatus::TimedOut,
        "the supplier did not acknowledge the order in time",
    )
    .await?;
    Ok(Attempt::done(tx))
}
