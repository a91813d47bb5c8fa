//! The `daifa` command line.

use crate::app::Application;
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
}

#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Lists cases, newest first.
    List {
        /// Only cases in this state (`requested`, `approved`, ...).
        #[arg(long)]
        state: Option<String>,
        /// Only the cases of this order (Daifa's id).
        #[arg(long)]
        order: Option<String>,
        /// Only the cases not closed.
        #[arg(long)]
        open: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Shows a case: its lines, money, history, what it may do next and the handbook's proposal.
    Show {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Opens a case on an order.
    Open {
        /// The order (Daifa's id).
        #[arg(long)]
        order: String,
        /// cancel, refund_only, partial_compensation, return_refund, exchange, reship,
        /// warranty_repair or paid_maintenance.
        #[arg(long)]
        kind: String,
        /// quality, damaged, wrong_item, wrong_quantity, not_received, lost, customs_held,
        /// changed_mind, late_delivery, not_as_described or other.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        note: Option<String>,
        /// A line concerned, as LINE_ID:QUANTITY; repeat for several (default: every line).
        #[arg(long = "line", value_name = "LINE_ID:QUANTITY")]
        lines: Vec<String>,
        /// A link to a photo or an invoice; repeat for several.
        #[arg(long)]
        evidence: Vec<String>,
        /// The refund asked, in minor units of the order's currency (default: the lines' price).
        #[arg(long)]
        refund_minor: Option<i64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Moves a case by an action: approve, reject, quote, intercept, return_shipped, receive,
    /// inspect, start_repair, ship, refund, close...
    Act {
        id: String,
        action: String,
        #[arg(long)]
        note: Option<String>,
        /// `refund`: the amount paid back, in minor units.
        #[arg(long)]
        amount_minor: Option<i64>,
        /// `inspect`: the goods are as new.
        #[arg(long, conflicts_with = "defect")]
        resellable: bool,
        /// `inspect`: the defect found (the goods are not resellable).
        #[arg(long)]
        defect: Option<String>,
        /// `return_shipped`: the return parcel's tracking number.
        #[arg(long)]
        tracking_number: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Lists tasks, oldest first.
    List {
        /// `open` (default), `done` or `all`.
        #[arg(long, default_value = "open")]
        status: String,
        /// Only the tasks of this order.
        #[arg(long)]
        order: Option<String>,
        /// Only tasks of this kind (`ship_overdue`, `tracking_follow_up`...).
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Marks a task done.
    Done {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum OffersCommand {
    /// Imports offers from a CSV file (columns as `export` writes them): every row or none; a
    /// refused file lists each bad row's problems.
    Import {
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Writes every offer as CSV, to FILE or standard output.
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Where the admin API is.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// Base URL of the gateway.
    #[arg(long, env = "DAIFA_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The admin bearer token, when the gateway has one.
    #[arg(long, env = "DAIFA_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Who acts, as recorded in a case's history and on a task done (default: `api`).
    #[arg(long, env = "DAIFA_OPERATOR")]
    pub operator: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Makes a package (`NAME-VERSION.daifa.wasm`) from a plugin project: its `daifa-plugin.toml` and
    /// the built component.
    Pack {
        /// The plugin project (holding daifa-plugin.toml).
        dir: PathBuf,
        /// Where to write the package (default: DIR/NAME-VERSION.daifa.wasm).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Uploads a package to the gateway.
    Install {
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Lists installed plugins and versions.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Shows a version's manifest, capabilities and settings schema (or every version's).
    Inspect {
        name: String,
        version: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Lets connections use a version again.
    Enable {
        name: String,
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stops new connections and upgrades from using a version.
    Disable {
        name: String,
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Runs a plugin project's recorded cases (DIR/cases/*.json, see docs/plugin-cases.md)
    /// against its component in the real host; builds it first. Exits non-zero when a case fails.
    Test {
        /// The plugin project (holding daifa-plugin.toml and cases/).
        dir: PathBuf,
        /// Use the component as it is built, without running the build.
        #[arg(long)]
        no_build: bool,
        /// Write the actual result into the `expect` of failing cases (review the diff).
        #[arg(long)]
        bless: bool,
        /// Only the cases whose file name contains this.
        #[arg(long, value_name = "NAME_SUBSTRING")]
        case: Option<String>,
    },
    /// Creates a plugin project to start from: PARENT/NAME with its code, unit tests, manifest
    /// and recorded cases, passing as generated.
    New {
        /// The plugin's name (a-z, 0-9, `-`).
        name: String,
        /// What the plugin adapts.
        #[arg(long, value_parser = crate::devkit::new::parse_kind)]
        kind: daifa_plugin_host::PluginKind,
        /// The directory to create the project in.
        #[arg(long = "dir", value_name = "PARENT", default_value = ".")]
        parent: PathBuf,
        /// The guest SDK (plugin-sdk/guest) to depend on; default: this build's repository's.
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Lists connections with their plugin versions.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Moves a connection to another version of its plugin.
    Upgrade {
        name: String,
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Returns a connection to the version it ran before its last upgrade.
    Rollback {
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Runs a candidate version in shadow on the connection's live traffic.
    Shadow {
        name: String,
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stops the shadow run.
    Unshadow {
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
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
            crate::replay::command(settings()?, connection, request, report).await
        }
        Command::Plugin { command } => crate::client::plugin(command).await,
        Command::Connection { command } => crate::client::connection(command).await,
        Command::Offers { command } => crate::client::offers(command).await,
        Command::Cases { command } => crate::client::aftersales::cases(command).await,
        Command::Tasks { command } => crate::client::aftersales::tasks(command).await,
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
