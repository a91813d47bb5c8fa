//! The service clocks of the handbooks (001-004), and the exception queue they open tasks in.
//! A clock is a job due when its time runs out (so it survives restarts and runs once however
//! many gateway processes share the database); when it runs it checks whether what it watches
//! happened, and opens a task when not. Events open tasks too (a parcel at the destination's
//! customs). The refund queue is swept at the policy's times of day, shop time. The queue
//! itself is `crate::store::tasks`.

use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::policy::AfterSalesPolicy;
use crate::services::Services;
use crate::store::jobs::{self, ClaimedJob, JobKind, NewJob, Outcome};
use crate::store::{cases, orders, shipments};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub use crate::clocks::{Clock, KINDS, on_case_opened, schedule};

pub use crate::store::tasks::open as open_task;

/// A clock's job: what it watches happened, or a task is opened.
pub async fn run(state: &Services, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let Some(clock) = Clock::of(job.kind) else {
        return Ok(Outcome::Refused {
            kind: "unknown".into(),
            error: format!("{} is not a clock", job.kind.as_str()),
        });
    };
    let subject = job.subject_id.as_str();
    let order_id = job.order_id.clone().unwrap_or_default();
    let mut tx = state.db.begin().await?;
    let key = format!("{}.{subject}", job.kind.as_str());
    match clock {
        Clock::Ship => {
            let (shipped, _) = shipments::count_of(&mut tx, subject).await?;
            let status = orders::status_in(&mut tx, subject).await?;
            if shipped == 0 && !matches!(status.as_deref(), Some("cancelled") | None) {
                open_task(
                    &mut tx,
                    "ship_late",
                    &key,
                    Some(subject),
                    None,
                    "not shipped within 24 hours of payment: chase the supplier, tell the customer",
                    json!({ "order_status": status }),
                )
                .await?;
            }
        }
        Clock::MarkShipped => {
            let (_, written) = shipments::count_of(&mut tx, subject).await?;
            let status = orders::status_in(&mut tx, subject).await?;
            if written == 0 && !matches!(status.as_deref(), Some("cancelled") | None) {
                open_task(&mut tx, "mark_shipped_late", &key, Some(subject), None,
                    "not marked shipped on the storefront 3 days after the order: get the tracking number from the shipper and mark it shipped",
                    json!({ "order_status": status })).await?;
            }
        }
        Clock::FollowUp | Clock::NoTracking | Clock::DeliveryPromise => {
            if let Some(f) = shipments::followed(&mut tx, subject).await? {
                let (status, scans) = (f.tracking_status, f.scans);
                let delivered = status.as_deref() == Some("delivered");
                let detail = json!({ "shipment_id": subject, "tracking_number": f.tracking_number, "carrier": f.carrier_code, "tracking_status": status });
                match clock {
                    Clock::FollowUp if !delivered => {
                        open_task(
                            &mut tx,
                            "tracking_follow_up",
                            &key,
                            Some(&order_id),
                            None,
                            "check the parcel's tracking and message the customer",
                            detail,
                        )
                        .await?;
                    }
                    Clock::DeliveryPromise if !delivered => {
                        open_task(&mut tx, "extend_receipt", &key, Some(&order_id), None,
                            "not delivered in the promised time: extend the buyer's receipt window on the storefront", detail).await?;
                    }
                    Clock::NoTracking if !delivered && scans == 0 => {
                        open_task(&mut tx, "no_tracking", &key, Some(&order_id), None,
                            "no tracking and not received after 40 days: ask the customer to check with the local post office, then refund or reship", detail).await?;
                    }
                    _ => {}
                }
            }
        }
        Clock::Refund | Clock::Complaint | Clock::Replacement => {
            if let Some(case) = super::get_in(&mut tx, subject).await? {
                use super::CaseState as S;
                let (late, kind, title) = match clock {
                    Clock::Refund => (
                        case.refunded_minor == 0
                            && !matches!(case.state, S::Rejected | S::Closed | S::Refunded),
                        "refund_late",
                        "not refunded within 24 hours of the request",
                    ),
                    Clock::Complaint => (
                        case.state == S::Requested,
                        "complaint_late",
                        "a customer's request not answered within 24 hours",
                    ),
                    _ => (
                        matches!(case.state, S::Received | S::Inspected),
                        "replacement_late",
                        "the exchange's replacement has not left within 24 hours of receiving the goods back",
                    ),
                };
                if late {
                    open_task(
                        &mut tx,
                        kind,
                        &key,
                        Some(&case.order_id),
                        Some(&case.id),
                        title,
                        json!({ "case_kind": case.kind, "state": case.state }),
                    )
                    .await?;
                }
            }
        }
        Clock::StockOutContact => {
            let open = crate::store::holds::open_unresolved(&mut tx, subject).await?;
            if let Some(order_id) = open {
                open_task(&mut tx, "stock_out_contact", &key, Some(&order_id), None,
                    "a stock-out's customer not contacted within 24 hours: offer an alternative with a discount, a later date, or cancellation",
                    json!({ "hold_id": subject })).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(Outcome::Succeeded)
}

/// Makes sure the next sweep of the refund queue is scheduled (at start, and after each sweep).
/// Its key is its time: however many processes schedule it, it exists once.
pub async fn schedule_sweep(state: &Services, after_ms: i64) -> anyhow::Result<()> {
    let mut conn = state.db.pool.acquire().await?;
    let policy: AfterSalesPolicy = crate::policy::in_scope(&mut conn, &Default::default()).await?;
    drop(conn);
    let at = policy.next_sweep(after_ms).map_err(anyhow::Error::msg)?;
    let mut tx = state.db.begin().await?;
    jobs::enqueue_at(
        &mut tx,
        NewJob {
            kind: JobKind::RefundSweep,
            idempotency_key: format!("refund_sweep.{at}"),
            subject_id: "",
            order_id: "",
            connection_id: "",
        },
        at,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The sweep of the refund queue (10:00 and 16:30 by default): approved refunds not paid yet
/// become one task for the operator; the next sweep is scheduled.
pub async fn run_sweep(state: &Services, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let mut tx = state.db.begin().await?;
    let waiting = cases::awaiting_refund(&mut tx).await?;
    if !waiting.is_empty() {
        open_task(
            &mut tx,
            "refund_queue",
            &job.idempotency_key,
            None,
            None,
            &format!("refund queue: {} refunds waiting", waiting.len()),
            json!({ "cases": waiting.iter().map(|(c, o)| json!({ "case_id": c, "order_id": o })).collect::<Vec<_>>() }),
        )
        .await?;
    }
    tx.commit().await?;
    schedule_sweep(state, now_ms()).await?;
    Ok(Outcome::Succeeded)
}

// ---- API ----

#[derive(Debug, Deserialize)]
pub struct TaskQuery {
    /// `open` (default), `done` or `all`.
    pub status: Option<String>,
    pub order_id: Option<String>,
    pub kind: Option<String>,
}

async fn list(State(state): State<Services>, Query(q): Query<TaskQuery>) -> ApiResult<Json<Value>> {
    let tasks = crate::store::tasks::list(
        &state.db,
        q.status.as_deref().unwrap_or("open"),
        q.order_id.as_deref().unwrap_or(""),
        q.kind.as_deref().unwrap_or(""),
    )
    .await?;
    Ok(Json(json!({ "tasks": tasks })))
}

async fn done(
    State(state): State<Services>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let by = crate::error::operator(&headers);
    if !crate::store::tasks::done(&state.db, &id, &by).await? {
        return Err(ApiError::NotFound(format!("no open task `{id}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> Router<Services> {
    Router::new()
        .route("/tasks", get(list))
        .route("/tasks/{id}/done", post(done))
}
