//! `daifa bench ingest`, `daifa bench dispatch` and `daifa bench scale` run end to end on this
//! test's database (a short run: the harness is checked, not the machine's speed — the numbers
//! are in docs/benchmarks.md): the bare pipeline and the gateway each take every webhook the
//! load generator sends, every order is pushed to the sink once, and the reports say so.

use std::process::Command;

/// Runs `daifa bench <args>` on the test's database (PostgreSQL when the suite runs on it),
/// which must succeed: whether it ran on PostgreSQL, and what it printed.
fn bench(args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_daifa"));
    command.arg("bench").args(args);
    let postgres = std::env::var("DAIFA_TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"));
    if let Some(server) = &postgres {
        command.args(["--postgres", server]);
    }
    let out = command
        .env("RUST_LOG", "warn")
        .env_remove("DAIFA_CONFIG")
        .output()
        .expect("running daifa bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (postgres.is_some(), stdout)
}

#[test]
fn bench_ingest_runs_the_bare_pipeline_and_the_gateway_and_reports_both() {
    let (postgres, stdout) = bench(&["ingest", "--seconds", "1", "--connections", "4"]);
    let database = if postgres { "PostgreSQL" } else { "SQLite" };
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("{database}, 4 connections, 1 s each"))),
        "{stdout}"
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.starts_with("| bare") || l.starts_with("| gateway"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for row in &rows {
        // | path | rate | × bare | p50 | p99 | max | failed | CPU per request |
        let rate: f64 = row[2].trim_end_matches("/s").parse().unwrap();
        assert!(rate > 0.0, "{row:?}");
        assert_eq!(row[7], "0", "no request failed: {stdout}");
    }
    assert!(!stdout.contains("first failure"), "{stdout}");
}

/// `daifa bench dispatch`: every order taken in is pushed to the sink once, and the report
/// counts what the sink received.
#[test]
fn bench_dispatch_pushes_every_order_once_and_reports_it() {
    let (_, stdout) = bench(&["dispatch", "--orders", "60", "--workers", "4"]);
    assert!(stdout.contains("60 orders queued, 4 workers"), "{stdout}");
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("| 60 in"))
        .unwrap_or_else(|| panic!("{stdout}"))
        .split('|')
        .map(str::trim)
        .collect();
    // | pushes | rate | CPU per push | received | distinct webhook-ids | not pushed |
    let rate: f64 = row[2].trim_end_matches("/s").parse().unwrap();
    assert!(rate > 0.0, "{row:?}");
    assert_eq!(
        row[4], "60",
        "each order reached the supplier once: {stdout}"
    );
    assert_eq!(row[5], "60", "under its own webhook-id: {stdout}");
    assert_eq!(row[6], "0", "{stdout}");
}

/// `daifa bench scale`: the orders are taken in over the runs, each row says how many were
/// stored before it, and every order is stored at the end; with `--plugins 3`, through three
/// storefront plugins (a refused request, such as one to a connection that is not there, fails
/// the run).
#[test]
fn bench_scale_takes_the_orders_in_runs_and_reports_each() {
    let (_, stdout) = bench(&[
        "scale",
        "--orders",
        "90",
        "--steps",
        "3",
        "--connections",
        "4",
        "--plugins",
        "3",
    ]);
    assert!(
        stdout.contains("90 orders in 3 runs of 30, 4 connections, 3 storefront plugins"),
        "{stdout}"
    );
    let stored: Vec<i64> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| orders"))
        .map(|l| l.split('|').nth(1).unwrap().trim().parse().unwrap())
        .collect();
    assert_eq!(stored, [0, 30, 60], "{stdout}");
    assert!(
        stdout.contains("90 orders stored (shop 30, shop-2 30, shop-3 30)"),
        "{stdout}"
    );
}
