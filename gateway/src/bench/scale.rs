//! `daifa bench scale`: whether taking in an order costs the same with many stored. One gateway
//! (job workers off) takes in `--orders` new orders in `--steps` equal runs of the load
//! generator; each run is measured with the number of orders stored before it, the process's
//! resident memory and the database's size after it. A query that scans a growing table shows
//! as a rate that falls from step to step. With `--plugins N`, the storefront is N plugin
//! packages of their own (the Shopify adapter under N names, each compiled and loaded apart),
//! each with its connection, and the load goes to each in turn: the memory of a gateway with
//! that many plugins in use.

use super::{Scratch, gateway, measure_load, publish, serve, set_up, storefront};
use crate::plugins::Source;
use crate::services::Services;
use daifa_plugin_host::manifest::{Package, repack};
use std::path::PathBuf;

/// `daifa bench scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// A PostgreSQL server (`postgres://user@host:port/db`) on which the run creates and drops
    /// its own databases; default: SQLite files in a temporary directory.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Orders taken in, in all.
    #[arg(long, default_value_t = 200_000)]
    pub orders: u64,
    /// Measured runs along the way, each taking in `orders / steps`.
    #[arg(long, default_value_t = 10)]
    pub steps: u64,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Storefront plugins loaded and in use: the Shopify adapter as this many packages of
    /// their own, each with a connection, the orders spread over them.
    #[arg(long, default_value_t = 1)]
    pub plugins: usize,
    /// Also appends the report (Markdown) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.steps > 0 && args.orders >= args.steps,
        "--steps must be at least 1 and at most --orders"
    );
    anyhow::ensure!(args.plugins > 0, "--plugins must be at least 1");
    let scratch = Scratch::new(args.postgres.as_deref()).await?;
    let result = run(&args, &scratch).await;
    scratch.remove().await;
    publish(&result?, args.report.as_deref())
}

async fn run(args: &ScaleArgs, scratch: &Scratch) -> anyhow::Result<String> {
    let app = gateway(&scratch.gateway, scratch.dir.join("plugin-cache")).await?;
    let state = app.state().clone();
    set_up(&state).await?;
    let names = more_storefronts(&state, args.plugins).await?;
    let server = serve(app);
    let urls: Vec<String> = std::iter::once(server.url.clone())
        .chain(
            names
                .iter()
                .map(|name| server.url.replace("/hooks/shop", &format!("/hooks/{name}"))),
        )
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let per_step = args.orders / args.steps;
    let mut rows = Vec::new();
    let mut first_rate = None;
    let mut last_rate = 0.0;
    for step in 0..args.steps {
        let stored = crate::store::orders::count(&state.db).await?;
        let m = measure_load(
            &urls,
            args.connections,
            3600,
            None,
            6_000_000_000 + step * per_step,
            Some(per_step),
        )
        .await?;
        anyhow::ensure!(
            m.load.failed == 0,
            "orders refused at step {step}: {:?}",
            m.load.first_failure
        );
        first_rate.get_or_insert(m.load.per_second);
        last_rate = m.load.per_second;
        rows.push(format!(
            "| {stored} | {:.0}/s | {:.1} ms | {:.1} ms | {:.2} ms | {} MB | {} MB |",
            m.load.per_second,
            m.load.p50_ms,
            m.load.p99_ms,
            m.cpu_ms_per_request,
            resident_mb(),
            state.db.size_bytes().await? >> 20,
        ));
    }
    drop(server);
    let stored = crate::store::orders::count(&state.db).await?;
    let names: std::collections::HashMap<String, String> =
        crate::store::connections::list(&state.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
    let mut per_storefront: Vec<String> = crate::store::orders::count_by_connection(&state.db)
        .await?
        .into_iter()
        .map(|(id, n)| format!("{} {n}", names.get(&id).map_or(id.as_str(), String::as_str)))
        .collect();
    per_storefront.sort();
    let database = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    Ok(format!(
        "{database}, {} orders in {} runs of {per_step}, {} connections, {} storefront plugins, {} cores; \
         `daifa bench scale --orders {} --steps {} --plugins {}{}`\n\n\
         | orders stored before | rate | p50 | p99 | CPU per request | resident memory | database |\n\
         |---|---|---|---|---|---|---|\n{}\n\n\
         {stored} orders stored ({}); the last run's rate is {:.2}× the first's.\n",
        args.orders,
        args.steps,
        args.connections,
        args.plugins,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.orders,
        args.steps,
        args.plugins,
        if args.postgres.is_some() {
            " --postgres …"
        } else {
            ""
        },
        rows.join("\n"),
        per_storefront.join(", "),
        last_rate / first_rate.unwrap_or(1.0).max(f64::MIN_POSITIVE),
    ))
}

/// Storefronts 2 to `plugins`: the bundled Shopify package installed again under the name
/// `shopify-bench-N` (the same component, compiled and loaded as a plugin of its own) and a
/// storefront `shop-N` through it.
async fn more_storefronts(state: &Services, plugins: usize) -> anyhow::Result<Vec<String>> {
    let bundled = daifa_bundled_plugins::get("shopify")
        .ok_or_else(|| anyhow::anyhow!("the Shopify plugin is not bundled"))?
        .wasm;
    let manifest = Package::read(bundled)?.manifest_toml;
    let mut names = Vec::new();
    for n in 2..=plugins {
        let plugin = format!("shopify-bench-{n}");
        let renamed = manifest.replacen("name = \"shopify\"", &format!("name = \"{plugin}\""), 1);
        anyhow::ensure!(
            renamed != manifest,
            "the Shopify manifest has no `name = \"shopify\"`"
        );
        state
            .plugins
            .install(repack(bundled, &renamed)?, Source::Upload)
            .await
            .map_err(|e| anyhow::anyhow!("installing {plugin}: {e}"))?;
        let name = format!("shop-{n}");
        storefront(state, &name, &plugin).await?;
        names.push(name);
    }
    Ok(names)
}

/// This process's resident memory (the gateway runs in it), in MB.
fn resident_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
