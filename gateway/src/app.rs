//! The application: settings, database, plugins, the HTTP server, the job workers, the poller
//! and the sweeper of stale requests.

use crate::config::Settings;
use crate::services::{NativeParser, Services};
use crate::{admin, connections, dispatch, ingest, plugins, polling, routing};
use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

/// Everything a gateway needs but its port: the services, with the connections' plugin
/// versions pinned and loaded (commands that work on the data, like `daifa replay`, need no
/// more).
pub async fn load(settings: Settings) -> anyhow::Result<Services> {
    let services = Services::connect(settings).await?;
    connections::prepare_plugins(&services.db, &services.plugins).await?;
    Ok(services)
}

pub struct Application {
    listener: TcpListener,
    state: Services,
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
        let state = load(settings).await?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &Services {
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
        let handlers = handlers()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let poller = polling::spawn(self.state.clone(), stop_rx.clone());
        let sweeper = ingest::reprocess::spawn(self.state.clone(), stop_rx.clone());
        let workers = crate::worker::spawn(
            self.state.clone(),
            handlers,
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

/// Every stage's job handlers, for the workers.
pub fn handlers() -> anyhow::Result<crate::worker::Handlers> {
    crate::worker::Handlers::new(
        [
            dispatch::jobs(),
            routing::jobs(),
            crate::fulfilment::jobs(),
            crate::tracking::jobs(),
            crate::aftersales::jobs(),
            crate::cancellation::jobs(),
        ]
        .concat(),
    )
}

pub fn router(state: Services) -> Router {
    let max_body = state.settings.ingest.max_body_bytes;
    let max_package = state.settings.plugins.max_package_mb << 20;
    let api = Router::new()
        .merge(plugins::router().layer(DefaultBodyLimit::max(max_package)))
        .merge(connections::router())
        .merge(crate::replay::router())
        .merge(crate::shadow::router())
        .merge(polling::router())
        .merge(crate::policy::router())
        .merge(crate::aftersales::router())
        .merge(routing::router())
        .merge(crate::catalogue::router())
        .merge(admin::router());
    Router::new()
        .merge(ingest::router(&state))
        .nest("/api/v1", admin::authorized(api, state.clone()))
        .route("/healthz", axum::routing::get(admin::health))
        .route("/metrics", axum::routing::get(crate::telemetry::render))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_stages_register_one_handler_for_every_job_kind() {
        let handlers = super::handlers().expect("every kind has one handler");
        for kind in crate::store::jobs::JobKind::ALL {
            assert_eq!(handlers.of(kind).kind, kind);
        }
    }
}
