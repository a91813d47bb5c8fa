//! The job workers. Each worker claims a due job, runs it with the handler its stage registered
//! for the job's kind, and records the outcome (done, retry later, or dead-lettered). The worker
//! knows no stage: the application hands it every stage's handlers (`crate::app`), so that a
//! stage's jobs are declared next to the code they run (`dispatch::jobs`, `fulfilment::jobs`…).
//! The workers of a process share a [`throttle::Throttle`]: a limit of calls in flight and a
//! circuit breaker per connection, so that one slow or broken peer does not hold them all.

pub mod throttle;

use crate::calls;
use crate::db::{self, Tx, deferred, now_ms};
use crate::services::Services;
use crate::store::jobs::{
    self, Attempt, AttemptRecord, ClaimedJob, Disposition, Effects, JobKind, Outcome,
};
use crate::store::orders::{self, OrderStatus};
use serde_json::json;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use throttle::{Throttle, Verdict};
use tokio::sync::watch;
use tracing::Instrument;

/// A job's attempt, running.
pub type JobFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Attempt>> + Send + 'a>>;
/// What a dead job sets off, running in the transaction that records its death.
pub type DeadFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;
/// What a kind's attempts of one batch read together, before they start ([`Handler::prepare`]).
pub type Prepared = Arc<dyn std::any::Any + Send + Sync>;
/// A batch's reads, running.
pub type PrepareFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Prepared>> + Send + 'a>>;

tokio::task_local! {
    /// What the batch of the attempt running on this task read for its kind.
    static PREPARED: Option<Prepared>;
}

/// What [`Handler::prepare`] read for the batch of the attempt running on this task, if it
/// read something of type `T`.
pub fn prepared<T: Send + Sync + 'static>() -> Option<Arc<T>> {
    PREPARED
        .try_with(|p| p.clone())
        .ok()
        .flatten()
        .and_then(|p| p.downcast::<T>().ok())
}

/// How a stage runs one kind of job.
#[derive(Clone, Copy)]
pub struct Handler {
    pub kind: JobKind,
    /// One attempt. Effects it commits itself are compare-and-set or idempotent; effects that
    /// must commit with the job's completion are returned in the [`Attempt`].
    pub run: for<'a> fn(&'a Services, &'a ClaimedJob) -> JobFuture<'a>,
    /// What the job's death sets off (given the last error), in the transaction that records
    /// it, by the worker still holding the lease. `None`: its order goes on hold, so that an
    /// operator sees it.
    pub on_dead: Option<for<'a> fn(&'a mut Tx, &'a ClaimedJob, &'a str) -> DeadFuture<'a>>,
    /// Reads for the attempts of a batch at once, what each would read for itself (a push's
    /// supplier order and order): its attempts find it with [`prepared`] and read what it does
    /// not hold. Read just before they start, it is as current as their own reads; should it
    /// fail, each reads its own.
    pub prepare: Option<for<'a> fn(&'a Services, &'a [ClaimedJob]) -> PrepareFuture<'a>>,
}

/// Every job kind's handler.
#[derive(Clone)]
pub struct Handlers(Arc<HashMap<JobKind, Handler>>);

impl Handlers {
    /// Fails when a kind has two handlers or none: a job nobody runs would wait forever.
    pub fn new(handlers: impl IntoIterator<Item = Handler>) -> anyhow::Result<Self> {
        let mut by_kind = HashMap::new();
        for handler in handlers {
            if by_kind.insert(handler.kind, handler).is_some() {
                anyhow::bail!("two handlers for the job kind {}", handler.kind.as_str());
            }
        }
        let missing: Vec<_> = JobKind::ALL
            .iter()
            .filter(|k| !by_kind.contains_key(k))
            .map(|k| k.as_str())
            .collect();
        anyhow::ensure!(
            missing.is_empty(),
            "no handler for the job kinds {missing:?}"
        );
        Ok(Self(Arc::new(by_kind)))
    }

    /// The handler of a kind (every kind has one: [`Handlers::new`] checked).
    pub fn of(&self, kind: JobKind) -> &Handler {
        &self.0[&kind]
    }
}

/// Runs `count` workers until `shutdown` turns true; each finishes its current job first.
pub fn spawn(
    state: Services,
    handlers: Handlers,
    count: usize,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let throttle = Arc::new(Throttle::new(&state.settings.jobs));
    (0..count)
        .map(|i| {
            let state = state.clone();
            let handlers = handlers.clone();
            let shutdown = shutdown.clone();
            let throttle = throttle.clone();
            let worker = format!("{}-w{i}", state.instance_id);
            tokio::spawn(
                async move { worker_loop(state, handlers, throttle, worker, shutdown).await },
            )
        })
        .collect()
}

async fn worker_loop(
    state: Services,
    handlers: Handlers,
    throttle: Arc<Throttle>,
    worker: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = state.settings.jobs.clone();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let excluded = throttle.excluded();
        let claimed = jobs::claim_many(
            &state.db,
            &worker,
            settings.lease,
            &excluded,
            settings.claim_batch,
        )
        .await;
        match claimed {
            Ok(claimed) if !claimed.is_empty() => {
                let mut admitted = Vec::with_capacity(claimed.len());
                let mut no_room = Vec::new();
                for job in claimed {
                    match throttle.enter(&job) {
                        Ok(call) => admitted.push((job, call)),
                        // Its connection has as many calls in flight as allowed (this batch's
                        // first ones, or another worker's since the claim): the job goes back
                        // untouched, and the next claim passes the connection by.
                        Err(_) => no_room.push(job),
                    }
                }
                // There may be more: the next idle worker looks too. Not while a connection is
                // full: the next would likely find only its calls, after reading past all of
                // them (idle workers look again at `jobs.poll_interval`).
                if !throttle.any_full() {
                    state.job_signal.notify_one();
                }
                if let Err(e) = jobs::give_back(&state.db, &no_room, &worker).await {
                    // Their lease runs out and they are claimed again: nothing is lost.
                    tracing::error!(jobs = no_room.len(), error = %e, "cannot give jobs back");
                }
                run_batch(&state, &handlers, &throttle, &worker, admitted).await;
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(worker = %worker, error = format!("{e:#}"), "cannot claim a job")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = state.job_signal.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// A connection's circuit is open (a call failed): its queued calls are put off to the end
/// of the cool-down, the failed one's retry with them.
async fn open_circuit(state: &Services, connection_id: &str, opened: throttle::Opened) {
    let postponed = jobs::postpone_connection(&state.db, connection_id, opened.until).await;
    if opened.now {
        metrics::counter!("daifa_connection_circuit_opened_total").increment(1);
    }
    match postponed {
        Ok(n) if opened.now => tracing::warn!(
            connection_id,
            closed_for_ms = opened.until - now_ms(),
            postponed = n,
            "circuit open: the connection's calls keep failing; its queued calls are put off"
        ),
        Ok(_) => {}
        // They are tried when due, and fail again: nothing is lost.
        Err(e) => tracing::error!(connection_id, error = %e, "cannot put off a connection's calls"),
    }
}

/// An attempt made, waiting to be completed.
pub struct Finished {
    pub job: ClaimedJob,
    pub started_at_ms: i64,
    pub attempt: Attempt,
    pub plugin_version: Option<String>,
}

/// What became of a finished attempt: `Ok(None)` when another worker had taken the job over
/// (the attempt's effects rolled back); `Err` when nothing of it could be recorded (the lease
/// runs out and the job is attempted again: nothing is lost).
pub type Completion = anyhow::Result<Option<Disposition>>;

/// Runs a batch of claimed jobs at once, each on a task of its own, and completes them as they
/// end: an attempt that began a transaction of its own completes in it at once (on SQLite it
/// holds the write lock, so it must not wait for anything of this worker's); the others
/// complete together, those that ended by the time the first of them did in one transaction
/// (one commit for them), so that a slow call does not keep the batch's quick ones waiting.
async fn run_batch(
    state: &Services,
    handlers: &Handlers,
    throttle: &Arc<Throttle>,
    worker: &str,
    admitted: Vec<(ClaimedJob, Option<throttle::Call>)>,
) {
    let prepared = prepare(state, handlers, &admitted).await;
    let mut running = tokio::task::JoinSet::new();
    for (job, call) in admitted {
        let (state, handlers, throttle) = (state.clone(), handlers.clone(), throttle.clone());
        let worker = worker.to_string();
        let prepared = prepared.get(&job.kind).cloned();
        running.spawn(async move {
            let span = job_span(&job);
            let finished = PREPARED
                .scope(prepared, attempt(&state, handlers.of(job.kind), job))
                .instrument(span.clone())
                .await;
            if matches!(finished.attempt.effects, Effects::Own(_)) {
                let verdict = Verdict::of(&finished.attempt.outcome);
                let report = Report::of(&finished);
                let completion = complete_own(&state, &handlers, &worker, finished)
                    .instrument(span.clone())
                    .await;
                report.log(&span, &completion);
                leave(&state, &throttle, call, verdict, report.connection_id).await;
                return None;
            }
            Some((finished, call, span))
        });
    }
    while let Some(first) = running.join_next().await {
        let mut ended = Vec::new();
        let mut next = Some(first);
        while let Some(joined) = next {
            match joined {
                Ok(attempt) => ended.extend(attempt),
                // Its job stays claimed until its lease runs out, then is attempted again.
                Err(e) => tracing::error!(worker, error = %e, "a job's attempt panicked"),
            }
            next = running.try_join_next();
        }
        complete_ended(state, handlers, throttle, worker, ended).await;
    }
}

/// What each kind's [`Handler::prepare`] read for its jobs of the batch.
async fn prepare(
    state: &Services,
    handlers: &Handlers,
    admitted: &[(ClaimedJob, Option<throttle::Call>)],
) -> HashMap<JobKind, Prepared> {
    let mut by_kind: HashMap<JobKind, Vec<ClaimedJob>> = HashMap::new();
    for (job, _) in admitted {
        if handlers.of(job.kind).prepare.is_some() {
            by_kind.entry(job.kind).or_default().push(job.clone());
        }
    }
    let mut prepared = HashMap::new();
    for (kind, jobs) in by_kind {
        let Some(prepare) = handlers.of(kind).prepare else {
            continue;
        };
        match prepare(state, &jobs).await {
            Ok(read) => {
                prepared.insert(kind, read);
            }
            // Each attempt reads its own.
            Err(e) => tracing::warn!(
                kind = kind.as_str(),
                error = format!("{e:#}"),
                "cannot read for a batch of jobs"
            ),
        }
    }
    prepared
}

/// Completes attempts that ended together, in one transaction.
async fn complete_ended(
    state: &Services,
    handlers: &Handlers,
    throttle: &Throttle,
    worker: &str,
    mut ended: Vec<(Finished, Option<throttle::Call>, tracing::Span)>,
) {
    if ended.is_empty() {
        return;
    }
    // The batch locks its orders in the order of their ids, so that two workers' batches never
    // wait for each other. Should it deadlock with another transaction all the same (PostgreSQL
    // then fails one statement), that job's savepoint alone is rolled back and it is retried.
    ended.sort_by(|a, b| a.0.job.order_id.cmp(&b.0.job.order_id));
    let (finished, rest): (Vec<_>, Vec<_>) = ended
        .into_iter()
        .map(|(finished, call, span)| {
            let report = Report::of(&finished);
            let verdict = Verdict::of(&finished.attempt.outcome);
            (finished, (call, span, report, verdict))
        })
        .unzip();
    let completions = complete_together(state, handlers, worker, finished).await;
    for (completion, (call, span, report, verdict)) in completions.into_iter().zip(rest) {
        report.log(&span, &completion);
        leave(state, throttle, call, verdict, report.connection_id).await;
    }
}

/// Ends a call through a connection with what its outcome says of the peer.
async fn leave(
    state: &Services,
    throttle: &Throttle,
    call: Option<throttle::Call>,
    verdict: Verdict,
    connection_id: Option<String>,
) {
    if let Some(opened) = call.and_then(|call| throttle.leave(call, verdict)) {
        open_circuit(state, &connection_id.unwrap_or_default(), opened).await;
    }
}

fn job_span(job: &ClaimedJob) -> tracing::Span {
    // Instrumented rather than entered: a span entered across an await would also tag whatever
    // else the thread runs meanwhile.
    tracing::info_span!("job", job_id = %job.id, kind = job.kind.as_str(), attempt = job.attempt)
}

/// One attempt, with the plugin version it called.
async fn attempt(state: &Services, handler: &Handler, job: ClaimedJob) -> Finished {
    let started_at_ms = now_ms();
    let (attempt, plugin_version) = calls::ATTEMPT_PLUGIN_VERSION
        .scope(std::cell::RefCell::new(None), async {
            let attempt = (handler.run)(state, &job).await;
            (
                attempt,
                calls::ATTEMPT_PLUGIN_VERSION.with(|v| v.borrow().clone()),
            )
        })
        .await;
    let attempt = attempt.unwrap_or_else(|e| {
        // The gateway's own failure (database down): retry like a transient peer error.
        Attempt::from(internal(e))
    });
    Finished {
        job,
        started_at_ms,
        attempt,
        plugin_version,
    }
}

fn internal(e: anyhow::Error) -> Outcome {
    Outcome::Failed {
        kind: "internal".into(),
        error: format!("{e:#}"),
        retry_after: None,
    }
}

/// What is logged and counted of a completed attempt.
struct Report {
    kind: JobKind,
    started_at_ms: i64,
    outcome: Outcome,
    connection_id: Option<String>,
}

impl Report {
    fn of(finished: &Finished) -> Self {
        Self {
            kind: finished.job.kind,
            started_at_ms: finished.started_at_ms,
            outcome: finished.attempt.outcome.clone(),
            connection_id: finished.job.connection_id.clone(),
        }
    }

    fn log(&self, span: &tracing::Span, completion: &Completion) {
        let _entered = span.enter();
        let (kind, outcome) = (self.kind.as_str(), &self.outcome);
        if let Ok(Some(disposition)) = completion {
            let label = match disposition {
                Disposition::Done => "succeeded",
                Disposition::RetryAt(_) => "retry",
                Disposition::Dead => "dead",
            };
            metrics::counter!("daifa_job_attempts_total", "kind" => kind, "outcome" => label)
                .increment(1);
            metrics::histogram!("daifa_job_attempt_duration_seconds", "kind" => kind)
                .record((now_ms() - self.started_at_ms) as f64 / 1000.0);
        }
        match completion {
            Ok(Some(Disposition::Done)) => tracing::info!("job done"),
            Ok(Some(Disposition::RetryAt(at))) => {
                tracing::warn!(retry_in_ms = at - now_ms(), outcome = ?outcome, "job failed, will retry")
            }
            Ok(Some(Disposition::Dead)) => tracing::error!(outcome = ?outcome, "job dead-lettered"),
            Ok(None) => {
                metrics::counter!("daifa_job_attempts_total", "kind" => kind, "outcome" => "lease_lost").increment(1);
            }
            // Nothing of the attempt committed: the lease will run out and another attempt
            // will be made; nothing is lost.
            Err(e) => tracing::error!(error = format!("{e:#}"), "cannot record a job's outcome"),
        }
    }
}

/// Completes attempts, each by the worker still holding its lease only: the job's new state,
/// the attempt's effects and, for a dead job, what its death sets off commit at once. Those
/// with a transaction of their own complete in it; the others together, in one transaction.
pub async fn complete(
    state: &Services,
    handlers: &Handlers,
    worker: &str,
    finished: Vec<Finished>,
) -> Vec<Completion> {
    let mut completions = Vec::with_capacity(finished.len());
    let mut together = Vec::new();
    for f in finished {
        if matches!(f.attempt.effects, Effects::Own(_)) {
            completions.push(Some(complete_own(state, handlers, worker, f).await));
        } else {
            completions.push(None);
            together.push(f);
        }
    }
    let mut shared = complete_together(state, handlers, worker, together)
        .await
        .into_iter();
    completions
        .into_iter()
        .map(|c| c.unwrap_or_else(|| shared.next().expect("one completion per attempt")))
        .collect()
}

/// Completes an attempt in the transaction it began.
async fn complete_own(
    state: &Services,
    handlers: &Handlers,
    worker: &str,
    finished: Finished,
) -> Completion {
    let Finished {
        job,
        started_at_ms,
        attempt: Attempt { outcome, effects },
        plugin_version,
    } = finished;
    let mut tx = match effects {
        Effects::Own(tx) => tx,
        _ => state.db.begin().await?,
    };
    let record = AttemptRecord {
        job: &job,
        worker,
        started_at_ms,
        plugin_version: plugin_version.as_deref(),
    };
    let disposition = jobs::disposition(&state.settings.jobs, &job, &outcome);
    if !jobs::complete(&mut tx, &record, disposition, &outcome).await? {
        tx.rollback().await?;
        let mut tx = state.db.begin().await?;
        jobs::record_lost_lease(&mut tx, &record, &outcome).await?;
        tx.commit().await?;
        return Ok(None);
    }
    if disposition == Disposition::Dead {
        on_dead(&mut tx, handlers.of(job.kind), &job, &outcome).await?;
    }
    tx.commit().await?;
    // No worker is woken: this one claims again at once, the jobs the attempt made included.
    Ok(Some(disposition))
}

/// Completes attempts in one transaction. First all at once, with as few statements as can
/// be: their effects' inserts put off to one statement per table ([`deferred`]), the
/// succeeded jobs completed with one statement. Should anything fail there (an effect, a lease
/// another worker took over, a dead job's consequences, the database), all of it is rolled
/// back and written again with each attempt in a savepoint of its own: one whose effects fail
/// is rolled back to it and recorded as a failed attempt (retried on the schedule), one whose
/// job another worker took over is rolled back and recorded as such; the others are kept.
async fn complete_together(
    state: &Services,
    handlers: &Handlers,
    worker: &str,
    finished: Vec<Finished>,
) -> Vec<Completion> {
    if finished.is_empty() {
        return Vec::new();
    }
    let n = finished.len();
    let finished: Vec<Shared> = finished.into_iter().map(Shared::from).collect();
    if n > 1 {
        match deferred::deferring(write_at_once(state, worker, &finished)).await {
            Ok(Some(dispositions)) => {
                return dispositions.into_iter().map(|d| Ok(Some(d))).collect();
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                jobs = n,
                error = format!("{e:#}"),
                "a batch of job completions failed; writing each on its own"
            ),
        }
    }
    match write_together(state, handlers, worker, finished).await {
        Ok(completions) => completions,
        Err(e) => {
            let e = format!("{e:#}");
            (0..n).map(|_| Err(anyhow::anyhow!("{e}"))).collect()
        }
    }
}

/// An attempt completed with others: its effects, if any, are written then.
struct Shared {
    job: ClaimedJob,
    started_at_ms: i64,
    outcome: Outcome,
    effects: Option<jobs::Later>,
    plugin_version: Option<String>,
}

impl From<Finished> for Shared {
    fn from(f: Finished) -> Self {
        let Attempt { outcome, effects } = f.attempt;
        let effects = match effects {
            Effects::Later(effects) => Some(effects),
            Effects::None => None,
            // `complete` completes those in their own transaction.
            Effects::Own(_) => unreachable!("an attempt with its own transaction is not shared"),
        };
        Self {
            job: f.job,
            started_at_ms: f.started_at_ms,
            outcome,
            effects,
            plugin_version: f.plugin_version,
        }
    }
}

impl Shared {
    /// The attempt's record, made by `worker`.
    fn record<'a>(&'a self, worker: &'a str) -> AttemptRecord<'a> {
        AttemptRecord {
            job: &self.job,
            worker,
            started_at_ms: self.started_at_ms,
            plugin_version: self.plugin_version.as_deref(),
        }
    }
}

/// The batch at once (see [`complete_together`]); `None` when it must be written one by one
/// (nothing of it was committed).
async fn write_at_once(
    state: &Services,
    worker: &str,
    finished: &[Shared],
) -> anyhow::Result<Option<Vec<Disposition>>> {
    let dispositions: Vec<Disposition> = finished
        .iter()
        .map(|f| jobs::disposition(&state.settings.jobs, &f.job, &f.outcome))
        .collect();
    if dispositions.contains(&Disposition::Dead) {
        // Its consequences (a fail-over, a hold) read what they write.
        return Ok(None);
    }
    let mut tx = state.db.begin().await?;
    // Effects insert rows nothing in the batch reads back (timeline events, new jobs, the
    // attempts' records).
    let _deferred = deferred::allow();
    let mut succeeded = Vec::new();
    for (f, disposition) in finished.iter().zip(&dispositions) {
        if let Some(effects) = &f.effects
            && let Err(e) = effects(&mut tx).await
        {
            tracing::debug!(job_id = %f.job.id, error = format!("{e:#}"), "a job's effects failed in a batch");
            return Ok(None);
        }
        let record = f.record(worker);
        if *disposition == Disposition::Done {
            succeeded.push(record);
        } else if !jobs::complete(&mut tx, &record, *disposition, &f.outcome).await? {
            return Ok(None);
        }
    }
    if !jobs::complete_succeeded(&mut tx, worker, &succeeded).await? {
        return Ok(None);
    }
    deferred::flush(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(dispositions))
}

async fn write_together(
    state: &Services,
    handlers: &Handlers,
    worker: &str,
    finished: Vec<Shared>,
) -> anyhow::Result<Vec<Completion>> {
    let mut tx = state.db.begin().await?;
    let mut completions = Vec::with_capacity(finished.len());
    for mut f in finished {
        db::savepoint(&mut tx).await?;
        if let Some(effects) = &f.effects
            && let Err(e) = effects(&mut tx).await
        {
            db::rollback_to_savepoint(&mut tx).await?;
            tracing::error!(job_id = %f.job.id, error = format!("{e:#}"), "cannot write what a job's attempt did: the attempt is counted as failed");
            f.outcome = internal(e);
            db::savepoint(&mut tx).await?;
        }
        let (job, outcome) = (&f.job, &f.outcome);
        let record = f.record(worker);
        let disposition = jobs::disposition(&state.settings.jobs, job, outcome);
        let completed = async {
            if !jobs::complete(&mut tx, &record, disposition, outcome).await? {
                return Ok(false);
            }
            if disposition == Disposition::Dead {
                on_dead(&mut tx, handlers.of(job.kind), job, outcome).await?;
            }
            anyhow::Ok(true)
        }
        .await;
        match completed {
            Ok(true) => {
                db::release_savepoint(&mut tx).await?;
                completions.push(Ok(Some(disposition)));
            }
            Ok(false) => {
                db::rollback_to_savepoint(&mut tx).await?;
                jobs::record_lost_lease(&mut tx, &record, outcome).await?;
                completions.push(Ok(None));
            }
            Err(e) => {
                db::rollback_to_savepoint(&mut tx).await?;
                completions.push(Err(e));
            }
        }
    }
    tx.commit().await?;
    Ok(completions)
}

/// A dead job goes on its order's timeline; then its handler's `on_dead` runs, or, without one,
/// the order goes on hold so that the operator sees it.
async fn on_dead(
    tx: &mut Tx,
    handler: &Handler,
    job: &ClaimedJob,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let Some(order_id) = &job.order_id else {
        return Ok(());
    };
    let error = match outcome {
        Outcome::Failed { error, .. } | Outcome::Refused { error, .. } => error.as_str(),
        Outcome::Succeeded => return Ok(()),
    };
    orders::record_event(
        tx,
        order_id,
        "job.dead",
        json!({ "job_id": job.id, "kind": job.kind.as_str(), "error": error }),
    )
    .await?;
    match handler.on_dead {
        Some(on_dead) => on_dead(tx, job, error).await,
        None => {
            let reason = format!("{} failed for good: {error}", job.kind.as_str());
            orders::set_status(tx, order_id, OrderStatus::OnHold, Some(&reason))
                .await?
                .expected(order_id, OrderStatus::OnHold);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(kind: JobKind) -> Handler {
        Handler {
            kind,
            prepare: None,
            run: |_, _| Box::pin(async { Ok(Attempt::from(Outcome::Succeeded)) }),
            on_dead: None,
        }
    }

    #[test]
    fn a_kind_without_a_handler_or_with_two_is_refused() {
        let all: Vec<_> = JobKind::ALL.into_iter().map(handler).collect();
        let missing = Handlers::new(all[1..].to_vec())
            .err()
            .expect("one kind is missing");
        assert!(
            missing.to_string().contains(JobKind::ALL[0].as_str()),
            "{missing}"
        );
        let mut twice = all.clone();
        twice.push(handler(JobKind::ALL[3]));
        let twice = Handlers::new(twice)
            .err()
            .expect("one kind has two handlers");
        assert!(
            twice.to_string().contains(&format!(
                "two handlers for the job kind {}",
                JobKind::ALL[3].as_str()
            )),
            "{twice}"
        );
        assert!(Handlers::new(all).is_ok());
    }
}
