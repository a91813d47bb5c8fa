//! Where the gateway asks instead of being told: polling of the connections whose plugin
//! declares `capabilities.polling` (platforms without webhooks, or a safety net for missed
//! ones). A channel or supplier is asked what changed since its cursor (`poll`), page after page
//! while it says more is waiting; a carrier is asked for the tracking of the parcels it follows
//! (`fetch-tracking`), in batches. What the plugin fetched is stored as the poll's raw payload
//! (`raw_requests` with origin `poll`) before its events are applied through the same path as a
//! webhook's. Each connection's poll is held under a lease, so several gateway processes on one
//! database poll each connection once. A failed poll is retried at a doubling interval; the
//! cursor only moves past what was applied. This module owns the `poll_state` table.

use crate::config::PollingSettings;
use crate::connections::{self, Connection};
use crate::db::{Backend, Db, ms, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::ingest::{self, Origin, RawStatus};
use crate::plugins::Parsed;
use crate::services::Services;
use crate::tracking;
use axum::Json;
use axum::extract::{Path, State};
use daifa_plugin_host::carrier::CarrierInbound;
use daifa_plugin_host::channel::Inbound;
use daifa_plugin_host::supplier::SupplierInbound;
use daifa_plugin_host::{ExchangeRecorder, HttpHeader, InboundRequest, PluginKind, PollRequest};
use serde::Serialize;
use serde_json::json;
use sqlx::{AssertSqlSafe, Row};
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
    enrol(&state.db, settings).await?;
    while let Some(claim) = claim(&state.db, holder, settings.lease).await? {
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

/// Polling state for every enabled connection whose pinned version polls. Its first poll is one
/// interval away: nothing can have been missed before polling began.
async fn enrol(db: &Db, settings: &PollingSettings) -> sqlx::Result<()> {
    sqlx::query(
        "insert into poll_state (connection_id, since_ms, next_poll_at_ms, consecutive_failures) \
         select c.id, $1, $1 + coalesce(p.poll_interval_ms, $2), 0 \
         from connections c join plugin_packages p on p.name = c.plugin and p.version = c.plugin_version \
         where c.enabled = 1 and p.polling = 1 \
         on conflict (connection_id) do nothing",
    )
    .bind(now_ms())
    .bind(ms(settings.interval))
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A connection's poll this process holds.
struct Claim {
    connection_id: String,
    cursor: Option<String>,
    since_ms: i64,
    failures: i64,
    /// The manifest's interval.
    interval: Option<Duration>,
}

/// The connection_ids of the polls that are due: enabled, still polling, not held by a live lease.
const DUE: &str = "from poll_state s join connections c on c.id = s.connection_id \
                   join plugin_packages p on p.name = c.plugin and p.version = c.plugin_version \
                   where c.enabled = 1 and p.polling = 1 and s.next_poll_at_ms <= $3 \
                   and (s.locked_until_ms is null or s.locked_until_ms < $3)";

async fn claim(db: &Db, holder: &str, lease: Duration) -> anyhow::Result<Option<Claim>> {
    let now = now_ms();
    let lock = match db.backend {
        Backend::Postgres => "for update of s skip locked",
        // One statement runs under SQLite's single write lock.
        Backend::Sqlite => "",
    };
    let row = sqlx::query(AssertSqlSafe(format!(
        "update poll_state set locked_by = $1, locked_until_ms = $2, last_polled_at_ms = $3 \
         where connection_id = (select s.connection_id {DUE} order by s.next_poll_at_ms limit 1 {lock}) \
         returning connection_id, cursor, since_ms, consecutive_failures, \
                   (select poll_interval_ms from plugin_packages p join connections c on p.name = c.plugin and p.version = c.plugin_version \
                    where c.id = poll_state.connection_id) as interval_ms"
    )))
    .bind(holder)
    .bind(now + ms(lease))
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| {
        let interval: Option<i64> = r.try_get("interval_ms")?;
        Ok(Claim {
            connection_id: r.try_get("connection_id")?,
            cursor: r.try_get("cursor")?,
            since_ms: r.try_get("since_ms")?,
            failures: r.try_get("consecutive_failures")?,
            interval: interval.map(|i| Duration::from_millis(u64::try_from(i).unwrap_or(0))),
        })
    })
    .transpose()
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
    claim: &Claim,
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
            if let Err(e) = save_cursor(
                &state.db,
                holder,
                connection,
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
    ingest::store_raw(&state.db, &raw_id, &connection.name, &raw, Origin::Poll).await?;
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
                ingest::note_skipped(&state.db, &raw_id, &skipped).await?;
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
            ingest::mark_polled_failure(&state.db, &raw_id, &message, &connection.plugin_version)
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

async fn save_cursor(
    db: &Db,
    holder: &str,
    connection: &Connection,
    cursor: Option<&str>,
    lease: Duration,
) -> sqlx::Result<()> {
    // Saving renews the lease: a long poll keeps its connection.
    sqlx::query(
        "update poll_state set cursor = $1, locked_until_ms = $2 where connection_id = $3 and locked_by = $4",
    )
    .bind(cursor)
    .bind(now_ms() + ms(lease))
    .bind(&connection.id)
    .bind(holder)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Releases the poll and schedules the next: after `interval`, or after a doubling backoff
/// when it failed.
async fn finish(
    db: &Db,
    holder: &str,
    connection: &Connection,
    claim: &Claim,
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
    sqlx::query(
        "update poll_state set locked_by = null, locked_until_ms = null, next_poll_at_ms = $1, consecutive_failures = $2, \
         last_error = $3, last_raw_request_id = coalesce($4, last_raw_request_id), \
         last_success_at_ms = case when $3 is null then $5 else last_success_at_ms end \
         where connection_id = $6 and locked_by = $7",
    )
    .bind(now + ms(delay))
    .bind(failures)
    .bind(&run.error)
    .bind(&run.last_raw_id)
    .bind(now)
    .bind(&connection.id)
    .bind(holder)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A connection's polling as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct PollView {
    pub connection: String,
    /// Whether its pinned plugin version polls.
    pub polling: bool,
    pub cursor: Option<String>,
    pub next_poll_at_ms: Option<i64>,
    pub last_polled_at_ms: Option<i64>,
    pub last_success_at_ms: Option<i64>,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    pub last_raw_request_id: Option<String>,
}

async fn view(state: &Services, connection: &Connection) -> ApiResult<PollView> {
    let polling: Option<i64> =
        sqlx::query_scalar("select polling from plugin_packages where name = $1 and version = $2")
            .bind(&connection.plugin)
            .bind(&connection.plugin_version)
            .fetch_optional(&state.db.pool)
            .await?;
    let row = sqlx::query(
        "select cursor, next_poll_at_ms, last_polled_at_ms, last_success_at_ms, consecutive_failures, last_error, last_raw_request_id \
         from poll_state where connection_id = $1",
    )
    .bind(&connection.id)
    .fetch_optional(&state.db.pool)
    .await?;
    let mut view = PollView {
        connection: connection.name.clone(),
        polling: polling == Some(1),
        cursor: None,
        next_poll_at_ms: None,
        last_polled_at_ms: None,
        last_success_at_ms: None,
        consecutive_failures: 0,
        last_error: None,
        last_raw_request_id: None,
    };
    if let Some(r) = row {
        view.cursor = r.try_get("cursor")?;
        view.next_poll_at_ms = r.try_get("next_poll_at_ms")?;
        view.last_polled_at_ms = r.try_get("last_polled_at_ms")?;
        view.last_success_at_ms = r.try_get("last_success_at_ms")?;
        view.consecutive_failures = r.try_get("consecutive_failures")?;
        view.last_error = r.try_get("last_error")?;
        view.last_raw_request_id = r.try_get("last_raw_request_id")?;
    }
    Ok(view)
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
    enrol(&state.db, &state.settings.polling).await?;
    sqlx::query("update poll_state set next_poll_at_ms = $1 where connection_id = $2")
        .bind(now_ms())
        .bind(&connection.id)
        .execute(&state.db.pool)
        .await?;
    state.poll_signal.notify_waiters();
    Ok((axum::http::StatusCode::ACCEPTED, Json(current)))
}

pub fn router() -> axum::Router<Services> {
    axum::Router::new().route(
        "/connections/{name}/poll",
        axum::routing::get(get_handler).post(poll_now_handler),
    )
}
