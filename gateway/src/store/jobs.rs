//! The durable job queue: every side effect leaves the process through here.
//!
//! A job is written in the same transaction as the state change that calls for it, with an
//! idempotency key that stays the same across attempts (peers drop duplicates by it). Workers
//! claim due jobs under a lease (`for update skip locked` on PostgreSQL, so several gateway
//! processes share one queue); a job whose worker died is taken over when its lease runs out.
//! Failures are retried on the configured schedule, with jitter and the peer's `Retry-After`,
//! then dead-lettered. This module owns the `jobs` and `job_attempts` tables.

use crate::config::JobSettings;
use crate::db::{Backend, Conn, Db, Tx, deferred, ms, new_id, now_ms, placeholders};
use rand::Rng;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a job does. The string form is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum JobKind {
    /// Push a supplier order to its supplier.
    SupplierSubmit,
    /// Write a shipment back to the storefront.
    ChannelFulfill,
    /// Register a shipment with a carrier connection (a tracking service follows it).
    CarrierRegister,
    /// A supplier order's acknowledgement deadline: unacknowledged, its lines go to the next
    /// offer.
    SupplierAckDeadline,
    /// A stock-out's later date: route the waiting lines again.
    RoutingRetry,
    /// Refund an after-sales case through the storefront.
    ChannelRefund,
    /// Answer a storefront's return request.
    ChannelReturnDecision,
    /// Cancel on the storefront an order the shop cancelled for its suppliers.
    ChannelCancel,
    /// Ask a supplier to cancel (or stop) a supplier order.
    SupplierCancel,
    /// Ask a supplier to change an order it has (the storefront changed it).
    SupplierUpdate,
    /// Tell a supplier goods come back, and get where to.
    SupplierReturn,
    /// The service clocks (aftersales/clocks.rs).
    ClockShip,
    ClockMarkShipped,
    ClockFollowUp,
    ClockNoTracking,
    ClockDeliveryPromise,
    ClockRefund,
    ClockComplaint,
    ClockReplacement,
    ClockStockOutContact,
    /// A sweep of the refund queue.
    RefundSweep,
}

impl JobKind {
    pub const ALL: [JobKind; 21] = [
        Self::SupplierSubmit,
        Self::ChannelFulfill,
        Self::CarrierRegister,
        Self::SupplierAckDeadline,
        Self::RoutingRetry,
        Self::ChannelRefund,
        Self::ChannelReturnDecision,
        Self::ChannelCancel,
        Self::SupplierCancel,
        Self::SupplierUpdate,
        Self::SupplierReturn,
        Self::ClockShip,
        Self::ClockMarkShipped,
        Self::ClockFollowUp,
        Self::ClockNoTracking,
        Self::ClockDeliveryPromise,
        Self::ClockRefund,
        Self::ClockComplaint,
        Self::ClockReplacement,
        Self::ClockStockOutContact,
        Self::RefundSweep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SupplierSubmit => "supplier.submit",
            Self::ChannelFulfill => "channel.fulfill",
            Self::CarrierRegister => "carrier.register",
            Self::SupplierAckDeadline => "supplier.ack_deadline",
            Self::RoutingRetry => "routing.retry",
            Self::ChannelRefund => "channel.refund",
            Self::ChannelReturnDecision => "channel.return_decision",
            Self::ChannelCancel => "channel.cancel",
            Self::SupplierCancel => "supplier.cancel",
            Self::SupplierUpdate => "supplier.update",
            Self::SupplierReturn => "supplier.return",
            Self::ClockShip => "clock.ship",
            Self::ClockMarkShipped => "clock.mark_shipped",
            Self::ClockFollowUp => "clock.follow_up",
            Self::ClockNoTracking => "clock.no_tracking",
            Self::ClockDeliveryPromise => "clock.delivery_promise",
            Self::ClockRefund => "clock.refund",
            Self::ClockComplaint => "clock.complaint",
            Self::ClockReplacement => "clock.replacement",
            Self::ClockStockOutContact => "clock.stock_out_contact",
            Self::RefundSweep => "refund_sweep",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether an attempt calls a peer through the job's connection (a supplier, a storefront,
    /// a carrier): those are limited per connection and stopped by its circuit breaker
    /// (`worker::throttle`). Clocks and routing retries only write to the database.
    pub fn calls_peer(self) -> bool {
        matches!(
            self,
            Self::SupplierSubmit
                | Self::ChannelFulfill
                | Self::CarrierRegister
                | Self::ChannelRefund
                | Self::ChannelReturnDecision
                | Self::ChannelCancel
                | Self::SupplierCancel
                | Self::SupplierUpdate
                | Self::SupplierReturn
        )
    }

    /// The kinds that call a peer, for SQL (`kind in (...)`): constant names, no input.
    fn peer_kinds_sql() -> String {
        Self::ALL
            .iter()
            .filter(|k| k.calls_peer())
            .map(|k| format!("'{}'", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Where a job stands. Every change is a compare-and-set from the statuses [`Self::allowed_from`]
/// lists (a worker's completion also requires its lease): the one table of a job's moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting for its time (`run_at_ms`).
    Queued,
    /// Held by a worker until its lease runs out.
    Running,
    Succeeded,
    /// Failed for good, or its schedule ran out: waits for the operator.
    Dead,
    /// Taken back before any attempt (a push whose order changed before it went out).
    Withdrawn,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Dead,
        Self::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The statuses a job may move to `self` from.
    pub fn allowed_from(self) -> &'static [JobStatus] {
        use JobStatus::*;
        match self {
            // A retry after a failed attempt; the operator's retry of a dead job; a finished
            // push run again (a released hold); a withdrawn push sent after all.
            Queued => &[Running, Dead, Succeeded, Withdrawn],
            // Claimed when due, or taken over when its worker's lease ran out.
            Running => &[Queued, Running],
            Succeeded => &[Running],
            Dead => &[Running],
            // Only a job no worker ever took: nothing of it can have gone out.
            Withdrawn => &[Queued],
        }
    }
}

pub struct NewJob<'a> {
    pub kind: JobKind,
    /// Stays the same across attempts; a second job with the same key is not created.
    pub idempotency_key: String,
    /// The id of the entity the job acts on (a supplier order, a shipment).
    pub subject_id: &'a str,
    pub order_id: &'a str,
    pub connection_id: &'a str,
}

/// Adds a job inside the caller's transaction. Returns false when a job with the same
/// idempotency key exists already.
pub async fn enqueue(tx: &mut Tx, job: NewJob<'_>) -> sqlx::Result<bool> {
    enqueue_at(tx, job, now_ms()).await
}

/// Adds a job due at `run_at_ms` (a clock: it survives restarts and runs once, as every job).
pub async fn enqueue_at(tx: &mut Tx, job: NewJob<'_>, run_at_ms: i64) -> sqlx::Result<bool> {
    Ok(enqueue_many_at(tx, vec![(job, run_at_ms)]).await? == 1)
}

/// Adds jobs, each due at its time, in one statement; how many were new (a job with the key of
/// one that exists is not added).
pub async fn enqueue_many_at(tx: &mut Tx, jobs: Vec<(NewJob<'_>, i64)>) -> sqlx::Result<u64> {
    if jobs.is_empty() {
        return Ok(0);
    }
    deferred::execute(tx, &NEW_JOB, job_rows(jobs)).await
}

/// Adds jobs as [`enqueue_many_at`] does, without telling which were new: they may wait for
/// `deferred::flush` (nothing reads a job back in the transaction that makes it; a key that
/// exists by then is left out all the same).
pub async fn add(tx: &mut Tx, jobs: Vec<(NewJob<'_>, i64)>) -> sqlx::Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    deferred::insert(tx, &NEW_JOB, job_rows(jobs)).await
}

static NEW_JOB: deferred::Insert = deferred::Insert {
    head: "insert into jobs (id, kind, idempotency_key, payload, status, attempts, run_at_ms, order_id, connection_id, created_at_ms, updated_at_ms)",
    columns: 11,
    tail: "on conflict (idempotency_key) do nothing",
};

fn job_rows(jobs: Vec<(NewJob<'_>, i64)>) -> Vec<Vec<deferred::Bind>> {
    let now = now_ms();
    jobs.into_iter()
        .map(|(job, run_at_ms)| {
            vec![
                new_id("job").into(),
                job.kind.as_str().into(),
                job.idempotency_key.into(),
                serde_json::json!({ "subject_id": job.subject_id })
                    .to_string()
                    .into(),
                JobStatus::Queued.as_str().into(),
                0i64.into(),
                run_at_ms.into(),
                job.order_id.into(),
                job.connection_id.into(),
                now.into(),
                now.into(),
            ]
        })
        .collect()
}

/// A job a worker holds.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    pub kind: JobKind,
    pub idempotency_key: String,
    pub subject_id: String,
    /// This attempt's number, from 1.
    pub attempt: i64,
    pub order_id: Option<String>,
    /// The connection the job acts through.
    pub connection_id: Option<String>,
}

/// Claims the next due job (or one whose worker's lease ran out), but none that would call a
/// peer through one of the `excluded` connections (this process has as many calls in flight
/// through it as it allows, or its circuit is open).
pub async fn claim(
    db: &Db,
    worker: &str,
    lease: Duration,
    excluded: &[String],
) -> anyhow::Result<Option<ClaimedJob>> {
    Ok(claim_many(db, worker, lease, excluded, 1).await?.pop())
}

/// Claims up to `limit` due jobs (or jobs whose worker's lease ran out), the oldest first, in
/// one statement, as [`claim`] claims one.
pub async fn claim_many(
    db: &Db,
    worker: &str,
    lease: Duration,
    excluded: &[String],
    limit: usize,
) -> anyhow::Result<Vec<ClaimedJob>> {
    let now = now_ms();
    let limit = limit.max(1);
    let lock = match db.backend {
        Backend::Postgres => "for update skip locked",
        // One statement runs under SQLite's single write lock: no two workers get the same row.
        Backend::Sqlite => "",
    };
    let skip = if excluded.is_empty() {
        String::new()
    } else {
        format!(
            "and not (kind in ({}) and connection_id in ({}))",
            JobKind::peer_kinds_sql(),
            placeholders(6, excluded.len())
        )
    };
    // The oldest due jobs and the oldest jobs whose lease ran out, each found through the
    // (status, run_at_ms) index, and the older of them: one `where a or b` over both made
    // SQLite scan the whole table on every claim.
    let sql = format!(
        "update jobs set status = $4, locked_by = $1, locked_until_ms = $2, attempts = attempts + 1, updated_at_ms = $3 \
         where id in (select id from ( \
             select id, run_at_ms from (select id, run_at_ms from jobs where status = $5 and run_at_ms <= $3 {skip} \
                                        order by run_at_ms limit {limit} {lock}) as due \
             union all \
             select id, run_at_ms from (select id, run_at_ms from jobs where status = $4 and locked_until_ms < $3 {skip} \
                                        order by run_at_ms limit {limit} {lock}) as expired \
           ) as candidates order by run_at_ms limit {limit}) \
         returning id, kind, idempotency_key, payload, attempts, order_id, connection_id"
    );
    debug_assert!(JobStatus::Running.allowed_from() == [JobStatus::Queued, JobStatus::Running]);
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(worker)
        .bind(now + ms(lease))
        .bind(now)
        .bind(JobStatus::Running.as_str())
        .bind(JobStatus::Queued.as_str());
    for connection in excluded {
        query = query.bind(connection.as_str());
    }
    let rows = query.fetch_all(&db.pool).await?;
    rows.iter().map(claimed_from_row).collect()
}

/// Gives back jobs claimed but not attempted (their connection's limit was reached
/// meanwhile): queued again as they were, their attempt not counted. Only by the worker
/// holding them. How many were given back.
pub async fn give_back(db: &Db, jobs: &[ClaimedJob], worker: &str) -> sqlx::Result<u64> {
    if jobs.is_empty() {
        return Ok(0);
    }
    debug_assert!(
        JobStatus::Queued
            .allowed_from()
            .contains(&JobStatus::Running)
    );
    let sql = format!(
        "update jobs set status = $1, attempts = attempts - 1, locked_by = null, locked_until_ms = null, updated_at_ms = $2 \
         where locked_by = $3 and status = $4 and id in ({})",
        placeholders(5, jobs.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(JobStatus::Queued.as_str())
        .bind(now_ms())
        .bind(worker)
        .bind(JobStatus::Running.as_str());
    for job in jobs {
        query = query.bind(job.id.as_str());
    }
    Ok(query.execute(&db.pool).await?.rows_affected())
}

/// Puts off to `until_ms` the queued jobs that would call a peer through `connection_id` before
/// then (its circuit opened: they would fail too, each spending an attempt of its schedule).
/// How many were put off.
pub async fn postpone_connection(db: &Db, connection_id: &str, until_ms: i64) -> sqlx::Result<u64> {
    let sql = format!(
        "update jobs set run_at_ms = $1, updated_at_ms = $2 \
         where connection_id = $3 and status = $4 and run_at_ms < $1 and kind in ({})",
        JobKind::peer_kinds_sql()
    );
    let r = sqlx::query(AssertSqlSafe(sql))
        .bind(until_ms)
        .bind(now_ms())
        .bind(connection_id)
        .bind(JobStatus::Queued.as_str())
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected())
}

fn claimed_from_row(r: &AnyRow) -> anyhow::Result<ClaimedJob> {
    let kind: String = r.try_get("kind")?;
    let payload: serde_json::Value = serde_json::from_str(&r.try_get::<String, _>("payload")?)?;
    Ok(ClaimedJob {
        id: r.try_get("id")?,
        kind: JobKind::parse(&kind).ok_or_else(|| anyhow::anyhow!("unknown job kind {kind}"))?,
        idempotency_key: r.try_get("idempotency_key")?,
        subject_id: payload["subject_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        attempt: r.try_get("attempts")?,
        order_id: r.try_get("order_id")?,
        connection_id: r.try_get("connection_id")?,
    })
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded,
    /// Worth another attempt (transient peer error, trap, deadline).
    Failed {
        kind: String,
        error: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (the peer refused for good): dead-letter now.
    Refused {
        kind: String,
        error: String,
    },
}

/// What became of the job after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Done,
    RetryAt(i64),
    Dead,
}

/// The delay before the next attempt after `attempt` failed, or `None` when the schedule is
/// spent. A peer's `Retry-After` is honoured when it asks for longer.
pub fn next_delay(
    settings: &JobSettings,
    attempt: i64,
    retry_after: Option<Duration>,
    jitter_draw: f64,
) -> Option<Duration> {
    let index = usize::try_from(attempt - 1).ok()?;
    let base = *settings.retry_schedule.get(index)?;
    // jitter_draw in [-1, 1] spreads the delay by up to retry_jitter either way.
    let factor = 1.0 + settings.retry_jitter * jitter_draw.clamp(-1.0, 1.0);
    let jittered = base.mul_f64(factor.max(0.0));
    let retry_after = retry_after.map(|ra| ra.min(settings.max_retry_after));
    Some(retry_after.map_or(jittered, |ra| ra.max(jittered)))
}

/// What an attempt leaves to be written when the job completes, in the transaction that
/// records the completion: that of one job (its own) or of several jobs finished together (a
/// group commit: one write transaction for a batch of pushes).
/// It may be run twice: a batch's transaction rolled back (one of its jobs' effects failed,
/// or a lease was lost) is written again, each job alone.
pub type Later = Box<dyn for<'t> Fn(&'t mut Tx) -> LaterFuture<'t> + Send + Sync>;
pub type LaterFuture<'t> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 't>>;

/// What an attempt changed, committed with the job's completion or not at all.
pub enum Effects {
    None,
    /// A transaction the attempt began and wrote in (it holds the write lock on SQLite until
    /// the job completes in it).
    Own(Tx),
    /// Writes made when the job completes, in the completing transaction, which may be shared
    /// with other jobs' completions.
    Later(Later),
}

/// What an attempt did: how it ended, and what it changed (a supplier order moved, a job
/// enqueued), which commits with the job's completion or not at all.
pub struct Attempt {
    pub outcome: Outcome,
    pub effects: Effects,
}

impl From<Outcome> for Attempt {
    fn from(outcome: Outcome) -> Self {
        Self {
            outcome,
            effects: Effects::None,
        }
    }
}

impl Attempt {
    /// Succeeded, with these effects.
    pub fn done(effects: Tx) -> Self {
        Self {
            outcome: Outcome::Succeeded,
            effects: Effects::Own(effects),
        }
    }

    /// Succeeded, with effects written when the job completes.
    pub fn done_later(effects: Later) -> Self {
        Self {
            outcome: Outcome::Succeeded,
            effects: Effects::Later(effects),
        }
    }
}

/// What becomes of a job after an attempt that ended with `outcome`: done, retried on the
/// schedule (with jitter and the peer's `Retry-After`), or dead.
pub fn disposition(settings: &JobSettings, job: &ClaimedJob, outcome: &Outcome) -> Disposition {
    match outcome {
        Outcome::Succeeded => Disposition::Done,
        Outcome::Refused { .. } => Disposition::Dead,
        Outcome::Failed { retry_after, .. } => {
            let draw = rand::rng().random_range(-1.0..=1.0);
            match next_delay(settings, job.attempt, *retry_after, draw) {
                Some(delay) => Disposition::RetryAt(now_ms() + ms(delay)),
                None => Disposition::Dead,
            }
        }
    }
}

/// An attempt's record: who made it, when, with which plugin version.
pub struct AttemptRecord<'a> {
    pub job: &'a ClaimedJob,
    pub worker: &'a str,
    pub started_at_ms: i64,
    pub plugin_version: Option<&'a str>,
}

/// Moves the job on to `disposition` and records the attempt, in `tx`, if `worker` still holds
/// its lease; false (nothing written) when another worker took the job over: the caller rolls
/// back the attempt's effects and records the loss with [`record_lost_lease`].
pub async fn complete(
    tx: &mut Tx,
    record: &AttemptRecord<'_>,
    disposition: Disposition,
    outcome: &Outcome,
) -> sqlx::Result<bool> {
    let now = now_ms();
    let (status, run_at) = match disposition {
        Disposition::Done => (JobStatus::Succeeded, now),
        Disposition::RetryAt(at) => (JobStatus::Queued, at),
        Disposition::Dead => (JobStatus::Dead, now),
    };
    debug_assert!(status.allowed_from().contains(&JobStatus::Running));
    let error = match outcome {
        Outcome::Succeeded => None,
        Outcome::Failed { error, .. } | Outcome::Refused { error, .. } => Some(error.as_str()),
    };
    let updated = sqlx::query(
        "update jobs set status = $1, run_at_ms = $2, last_error = $3, locked_by = null, locked_until_ms = null, updated_at_ms = $4 \
         where id = $5 and locked_by = $6 and status = $7",
    )
    .bind(status.as_str())
    .bind(run_at)
    .bind(error)
    .bind(now)
    .bind(&record.job.id)
    .bind(record.worker)
    .bind(JobStatus::Running.as_str())
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    let label = match disposition {
        Disposition::Done => "succeeded",
        Disposition::RetryAt(_) => "retry",
        Disposition::Dead => "dead",
    };
    insert_attempt(tx, record, label, outcome).await?;
    Ok(true)
}

/// Completes the succeeded attempts of `records`, all held by `worker`, with one statement (and
/// their attempts with one more, in a [`deferred`] scope); false (nothing written) when any of
/// them was taken over by another worker: the caller rolls back and completes each alone.
pub async fn complete_succeeded(
    tx: &mut Tx,
    worker: &str,
    records: &[AttemptRecord<'_>],
) -> sqlx::Result<bool> {
    if records.is_empty() {
        return Ok(true);
    }
    debug_assert!(
        JobStatus::Succeeded
            .allowed_from()
            .contains(&JobStatus::Running)
    );
    debug_assert!(records.iter().all(|r| r.worker == worker));
    let now = now_ms();
    let sql = format!(
        "update jobs set status = $1, run_at_ms = $2, last_error = null, locked_by = null, locked_until_ms = null, updated_at_ms = $2 \
         where locked_by = $3 and status = $4 and id in ({})",
        placeholders(5, records.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(JobStatus::Succeeded.as_str())
        .bind(now)
        .bind(worker)
        .bind(JobStatus::Running.as_str());
    for r in records {
        query = query.bind(r.job.id.as_str());
    }
    if query.execute(&mut **tx).await?.rows_affected() != records.len() as u64 {
        return Ok(false);
    }
    for record in records {
        insert_attempt(tx, record, "succeeded", &Outcome::Succeeded).await?;
    }
    Ok(true)
}

/// Records an attempt whose job another worker took over (its lease ran out): its effects
/// were rolled back.
pub async fn record_lost_lease(
    tx: &mut Tx,
    record: &AttemptRecord<'_>,
    outcome: &Outcome,
) -> sqlx::Result<()> {
    tracing::warn!(job_id = %record.job.id, "job was taken over by another worker: this attempt's effects are rolled back");
    insert_attempt(tx, record, "lease_lost", outcome).await
}

async fn insert_attempt(
    tx: &mut Tx,
    record: &AttemptRecord<'_>,
    label: &str,
    outcome: &Outcome,
) -> sqlx::Result<()> {
    let (kind, error) = match outcome {
        Outcome::Succeeded => (None, None),
        Outcome::Failed { kind, error, .. } | Outcome::Refused { kind, error } => {
            (Some(kind.as_str()), Some(error.as_str()))
        }
    };
    let row = vec![
        new_id("att").into(),
        record.job.id.as_str().into(),
        record.job.attempt.into(),
        record.worker.into(),
        record.started_at_ms.into(),
        now_ms().into(),
        label.into(),
        kind.into(),
        error.into(),
        record.plugin_version.into(),
    ];
    deferred::insert(tx, &NEW_ATTEMPT, vec![row]).await
}

static NEW_ATTEMPT: deferred::Insert = deferred::Insert {
    head: "insert into job_attempts (id, job_id, attempt, worker, started_at_ms, finished_at_ms, outcome, error_kind, error, plugin_version)",
    columns: 10,
    tail: "",
};

/// A job as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    pub idempotency_key: String,
    pub status: String,
    pub attempts: i64,
    pub run_at_ms: i64,
    pub last_error: Option<String>,
    pub order_id: Option<String>,
    pub connection_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub attempt_log: Vec<AttemptView>,
}

#[derive(Debug, Serialize)]
pub struct AttemptView {
    pub attempt: i64,
    pub worker: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub outcome: String,
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// The plugin version the attempt called.
    pub plugin_version: Option<String>,
}

const JOB_COLUMNS: &str = "id, kind, idempotency_key, status, attempts, run_at_ms, last_error, order_id, connection_id, created_at_ms, updated_at_ms";

fn job_from_row(r: &AnyRow) -> sqlx::Result<JobView> {
    Ok(JobView {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        idempotency_key: r.try_get("idempotency_key")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        run_at_ms: r.try_get("run_at_ms")?,
        last_error: r.try_get("last_error")?,
        order_id: r.try_get("order_id")?,
        connection_id: r.try_get("connection_id")?,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
        attempt_log: Vec::new(),
    })
}

/// Jobs matching `filter_sql` (a where clause over `jobs` with `$1` bound to `arg`), each with
/// its attempts, loaded with two queries.
async fn load_jobs(conn: &mut Conn, filter_sql: &str, arg: &str) -> sqlx::Result<Vec<JobView>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {JOB_COLUMNS} from jobs where {filter_sql} order by created_at_ms"
    )))
    .bind(arg)
    .fetch_all(&mut *conn)
    .await?;
    let mut jobs = rows
        .iter()
        .map(job_from_row)
        .collect::<sqlx::Result<Vec<_>>>()?;
    let attempts = sqlx::query(AssertSqlSafe(format!(
        "select job_id, attempt, worker, started_at_ms, finished_at_ms, outcome, error_kind, error, plugin_version from job_attempts \
         where job_id in (select id from jobs where {filter_sql}) order by attempt"
    )))
    .bind(arg)
    .fetch_all(&mut *conn)
    .await?;
    for a in attempts {
        let job_id: String = a.try_get("job_id")?;
        if let Some(job) = jobs.iter_mut().find(|j| j.id == job_id) {
            job.attempt_log.push(AttemptView {
                attempt: a.try_get("attempt")?,
                worker: a.try_get("worker")?,
                started_at_ms: a.try_get("started_at_ms")?,
                finished_at_ms: a.try_get("finished_at_ms")?,
                outcome: a.try_get("outcome")?,
                error_kind: a.try_get("error_kind")?,
                error: a.try_get("error")?,
                plugin_version: a.try_get("plugin_version")?,
            });
        }
    }
    Ok(jobs)
}

/// How many jobs of `kind` there are in each status.
pub async fn count_by_status(db: &Db, kind: JobKind) -> sqlx::Result<BTreeMap<String, i64>> {
    Ok(sqlx::query_as::<_, (String, i64)>(
        "select status, count(*) from jobs where kind = $1 group by status",
    )
    .bind(kind.as_str())
    .fetch_all(&db.pool)
    .await?
    .into_iter()
    .collect())
}

pub async fn for_order(conn: &mut Conn, order_id: &str) -> sqlx::Result<Vec<JobView>> {
    load_jobs(conn, "order_id = $1", order_id).await
}

pub async fn with_status(db: &Db, status: &str) -> sqlx::Result<Vec<JobView>> {
    load_jobs(&mut *db.pool.acquire().await?, "status = $1", status).await
}

pub async fn get(db: &Db, id: &str) -> sqlx::Result<Option<JobView>> {
    Ok(load_jobs(&mut *db.pool.acquire().await?, "id = $1", id)
        .await?
        .pop())
}

/// Puts a dead job back in the queue, due now, with a fresh schedule, inside the caller's
/// transaction: whatever the retry has to restore first (a failed-over supplier order) commits
/// with it, so no worker claims the job before that is in place. Returns the job's kind and the
/// id of what it acts on, or `None` when the job does not exist or is not dead.
pub async fn retry_dead(tx: &mut Tx, id: &str) -> anyhow::Result<Option<(String, Option<String>)>> {
    let now = now_ms();
    debug_assert!(JobStatus::Queued.allowed_from().contains(&JobStatus::Dead));
    let result = sqlx::query(
        "update jobs set status = $3, attempts = 0, run_at_ms = $1, updated_at_ms = $1 where id = $2 and status = $4",
    )
    .bind(now)
    .bind(id)
    .bind(JobStatus::Queued.as_str())
    .bind(JobStatus::Dead.as_str())
    .execute(&mut **tx)
    .await?;
    if result.rows_affected() != 1 {
        return Ok(None);
    }
    let (kind, payload): (String, String) =
        sqlx::query_as("select kind, payload from jobs where id = $1")
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
    let subject = serde_json::from_str::<serde_json::Value>(&payload)?["subject_id"]
        .as_str()
        .map(str::to_string);
    Ok(Some((kind, subject)))
}

/// Puts a finished job (succeeded or dead) back in the queue, due now, with a fresh schedule,
/// inside the caller's transaction: the same job, so its idempotency key (what the peer
/// deduplicates by) stays the same. False when no finished job has that key.
pub async fn requeue(tx: &mut Tx, idempotency_key: &str) -> sqlx::Result<bool> {
    let now = now_ms();
    let result = sqlx::query(
        "update jobs set status = $3, attempts = 0, run_at_ms = $1, updated_at_ms = $1 \
         where idempotency_key = $2 and status in ($4, $5, $6)",
    )
    .bind(now)
    .bind(idempotency_key)
    .bind(JobStatus::Queued.as_str())
    .bind(JobStatus::Succeeded.as_str())
    .bind(JobStatus::Dead.as_str())
    .bind(JobStatus::Withdrawn.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Takes back a job no worker has taken yet (queued, never attempted), by compare-and-set: true
/// when it is withdrawn, and no worker can take it any more; false when a worker took it (it
/// runs, or ran: what it does may have gone out). A worker claiming it at the same moment
/// holds its row: this waits for the claim, then finds it taken.
pub async fn withdraw(tx: &mut Tx, idempotency_key: &str) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "update jobs set status = $1, updated_at_ms = $2 where idempotency_key = $3 and status = $4 and attempts = 0",
    )
    .bind(JobStatus::Withdrawn.as_str())
    .bind(now_ms())
    .bind(idempotency_key)
    .bind(JobStatus::Queued.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(result.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> JobSettings {
        JobSettings {
            workers: 1,
            poll_interval: Duration::from_millis(100),
            lease: Duration::from_secs(60),
            retry_schedule: vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(1800),
            ],
            retry_jitter: 0.2,
            max_retry_after: Duration::from_secs(3600),
            per_connection: 1,
            claim_batch: 8,
            breaker: crate::config::BreakerSettings {
                failures: 0,
                cool_down: Duration::from_secs(1),
                max_cool_down: Duration::from_secs(1),
            },
        }
    }

    #[test]
    fn a_job_finishes_only_from_running_and_nothing_skips_a_worker() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        // Only a worker finishes a job, and a job is run only after it was queued (or its
        // worker's lease ran out).
        assert_eq!(JobStatus::Succeeded.allowed_from(), &[JobStatus::Running]);
        assert_eq!(JobStatus::Dead.allowed_from(), &[JobStatus::Running]);
        assert_eq!(
            JobStatus::Running.allowed_from(),
            &[JobStatus::Queued, JobStatus::Running]
        );
    }

    #[test]
    fn schedule_jitter_retry_after_and_exhaustion() {
        let s = settings();
        assert_eq!(next_delay(&s, 1, None, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(next_delay(&s, 1, None, 1.0), Some(Duration::from_secs(6)));
        assert_eq!(next_delay(&s, 1, None, -1.0), Some(Duration::from_secs(4)));
        assert_eq!(next_delay(&s, 2, None, 0.0), Some(Duration::from_secs(300)));
        // Retry-After wins when it asks for longer, not when shorter.
        assert_eq!(
            next_delay(&s, 1, Some(Duration::from_secs(60)), 0.0),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            next_delay(&s, 2, Some(Duration::from_secs(60)), 0.0),
            Some(Duration::from_secs(300))
        );
        // A peer asking for years is put off no longer than the setting.
        assert_eq!(
            next_delay(&s, 1, Some(Duration::from_secs(99_999_999_999)), 0.0),
            Some(Duration::from_secs(3600))
        );
        // Three delays: the fourth failure dead-letters.
        assert_eq!(
            next_delay(&s, 3, None, 0.0),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(next_delay(&s, 4, None, 0.0), None);
    }
}
