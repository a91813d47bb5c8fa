//! `daifa bench scale`: whether taking in an order costs the same with many stored. One gateway
//! (job workers off) takes in `--orders` new orders in `--steps` equal runs of the load
//! generator; each run is measured with the number of orders stored before it, the process's
//! resident memory and the database's size after it. A query that scans a growing table shows
//! as a rate that falls from step to step.

use super::{Scratch, gateway, measure_load, publish, serve, set_up};
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
    /// Also appends the report (Markdown) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.steps > 0 && args.orders >= args.steps,
        "--steps must be at least 1 and at most --orders"
    );
    let scratch = Scratch::new(args.postgres.as_deref()).await?;
    let result = run(&args, &scratch).await;
    scratch.remove().await;
    publish(&result?, args.report.as_deref())
}

async fn run(args: &ScaleArgs, scratch: &Scratch) -> anyhow::Result<String> {
    let app = gateway(&scratch.gateway, scratch.dir.join("plugin-cache")).await?;
    let state = app.state().clone();
    set_up(&state).await?;
    let server = serve(app);
    let per_step = args.orders / args.steps;
    let mut rows = Vec::new();
    let mut first_rate = None;
    let mut last_rate = 0.0;
    for step in 0..args.steps {
        let stored = crate::store::orders::count(&state.db).await?;
        let m = measure_load(
            &server.url,
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
    let database = if args.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    Ok(format!(
        "{database}, {} orders in {} runs of {per_step}, {} connections, {} cores; \
         `daifa bench scale --orders {} --steps {}{}`\n\n\
         | orders stored before | rate | p50 | p99 | CPU per request | resident memory | database |\n\
         |---|---|---|---|---|---|---|\n{}\n\n\
         {stored} orders stored; the last run's rate is {:.2}× the first's.\n",
        args.orders,
        args.steps,
        args.connections,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.orders,
        args.steps,
        if args.postgres.is_some() {
            " --postgres …"
        } else {
            ""
        },
        rows.join("\n"),
        last_rate / first_rate.unwrap_or(1.0).max(f64::MIN_POSITIVE),
    ))
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
