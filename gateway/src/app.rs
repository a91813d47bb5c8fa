//! The application: settings, database, plugins, the HTTP server, the job workers, the poller
//! and the sweeper of stale requests.

use crate::config::Settings;
use crate::db::Db;
use crate::plugins::PluginRegistry;
use crate::secrets::SecretBox;
use crate::shadow::Parsed;
use crate::{admin, connections, dispatch, ingest, plugins, polling, routing};
use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use daifa_plugin_host::{CallFailure, ConnectionContext, InboundRequest};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower_http::trace::TraceLayer;

/// What every handler and worker shares.
#[derive(Clone)]
pub struct AppState {
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
}

/// The database, for the routers of the stages that need nothing else.
impl axum::extract::FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

/// The plugin registry, for `/plugins`.
impl axum::extract::FromRef<AppState> for PluginRegistry {
    fn from_ref(state: &AppState) -> Self {
        state.plugins.clone()
    }
}

/// An adapter's inbound parsing compiled into the process.
pub type NativeParser =
    Arc<dyn Fn(&ConnectionContext, &InboundRequest) -> Result<Parsed, CallFailure> + Send + Sync>;

impl AppState {
    /// Connects and migrates the database, loads the plugins and the secret key: all a gateway
    /// needs but its port (commands that work on the data, like `daifa replay`, need no more).
    pub async fn load(settings: Settings) -> anyhow::Result<Self> {
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
            settings: Arc::new(settings),
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
        })
    }

    pub fn wake_workers(&self) {
        self.job_signal.notify_waiters();
    }
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects and migrates the database, loads the plugins and binds the port (`:0` picks one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::telemetry::install();
        let listener = TcpListener::bind(&settings.bind)
            .await
            .with_context(|| format!("binding {}", settings.bind))?;
        if settings.admin_token.is_none() {
            tracing::warn!(
                "no admin token is set (DAIFA_ADMIN_TOKEN): the admin API is open to anyone who can reach {}",
                settings.bind
            );
        }
        let state = AppState::load(settings).await?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Parses the inbound requests of `plugin`'s connections with `parser` instead of the
    /// plugin's component (benchmarks).
    pub fn with_native_parser(mut self, plugin: &str, parser: NativeParser) -> Self {
        Arc::make_mut(&mut self.state.native_parsers).insert(plugin.to_string(), parser);
        self
    }

    /// Serves until `shutdown` resolves, then lets the workers finish their current job.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let poller = polling::spawn(self.state.clone(), stop_rx.clone());
        let sweeper = ingest::reprocess::spawn(self.state.clone(), stop_rx.clone());
        let workers = dispatch::spawn_workers(
            self.state.clone(),
            self.state.settings.jobs.workers,
            stop_rx,
        );
        tracing::info!(addr = %self.local_addr(), workers = workers.len(), polling = poller.is_some(), sweeping = sweeper.is_some(), "daifa listening");
        let app = router(self.state.clone());
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down");
            })
            .await?;
        let _ = stop_tx.send(true);
        for w in workers.into_iter().chain(poller).chain(sweeper) {
            let _ = w.await;
        }
        Ok(())
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

pub fn router(state: AppState) -> Router {
    let max_body = state.settings.ingest.max_body_bytes;
    let max_package = state.settings.plugins.max_package_mb << 20;
    let api = Router::new()
        .merge(plugins::router().layer(DefaultBodyLimit::max(max_package)))
        .merge(connections::router())
        .merge(polling::router())
        .merge(crate::policy::router())
        .merge(crate::aftersales::router())
        .merge(routing::router())
        .merge(admin::router());
    Router::new()
        .merge(ingest::router())
        .nest("/api/v1", admin::authorized(api, state.clone()))
        .route("/healthz", axum::routing::get(admin::health))
        .route("/metrics", axum::routing::get(crate::telemetry::render))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "daifa".into())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
