//! How many calls this process makes through each connection, and whether it makes any: a
//! limit of calls in flight per connection (`jobs.per_connection`), so that one slow peer holds
//! a few workers and the others go on, and a circuit breaker per connection (`jobs.breaker`),
//! so that a peer that is down is left alone for a while instead of spending every queued job's
//! retry schedule.
//!
//! Both are this process's own view: several gateway processes each keep theirs. A circuit
//! that opens also puts off the connection's queued calls in the database
//! (`jobs::postpone_connection`), which every process sees.

use crate::config::JobSettings;
use crate::db::{ms, now_ms};
use crate::store::jobs::{ClaimedJob, Outcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Throttle {
    per_connection: usize,
    failures: u32,
    cool_down: i64,
    max_cool_down: i64,
    connections: Mutex<HashMap<String, Peer>>,
}

struct Peer {
    /// One permit per call allowed in flight.
    calls: Arc<Semaphore>,
    /// Failed calls in a row.
    failures: u32,
    /// Open until then; at or after it, half-open (one call tries).
    open_until_ms: Option<i64>,
    /// How many times it opened since it last closed (the cool-down doubles each time).
    openings: u32,
}

/// A call through a connection, in flight until dropped.
pub struct Call {
    connection_id: String,
    _permit: OwnedSemaphorePermit,
}

/// A connection with as many calls in flight as allowed, or its circuit open.
#[derive(Debug)]
pub struct NoRoom;

/// A circuit open until `until` (ms since the epoch), opened by this call when `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub until: i64,
    pub now: bool,
}

/// What a call's outcome says of its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It answered (yes or a refusal for good).
    Answered,
    /// It failed (5xx, timeout, refused connection…).
    Failed,
    /// Nothing about the peer (the gateway's own failure).
    Unknown,
}

impl Verdict {
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Succeeded | Outcome::Refused { .. } => Self::Answered,
            Outcome::Failed { kind, .. } if kind == "internal" => Self::Unknown,
            Outcome::Failed { .. } => Self::Failed,
        }
    }
}

impl Throttle {
    pub fn new(settings: &JobSettings) -> Self {
        Self {
            per_connection: settings.per_connection.max(1),
            failures: settings.breaker.failures,
            cool_down: ms(settings.breaker.cool_down),
            max_cool_down: ms(settings.breaker.max_cool_down),
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// The connections no job that calls a peer should be claimed for now: as many calls in
    /// flight as allowed, the circuit open, or half-open with its trial call in flight.
    pub fn excluded(&self) -> Vec<String> {
        let now = now_ms();
        self.lock()
            .iter()
            .filter(|(_, peer)| {
                let in_flight = self.per_connection - peer.calls.available_permits();
                match peer.open_until_ms {
                    Some(until) if now < until => true,
                    Some(_) => in_flight > 0,
                    None => in_flight >= self.per_connection,
                }
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether a connection has as many calls in flight as allowed: its due calls are read
    /// past by every claim (an open circuit's are put off, not due).
    pub fn any_full(&self) -> bool {
        self.lock()
            .values()
            .any(|peer| peer.open_until_ms.is_none() && peer.calls.available_permits() == 0)
    }

    /// Starts a call for `job`: `Ok(None)` when the job calls no peer, [`NoRoom`] when its
    /// connection has no room now (another worker took the last place since the claim; the
    /// job is to be given back).
    pub fn enter(&self, job: &ClaimedJob) -> Result<Option<Call>, NoRoom> {
        let Some(connection_id) = job.connection_id.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        if !job.kind.calls_peer() {
            return Ok(None);
        }
        let now = now_ms();
        let mut connections = self.lock();
        let peer = connections
            .entry(connection_id.to_string())
            .or_insert_with(|| Peer {
                calls: Arc::new(Semaphore::new(self.per_connection)),
                failures: 0,
                open_until_ms: None,
                openings: 0,
            });
        let in_flight = self.per_connection - peer.calls.available_permits();
        let room = match peer.open_until_ms {
            Some(until) if now < until => false,
            Some(_) => in_flight == 0,
            None => true,
        };
        if !room {
            return Err(NoRoom);
        }
        let permit = peer.calls.clone().try_acquire_owned().map_err(|_| NoRoom)?;
        Ok(Some(Call {
            connection_id: connection_id.to_string(),
            _permit: permit,
        }))
    }

    /// Ends `call` with what its outcome says of the peer. When it failed and the circuit is
    /// open (this call opened it, or it was claimed before it opened and its retry is due too
    /// soon), the caller puts off the connection's queued calls to the time it says.
    pub fn leave(&self, call: Call, verdict: Verdict) -> Option<Opened> {
        let now = now_ms();
        let mut connections = self.lock();
        let peer = connections.get_mut(&call.connection_id)?;
        let opened = match verdict {
            Verdict::Unknown => None,
            Verdict::Answered => {
                if peer.open_until_ms.is_some() {
                    tracing::info!(connection_id = %call.connection_id, "circuit closed: the peer answered");
                }
                peer.failures = 0;
                peer.open_until_ms = None;
                peer.openings = 0;
                None
            }
            Verdict::Failed if self.failures == 0 => None,
            Verdict::Failed => {
                peer.failures = peer.failures.saturating_add(1);
                match peer.open_until_ms {
                    // A call claimed before it opened: already open.
                    Some(until) if now < until => Some(Opened { until, now: false }),
                    // The trial call failed, or one failure too many.
                    Some(_) => Some(self.open(peer, now)),
                    None if peer.failures >= self.failures => Some(self.open(peer, now)),
                    None => None,
                }
            }
        };
        metrics::gauge!("daifa_connection_circuit_open", "connection_id" => call.connection_id.clone())
            .set(if peer.open_until_ms.is_some() { 1.0 } else { 0.0 });
        opened
    }

    fn open(&self, peer: &mut Peer, now: i64) -> Opened {
        let factor = 1i64 << peer.openings.min(20);
        let until = now
            + self
                .cool_down
                .saturating_mul(factor)
                .min(self.max_cool_down);
        peer.open_until_ms = Some(until);
        peer.openings += 1;
        Opened { until, now: true }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peer>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BreakerSettings;
    use crate::store::jobs::JobKind;
    use std::time::Duration;

    fn throttle(per_connection: usize, failures: u32, cool_down_ms: u64) -> Throttle {
        Throttle::new(&JobSettings {
            workers: 8,
            poll_interval: Duration::from_millis(100),
            lease: Duration::from_secs(60),
            retry_schedule: vec![],
            retry_jitter: 0.0,
            max_retry_after: Duration::from_secs(60),
            per_connection,
            claim_batch: 8,
            breaker: BreakerSettings {
                failures,
                cool_down: Duration::from_millis(cool_down_ms),
                max_cool_down: Duration::from_millis(cool_down_ms * 3),
            },
        })
    }

    fn job(kind: JobKind, connection: &str) -> ClaimedJob {
        ClaimedJob {
            id: "job".into(),
            kind,
            idempotency_key: "k".into(),
            subject_id: "s".into(),
            attempt: 1,
            order_id: None,
            connection_id: Some(connection.into()),
        }
    }

    fn failed() -> Verdict {
        Verdict::of(&Outcome::Failed {
            kind: "transient".into(),
            error: "503".into(),
            retry_after: None,
        })
    }

    #[test]
    fn calls_through_a_connection_are_limited_and_others_are_not() {
        let t = throttle(2, 0, 1000);
        let a1 = t
            .enter(&job(JobKind::SupplierSubmit, "a"))
            .unwrap()
            .unwrap();
        assert!(t.excluded().is_empty());
        assert!(!t.any_full());
        let _a2 = t
            .enter(&job(JobKind::SupplierCancel, "a"))
            .unwrap()
            .unwrap();
        assert_eq!(t.excluded(), ["a"]);
        assert!(t.any_full());
        assert!(t.enter(&job(JobKind::SupplierSubmit, "a")).is_err());
        // Another connection, and a job that calls no peer, are not held back.
        assert!(
            t.enter(&job(JobKind::SupplierSubmit, "b"))
                .unwrap()
                .is_some()
        );
        assert!(t.enter(&job(JobKind::ClockShip, "a")).unwrap().is_none());
        t.leave(a1, Verdict::Answered);
        assert!(t.excluded().is_empty());
    }

    #[test]
    fn failures_in_a_row_open_the_circuit_and_one_trial_closes_it() {
        let t = throttle(4, 3, 200);
        for n in 1..=3 {
            let call = t
                .enter(&job(JobKind::SupplierSubmit, "a"))
                .unwrap()
                .unwrap();
            let opened = t.leave(call, failed());
            assert_eq!(
                opened.is_some(),
                n == 3,
                "opens at the third failure in a row"
            );
            assert!(opened.is_none_or(|o| o.now));
        }
        assert_eq!(t.excluded(), ["a"]);
        assert!(!t.any_full(), "open, not full: its calls are put off");
        assert!(t.enter(&job(JobKind::SupplierSubmit, "a")).is_err());
        std::thread::sleep(Duration::from_millis(220));
        // Half-open: one trial call, no second one beside it.
        let trial = t
            .enter(&job(JobKind::SupplierSubmit, "a"))
            .unwrap()
            .unwrap();
        assert_eq!(t.excluded(), ["a"]);
        assert!(t.enter(&job(JobKind::SupplierSubmit, "a")).is_err());
        // It fails: open again, for twice as long.
        let opened = t.leave(trial, failed()).expect("opened again");
        assert!(opened.now);
        assert!(opened.until - now_ms() > 300, "{}", opened.until - now_ms());
        std::thread::sleep(Duration::from_millis(420));
        let trial = t
            .enter(&job(JobKind::SupplierSubmit, "a"))
            .unwrap()
            .unwrap();
        assert_eq!(t.leave(trial, Verdict::Answered), None);
        assert!(t.excluded().is_empty(), "closed");
        // Closed, the count starts again: two failures do not open it.
        for _ in 0..2 {
            let call = t
                .enter(&job(JobKind::SupplierSubmit, "a"))
                .unwrap()
                .unwrap();
            assert_eq!(t.leave(call, failed()), None);
        }
    }

    #[test]
    fn a_call_that_fails_after_its_circuit_opened_is_put_off_with_the_others() {
        let t = throttle(4, 2, 1000);
        let calls: Vec<_> = (0..3)
            .map(|_| {
                t.enter(&job(JobKind::SupplierSubmit, "a"))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        let mut calls = calls.into_iter();
        assert_eq!(t.leave(calls.next().unwrap(), failed()), None);
        let opened = t.leave(calls.next().unwrap(), failed()).unwrap();
        assert!(opened.now);
        let late = t.leave(calls.next().unwrap(), failed()).unwrap();
        assert_eq!(
            late,
            Opened {
                until: opened.until,
                now: false
            },
            "not opened longer"
        );
    }

    #[test]
    fn an_answer_between_failures_and_the_gateways_own_failures_do_not_open_it() {
        let t = throttle(4, 2, 1000);
        let internal = Verdict::of(&Outcome::Failed {
            kind: "internal".into(),
            error: "database".into(),
            retry_after: None,
        });
        let refused = Verdict::of(&Outcome::Refused {
            kind: "permanent".into(),
            error: "400".into(),
        });
        for verdict in [failed(), refused, failed(), internal, internal] {
            let call = t
                .enter(&job(JobKind::SupplierSubmit, "a"))
                .unwrap()
                .unwrap();
            assert_eq!(t.leave(call, verdict), None, "{verdict:?}");
        }
        let call = t
            .enter(&job(JobKind::SupplierSubmit, "a"))
            .unwrap()
            .unwrap();
        assert!(t.leave(call, failed()).is_some(), "two failures in a row");
    }
}
