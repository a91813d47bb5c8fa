//! Processing stored webhooks again: nothing the gateway stored is left unprocessed.
//!
//! A webhook is stored with what it carries, in one transaction; when that fails, it is stored
//! alone, `received`, if it can be (the database failed for it, or the process that stored it
//! stopped before it was processed). The sender was answered 503 or not at all and
//! should send it again, but a sender may give up, and a crash answers nobody. The sweeper
//! takes each request still `received` `ingest.stale_after` after it was stored and runs it
//! through the same steps as `receive` ([`super::process_stored`]), one request at a time under
//! a compare-and-set claim, so several gateway processes never run the same one at once; the
//! plugin judges it as of its arrival (a supplier's signature more than five minutes old is
//! refused, and this one was not when it came). A
//! request the sender also sent again is harmless: the platform's delivery id and the order's
//! unique key recognise the second copy, whichever comes first, and a stored request is applied
//! once. Attempts that fail again are retried on `ingest.reprocess_schedule`; then the request
//! is `failed` and a task (`raw_request_failed`) asks the operator to look. A poll's record left
//! `received` is marked `failed` at once: the poll's cursor did not move past it, so the next
//! poll fetches the same again.
//!
//! The operator runs one again with `POST /api/v1/raw-requests/{id}/reprocess`: a request
//! rejected because of the connection's set-up (a wrong secret, fixed since), or one the
//! sweeper gave up on.

use super::{
    AppliedMeanwhile, NotReprocessable, OnServerError, StoredRequest, claim_for_operator,
    claim_stale, process_stored,
};
use crate::db::{ms, now_ms};
use crate::services::Services;
use crate::store::raw_requests::{self, RawStatus};
use crate::store::tasks;
use serde_json::json;
use tokio::sync::watch;

/// Who ran a stored request again (a metric label).
#[derive(Debug, Clone, Copy)]
enum By {
    Sweeper,
    Operator,
}

impl By {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sweeper => "sweeper",
            Self::Operator => "operator",
        }
    }
}

fn count(by: By, outcome: &'static str) {
    metrics::counter!("daifa_raw_requests_reprocessed_total", "by" => by.as_str(), "outcome" => outcome)
        .increment(1);
}

/// Runs this process's sweeper until `shutdown` turns true.
pub fn spawn(
    state: Services,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if !state.settings.ingest.sweep {
        return None;
    }
    Some(tokio::spawn(sweeper(state, shutdown)))
}

async fn sweeper(state: Services, mut shutdown: watch::Receiver<bool>) {
    let interval = state.settings.ingest.sweep_interval;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Err(e) = sweep(&state, &shutdown).await {
            tracing::error!(error = format!("{e:#}"), "sweeping stale requests failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One sweep: the polls' stale records failed, then every stale webhook whose attempt is due
/// processed again, one after the other; the gauge of stale requests set to what is left.
async fn sweep(state: &Services, shutdown: &watch::Receiver<bool>) -> anyhow::Result<()> {
    let settings = &state.settings.ingest;
    let polls = raw_requests::fail_stale_polls(&state.db, settings.stale_after).await?;
    if polls > 0 {
        tracing::warn!(
            count = polls,
            "polls' records left unapplied marked failed: the next polls fetch them again"
        );
        metrics::counter!("daifa_raw_requests_reprocessed_total", "by" => By::Sweeper.as_str(), "outcome" => "poll_failed").increment(polls);
    }
    while !*shutdown.borrow() {
        let Some(stored) = claim_stale(&state.db, settings.stale_after).await? else {
            break;
        };
        sweep_one(state, &stored).await?;
    }
    let stale = raw_requests::count_stale(&state.db, settings.stale_after).await?;
    metrics::gauge!("daifa_raw_requests_stale").set(stale as f64);
    Ok(())
}

/// Processes a claimed stale webhook again, and schedules its next attempt or gives it up when
/// this one failed too. An error is the database's: the claim runs out and the request is
/// taken again.
async fn sweep_one(state: &Services, stored: &StoredRequest) -> anyhow::Result<()> {
    let processed = process_stored(state, stored.stored(), OnServerError::LeaveReceived).await;
    let reason = match processed {
        Ok(answer) if answer.raw_status != RawStatus::Failed => {
            tracing::info!(raw_request_id = %stored.id, connection = %stored.connection_name, attempt = stored.attempts, outcome = answer.raw_status.as_str(), "stale request processed again");
            count(By::Sweeper, answer.raw_status.as_str());
            return Ok(());
        }
        Ok(answer) => answer
            .reason
            .unwrap_or_else(|| format!("answered {}", answer.status)),
        Err(e) if e.is::<AppliedMeanwhile>() => {
            count(By::Sweeper, "applied_meanwhile");
            return Ok(());
        }
        Err(e) => format!("{e:#}"),
    };
    let attempts = stored.attempts;
    let next = usize::try_from(attempts - 1)
        .ok()
        .and_then(|i| state.settings.ingest.reprocess_schedule.get(i));
    if let Some(delay) = next {
        tracing::warn!(raw_request_id = %stored.id, connection = %stored.connection_name, attempt = attempts, error = %reason, "stale request failed again; retried later");
        let reason = format!("attempt {attempts} failed: {reason}");
        raw_requests::retry_stale_at(
            &state.db,
            &stored.id,
            attempts,
            now_ms() + ms(*delay),
            &reason,
        )
        .await?;
        count(By::Sweeper, "retry");
        return Ok(());
    }
    let reason = format!("given up after {attempts} attempts: {reason}");
    let mut tx = state.db.begin().await?;
    if raw_requests::fail_stale(&mut tx, &stored.id, attempts, &reason).await? {
        tasks::open(
            &mut tx,
            "raw_request_failed",
            &format!("raw_request_failed.{}", stored.id),
            None,
            None,
            "a stored request could not be processed: find out why, fix it, then reprocess it (POST /api/v1/raw-requests/{id}/reprocess)",
            json!({ "raw_request_id": stored.id, "connection": stored.connection_name, "attempts": attempts, "reason": reason }),
        )
        .await?;
    }
    tx.commit().await?;
    tracing::error!(raw_request_id = %stored.id, connection = %stored.connection_name, attempts, error = %reason, "stale request given up");
    count(By::Sweeper, "failed");
    Ok(())
}

/// What the operator's re-processing came to.
pub enum Reprocessed {
    /// Run: the raw request's status now, the answer's status code and body.
    Done {
        status: String,
        status_code: u16,
        answer: serde_json::Value,
    },
    Unknown,
    /// Applied before: its status (`accepted`, `duplicate`).
    Applied(String),
    /// A poll's record.
    Poll,
}

/// Runs a stored webhook again for the operator, now, and records the outcome as `receive`
/// would have: one not applied yet (`received`, `failed`, `rejected`), never one applied. An
/// error means nothing was applied (the database failed) and the record is as it was.
pub async fn by_operator(state: &Services, id: &str) -> anyhow::Result<Reprocessed> {
    let settings = &state.settings.ingest;
    let stored = match claim_for_operator(&state.db, id, settings.stale_after).await? {
        Ok(stored) => stored,
        Err(NotReprocessable::Unknown) => return Ok(Reprocessed::Unknown),
        Err(NotReprocessable::Applied(status)) => return Ok(Reprocessed::Applied(status)),
        Err(NotReprocessable::Poll) => return Ok(Reprocessed::Poll),
    };
    let answer = match process_stored(state, stored.stored(), OnServerError::MarkFailed).await {
        Ok(answer) => answer,
        Err(e) => {
            if let Some(applied) = e.downcast_ref::<AppliedMeanwhile>() {
                tracing::info!(raw_request_id = %applied.0, "applied meanwhile by another run");
                count(By::Operator, "applied_meanwhile");
                let status = raw_requests::status_of(&state.db, id)
                    .await?
                    .unwrap_or_default();
                return Ok(Reprocessed::Applied(status));
            }
            return Err(e);
        }
    };

    tracing::info!(raw_request_id = %id, connection = %stored.connection_name, outcome = answer.raw_status.as_str(), "stored request processed again by the operator");
    count(By::Operator, answer.raw_status.as_str());
    let status = raw_requests::status_of(&state.db, id)
        .await?
        .unwrap_or_else(|| answer.raw_status.as_str().to_string());
    Ok(Reprocessed::Done {
        status,
        status_code: answer.status.as_u16(),
        answer: answer.body,
    })
}
