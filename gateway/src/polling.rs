//! Where the gateway asks instead of being told: polling of the connections whose plugin
//! declares `capabilities.polling` (platforms without webhooks, or a safety net for missed
//! ones). A channel or supplier is asked what changed since its cursor (`poll`), page after page
//! while it says more is waiting; a carrier is asked for the tracking of the parcels it follows
//! (`fetch-tracking`), in batches. What the plugin fetched is stored as the poll's raw payload
//! (`raw_requests` with origin `poll`) before its events are applied through the same path as a
//! webhook's. Each connection's poll is held under a lease, so several gateway processes on one
//! database poll each connection once. A failed poll is retried at a doubling interval; the
//! cursor only moves past what was applied. Where each connection's polling stands is kept by
//! [`crate::store::poll_state`].

use crate::config::PollingSettings;
use crate::db::{Db, ms, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::ingest;
use crate::plugins::Parsed;
use crate::services::Services;
use crate::store::connections::{self, Connection};
use crate::store::poll_state::{self, PollState};
use crate::store::raw_requests::{self, Origin, RawStatus};
use crate::tracking;
use axum::Json;
use axum::extract::{Path, State};
use daifa_plugin_host::carrier::CarrierInbound;
use daifa_plugin_host::channel::Inbound;
use daifa_plugin_host::supplier::SupplierInbound;
use daifa_plugin_host::{ExchangeRecorder, HttpHeader, InboundRequest, PluginKind, PollRequest};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Runs this process's poller until `shutdown` turns true.
pub fn spawn(
    state: Services,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !state.settings.polling.enabled {
        return None;
    }
    Some(tokio::spawn(poller(state, shutdown)))
}

async fn poller(state: Services, mut shutdown: watch::Receiver<bool>) {
    let settings = state.settings.polling.clone();
    let holder = format!("{}-poller", state.instance_id);
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = poll_due(&state, &holder, &settings).await {
            tracing::error!(error = format!("{e:#}"), "polling failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.tick) => {}
            _ = state.poll_signal.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Starts polling the connections that should be polled and polls every due one.
async fn poll_due(
    state: &Services,
    holder: &str,
    settings: &PollingSettings,
) -> anyhow::Result<()> {
    // Polling state for every enabled connection whose pinned version polls. Its first poll
    // is one interval away: nothing can have been missed before polling began.
    poll_state::enrol(&state.db, settings.interval).await?;
    while let Some(claim) = poll_state::claim(&state.db, holder, settings.lease).await? {
        let Some(connection) = connections::by_id(&state.db, &claim.connection_id).await? else {
            continue;
        };
        let interval = claim
            .interval
            .unwrap_or(settings.interval)
            .max(settings.min_interval);
        let run = poll_connection(state, holder, settings, &connection, &claim).await;
        finish(
            &state.db,
            holder,
            &connection,
            &claim,
            interval,
            settings,
            run,
        )
        .await?;
    }
    Ok(())
}

/// How a poll went.
struct Run {
    /// Calls made.
    pages: u32,
    /// The raw record of the last call.
    last_raw_id: Option<String>,
    /// Why the poll stopped early; none when it got through.
    error: Option<String>,
}

/// Polls one connection: page after page (or batch after batch of parcels), each stored, then
/// applied, then its cursor saved, until the plugin has nothing more or `max_pages` is reached.
async fn poll_connection(
    state: &Services,
    holder: &str,
    settings: &PollingSettings,
    connection: &Connection,
    claim: &poll_state::Claim,
) -> Run {
    let mut run = Run {
        pages: 0,
        last_raw_id: None,
        error: None,
    };
    let since = claim.since_ms - ms(settings.first_lookback);
    let mut cursor = claim.cursor.clone();
    while run.pages < settings.max_pages {
        run.pages += 1;
        let page = match poll_page(state, settings, connection, cursor.clone(), since).await {
            Ok(page) => page,
            Err(e) => {
                run.error = Some(format!("{e:#}"));
                break;
            }
        };
        run.last_raw_id = Some(page.raw_id.clone());
        if let Some(error) = page.error {
            run.error = Some(error);
            break;
        }
        if page.next_cursor != cursor {
            cursor = page.next_cursor;
            // Saving renews the lease: a long poll keeps its connection.
            if let Err(e) = poll_state::save_cursor(
                &state.db,
                holder,
                &connection.id,
                cursor.as_deref(),
                settings.lease,
            )
            .await
            {
                run.error = Some(format!("cannot save the cursor: {e:#}"));
                break;
            }
        }
        if !page.more {
            break;
        }
    }
    run
}

/// One call of a poll, stored and applied.
struct Page {
    raw_id: String,
    /// Where the next call starts.
    next_cursor: Option<String>,
    more: bool,
    /// Why the page was not applied.
    error: Option<String>,
}

/// What one call of a poll fetched, as the gateway applies it.
struct Fetched {
    parsed: Parsed,
    /// Where the next call starts.
    next_cursor: Option<String>,
    more: bool,
    /// What the plugin fetched but could not translate.
    skipped: Vec<String>,
}

async fn poll_page(
    state: &Services,
    settings: &PollingSettings,
    connection: &Connection,
    cursor: Option<String>,
    since: i64,
) -> anyhow::Result<Page> {
    let plugin = state
        .plugins
        .get(&connection.plugin, &connection.plugin_version)
        .await?;
    let recorder = ExchangeRecorder::default();
    let mut ctx = connection.context(&state.secrets, &plugin)?;
    ctx.recorder = Some(recorder.clone());
    let ctx = Arc::new(ctx);
    let request = PollRequest {
        cursor: cursor.clone(),
        since,
    };
    let mut input = serde_json::to_value(&request)?;
    let called = match connection.kind {
        PluginKind::Channel => plugin.poll_channel(ctx, &request).await.map(|r| Fetched {
            next_cursor: r.next_cursor.or_else(|| cursor.clone()),
            more: r.more,
            skipped: r.skipped,
            parsed: Parsed::Channel(Inbound {
                delivery_id: None,
                topic: Some("poll".into()),
                events: r.events,
            }),
        }),
        PluginKind::Supplier => plugin.poll_supplier(ctx, &request).await.map(|r| Fetched {
            next_cursor: r.next_cursor.or_else(|| cursor.clone()),
            more: r.more,
            skipped: r.skipped,
            parsed: Parsed::Supplier(SupplierInbound {
                delivery_id: None,
                events: r.events,
            }),
        }),
        PluginKind::Carrier => {
            let batch = i64::from(settings.carrier_batch);
            let parcels = tracking::parcels_to_follow(
                &state.db,
                &connection.id,
                cursor.as_deref().unwrap_or(""),
                batch,
            )
            .await?;
            input = serde_json::to_value(&parcels)?;
            // A full batch may have more behind it: the round continues after its last parcel;
            // a short one ends the round, and the next poll starts from the first parcel.
            let full = i64::try_from(parcels.len()).unwrap_or(i64::MAX) >= batch;
            let next_cursor = full
                .then(|| parcels.last().map(|p| p.shipment_id.clone()))
                .flatten();
            let updates = if parcels.is_empty() {
                Ok(Vec::new())
            } else {
                plugin.fetch_tracking(ctx, &parcels).await
            };
            updates.map(|updates| Fetched {
                next_cursor,
                more: full,
                skipped: Vec::new(),
                parsed: Parsed::Carrier(CarrierInbound {
                    delivery_id: None,
                    topic: Some("poll".into()),
                    updates,
                }),
            })
        }
    };
    let exchanges = recorder.take();
    // The raw payload of a poll: what the gateway asked and what the platform answered.
    let body = json!({ "input": input, "exchanges": exchanges });
    let raw_id = new_id("raw");
    let raw = InboundRequest {
        method: "POLL".into(),
        path: format!("/poll/{}", connection.name),
        headers: vec![HttpHeader {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: serde_json::to_vec(&body)?,
    };
    ingest::store_raw(
        &state.db.pool,
        &raw_id,
        &connection.name,
        &raw,
        Origin::Poll,
    )
    .await?;
    let outcome = match called {
        Ok(Fetched {
            parsed,
            next_cursor,
            more,
            skipped,
        }) => {
            let answer = ingest::apply_polled(state, connection, &raw_id, parsed).await?;
            if !skipped.is_empty() {
                // Kept with the poll's raw payload (which holds what was fetched), where the
                // operator finds them; the cursor moves on, or one bad record stalls polling.
                tracing::warn!(connection = %connection.name, skipped = skipped.len(), first = %skipped[0], "a poll skipped what its plugin could not translate");
                metrics::counter!("daifa_poll_skipped_total", "connection" => connection.name.clone())
                    .increment(skipped.len() as u64);
                let reason = format!("skipped {}: {}", skipped.len(), skipped.join("; "));
                raw_requests::set_reason(&state.db, &raw_id, &reason).await?;
            }
            state.wake_workers();
            if answer.raw_status == RawStatus::Rejected {
                Page {
                    raw_id,
                    next_cursor: cursor,
                    more: false,
                    error: Some(answer.reason.unwrap_or_else(|| "refused".into())),
                }
            } else {
                Page {
                    raw_id,
                    next_cursor,
                    more,
                    error: None,
                }
            }
        }
        Err(failure) => {
            let message = failure.error.to_string();
            raw_requests::fail_poll(&state.db, &raw_id, &message, &connection.plugin_version)
                .await?;
            tracing::warn!(connection = %connection.name, plugin = %connection.plugin, kind = failure.error.kind(), error = %message, "poll failed");
            Page {
                raw_id,
                next_cursor: cursor,
                more: false,
                error: Some(format!("{}: {message}", failure.error.kind())),
            }
        }
    };
    Ok(outcome)
}

/// Releases the poll and schedules the next: after `interval`, or after a doubling backoff
/// when it failed.
async fn finish(
    db: &Db,
    holder: &str,
    connection: &Connection,
    claim: &poll_state::Claim,
    interval: Duration,
    settings: &PollingSettings,
    run: Run,
) -> sqlx::Result<()> {
    let now = now_ms();
    let (failures, delay) = match &run.error {
        None => (0, interval),
        Some(_) => {
            let failures = claim.failures + 1;
            let factor = 2u32.saturating_pow(u32::try_from(failures - 1).unwrap_or(u32::MAX));
            (
                failures,
                interval.saturating_mul(factor).min(settings.max_backoff),
            )
        }
    };
    let outcome = if run.error.is_some() { "failed" } else { "ok" };
    metrics::counter!("daifa_polls_total", "connection" => connection.name.clone(), "outcome" => outcome).increment(1);
    match &run.error {
        None => {
            tracing::info!(connection = %connection.name, pages = run.pages, "polled")
        }
        Some(e) => {
            tracing::warn!(connection = %connection.name, failures, retry_in_ms = ms(delay), error = %e, "poll did not get through")
        }
    }
    poll_state::release(
        db,
        holder,
        &connection.id,
        &poll_state::Outcome {
            next_poll_at_ms: now + ms(delay),
            consecutive_failures: failures,
            error: run.error.as_deref(),
            last_raw_request_id: run.last_raw_id.as_deref(),
            now_ms: now,
        },
    )
    .await
}

/// A connection's polling as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct PollView {
    pub connection: String,
    /// Whether its pinned plugin version polls.
    pub polling: bool,
    /// Where it stands; all empty before its first poll.
    #[serde(flatten)]
    pub state: PollState,
}

async fn view(state: &Services, connection: &Connection) -> ApiResult<PollView> {
    let polling =
        poll_state::version_polls(&state.db, &connection.plugin, &connection.plugin_version)
            .await?;
    Ok(PollView {
        connection: connection.name.clone(),
        polling,
        state: poll_state::of_connection(&state.db, &connection.id)
            .await?
            .unwrap_or_default(),
    })
}

async fn connection_named(state: &Services, name: &str) -> ApiResult<Connection> {
    connections::by_name(&state.db, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection named `{name}`")))
}

/// `GET /connections/{name}/poll`: where its polling stands.
pub async fn get_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
) -> ApiResult<Json<PollView>> {
    let connection = connection_named(&state, &name).await?;
    Ok(Json(view(&state, &connection).await?))
}

/// `POST /connections/{name}/poll`: poll it now (the answer is the state before the poll; the
/// poll runs in the background).
pub async fn poll_now_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
) -> ApiResult<(axum::http::StatusCode, Json<PollView>)> {
    let connection = connection_named(&state, &name).await?;
    let current = view(&state, &connection).await?;
    if !current.polling {
        return Err(ApiError::Unprocessable(format!(
            "plugin `{}` version {} of connection `{name}` does not poll (its manifest has no capabilities.polling)",
            connection.plugin, connection.plugin_version
        )));
    }
    if !connection.enabled {
        return Err(ApiError::Unprocessable(format!(
            "connection `{name}` is disabled"
        )));
    }
    poll_state::enrol(&state.db, state.settings.polling.interval).await?;
    poll_state::due_now(&state.db, &connection.id).await?;
    state.poll_signal.notify_waiters();
    Ok((axum::http::StatusCode::ACCEPTED, Json(current)))
}

pub fn router() -> axum::Router<Services> {
    axum::Router::new().route(
        "/connections/{name}/poll",
        axum::routing::get(get_handler).post(poll_now_handler),
    )
}
