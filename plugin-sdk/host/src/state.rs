//! What one call's `Store` holds, and the host imports given to plugins.

use crate::bindings::convert;
use crate::bindings::host::{self, HttpError, LogLevel};
use crate::bindings::types::{self, OutboundRequest, OutboundResponse};
use crate::engine::CallLimits;
use crate::outbound::{self, FetchOptions, OutboundHttp};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The connection a call runs for: its settings, secrets and the hosts it may reach.
#[derive(Debug, Clone, Default)]
pub struct ConnectionContext {
    /// The plugin's name, for logs and metrics.
    pub plugin: String,
    /// The plugin's version, for logs and metrics.
    pub plugin_version: String,
    /// The connection's name, for logs.
    pub connection: String,
    pub settings: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    /// Hosts outbound requests may go to: `example.com` (any port), `127.0.0.1:8080` (that
    /// port only) or `*.myshopify.com` (any subdomain).
    pub allowed_hosts: Vec<String>,
    /// Whether private, loopback and link-local addresses may be reached.
    pub allow_private_network: bool,
    /// What the host's `now-ms` and the WASI wall clock answer, when set (recorded test cases);
    /// the real clock otherwise.
    pub fixed_now_ms: Option<i64>,
    /// Keeps the call's outbound exchanges when set: what a poll fetched is its raw payload.
    pub recorder: Option<ExchangeRecorder>,
}

/// The outbound exchanges of a call, in order, for the caller to keep (a poll's raw payload).
/// Request headers and bodies are not kept (they carry credentials); secrets in the URL's query
/// are masked.
#[derive(Debug, Clone, Default)]
pub struct ExchangeRecorder(Arc<std::sync::Mutex<Vec<RecordedExchange>>>);

impl ExchangeRecorder {
    /// The exchanges recorded so far.
    pub fn take(&self) -> Vec<RecordedExchange> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn push(&self, exchange: RecordedExchange) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(exchange);
    }
}

/// One outbound request of a plugin and what came back.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordedExchange {
    pub method: String,
    /// The URL, with the values of query parameters that look like credentials masked.
    pub url: String,
    /// The answer's status; none when the request failed or was refused.
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The answer's body as text (invalid UTF-8 replaced).
    #[serde(default)]
    pub body: String,
    /// Why there is no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `url` with the values of credential-like query parameters (`consumer_secret`, `api_key`,
/// `access_token`, `signature`...) replaced by `***`.
pub fn mask_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_string();
    };
    if parsed.query().is_none() {
        return url.to_string();
    }
    let sensitive = |name: &str| {
        let name = name.to_ascii_lowercase();
        ["key", "secret", "token", "sig", "password", "auth"]
            .iter()
            .any(|s| name.contains(s))
    };
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| {
            let v = if sensitive(&k) {
                "***".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}

pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    ctx: Arc<ConnectionContext>,
    http: Arc<dyn OutboundHttp>,
    call_limits: CallLimits,
    outbound_requests: u32,
    /// The longest `Retry-After` a peer asked for during the call (429 and 503 answers).
    pub(crate) retry_after: Option<Duration>,
}

impl CallState {
    pub(crate) fn new(
        ctx: Arc<ConnectionContext>,
        http: Arc<dyn OutboundHttp>,
        call_limits: CallLimits,
    ) -> Self {
        // The plugin sees nothing of the machine: no files, no environment, no arguments, no
        // stdio, no sockets. Clocks and random numbers are harmless and the std runtime uses them.
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        // A recorded case fixes the time: the WASI wall clock (`SystemTime::now()` in the guest,
        // which signature libraries read to check a timestamp's age) must agree with `now-ms`.
        if let Some(ms) = ctx.fixed_now_ms {
            wasi.wall_clock(FixedWallClock(ms));
        }
        let wasi = wasi.build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(call_limits.memory_bytes)
            .instances(64)
            .tables(64)
            .memories(16)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limits,
            ctx,
            http,
            call_limits,
            outbound_requests: 0,
            retry_after: None,
        }
    }
}

impl CallState {
    /// Resets what belongs to one call, for a warm instance's next call.
    pub(crate) fn begin_call(&mut self, ctx: Arc<ConnectionContext>) {
        self.ctx = ctx;
        self.outbound_requests = 0;
        self.retry_after = None;
    }
}

/// A wall clock stopped at a given time.
struct FixedWallClock(i64);

impl wasmtime_wasi::HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        // Times before the epoch cannot be told to the guest; the epoch stands in for them.
        Duration::from_millis(u64::try_from(self.0).unwrap_or(0))
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for CallState {}

impl host::Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let (plugin, version, connection) = (
            &self.ctx.plugin,
            &self.ctx.plugin_version,
            &self.ctx.connection,
        );
        match level {
            LogLevel::Trace => tracing::trace!(plugin, version, connection, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, version, connection, "{message}"),
            LogLevel::Info => tracing::info!(plugin, version, connection, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, version, connection, "{message}"),
            LogLevel::Error => tracing::error!(plugin, version, connection, "{message}"),
        }
        Ok(())
    }

    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.settings.get(&key).cloned())
    }

    fn secret(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.secrets.get(&key).cloned())
    }

    fn now_ms(&mut self) -> wasmtime::Result<i64> {
        if let Some(fixed) = self.ctx.fixed_now_ms {
            return Ok(fixed);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
    }

    async fn http_fetch(
        &mut self,
        request: OutboundRequest,
    ) -> Result<OutboundResponse, HttpError> {
        if self.outbound_requests >= self.call_limits.max_outbound_requests {
            return Err(HttpError::NotAllowed(format!(
                "a call may make at most {} outbound requests",
                self.call_limits.max_outbound_requests
            )));
        }
        self.outbound_requests += 1;
        let url = outbound::check_allowed(
            &request.url,
            &self.ctx.allowed_hosts,
            self.ctx.allow_private_network,
        )?;
        tracing::debug!(plugin = %self.ctx.plugin, version = %self.ctx.plugin_version, connection = %self.ctx.connection, method = %request.method, url = %url, "outbound request");
        let options = FetchOptions {
            timeout: self.call_limits.outbound_timeout,
            allow_private_network: self.ctx.allow_private_network,
            // An answer is the plugin's input: no larger than what it may be given.
            max_response_bytes: self.call_limits.max_input_bytes,
        };
        let method = request.method.clone();
        let response = self.http.fetch(url.clone(), request, options).await;
        if let Some(recorder) = &self.ctx.recorder {
            recorder.push(match &response {
                Ok(r) => RecordedExchange {
                    method,
                    url: mask_url(url.as_str()),
                    status: Some(r.status),
                    content_type: r
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-type"))
                        .map(|h| h.value.clone()),
                    body: String::from_utf8_lossy(&r.body).into_owned(),
                    error: None,
                },
                Err(e) => RecordedExchange {
                    method,
                    url: mask_url(url.as_str()),
                    status: None,
                    content_type: None,
                    body: String::new(),
                    error: Some(format!("{e:?}")),
                },
            });
        }
        let response = response?;
        if matches!(response.status, 429 | 503)
            && let Some(delay) = outbound::retry_after(&response.headers, SystemTime::now())
        {
            self.retry_after = Some(self.retry_after.map_or(delay, |d| d.max(delay)));
        }
        Ok(response)
    }
}

impl crate::bindings::v0_4::types::Host for CallState {}

/// The 0.4 host interface: the current one, its values converted.
impl crate::bindings::v0_4::host::Host for CallState {
    fn log(
        &mut self,
        level: crate::bindings::v0_4::host::LogLevel,
        message: String,
    ) -> wasmtime::Result<()> {
        host::Host::log(self, convert(level)?, message)
    }

    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        host::Host::config(self, key)
    }

    fn secret(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        host::Host::secret(self, key)
    }

    fn now_ms(&mut self) -> wasmtime::Result<i64> {
        host::Host::now_ms(self)
    }

    async fn http_fetch(
        &mut self,
        request: crate::bindings::v0_4::types::OutboundRequest,
    ) -> Result<
        crate::bindings::v0_4::types::OutboundResponse,
        crate::bindings::v0_4::host::HttpError,
    > {
        use crate::bindings::v0_4::host::HttpError as OldError;
        let request = convert(request)
            .map_err(|e| OldError::InvalidRequest(format!("cannot convert the request: {e}")))?;
        match host::Host::http_fetch(self, request).await {
            Ok(response) => convert(response)
                .map_err(|e| OldError::Unreachable(format!("cannot convert the response: {e}"))),
            Err(error) => Err(convert(error).unwrap_or_else(|e| {
                OldError::Unreachable(format!("cannot convert the error: {e}"))
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn recorded_urls_hide_credentials_in_the_query() {
        let cases = [
            (
                "https://shop.example/wp-json/wc/v3/orders?consumer_key=ck_1&consumer_secret=cs_2&page=2",
                "https://shop.example/wp-json/wc/v3/orders?consumer_key=***&consumer_secret=***&page=2",
            ),
            (
                "https://api.example/v1?access_token=abc&signature=x&modified_after=2026-01-01",
                "https://api.example/v1?access_token=***&signature=***&modified_after=2026-01-01",
            ),
            (
                "https://api.17track.net/track/v2.2/gettrackinfo",
                "https://api.17track.net/track/v2.2/gettrackinfo",
            ),
            ("not a url", "not a url"),
        ];
        for (url, masked) in cases {
            assert_eq!(mask_url(url), masked, "{url}");
        }
    }
}
