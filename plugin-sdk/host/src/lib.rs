//! The host side of Daifa plugins: the only crate that knows wasmtime.
//!
//! Bindings are generated from the WIT package in `plugin-sdk/wit/` (see [`bindings`]). A
//! [`PluginEngine`] compiles each component once (and keeps the machine code on disk by content
//! hash), keeps an `InstancePre` per plugin, and runs every call in a fresh `Store` with a
//! wall-clock deadline, a memory cap and a budget of outbound requests. A plugin that traps,
//! loops or errs yields a typed [`CallError`]; the host keeps running.
//!
//! The same engine is the test harness of plugin authors: load a component with
//! [`PluginEngine::load`], give it a [`ScriptedHttp`](harness::ScriptedHttp) peer, call it.

pub mod bindings;
pub mod cases;
mod engine;
pub mod harness;
pub mod manifest;
mod outbound;
mod state;

pub use bindings::types::{
    Address, CaseKind, CaseReason, Contact, HttpHeader, InboundRequest, LineQuantity, Money, Order,
    OrderLine, OutboundRequest, OutboundResponse, PaymentStatus, PluginError, PollRequest,
    ReturnKind, Shipment, SupplierOrderRef, SupplierOrderStatus, TrackingDetail, TrackingEvent,
    TrackingStatus, TrackingUpdate,
};
pub use bindings::{WIT_VERSION, supports_wit};
pub use bindings::{carrier, channel, supplier};
pub use engine::{
    Allocator, CallError, CallFailure, CallLimits, EngineConfig, HostError, LoadedPlugin,
    PluginEngine, PluginKind, PluginSpec, PoolConfig, ReuseConfig,
};
pub use manifest::{Manifest, ManifestError, Package};
pub use outbound::{FetchOptions, OutboundHttp, ReqwestHttp, is_public};
pub use state::{ConnectionContext, ExchangeRecorder, RecordedExchange, mask_url};
