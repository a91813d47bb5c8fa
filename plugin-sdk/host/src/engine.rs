//! One wasmtime `Engine` for the process; a compiled component and an `InstancePre` per plugin;
//! a fresh `Store` per call.

use crate::bindings::carrier::{CarrierInbound, Parcel, Registration};
use crate::bindings::carrier_world::{CarrierPlugin, CarrierPluginPre};
use crate::bindings::channel::{
    CancelOrderRef, CancelOrderRequest, FulfillmentRef, FulfillmentRequest, Inbound, PollResult,
    RefundRef, RefundRequest, ReturnDecision,
};
use crate::bindings::channel_world::{ChannelPlugin, ChannelPluginPre};
use crate::bindings::supplier::{
    CancelRequest, ReturnAuthorization, ReturnRequest, Submission, SupplierInbound, SupplierOrder,
    SupplierPollResult, UpdateAnswer, UpdateRequest,
};
use crate::bindings::supplier_world::{SupplierPlugin, SupplierPluginPre};
use crate::bindings::types::SupplierOrderStatus;
use crate::bindings::types::{InboundRequest, PluginError, PollRequest, TrackingUpdate};
use crate::outbound::OutboundHttp;
use crate::state::{CallState, ConnectionContext};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Largest request a plugin is given (an inbound body, an order to submit).
    pub max_input_bytes: usize,
    /// Largest result a plugin may return, measured as its canonical JSON.
    pub max_output_bytes: usize,
    pub max_outbound_requests: u32,
    pub outbound_timeout: Duration,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            max_input_bytes: 5 << 20,
            max_output_bytes: 4 << 20,
            max_outbound_requests: 8,
            outbound_timeout: Duration::from_secs(8),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled components are kept across restarts; `None` compiles on every start.
    pub cache_dir: Option<PathBuf>,
    /// Limits of a plugin that asks for none.
    pub limits: CallLimits,
    /// The most any plugin may ask for in its manifest.
    pub ceiling: CallLimits,
    /// Pre-reserved instance slots (wasmtime's pooling allocator); `None` allocates on demand.
    pub pool: Option<PoolConfig>,
    /// Bounds of warm-instance reuse.
    pub reuse: ReuseConfig,
    /// How often the engine's epoch advances: how often a running plugin yields to the executor
    /// and checks its deadline.
    pub epoch_tick: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            limits: CallLimits::default(),
            ceiling: CallLimits {
                deadline: Duration::from_secs(30),
                memory_bytes: 256 << 20,
                max_input_bytes: 16 << 20,
                max_output_bytes: 16 << 20,
                max_outbound_requests: 32,
                outbound_timeout: Duration::from_secs(25),
            },
            pool: None,
            reuse: ReuseConfig::default(),
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Sizes of the pooling allocator: address space for this many instances is reserved at start, so
/// that instantiating a plugin costs no `mmap`.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Component instances alive at once (calls in flight plus warm instances kept for reuse).
    pub instances: u32,
    /// Linear memory of one instance; should cover the memory ceiling.
    pub max_memory_bytes: usize,
}

/// Bounds of warm-instance reuse: instances kept between calls, per connection and in all.
#[derive(Debug, Clone)]
pub struct ReuseConfig {
    pub max_idle_per_connection: usize,
    pub max_warm_total: usize,
}

impl Default for ReuseConfig {
    fn default() -> Self {
        Self {
            max_idle_per_connection: 2,
            max_warm_total: 64,
        }
    }
}

/// Which allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocator {
    Pooling,
    OnDemand,
}

/// What a loaded plugin is: its name, version, kind and the limits of its calls.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    pub limits: CallLimits,
    /// Calls one instance serves before it is dropped; 0 or 1: a fresh instance per call.
    pub reuse_calls: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Channel,
    Supplier,
    /// A carrier or tracking service (since WIT 0.3.0).
    Carrier,
}

impl PluginKind {
    pub const ALL: [PluginKind; 3] = [Self::Channel, Self::Supplier, Self::Carrier];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Supplier => "supplier",
            Self::Carrier => "carrier",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
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
    /// The request is larger than the plugin's `max_input_bytes`; it was not called.
    #[error("the request is {size} bytes, over the plugin's limit of {limit}")]
    InputTooLarge { size: usize, limit: usize },
    /// The plugin answered more than its `max_output_bytes`.
    #[error("the plugin's answer is {size} bytes, over its limit of {limit}")]
    OutputTooLarge { size: usize, limit: usize },
}

impl CallError {
    /// Whether a later attempt may succeed: transient plugin errors, traps and deadlines.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Plugin(e) => matches!(e, PluginError::Transient(_)),
            Self::Trap(_) | Self::Deadline(_) | Self::Instantiate(_) => true,
            Self::InputTooLarge { .. } | Self::OutputTooLarge { .. } => false,
        }
    }

    /// A short, stable name for metrics and timelines.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Plugin(e) => e.kind(),
            Self::Trap(_) => "trap",
            Self::Deadline(_) => "deadline",
            Self::Instantiate(_) => "instantiate",
            Self::InputTooLarge { .. } => "input-too-large",
            Self::OutputTooLarge { .. } => "output-too-large",
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
    /// Linkers of the previous minor WIT version (0.3).
    channel_linker_prev: Linker<CallState>,
    supplier_linker_prev: Linker<CallState>,
    carrier_linker_prev: Linker<CallState>,
    allocator: Allocator,
    /// Warm instances kept by all plugins.
    warm_count: AtomicUsize,
    channel_linker: Linker<CallState>,
    supplier_linker: Linker<CallState>,
    carrier_linker: Linker<CallState>,
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
        let (engine, allocator) = match &config.pool {
            None => (
                Engine::new(&wasm).map_err(|e| HostError::Engine(e.to_string()))?,
                Allocator::OnDemand,
            ),
            Some(pool) => {
                let mut pooled = wasm.clone();
                pooled.allocation_strategy(pooling(pool));
                match Engine::new(&pooled) {
                    Ok(engine) => (engine, Allocator::Pooling),
                    Err(e) => {
                        // Where address space is scarce (a 32-bit or ulimit -v constrained
                        // host), run slower rather than not at all.
                        tracing::warn!(
                            instances = pool.instances,
                            max_memory_bytes = pool.max_memory_bytes,
                            error = %format!("{e:#}"),
                            "cannot reserve the plugin instance pool; allocating instances on demand"
                        );
                        (
                            Engine::new(&wasm).map_err(|e| HostError::Engine(e.to_string()))?,
                            Allocator::OnDemand,
                        )
                    }
                }
            }
        };

        let mut channel_linker = Linker::new(&engine);
        let mut supplier_linker = Linker::new(&engine);
        let mut carrier_linker = Linker::new(&engine);
        let mut channel_linker_prev = Linker::new(&engine);
        let mut supplier_linker_prev = Linker::new(&engine);
        let mut carrier_linker_prev = Linker::new(&engine);
        for linker in [
            &mut channel_linker,
            &mut supplier_linker,
            &mut carrier_linker,
            &mut channel_linker_prev,
            &mut supplier_linker_prev,
            &mut carrier_linker_prev,
        ] {
            wasmtime_wasi::p2::add_to_linker_async(linker)
                .map_err(|e| HostError::Engine(e.to_string()))?;
        }
        ChannelPlugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut channel_linker, |s| s)
            .map_err(|e| HostError::Engine(e.to_string()))?;
        SupplierPlugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut supplier_linker, |s| s)
            .map_err(|e| HostError::Engine(e.to_string()))?;
        CarrierPlugin::add_to_linker::<CallState, HasSelf<CallState>>(&mut carrier_linker, |s| s)
            .map_err(|e| HostError::Engine(e.to_string()))?;
        prev::ChannelPlugin::add_to_linker::<CallState, HasSelf<CallState>>(
            &mut channel_linker_prev,
            |s| s,
        )
        .map_err(|e| HostError::Engine(e.to_string()))?;
        prev::SupplierPlugin::add_to_linker::<CallState, HasSelf<CallState>>(
            &mut supplier_linker_prev,
            |s| s,
        )
        .map_err(|e| HostError::Engine(e.to_string()))?;
        prev::CarrierPlugin::add_to_linker::<CallState, HasSelf<CallState>>(
            &mut carrier_linker_prev,
            |s| s,
        )
        .map_err(|e| HostError::Engine(e.to_string()))?;

        let inner = Arc::new(Inner {
            engine,
            channel_linker_prev,
            supplier_linker_prev,
            carrier_linker_prev,
            carrier_linker,
            allocator,
            warm_count: AtomicUsize::new(0),
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

    /// The allocator in use: pooling, or on demand when the pool could not be reserved.
    pub fn allocator(&self) -> Allocator {
        self.inner.allocator
    }

    /// Compiles (or loads from the on-disk cache) a component and checks it implements `kind`;
    /// its calls get the engine's default limits.
    pub fn load(
        &self,
        name: &str,
        kind: PluginKind,
        wasm: &[u8],
    ) -> Result<LoadedPlugin, HostError> {
        self.load_spec(
            PluginSpec {
                name: name.into(),
                version: "0.0.0".into(),
                kind,
                limits: self.inner.config.limits.clone(),
                reuse_calls: 0,
            },
            wasm,
        )
    }

    /// Compiles (or loads from the on-disk cache) a component and checks it implements its
    /// kind's world.
    pub fn load_spec(&self, spec: PluginSpec, wasm: &[u8]) -> Result<LoadedPlugin, HostError> {
        let PluginSpec {
            name,
            version,
            kind,
            limits,
            reuse_calls,
        } = spec;
        let name = name.as_str();
        let digest = hex::encode(Sha256::digest(wasm));
        let component = self.compile_cached(name, &digest, wasm)?;
        let world_err = |e: wasmtime::Error| HostError::World {
            name: name.into(),
            kind: kind.as_str(),
            message: format!("{e:#}"),
        };
        // The current WIT version first, then the previous minor one.
        let inner = &self.inner;
        let pre = match kind {
            PluginKind::Channel => current_or_prev(
                inner
                    .channel_linker
                    .instantiate_pre(&component)
                    .and_then(ChannelPluginPre::new)
                    .map(Pre::Channel),
                || {
                    inner
                        .channel_linker_prev
                        .instantiate_pre(&component)
                        .and_then(prev::ChannelPluginPre::new)
                        .map(Pre::ChannelPrev)
                },
            ),
            PluginKind::Supplier => current_or_prev(
                inner
                    .supplier_linker
                    .instantiate_pre(&component)
                    .and_then(SupplierPluginPre::new)
                    .map(Pre::Supplier),
                || {
                    inner
                        .supplier_linker_prev
                        .instantiate_pre(&component)
                        .and_then(prev::SupplierPluginPre::new)
                        .map(Pre::SupplierPrev)
                },
            ),
            PluginKind::Carrier => current_or_prev(
                inner
                    .carrier_linker
                    .instantiate_pre(&component)
                    .and_then(CarrierPluginPre::new)
                    .map(Pre::Carrier),
                || {
                    inner
                        .carrier_linker_prev
                        .instantiate_pre(&component)
                        .and_then(prev::CarrierPluginPre::new)
                        .map(Pre::CarrierPrev)
                },
            ),
        }
        .map_err(world_err)?;
        Ok(LoadedPlugin {
            name: name.into(),
            version,
            kind,
            limits,
            reuse_calls,
            warm: std::sync::Mutex::new(std::collections::HashMap::new()),
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

/// A component's `Pre` for the current WIT version, else for the previous minor one. When
/// neither fits, the current version's error: it says what today's world needs.
fn current_or_prev(
    current: wasmtime::Result<Pre>,
    prev: impl FnOnce() -> wasmtime::Result<Pre>,
) -> wasmtime::Result<Pre> {
    current.or_else(|error| prev().map_err(|_| error))
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

fn pooling(pool: &PoolConfig) -> wasmtime::InstanceAllocationStrategy {
    let mut config = wasmtime::PoolingAllocationConfig::new();
    let instances = pool.instances.max(1);
    // A Rust component holds a handful of core instances, memories and tables; a JavaScript one
    // a few more. Four of each per component is the common case; the totals bound the sum.
    config
        .total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(4))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(4))
        .max_memory_size(pool.max_memory_bytes);
    wasmtime::InstanceAllocationStrategy::Pooling(config)
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

/// Calls one export under the call's limits, in a warm instance of the connection when one is
/// kept, else in a fresh one; keeps the instance for the connection's next call when reuse is on
/// and the call ended cleanly. Records the call's outcome and latency.
macro_rules! call_export {
    ($self:ident, $ctx:ident, $input_size:expr, $pre:ident, $variant:ident, $function:literal, |$plugin:ident, $store:ident| $call:expr) => {{
        let started = Instant::now();
        let result = async {
            let pre = $self.$pre()?;
            $self.check_input($input_size)?;
            let deadline_at = tokio::time::Instant::now() + $self.limits.deadline;
            // The WASI wall clock is set when a store is made: a call at a fixed time (a recorded
            // case, a request judged as of its arrival) takes a fresh instance and leaves it.
            let reuse = $ctx.fixed_now_ms.is_none();
            let warm = if reuse {
                $self.take_warm(&$ctx.connection)
            } else {
                None
            };
            let (mut $store, $plugin, calls) = match warm {
                Some((mut store, Bindings::$variant(plugin), calls)) => {
                    $self.begin_call(&mut store, $ctx.clone(), deadline_at);
                    (store, plugin, calls)
                }
                _ => {
                    let mut store = $self.store($ctx.clone());
                    $self.begin_call(&mut store, $ctx.clone(), deadline_at);
                    let plugin = $self
                        .run(deadline_at, async {
                            pre.instantiate_async(&mut store).await.map(Ok)
                        })
                        .await
                        .map_err(|mut f| {
                            if let CallError::Trap(m) = f.error {
                                f.error = CallError::Instantiate(m);
                            }
                            f
                        })?;
                    (store, plugin, 0)
                }
            };
            let result = $self.run(deadline_at, async { $call.await }).await;
            let result = with_retry_after(result, &$store);
            if reuse && reusable(&result) {
                $self.keep_warm(
                    &$ctx.connection,
                    $store,
                    Bindings::$variant($plugin),
                    calls + 1,
                );
            }
            result.and_then(|value| $self.check_output(value))
        }
        .await;
        record_call(&$self.version, &$ctx, $function, started.elapsed(), &result);
        result
    }};
}

/// Calls a function that every WIT version this host loads has, through `call_export!`: on the
/// current bindings, or on the previous minor's with its argument converted to their types and
/// its result (value or plugin error) converted back. `channel`, `supplier` or `carrier` names
/// the interface. A slice argument names the owned type of its converted copy
/// (`call_fetch_tracking(parcels, as Vec<_>)`).
macro_rules! call_any_version {
    ($self:ident, $ctx:ident, $input_size:expr, channel, $($call:tt)*) => {
        call_any_version!(@ $self, $ctx, $input_size,
            [channel_pre Channel channel_prev_pre ChannelPrev daifa_plugin_channel], $($call)*)
    };
    ($self:ident, $ctx:ident, $input_size:expr, supplier, $($call:tt)*) => {
        call_any_version!(@ $self, $ctx, $input_size,
            [supplier_pre Supplier supplier_prev_pre SupplierPrev daifa_plugin_supplier], $($call)*)
    };
    ($self:ident, $ctx:ident, $input_size:expr, carrier, $($call:tt)*) => {
        call_any_version!(@ $self, $ctx, $input_size,
            [carrier_pre Carrier carrier_prev_pre CarrierPrev daifa_plugin_carrier], $($call)*)
    };
    (@ $self:ident, $ctx:ident, $input_size:expr,
        [$pre:ident $variant:ident $prev_pre:ident $prev_variant:ident $exports:ident],
        $function:literal, $method:ident()) => {
        if $self.is_prev() {
            call_export!($self, $ctx, $input_size, $prev_pre, $prev_variant, $function,
                |plugin, store| async {
                    from_prev(plugin.$exports().$method(&mut store).await?)
                })
        } else {
            call_export!($self, $ctx, $input_size, $pre, $variant, $function,
                |plugin, store| plugin.$exports().$method(&mut store))
        }
    };
    (@ $self:ident, $ctx:ident, $input_size:expr,
        [$pre:ident $variant:ident $prev_pre:ident $prev_variant:ident $exports:ident],
        $function:literal, $method:ident($arg:expr $(, as $owned:ty)?)) => {
        if $self.is_prev() {
            let old $(: $owned)? = to_prev($arg)?;
            call_export!($self, $ctx, $input_size, $prev_pre, $prev_variant, $function,
                |plugin, store| async {
                    from_prev(plugin.$exports().$method(&mut store, &old).await?)
                })
        } else {
            call_export!($self, $ctx, $input_size, $pre, $variant, $function,
                |plugin, store| plugin.$exports().$method(&mut store, $arg))
        }
    };
}

/// Whether an instance may serve another call after this result: not after a trap or a deadline
/// (its state is suspect), fine after a typed plugin error.
fn reusable<T>(result: &Result<T, CallFailure>) -> bool {
    match result {
        Ok(_) => true,
        Err(f) => matches!(f.error, CallError::Plugin(_)),
    }
}

/// An instance's typed exports.
enum Bindings {
    Channel(ChannelPlugin),
    Supplier(SupplierPlugin),
    Carrier(CarrierPlugin),
    ChannelPrev(prev::ChannelPlugin),
    SupplierPrev(prev::SupplierPlugin),
    CarrierPrev(prev::CarrierPlugin),
}

/// An instance kept for a connection's next call.
struct Warm {
    store: Store<CallState>,
    bindings: Bindings,
    calls: u32,
}

enum Pre {
    Channel(ChannelPluginPre<CallState>),
    Supplier(SupplierPluginPre<CallState>),
    Carrier(CarrierPluginPre<CallState>),
    ChannelPrev(prev::ChannelPluginPre<CallState>),
    SupplierPrev(prev::SupplierPluginPre<CallState>),
    CarrierPrev(prev::CarrierPluginPre<CallState>),
}

/// The generated bindings of the previous minor WIT version.
mod prev {
    pub use crate::bindings::v0_4::carrier_world::{CarrierPlugin, CarrierPluginPre};
    pub use crate::bindings::v0_4::channel_world::{ChannelPlugin, ChannelPluginPre};
    pub use crate::bindings::v0_4::supplier_world::{SupplierPlugin, SupplierPluginPre};
}

/// The previous minor WIT version, as `wit_line` names it.
const PREV_LINE: &str = "0.4";

/// A compiled plugin, ready to be called. Cheap to call concurrently: each call gets its own
/// `Store`.
pub struct LoadedPlugin {
    name: String,
    version: String,
    kind: PluginKind,
    limits: CallLimits,
    /// Calls an instance serves before it is dropped; 1 or less: a fresh instance per call.
    reuse_calls: u32,
    digest: String,
    pre: Pre,
    engine: PluginEngine,
    /// Warm instances by connection: an instance never serves two connections (two shops).
    warm: std::sync::Mutex<std::collections::HashMap<String, Vec<Warm>>>,
}

impl LoadedPlugin {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn kind(&self) -> PluginKind {
        self.kind
    }
    /// The limits every call of this plugin runs under.
    pub fn limits(&self) -> &CallLimits {
        &self.limits
    }

    fn check_input(&self, size: usize) -> Result<(), CallFailure> {
        let limit = self.limits.max_input_bytes;
        if size > limit {
            return Err(CallFailure {
                error: CallError::InputTooLarge { size, limit },
                retry_after: None,
            });
        }
        Ok(())
    }

    fn check_output<T: serde::Serialize>(&self, value: T) -> Result<T, CallFailure> {
        let limit = self.limits.max_output_bytes;
        let mut counter = ByteCounter(0);
        // Serializing into a counter measures without keeping a copy.
        let _ = serde_json::to_writer(&mut counter, &value);
        if counter.0 > limit {
            return Err(CallFailure {
                error: CallError::OutputTooLarge {
                    size: counter.0,
                    limit,
                },
                retry_after: None,
            });
        }
        Ok(value)
    }
    /// The SHA-256 of the component, hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn store(&self, ctx: Arc<ConnectionContext>) -> Store<CallState> {
        let inner = &self.engine.inner;
        let mut store = Store::new(
            &inner.engine,
            CallState::new(ctx, inner.http.clone(), self.limits.clone()),
        );
        store.limiter(|s| &mut s.limits);
        store
    }

    /// Prepares a store for one call: the call's connection, a fresh outbound budget, and the
    /// deadline.
    fn begin_call(
        &self,
        store: &mut Store<CallState>,
        ctx: Arc<ConnectionContext>,
        deadline_at: tokio::time::Instant,
    ) {
        store.data_mut().begin_call(ctx);
        let deadline_at = deadline_at.into_std();
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
    }

    fn take_warm(&self, connection: &str) -> Option<(Store<CallState>, Bindings, u32)> {
        let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        let instance = warm.get_mut(connection)?.pop()?;
        self.engine.inner.warm_count.fetch_sub(1, Ordering::Relaxed);
        Some((instance.store, instance.bindings, instance.calls))
    }

    fn keep_warm(&self, connection: &str, store: Store<CallState>, bindings: Bindings, calls: u32) {
        if calls >= self.reuse_calls {
            return;
        }
        let inner = &self.engine.inner;
        let reuse = &inner.config.reuse;
        let mut warm = self.warm.lock().unwrap_or_else(|p| p.into_inner());
        let list = warm.entry(connection.to_string()).or_default();
        if list.len() >= reuse.max_idle_per_connection
            || inner.warm_count.load(Ordering::Relaxed) >= reuse.max_warm_total
        {
            return;
        }
        inner.warm_count.fetch_add(1, Ordering::Relaxed);
        list.push(Warm {
            store,
            bindings,
            calls,
        });
    }

    /// Drops the warm instances kept for a connection (it moved to another version).
    pub fn evict(&self, connection: &str) {
        let removed = self
            .warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(connection)
            .map_or(0, |l| l.len());
        self.engine
            .inner
            .warm_count
            .fetch_sub(removed, Ordering::Relaxed);
    }

    /// Warm instances kept for a connection.
    pub fn warm_instances(&self, connection: &str) -> usize {
        self.warm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(connection)
            .map_or(0, Vec::len)
    }

    /// Calls an instance serves before it is dropped (1: a fresh instance per call).
    pub fn reuse_calls(&self) -> u32 {
        self.reuse_calls
    }

    /// Runs `call` until `deadline_at`, which covers everything, host calls included.
    async fn run<T, F>(&self, deadline_at: tokio::time::Instant, call: F) -> Result<T, CallFailure>
    where
        F: Future<Output = wasmtime::Result<Result<T, PluginError>>>,
    {
        let deadline = self.limits.deadline;
        let outcome = tokio::time::timeout_at(deadline_at, call).await;
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
            _ => Err(self.wrong_kind(PluginKind::Channel)),
        }
    }

    fn supplier_pre(&self) -> Result<&SupplierPluginPre<CallState>, CallFailure> {
        match &self.pre {
            Pre::Supplier(p) => Ok(p),
            _ => Err(self.wrong_kind(PluginKind::Supplier)),
        }
    }

    fn carrier_pre(&self) -> Result<&CarrierPluginPre<CallState>, CallFailure> {
        match &self.pre {
            Pre::Carrier(p) => Ok(p),
            _ => Err(self.wrong_kind(PluginKind::Carrier)),
        }
    }

    fn channel_prev_pre(&self) -> Result<&prev::ChannelPluginPre<CallState>, CallFailure> {
        match &self.pre {
            Pre::ChannelPrev(p) => Ok(p),
            _ => Err(self.wrong_kind(PluginKind::Channel)),
        }
    }

    fn supplier_prev_pre(&self) -> Result<&prev::SupplierPluginPre<CallState>, CallFailure> {
        match &self.pre {
            Pre::SupplierPrev(p) => Ok(p),
            _ => Err(self.wrong_kind(PluginKind::Supplier)),
        }
    }

    fn carrier_prev_pre(&self) -> Result<&prev::CarrierPluginPre<CallState>, CallFailure> {
        match &self.pre {
            Pre::CarrierPrev(p) => Ok(p),
            _ => Err(self.wrong_kind(PluginKind::Carrier)),
        }
    }

    /// The WIT version line the component was built against: the current one (`0.4`) or the
    /// previous minor (`0.3`).
    pub fn wit_line(&self) -> &'static str {
        if self.is_prev() {
            PREV_LINE
        } else {
            crate::bindings::WIT_LINE
        }
    }

    fn is_prev(&self) -> bool {
        matches!(
            self.pre,
            Pre::ChannelPrev(_) | Pre::SupplierPrev(_) | Pre::CarrierPrev(_)
        )
    }

    /// A function the plugin's WIT version does not have.
    fn added_later(&self, function: &str, since: &str) -> CallFailure {
        CallFailure {
            error: CallError::Plugin(PluginError::Unsupported(format!(
                "plugin `{}` {} is built against WIT {} which has no `{function}` (added in {since}); rebuild it with the current SDK",
                self.name,
                self.version,
                self.wit_line()
            ))),
            retry_after: None,
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
        call_any_version!(
            self,
            ctx,
            request.body.len(),
            channel,
            "handle-inbound",
            call_handle_inbound(request)
        )
    }

    /// Channel: write a shipment back to the storefront.
    pub async fn push_fulfillment(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &FulfillmentRequest,
    ) -> Result<FulfillmentRef, CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(request),
            channel,
            "push-fulfillment",
            call_push_fulfillment(request)
        )
    }

    /// Supplier: place an order.
    pub async fn submit_order(
        &self,
        ctx: Arc<ConnectionContext>,
        order: &SupplierOrder,
    ) -> Result<Submission, CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(order),
            supplier,
            "submit-order",
            call_submit_order(order)
        )
    }

    /// Supplier: verify and parse a supplier's callback.
    pub async fn handle_callback(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &InboundRequest,
    ) -> Result<SupplierInbound, CallFailure> {
        call_any_version!(
            self,
            ctx,
            request.body.len(),
            supplier,
            "handle-callback",
            call_handle_callback(request)
        )
    }

    /// Any kind: check the connection's settings and credentials against the platform.
    /// Every WIT version this host loads has it.
    pub async fn check_connection(
        &self,
        ctx: Arc<ConnectionContext>,
    ) -> Result<String, CallFailure> {
        match self.kind {
            PluginKind::Channel => call_any_version!(
                self,
                ctx,
                0,
                channel,
                "check-connection",
                call_check_connection()
            ),
            PluginKind::Supplier => call_any_version!(
                self,
                ctx,
                0,
                supplier,
                "check-connection",
                call_check_connection()
            ),
            PluginKind::Carrier => call_any_version!(
                self,
                ctx,
                0,
                carrier,
                "check-connection",
                call_check_connection()
            ),
        }
    }

    /// Channel: fetch what changed on the storefront since the request's cursor (since WIT 0.3,
    /// so every version this host loads has it).
    pub async fn poll_channel(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &PollRequest,
    ) -> Result<PollResult, CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(request),
            channel,
            "poll",
            call_poll(request)
        )
    }

    /// Supplier: fetch what changed at the supplier since the request's cursor (since WIT 0.3,
    /// so every version this host loads has it).
    pub async fn poll_supplier(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &PollRequest,
    ) -> Result<SupplierPollResult, CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(request),
            supplier,
            "poll",
            call_poll(request)
        )
    }

    /// Channel: refund the customer through the storefront (since WIT 0.3).
    pub async fn refund(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &RefundRequest,
    ) -> Result<RefundRef, CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(request),
            channel,
            "refund",
            call_refund(request)
        )
    }

    /// Channel: approve or decline a return request on the storefront (since WIT 0.3).
    pub async fn decide_return(
        &self,
        ctx: Arc<ConnectionContext>,
        decision: &ReturnDecision,
    ) -> Result<(), CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(decision),
            channel,
            "decide-return",
            call_decide_return(decision)
        )
    }

    /// Channel: cancel an order on the storefront (since WIT 0.5). Plugins built against WIT
    /// 0.4 answer `unsupported`, without being called.
    pub async fn cancel_storefront_order(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &CancelOrderRequest,
    ) -> Result<CancelOrderRef, CallFailure> {
        if let Pre::ChannelPrev(_) = self.pre {
            return Err(self.added_later("cancel-order", "0.5.0"));
        }
        call_export!(
            self,
            ctx,
            json_size(request),
            channel_pre,
            Channel,
            "cancel-order",
            |plugin, store| plugin
                .daifa_plugin_channel()
                .call_cancel_order(&mut store, request)
        )
    }

    /// Supplier: cancel an order, or stop its parcel (since WIT 0.3).
    pub async fn cancel_order(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &CancelRequest,
    ) -> Result<SupplierOrderStatus, CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(request),
            supplier,
            "cancel-order",
            call_cancel_order(request)
        )
    }

    /// Supplier: change an order the supplier has not shipped (since WIT 0.4).
    pub async fn update_order(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &UpdateRequest,
    ) -> Result<UpdateAnswer, CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(request),
            supplier,
            "update-order",
            call_update_order(request)
        )
    }

    /// Supplier: announce goods coming back and get where to send them (since WIT 0.3).
    pub async fn authorize_return(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &ReturnRequest,
    ) -> Result<ReturnAuthorization, CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(request),
            supplier,
            "authorize-return",
            call_authorize_return(request)
        )
    }

    /// Carrier: ask the tracking service to follow a parcel.
    pub async fn register_parcel(
        &self,
        ctx: Arc<ConnectionContext>,
        parcel: &Parcel,
    ) -> Result<Registration, CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(parcel),
            carrier,
            "register",
            call_register(parcel)
        )
    }

    /// Carrier: the current tracking of registered parcels.
    pub async fn fetch_tracking(
        &self,
        ctx: Arc<ConnectionContext>,
        parcels: &[Parcel],
    ) -> Result<Vec<TrackingUpdate>, CallFailure> {
        call_any_version!(
            self,
            ctx,
            json_size(&parcels),
            carrier,
            "fetch-tracking",
            call_fetch_tracking(parcels, as Vec<_>)
        )
    }

    /// Carrier: verify and parse a tracking service's webhook.
    pub async fn handle_webhook(
        &self,
        ctx: Arc<ConnectionContext>,
        request: &InboundRequest,
    ) -> Result<CarrierInbound, CallFailure> {
        call_any_version!(
            self,
            ctx,
            request.body.len(),
            carrier,
            "handle-webhook",
            call_handle_webhook(request)
        )
    }
}

/// A current value as the previous minor's bindings' value of the same shape.
fn to_prev<A: serde::Serialize + ?Sized, B: serde::de::DeserializeOwned>(
    value: &A,
) -> Result<B, CallFailure> {
    crate::bindings::convert(value).map_err(|e| CallFailure {
        error: CallError::Instantiate(format!("cannot convert the call for WIT {PREV_LINE}: {e}")),
        retry_after: None,
    })
}

/// A previous-minor plugin's result (its value or its error) as the current types.
fn from_prev<A, E, B>(result: Result<A, E>) -> wasmtime::Result<Result<B, PluginError>>
where
    A: serde::Serialize,
    E: serde::Serialize,
    B: serde::de::DeserializeOwned,
{
    Ok(match result {
        Ok(value) => Ok(crate::bindings::convert(value)?),
        Err(error) => Err(crate::bindings::convert(error)?),
    })
}

/// Records a finished call: a counter by outcome and a latency histogram (labels: plugin,
/// connection, function; never a request's content), and a log line tagged the same way.
fn json_size<T: serde::Serialize>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn record_call<T>(
    version: &str,
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
        ("version", version.to_string()),
        ("connection", ctx.connection.clone()),
        ("function", function.to_string()),
    ];
    metrics::counter!("daifa_plugin_calls_total", &labels).increment(1);
    if let Err(f) = result {
        let with_kind = [
            ("plugin", ctx.plugin.clone()),
            ("version", version.to_string()),
            ("connection", ctx.connection.clone()),
            ("function", function.to_string()),
            ("kind", outcome.to_string()),
        ];
        metrics::counter!("daifa_plugin_call_errors_total", &with_kind).increment(1);
        if !matches!(f.error, CallError::Plugin(_)) {
            tracing::warn!(plugin = %ctx.plugin, version, connection = %ctx.connection, function, error = %f.error, "plugin call failed");
        }
    }
    metrics::histogram!("daifa_plugin_call_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    tracing::debug!(plugin = %ctx.plugin, version, connection = %ctx.connection, function, outcome, elapsed_us = elapsed.as_micros() as u64, "plugin call");
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
