//! The admin API's read side: orders with their timeline, stored requests, the job queue; and
//! the operator's actions that span stages (cancel an order, resolve a stock-out: routing and
//! the one cancellation).

use crate::error::{ApiError, ApiResult};
use crate::ingest::reprocess::Reprocessed;
use crate::routing::holds::{self, Choice, Resolved};
use crate::services::Services;
use crate::store::{decisions, jobs, orders, raw_requests, shipments, supplier_orders};
use crate::{cancellation, ingest, routing};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

pub fn router() -> Router<Services> {
    Router::new()
        .route("/orders", get(list_orders))
        .route("/orders/{id}", get(get_order))
        .route("/raw-requests", get(list_raw))
        .route("/raw-requests/{id}/reprocess", post(reprocess_raw))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/{id}/retry", post(retry_job))
        .route("/orders/{id}/cancel", post(cancel_order))
        .route("/holds/{id}/resolve", post(resolve_hold))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// The operator's words, kept on the timeline and given to the storefront as a staff note.
    #[serde(default)]
    pub reason: Option<String>,
    /// Why, as storefronts record it: `customer`, `inventory`, `fraud`, `declined` or `other`
    /// (the default).
    #[serde(default)]
    pub cause: cancellation::Cause,
}

/// `POST /orders/{id}/cancel`: the operator cancels an order that has not shipped.
async fn cancel_order(
    State(state): State<Services>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Option<Json<CancelBody>>,
) -> ApiResult<Json<serde_json::Value>> {
    let by = operator(&headers);
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let mut tx = state.db.begin().await?;
    let order = orders::get_in(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no order `{id}`")))?;
    cancellation::by_operator(&mut tx, &order, &by, body.cause, body.reason.as_deref()).await?;
    tx.commit().await?;
    state.wake_workers();
    Ok(Json(json!({ "order_id": id, "status": "cancelled" })))
}

/// `POST /holds/{id}/resolve`: the customer's choice for a stock-out.
async fn resolve_hold(
    State(state): State<Services>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(choice): Json<Choice>,
) -> ApiResult<Json<serde_json::Value>> {
    let by = operator(&headers);
    let mut tx = state.db.begin().await?;
    let answer = match holds::resolve(&mut tx, &id, &by, choice).await? {
        Resolved::Done(answer) => answer,
        // The customer chose to cancel because nothing can ship it.
        Resolved::Cancel { order, reason } => {
            let cause = cancellation::Cause::Inventory;
            cancellation::by_operator(&mut tx, &order, &by, cause, reason.as_deref()).await?;
            json!({ "hold_id": id, "status": "cancelled" })
        }
    };
    tx.commit().await?;
    state.wake_workers();
    Ok(Json(answer))
}

/// Requires `Authorization: Bearer <admin_token>` when a token is configured; refuses JSON
/// bodies holding a NUL character.
pub fn authorized(api: Router<Services>, state: Services) -> Router<Services> {
    api.layer(middleware::from_fn_with_state(state.clone(), refuse_nul))
        .layer(middleware::from_fn_with_state(state, require_token))
}

/// A JSON body whose text holds a NUL character (`\u0000`) is answered 422 before any handler
/// sees it: no database stores it in text (PostgreSQL refuses it, and the request would fail
/// with a 500 in the middle of its transaction).
async fn refuse_nul(State(state): State<Services>, request: Request, next: Next) -> Response {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, state.settings.ingest.max_body_bytes).await else {
        return ApiError::PayloadTooLarge(format!(
            "the body is larger than {} bytes (ingest.max_body_bytes)",
            state.settings.ingest.max_body_bytes
        ))
        .into_response();
    };
    if crate::db::escapes_nul(&String::from_utf8_lossy(&bytes)) {
        return ApiError::Unprocessable(
            "text in the body holds a NUL character (\\u0000), which cannot be stored".into(),
        )
        .into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

async fn require_token(State(state): State<Services>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.settings.admin_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()));
        if !ok {
            return ApiError::Unauthorized("a valid admin bearer token is required".into())
                .into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn health(State(state): State<Services>) -> Response {
    match state.db.ping().await {
        Ok(_) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "plugin_allocator": state.plugins.allocator() })),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "database unavailable", "error": e.to_string() })),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    connection: Option<String>,
    limit: Option<i64>,
}

impl ListQuery {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

async fn list_orders(
    State(state): State<Services>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let list = orders::list(&state.db, q.status.as_deref(), q.limit()).await?;
    let items: Vec<_> = list
        .into_iter()
        .map(|o| {
            json!({ "id": o.id, "external_id": o.external_id, "order_number": o.order_number, "storefront": o.storefront,
                    "status": o.status, "hold_reason": o.hold_reason, "currency": o.currency, "total_minor": o.total_minor,
                    "placed_at_ms": o.placed_at_ms, "created_at_ms": o.created_at_ms })
        })
        .collect();
    Ok(Json(json!({ "orders": items })))
}

pub use crate::error::operator;
/// An order and everything that happened to it: the raw requests that mention it, its
/// canonical events, its supplier orders, jobs with their attempts, shipments and their scans,
/// and every routing decision with its reasons.
async fn get_order(
    State(state): State<Services>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    // One snapshot: the parts of the view never disagree (a status without its scans).
    let mut tx = state.db.snapshot().await?;
    let order = orders::get_in(&mut tx, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no order `{id}`")))?;
    let events = orders::events(&mut tx, &id).await?;
    let raw = raw_requests::for_order(&mut tx, &id).await?;
    let supplier_orders = supplier_orders::of_order(&mut tx, &id).await?;
    let jobs = jobs::for_order(&mut tx, &id).await?;
    let shipments = shipments::of_order(&mut tx, &id).await?;
    let tracking_events = shipments::scans_of_order(&mut tx, &id).await?;
    let decisions = decisions::of_order(&mut tx, &id).await?;
    tx.rollback().await?;
    Ok(Json(json!({
        "order": order,
        "timeline": events,
        "raw_requests": raw,
        "supplier_orders": supplier_orders,
        "jobs": jobs,
        "shipments": shipments,
        "tracking_events": tracking_events,
        "routing_decisions": decisions,
    })))
}

async fn list_raw(
    State(state): State<Services>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let list = raw_requests::list(
        &state.db,
        q.connection.as_deref(),
        q.status.as_deref(),
        q.limit(),
    )
    .await?;
    Ok(Json(json!({ "raw_requests": list })))
}

/// Processes a stored webhook again, now, as if it had just come in: one the sweeper has not
/// got to or gave up on, or one refused because of the connection's set-up (a wrong secret,
/// fixed since). What was applied is never applied again.
async fn reprocess_raw(
    State(state): State<Services>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    match ingest::reprocess::by_operator(&state, &id).await {
        Ok(Reprocessed::Done {
            status,
            status_code,
            answer,
        }) => Ok(Json(json!({
            "raw_request_id": id,
            "status": status,
            "status_code": status_code,
            "answer": answer,
        }))),
        Ok(Reprocessed::Unknown) => Err(ApiError::NotFound(format!("no raw request `{id}`"))),
        Ok(Reprocessed::Applied(status)) => Err(ApiError::Conflict(format!(
            "raw request `{id}` is {status}: it was applied, and is not applied twice"
        ))),
        Ok(Reprocessed::Poll) => Err(ApiError::Conflict(format!(
            "raw request `{id}` is a poll's record: the next poll fetches what it held again"
        ))),
        Err(e) => {
            tracing::error!(raw_request_id = %id, error = format!("{e:#}"), "cannot process a stored request again");
            Err(ApiError::Unavailable(
                "the request could not be processed; try again later".into(),
            ))
        }
    }
}

async fn list_jobs(
    State(state): State<Services>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let status = q.status.as_deref().unwrap_or("dead");
    if jobs::JobStatus::parse(status).is_none() {
        return Err(ApiError::BadRequest(format!(
            "unknown job status `{status}`: use queued, running, succeeded, dead or withdrawn"
        )));
    }
    Ok(Json(
        json!({ "jobs": jobs::with_status(&state.db, status).await? }),
    ))
}

async fn get_job(
    State(state): State<Services>,
    Path(id): Path<String>,
) -> ApiResult<Json<jobs::JobView>> {
    Ok(Json(jobs::get(&state.db, &id).await?.ok_or_else(|| {
        ApiError::NotFound(format!("no job `{id}`"))
    })?))
}

async fn retry_job(
    State(state): State<Services>,
    Path(id): Path<String>,
) -> ApiResult<Json<jobs::JobView>> {
    let mut tx = state.db.begin().await?;
    let Some((kind, subject)) = jobs::retry_dead(&mut tx, &id).await? else {
        drop(tx);
        return match jobs::get(&state.db, &id).await? {
            None => Err(ApiError::NotFound(format!("no job `{id}`"))),
            Some(j) => Err(ApiError::Conflict(format!(
                "job `{id}` is {}, only dead jobs can be retried",
                j.status
            ))),
        };
    };
    // A dead push had failed its supplier order over: retried, the order takes its lines back,
    // in the same transaction, or a worker could claim the push first and find nothing to send.
    if kind == jobs::JobKind::SupplierSubmit.as_str()
        && let Some(subject) = subject
        && let routing::Revival::LinesTaken(by) = routing::revive(&mut tx, &subject).await?
    {
        drop(tx);
        return Err(ApiError::Conflict(format!(
            "job `{id}` pushes supplier order `{subject}`, whose lines went to {} since: pushing it again would ship them twice",
            by.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    tx.commit().await?;
    state.wake_workers();
    tracing::info!(job_id = %id, "dead job put back in the queue");
    Ok(Json(jobs::get(&state.db, &id).await?.ok_or_else(|| {
        ApiError::NotFound(format!("no job `{id}`"))
    })?))
}
