//! The ingest writer: group commit for webhooks.
//!
//! Handlers look a webhook's connection up and have its plugin parse it concurrently; then they
//! hand it here and wait. A writer takes what is waiting (up to `ingest.batch_max`), and in one
//! transaction applies what each carries and stores its raw request with what became of it,
//! then commits and answers each. So a webhook costs a share of one commit instead of two
//! commits of its own, and on SQLite the handlers do not queue on the database's one write lock
//! one request at a time.
//!
//! The promises hold as they did one request at a time: nothing is answered 200 before the
//! transaction holding it committed (its raw request, its order, its jobs, its delivery id);
//! a redelivery in the same batch finds the first one's delivery id; a webhook that refuses
//! undoes only its own part. If the batch fails (a database error, a conflict with another
//! replica), each of its webhooks is written again in a transaction of its own, so one bad
//! request cannot fail the others; one that still fails is kept `received` when it can be (the
//! sweeper processes it again) and answered 503.

use super::{Answer, Prepared, RawRecord, Work, apply_in, header_pairs, store_raw};
use crate::db::{Backend, Tx, deferred};
use crate::plugins::Parsed;
use crate::policy::PolicyReader;
use crate::routing::prefetch;
use crate::services::Services;
use crate::store::raw_requests::{self, NewRawRequest, Origin};
use daifa_plugin_host::InboundRequest;
use daifa_plugin_host::channel::ChannelEvent;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};

/// Webhooks waiting for a writer; more wait in their handlers (the sender is back-pressured).
const QUEUE: usize = 1024;

/// The handle handlers write through. The writer tasks stop once every handle is dropped.
pub struct Writer {
    queue: mpsc::Sender<Pending>,
}

/// A webhook looked up and parsed, to store and apply.
pub(crate) struct Item {
    pub raw_id: String,
    pub connection_name: String,
    pub request: InboundRequest,
    pub prepared: Prepared,
}

/// Why a webhook was not written.
#[derive(Debug)]
pub(crate) struct NotWritten {
    /// Whether its raw request is stored (`received`, for the sweeper) all the same.
    pub kept: bool,
}

struct Pending {
    item: Item,
    answer: oneshot::Sender<Result<Answer, NotWritten>>,
}

impl Writer {
    /// Starts this process's writers (`ingest.writers`).
    pub fn spawn(state: &Services) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let writers = state
            .settings
            .ingest
            .writers
            .unwrap_or(match state.db.backend {
                Backend::Sqlite => 1,
                Backend::Postgres => 4,
            });
        for _ in 0..writers {
            tokio::spawn(run(state.clone(), rx.clone()));
        }
        Arc::new(Self { queue })
    }

    /// Stores and applies a webhook with others; its answer once the transaction that holds it
    /// committed.
    pub(crate) async fn write(&self, item: Item) -> Result<Answer, NotWritten> {
        let (answer, answered) = oneshot::channel();
        if self.queue.send(Pending { item, answer }).await.is_err() {
            return Err(NotWritten { kept: false });
        }
        answered.await.unwrap_or(Err(NotWritten { kept: false }))
    }
}

async fn run(state: Services, rx: Arc<Mutex<mpsc::Receiver<Pending>>>) {
    let max = state.settings.ingest.batch_max;
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, max).await == 0 {
                return;
            }
        }
        // On a task of its own: should writing a batch panic, its webhooks are answered 503
        // (their answer channels dropped) and this writer goes on with the next batch.
        let written = tokio::spawn({
            let state = state.clone();
            async move { write_batch(&state, batch).await }
        });
        if let Err(e) = written.await {
            tracing::error!(error = %e, "writing a batch of webhooks failed; its senders were answered 503");
        }
    }
}

async fn write_batch(state: &Services, batch: Vec<Pending>) {
    let items: Vec<&Item> = batch.iter().map(|p| &p.item).collect();
    let mut answers = Vec::with_capacity(batch.len());
    match write_together(state, &items).await {
        Ok(written) => answers.extend(written.into_iter().map(Ok)),
        Err(e) => {
            if batch.len() > 1 {
                tracing::warn!(
                    webhooks = batch.len(),
                    error = format!("{e:#}"),
                    "a batch of webhooks failed; writing each on its own"
                );
            }
            for item in &items {
                let written = match write_together(state, std::slice::from_ref(item)).await {
                    Ok(mut written) => Ok(written.remove(0)),
                    Err(e) => {
                        tracing::error!(raw_request_id = %item.raw_id, connection = %item.connection_name, error = format!("{e:#}"), "cannot process inbound request");
                        Err(keep(state, item).await)
                    }
                };
                answers.push(written);
            }
        }
    }
    metrics::histogram!("daifa_ingest_batch_size").record(batch.len() as f64);
    if answers
        .iter()
        .any(|a| a.as_ref().is_ok_and(Answer::applied))
    {
        state.wake_workers();
    }
    for (pending, answer) in batch.into_iter().zip(answers) {
        let item = &pending.item;
        if answer.is_ok() || matches!(answer, Err(NotWritten { kept: true })) {
            item.prepared
                .spawn_shadow(state, &item.raw_id, &item.request);
        }
        // A handler that is gone (the sender hung up) is answered by its next copy.
        let _ = pending.answer.send(answer);
    }
}

/// Stores and applies `items` in one transaction; their answers once it committed.
///
/// The rows of new orders and the raw requests wait to be written in one statement per table
/// (`db::deferred`) — never past anything that could read them: before an item that is not
/// made of new orders only, or that names an order an earlier item of the batch named, they
/// are written, and that item writes its own at once.
async fn write_together(state: &Services, items: &[&Item]) -> anyhow::Result<Vec<Answer>> {
    let policies = state.policy_cache.reader();
    let mut tx = state.db.begin().await?;
    let named: Vec<_> = items.iter().map(|item| item.orders_named()).collect();
    // The offers and products the batch's new orders route on, in two statements.
    let wanted = items
        .iter()
        .zip(&named)
        .filter(|(_, orders)| orders.is_some())
        .flat_map(|(item, _)| item.skus_ordered());
    let catalogue = prefetch::read(&mut tx, wanted).await?;
    // The storefronts' delivery ids, recorded in one statement.
    let claims: Vec<raw_requests::DeliveryClaim> = items
        .iter()
        .filter_map(|item| item.delivery_claim())
        .collect();
    let won = raw_requests::claim_deliveries(&mut tx, &claims).await?;
    let claims = Claims::of(&claims, won);
    let answers = CLAIMS
        .scope(
            RefCell::new(claims),
            prefetch::with(
                catalogue,
                deferred::deferring(async {
                    let mut seen = HashSet::new();
                    let mut answers = Vec::with_capacity(items.len());
                    for (item, orders) in items.iter().zip(named) {
                        let apart = match orders {
                            Some(orders) => !orders.into_iter().all(|o| seen.insert(o)),
                            None => true,
                        };
                        let _suspended = if apart {
                            // It may change the catalogue, or read what waits to be written.
                            prefetch::forget();
                            deferred::flush(&mut tx).await?;
                            Some(deferred::suspend())
                        } else {
                            None
                        };
                        answers.push(write_one(&mut tx, policies, item).await?);
                    }
                    deferred::flush(&mut tx).await?;
                    anyhow::Ok(answers)
                }),
            ),
        )
        .await?;
    tx.commit().await?;
    Ok(answers)
}

/// Applies a webhook in `tx` and stores its raw request with the outcome (one statement).
async fn write_one(tx: &mut Tx, policies: PolicyReader<'_>, item: &Item) -> anyhow::Result<Answer> {
    let headers = header_pairs(&item.request);
    let raw = item.new_raw(&headers);
    let answer = match &item.prepared.work {
        Work::Answered(answer) => answer.clone(),
        Work::Apply(parsed) => {
            let connection = item
                .prepared
                .connection
                .as_ref()
                .expect("parsed by its plugin");
            apply_in(
                tx,
                policies,
                connection,
                RawRecord::New(&raw),
                parsed,
                Origin::Webhook,
            )
            .await?
        }
    };
    // An applied request was stored by what applied it.
    if !answer.applied() {
        let _deferred = deferred::allow();
        raw_requests::insert_answered(
            tx,
            &raw,
            answer.raw_status,
            answer.status.as_u16(),
            answer.reason.as_deref(),
            item.prepared.plugin_version(),
        )
        .await?;
    }
    Ok(answer)
}

impl Item {
    /// The orders (connection, external id) this webhook places, if placing orders is all it
    /// does and it names each once; `None` for anything else (a case, a cancellation, a
    /// supplier's or carrier's event…), which may read what earlier items wrote.
    fn orders_named(&self) -> Option<Vec<(&str, &str)>> {
        let Work::Apply(parsed) = &self.prepared.work else {
            return Some(Vec::new());
        };
        let Parsed::Channel(inbound) = parsed else {
            return None;
        };
        let mut named = Vec::new();
        for event in &inbound.events {
            let ChannelEvent::OrderPlaced(order) = event else {
                return None;
            };
            let key = (self.connection_name.as_str(), order.external_id.as_str());
            if named.contains(&key) {
                return None;
            }
            named.push(key);
        }
        Some(named)
    }

    /// The delivery id of this storefront webhook, to record: (connection, delivery id, raw
    /// request).
    fn delivery_claim(&self) -> Option<raw_requests::DeliveryClaim<'_>> {
        let (Work::Apply(Parsed::Channel(inbound)), Some(connection)) =
            (&self.prepared.work, &self.prepared.connection)
        else {
            return None;
        };
        let delivery_id = inbound.delivery_id.as_deref()?;
        Some((connection.id.as_str(), delivery_id, self.raw_id.as_str()))
    }

    /// The storefront SKUs of the orders this webhook places, with their channel connection.
    fn skus_ordered(&self) -> Vec<(&str, &str)> {
        let (Work::Apply(Parsed::Channel(inbound)), Some(connection)) =
            (&self.prepared.work, &self.prepared.connection)
        else {
            return Vec::new();
        };
        inbound
            .events
            .iter()
            .filter_map(|event| match event {
                ChannelEvent::OrderPlaced(order) => Some(order),
                _ => None,
            })
            .flat_map(|order| &order.lines)
            .map(|line| (connection.id.as_str(), line.storefront_sku.as_str()))
            .collect()
    }

    fn new_raw<'a>(&'a self, headers: &'a [(&'a str, &'a str)]) -> NewRawRequest<'a> {
        NewRawRequest {
            id: &self.raw_id,
            connection_name: &self.connection_name,
            method: &self.request.method,
            path: &self.request.path,
            headers,
            body: &self.request.body,
            origin: Origin::Webhook,
        }
    }
}

/// The delivery ids a batch recorded before its first webhook: for each (connection, delivery
/// id), the raw request that recorded it (none: seen in an earlier batch), and whether that
/// request gave it back (refused before it was applied).
struct Claims(HashMap<(String, String), (Option<String>, bool)>);

impl Claims {
    fn of(claims: &[raw_requests::DeliveryClaim<'_>], won: Vec<(String, String, String)>) -> Self {
        let mut by_key: HashMap<(String, String), (Option<String>, bool)> = claims
            .iter()
            .map(|(c, d, _)| ((c.to_string(), d.to_string()), (None, false)))
            .collect();
        for (connection_id, delivery_id, raw_id) in won {
            by_key.insert((connection_id, delivery_id), (Some(raw_id), false));
        }
        Self(by_key)
    }
}

tokio::task_local! {
    static CLAIMS: RefCell<Claims>;
}

/// Whether the request `raw_id` recorded its delivery id with its batch: `Some(true)` it did,
/// `Some(false)` another request had (a redelivery); none when the batch did not try (or the
/// request that did gave it back), and the caller records it itself.
pub(super) fn claimed(connection_id: &str, delivery_id: &str, raw_id: &str) -> Option<bool> {
    CLAIMS
        .try_with(|c| {
            let c = c.borrow();
            match c
                .0
                .get(&(connection_id.to_string(), delivery_id.to_string()))?
            {
                (_, true) => None,
                (Some(winner), false) => Some(winner == raw_id),
                (None, false) => Some(false),
            }
        })
        .ok()
        .flatten()
}

/// The request that recorded a delivery id with its batch gave it back.
pub(super) fn released(connection_id: &str, delivery_id: &str) {
    let _ = CLAIMS.try_with(|c| {
        if let Some(claim) = c
            .borrow_mut()
            .0
            .get_mut(&(connection_id.to_string(), delivery_id.to_string()))
        {
            claim.1 = true;
        }
    });
}

/// Stores the raw request of a webhook that could not be written, `received`: the sweeper
/// processes it again if the sender does not send it again.
async fn keep(state: &Services, item: &Item) -> NotWritten {
    let stored = store_raw(
        &state.db.pool,
        &item.raw_id,
        &item.connection_name,
        &item.request,
        Origin::Webhook,
    )
    .await;
    if let Err(e) = &stored {
        tracing::error!(raw_request_id = %item.raw_id, error = format!("{e:#}"), "cannot store inbound request");
    }
    NotWritten {
        kept: stored.is_ok(),
    }
}
