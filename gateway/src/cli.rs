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
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await
        }
        Command::Migrate => {
            let db = Db::connect(&settings.database_url).await?;
            db.migrate().await?;
            tracing::info!(database = %redact(&settings.database_url), "migrations applied");
            Ok(())
        }
        Command::Demo {
            supplier_port,
            storefront_port,
        } => crate::demo::run(settings, supplier_port, storefront_port).await,
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
