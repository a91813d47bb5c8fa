//! What the stages run with: the database, the plugins, the secret key, the settings, and the
//! signals that wake this process's workers and poller. The application (`crate::app`) builds
//! it and hands it down; no stage reaches up for the HTTP server or the CLI.

use crate::config::Settings;
use crate::db::Db;
use crate::plugins::{Parsed, PluginRegistry};
use crate::policy::PolicyCache;
use crate::secrets::SecretBox;
use anyhow::Context;
use daifa_plugin_host::{CallFailure, ConnectionContext, InboundRequest};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// What every stage, job handler and HTTP handler shares.
#[derive(Clone)]
pub struct Services {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub plugins: PluginRegistry,
    /// Seals and opens connection secrets.
    pub secrets: Arc<SecretBox>,
    /// Wakes idle workers of this process when it enqueued a job.
    pub job_signal: Arc<Notify>,
    /// Wakes this process's poller (`POST /connections/{name}/poll`).
    pub poll_signal: Arc<Notify>,
    /// Names this gateway instance in job leases: unique even for two instances with the same
    /// host name and process id (containers all run as pid 1).
    pub instance_id: String,
    /// In-process adapters by plugin name, used instead of the plugin's component to parse inbound
    /// requests. Empty in a gateway; the ingest benchmark installs the Shopify adapter compiled
    /// natively to compare the whole path with and without wasm (docs/benchmarks.md).
    pub native_parsers: Arc<HashMap<String, NativeParser>>,
    /// The policies the ingest and dispatch paths read, for `ingest.cache_ttl`.
    pub policy_cache: Arc<PolicyCache>,
    /// The connections the ingest and job paths read, for `ingest.cache_ttl`; cleared by
    /// `connections.rs` after each change.
    pub connection_cache: Arc<crate::store::connections::Cache>,
}

/// The database, for the routers of the stages that need nothing else.
impl axum::extract::FromRef<Services> for Db {
    fn from_ref(services: &Services) -> Self {
        services.db.clone()
    }
}

/// The policy cache, for `/policies` (a change clears it).
impl axum::extract::FromRef<Services> for Arc<PolicyCache> {
    fn from_ref(services: &Services) -> Self {
        services.policy_cache.clone()
    }
}

/// The plugin registry, for `/plugins`.
impl axum::extract::FromRef<Services> for PluginRegistry {
    fn from_ref(services: &Services) -> Self {
        services.plugins.clone()
    }
}

/// An adapter's inbound parsing compiled into the process.
pub type NativeParser =
    Arc<dyn Fn(&ConnectionContext, &InboundRequest) -> Result<Parsed, CallFailure> + Send + Sync>;

impl Services {
    /// Connects and migrates the database, loads the bundled plugins and the secret key.
    /// `crate::app::load` adds what needs the connections (their pinned plugin versions).
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let db = Db::connect(&settings.database_url)
            .await
            .context("connecting to the database")?;
        db.migrate().await.context("migrating the database")?;
        let plugins = PluginRegistry::start(&settings.plugins, db.clone())
            .await
            .context("loading plugins")?;
        let secrets = SecretBox::load(settings.secret_key.as_deref(), &settings.secret_key_file)
            .context("loading the secret key")?;
        Ok(Self {
            db,
            plugins,
            secrets: Arc::new(secrets),
            job_signal: Arc::new(Notify::new()),
            poll_signal: Arc::new(Notify::new()),
            instance_id: format!(
                "{}-{}-{}",
                hostname(),
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            native_parsers: Arc::new(HashMap::new()),
            policy_cache: Arc::new(PolicyCache::new(settings.ingest.cache_ttl)),
            connection_cache: Arc::new(crate::store::connections::Cache::new(
                settings.ingest.cache_ttl,
            )),
            settings: Arc::new(settings),
        })
    }

    pub fn wake_workers(&self) {
        // One idle worker: if it finds a job it wakes the next (`worker.rs`), so that a burst
        // of jobs wakes as many workers as it needs, and one job not every idle worker.
        self.job_signal.notify_one();
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "daifa".into())
}
