//! Settings: built-in defaults, then `daifa.toml` (or `--config`), then `DAIFA_*` environment
//! variables (`DAIFA_JOBS__WORKERS=4`), then `DATABASE_URL`. No file is needed to start.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address the HTTP server listens on.
    pub bind: String,
    /// `sqlite://daifa.db?mode=rwc` (the default, embedded) or `postgres://...` (production,
    /// and the way to run several gateway processes on one database).
    pub database_url: String,
    /// Bearer token the admin API requires. Unset: the admin API is open (logged at start).
    pub admin_token: Option<String>,
    /// Key sealing connection secrets at rest: base64 of 32 bytes (`DAIFA_SECRET_KEY`). Every
    /// gateway process on one database needs the same key.
    pub secret_key: Option<String>,
    /// Where the key is kept when `secret_key` is unset (created on first start).
    pub secret_key_file: PathBuf,
    pub ingest: IngestSettings,
    pub plugins: PluginSettings,
    pub jobs: JobSettings,
    pub polling: PollingSettings,
    pub fulfillment: FulfillmentSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IngestSettings {
    /// Larger inbound bodies are refused with 413 (and kept, truncated, with the reason).
    pub max_body_bytes: usize,
    /// Whether this process runs the sweeper, which processes again the webhooks stored but never
    /// processed (several processes share the work: each request is taken by one at a time).
    pub sweep: bool,
    /// How often the sweeper looks for stale requests.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// A request still `received` this long after it was stored is stale: processing it failed
    /// before anything was recorded (the database, a crash). Also how long one attempt of the
    /// sweeper holds a request before another process may take it.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// Delays between the sweeper's attempts at a request (the first comes once it is stale).
    /// After the last one, it is marked `failed` and a task opened for the operator.
    #[serde(deserialize_with = "durations")]
    pub reprocess_schedule: Vec<Duration>,
    /// Most webhooks one transaction of the ingest writer applies together (group commit:
    /// each is answered once the transaction that holds it committed).
    pub batch_max: usize,
    /// Ingest writers of this process, each with a transaction of its own at a time. None: one
    /// on SQLite (one writer at a time anyway), four on PostgreSQL.
    pub writers: Option<usize>,
    /// How long the ingest and dispatch paths keep the policies they read in memory: a change
    /// made through this process applies at once, one made through another replica within
    /// this time.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PluginSettings {
    /// Compiled plugins are kept here by content hash, so a restart does not recompile.
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock limit of one plugin call, host calls included.
    #[serde(with = "humantime_serde")]
    pub call_deadline: Duration,
    pub memory_limit_mb: usize,
    /// Largest request given to a plugin (an inbound body, an order to submit).
    pub max_input_bytes: usize,
    /// Largest answer a plugin may give, as canonical JSON.
    pub max_output_bytes: usize,
    pub max_outbound_requests: u32,
    #[serde(with = "humantime_serde")]
    pub outbound_timeout: Duration,
    /// The most a plugin may ask for in the `[limits]` of its manifest.
    pub ceiling: PluginCeiling,
    /// Largest package `POST /api/v1/plugins` accepts.
    pub max_package_mb: usize,
    pub pool: PoolSettings,
    pub reuse: ReuseSettings,
}

/// Warm-instance reuse: an instance kept after a call serves the same connection's next calls
/// (never another connection's), until it has served this many calls, traps or hits its
/// deadline. 1 is a fresh instance per call. A plugin's manifest may choose its own
/// (`limits.reuse_calls`). Defaults from the benchmark in docs/benchmarks.md.
#[derive(Debug, Clone, Deserialize)]
pub struct ReuseSettings {
    /// Plugins compiled to wasm (Rust, C, Go).
    pub compiled_calls: u32,
    /// Plugins carrying a language engine (JavaScript, Python).
    pub interpreted_calls: u32,
    pub max_idle_per_connection: usize,
    pub max_warm_total: usize,
}

/// Upper bounds of per-plugin limits; the same fields as the defaults above.
#[derive(Debug, Clone, Deserialize)]
pub struct PluginCeiling {
    #[serde(with = "humantime_serde")]
    pub call_deadline: Duration,
    pub memory_limit_mb: usize,
    pub max_input_bytes: usize,
    pub max_output_bytes: usize,
    pub max_outbound_requests: u32,
    #[serde(with = "humantime_serde")]
    pub outbound_timeout: Duration,
}

/// The pooling allocator: address space for `instances` plugin instances (each up to the memory
/// ceiling) is reserved at start. 0 allocates on demand. Where the reservation fails, the
/// gateway logs a warning and allocates on demand.
#[derive(Debug, Clone, Deserialize)]
pub struct PoolSettings {
    pub instances: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobSettings {
    /// Concurrent job workers in this process; 0 runs none (another process works the queue).
    pub workers: usize,
    /// How often an idle worker looks for due jobs (it is also woken when this process enqueues).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a claimed job is reserved for its worker; a job whose worker died is taken over
    /// once its lease runs out.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Delays between attempts. After the last one, a failing job is dead-lettered. The default
    /// follows the Standard Webhooks schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    #[serde(deserialize_with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// Each delay is spread by up to this fraction either way, so retries of many jobs do not
    /// arrive at a peer at once.
    pub retry_jitter: f64,
    /// The longest a peer's `Retry-After` may put a job off; a longer one (a misconfigured or
    /// hostile peer asking for years) is cut to this.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// The most calls this process makes at once through one connection (a supplier, a
    /// storefront, a carrier), so that one slow peer holds at most this many workers and the
    /// others go on. At most `workers` makes no limit.
    pub per_connection: usize,
    /// The most jobs a worker claims at once (one statement): it makes their calls together
    /// and records them in one transaction (one commit for the batch).
    pub claim_batch: usize,
    pub breaker: BreakerSettings,
}

/// The circuit breaker of each connection a job calls through: after `failures` failed calls
/// in a row (5xx, timeouts, refused connections), this process makes none through it for
/// `cool_down` and puts off its queued calls to then (they would fail too, each spending an
/// attempt of its retry schedule); then one call tries, and its success closes the circuit,
/// its failure opens it again for twice as long, up to `max_cool_down`.
#[derive(Debug, Clone, Deserialize)]
pub struct BreakerSettings {
    /// 0: no breaker.
    pub failures: u32,
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
    #[serde(with = "humantime_serde")]
    pub max_cool_down: Duration,
}

/// Polling of the connections whose plugin declares `capabilities.polling`: a channel or
/// supplier's `poll`, a carrier's `fetch-tracking` of the parcels it follows. Several gateway
/// processes share the work: each connection's poll is held under a lease by one of them.
#[derive(Debug, Clone, Deserialize)]
pub struct PollingSettings {
    /// Whether this process polls.
    pub enabled: bool,
    /// How often this process looks for due polls (it is also woken by `POST .../poll`).
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    /// Between two polls of a connection, unless its plugin's manifest asks for another
    /// interval (`capabilities.poll_interval`).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// The shortest interval a manifest is granted.
    #[serde(with = "humantime_serde")]
    pub min_interval: Duration,
    /// How far before polling began a connection's first poll looks. 0: only what changes
    /// from then on (older orders were handled before Daifa polled them).
    #[serde(with = "humantime_serde")]
    pub first_lookback: Duration,
    /// Calls one poll makes while the plugin says more is waiting (then it continues at the
    /// next poll, from its cursor).
    pub max_pages: u32,
    /// Parcels per `fetch-tracking` call.
    pub carrier_batch: u32,
    /// After a failed poll the interval doubles, up to this.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How long a process holds a connection's poll; renewed after every page.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FulfillmentSettings {
    /// Whether storefronts e-mail the buyer the tracking details when Daifa writes a shipment back.
    pub notify_customer: bool,
}

fn durations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    let list: Vec<humantime_serde::Serde<Duration>> = Vec::deserialize(d)?;
    Ok(list
        .into_iter()
        .map(humantime_serde::Serde::into_inner)
        .collect())
}

impl Settings {
    /// Loads the settings; `file` overrides the default `daifa.toml` (which may be absent).
    pub fn load(file: Option<&Path>) -> Result<Self, config::ConfigError> {
        let mut builder = config::Config::builder()
            .set_default("bind", "127.0.0.1:8080")?
            .set_default("database_url", "sqlite://daifa.db?mode=rwc")?
            .set_default("secret_key_file", ".daifa/secret.key")?
            .set_default("ingest.max_body_bytes", 5 * 1024 * 1024)?
            .set_default("ingest.sweep", true)?
            .set_default("ingest.sweep_interval", "30s")?
            .set_default("ingest.stale_after", "1m")?
            .set_default("ingest.batch_max", 64)?
            .set_default("ingest.cache_ttl", "2s")?
            .set_default(
                "ingest.reprocess_schedule",
                vec!["1m", "5m", "30m", "2h", "5h"],
            )?
            .set_default("plugins.cache_dir", ".daifa/plugin-cache")?
            .set_default("plugins.call_deadline", "10s")?
            .set_default("plugins.memory_limit_mb", 64)?
            .set_default("plugins.max_outbound_requests", 8)?
            .set_default("plugins.outbound_timeout", "8s")?
            .set_default("plugins.max_input_bytes", 5 << 20)?
            .set_default("plugins.max_output_bytes", 4 << 20)?
            .set_default("plugins.ceiling.call_deadline", "30s")?
            .set_default("plugins.ceiling.memory_limit_mb", 256)?
            .set_default("plugins.ceiling.max_input_bytes", 16 << 20)?
            .set_default("plugins.ceiling.max_output_bytes", 16 << 20)?
            .set_default("plugins.ceiling.max_outbound_requests", 32)?
            .set_default("plugins.ceiling.outbound_timeout", "25s")?
            .set_default("plugins.max_package_mb", 64)?
            .set_default("plugins.pool.instances", 128)?
            .set_default("plugins.reuse.compiled_calls", 100)?
            .set_default("plugins.reuse.interpreted_calls", 1000)?
            .set_default("plugins.reuse.max_idle_per_connection", 2)?
            .set_default("plugins.reuse.max_warm_total", 64)?
            .set_default("jobs.workers", 8)?
            .set_default("jobs.per_connection", 4)?
            .set_default("jobs.claim_batch", 8)?
            .set_default("jobs.breaker.failures", 5)?
            .set_default("jobs.breaker.cool_down", "30s")?
            .set_default("jobs.breaker.max_cool_down", "10m")?
            .set_default("jobs.poll_interval", "500ms")?
            .set_default("jobs.lease", "2m")?
            .set_default(
                "jobs.retry_schedule",
                vec!["5s", "5m", "30m", "2h", "5h", "10h", "10h"],
            )?
            .set_default("jobs.retry_jitter", 0.2)?
            .set_default("jobs.max_retry_after", "6h")?
            .set_default("polling.enabled", true)?
            .set_default("polling.tick", "5s")?
            .set_default("polling.interval", "5m")?
            .set_default("polling.min_interval", "30s")?
            .set_default("polling.first_lookback", "0s")?
            .set_default("polling.max_pages", 20)?
            .set_default("polling.carrier_batch", 40)?
            .set_default("polling.max_backoff", "1h")?
            .set_default("polling.lease", "5m")?
            .set_default("fulfillment.notify_customer", true)?;
        builder = match file {
            Some(path) => builder.add_source(config::File::from(path).required(true)),
            None => builder.add_source(config::File::with_name("daifa.toml").required(false)),
        };
        builder = builder.add_source(
            config::Environment::with_prefix("DAIFA")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("jobs.retry_schedule")
                .with_list_parse_key("ingest.reprocess_schedule")
                .try_parsing(true),
        );
        if let Ok(url) = std::env::var("DATABASE_URL") {
            builder = builder.set_override("database_url", url)?;
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), config::ConfigError> {
        let bad = |m: &str| Err(config::ConfigError::Message(m.to_string()));
        if !(0.0..1.0).contains(&self.jobs.retry_jitter) {
            return bad("jobs.retry_jitter must be at least 0 and below 1");
        }
        if self.jobs.claim_batch == 0 {
            return bad("jobs.claim_batch must be at least 1");
        }
        if self.jobs.per_connection == 0 {
            return bad("jobs.per_connection must be at least 1");
        }
        if self.jobs.breaker.failures > 0
            && (self.jobs.breaker.cool_down.is_zero()
                || self.jobs.breaker.max_cool_down < self.jobs.breaker.cool_down)
        {
            return bad(
                "jobs.breaker.cool_down must be more than 0s and at most jobs.breaker.max_cool_down",
            );
        }
        if self.jobs.lease < Duration::from_secs(1) {
            return bad("jobs.lease must be at least 1s");
        }
        if self.plugins.ceiling.call_deadline >= self.jobs.lease {
            return bad(
                "plugins.ceiling.call_deadline must be shorter than jobs.lease, or a slow call loses its job to another worker",
            );
        }
        if self.plugins.ceiling.call_deadline >= self.polling.lease {
            return bad(
                "plugins.ceiling.call_deadline must be shorter than polling.lease, or a slow poll loses its lease to another process",
            );
        }
        if self.ingest.stale_after <= self.plugins.ceiling.call_deadline {
            return bad(
                "ingest.stale_after must be longer than plugins.ceiling.call_deadline, or the sweeper takes requests that are still being processed",
            );
        }
        if self.ingest.batch_max == 0 || self.ingest.writers == Some(0) {
            return bad("ingest.batch_max and ingest.writers must be at least 1");
        }
        if self.ingest.sweep_interval.is_zero() {
            return bad("ingest.sweep_interval must be more than 0s");
        }
        if self.polling.max_pages == 0 || self.polling.carrier_batch == 0 {
            return bad("polling.max_pages and polling.carrier_batch must be at least 1");
        }
        if self.plugins.call_deadline > self.plugins.ceiling.call_deadline
            || self.plugins.memory_limit_mb > self.plugins.ceiling.memory_limit_mb
            || self.plugins.max_input_bytes > self.plugins.ceiling.max_input_bytes
            || self.plugins.max_output_bytes > self.plugins.ceiling.max_output_bytes
            || self.plugins.max_outbound_requests > self.plugins.ceiling.max_outbound_requests
            || self.plugins.outbound_timeout > self.plugins.ceiling.outbound_timeout
        {
            return bad("each plugins.* default limit must be at most its plugins.ceiling.* value");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(text: &str) -> Result<Settings, config::ConfigError> {
        let path = std::env::temp_dir().join(format!("daifa-config-{}.toml", uuid::Uuid::now_v7()));
        std::fs::write(&path, text).unwrap();
        let settings = Settings::load(Some(&path));
        let _ = std::fs::remove_file(&path);
        settings
    }

    #[test]
    fn the_sweeper_runs_by_default_on_the_documented_schedule() {
        let s = load_toml("").unwrap();
        assert!(s.ingest.sweep);
        assert_eq!(s.ingest.sweep_interval, Duration::from_secs(30));
        assert_eq!(s.ingest.stale_after, Duration::from_secs(60));
        let minutes: Vec<u64> = s
            .ingest
            .reprocess_schedule
            .iter()
            .map(|d| d.as_secs() / 60)
            .collect();
        assert_eq!(minutes, [1, 5, 30, 120, 300]);
        let s =
            load_toml("[ingest]\nreprocess_schedule = [\"10s\", \"1h\"]\nsweep = false\n").unwrap();
        assert!(!s.ingest.sweep);
        assert_eq!(
            s.ingest.reprocess_schedule,
            [Duration::from_secs(10), Duration::from_secs(3600)]
        );
    }

    #[test]
    fn a_request_is_not_stale_before_a_plugin_call_could_have_ended() {
        let err = load_toml("[ingest]\nstale_after = \"30s\"\n").unwrap_err();
        assert!(err.to_string().contains("ingest.stale_after"), "{err}");
        assert!(load_toml("[ingest]\nstale_after = \"31s\"\n").is_ok());
    }
}
