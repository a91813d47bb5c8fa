//! `daifa bench ingest`: how fast webhooks are taken in, against what the database allows;
//! `daifa bench dispatch`: how fast the job workers push orders to a supplier (at the end);
//! `daifa bench scale`: whether an order costs the same with many stored (`bench/scale.rs`).
//!
//! One run measures, on the same database server and the same machine, one after the other:
//! - the **bare pipeline**: an HTTP server that verifies the Shopify HMAC, parses the JSON and
//!   stores the raw body and one order row durably, a batch of webhooks per transaction (group
//!   commit), answering each after its commit (`store/bare.rs`) — the least a gateway must do;
//! - the **gateway** (`daifa serve` with job workers off): the Shopify plugin in wasmtime, the
//!   canonical order, routing, the supplier's job — at its maximum rate, then at half of it,
//!   where its latency is what a storefront sees on a normal day.
//!
//! The load comes from another process (`daifa bench load`, this binary), so that generating
//! and signing requests does not share the measured process's runtime: each request a new
//! signed `orders/create` (Shopify's published sample, 9.9 KB, with a fresh order id and
//! webhook id), from a fixed number of connections, for a fixed time. CPU per request is the
//! measured process's own (user + system) over the requests it answered.

use crate::app::Application;
use crate::config::Settings;
use crate::connections::{self, NewConnection};
use crate::db::{self, Db, now_ms};
use crate::services::Services;
use crate::store::bare::{self, BareWebhook};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

pub mod scale;

const SAMPLE: &str = include_str!("../../tests/fixtures/shopify/webhook-orders-create.paid.json");
/// The storefront connection's webhook secret.
pub const SECRET: &str = "bench-webhook-secret";
/// The storefront connection's shop.
pub const SHOP_DOMAIN: &str = "bench.myshopify.com";
/// The key sealing the scratch gateway's connection secrets.
const BENCH_KEY: &str = "ZGFpZmEtYmVuY2gta2V5LTMyLWJ5dGVzLWxvbmcuLi4=";
/// The most webhooks the bare pipeline stores in one transaction.
const MAX_BATCH: usize = 512;

/// `daifa bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// A PostgreSQL server (`postgres://user@host:port/db`) on which the run creates and drops
    /// its own databases; default: SQLite files in a temporary directory.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds of load for each measurement.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Also appends the report (Markdown) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// `daifa bench load`: the load generator, run by `bench ingest` as a process of its own.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Where to POST the webhooks; given several times, the requests go to each in turn.
    #[arg(long, required = true)]
    pub url: Vec<String>,
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Requests per second in all, paced; default: as fast as answers come.
    #[arg(long)]
    pub rate: Option<f64>,
    /// The first order id (each request takes the next).
    #[arg(long, default_value_t = 9_000_000_000)]
    pub first_id: u64,
    /// Stops after this many requests in all (or when the time is up).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Where to write the result (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

/// What one load run saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadReport {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub first_failure: Option<String>,
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The load generator: `connections` loops, each sending a new signed webhook when its last
/// one was answered (or at its pace when a rate is given), until the time is up.
pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let template: serde_json::Value = serde_json::from_str(SAMPLE)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r.max(0.001)));
    let mut loops = Vec::new();
    for i in 0..args.connections {
        let (client, template, counter, url) = (
            client.clone(),
            template.clone(),
            counter.clone(),
            args.url.clone(),
        );
        let (first_id, connections, requests) = (args.first_id, args.connections, args.requests);
        loops.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            let (mut failed, mut first_failure) = (0u64, None);
            // Paced loops start spread over one interval.
            let mut next =
                interval.map(|d| Instant::now() + d.mul_f64(i as f64 / connections as f64));
            while Instant::now() < until {
                if let (Some(at), Some(d)) = (next.as_mut(), interval) {
                    tokio::time::sleep_until((*at).into()).await;
                    *at += d;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if requests.is_some_and(|r| n >= r) {
                    break;
                }
                let mut order = template.clone();
                order["id"] = serde_json::json!(first_id + n);
                let body = serde_json::to_vec(&order).expect("JSON");
                let signature = sign(&body);
                let sent = Instant::now();
                let result = client
                    .post(&url[n as usize % url.len()])
                    .header("content-type", "application/json")
                    .header("x-shopify-topic", "orders/create")
                    .header("x-shopify-shop-domain", SHOP_DOMAIN)
                    .header("x-shopify-webhook-id", format!("bench-{}", first_id + n))
                    .header("x-shopify-hmac-sha256", signature)
                    .body(body)
                    .send()
                    .await;
                let took = sent.elapsed();
                match result {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let _ = r.bytes().await;
                        latencies_us.push(took.as_micros() as u64);
                    }
                    Ok(r) => {
                        failed += 1;
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        first_failure.get_or_insert(format!("{status}: {text}"));
                    }
                    Err(e) => {
                        failed += 1;
                        first_failure.get_or_insert(e.to_string());
                    }
                }
            }
            (latencies_us, failed, first_failure)
        }));
    }
    let mut all = Vec::new();
    let (mut failed, mut first_failure) = (0, None);
    for l in loops {
        let (latencies, f, first) = l.await?;
        all.extend(latencies);
        failed += f;
        if first_failure.is_none() {
            first_failure = first;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let at = |q: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1;
        all[i] as f64 / 1000.0
    };
    let report = LoadReport {
        sent: all.len() as u64 + failed,
        ok: all.len() as u64,
        failed,
        seconds,
        per_second: all.len() as f64 / seconds,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
        first_failure,
    };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)?;
    Ok(())
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    // /proc/self/stat: fields 14 and 15 are utime and stime, in clock ticks (USER_HZ, 100).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// One measurement: a load run against `url`, with the CPU this process spent meanwhile.
struct Measured {
    load: LoadReport,
    cpu_ms_per_request: f64,
}

async fn measure(
    url: &str,
    connections: usize,
    seconds: u64,
    rate: Option<f64>,
    first_id: u64,
) -> anyhow::Result<Measured> {
    measure_load(&[url], connections, seconds, rate, first_id, None).await
}

async fn measure_load(
    urls: &[&str],
    connections: usize,
    seconds: u64,
    rate: Option<f64>,
    first_id: u64,
    requests: Option<u64>,
) -> anyhow::Result<Measured> {
    let out = std::env::temp_dir().join(format!(
        "daifa-bench-load-{}-{first_id}.json",
        std::process::id()
    ));
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .args(["bench", "load"])
        .args(urls.iter().flat_map(|url| ["--url", url]))
        .args(["--connections", &connections.to_string()])
        .args(["--seconds", &seconds.to_string()])
        .args(["--first-id", &first_id.to_string()])
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn");
    if let Some(rate) = rate {
        command.args(["--rate", &format!("{rate:.0}")]);
    }
    if let Some(requests) = requests {
        command.args(["--requests", &requests.to_string()]);
    }
    let cpu_before = cpu_time();
    let status = command.status().await?;
    let cpu = cpu_time().saturating_sub(cpu_before);
    anyhow::ensure!(status.success(), "the load generator failed ({status})");
    let load: LoadReport = serde_json::from_slice(&std::fs::read(&out)?)?;
    let _ = std::fs::remove_file(&out);
    Ok(Measured {
        cpu_ms_per_request: cpu.as_secs_f64() * 1000.0 / load.ok.max(1) as f64,
        load,
    })
}

/// A webhook waiting for its batch's commit.
type Pending = (BareWebhook, oneshot::Sender<bool>);

/// The bare pipeline's one writer: takes whatever webhooks are waiting (up to
/// [`MAX_BATCH`]), stores them in one transaction, answers each.
async fn bare_writer(db: Db, mut queue: mpsc::Receiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let (webhooks, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let stored = bare::store_batch(&db, &webhooks).await.is_ok();
        for answer in answers {
            let _ = answer.send(stored);
        }
    }
}

async fn bare_hook(
    State(queue): State<mpsc::Sender<Pending>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let signature = headers
        .get("x-shopify-hmac-sha256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
    mac.update(&body);
    if signature.is_none_or(|s| mac.verify_slice(&s).is_err()) {
        return (StatusCode::UNAUTHORIZED, "bad signature");
    }
    let Ok(order) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "not JSON");
    };
    let Some(external_id) = order.get("id").map(|id| id.to_string()) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "no order id");
    };
    let webhook = BareWebhook {
        raw_id: db::new_id("raw"),
        body: String::from_utf8_lossy(&body).into_owned(),
        received_at_ms: now_ms(),
        order_id: db::new_id("ord"),
        external_id,
    };
    let (answer, stored) = oneshot::channel();
    if queue.send((webhook, answer)).await.is_err() || !stored.await.unwrap_or(false) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not stored");
    }
    (StatusCode::OK, "ok")
}

/// A running HTTP server that stops when dropped.
struct Serving {
    url: String,
    _stop: oneshot::Sender<()>,
}

async fn serve_bare(url: &str) -> anyhow::Result<Serving> {
    let db = Db::connect(url).await?;
    bare::create(&db).await?;
    let (queue, waiting) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(bare_writer(db, waiting));
    let app = axum::Router::new()
        .route("/hooks/{name}", axum::routing::post(bare_hook))
        .with_state(queue);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hooks/shop", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Serving { url, _stop: stop })
}

/// The benchmark's connections on a fresh gateway: the Shopify storefront `shop` (webhook
/// secret [`SECRET`], shop [`SHOP_DOMAIN`]) and a webhook supplier offering the sample's SKUs.
pub async fn set_up(state: &Services) -> anyhow::Result<()> {
    set_up_with(state, "https://supplier.example/orders").await
}

/// As [`set_up`], with the supplier's endpoint at `supplier_url` (a local one may be private).
async fn set_up_with(state: &Services, supplier_url: &str) -> anyhow::Result<()> {
    let supplier = NewConnection {
        name: "supplier".into(),
        plugin: "webhook-supplier".into(),
        plugin_version: None,
        settings: BTreeMap::from([("url".into(), supplier_url.into())]),
        secrets: BTreeMap::from([(
            "signing_secret".into(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        )]),
        allowed_hosts: vec![],
        allow_private_network: supplier_url.starts_with("http://127.0.0.1"),
    };
    connections::create(state, supplier)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    storefront(state, "shop", "shopify").await
}

/// A Shopify storefront connection `name` through `plugin` (webhook secret [`SECRET`], shop
/// [`SHOP_DOMAIN`]), with the sample's SKUs offered by the benchmark's `supplier`.
async fn storefront(state: &Services, name: &str, plugin: &str) -> anyhow::Result<()> {
    let connection = NewConnection {
        name: name.into(),
        plugin: plugin.into(),
        plugin_version: None,
        settings: BTreeMap::from([("shop_domain".into(), SHOP_DOMAIN.into())]),
        secrets: BTreeMap::from([("webhook_secret".into(), SECRET.into())]),
        allowed_hosts: vec![],
        allow_private_network: false,
    };
    connections::create(state, connection)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for sku in ["IPOD2008PINK", "IPOD2008BLACK"] {
        crate::catalogue::create(
            &state.db,
            crate::catalogue::OfferInput::new(name, sku, "supplier", &format!("SUP-{sku}")),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

async fn serve_gateway(url: &str, plugin_cache: PathBuf) -> anyhow::Result<Serving> {
    let app = gateway(url, plugin_cache).await?;
    set_up(app.state()).await?;
    Ok(serve(app))
}

/// A gateway on `url`, its job workers off, not serving yet.
async fn gateway(url: &str, plugin_cache: PathBuf) -> anyhow::Result<Application> {
    gateway_with(url, plugin_cache, |_| {}).await
}

async fn gateway_with(
    url: &str,
    plugin_cache: PathBuf,
    tweak: impl FnOnce(&mut Settings),
) -> anyhow::Result<Application> {
    let mut settings = Settings::load(None)?;
    tweak(&mut settings);
    settings.bind = "127.0.0.1:0".into();
    settings.database_url = url.into();
    settings.secret_key = Some(BENCH_KEY.into());
    settings.jobs.workers = 0;
    settings.polling.enabled = false;
    settings.plugins.cache_dir = Some(plugin_cache);
    Application::build(settings).await
}

fn serve(app: Application) -> Serving {
    let url = format!("http://{}/hooks/shop", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Serving { url, _stop: stop }
}

/// The databases of one run: two SQLite files in a temporary directory, or two scratch
/// databases on a PostgreSQL server, removed at the end.
struct Scratch {
    bare: String,
    gateway: String,
    dir: PathBuf,
    postgres: Option<(String, [String; 2])>,
}

impl Scratch {
    async fn new(postgres: Option<&str>) -> anyhow::Result<Self> {
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let dir = std::env::temp_dir().join(format!("daifa-bench-{tag}"));
        std::fs::create_dir_all(&dir)?;
        Ok(match postgres {
            Some(server) => {
                let names = [
                    format!("daifa_bench_bare_{tag}"),
                    format!("daifa_bench_{tag}"),
                ];
                Self {
                    bare: db::create_database(server, &names[0]).await?,
                    gateway: db::create_database(server, &names[1]).await?,
                    dir,
                    postgres: Some((server.to_string(), names)),
                }
            }
            None => Self {
                bare: format!("sqlite://{}?mode=rwc", dir.join("bare.db").display()),
                gateway: format!("sqlite://{}?mode=rwc", dir.join("gateway.db").display()),
                dir,
                postgres: None,
            },
        })
    }

    async fn remove(self) {
        if let Some((server, names)) = &self.postgres {
            for name in names {
                if let Err(e) = db::drop_database(server, name).await {
                    tracing::warn!(database = %name, error = %e, "a scratch database was left");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn row(path: &str, m: &Measured, bare: f64) -> String {
    format!(
        "| {path} | {:.0}/s | {:.2} | {:.1} ms | {:.1} ms | {:.1} ms | {} | {:.2} ms |",
        m.load.per_second,
        m.load.per_second / bare,
        m.load.p50_ms,
        m.load.p99_ms,
        m.load.max_ms,
        m.load.failed,
        m.cpu_ms_per_request,
    )
}

/// `daifa bench ingest`: the bare pipeline and the gateway, one after the other, and a
/// Markdown table of both.
pub async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let scratch = Scratch::new(args.postgres.as_deref()).await?;
    let result = run_ingest(&args, &scratch).await;
    scratch.remove().await;
    let report = result?;
    publish(&report, args.report.as_deref())
}

/// Prints a report, and appends it to `file` when one is given.
fn publish(report: &str, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    println!("{report}");
    if let Some(path) = file {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{report}")?;
    }
    Ok(())
}

async fn run_ingest(args: &IngestArgs, scratch: &Scratch) -> anyhow::Result<String> {
    let database = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let bare = {
        let server = serve_bare(&scratch.bare).await?;
        measure(
            &server.url,
            args.connections,
            args.seconds,
            None,
            1_000_000_000,
        )
        .await?
    };
    let server = serve_gateway(&scratch.gateway, scratch.dir.join("plugin-cache")).await?;
    // A short warm-up: the plugin's instances, the connection pool.
    measure(&server.url, args.connections, 1, None, 2_000_000_000).await?;
    let full = measure(
        &server.url,
        args.connections,
        args.seconds,
        None,
        3_000_000_000,
    )
    .await?;
    let half = measure(
        &server.url,
        args.connections,
        args.seconds,
        Some(full.load.per_second / 2.0),
        4_000_000_000,
    )
    .await?;
    drop(server);
    let per_second = bare.load.per_second.max(f64::MIN_POSITIVE);
    let mut report = format!(
        "{database}, {} connections, {} s each, {} cores; `daifa bench ingest{}`\n\n\
         | path | rate | × bare | p50 | p99 | max | failed | CPU per request |\n\
         |---|---|---|---|---|---|---|---|\n",
        args.connections,
        args.seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if args.postgres.is_some() {
            " --postgres …"
        } else {
            ""
        },
    );
    report.push_str(&row(
        "bare pipeline (HMAC, JSON, raw body + order row, group commit)",
        &bare,
        per_second,
    ));
    report.push('\n');
    report.push_str(&row("gateway, at its maximum", &full, per_second));
    report.push('\n');
    report.push_str(&row(
        &format!(
            "gateway, at half its maximum ({:.0}/s offered)",
            full.load.per_second / 2.0
        ),
        &half,
        per_second,
    ));
    report.push('\n');
    for (what, m) in [
        ("bare", &bare),
        ("gateway", &full),
        ("gateway at half", &half),
    ] {
        if let Some(failure) = &m.load.first_failure {
            report.push_str(&format!("\n{what}: first failure: {failure}\n"));
        }
    }
    Ok(report)
}

/// `daifa bench dispatch`.
#[derive(Debug, clap::Args)]
pub struct DispatchArgs {
    /// A PostgreSQL server (`postgres://user@host:port/db`) on which the run creates and drops
    /// its own databases; default: SQLite files in a temporary directory.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Orders taken in first, then pushed.
    #[arg(long, default_value_t = 3000)]
    pub orders: u64,
    /// The gateway's job workers; default: its `jobs.workers` setting.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Pushes in flight to the one supplier; default: its `jobs.per_connection` setting.
    #[arg(long)]
    pub per_connection: Option<usize>,
    /// Jobs a worker claims and completes at once; default: its `jobs.claim_batch` setting.
    #[arg(long)]
    pub claim_batch: Option<usize>,
    /// Also appends the report (Markdown) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// `daifa bench sink`: a supplier endpoint that takes every order at once (202, as Daifa's
/// supplier protocol answers a submission), run by `bench dispatch` as a process of its own.
#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    /// Where to write the port it listens on.
    #[arg(long)]
    pub port_file: PathBuf,
}

/// What the sink received: every push, and the distinct webhook-ids among them.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SinkCount {
    pub received: u64,
    pub distinct: u64,
}

/// The sink: `POST /orders` takes a push, `GET /count` says what came.
pub async fn sink(args: SinkArgs) -> anyhow::Result<()> {
    type Seen = Arc<std::sync::Mutex<(u64, std::collections::HashSet<String>)>>;
    async fn take(State(seen): State<Seen>, headers: HeaderMap) -> (StatusCode, String) {
        let id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let n = {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.0 += 1;
            seen.1.insert(id);
            seen.0
        };
        let answer =
            serde_json::json!({ "external_id": format!("SINK-{n}"), "status": "submitted" });
        (StatusCode::ACCEPTED, answer.to_string())
    }
    async fn count(State(seen): State<Seen>) -> axum::Json<SinkCount> {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        axum::Json(SinkCount {
            received: seen.0,
            distinct: seen.1.len() as u64,
        })
    }
    let seen: Seen = Default::default();
    let app = axum::Router::new()
        .route("/orders", axum::routing::post(take))
        .route("/count", axum::routing::get(count))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    std::fs::write(&args.port_file, listener.local_addr()?.port().to_string())?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// `daifa bench dispatch`: `--orders` orders taken in with the job workers off, then the
/// workers started and timed until every order's push was answered by the sink.
pub async fn dispatch(args: DispatchArgs) -> anyhow::Result<()> {
    let scratch = Scratch::new(args.postgres.as_deref()).await?;
    let result = run_dispatch(&args, &scratch).await;
    scratch.remove().await;
    let report = result?;
    publish(&report, args.report.as_deref())
}

async fn run_dispatch(args: &DispatchArgs, scratch: &Scratch) -> anyhow::Result<String> {
    use crate::store::jobs::{self, JobKind};
    let port_file = scratch.dir.join("sink.port");
    let _sink = tokio::process::Command::new(std::env::current_exe()?)
        .args(["bench", "sink", "--port-file"])
        .arg(&port_file)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let sink_port = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(port) = std::fs::read_to_string(&port_file)
                && let Ok(port) = port.trim().parse::<u16>()
            {
                break port;
            }
            anyhow::ensure!(Instant::now() < deadline, "the sink did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let app = gateway_with(&scratch.gateway, scratch.dir.join("plugin-cache"), |s| {
        if let Some(n) = args.per_connection {
            s.jobs.per_connection = n;
        }
        if let Some(n) = args.claim_batch {
            s.jobs.claim_batch = n.max(1);
        }
    })
    .await?;
    let state = app.state().clone();
    let per_connection = state.settings.jobs.per_connection;
    let claim_batch = state.settings.jobs.claim_batch;
    set_up_with(&state, &format!("http://127.0.0.1:{sink_port}/orders")).await?;
    let server = serve(app);
    let taken = measure_load(
        &[&server.url],
        64,
        600,
        None,
        5_000_000_000,
        Some(args.orders),
    )
    .await?;
    anyhow::ensure!(
        taken.load.failed == 0,
        "orders refused while taking them in: {:?}",
        taken.load.first_failure
    );
    let queued = jobs::count_by_status(&state.db, JobKind::SupplierSubmit).await?;
    let to_push: i64 = queued.values().sum();
    // The gateway was built with its workers off (for the intake); these are `daifa serve`'s.
    let workers = match args.workers {
        Some(n) => n,
        None => Settings::load(None)?.jobs.workers,
    };
    anyhow::ensure!(workers > 0, "dispatch needs at least one worker");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let cpu_before = cpu_time();
    let started = Instant::now();
    let running = crate::worker::spawn(state.clone(), crate::app::handlers()?, workers, stopped);
    let counts = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let counts = jobs::count_by_status(&state.db, JobKind::SupplierSubmit).await?;
        let finished = ["succeeded", "dead"]
            .iter()
            .map(|s| counts.get(*s).copied().unwrap_or(0))
            .sum::<i64>();
        if finished >= to_push || started.elapsed() > Duration::from_secs(600) {
            break counts;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let _ = stop.send(true);
    for w in running {
        let _ = w.await;
    }
    drop(server);
    let sink: SinkCount = reqwest::get(format!("http://127.0.0.1:{sink_port}/count"))
        .await?
        .json()
        .await?;
    let succeeded = counts.get("succeeded").copied().unwrap_or(0);
    let database = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    Ok(format!(
        "{database}, {to_push} orders queued, {workers} workers, {per_connection} pushes in flight to the supplier at most, claimed {claim_batch} at a time, {} cores; `daifa bench dispatch{}`\n\n\
         | pushes | rate | CPU per push | received by the supplier | distinct webhook-ids | not pushed |\n\
         |---|---|---|---|---|---|\n\
         | {succeeded} in {seconds:.1} s | {:.0}/s | {:.2} ms | {} | {} | {} |\n",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if args.postgres.is_some() {
            " --postgres …"
        } else {
            ""
        },
        succeeded as f64 / seconds,
        cpu.as_secs_f64() * 1000.0 / succeeded.max(1) as f64,
        sink.received,
        sink.distinct,
        to_push - succeeded,
    ))
}
