//! Spawning the gateway for a test: a fresh database (a temp file on SQLite, a new database on
//! PostgreSQL when `DAIFA_TEST_DATABASE_URL` names a server), fast retry settings, a random port.

use daifa::config::{
    BreakerSettings, FulfillmentSettings, IngestSettings, JobSettings, PluginCeiling,
    PluginSettings, PollingSettings, PoolSettings, ReuseSettings, Settings,
};
use daifa::{Application, Services};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;
use tokio::sync::oneshot;

pub const SHOP_CONNECTION: &str = "shop";
pub const SUPPLIER_CONNECTION: &str = "supplier";
pub const SHOPIFY_SECRET: &str = "shpss_test_client_secret";
pub const SHOPIFY_TOKEN: &str = "shpat_test_access_token";
pub const SUPPLIER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,daifa=debug,sqlx=warn")
                .with_test_writer()
                .try_init();
        }
    });
}

/// A database of the test's own.
pub struct TestDb {
    pub url: String,
    /// On PostgreSQL: the server URL and the database's name, dropped when the test is done.
    pg: Option<(String, String)>,
    _dir: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A directory removed when dropped.
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl TestDb {
    pub async fn new() -> Self {
        match std::env::var("DAIFA_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(server) if server.starts_with("postgres") => {
                let name = format!("daifa_test_{}", uuid::Uuid::now_v7().simple());
                let admin = sqlx::PgPool::connect(&server)
                    .await
                    .expect("connecting to the test PostgreSQL server");
                sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
                    .execute(&admin)
                    .await
                    .expect("creating the test database");
                admin.close().await;
                let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
                Self {
                    url: format!("{base}/{name}"),
                    pg: Some((server, name)),
                    _dir: None,
                }
            }
            _ => {
                let dir = std::env::temp_dir()
                    .join(format!("daifa-test-{}", uuid::Uuid::now_v7().simple()));
                std::fs::create_dir_all(&dir).expect("creating a temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.join("daifa.db").display());
                Self {
                    url,
                    pg: None,
                    _dir: Some(tempfile_dir::TempDir(dir)),
                }
            }
        }
    }

    /// No database: what a stopped gateway keeps once it handed its own on.
    fn none() -> Self {
        Self {
            url: String::new(),
            pg: None,
            _dir: None,
        }
    }

    /// A handle on the same database for a second gateway: it drops nothing.
    pub fn share(&self) -> Self {
        Self {
            url: self.url.clone(),
            pg: None,
            _dir: None,
        }
    }

    /// Drops a PostgreSQL test database (SQLite's goes with its temp dir).
    pub async fn drop_database(&self) {
        if let Some((server, name)) = &self.pg
            && let Ok(admin) = sqlx::PgPool::connect(server).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "drop database if exists {name} with (force)"
            )))
            .execute(&admin)
            .await;
            admin.close().await;
        }
    }
}

/// The key sealing connection secrets in every test gateway (and `daifa` commands run by tests).
pub const TEST_SECRET_KEY: &str = "ZGFpZmEtdGVzdC1rZXktMzItYnl0ZXMtbG9uZy4uLi4=";

/// Compiled plugins are shared by all tests (and runs): compiling is the slow part of a start.
pub fn plugin_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugin-cache")
}

pub fn test_settings(database_url: &str) -> Settings {
    Settings {
        bind: "127.0.0.1:0".into(),
        database_url: database_url.into(),
        admin_token: None,
        // A fixed test key: every gateway of a test (replicas, restarts) opens the same secrets.
        secret_key: Some(TEST_SECRET_KEY.into()),
        secret_key_file: std::env::temp_dir().join("daifa-test-unused.key"),
        ingest: IngestSettings {
            max_body_bytes: 1 << 20,
            sweep: true,
            sweep_interval: Duration::from_millis(100),
            // As in production: a test that wants a stale request stores it a while ago.
            stale_after: Duration::from_secs(60),
            reprocess_schedule: vec![Duration::from_millis(200), Duration::from_millis(200)],
            batch_max: 64,
            writers: None,
            cache_ttl: Duration::from_secs(2),
        },
        plugins: PluginSettings {
            cache_dir: Some(plugin_cache_dir()),
            call_deadline: Duration::from_secs(5),
            memory_limit_mb: 64,
            max_input_bytes: 5 << 20,
            max_output_bytes: 4 << 20,
            max_outbound_requests: 8,
            outbound_timeout: Duration::from_secs(3),
            ceiling: PluginCeiling {
                call_deadline: Duration::from_secs(8),
                memory_limit_mb: 128,
                max_input_bytes: 8 << 20,
                max_output_bytes: 8 << 20,
                max_outbound_requests: 16,
                outbound_timeout: Duration::from_secs(5),
            },
            max_package_mb: 64,
            pool: PoolSettings { instances: 32 },
            reuse: ReuseSettings {
                compiled_calls: 100,
                interpreted_calls: 1000,
                max_idle_per_connection: 2,
                max_warm_total: 16,
            },
        },
        jobs: JobSettings {
            workers: 2,
            poll_interval: Duration::from_millis(50),
            lease: Duration::from_secs(10),
            retry_schedule: vec![
                Duration::from_millis(200),
                Duration::from_millis(200),
                Duration::from_millis(200),
            ],
            retry_jitter: 0.1,
            max_retry_after: Duration::from_secs(30),
            per_connection: 2,
            claim_batch: 8,
            // Off: the tests of failing peers count their attempts; tests/e2e/throttle.rs
            // turns it on.
            breaker: BreakerSettings {
                failures: 0,
                cool_down: Duration::from_secs(1),
                max_cool_down: Duration::from_secs(1),
            },
        },
        polling: PollingSettings {
            enabled: true,
            tick: Duration::from_millis(100),
            interval: Duration::from_secs(60),
            min_interval: Duration::from_millis(200),
            first_lookback: Duration::ZERO,
            max_pages: 5,
            carrier_batch: 40,
            max_backoff: Duration::from_secs(2),
            lease: Duration::from_secs(10),
        },
        fulfillment: FulfillmentSettings {
            notify_customer: true,
        },
    }
}

pub struct TestApp {
    pub api: Api,
    pub state: Services,
    pub db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The gateway's own runtime, for one that can crash ([`TestApp::spawn_crashable`]).
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A client of a running gateway (in this process or another).
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn spawn_with(db: TestDb, tweak: impl FnOnce(&mut Settings)) -> Self {
        init_logs();
        let mut settings = test_settings(&db.url);
        tweak(&mut settings);
        let app = Application::build(settings)
            .await
            .expect("building the gateway");
        let addr = app.local_addr();
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let api = Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        };
        Self {
            api,
            state,
            db,
            stop: Some(stop),
            handle: Some(handle),
            runtime: None,
        }
    }

    /// A gateway on a runtime of its own, as a process of its own would be: [`TestApp::crash`]
    /// drops everything it is doing at once (requests, job attempts, open transactions), the
    /// way a killed process leaves its database.
    pub async fn spawn_crashable(db: TestDb, tweak: impl FnOnce(&mut Settings)) -> Self {
        init_logs();
        let mut settings = test_settings(&db.url);
        tweak(&mut settings);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the gateway");
        let (started, up) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = runtime.spawn(async move {
            let app = Application::build(settings)
                .await
                .expect("building the gateway");
            let _ = started.send((app.local_addr(), app.state().clone()));
            app.run_until(async move {
                let _ = stopped.await;
            })
            .await
        });
        let (addr, state) = up.await.expect("the gateway started");
        Self {
            api: Api {
                base: format!("http://{addr}"),
                http: reqwest::Client::new(),
            },
            state,
            db,
            stop: Some(stop),
            handle: Some(handle),
            runtime: Some(runtime),
        }
    }

    /// Kills a gateway started with [`TestApp::spawn_crashable`] where it stands, and hands back
    /// its database for the next one.
    pub fn crash(&mut self) -> TestDb {
        let runtime = self
            .runtime
            .take()
            .expect("only a gateway on its own runtime can crash");
        self.stop.take();
        self.handle.take();
        runtime.shutdown_background();
        std::mem::replace(&mut self.db, TestDb::none())
    }

    pub async fn stop(self) {
        let db = self.stop_keeping_database().await;
        db.drop_database().await;
    }

    /// Stops the gateway (as a restart would) and hands back its database, for the next one.
    pub async fn stop_keeping_database(mut self) -> TestDb {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.state.db.pool.close().await;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        std::mem::replace(&mut self.db, TestDb::none())
    }
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let r = self.http.get(self.url(path)).send().await.expect("GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("JSON body")
    }

    /// A POST by a named operator (`x-daifa-operator`), as the audit records it.
    pub async fn post_as(&self, path: &str, operator: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("x-daifa-operator", operator)
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// The Shopify connection (against the fake Admin API at `shopify_base`), the webhook
    /// supplier (at `supplier_url`) and a mapping of the sample order's SKU.
    pub async fn set_up_connections(&self, shopify_base: &str, supplier_url: &str) {
        let shop_host = host_of(shopify_base);
        let r = self
            .post_json(
                "/api/v1/connections",
                &json!({
                    "name": SHOP_CONNECTION, "plugin": "shopify",
                    "settings": { "shop_domain": "test-shop.myshopify.com", "admin_base_url": shopify_base, "api_version": "2025-07" },
                    "secrets": { "webhook_secret": SHOPIFY_SECRET, "access_token": SHOPIFY_TOKEN },
                    "allowed_hosts": [shop_host],
                    // The fakes listen on loopback.
                    "allow_private_network": true,
                }),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        let r = self
            .post_json(
                "/api/v1/connections",
                &json!({
                    "name": SUPPLIER_CONNECTION, "plugin": "webhook-supplier",
                    "settings": { "url": supplier_url },
                    "secrets": { "signing_secret": SUPPLIER_SECRET },
                    "allowed_hosts": [host_of(supplier_url)],
                    "allow_private_network": true,
                }),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
        self.map_sku("IPOD2008PINK", "SUP-IPOD-PINK").await;
    }

    pub async fn map_sku(&self, storefront_sku: &str, supplier_sku: &str) {
        let r = self
            .post_json(
                "/api/v1/offers",
                // The sample order's note asks for gift wrap and a colour: the supplier can.
                &json!({ "channel": SHOP_CONNECTION, "storefront_sku": storefront_sku, "supplier": SUPPLIER_CONNECTION, "supplier_sku": supplier_sku,
                         "capabilities": ["gift_wrap", "colour_choice", "size_choice"] }),
            )
            .await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    }

    /// Sends a Shopify webhook signed with `secret`.
    pub async fn send_shopify(
        &self,
        topic: &str,
        webhook_id: &str,
        body: &[u8],
        secret: &str,
    ) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/hooks/{SHOP_CONNECTION}")))
            .header("content-type", "application/json")
            .header("x-shopify-topic", topic)
            .header("x-shopify-webhook-id", webhook_id)
            .header("x-shopify-shop-domain", "test-shop.myshopify.com")
            .header("x-shopify-api-version", "2025-07")
            .header("x-shopify-hmac-sha256", shopify_hmac(secret, body))
            .body(body.to_vec())
            .send()
            .await
            .expect("sending the webhook")
    }

    pub async fn orders(&self) -> Vec<Value> {
        self.get_json("/api/v1/orders").await["orders"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn order(&self, id: &str) -> Value {
        self.get_json(&format!("/api/v1/orders/{id}")).await
    }
}

pub fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default()
        .to_string()
}

pub fn shopify_hmac(secret: &str, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Polls `check` until it returns `Some`, or fails the test after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The real published Shopify sample order, paid (`tests/fixtures/shopify/SOURCES.md`: the
/// published one is voided, and Daifa ships paid orders only).
pub fn shopify_sample() -> Vec<u8> {
    std::fs::read(fixture("shopify/webhook-orders-create.paid.json"))
        .expect("reading the Shopify fixture")
}

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}
