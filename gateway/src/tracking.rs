//! Where parcels are followed once the supplier shipped them. Each new shipment is registered with
//! the shop's carrier connections (tracking services such as 17TRACK, or a carrier's own API)
//! through a `carrier.register` job; what they push (`POST /hooks/{connection}`) or what polling
//! fetches moves the shipment's tracking status and fills its scan history, and an order whose
//! shipments are all delivered is delivered. Exceptions (customs, returns, refusals, losses) are
//! put on the order's timeline. Registrations, scans and the shipments' tracking columns are
//! stored by `crate::store::shipments`.

use crate::calls::{callee, outcome_of};
use crate::db::{Db, Tx, now_ms};
use crate::services::Services;
use crate::store::connections::Connection;
use crate::store::jobs::{self, ClaimedJob, JobKind, NewJob, Outcome};
use crate::store::orders::{self, OrderStatus};
use crate::store::shipments::{self, NewScan, ParcelRow, Tracking};
use crate::store::supplier_orders::{self, SoStatus};
use crate::worker::Handler;
use daifa_plugin_host::carrier::Parcel;
use daifa_plugin_host::{TrackingDetail, TrackingStatus, TrackingUpdate};
use serde_json::{Value, json};

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
    let carriers = crate::store::connections::enabled_carriers(tx).await?;
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
    let row = shipments::parcel(db, shipment_id).await?;
    Ok(parcels_from_rows(db, row.into_iter().collect())
        .await?
        .pop())
}

/// Shipment rows as parcels, with their orders' destinations (read in one query), each with
/// its order's id.
async fn parcels_from_rows(db: &Db, rows: Vec<ParcelRow>) -> anyhow::Result<Vec<(String, Parcel)>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.order_id.as_str()).collect();
    let destinations = orders::destinations(db, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let destination_country = destinations.get(&r.order_id).cloned();
            (
                r.order_id,
                Parcel {
                    shipment_id: r.id,
                    carrier_code: r.carrier_code,
                    tracking_number: r.tracking_number,
                    destination_country,
                    shipped_at: r.shipped_at_ms,
                },
            )
        })
        .collect())
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
            shipments::register(
                &mut tx,
                &parcel.shipment_id,
                &carrier.id,
                registration.carrier_code.as_deref(),
                registration.external_id.as_deref(),
            )
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
    let rows = shipments::followed_by(db, connection_id, after, limit).await?;
    Ok(parcels_from_rows(db, rows)
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
        let tracked = shipments::with_tracking_number(tx, &update.tracking_number).await?;
        if tracked.is_empty() {
            applied.summaries.push(json!({ "tracking_number": update.tracking_number, "result": "unknown_tracking_number" }));
            continue;
        }
        for row in tracked {
            let shipment_id = row.id;
            let order_id = row.order_id;
            let previous = row.tracking_status;
            let previous_detail = row.tracking_detail;
            let previous_at = row.tracking_updated_at_ms;
            applied.order_id.get_or_insert_with(|| order_id.clone());
            let mut new_events = 0;
            for event in &update.events {
                new_events += shipments::record_scan(
                    tx,
                    NewScan {
                        shipment_id: &shipment_id,
                        status: status_name(event.status),
                        detail: event.detail.map(detail_name),
                        description: &event.description,
                        location: event.location.as_deref(),
                        occurred_at_ms: event.occurred_at,
                        raw_request_id: raw_id,
                    },
                )
                .await?;
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
                shipments::set_tracking(
                    tx,
                    &shipment_id,
                    Tracking {
                        status,
                        detail,
                        at_ms: at,
                        estimated_delivery_ms: update.estimated_delivery,
                        delivered_at_ms: update.delivered_at,
                    },
                )
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
    let undelivered = shipments::undelivered_of_order(tx, order_id).await?;
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

/// The jobs of this stage: a shipment's registration with a tracking service.
pub fn jobs() -> Vec<Handler> {
    vec![Handler {
        kind: JobKind::CarrierRegister,
        prepare: None,
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
