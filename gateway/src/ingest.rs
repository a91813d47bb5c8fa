//! Where everything enters: `POST /hooks/{connection}`.
//!
//! The raw request (method, path, headers, body) is stored before anything else; a request that
//! cannot be stored is answered 503 so the sender retries (a 200 for something not stored is a
//! lost order). The connection's plugin then verifies and parses it; its canonical events are
//! applied in one transaction with the raw record's new status and the deduplication by the
//! platform's delivery id. Every rejected request stays stored with its reason. This module
//! owns the `raw_requests` and `deliveries` tables.

use crate::app::AppState;
use crate::connections::{self, Connection};
use crate::db::{Conn, Db, Tx, new_id, now_ms};
use crate::fulfilment;
use crate::orders::{self, OrderStatus};
use crate::plugins::LoadError;
use crate::policy::{self, AfterSalesPolicy};
use crate::shadow::{self, Parsed};
use crate::{aftersales, cancellation, routing, tracking};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use daifa_plugin_host::carrier::CarrierInbound;
use daifa_plugin_host::channel::{ChannelEvent, Inbound};
use daifa_plugin_host::supplier::SupplierInbound;
use daifa_plugin_host::{CallError, CallFailure, HttpHeader, InboundRequest, PluginError};
use serde::Serialize;
use serde_json::json;
use sqlx::{AssertSqlSafe, Row};
use std::sync::Arc;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/hooks/{connection}", post(receive))
}

/// What became of a stored request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawStatus {
    /// Stored, not yet processed (or processing failed in a way the sender retries).
    Received,
    Accepted,
    Duplicate,
    Rejected,
    Failed,
}

impl RawStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// The answer to the sender, and what the raw record says of it.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub raw_status: RawStatus,
    pub body: serde_json::Value,
    pub reason: Option<String>,
}

impl Answer {
    fn error(status: StatusCode, raw_status: RawStatus, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            status,
            raw_status,
            body: json!({ "error": reason }),
            reason: Some(reason),
        }
    }
}

async fn receive(
    State(state): State<AppState>,
    Path(connection_name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = InboundRequest {
        method: method.to_string(),
        path: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_else(|| uri.path().to_string()),
        headers: headers
            .iter()
            .map(|(n, v)| HttpHeader {
                name: n.as_str().to_string(),
                value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
            })
            .collect(),
        body: body.to_vec(),
    };
    let raw_id = new_id("raw");
    if let Err(e) = store_raw(
        &state.db,
        &raw_id,
        &connection_name,
        &request,
        Origin::Webhook,
    )
    .await
    {
        tracing::error!(connection = %connection_name, error = %e, "cannot store inbound request");
        let body = json!({ "error": "the request could not be stored; send it again later" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let connection = match connections::by_name(&state.db, &connection_name).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(raw_request_id = %raw_id, error = format!("{e:#}"), "cannot look up the connection");
            let body = json!({ "error": "the request was stored but could not be processed; send it again later", "raw_request_id": raw_id });
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    // Names that match no connection share one label: random paths cannot create label values.
    let label = connection
        .as_ref()
        .map_or_else(|| "unknown".to_string(), |c| c.name.clone());
    let plugin_version = connection.as_ref().map(|c| c.plugin_version.clone());
    let answer = match process(&state, &raw_id, &connection_name, connection, &request).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(raw_request_id = %raw_id, connection = %connection_name, error = format!("{e:#}"), "cannot process inbound request");
            // The raw request stays `received`: nothing of it was applied, the sender retries.
            let body = json!({ "error": "the request was stored but could not be processed; send it again later", "raw_request_id": raw_id });
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    if answer.raw_status != RawStatus::Accepted
        && answer.raw_status != RawStatus::Duplicate
        && let Err(e) = mark_raw(
            &state.db,
            &raw_id,
            answer.raw_status,
            answer.status,
            answer.reason.as_deref(),
            plugin_version.as_deref(),
        )
        .await
    {
        tracing::error!(raw_request_id = %raw_id, error = %e, "cannot record why a request was rejected");
    }
    metrics::counter!("daifa_inbound_requests_total", "connection" => label, "outcome" => answer.raw_status.as_str()).increment(1);
    let mut body = answer.body;
    body["raw_request_id"] = json!(raw_id);
    (answer.status, Json(body)).into_response()
}

async fn process(
    state: &AppState,
    raw_id: &str,
    connection_name: &str,
    connection: Option<Connection>,
    request: &InboundRequest,
) -> anyhow::Result<Answer> {
    let Some(connection) = connection else {
        return Ok(Answer::error(
            StatusCode::NOT_FOUND,
            RawStatus::Rejected,
            format!("no connection named `{connection_name}`"),
        ));
    };
    if !connection.enabled {
        return Ok(Answer::error(
            StatusCode::NOT_FOUND,
            RawStatus::Rejected,
            format!("connection `{connection_name}` is disabled"),
        ));
    }
    let plugin = match state
        .plugins
        .get(&connection.plugin, &connection.plugin_version)
        .await
    {
        Ok(plugin) => plugin,
        Err(LoadError::Internal(e)) => return Err(e),
        Err(e) => {
            return Ok(Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                RawStatus::Failed,
                format!("connection `{connection_name}`: {e}"),
            ));
        }
    };
    let ctx = match connection.context(&state.secrets, &plugin) {
        Ok(ctx) => Arc::new(ctx),
        Err(e) => {
            return Ok(Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                RawStatus::Failed,
                e.to_string(),
            ));
        }
    };
    let parsed = match state.native_parsers.get(&connection.plugin) {
        Some(native) => native(&ctx, request),
        None => shadow::parse(&plugin, connection.kind, ctx, request).await,
    };
    if connection.shadow_plugin_version.is_some() {
        shadow::spawn(
            state,
            &connection,
            raw_id,
            request,
            shadow::canonical(&parsed),
        );
    }
    match parsed {
        Ok(parsed) => apply(state, &connection, raw_id, parsed, Origin::Webhook).await,
        Err(failure) => Ok(plugin_failure(&connection, failure)),
    }
}

/// Where a stored request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `POST /hooks/{connection}`.
    Webhook,
    /// What polling fetched through the plugin.
    Poll,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Poll => "poll",
        }
    }
}

/// Applies what a plugin made of a stored request (a webhook, or a poll's answers).
pub(crate) async fn apply(
    state: &AppState,
    connection: &Connection,
    raw_id: &str,
    parsed: Parsed,
    origin: Origin,
) -> anyhow::Result<Answer> {
    match parsed {
        Parsed::Channel(inbound) => apply_channel(state, connection, raw_id, inbound).await,
        Parsed::Supplier(inbound) => {
            apply_supplier(state, connection, raw_id, inbound, origin).await
        }
        Parsed::Carrier(inbound) => apply_carrier(state, connection, raw_id, inbound).await,
    }
}

/// Applies a poll's events under its stored raw record, and records a refusal on it.
pub(crate) async fn apply_polled(
    state: &AppState,
    connection: &Connection,
    raw_id: &str,
    parsed: Parsed,
) -> anyhow::Result<Answer> {
    let answer = apply(state, connection, raw_id, parsed, Origin::Poll).await?;
    if answer.raw_status == RawStatus::Rejected {
        mark_raw(
            &state.db,
            raw_id,
            answer.raw_status,
            answer.status,
            answer.reason.as_deref(),
            Some(&connection.plugin_version),
        )
        .await?;
    }
    Ok(answer)
}

/// Maps a plugin's failure to the answer: the sender can fix 401 and 422; 5xx makes it retry.
fn plugin_failure(connection: &Connection, failure: CallFailure) -> Answer {
    tracing::info!(connection = %connection.name, plugin = %connection.plugin, kind = failure.error.kind(), error = %failure.error, "inbound request rejected");
    let message = failure.error.to_string();
    match &failure.error {
        CallError::Plugin(PluginError::BadSignature(_)) => {
            Answer::error(StatusCode::UNAUTHORIZED, RawStatus::Rejected, message)
        }
        CallError::Plugin(PluginError::BadPayload(_) | PluginError::Unsupported(_)) => {
            Answer::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                RawStatus::Rejected,
                message,
            )
        }
        CallError::Plugin(PluginError::Transient(_)) => {
            Answer::error(StatusCode::SERVICE_UNAVAILABLE, RawStatus::Failed, message)
        }
        // A permanent error on an inbound request is the connection's set-up (a missing secret):
        // the sender's retry will work once the operator fixed it.
        CallError::Plugin(PluginError::Permanent(_)) => Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            RawStatus::Failed,
            message,
        ),
        CallError::InputTooLarge { .. } => {
            Answer::error(StatusCode::PAYLOAD_TOO_LARGE, RawStatus::Rejected, message)
        }
        CallError::Trap(_)
        | CallError::Deadline(_)
        | CallError::Instantiate(_)
        | CallError::OutputTooLarge { .. } => Answer::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            RawStatus::Failed,
            format!("the connection's plugin failed: {message}"),
        ),
    }
}

/// One inbound delivery being applied.
struct Delivery<'a> {
    raw_id: &'a str,
    connection_id: &'a str,
    delivery_id: &'a Option<String>,
    topic: &'a Option<String>,
}

impl Delivery<'_> {
    /// Begins the transaction that applies the delivery, or answers a redelivery (the same
    /// platform delivery id seen before for this connection) without applying anything.
    async fn begin(&self, db: &Db) -> anyhow::Result<Result<Tx, Answer>> {
        let mut tx = db.begin().await?;
        if let Some(delivery_id) = self.delivery_id
            && !claim_delivery(&mut tx, self.connection_id, delivery_id, self.raw_id).await?
        {
            finish_raw(
                &mut tx,
                self.raw_id,
                RawStatus::Duplicate,
                self.delivery_id,
                self.topic,
                None,
                self.connection_id,
            )
            .await?;
            tx.commit().await?;
            let answer = Answer {
                status: StatusCode::OK,
                raw_status: RawStatus::Duplicate,
                body: json!({ "status": "duplicate" }),
                reason: None,
            };
            return Ok(Err(answer));
        }
        Ok(Ok(tx))
    }

    /// Marks the raw request accepted and commits everything the delivery applied.
    async fn commit(
        &self,
        mut tx: Tx,
        order_id: Option<&str>,
        body: serde_json::Value,
    ) -> anyhow::Result<Answer> {
        finish_raw(
            &mut tx,
            self.raw_id,
            RawStatus::Accepted,
            self.delivery_id,
            self.topic,
            order_id,
            self.connection_id,
        )
        .await?;
        tx.commit().await?;
        Ok(Answer {
            status: StatusCode::OK,
            raw_status: RawStatus::Accepted,
            body,
            reason: None,
        })
    }
}

/// Records the delivery id; false when it was seen before for this connection.
async fn claim_delivery(
    tx: &mut Tx,
    connection_id: &str,
    delivery_id: &str,
    raw_id: &str,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "insert into deliveries (connection_id, delivery_id, raw_request_id) values ($1, $2, $3) \
         on conflict (connection_id, delivery_id) do nothing",
    )
    .bind(connection_id)
    .bind(delivery_id)
    .bind(raw_id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Debug, Default, Serialize)]
struct Applied {
    orders: Vec<serde_json::Value>,
}

async fn apply_channel(
    state: &AppState,
    connection: &Connection,
    raw_id: &str,
    inbound: Inbound,
) -> anyhow::Result<Answer> {
    for event in &inbound.events {
        if let ChannelEvent::OrderPlaced(order) = event
            && let Err(reason) = validate_order(order)
        {
            return Ok(Answer::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                RawStatus::Rejected,
                format!(
                    "plugin `{}` produced an invalid order: {reason}",
                    connection.plugin
                ),
            ));
        }
    }
    let delivery = Delivery {
        raw_id,
        connection_id: &connection.id,
        delivery_id: &inbound.delivery_id,
        topic: &inbound.topic,
    };
    let mut tx = match delivery.begin(&state.db).await? {
        Ok(tx) => tx,
        Err(duplicate) => return Ok(duplicate),
    };
    let mut applied = Applied::default();
    let mut first_order_id = None;
    for event in &inbound.events {
        match event {
            ChannelEvent::OrderPlaced(order) => {
                let (order_id, is_new) =
                    orders::insert_or_find(&mut tx, &connection.id, order, raw_id).await?;
                first_order_id.get_or_insert_with(|| order_id.clone());
                let detail = json!({ "raw_request_id": raw_id, "topic": inbound.topic, "external_id": order.external_id });
                if is_new {
                    orders::record_event(&mut tx, &order_id, "order.received", detail).await?;
                    // The storefront sends orders once paid: the shipping clocks start.
                    let policy: AfterSalesPolicy =
                        policy::effective(&mut tx, Some(&connection.name)).await?;
                    aftersales::clocks::on_order_paid(&mut tx, &policy, &order_id, now_ms())
                        .await?;
                    let decision = routing::route(
                        &mut tx,
                        routing::Request {
                            channel_connection_id: &connection.id,
                            channel_name: &connection.name,
                            order_id: &order_id,
                            order,
                            trigger: routing::Trigger::Route,
                            allow_partial: false,
                            replaces: None,
                            reship: None,
                        },
                    )
                    .await?;
                    let status = match decision.outcome {
                        routing::Outcome::Route { .. } => "routed",
                        routing::Outcome::Hold { .. } => "on_hold",
                    };
                    applied.orders.push(json!({ "order_id": order_id, "external_id": order.external_id, "status": status }));
                } else {
                    // Storefronts resend orders (and send orders/updated); the first copy rules.
                    orders::record_event(&mut tx, &order_id, "order.received_again", detail)
                        .await?;
                    applied.orders.push(json!({ "order_id": order_id, "external_id": order.external_id, "status": "duplicate" }));
                }
            }
            ChannelEvent::CaseOpened(request) => {
                let summary =
                    aftersales::from_storefront(&mut tx, &connection.id, raw_id, request).await?;
                if let Some(order_id) = summary["order_id"].as_str() {
                    first_order_id.get_or_insert_with(|| order_id.to_string());
                }
                applied.orders.push(summary);
            }
            ChannelEvent::OrderCancelled(cancel) => {
                match orders::find_by_external_id(&mut tx, &connection.id, &cancel.external_id)
                    .await?
                {
                    Some(order) => {
                        first_order_id.get_or_insert_with(|| order.id.clone());
                        let status = if order.status == OrderStatus::Cancelled.as_str() {
                            orders::record_event(
                                &mut tx,
                                &order.id,
                                "order.cancelled_again",
                                json!({ "raw_request_id": raw_id }),
                            )
                            .await?;
                            "cancelled"
                        } else {
                            let done = cancellation::cancel_order(
                                &mut tx,
                                &order.id,
                                cancellation::By::Storefront {
                                    raw_request_id: raw_id,
                                },
                                cancel.reason.as_deref(),
                            )
                            .await?;
                            if done.cancelled {
                                "cancelled"
                            } else {
                                "cancelled_after_shipping"
                            }
                        };
                        applied.orders.push(json!({ "order_id": order.id, "external_id": cancel.external_id, "status": status }));
                    }
                    None => applied.orders.push(
                        json!({ "external_id": cancel.external_id, "status": "unknown_order" }),
                    ),
                }
            }
        }
    }
    let answer = delivery
        .commit(
            tx,
            first_order_id.as_deref(),
            json!({ "status": "accepted", "orders": applied.orders }),
        )
        .await?;
    state.wake_workers();
    Ok(answer)
}

fn validate_order(order: &daifa_plugin_host::Order) -> Result<(), String> {
    if order.external_id.trim().is_empty() {
        return Err("external id is empty".into());
    }
    if order.currency.len() != 3 || !order.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "currency `{}` is not an ISO 4217 code",
            order.currency
        ));
    }
    if let Some(a) = &order.shipping_address
        && (a.country_code.len() != 2 || !a.country_code.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(format!(
            "country `{}` is not an ISO 3166 alpha-2 code",
            a.country_code
        ));
    }
    for line in &order.lines {
        if line.external_line_id.trim().is_empty() {
            return Err("a line has an empty external id".into());
        }
    }
    Ok(())
}

/// A supplier's webhook naming an order that is not theirs is refused whole; a poll's answer
/// may list orders placed outside Daifa, which are skipped.
async fn apply_supplier(
    state: &AppState,
    connection: &Connection,
    raw_id: &str,
    inbound: SupplierInbound,
    origin: Origin,
) -> anyhow::Result<Answer> {
    let delivery = Delivery {
        raw_id,
        connection_id: &connection.id,
        delivery_id: &inbound.delivery_id,
        topic: &None,
    };
    let mut tx = match delivery.begin(&state.db).await? {
        Ok(tx) => tx,
        Err(duplicate) => return Ok(duplicate),
    };
    let mut results = Vec::new();
    let mut first_order_id = None;
    for event in &inbound.events {
        match fulfilment::apply_supplier_event(&mut tx, connection, raw_id, event).await? {
            Ok(applied) => {
                if let Some(order_id) = applied.order_id {
                    first_order_id.get_or_insert(order_id);
                }
                results.push(applied.summary);
            }
            Err(reason) if origin == Origin::Poll => {
                results.push(json!({ "event": "skipped", "reason": reason }));
            }
            Err(reason) => {
                // Nothing of this request is applied; the record of it stays, with the reason.
                drop(tx);
                return Ok(Answer::error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    RawStatus::Rejected,
                    reason,
                ));
            }
        }
    }
    let answer = delivery
        .commit(
            tx,
            first_order_id.as_deref(),
            json!({ "status": "accepted", "events": results }),
        )
        .await?;
    state.wake_workers();
    Ok(answer)
}

async fn apply_carrier(
    state: &AppState,
    connection: &Connection,
    raw_id: &str,
    inbound: CarrierInbound,
) -> anyhow::Result<Answer> {
    if let Err(reason) = tracking::validate(&inbound.updates) {
        return Ok(Answer::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            RawStatus::Rejected,
            format!(
                "plugin `{}` produced an invalid update: {reason}",
                connection.plugin
            ),
        ));
    }
    let delivery = Delivery {
        raw_id,
        connection_id: &connection.id,
        delivery_id: &inbound.delivery_id,
        topic: &inbound.topic,
    };
    let mut tx = match delivery.begin(&state.db).await? {
        Ok(tx) => tx,
        Err(duplicate) => return Ok(duplicate),
    };
    let applied = tracking::apply_updates(&mut tx, connection, raw_id, &inbound.updates).await?;
    delivery
        .commit(
            tx,
            applied.order_id.as_deref(),
            json!({ "status": "accepted", "updates": applied.summaries }),
        )
        .await
}

// ---- the raw_requests table ----

/// Stores a request before anything else is done with it.
pub(crate) async fn store_raw(
    db: &Db,
    id: &str,
    connection_name: &str,
    request: &InboundRequest,
    origin: Origin,
) -> anyhow::Result<()> {
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect();
    sqlx::query(
        "insert into raw_requests (id, connection_name, method, path, headers, body, received_at_ms, status, origin) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(connection_name)
    .bind(&request.method)
    .bind(&request.path)
    .bind(serde_json::to_string(&headers)?)
    .bind(request.body.clone())
    .bind(now_ms())
    .bind(RawStatus::Received.as_str())
    .bind(origin.as_str())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Records on a poll's raw record what its plugin fetched but could not translate.
pub(crate) async fn note_skipped(db: &Db, id: &str, skipped: &[String]) -> sqlx::Result<()> {
    sqlx::query("update raw_requests set reason = $1 where id = $2")
        .bind(format!("skipped {}: {}", skipped.len(), skipped.join("; ")))
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Records on a poll's raw record that the plugin's call failed (nothing was applied).
pub(crate) async fn mark_polled_failure(
    db: &Db,
    id: &str,
    reason: &str,
    plugin_version: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "update raw_requests set status = $1, reason = $2, plugin_version = $3 where id = $4",
    )
    .bind(RawStatus::Failed.as_str())
    .bind(reason)
    .bind(plugin_version)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

async fn mark_raw(
    db: &Db,
    id: &str,
    status: RawStatus,
    code: StatusCode,
    reason: Option<&str>,
    plugin_version: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("update raw_requests set status = $1, status_code = $2, reason = $3, plugin_version = $4 where id = $5")
        .bind(status.as_str())
        .bind(i64::from(code.as_u16()))
        .bind(reason)
        .bind(plugin_version)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

async fn finish_raw(
    tx: &mut Tx,
    id: &str,
    status: RawStatus,
    delivery_id: &Option<String>,
    topic: &Option<String>,
    order_id: Option<&str>,
    connection_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "update raw_requests set status = $1, status_code = 200, delivery_id = $2, topic = $3, order_id = $4, connection_id = $5, \
         plugin_version = (select plugin_version from connections where id = $5) where id = $6",
    )
    .bind(status.as_str())
    .bind(delivery_id.as_deref())
    .bind(topic.as_deref())
    .bind(order_id)
    .bind(connection_id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A stored request as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct RawRequestView {
    pub id: String,
    pub connection_name: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body as text when it is UTF-8, else base64 in `body_base64`.
    pub body: Option<String>,
    pub body_base64: Option<String>,
    pub received_at_ms: i64,
    pub status: String,
    pub status_code: Option<i64>,
    pub reason: Option<String>,
    /// The plugin version that handled it.
    pub plugin_version: Option<String>,
    pub delivery_id: Option<String>,
    pub topic: Option<String>,
    pub order_id: Option<String>,
}

const RAW_COLUMNS: &str = "id, connection_name, method, path, headers, body, received_at_ms, status, status_code, reason, delivery_id, topic, order_id, plugin_version";

fn raw_from_row(r: &sqlx::any::AnyRow) -> anyhow::Result<RawRequestView> {
    use base64::Engine;
    let body: Vec<u8> = r.try_get("body")?;
    let (text, b64) = match String::from_utf8(body) {
        Ok(s) => (Some(s), None),
        Err(e) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes())),
        ),
    };
    Ok(RawRequestView {
        id: r.try_get("id")?,
        connection_name: r.try_get("connection_name")?,
        method: r.try_get("method")?,
        path: r.try_get("path")?,
        headers: serde_json::from_str(&r.try_get::<String, _>("headers")?)?,
        body: text,
        body_base64: b64,
        received_at_ms: r.try_get("received_at_ms")?,
        status: r.try_get("status")?,
        status_code: r.try_get("status_code")?,
        plugin_version: r.try_get("plugin_version")?,
        reason: r.try_get("reason")?,
        delivery_id: r.try_get("delivery_id")?,
        topic: r.try_get("topic")?,
        order_id: r.try_get("order_id")?,
    })
}

pub async fn raw_for_order(conn: &mut Conn, order_id: &str) -> anyhow::Result<Vec<RawRequestView>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {RAW_COLUMNS} from raw_requests where order_id = $1 order by received_at_ms, id"
    )))
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(raw_from_row).collect()
}

/// Stored requests, newest first, optionally of one connection and one status.
pub async fn list_raw(
    db: &Db,
    connection: Option<&str>,
    status: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<RawRequestView>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {RAW_COLUMNS} from raw_requests where ($1 = '' or connection_name = $1) and ($2 = '' or status = $2) \
         order by received_at_ms desc, id desc limit $3"
    )))
    .bind(connection.unwrap_or(""))
    .bind(status.unwrap_or(""))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(raw_from_row).collect()
}
