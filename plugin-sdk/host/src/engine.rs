//! One wasmtime `Engine` for the process; a compiled component and an `InstancePre` per plugin;
//! a fresh `Store` per call.

use crate::bindings::channel::{FulfillmentRef, FulfillmentRequest, Inbound};
use crate::bindings::channel_world::{ChannelPlugin, ChannelPluginPre};
use crate::bindings::supplier::{Submission, SupplierInbound, SupplierOrder};
use crate::bindings::supplier_world::{SupplierPlugin, SupplierPluginPre};
use crate::bindings::types::{InboundRequest, PluginError};
use crate::outbound::OutboundHttp;
use crate::state::{CallState, ConnectionContext};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap, UpdateDeadline};

/// Limits applied to every call.
#[derive(Debug, Clone)]
pub struct CallLimits {
    /// Wall-clock time for the whole call, time spent in host calls included.
    pub deadline: Duration,
    /// Linear memory a plugin may grow to.
    pub memory_bytes: usize,
    pub max_outbound_requests: u32,
    pub outbound_timeout: Duration,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            max_outbound_requests: 8,
            outbound_timeout: Duration::from_secs(8),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled components are kept across restarts; `None` compiles on every start.
    pub cache_dir: Option<PathBuf>,
    pub limits: CallLimits,
    /// How often the engine's epoch advances: how often a running plugin yields to the executor
    /// and checks its deadline.
    pub epoch_tick: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            limits: CallLimits::default(),
            epoch_tick: Duration::from_millis(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    Channel,
    Supplier,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Supplier => "supplier",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    #[error("plugin `{name}` is not a valid component: {message}")]
    Compile { name: String, message: String },
    #[error("plugin `{name}` does not implement the {kind} world: {message}")]
    World {
        name: String,
        kind: &'static str,
        message: String,
    },
}

/// Why a call did not return a value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin returned one of its typed errors.
    #[error("{}: {}", .0.kind(), .0.message())]
    Plugin(PluginError),
    /// The plugin trapped: a panic, an out-of-bounds access, an allocation beyond its memory cap.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The call ran past its wall-clock deadline and was stopped.
    #[error("plugin call exceeded its deadline of {0:?}")]
    Deadline(Duration),
    /// The plugin could not be instantiated.
    #[error("plugin could not be instantiated: {0}")]
    Instantiate(String),
}

impl CallError {
    /// Whether a later attempt may succeed: transient plugin errors, traps and deadlines.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Plugin(e) => matches!(e, PluginError::Transient(_)),
            Self::Trap(_) | Self::Deadline(_) | Self::Instantiate(_) => true,
        }
    }

    /// A short, stable name for metrics and timelines.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Plugin(e) => e.kind(),
            Self::Trap(_) => "trap",
            Self::Deadline(_) => "deadline",
            Self::Instantiate(_) => "instantiate",
        }
    }
}

/// A failed call, with what the peers said about retrying.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct CallFailure {
    pub error: CallError,
    /// The longest `Retry-After` of a 429 or 503 the plugin received during the call.
    pub retry_after: Option<Duration>,
}

struct Inner {
    engine: Engine,
    channel_linker: Linker<CallState>,
    supplier_linker: Linker<CallState>,
    config: EngineConfig,
    http: Arc<dyn OutboundHttp>,
}

/// The process's plugin engine. Cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<Inner>,
}

impl PluginEngine {
    pub fn new(config: EngineConfig, http: Arc<dyn OutboundHttp>) -> Result<Self, HostError> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true);
        wasm.wasm_component_model(true);
        let engine = Engine::new(&wasm).map_err(|e| HostError::Engine(e.to_string()))?;

        let mut channel_linker = Linker::new(&engine);
        let mut supplier_linker = Linker::new(&engine);
        for linker in [&mut channel_linker, &mut supplier_linker] {
            wasmtime_wasi::p2::add_to_linker_async(linker)
                .map_err(|e| HostError::Engine(e.to_string()))?;
        }
        ChannelPlugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut channel_linker, |s| s)
            .map_err(|e| HostError::Engine(e.to_string()))?;
        SupplierPlugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut supplier_linker, |s| s)
            .map_err(|e| HostError::Engine(e.to_string()))?;

        let inner = Arc::new(Inner {
            engine,
            channel_linker,
            supplier_linker,
            config,
            http,
        });
        spawn_epoch_ticker(Arc::downgrade(&inner), inner.config.epoch_tick);
        Ok(Self { inner })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Compiles (or loads from the on-disk cache) a component and checks it implements `kind`.
    pub fn load(
        &self,
        name: &str,
        kind: PluginKind,
        wasm: &[u8],
    ) -> Result<LoadedPlugin, HostError> {
        let digest = hex::encode(Sha256::digest(wasm));
        let component = self.compile_cached(name, &digest, wasm)?;
        let world_err = |e: wasmtime::Error| HostError::World {
            name: name.into(),
            kind: kind.as_str(),
            message: format!("{e:#}"),
        };
        let pre = match kind {
            PluginKind::Channel => {
                let pre = self
                    .inner
                    .channel_linker
                    .instantiate_pre(&component)
                    .map_err(world_err)?;
                Pre::Channel(ChannelPluginPre::new(pre).map_err(world_err)?)
            }
            PluginKind::Supplier => {
                let pre = self
                    .inner
                    .supplier_linker
                    .instantiate_pre(&component)
                    .map_err(world_err)?;
                Pre::Supplier(SupplierPluginPre::new(pre).map_err(world_err)?)
            }
        };
        Ok(LoadedPlugin {
            name: name.into(),
            kind,
            digest,
            pre,
            engine: self.clone(),
        })
    }

    fn compile_cached(
        &self,
        name: &str,
        digest: &str,
        wasm: &[u8],
    ) -> Result<Component, HostError> {
        let compile_err = |e: wasmtime::Error| HostError::Compile {
            name: name.into(),
            message: format!("{e:#}"),
        };
        let Some(dir) = &self.inner.config.cache_dir else {
            return Component::new(&self.inner.engine, wasm).map_err(compile_err);
        };
        // The key covers the component and everything about the engine that changes the code.
        let mut hasher = std::hash::DefaultHasher::new();
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let path = dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()));
        if path.exists() {
            match deserialize(&self.inner.engine, &path) {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(plugin = name, path = %path.display(), error = %e, "discarding unreadable compiled plugin")
                }
            }
        }
        let started = Instant::now();
        let component = Component::new(&self.inner.engine, wasm).map_err(compile_err)?;
        tracing::info!(
            plugin = name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled plugin"
        );
        if let Err(e) = component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|bytes| write_atomically(dir, &path, &bytes))
        {
            tracing::warn!(plugin = name, error = %e, "cannot cache compiled plugin");
        }
        Ok(component)
    }
}

/// Reads back a compiled component.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the cache directory holds only files this process (or an earlier run of it) wrote
    // from `Component::serialize`, keyed by the wasm's hash and the engine's compatibility hash;
    // wasmtime additionally checks the header and refuses artifacts of another configuration.
    unsafe { Component::deserialize_file(engine, path) }
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

fn spawn_epoch_ticker(inner: Weak<Inner>, tick: Duration) {
    std::thread::Builder::new()
        .name("daifa-epoch".into())
        .spawn(move || {
            while let Some(inner) = inner.upgrade() {
                inner.engine.increment_epoch();
                drop(inner);
                std::thread::sleep(tick);
            }
        })
        .expect("spawning the epoch thread");
}

/// Instantiates the plugin in a fresh `Store` and calls one export under the call's limits;
/// records the call's outcome and latency.
macro_rules! call_export {
    ($self:ident, $ctx:ident, $pre:ident, $function:literal, |$plugin:ident, $store:ident| $call:expr) => {{
        let pre = $self.$pre()?;
        let started = Instant::now();
        let mut $store = $self.store($ctx.clone());
        let result = $self
            .run(async {
                let $plugin = pre.instantiate_async(&mut $store).await?;
                $call.await
            })
            .await;
        let result = with_retry_after(result, &$store);
        record_call(&$ctx, $function, started.elapsed(), &result);
        result
    }};
}

enum Pre {
    Channel(ChannelPluginPre<CallState>),
    Supplier(SupplierPluginPre<CallState>),
}

/// A compiled plugin, ready to be called. Cheap to call concurrently: each call gets its own
/// `Store`.
pub struct LoadedPlugin {
    name: String,
    kind: PluginKind,
    digest: String,
    pre: Pre,
    engine: PluginEngine,
}

impl LoadedPlugin {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn kind(&self) -> PluginKind {
        self.kind
    }
    /// The SHA-256 of the component, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn store(&self, ctx: Arc<ConnectionContext>) -> Store<CallState> {
        let inner = &self.engine.inner;
        let limits = inner.config.limits.clone();
        let deadline_at = Instant::now() + limits.deadline;
        let mut store = Store::new(
            &inner.engine,
            CallState::new(ctx, inner.http.clone(), limits),
        );
        store.limiter(|s| &mut s.limits);
        // Running guest code yields to the executor on every epoch tick. Without it a plugin
        // spinning in a loop holds its runtime thread until the deadline: as many loops as worker
        // threads stall every other task (requests, jobs, timers) of the process, and the call's
        // `tokio::time::timeout` cannot fire while the guest runs. tokio's `yield_now` lets the
        // runtime drive its timers and run other tasks before the guest resumes. Past the
        // deadline the guest is interrupted where it runs, whichever of the two comes first.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline_at {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        store
    }

    /// Runs `call` with the deadline covering everything, host calls included.
    async fn run<T, F>(&self, call: F) -> Result<T, CallFailure>
    where
        F: Future<Output = wasmtime::Result<Result<T, PluginError>>>,
    {
        let deadline = self.engine.inner.config.limits.deadline;
        let outcome = tokio::time::timeout(deadline, call).await;
        let error = match outcome {
            Err(_) => CallError::Deadline(deadline),
            Ok(Ok(Ok(value))) => return Ok(value),
            Ok(Ok(Err(plugin_error))) => CallError::Plugin(plugin_error),
            Ok(Err(e)) => classify_trap(e, deadline),
        };
        Err(CallFailure {
            error,
            retry_after: None,
        })
    }

    fn channel_pre(&self) -> Result<&ChannelPluginPre<CallState>, CallFailure> {
        match &self.pre {
            Pre::Channel(p) => Ok(p),
            Pre::Supplier(_) => Err(self.wrong_kind(PluginKind::Channel)),
        }
    }

    fn supplier_pre(&self) -> Result<&SupplierPluginPre<CallState>, CallFailure> {
        match &self.pre {
            Pre::Supplier(p) => Ok(p),
            Pre::Channel(_) => Err(self.wrong_kind(PluginKind::Supplier)),
        }
    }

    fn wrong_kind(&self, wanted: PluginKind) -> CallFailure {
        CallFailure {
            error: CallError::Plugin(PluginError::Unsupported(format!(
                "plugin `{}` is a {} plugin, not a {} plugin",
                self.name,
                self.kind.as_str(),
                wanted.as_str()
            ))),
            retry_after: None,
        }
    }

    /// Channel: verify and parse an inbound webhook.
    pub async fn handle_inbound(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &InboundRequest,
    ) -> Result<Inbound, CallFailure> {
        call_export!(self, ctx, channel_pre, "handle-inbound", |plugin, store| {
            plugin
                .daifa_plugin_channel()
                .call_handle_inbound(&mut store, request)
        })
    }

    /// Channel: write a shipment back to the storefront.
    pub async fn push_fulfillment(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &FulfillmentRequest,
    ) -> Result<FulfillmentRef, CallFailure> {
        call_export!(
            self,
            ctx,
            channel_pre,
            "push-fulfillment",
            |plugin, store| plugin
                .daifa_plugin_channel()
                .call_push_fulfillment(&mut store, request)
        )
    }

    /// Supplier: place an order.
    pub async fn submit_order(
        &self,
        ctx: Arc<ConnectionContext>,
        order: &SupplierOrder,
    ) -> Result<Submission, CallFailure> {
        call_export!(self, ctx, supplier_pre, "submit-order", |plugin, store| {
            plugin
                .daifa_plugin_supplier()
                .call_submit_order(&mut store, order)
        })
    }

    /// Supplier: verify and parse a supplier's callback.
    pub async fn handle_callback(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &InboundRequest,
    ) -> Result<SupplierInbound, CallFailure> {
        call_export!(
            self,
            ctx,
            supplier_pre,
            "handle-callback",
            |plugin, store| plugin
                .daifa_plugin_supplier()
                .call_handle_callback(&mut store, request)
        )
    }
}

/// Records a finished call: a counter by outcome and a latency histogram (labels: plugin,
/// connection, function; never a request's content), and a log line tagged the same way.
fn record_call<T>(
    ctx: &ConnectionContext,
    function: &'static str,
    elapsed: Duration,
    result: &Result<T, CallFailure>,
) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(f) => f.error.kind(),
    };
    let labels = [
        ("plugin", ctx.plugin.clone()),
        ("connection", ctx.connection.clone()),
        ("function", function.to_string()),
    ];
    metrics::counter!("daifa_plugin_calls_total", &labels).increment(1);
    if let Err(f) = result {
        let with_kind = [
            ("plugin", ctx.plugin.clone()),
            ("connection", ctx.connection.clone()),
            ("function", function.to_string()),
            ("kind", outcome.to_string()),
        ];
        metrics::counter!("daifa_plugin_call_errors_total", &with_kind).increment(1);
        if !matches!(f.error, CallError::Plugin(_)) {
            tracing::warn!(plugin = %ctx.plugin, connection = %ctx.connection, function, error = %f.error, "plugin call failed");
        }
    }
    metrics::histogram!("daifa_plugin_call_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    tracing::debug!(plugin = %ctx.plugin, connection = %ctx.connection, function, outcome, elapsed_us = elapsed.as_micros() as u64, "plugin call");
}

fn with_retry_after<T>(
    result: Result<T, CallFailure>,
    store: &Store<CallState>,
) -> Result<T, CallFailure> {
    result.map_err(|mut f| {
        f.retry_after = store.data().retry_after;
        f
    })
}

fn classify_trap(e: wasmtime::Error, deadline: Duration) -> CallError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Deadline(deadline),
        _ => CallError::Trap(format!("{e:#}")),
    }
}
