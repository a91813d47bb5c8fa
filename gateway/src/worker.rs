//! The job workers. Each worker claims a due job, runs it with the handler its stage registered
//! for the job's kind, and records the outcome (done, retry later, or dead-lettered). The worker
//! knows no stage: the application hands it every stage's handlers (`crate::app`), so that a
//! stage's jobs are declared next to the code they run (`dispatch::jobs`, `fulfilment::jobs`…).
//! The workers of a process share a [`throttle::Throttle`]: a limit of calls in flight and a
//! circuit breaker per connection, so that one slow or broken peer does not hold them all.

pub mod throttle;

use crate::calls;
use crate::db::{Tx, now_ms};
use crate::services::Services;
use crate::store::jobs::{self, Attempt, ClaimedJob, Disposition, JobKind, Outcome};
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
        match jobs::claim(&state.db, &worker, settings.lease, &excluded).await {
            Ok(Some(job)) => {
                let entered = throttle.enter(&job);
                // There may be more: the next idle worker looks too. Not while a connection is
                // full: the next would likely find only its calls, after reading past all of
                // them (idle workers look again at `jobs.poll_interval`).
                if !throttle.any_full() {
                    state.job_signal.notify_one();
                }
                let Ok(call) = entered else {
                    // Another worker took the connection's last place since the claim: the
                    // job goes back untouched, and the next claim passes the connection by.
                    if let Err(e) = jobs::give_back(&state.db, &job, &worker).await {
                        // Its lease runs out and it is claimed again: nothing is lost.
                        tracing::error!(job_id = %job.id, error = %e, "cannot give a job back");
                    }
                    continue;
                };
                let connection_id = job.connection_id.clone().unwrap_or_default();
                let verdict = run_one(&state, &handlers, &worker, job).await;
                if let Some(opened) = call.and_then(|call| throttle.leave(call, verdict)) {
                    open_circuit(&state, &connection_id, opened).await;
                }
                continue;
            }
            Ok(None) => {}
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

/// Runs one job; what its outcome says of the peer it called.
async fn run_one(state: &Services, handlers: &Handlers, worker: &str, job: ClaimedJob) -> Verdict {
    // Instrumented rather than entered: a span entered across an await would also tag whatever
    // else the thread runs meanwhile.
    let span = tracing::info_span!("job", job_id = %job.id, kind = job.kind.as_str(), attempt = job.attempt);
    run_instrumented(state, handlers.of(job.kind), worker, job)
        .instrument(span)
        .await
}

async fn run_instrumented(
    state: &Services,
    handler: &Handler,
    worker: &str,
    job: ClaimedJob,
) -> Verdict {
    let started = now_ms();
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
        Attempt::from(Outcome::Failed {
            kind: "internal".into(),
            error: format!("{e:#}"),
            retry_after: None,
        })
    });
    let outcome = attempt.outcome.clone();
    let verdict = Verdict::of(&outcome);
    let finished = finish(
        state,
        handler,
        &job,
        worker,
        started,
        attempt,
        plugin_version.as_deref(),
    )
    .await;
    if let Ok(Some(disposition)) = &finished {
        let label = match disposition {
            Disposition::Done => "succeeded",
            Disposition::RetryAt(_) => "retry",
            Disposition::Dead => "dead",
        };
        metrics::counter!("daifa_job_attempts_total", "kind" => job.kind.as_str(), "outcome" => label).increment(1);
        metrics::histogram!("daifa_job_attempt_duration_seconds", "kind" => job.kind.as_str())
            .record((now_ms() - started) as f64 / 1000.0);
    }
    match finished {
        Ok(Some(Disposition::Done)) => tracing::info!("job done"),
        Ok(Some(Disposition::RetryAt(at))) => {
            tracing::warn!(retry_in_ms = at - now_ms(), outcome = ?outcome, "job failed, will retry")
        }
        Ok(Some(Disposition::Dead)) => tracing::error!(outcome = ?outcome, "job dead-lettered"),
        Ok(None) => {
            metrics::counter!("daifa_job_attempts_total", "kind" => job.kind.as_str(), "outcome" => "lease_lost").increment(1);
        }
        // Nothing of the attempt committed: the lease will run out and another attempt will be
        // made; nothing is lost.
        Err(e) => tracing::error!(error = format!("{e:#}"), "cannot record a job's outcome"),
    }
    verdict
}

/// Completes an attempt: the job's new state, the attempt's effects and, for a dead job, what
/// its death sets off commit in one transaction, by the worker still holding the lease only.
async fn finish(
    state: &Services,
    handler: &Handler,
    job: &ClaimedJob,
    worker: &str,
    started: i64,
    attempt: Attempt,
    plugin_version: Option<&str>,
) -> anyhow::Result<Option<Disposition>> {
    let outcome = attempt.outcome.clone();
    let Some((disposition, mut tx)) = jobs::finish(
        &state.db,
        &state.settings.jobs,
        job,
        worker,
        started,
        attempt,
        plugin_version,
    )
    .await?
    else {
        return Ok(None);
    };
    if disposition == Disposition::Dead {
        on_dead(&mut tx, handler, job, &outcome).await?;
    }
    tx.commit().await?;
    // No worker is woken: this one claims again at once, the jobs the attempt made included.
    Ok(Some(disposition))
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
