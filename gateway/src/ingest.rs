//! Where everything enters: `POST /hooks/{connection}`.
//!
//! The raw request (method, path, headers, body) is stored before anything else; a request that
//! cannot be stored is answered 503 so the sender retries (a 200 for something not stored is a
//! lost order). The connection's plugin then verifies and parses it; its canonical events are
//! applied in one transaction with the raw record's new status and the deduplication by the
//! platform's delivery id. Every rejected request stays stored with its reason. A request
//! stored but not processed is processed again by the sweeper ([`reprocess`]). The raw
//! requests and the delivery ids are kept by [`crate::store::raw_requests`].

use crate::db::{Db, Tx, new_id, now_ms};
use crate::plugins::LoadError;
use crate::plugins::Parsed;
use crate::services::Services;
use crate::shadow;
use crate::store::connections::{self, Connection};
use crate::store::orders::{self, OrderStatus};
use crate::store::raw_requests::{self, Origin, RawRequest, RawStatus};
use crate::{aftersales, cancellation, changes, routing, tracking};
use anyhow::Context;
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
use std::sync::Arc;
use std::time::Duration;

pub mod reprocess;
pub mod supplier_events;

pub fn router() -> axum::Router<Services> {
    axum::Router::new().route("/hooks/{connection}", post(receive))
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
    State(state): State<Services>,
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
    let stored = Stored {
        raw_id: &raw_id,
        connection_name: &connection_name,
        request: &request,
        received_at_ms: None,
    };
    let processed = match process_stored(&state, stored, OnServerError::MarkFailed).await {
        Ok(processed) => processed,
        Err(e) => {
            tracing::error!(raw_request_id = %raw_id, connection = %connection_name, error = format!("{e:#}"), "cannot process inbound request");
            // The raw request stays `received`: nothing of it was applied. The sender retries,
            // and the sweeper processes it again if the sender does not.
            let body = json!({ "error": "the request was stored but could not be processed; send it again later", "raw_request_id": raw_id });
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
    };
    // Names that match no connection share one label: random paths cannot create label values.
    let label = processed
        .connection
        .unwrap_or_else(|| "unknown".to_string());
    let answer = processed.answer;
    metrics::counter!("daifa_inbound_requests_total", "connection" => label, "outcome" => answer.raw_status.as_str()).increment(1);
    let mut body = answer.body;
    body["raw_request_id"] = json!(raw_id);
    (answer.status, Json(body)).into_response()
}

/// A stored request: what `receive` just stored, or what the sweeper and the operator read back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stored<'a> {
    pub raw_id: &'a str,
    pub connection_name: &'a str,
    pub request: &'a InboundRequest,
    /// When a request processed again was received: the plugin judges it as of then (the
    /// clock it reads is set to that time), so that a signature's age is the age it had on
    /// arrival, not the time it spent waiting. None: the request just came in.
    pub received_at_ms: Option<i64>,
}

/// What a server error (a 5xx answer: the plugin failed, the connection's set-up is incomplete)
/// makes of the raw record. Every other outcome is recorded the same way by every caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnServerError {
    /// `failed`, with the reason: the sender was answered and retries with a copy of its own.
    MarkFailed,
    /// Left `received` for the sweeper, which records why and when it tries again.
    LeaveReceived,
}

/// What processing a stored request came to.
pub(crate) struct Processed {
    pub answer: Answer,
    /// The name of the connection, when there is one by the name the request was sent to.
    pub connection: Option<String>,
}

/// Processes a stored request and records the outcome on its raw record: what `receive` does
/// once the request is stored, and what the sweeper and `POST /api/v1/raw-requests/{id}/reprocess`
/// do with one stored before. An error means nothing was applied and nothing recorded (the
/// database failed): the raw record stays as it was.
pub(crate) async fn process_stored(
    state: &Services,
    stored: Stored<'_>,
    on_server_error: OnServerError,
) -> anyhow::Result<Processed> {
    let connection = connections::by_name(&state.db, stored.connection_name)
        .await
        .context("looking up the connection")?;
    let name = connection.as_ref().map(|c| c.name.clone());
    let plugin_version = connection.as_ref().map(|c| c.plugin_version.clone());
    let answer = process(state, stored, connection).await?;
    // Accepted and duplicate requests were marked in the transaction that applied them.
    let record = match answer.raw_status {
        RawStatus::Accepted | RawStatus::Duplicate => false,
        RawStatus::Failed => on_server_error == OnServerError::MarkFailed,
        RawStatus::Received | RawStatus::Rejected => true,
    };
    if record
        && let Err(e) = raw_requests::record_outcome(
            &state.db,
            stored.raw_id,
            answer.raw_status,
            answer.status.as_u16(),
            answer.reason.as_deref(),
            plugin_version.as_deref(),
        )
        .await
    {
        tracing::error!(raw_request_id = %stored.raw_id, error = %e, "cannot record why a request was rejected");
    }
    Ok(Processed {
        answer,
        connection: name,
    })
}

async fn process(
    state: &Services,
    stored: Stored<'_>,
    connection: Option<Connection>,
) -> anyhow::Result<Answer> {
    let Stored {
        raw_id,
        connection_name,
        request,
        received_at_ms,
    } = stored;
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
        Ok(mut ctx) => {
            ctx.fixed_now_ms = received_at_ms;
            Arc::new(ctx)
        }
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
        None => crate::plugins::parse(&plugin, connection.kind, ctx, request).await,
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

/// Applies what a plugin made of a stored request (a webhook, or a poll's answers).
pub(crate) async fn apply(
    state: &Services,
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
    state: &Services,
    connection: &Connection,
    raw_id: &str,
    parsed: Parsed,
) -> anyhow::Result<Answer> {
    let answer = apply(state, connection, raw_id, parsed, Origin::Poll).await?;
    if answer.raw_status == RawStatus::Rejected {
        raw_requests::record_outcome(
            &state.db,
            raw_id,
            answer.raw_status,
            answer.status.as_u16(),
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
    /// The version of the connection's plugin that parsed it.
    plugin_version: &'a str,
    delivery_id: &'a Option<String>,
    topic: &'a Option<String>,
}

impl Delivery<'_> {
    /// Begins the transaction that applies the delivery, or answers a redelivery (the same
    /// platform delivery id seen before for this connection) without applying anything.
    async fn begin(&self, db: &Db) -> anyhow::Result<Result<Tx, Answer>> {
        let mut tx = db.begin().await?;
        if let Some(delivery_id) = self.delivery_id
            && !raw_requests::claim_delivery(&mut tx, self.connection_id, delivery_id, self.raw_id)
                .await?
        {
            self.finish(&mut tx, RawStatus::Duplicate, None).await?;
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
        self.finish(&mut tx, RawStatus::Accepted, order_id).await?;
        tx.commit().await?;
        Ok(Answer {
            status: StatusCode::OK,
            raw_status: RawStatus::Accepted,
            body,
            reason: None,
        })
    }

    /// Marks the raw request applied, unless a process that took the same stored request did
    /// first (the sweeper and the operator may run one again while an earlier run is still on
    /// it): then the caller's transaction is dropped, and nothing is applied twice.
    async fn finish(
        &self,
        tx: &mut Tx,
        status: RawStatus,
        order_id: Option<&str>,
    ) -> anyhow::Result<()> {
        let applied = raw_requests::Applied {
            raw_id: self.raw_id,
            status,
            delivery_id: self.delivery_id.as_deref(),
            topic: self.topic.as_deref(),
            order_id,
            connection_id: self.connection_id,
            plugin_version: self.plugin_version,
        };
        if raw_requests::mark_applied(tx, &applied).await? {
            Ok(())
        } else {
            Err(AppliedMeanwhile(self.raw_id.to_string()).into())
        }
    }
}

/// A stored request another run applied first.
#[derive(Debug, thiserror::Error)]
#[error("raw request `{0}` was applied meanwhile by another run")]
pub(crate) struct AppliedMeanwhile(pub String);

#[derive(Debug, Default, Serialize)]
struct Applied {
    orders: Vec<serde_json::Value>,
}

async fn apply_channel(
    state: &Services,
    connection: &Connection,
    raw_id: &str,
    inbound: Inbound,
) -> anyhow::Result<Answer> {
    for event in &inbound.events {
        let ChannelEvent::OrderPlaced(order) = event else {
            continue;
        };
        let mut problem = validate_order(order).err();
        if problem.is_none()
            && let Some(line) = order.lines.iter().find(|l| l.quantity == 0)
        {
            // In a later copy, a line of quantity 0 is one the buyer removed (`changes.rs`); a
            // first copy has nothing to remove, and a supplier would be asked to ship nothing.
            let mut read = state.db.snapshot().await?;
            let stored =
                orders::find_by_external_id(&mut read, &connection.id, &order.external_id).await?;
            read.rollback().await?;
            if stored.is_none() {
                problem = Some(format!(
                    "line `{}` has a quantity of 0 in the order's first copy",
                    line.external_line_id
                ));
            }
        }
        if let Some(reason) = problem {
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
        plugin_version: &connection.plugin_version,
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
                    // Paid (or to be paid on delivery): the shipping clocks start. An unpaid
                    // order's start when a later copy says paid (changes.rs).
                    // The policies in force for the order's channel and product category.
                    let context = routing::context::OrderContext::load(&mut tx, &order_id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("order {order_id} was just stored"))?;
                    if orders::payment_committed(order.payment) {
                        crate::clocks::on_order_paid(
                            &mut tx,
                            &context.after_sales,
                            &order_id,
                            now_ms(),
                        )
                        .await?;
                    }
                    let decision = routing::route(
                        &mut tx,
                        routing::Request {
                            channel_connection_id: &connection.id,
                            policy: &context.routing,
                            scope: context.scope(),
                            order_id: &order_id,
                            order,
                            trigger: routing::Trigger::Route,
                            fresh: true,
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
                    // Storefronts resend orders, and send them again when they change
                    // (orders/updated, orders/paid): a later copy is applied.
                    let status = changes::apply_copy(
                        &mut tx,
                        &order_id,
                        order,
                        raw_id,
                        inbound.topic.as_deref(),
                    )
                    .await?;
                    applied.orders.push(json!({ "order_id": order_id, "external_id": order.external_id, "status": status }));
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
                                aftersales::cancelled_after_shipping(
                                    &mut tx,
                                    &order.id,
                                    raw_id,
                                    cancel.reason.as_deref(),
                                )
                                .await?;
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
    for (what, amount) in [
        ("subtotal", &order.subtotal),
        ("shipping", &order.shipping),
        ("tax", &order.tax),
        ("total", &order.total),
    ] {
        if amount.amount_minor < 0 {
            return Err(format!(
                "the order's {what} is negative ({})",
                amount.amount_minor
            ));
        }
    }
    for line in &order.lines {
        let id = &line.external_line_id;
        if id.trim().is_empty() {
            return Err("a line has an empty external id".into());
        }
        // A supplier would be paid for goods the buyer was paid for.
        if line.unit_price.amount_minor < 0 {
            return Err(format!(
                "line `{id}` has a negative price ({} {} in minor units)",
                line.unit_price.amount_minor, line.unit_price.currency
            ));
        }
        if line.unit_price.currency != order.currency {
            return Err(format!(
                "line `{id}` is priced in {}, the order in {}",
                line.unit_price.currency, order.currency
            ));
        }
    }
    Ok(())
}

/// A supplier's webhook naming an order that is not theirs is refused whole; a poll's answer
/// may list orders placed outside Daifa, which are skipped.
async fn apply_supplier(
    state: &Services,
    connection: &Connection,
    raw_id: &str,
    inbound: SupplierInbound,
    origin: Origin,
) -> anyhow::Result<Answer> {
    let delivery = Delivery {
        raw_id,
        connection_id: &connection.id,
        plugin_version: &connection.plugin_version,
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
        match supplier_events::apply(&mut tx, connection, raw_id, event).await? {
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
    state: &Services,
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
        plugin_version: &connection.plugin_version,
        delivery_id: &inbound.delivery_id,
        topic: &inbound.topic,
    };
    let mut tx = match delivery.begin(&state.db).await? {
        Ok(tx) => tx,
        Err(duplicate) => return Ok(duplicate),
    };
    let applied = tracking::apply_updates(&mut tx, connection, raw_id, &inbound.updates).await?;
    for (shipment_id, order_id, detail) in &applied.for_cases {
        aftersales::from_carrier(&mut tx, shipment_id, order_id, *detail).await?;
    }
    delivery
        .commit(
            tx,
            applied.order_id.as_deref(),
            json!({ "status": "accepted", "updates": applied.summaries }),
        )
        .await
}

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
    raw_requests::insert(
        db,
        &raw_requests::NewRawRequest {
            id,
            connection_name,
            method: &request.method,
            path: &request.path,
            headers: &headers,
            body: &request.body,
            origin,
        },
    )
    .await
}

/// A stored request read back to be processed again.
#[derive(Debug, Clone)]
struct StoredRequest {
    pub id: String,
    pub connection_name: String,
    pub request: InboundRequest,
    pub received_at_ms: i64,
    /// The sweeper's attempts at it, this one included.
    pub attempts: i64,
}

impl StoredRequest {
    fn stored(&self) -> Stored<'_> {
        Stored {
            raw_id: &self.id,
            connection_name: &self.connection_name,
            request: &self.request,
            received_at_ms: Some(self.received_at_ms),
        }
    }
}

impl From<RawRequest> for StoredRequest {
    fn from(raw: RawRequest) -> Self {
        Self {
            id: raw.id,
            connection_name: raw.connection_name,
            request: InboundRequest {
                method: raw.method,
                path: raw.path,
                headers: raw
                    .headers
                    .into_iter()
                    .map(|(name, value)| HttpHeader { name, value })
                    .collect(),
                body: raw.body,
            },
            received_at_ms: raw.received_at_ms,
            attempts: raw.attempts,
        }
    }
}

/// A connection's stored webhooks received since `since_ms`, oldest first, at most `limit`
/// (what `daifa replay` runs through another plugin version): id, arrival, request.
pub(crate) async fn stored_webhooks(
    db: &Db,
    connection_name: &str,
    since_ms: i64,
    limit: i64,
) -> anyhow::Result<Vec<(String, i64, InboundRequest)>> {
    Ok(
        raw_requests::webhooks_since(db, connection_name, since_ms, limit)
            .await?
            .into_iter()
            .map(|raw| {
                let s = StoredRequest::from(raw);
                (s.id, s.received_at_ms, s.request)
            })
            .collect(),
    )
}

/// Takes the oldest stale webhook whose next attempt is due, for the sweeper
/// ([`raw_requests::claim_stale`]).
async fn claim_stale(db: &Db, stale_after: Duration) -> anyhow::Result<Option<StoredRequest>> {
    Ok(raw_requests::claim_stale(db, stale_after)
        .await?
        .map(StoredRequest::from))
}

/// Holds a stored webhook for the operator's re-processing, as [`claim_stale`] does for the
/// sweeper, if it may be processed again: a webhook not applied. `Err` says why not.
async fn claim_for_operator(
    db: &Db,
    id: &str,
    hold: Duration,
) -> anyhow::Result<Result<StoredRequest, NotReprocessable>> {
    if let Some(raw) = raw_requests::hold_unapplied_webhook(db, id, hold).await? {
        return Ok(Ok(StoredRequest::from(raw)));
    }
    Ok(Err(match raw_requests::status_and_origin(db, id).await? {
        None => NotReprocessable::Unknown,
        Some((_, origin)) if origin == Origin::Poll.as_str() => NotReprocessable::Poll,
        Some((status, _)) => NotReprocessable::Applied(status),
    }))
}

/// Why a stored request is not processed again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NotReprocessable {
    Unknown,
    /// It was applied (`accepted`, or `duplicate` of another that was).
    Applied(String),
    /// A poll's record: the next poll fetches what it held again.
    Poll,
}
