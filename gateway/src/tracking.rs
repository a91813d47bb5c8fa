//! Where parcels are followed once the supplier shipped them. Each new shipment is registered with
//! the shop's carrier connections (tracking services such as 17TRACK, or a carrier's own API)
//! through a `carrier.register` job; what they push (`POST /hooks/{connection}`) or what polling
//! fetches moves the shipment's tracking status and fills its scan history, and an order whose
//! shipments are all delivered is delivered. Exceptions (customs, returns, refusals, losses) are
//! put on the order's timeline. This module owns the `tracking_registrations` and
//! `tracking_events` tables and the tracking columns of `shipments`.

use crate::calls::{callee, outcome_of};
use crate::connections::Connection;
use crate::db::{Conn, Db, Tx, new_id, now_ms};
use crate::services::Services;
use crate::store::jobs::{self, ClaimedJob, JobKind, NewJob, Outcome};
use crate::store::orders::{self, OrderStatus};
use crate::store::supplier_orders::{self, SoStatus};
use crate::worker::Handler;
use daifa_plugin_host::carrier::Parcel;
use daifa_plugin_host::{TrackingDetail, TrackingStatus, TrackingUpdate};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Row};

/// The stored name of a tracking status.
pub fn status_name(status: TrackingStatus) -> &'static str {
    match status {
        TrackingStatus::NotFound => "not_found",
        TrackingStatus::InfoReceived => "info_received",
        TrackingStatus::InTransit => "in_transit",
        TrackingStatus::OutForDelivery => "out_for_delivery",
        TrackingStatus::AvailableForPickup => "available_for_pickup",
        TrackingStatus::DeliveryFailed => "delivery_failed",
        TrackingStatus::Delivered => "delivered",
        TrackingStatus::Exception => "exception",
        TrackingStatus::Expired => "expired",
    }
}

/// The stored name of a tracking detail.
pub fn detail_name(detail: TrackingDetail) -> &'static str {
    match detail {
        TrackingDetail::CustomsProcessing => "customs_processing",
        TrackingDetail::CustomsHeld => "customs_held",
        TrackingDetail::CustomsReleased => "customs_released",
        TrackingDetail::ReturningToSender => "returning_to_sender",
        TrackingDetail::ReturnedToSender => "returned_to_sender",
        TrackingDetail::Refused => "refused",
        TrackingDetail::Lost => "lost",
        TrackingDetail::Damaged => "damaged",
        TrackingDetail::AddressIssue => "address_issue",
        TrackingDetail::RecipientUnavailable => "recipient_unavailable",
        TrackingDetail::OutOfDeliveryArea => "out_of_delivery_area",
        TrackingDetail::Delayed => "delayed",
    }
}

/// Statuses after which a parcel is no longer followed (nor polled).
pub const FINAL_STATUSES: [&str; 2] = ["delivered", "expired"];

/// Whether a status calls for someone to act: the carrier could not deliver, the parcel is held,
/// going back, refused, lost or damaged.
pub fn is_exception(status: TrackingStatus, detail: Option<TrackingDetail>) -> bool {
    matches!(
        status,
        TrackingStatus::Exception | TrackingStatus::DeliveryFailed
    ) || matches!(
        detail,
        Some(
            TrackingDetail::CustomsHeld
                | TrackingDetail::ReturningToSender
                | TrackingDetail::ReturnedToSender
                | TrackingDetail::Refused
                | TrackingDetail::Lost
                | TrackingDetail::Damaged
                | TrackingDetail::AddressIssue
                | TrackingDetail::OutOfDeliveryArea
        )
    )
}

/// Registers a new shipment with every enabled carrier connection, inside the transaction that
/// stored it: one `carrier.register` job each. Returns how many.
pub async fn enqueue_registrations(
    tx: &mut Tx,
    shipment_id: &str,
    order_id: &str,
) -> anyhow::Result<usize> {
    let carriers = crate::connections::enabled_carriers(tx).await?;
    for connection_id in &carriers {
        jobs::enqueue(
            tx,
            NewJob {
                kind: JobKind::CarrierRegister,
                idempotency_key: format!("{shipment_id}.register.{connection_id}"),
                subject_id: shipment_id,
                order_id,
                connection_id,
            },
        )
        .await?;
    }
    Ok(carriers.len())
}

/// A shipment as a carrier plugin sees it.
async fn parcel(db: &Db, shipment_id: &str) -> anyhow::Result<Option<(String, Parcel)>> {
    let row = sqlx::query(
        "select id, order_id, carrier_code, tracking_number, shipped_at_ms from shipments where id = $1",
    )
    .bind(shipment_id)
    .fetch_optional(&db.pool)
    .await?;
    Ok(parcels_from_rows(db, row.as_slice()).await?.pop())
}

/// Shipment rows as parcels, with their orders' destinations (read in one query), each with
/// its order's id.
async fn parcels_from_rows(
    db: &Db,
    rows: &[sqlx::any::AnyRow],
) -> anyhow::Result<Vec<(String, Parcel)>> {
    let order_ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("order_id"))
        .collect::<Result<_, _>>()?;
    let ids: Vec<&str> = order_ids.iter().map(String::as_str).collect();
    let destinations = orders::destinations(db, &ids).await?;
    rows.iter()
        .zip(order_ids)
        .map(|(r, order_id)| {
            Ok((
                order_id.clone(),
                Parcel {
                    shipment_id: r.try_get("id")?,
                    carrier_code: r.try_get("carrier_code")?,
                    tracking_number: r.try_get("tracking_number")?,
                    destination_country: destinations.get(&order_id).cloned(),
                    shipped_at: r.try_get("shipped_at_ms")?,
                },
            ))
        })
        .collect()
}

/// The `carrier.register` job: asks the carrier connection to follow the shipment.
pub async fn run_register(state: &Services, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let Some((order_id, parcel)) = parcel(&state.db, &job.subject_id).await? else {
        return Ok(Outcome::Refused {
            kind: "missing".into(),
            error: format!("shipment {} does not exist", job.subject_id),
        });
    };
    let Some(connection_id) = job.connection_id.as_deref() else {
        return Ok(Outcome::Refused {
            kind: "missing".into(),
            error: "the job names no carrier connection".into(),
        });
    };
    let (carrier, plugin, ctx) = match callee(state, connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    match plugin.register_parcel(ctx, &parcel).await {
        Ok(registration) => {
            let mut tx = state.db.begin().await?;
            sqlx::query(
                "insert into tracking_registrations (shipment_id, connection_id, carrier_code, external_id, registered_at_ms) \
                 values ($1, $2, $3, $4, $5) on conflict (shipment_id, connection_id) do nothing",
            )
            .bind(&parcel.shipment_id)
            .bind(&carrier.id)
            .bind(&registration.carrier_code)
            .bind(&registration.external_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            orders::record_event(
                &mut tx,
                &order_id,
                "tracking.registered",
                json!({ "shipment_id": parcel.shipment_id, "connection": carrier.name, "tracking_number": parcel.tracking_number,
                        "carrier_code": registration.carrier_code, "external_id": registration.external_id }),
            )
            .await?;
            tx.commit().await?;
            Ok(Outcome::Succeeded)
        }
        Err(failure) => Ok(outcome_of(failure)),
    }
}

/// The parcels a carrier connection follows that have not reached a final status, oldest
/// first, after `after` (a shipment id; `""` from the start), at most `limit`.
pub async fn parcels_to_follow(
    db: &Db,
    connection_id: &str,
    after: &str,
    limit: i64,
) -> anyhow::Result<Vec<Parcel>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select s.id, s.order_id, s.carrier_code, s.tracking_number, s.shipped_at_ms \
         from tracking_registrations r join shipments s on s.id = r.shipment_id \
         where r.connection_id = $1 and s.id > $2 and (s.tracking_status is null or s.tracking_status not in ({})) \
         order by s.id limit $3",
        FINAL_STATUSES.map(|s| format!("'{s}'")).join(", ")
    )))
    .bind(connection_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(parcels_from_rows(db, &rows)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// What applying updates did, for the answer to the sender and the raw record.
#[derive(Debug, Default)]
pub struct Applied {
    /// The first order an update touched (the raw request is filed under it).
    pub order_id: Option<String>,
    pub summaries: Vec<Value>,
    /// Carrier details that ask for an after-sales case (a return, a lost parcel), as
    /// `(shipment id, order id, detail)`: the caller opens them (`aftersales::from_carrier`) in
    /// the same transaction.
    pub for_cases: Vec<(String, String, TrackingDetail)>,
}

/// Checks updates before anything is applied: a plugin that returns an update without a
/// tracking number has a bug, and the request is refused whole.
pub fn validate(updates: &[TrackingUpdate]) -> Result<(), String> {
    match updates
        .iter()
        .position(|u| u.tracking_number.trim().is_empty())
    {
        Some(i) => Err(format!("update {i} has no tracking number")),
        None => Ok(()),
    }
}

/// Applies tracking updates inside the caller's transaction. An update is matched to shipments
/// by tracking number; a number Daifa does not know (a parcel the service follows for someone
/// else) is skipped and said so. Events are kept once; the shipment's status moves only with
/// news at least as recent as what it has.
pub async fn apply_updates(
    tx: &mut Tx,
    carrier: &Connection,
    raw_id: &str,
    updates: &[TrackingUpdate],
) -> anyhow::Result<Applied> {
    let mut applied = Applied::default();
    for update in updates {
        let shipments = sqlx::query(
            "select id, order_id, tracking_status, tracking_detail, tracking_updated_at_ms from shipments where tracking_number = $1 order by id",
        )
        .bind(&update.tracking_number)
        .fetch_all(&mut **tx)
        .await?;
        if shipments.is_empty() {
            applied.summaries.push(json!({ "tracking_number": update.tracking_number, "result": "unknown_tracking_number" }));
            continue;
        }
        for row in &shipments {
            let shipment_id: String = row.try_get("id")?;
            let order_id: String = row.try_get("order_id")?;
            let previous: Option<String> = row.try_get("tracking_status")?;
            let previous_detail: Option<String> = row.try_get("tracking_detail")?;
            let previous_at: Option<i64> = row.try_get("tracking_updated_at_ms")?;
            applied.order_id.get_or_insert_with(|| order_id.clone());
            let mut new_events = 0;
            for event in &update.events {
                let inserted = sqlx::query(
                    "insert into tracking_events (id, shipment_id, status, detail, description, location, occurred_at_ms, raw_request_id, created_at_ms) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (shipment_id, occurred_at_ms, description) do nothing",
                )
                .bind(new_id("trk"))
                .bind(&shipment_id)
                .bind(status_name(event.status))
                .bind(event.detail.map(detail_name))
                .bind(&event.description)
                .bind(&event.location)
                .bind(event.occurred_at)
                .bind(raw_id)
                .bind(now_ms())
                .execute(&mut **tx)
                .await?;
                new_events += inserted.rows_affected();
            }
            // The update's time is its newest event's (a service's answer without events is
            // taken as news of now).
            let at = update
                .events
                .iter()
                .map(|e| e.occurred_at)
                .max()
                .or(update.delivered_at)
                .unwrap_or_else(now_ms);
            let status = status_name(update.status);
            let detail = update.detail.map(detail_name);
            let newer = previous_at.is_none_or(|p| at >= p);
            // A new status, or the same with a new detail (in exception: returning, then returned).
            let changed = newer
                && (previous.as_deref() != Some(status) || previous_detail.as_deref() != detail);
            if newer {
                sqlx::query(
                    "update shipments set tracking_status = $1, tracking_detail = $2, tracking_updated_at_ms = $3, \
                     estimated_delivery_ms = coalesce($4, estimated_delivery_ms), delivered_at_ms = coalesce($5, delivered_at_ms) where id = $6",
                )
                .bind(status)
                .bind(detail)
                .bind(at)
                .bind(update.estimated_delivery)
                .bind(update.delivered_at)
                .bind(&shipment_id)
                .execute(&mut **tx)
                .await?;
            }
            if changed {
                let detail_json = json!({ "shipment_id": shipment_id, "tracking_number": update.tracking_number, "connection": carrier.name,
                                          "from": previous, "to": status, "detail": detail, "raw_request_id": raw_id });
                orders::record_event(
                    tx,
                    &order_id,
                    "tracking.status_changed",
                    detail_json.clone(),
                )
                .await?;
                if is_exception(update.status, update.detail) {
                    orders::record_event(tx, &order_id, "tracking.exception", detail_json).await?;
                    tracing::warn!(order_id = %order_id, shipment_id = %shipment_id, status, detail, "tracking exception");
                }
                if update.status == TrackingStatus::Delivered {
                    mark_delivered_when_complete(tx, &order_id).await?;
                }
                if let Some(detail) = on_detail(tx, &shipment_id, &order_id, update).await? {
                    applied
                        .for_cases
                        .push((shipment_id.clone(), order_id.clone(), detail));
                }
            }
            applied.summaries.push(json!({ "tracking_number": update.tracking_number, "shipment_id": shipment_id,
                                           "status": if newer { status } else { previous.as_deref().unwrap_or(status) },
                                           "changed": changed, "new_events": new_events }));
        }
    }
    Ok(applied)
}

/// What a carrier's detail asks of the shop: a parcel at customs is a task (remind the
/// customer to collect it; held: tell the customer to contact customs and send the invoice);
/// any other detail is given back, for the after-sales case it may open (a return, a lost
/// parcel).
async fn on_detail(
    tx: &mut Tx,
    shipment_id: &str,
    order_id: &str,
    update: &TrackingUpdate,
) -> anyhow::Result<Option<TrackingDetail>> {
    let Some(detail) = update.detail else {
        return Ok(None);
    };
    let task = |kind: &'static str, title: &'static str| (kind, title);
    let customs = match detail {
        TrackingDetail::CustomsProcessing => Some(task(
            "customs_reminder",
            "the parcel is at the destination's customs: remind the customer to collect it",
        )),
        TrackingDetail::CustomsHeld => Some(task(
            "customs_held",
            "held by customs: tell the customer to contact customs, and provide the invoice",
        )),
        _ => None,
    };
    if let Some((kind, title)) = customs {
        crate::store::tasks::open(
            tx,
            kind,
            &format!("{kind}.{shipment_id}"),
            Some(order_id),
            None,
            title,
            json!({ "shipment_id": shipment_id, "tracking_number": update.tracking_number }),
        )
        .await?;
        return Ok(None);
    }
    Ok(Some(detail))
}

/// An order is delivered once every shipment of it is and no supplier order still has goods to
/// ship.
async fn mark_delivered_when_complete(tx: &mut Tx, order_id: &str) -> anyhow::Result<()> {
    let undelivered: i64 = sqlx::query_scalar(
        "select count(*) from shipments where order_id = $1 and (tracking_status is null or tracking_status <> 'delivered')",
    )
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await?;
    let to_ship = supplier_orders::count_in(
        tx,
        order_id,
        &[
            SoStatus::Pending,
            SoStatus::Held,
            SoStatus::Submitted,
            SoStatus::Accepted,
        ],
    )
    .await?;
    let pending = undelivered + to_ship;
    if pending == 0
        && orders::set_status(tx, order_id, OrderStatus::Delivered, None)
            .await?
            .happened()
    {
        orders::record_event(tx, order_id, "order.delivered", json!({})).await?;
    }
    Ok(())
}

/// One scan as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct TrackingEventView {
    pub shipment_id: String,
    pub status: String,
    pub detail: Option<String>,
    pub description: String,
    pub location: Option<String>,
    pub occurred_at_ms: i64,
}

/// The scans of an order's shipments, oldest first.
pub async fn events_of_order(
    conn: &mut Conn,
    order_id: &str,
) -> anyhow::Result<Vec<TrackingEventView>> {
    let rows = sqlx::query(
        "select e.shipment_id, e.status, e.detail, e.description, e.location, e.occurred_at_ms from tracking_events e \
         join shipments s on s.id = e.shipment_id where s.order_id = $1 order by e.occurred_at_ms, e.id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TrackingEventView {
                shipment_id: r.try_get("shipment_id")?,
                status: r.try_get("status")?,
                detail: r.try_get("detail")?,
                description: r.try_get("description")?,
                location: r.try_get("location")?,
                occurred_at_ms: r.try_get("occurred_at_ms")?,
            })
        })
        .collect()
}

/// Where a shipment's tracking stands, for the follow-up clocks: its status, number, carrier
/// and how many scans were kept.
pub struct Followed {
    pub tracking_status: Option<String>,
    pub tracking_number: String,
    pub carrier_code: String,
    pub scans: i64,
}

pub async fn followed(tx: &mut Tx, shipment_id: &str) -> sqlx::Result<Option<Followed>> {
    let row = sqlx::query(
        "select tracking_status, tracking_number, carrier_code, (select count(*) from tracking_events where shipment_id = $1) as scans \
         from shipments where id = $1",
    )
    .bind(shipment_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        Ok(Followed {
            tracking_status: r.try_get("tracking_status")?,
            tracking_number: r.try_get("tracking_number")?,
            carrier_code: r.try_get("carrier_code")?,
            scans: r.try_get("scans")?,
        })
    })
    .transpose()
}

/// The jobs of this stage: a shipment's registration with a tracking service.
pub fn jobs() -> Vec<Handler> {
    vec![Handler {
        kind: JobKind::CarrierRegister,
        run: |s, job| Box::pin(async move { run_register(s, job).await.map(Into::into) }),
        on_dead: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_are_what_someone_must_act_on() {
        use TrackingDetail as D;
        use TrackingStatus as S;
        let cases = [
            (S::InTransit, None, false),
            (S::InTransit, Some(D::CustomsProcessing), false),
            (S::InTransit, Some(D::CustomsHeld), true),
            (S::InTransit, Some(D::Delayed), false),
            (S::Exception, None, true),
            (S::Exception, Some(D::ReturnedToSender), true),
            (S::DeliveryFailed, Some(D::RecipientUnavailable), true),
            (S::Delivered, None, false),
            (S::AvailableForPickup, None, false),
            (S::OutForDelivery, Some(D::AddressIssue), true),
        ];
        for (status, detail, expected) in cases {
            assert_eq!(
                is_exception(status, detail),
                expected,
                "{status:?} {detail:?}"
            );
        }
    }
}
