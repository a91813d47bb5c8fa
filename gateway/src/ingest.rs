//! Where everything enters: `POST /hooks/{connection}`.
//!
//! The connection's plugin verifies and parses the request; then the ingest [`Writer`] stores
//! the raw request (method, path, headers, body) and applies its canonical events in one
//! transaction with other webhooks that came in meanwhile, with the raw record's status and the
//! deduplication by the platform's delivery id, and answers once that committed. A request that
//! cannot be stored is answered 503 so the sender retries (a 200 for something not stored is a
//! lost order). Every rejected request stays stored with its reason. A request stored but not
//! processed is processed again by the sweeper ([`reprocess`]). The raw requests and the
//! delivery ids are kept by [`crate::store::raw_requests`].

use crate::db::{Db, Tx, new_id, now_ms};
use crate::plugins::LoadError;
use crate::plugins::Parsed;
use crate::policy::PolicyReader;
use crate::services::Services;
use crate::shadow;
use crate::store::connections::{self, Connection};
use crate::store::orders::{self, OrderStatus};
use crate::store::raw_requests::{self, Origin, RawRequest, RawStatus};
use crate::{aftersales, cancellation, changes, routing, tracking};
use anyhow::Context;
use axum::Extension;
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
mod writer;

pub use writer::Writer;

/// The inbound route, with this process's ingest writers (they stop once the router is dropped).
pub fn router(state: &Services) -> axum::Router<Services> {
    let writer = Writer::spawn(state);
    axum::Router::new()
        .route("/hooks/{connection}", post(receive))
        .layer(Extension(writer))
}

/// The answer to the sender, and what the raw record says of it.
#[derive(Debug, Clone)]
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

    /// Whether what the request carried was applied (or was applied before: a redelivery), in
    /// the transaction that marked its raw record so.
    fn applied(&self) -> bool {
        matches!(self.raw_status, RawStatus::Accepted | RawStatus::Duplicate)
    }
}

/// A webhook: looked up and parsed here, beside the other requests coming in; then stored and
/// applied by the ingest [`Writer`] in a transaction with others, and answered once that
/// transaction committed. Nothing is answered 200 before it is durable; a request that cannot be
/// stored is answered 503 so the sender retries (a 200 for something not stored is a lost order).
async fn receive(
    State(state): State<Services>,
    Extension(writer): Extension<Arc<Writer>>,
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
    if !connections::valid_name(&connection_name) {
        // No connection can have this name: nothing to keep (and a NUL in it is not storable).
        let body = json!({ "error": "no connection by this name" });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let raw_id = new_id("raw");
    let stored = Stored {
        raw_id: &raw_id,
        connection_name: &connection_name,
        request: &request,
        received_at_ms: None,
    };
    let prepared = match prepare(&state, stored).await {
        Ok(prepared) => prepared,
        Err(e) => {
            tracing::error!(raw_request_id = %raw_id, connection = %connection_name, error = format!("{e:#}"), "cannot process inbound request");
            // Kept `received` if it can be: the sweeper processes it again if the sender does not.
            let kept = store_raw(
                &state.db.pool,
                &raw_id,
                &connection_name,
                &request,
                Origin::Webhook,
            )
            .await
            .is_ok();
            return unavailable(kept.then_some(&raw_id));
        }
    };
    // Names that match no connection share one label: random paths cannot create label values.
    let label = prepared
        .connection
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "unknown".to_string());
    let written = writer
        .write(writer::Item {
            raw_id: raw_id.clone(),
            connection_name,
            request,
            prepared,
        })
        .await;
    let answer = match written {
        Ok(answer) => answer,
        Err(failure) => return unavailable(failure.kept.then_some(&raw_id)),
    };
    metrics::counter!("daifa_inbound_requests_total", "connection" => label, "outcome" => answer.raw_status.as_str()).increment(1);
    let mut body = answer.body;
    body["raw_request_id"] = json!(raw_id);
    (answer.status, Json(body)).into_response()
}

/// 503: the sender sends it again later. `kept`: the raw request is stored (`received`).
fn unavailable(kept: Option<&String>) -> Response {
    let body = match kept {
        // Nothing of it was applied; the sweeper processes it again if the sender does not.
        Some(raw_id) => {
            json!({ "error": "the request was stored but could not be processed; send it again later", "raw_request_id": raw_id })
        }
        None => json!({ "error": "the request could not be stored; send it again later" }),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
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

impl OnServerError {
    /// Whether a request processed to `answer` gets it recorded on its raw record (applied
    /// requests were marked in the transaction that applied them).
    fn records(self, answer: &Answer) -> bool {
        match answer.raw_status {
            RawStatus::Accepted | RawStatus::Duplicate => false,
            RawStatus::Failed => self == OnServerError::MarkFailed,
            RawStatus::Received | RawStatus::Rejected => true,
        }
    }
}

/// Processes a stored request and records the outcome on its raw record: what the sweeper and
/// `POST /api/v1/raw-requests/{id}/reprocess` do with one stored before, one at a time. An
/// error means nothing was applied and nothing recorded (the database failed): the raw record
/// stays as it was.
pub(crate) async fn process_stored(
    state: &Services,
    stored: Stored<'_>,
    on_server_error: OnServerError,
) -> anyhow::Result<Answer> {
    let prepared = prepare(state, stored).await?;
    prepared.spawn_shadow(state, stored.raw_id, stored.request);
    let answer = match &prepared.work {
        Work::Answered(answer) => answer.clone(),
        Work::Apply(parsed) => {
            let connection = prepared.connection.as_ref().expect("parsed by its plugin");
            apply(state, connection, stored.raw_id, parsed, Origin::Webhook).await?
        }
    };
    if on_server_error.records(&answer)
        && let Err(e) = raw_requests::record_outcome(
            &state.db.pool,
            stored.raw_id,
            answer.raw_status,
            answer.status.as_u16(),
            answer.reason.as_deref(),
            prepared.plugin_version(),
        )
        .await
    {
        tracing::error!(raw_request_id = %stored.raw_id, error = %e, "cannot record why a request was rejected");
    }
    Ok(answer)
}

/// A request looked up and parsed: what is left to do with it in a transaction.
pub(crate) struct Prepared {
    /// The connection by the name the request was sent to, if there is one.
    pub connection: Option<Connection>,
    pub work: Work,
    /// What the connection's plugin made of the request, for the shadow version's run, when
    /// the connection has one.
    pub shadow: Option<serde_json::Value>,
}

pub(crate) enum Work {
    /// Nothing to apply: the answer is recorded on the raw record (an unknown connection, a
    /// refusal by the plugin, a plugin that failed).
    Answered(Answer),
    /// Events to apply.
    Apply(Parsed),
}

impl Prepared {
    fn answered(connection: Option<Connection>, answer: Answer) -> Self {
        Self {
            connection,
            work: Work::Answered(answer),
            shadow: None,
        }
    }

    fn plugin_version(&self) -> Option<&str> {
        self.connection.as_ref().map(|c| c.plugin_version.as_str())
    }

    /// Runs the shadow plugin version on the request (once its raw record is stored).
    fn spawn_shadow(&self, state: &Services, raw_id: &str, request: &InboundRequest) {
        if let (Some(connection), Some(primary)) = (&self.connection, &self.shadow) {
            shadow::spawn(state, connection, raw_id, request, primary.clone());
        }
    }
}

/// Looks the connection up and has its plugin verify and parse the request. An error is the
/// gateway's (the database, a plugin that cannot be loaded): nothing was decided.
async fn prepare(state: &Services, stored: Stored<'_>) -> anyhow::Result<Prepared> {
    let Stored {
        connection_name,
        request,
        received_at_ms,
        ..
    } = stored;
    let connection = state
        .connection_cache
        .by_name(&state.db, connection_name)
        .await
        .context("looking up the connection")?;
    let Some(connection) = connection else {
        let answer = Answer::error(
            StatusCode::NOT_FOUND,
            RawStatus::Rejected,
            format!("no connection named `{connection_name}`"),
        );
        return Ok(Prepared::answered(None, answer));
    };
    if !connection.enabled {
        let answer = Answer::error(
            StatusCode::NOT_FOUND,
            RawStatus::Rejected,
            format!("connection `{connection_name}` is disabled"),
        );
        return Ok(Prepared::answered(Some(connection), answer));
    }
    let plugin = match state
        .plugins
        .get(&connection.plugin, &connection.plugin_version)
        .await
    {
        Ok(plugin) => plugin,
        Err(LoadError::Internal(e)) => return Err(e),
        Err(e) => {
            let answer = Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                RawStatus::Failed,
                format!("connection `{connection_name}`: {e}"),
            );
            return Ok(Prepared::answered(Some(connection), answer));
        }
    };
    let ctx = match connection.context(&state.secrets, &plugin) {
        Ok(mut ctx) => {
            ctx.fixed_now_ms = received_at_ms;
            Arc::new(ctx)
        }
        Err(e) => {
            let answer = Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                RawStatus::Failed,
                e.to_string(),
            );
            return Ok(Prepared::answered(Some(connection), answer));
        }
    };
    let parsed = match state.native_parsers.get(&connection.plugin) {
        Some(native) => native(&ctx, request),
        None => crate::plugins::parse(&plugin, connection.kind, ctx, request).await,
    };
    let shadow = connection
        .shadow_plugin_version
        .is_some()
        .then(|| shadow::canonical(&parsed));
    let work = match parsed {
        Ok(parsed) if holds_nul(&parsed) => Work::Answered(Answer::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            RawStatus::Rejected,
            format!(
                "plugin `{}` produced text with a NUL character, which cannot be stored",
                connection.plugin
            ),
        )),
        Ok(parsed) => Work::Apply(parsed),
        Err(failure) => Work::Answered(plugin_failure(&connection, failure)),
    };
    Ok(Prepared {
        connection: Some(connection),
        work,
        shadow,
    })
}

/// Whether some text of the events holds a NUL character (`"\u0000"` in a JSON payload):
/// PostgreSQL cannot store it in a text column, so it is refused for what it is, on both
/// databases, rather than failing the transaction that holds it.
fn holds_nul(parsed: &Parsed) -> bool {
    let json = match parsed {
        Parsed::Channel(inbound) => serde_json::to_string(inbound),
        Parsed::Supplier(inbound) => serde_json::to_string(inbound),
        Parsed::Carrier(inbound) => serde_json::to_string(inbound),
    };
    json.is_ok_and(|json| crate::db::escapes_nul(&json))
}

/// Applies what a plugin made of a stored request (a webhook, or a poll's answers) in a
/// transaction of its own, committed when it was applied.
pub(crate) async fn apply(
    state: &Services,
    connection: &Connection,
    raw_id: &str,
    parsed: &Parsed,
    origin: Origin,
) -> anyhow::Result<Answer> {
    let policies = state.policy_cache.reader();
    let mut tx = state.db.begin().await?;
    let answer = apply_in(
        &mut tx,
        policies,
        connection,
        RawRecord::Stored(raw_id),
        parsed,
        origin,
    )
    .await?;
    if answer.applied() {
        tx.commit().await?;
        state.wake_workers();
    }
    Ok(answer)
}

/// Applies what a plugin made of a stored request in `tx`, and marks the raw record applied. A
/// refusal (an answer not applied) leaves `tx` as it found it.
async fn apply_in(
    tx: &mut Tx,
    policies: PolicyReader<'_>,
    connection: &Connection,
    raw: RawRecord<'_>,
    parsed: &Parsed,
    origin: Origin,
) -> anyhow::Result<Answer> {
    match parsed {
        Parsed::Channel(inbound) => apply_channel(tx, policies, connection, raw, inbound).await,
        Parsed::Supplier(inbound) => apply_supplier(tx, connection, raw, inbound, origin).await,
        Parsed::Carrier(inbound) => apply_carrier(tx, connection, raw, inbound).await,
    }
}

/// The raw record of a request being applied.
#[derive(Clone, Copy)]
pub(crate) enum RawRecord<'a> {
    /// Stored before, `received` (the sweeper's, the operator's, a poll's): marked applied
    /// with a compare-and-set.
    Stored(&'a str),
    /// Not stored yet (the ingest writer's): stored with its outcome, in the same transaction.
    New(&'a raw_requests::NewRawRequest<'a>),
}

impl<'a> RawRecord<'a> {
    fn id(self) -> &'a str {
        match self {
            Self::Stored(id) => id,
            Self::New(request) => request.id,
        }
    }
}

/// Applies a poll's events under its stored raw record, and records a refusal on it.
pub(crate) async fn apply_polled(
    state: &Services,
    connection: &Connection,
    raw_id: &str,
    parsed: Parsed,
) -> anyhow::Result<Answer> {
    let answer = apply(state, connection, raw_id, &parsed, Origin::Poll).await?;
    if answer.raw_status == RawStatus::Rejected {
        raw_requests::record_outcome(
            &state.db.pool,
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
    raw: RawRecord<'a>,
    connection_id: &'a str,
    /// The version of the connection's plugin that parsed it.
    plugin_version: &'a str,
    delivery_id: &'a Option<String>,
    topic: &'a Option<String>,
}

impl Delivery<'_> {
    /// Claims the delivery in `tx`; a redelivery (the same platform delivery id seen before for
    /// this connection) is marked `duplicate` and answered without applying anything.
    async fn claim(&self, tx: &mut Tx) -> anyhow::Result<Option<Answer>> {
        let raw_id = self.raw.id();
        let new = match self.delivery_id {
            None => true,
            Some(delivery_id) => match writer::claimed(self.connection_id, delivery_id, raw_id) {
                // Recorded with the batch (`ingest::writer`).
                Some(new) => new,
                None => {
                    raw_requests::claim_delivery(tx, self.connection_id, delivery_id, raw_id)
                        .await?
                }
            },
        };
        if !new {
            self.finish(tx, RawStatus::Duplicate, None).await?;
            return Ok(Some(Answer {
                status: StatusCode::OK,
                raw_status: RawStatus::Duplicate,
                body: json!({ "status": "duplicate" }),
                reason: None,
            }));
        }
        Ok(None)
    }

    /// Gives back the delivery id its batch recorded for a request refused before it was
    /// applied: a redelivery is judged again.
    async fn give_back(&self, tx: &mut Tx) -> anyhow::Result<()> {
        if let Some(delivery_id) = self.delivery_id
            && writer::claimed(self.connection_id, delivery_id, self.raw.id()) == Some(true)
        {
            raw_requests::release_delivery(tx, self.connection_id, delivery_id, self.raw.id())
                .await?;
            writer::released(self.connection_id, delivery_id);
        }
        Ok(())
    }

    /// Marks the raw request accepted: what the delivery applied in `tx` commits with it.
    async fn accepted(
        &self,
        tx: &mut Tx,
        order_id: Option<&str>,
        body: serde_json::Value,
    ) -> anyhow::Result<Answer> {
        self.finish(tx, RawStatus::Accepted, order_id).await?;
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
            raw_id: self.raw.id(),
            status,
            delivery_id: self.delivery_id.as_deref(),
            topic: self.topic.as_deref(),
            order_id,
            connection_id: self.connection_id,
            plugin_version: self.plugin_version,
        };
        match self.raw {
            RawRecord::New(request) => {
                let _deferred = crate::db::deferred::allow();
                raw_requests::insert_applied(tx, request, &applied).await
            }
            RawRecord::Stored(_) if raw_requests::mark_applied(tx, &applied).await? => Ok(()),
            RawRecord::Stored(id) => Err(AppliedMeanwhile(id.to_string()).into()),
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
    tx: &mut Tx,
    policies: PolicyReader<'_>,
    connection: &Connection,
    raw: RawRecord<'_>,
    inbound: &Inbound,
) -> anyhow::Result<Answer> {
    let raw_id = raw.id();
    let delivery = Delivery {
        raw,
        connection_id: &connection.id,
        plugin_version: &connection.plugin_version,
        delivery_id: &inbound.delivery_id,
        topic: &inbound.topic,
    };
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
            let stored =
                orders::find_by_external_id(tx, &connection.id, &order.external_id).await?;
            if stored.is_none() {
                problem = Some(format!(
                    "line `{}` has a quantity of 0 in the order's first copy",
                    line.external_line_id
                ));
            }
        }
        if let Some(reason) = problem {
            delivery.give_back(tx).await?;
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
    if let Some(duplicate) = delivery.claim(tx).await? {
        return Ok(duplicate);
    }
    let mut applied = Applied::default();
    let mut first_order_id = None;
    for event in &inbound.events {
        match event {
            ChannelEvent::OrderPlaced(order) => {
                let (order_id, stored) =
                    orders::insert_or_find(tx, &connection.id, order, raw_id).await?;
                first_order_id.get_or_insert_with(|| order_id.clone());
                let detail = json!({ "raw_request_id": raw_id, "topic": inbound.topic, "external_id": order.external_id });
                if let Some(stored) = stored {
                    // A new order's first application inserts its rows and reads none of them
                    // back: inside the ingest writer's batch, they wait for one statement per
                    // table (`db::deferred`).
                    let _deferred = crate::db::deferred::allow();
                    orders::record_event(tx, &order_id, "order.received", detail).await?;
                    // Paid (or to be paid on delivery): the shipping clocks start. An unpaid
                    // order's start when a later copy says paid (changes.rs).
                    // The policies in force for the order's channel and product category.
                    let context = routing::context::OrderContext::fresh(
                        tx,
                        stored,
                        order,
                        &connection.name,
                        policies,
                    )
                    .await?;
                    if orders::payment_committed(order.payment) {
                        crate::clocks::on_order_paid(tx, &context.after_sales, &order_id, now_ms())
                            .await?;
                    }
                    let decision = routing::route(
                        tx,
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
                            known_products: context.products.as_ref(),
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
                    let status =
                        changes::apply_copy(tx, &order_id, order, raw_id, inbound.topic.as_deref())
                            .await?;
                    applied.orders.push(json!({ "order_id": order_id, "external_id": order.external_id, "status": status }));
                }
            }
            ChannelEvent::CaseOpened(request) => {
                let summary =
                    aftersales::from_storefront(tx, &connection.id, raw_id, request).await?;
                if let Some(order_id) = summary["order_id"].as_str() {
                    first_order_id.get_or_insert_with(|| order_id.to_string());
                }
                applied.orders.push(summary);
            }
            ChannelEvent::OrderCancelled(cancel) => {
                match orders::find_by_external_id(tx, &connection.id, &cancel.external_id).await? {
                    Some(order) => {
                        first_order_id.get_or_insert_with(|| order.id.clone());
                        let status = if order.status == OrderStatus::Cancelled.as_str() {
                            orders::record_event(
                                tx,
                                &order.id,
                                "order.cancelled_again",
                                json!({ "raw_request_id": raw_id }),
                            )
                            .await?;
                            "cancelled"
                        } else {
                            let done = cancellation::cancel_order(
                                tx,
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
                                    tx,
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
    delivery
        .accepted(
            tx,
            first_order_id.as_deref(),
            json!({ "status": "accepted", "orders": applied.orders }),
        )
        .await
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
    tx: &mut Tx,
    connection: &Connection,
    raw: RawRecord<'_>,
    inbound: &SupplierInbound,
    origin: Origin,
) -> anyhow::Result<Answer> {
    let raw_id = raw.id();
    // A refusal comes after some events may have been applied: they are undone to here.
    crate::db::savepoint(tx).await?;
    let delivery = Delivery {
        raw,
        connection_id: &connection.id,
        plugin_version: &connection.plugin_version,
        delivery_id: &inbound.delivery_id,
        topic: &None,
    };
    if let Some(duplicate) = delivery.claim(tx).await? {
        crate::db::release_savepoint(tx).await?;
        return Ok(duplicate);
    }
    let mut results = Vec::new();
    let mut first_order_id = None;
    for event in &inbound.events {
        match supplier_events::apply(tx, connection, raw_id, event).await? {
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
                crate::db::rollback_to_savepoint(tx).await?;
                return Ok(Answer::error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    RawStatus::Rejected,
                    reason,
                ));
            }
        }
    }
    let answer = delivery
        .accepted(
            tx,
            first_order_id.as_deref(),
            json!({ "status": "accepted", "events": results }),
        )
        .await?;
    crate::db::release_savepoint(tx).await?;
    Ok(answer)
}

async fn apply_carrier(
    tx: &mut Tx,
    connection: &Connection,
    raw: RawRecord<'_>,
    inbound: &CarrierInbound,
) -> anyhow::Result<Answer> {
    let raw_id = raw.id();
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
        raw,
        connection_id: &connection.id,
        plugin_version: &connection.plugin_version,
        delivery_id: &inbound.delivery_id,
        topic: &inbound.topic,
    };
    if let Some(duplicate) = delivery.claim(tx).await? {
        return Ok(duplicate);
    }
    let applied = tracking::apply_updates(tx, connection, raw_id, &inbound.updates).await?;
    for (shipment_id, order_id, detail) in &applied.for_cases {
        aftersales::from_carrier(tx, shipment_id, order_id, *detail).await?;
    }
    delivery
        .accepted(
            tx,
            applied.order_id.as_deref(),
            json!({ "status": "accepted", "updates": applied.summaries }),
        )
        .await
}

/// A request's headers, as the raw record stores them.
fn header_pairs(request: &InboundRequest) -> Vec<(&str, &str)> {
    request
        .headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_str()))
        .collect()
}

/// Stores a request, `received`: on its own (`&db.pool`), or in the transaction that applies it.
pub(crate) async fn store_raw<'e>(
    exec: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: &str,
    connection_name: &str,
    request: &InboundRequest,
    origin: Origin,
) -> anyhow::Result<()> {
    let headers = header_pairs(request);
    raw_requests::insert(
        exec,
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
