//! The `daifa` command line.

use crate::app::Application;
use crate::client::aftersales::{CasesCommand, TasksCommand};
use crate::client::{ConnectionCommand, OffersCommand, PluginCommand};
use crate::config::Settings;
use crate::db::Db;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "daifa",
    version,
    about = "The integration gateway for dropshipping shops"
)]
pub struct Cli {
    /// Settings file (default: ./daifa.toml when present). `DAIFA_*` variables override it.
    #[arg(long, global = true, env = "DAIFA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the gateway: hooks, admin API and job workers.
    Serve,
    /// Applies the database migrations and exits.
    Migrate,
    /// Runs the gateway with a demo set-up: a Shopify connection with a demo secret, a demo
    /// supplier that ships every order it gets, and a demo storefront admin that records
    /// write-backs. See the README for the request to send.
    Demo {
        /// Port of the demo supplier.
        #[arg(long, default_value_t = 8081)]
        supplier_port: u16,
        /// Port of the demo storefront admin API.
        #[arg(long, default_value_t = 8082)]
        storefront_port: u16,
    },
    /// Plugin packages: install, list, inspect, enable, disable (through a running gateway's
    /// admin API), and pack a plugin project into a package.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Re-runs a connection's stored requests through another plugin version, without side
    /// effects, and reports which canonical results differ. Works on the database directly.
    Replay {
        /// The connection whose requests to replay.
        #[arg(long)]
        connection: String,
        /// The candidate version.
        #[arg(long)]
        version: String,
        /// The version to compare with (default: the connection's).
        #[arg(long)]
        baseline: Option<String>,
        /// Only requests received at or after this time, in ms since the epoch.
        #[arg(long)]
        since_ms: Option<i64>,
        /// At most this many requests, oldest first.
        #[arg(long)]
        limit: Option<i64>,
        /// Writes the full report (every difference, both results) as JSON.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// A connection's plugin version: upgrade, roll back, run a candidate in shadow.
    Connection {
        #[command(subcommand)]
        command: ConnectionCommand,
    },
    /// Supplier offers of storefront SKUs, in bulk as CSV.
    Offers {
        #[command(subcommand)]
        command: OffersCommand,
    },
    /// After-sales cases: open, list, inspect and advance them.
    Cases {
        #[command(subcommand)]
        command: CasesCommand,
    },
    /// The exception queue: tasks the service clocks opened when a handbook's time ran out.
    Tasks {
        #[command(subcommand)]
        command: TasksCommand,
    },
    /// Benchmarks with a report: `bench ingest` measures the gateway against the bare pipeline
    /// on this machine's database, `bench dispatch` its pushes to suppliers (docs/benchmarks.md).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Webhooks in: the bare pipeline, then the gateway at its maximum and at half of it.
    Ingest(crate::bench::IngestArgs),
    /// Pushes out: queued orders pushed to a local supplier endpoint by the job workers.
    Dispatch(crate::bench::DispatchArgs),
    /// Orders in, many of them: whether an order costs the same with many stored.
    Scale(crate::bench::scale::ScaleArgs),
    /// The load generator `bench ingest` runs in a process of its own.
    #[command(hide = true)]
    Load(crate::bench::LoadArgs),
    /// The supplier endpoint `bench dispatch` runs in a process of its own.
    #[command(hide = true)]
    Sink(crate::bench::SinkArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = || Settings::load(cli.config.as_deref());
    match cli.command {
        Command::Serve => {
            Application::build(settings()?)
                .await?
                .run_until_stopped()
                .await
        }
        Command::Migrate => {
            let settings = settings()?;
            let db = Db::connect(&settings.database_url).await?;
            db.migrate().await?;
            tracing::info!(database = %redact(&settings.database_url), "migrations applied");
            Ok(())
        }
        Command::Demo {
            supplier_port,
            storefront_port,
        } => crate::demo::run(settings()?, supplier_port, storefront_port).await,
        Command::Replay {
            connection,
            version,
            baseline,
            since_ms,
            limit,
            report,
        } => {
            let request = crate::replay::ReplayRequest {
                version,
                baseline,
                since_ms,
                limit,
            };
            crate::replay::command(
                crate::app::load(settings()?).await?,
                connection,
                request,
                report,
            )
            .await
        }
        Command::Plugin { command } => crate::client::plugin(command).await,
        Command::Connection { command } => crate::client::connection(command).await,
        Command::Offers { command } => crate::client::offers(command).await,
        Command::Cases { command } => crate::client::aftersales::cases(command).await,
        Command::Tasks { command } => crate::client::aftersales::tasks(command).await,
        Command::Bench { command } => match command {
            BenchCommand::Ingest(args) => crate::bench::ingest(args).await,
            BenchCommand::Dispatch(args) => crate::bench::dispatch(args).await,
            BenchCommand::Scale(args) => crate::bench::scale::scale(args).await,
            BenchCommand::Load(args) => crate::bench::load(args).await,
            BenchCommand::Sink(args) => crate::bench::sink(args).await,
        },
    }
}

/// The database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}
