//! `daifa replay`: re-runs a connection's stored raw requests through another plugin version and
//! reports which canonical results differ from the baseline version's. Nothing is written and no
//! peer is called: both versions run with no outbound host, and the results are only compared.

use crate::error::{ApiError, ApiResult};
use crate::plugins::parse;
use crate::services::Services;
use crate::shadow::{canonical, differences, isolated_context};
use crate::store::connections::{self, Connection};
use axum::Json;
use axum::extract::{Path, State};
use daifa_plugin_host::InboundRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The candidate version.
    pub version: String,
    /// What the candidate is compared with; default: the connection's pinned version.
    #[serde(default)]
    pub baseline: Option<String>,
    /// Only requests received at or after this time (ms since the epoch).
    #[serde(default)]
    pub since_ms: Option<i64>,
    /// At most this many requests, oldest first.
    #[serde(default)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ReplayReport {
    pub connection: String,
    pub plugin: String,
    pub baseline: String,
    pub candidate: String,
    pub total: usize,
    pub same: usize,
    pub differing: usize,
    /// The requests whose results differ.
    pub differences: Vec<Difference>,
}

#[derive(Debug, Serialize)]
pub struct Difference {
    pub raw_request_id: String,
    pub received_at_ms: i64,
    /// JSON paths where the results differ.
    pub paths: Vec<String>,
    pub baseline: Value,
    pub candidate: Value,
}

/// Replays the connection's stored requests; `progress` is told the total, then each request.
pub async fn run(
    state: &Services,
    connection_name: &str,
    request: &ReplayRequest,
    progress: &(dyn Fn(Progress) + Sync),
) -> ApiResult<ReplayReport> {
    let connection = connections::by_name(&state.db, connection_name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection named `{connection_name}`")))?;
    let baseline_version = request
        .baseline
        .clone()
        .unwrap_or_else(|| connection.plugin_version.clone());
    let plugin_name = connection.plugin.clone();
    let load = |version: String| {
        let plugin_name = plugin_name.clone();
        async move {
            state
                .plugins
                .get(&plugin_name, &version)
                .await
                .map_err(|e| ApiError::Unprocessable(e.to_string()))
        }
    };
    let baseline = load(baseline_version.clone()).await?;
    let candidate = load(request.version.clone()).await?;
    let stored = stored_requests(state, &connection, request).await?;
    progress(Progress::Total(stored.len()));
    let mut report = ReplayReport {
        connection: connection.name.clone(),
        plugin: connection.plugin.clone(),
        baseline: baseline_version,
        candidate: request.version.clone(),
        total: stored.len(),
        same: 0,
        differing: 0,
        differences: Vec::new(),
    };
    for (raw_id, received_at_ms, inbound) in stored {
        let expected = canonical(
            &parse(
                &baseline,
                connection.kind,
                isolated_context(state, &connection, &baseline)?,
                &inbound,
            )
            .await,
        );
        let actual = canonical(
            &parse(
                &candidate,
                connection.kind,
                isolated_context(state, &connection, &candidate)?,
                &inbound,
            )
            .await,
        );
        let paths = differences(&expected, &actual, 20);
        if paths.is_empty() {
            report.same += 1;
        } else {
            report.differing += 1;
            report.differences.push(Difference {
                raw_request_id: raw_id,
                received_at_ms,
                paths,
                baseline: expected,
                candidate: actual,
            });
        }
        progress(Progress::Done);
    }
    Ok(report)
}

pub enum Progress {
    Total(usize),
    Done,
}

async fn stored_requests(
    state: &Services,
    connection: &Connection,
    request: &ReplayRequest,
) -> ApiResult<Vec<(String, i64, InboundRequest)>> {
    Ok(crate::ingest::stored_webhooks(
        &state.db,
        &connection.name,
        request.since_ms.unwrap_or(0),
        request.limit.unwrap_or(i64::MAX).max(0),
    )
    .await?)
}

pub fn router() -> axum::Router<Services> {
    axum::Router::new().route("/connections/{name}/replay", axum::routing::post(handler))
}

/// `POST /connections/{name}/replay`: the same, answered with the report.
pub async fn handler(
    State(state): State<Services>,
    Path(name): Path<String>,
    Json(request): Json<ReplayRequest>,
) -> ApiResult<Json<ReplayReport>> {
    Ok(Json(run(&state, &name, &request, &|_| {}).await?))
}

/// The command line: a progress bar on the terminal, a summary, and the report as JSON.
pub async fn command(
    state: Services,
    connection: String,
    request: ReplayRequest,
    report_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} replaying [{bar:40}] {pos}/{len} ({eta} left)",
        )?
        .progress_chars("=> "),
    );
    let report = run(&state, &connection, &request, &|p| match p {
        Progress::Total(n) => bar.set_length(n as u64),
        Progress::Done => bar.inc(1),
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    println!(
        "{}: {} {} against {}: {} request(s), {} same, {} differing",
        report.connection,
        report.plugin,
        report.candidate,
        report.baseline,
        report.total,
        report.same,
        report.differing
    );
    for d in report.differences.iter().take(20) {
        println!("  {} differs at {}", d.raw_request_id, d.paths.join(", "));
    }
    if let Some(path) = report_file {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
        println!("report written to {}", path.display());
    }
    Ok(())
}
