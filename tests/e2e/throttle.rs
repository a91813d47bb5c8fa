//! One slow or broken peer does not hold the job workers: calls in flight are limited per
//! connection (`jobs.per_connection`), and a connection whose calls keep failing has its
//! circuit opened (`jobs.breaker`): no calls for a while, its queued calls put off rather than
//! spending their retry schedules, then one trial call. Through fake suppliers.

use crate::fakes::ReceivedPush;
use crate::helpers::*;
use crate::routing::Suppliers;
use daifa::store::jobs::{self, JobKind};
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn distinct_ids(pushes: &[ReceivedPush]) -> usize {
    pushes
        .iter()
        .map(|p| p.webhook_id.as_str())
        .collect::<BTreeSet<_>>()
        .len()
}

async fn answered(w: &Suppliers, supplier: &str, n: usize) -> Vec<ReceivedPush> {
    let fake = w.supplier(supplier);
    eventually(
        &format!("{n} push(es) answered 2xx by {supplier}"),
        WAIT,
        || async {
            let r = fake.received();
            let ok = r
                .iter()
                .filter(|p| p.answer.is_some_and(|a| (200..300).contains(&a)))
                .count();
            (ok >= n).then_some(r)
        },
    )
    .await
}

/// One job worker, started by the test once what it should claim in one batch is queued (the
/// gateway runs none: `jobs.workers = 0`).
struct OneWorker {
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl OneWorker {
    fn start(w: &Suppliers) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let handles = daifa::worker::spawn(
            w.app.state.clone(),
            daifa::app::handlers().unwrap(),
            1,
            stopped,
        );
        Self { stop, handles }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        for handle in self.handles {
            handle.await.unwrap();
        }
    }
}

/// Two fake suppliers, `slow` (offering S1 and S2) and `fast` (F1 and F2); calls are given
/// the time a slow answer takes (slow, not failing).
async fn slow_and_fast(settings: impl FnOnce(&mut daifa::Settings)) -> Suppliers {
    let w = Suppliers::start_with(&["slow", "fast"], |s| {
        s.plugins.outbound_timeout = Duration::from_secs(5);
        s.plugins.call_deadline = Duration::from_secs(8);
        settings(s);
    })
    .await;
    for (sku, supplier) in [
        ("S1", "slow"),
        ("S2", "slow"),
        ("F1", "fast"),
        ("F2", "fast"),
    ] {
        w.offer(sku, supplier, serde_json::json!({})).await;
    }
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_supplier_holds_at_most_its_share_of_the_workers() {
    const SLOW: Duration = Duration::from_secs(4);
    let w = slow_and_fast(|s| {
        s.jobs.workers = 4;
        s.jobs.per_connection = 2;
    })
    .await;
    w.supplier("slow").delay(SLOW);
    for n in 1..=4 {
        w.order(&format!("wh-s-{n}"), ["S1", "S2"], |_| {}).await;
    }
    for n in 1..=4 {
        w.order(&format!("wh-f-{n}"), ["F1", "F2"], |_| {}).await;
    }
    // The fast supplier's orders go out while the slow one's first calls are still waiting
    // for their answers: two of the four workers are left to it.
    let fast = w.pushes("fast", 4).await;
    let slow = w.supplier("slow").received();
    let first_slow = slow.iter().map(|p| p.received_at_ms).min().unwrap();
    let last_fast = fast.iter().map(|p| p.received_at_ms).max().unwrap();
    assert!(
        last_fast < first_slow + SLOW.as_millis() as i64,
        "the fast supplier's last push came {} ms after the slow one's first: it waited",
        last_fast - first_slow
    );
    // All four slow ones get through, two at a time, each once.
    let slow = answered(&w, "slow", 4).await;
    assert_eq!(w.supplier("slow").max_in_flight(), 2);
    assert_eq!(distinct_ids(&slow), 4);
    assert_eq!(distinct_ids(&fast), 4);
    w.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_that_keeps_failing_is_left_alone_until_its_circuit_closes() {
    let w = Suppliers::start_with(&["down"], |s| {
        s.jobs.workers = 2;
        s.jobs.per_connection = 2;
        s.jobs.breaker.failures = 3;
        s.jobs.breaker.cool_down = Duration::from_secs(3);
        s.jobs.breaker.max_cool_down = Duration::from_secs(6);
    })
    .await;
    for sku in ["D1", "D2"] {
        w.offer(sku, "down", serde_json::json!({})).await;
    }
    let down = w.supplier("down");
    down.always_fail(Some(503));
    for n in 1..=4 {
        w.order(&format!("wh-d-{n}"), ["D1", "D2"], |_| {}).await;
    }
    // Three failures in a row open the circuit. Without it the four pushes would have spent
    // their schedule (four attempts 200 ms apart) and be dead within a second.
    w.pushes("down", 3).await;
    // Its failed pushes are put off to the end of the cool-down (another gateway on the same
    // database leaves them alone too), not left due 200 ms after their failures. (A push
    // queued after it opened may be due: this gateway passes it by.)
    eventually(
        "the queued pushes put off",
        Duration::from_secs(2),
        || async {
            let run_at: Vec<i64> = sqlx::query_scalar(
                "select run_at_ms from jobs where kind = 'supplier.submit' and status = 'queued' and attempts > 0",
            )
            .fetch_all(&w.app.state.db.pool)
            .await
            .unwrap();
            let now = daifa::db::now_ms();
            (!run_at.is_empty() && run_at.iter().all(|&at| at > now + 500)).then_some(())
        },
    )
    .await;
    // A call claimed before it opened may still be answered; after that, none goes out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let opened = down.received().len();
    assert!((3..=4).contains(&opened), "{opened} calls before it opened");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        down.received().len(),
        opened,
        "no call while the circuit is open"
    );
    let statuses = jobs::count_by_status(&w.app.state.db, JobKind::SupplierSubmit)
        .await
        .unwrap();
    assert_eq!(statuses.get("dead"), None, "{statuses:?}");
    // The supplier is back: the trial call succeeds, the circuit closes, every order goes out
    // once (one webhook-id each, kept across the attempts).
    down.always_fail(None);
    let pushes = answered(&w, "down", 4).await;
    assert_eq!(distinct_ids(&pushes), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let accepted: Vec<_> = down
        .received()
        .into_iter()
        .filter(|p| p.answer.is_some_and(|a| (200..300).contains(&a)))
        .map(|p| p.webhook_id)
        .collect();
    assert_eq!(accepted.len(), 4, "each order accepted once: {accepted:?}");
    let statuses = jobs::count_by_status(&w.app.state.db, JobKind::SupplierSubmit)
        .await
        .unwrap();
    assert_eq!(statuses.get("succeeded"), Some(&4), "{statuses:?}");
    w.app.stop().await;
}

/// The claim passes by the calls through an excluded connection, not its other jobs (a clock)
/// nor another connection's calls; a job given back is queued as it was, its attempt uncounted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_passes_by_the_calls_of_an_excluded_connection() {
    use daifa::store::jobs::NewJob;
    let app = TestApp::spawn_with(TestDb::new().await, |s| s.jobs.workers = 0).await;
    let db = &app.state.db;
    let mut tx = db.begin().await.unwrap();
    let now = daifa::db::now_ms();
    // Oldest first: a call through `con_full`, a clock of the same connection, a call
    // through `con_free`.
    for (i, (kind, key, connection)) in [
        (JobKind::SupplierSubmit, "full-submit", "con_full"),
        (JobKind::RoutingRetry, "full-retry", "con_full"),
        (JobKind::SupplierSubmit, "free-submit", "con_free"),
    ]
    .into_iter()
    .enumerate()
    {
        jobs::enqueue_at(
            &mut tx,
            NewJob {
                kind,
                idempotency_key: key.into(),
                subject_id: key,
                order_id: key,
                connection_id: connection,
            },
            now - 1000 + i as i64,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let excluded = ["con_full".to_string()];
    let lease = Duration::from_secs(60);
    let first = jobs::claim(db, "w1", lease, &excluded)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.idempotency_key, "full-retry");
    let second = jobs::claim(db, "w1", lease, &excluded)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.idempotency_key, "free-submit");
    assert!(
        jobs::claim(db, "w1", lease, &excluded)
            .await
            .unwrap()
            .is_none()
    );

    // Given back by its worker only, then claimed as the first attempt it still is.
    let second_only = std::slice::from_ref(&second);
    assert_eq!(jobs::give_back(db, second_only, "w2").await.unwrap(), 0);
    assert_eq!(jobs::give_back(db, second_only, "w1").await.unwrap(), 1);
    let again = jobs::claim(db, "w1", lease, &excluded)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id.as_str(), again.attempt), (second.id.as_str(), 1));
    let full = jobs::claim(db, "w1", lease, &[]).await.unwrap().unwrap();
    assert_eq!(full.idempotency_key, "full-submit");
    app.stop().await;
}

/// A worker claims a batch of jobs and completes their attempts as they end: a slow call in
/// the batch does not hold back the recorded answers of its quick ones (nor the connection
/// places they hold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_does_not_hold_back_the_answers_of_its_batch() {
    const SLOW: Duration = Duration::from_secs(3);
    // Started below, once every push is queued: one worker claims them in one batch.
    let w = slow_and_fast(|s| s.jobs.workers = 0).await;
    w.supplier("slow").delay(SLOW);
    w.order("wh-batch-s", ["S1", "S2"], |_| {}).await;
    w.order("wh-batch-f1", ["F1", "F2"], |_| {}).await;
    w.order("wh-batch-f2", ["F1", "F2"], |_| {}).await;
    let db = &w.app.state.db;
    let count = |status: &'static str| async move {
        jobs::count_by_status(db, JobKind::SupplierSubmit)
            .await
            .unwrap()
            .get(status)
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(count("queued").await, 3);

    let started = std::time::Instant::now();
    let worker = OneWorker::start(&w);
    eventually("the quick pushes' answers recorded", WAIT, || async {
        (count("succeeded").await >= 2).then_some(())
    })
    .await;
    assert!(
        started.elapsed() < SLOW,
        "the quick pushes' answers were recorded after {:?}: they waited for the slow call",
        started.elapsed()
    );
    assert_eq!(
        count("running").await,
        1,
        "claimed with them, the slow one is still on its way"
    );
    eventually("the slow push's answer recorded", WAIT, || async {
        (count("succeeded").await == 3).then_some(())
    })
    .await;
    assert_eq!(distinct_ids(&answered(&w, "fast", 2).await), 2);
    assert_eq!(distinct_ids(&answered(&w, "slow", 1).await), 1);
    worker.stop().await;
    w.app.stop().await;
}

/// The pushes a worker claims in one batch read their supplier orders and orders together
/// (`Handler::prepare`, three statements for the batch): each still goes out once, with its
/// own order's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_read_together_each_go_out_as_their_own_order() {
    let w = slow_and_fast(|s| {
        s.jobs.workers = 0;
        s.jobs.per_connection = 8;
        s.jobs.claim_batch = 8;
    })
    .await;
    let mut addresses = std::collections::BTreeMap::new();
    for n in 1..=6 {
        let street = format!("{n} Batch Street");
        let order_id = w
            .order(&format!("wh-read-{n}"), ["F1", "F2"], |o| {
                o["shipping_address"]["address1"] = serde_json::json!(street.clone());
            })
            .await;
        let detail = w.app.order(&order_id).await;
        let so = detail["supplier_orders"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        addresses.insert(so, street);
    }
    let worker = OneWorker::start(&w);
    let pushes = w.pushes("fast", 6).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.supplier("fast").received().len(), 6, "each pushed once");
    assert_eq!(distinct_ids(&pushes), 6);
    for push in &pushes {
        let so = push.body["data"]["supplier_order_id"].as_str().unwrap();
        assert_eq!(
            push.body["data"]["ship_to"]["line1"].as_str(),
            Some(addresses[so].as_str()),
            "{so} went out with another order's address"
        );
    }
    worker.stop().await;
    w.app.stop().await;
}

/// The batch's reads take each order's product category too: a push read with its batch
/// follows its category's routing policy (here a shorter acknowledgement deadline for lamps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_read_together_follow_their_orders_category_policy() {
    let w = slow_and_fast(|s| {
        s.jobs.workers = 0;
        s.jobs.per_connection = 8;
    })
    .await;
    w.offer("F1", "fast", serde_json::json!({ "category": "lamps" }))
        .await;
    let r = w
        .app
        .http
        .put(w.app.url("/api/v1/policies/routing?category=lamps"))
        .json(&serde_json::json!({ "ack_deadline": "2h" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The first line sets the order's category: lamps for one, none for the other.
    let lamp = w.order("wh-cat-lamp", ["F1", "F2"], |_| {}).await;
    let other = w.order("wh-cat-other", ["F2", "F2"], |_| {}).await;
    let worker = OneWorker::start(&w);
    w.pushes("fast", 2).await;
    let deadline_in = |order_id: String| {
        let w = &w;
        async move {
            let job = w.job_of(&order_id, "supplier.ack_deadline").await;
            let hours = (job["run_at_ms"].as_i64().unwrap() - daifa::db::now_ms()) as f64 / 3.6e6;
            hours.round() as i64
        }
    };
    assert_eq!(deadline_in(lamp).await, 2, "the lamps' policy");
    assert_eq!(deadline_in(other).await, 24, "the handbook's 24 hours");
    worker.stop().await;
    w.app.stop().await;
}
