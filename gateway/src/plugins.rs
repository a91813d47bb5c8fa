//! The plugin registry: installed packages (several versions of a plugin side by side, in the
//! database so that every gateway process sees them), and the compiled plugins of this process,
//! loaded on first use (the packages are kept in `plugin_packages`, `store/plugins.rs`). This
//! module serves `/api/v1/plugins`.
//!
//! A package is the component with its manifest embedded (see `docs/plugin-package.md`). The
//! bundled plugins are installed at start. A connection pins one version; upgrading it changes
//! which `LoadedPlugin` its next call gets, while calls in flight keep the `Arc` of the old one.

use crate::config::PluginSettings;
use crate::db::{Db, ms, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::store::plugins::{self as plugin_packages, NewPackage, PackageRow};
use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use daifa_plugin_host::carrier::CarrierInbound;
use daifa_plugin_host::channel::Inbound;
use daifa_plugin_host::manifest::Toolchain;
use daifa_plugin_host::supplier::SupplierInbound;
use daifa_plugin_host::{
    Allocator, CallFailure, CallLimits, ConnectionContext, EngineConfig, HostError, InboundRequest,
    LoadedPlugin, Manifest, Package, PluginEngine, PluginKind, PluginSpec, PoolConfig, ReqwestHttp,
    ReuseConfig, supports_wit,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where a package came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Shipped in the gateway binary; follows the binary.
    Bundled,
    /// Installed through the API or CLI.
    Upload,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Bundled => "bundled",
            Self::Upload => "upload",
        }
    }
}

/// An installed package as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PackageInfo {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub wit_version: String,
    pub digest: String,
    pub source: String,
    pub enabled: bool,
    pub installed_at_ms: i64,
    pub size_bytes: i64,
    pub manifest: Manifest,
    /// The settings that are secrets (`writeOnly` in the schema).
    pub secret_settings: Vec<String>,
}

impl PackageInfo {
    fn from_row(row: PackageRow) -> anyhow::Result<Self> {
        let manifest = Manifest::from_toml(&row.manifest_toml).context("an installed manifest")?;
        Ok(Self {
            name: row.name,
            version: row.version,
            kind: row.kind,
            wit_version: row.wit_version,
            digest: row.digest,
            source: row.source,
            enabled: row.enabled,
            installed_at_ms: row.installed_at_ms,
            size_bytes: row.size_bytes,
            secret_settings: manifest.secret_names(),
            manifest,
        })
    }

    pub fn semver(&self) -> Option<semver::Version> {
        semver::Version::parse(&self.version).ok()
    }
}

/// Why a package was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<InstallError> for ApiError {
    fn from(e: InstallError) -> Self {
        match e {
            InstallError::Invalid(m) => ApiError::Unprocessable(m),
            InstallError::Conflict(m) => ApiError::Conflict(m),
            InstallError::Internal(e) => ApiError::Internal(e),
        }
    }
}

/// Why a plugin version could not be given to a caller.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin `{0}` version {1} is not installed")]
    NotInstalled(String, String),
    #[error("plugin `{0}` version {1} no longer loads: {2}")]
    Broken(String, String, String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A loaded plugin version with its manifest. Derefs to the [`LoadedPlugin`] to call it.
pub struct Installed {
    pub manifest: Manifest,
    pub toolchain: Toolchain,
    pub plugin: LoadedPlugin,
}

impl std::ops::Deref for Installed {
    type Target = LoadedPlugin;
    fn deref(&self) -> &LoadedPlugin {
        &self.plugin
    }
}

struct Inner {
    engine: PluginEngine,
    db: Db,
    reuse: crate::config::ReuseSettings,
    /// Compiled plugins of this process by (name, version). Never evicted: a version is small
    /// once compiled, and connections may come back to it on rollback.
    loaded: Mutex<HashMap<(String, String), Arc<Installed>>>,
    /// Serialises compiles, so that a burst of calls to a new version compiles it once.
    compiling: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
pub struct PluginRegistry {
    inner: Arc<Inner>,
}

impl PluginRegistry {
    /// Sets up the engine, installs the bundled packages, pins connections made before versions
    /// and loads every version a connection uses.
    pub async fn start(settings: &PluginSettings, db: Db) -> anyhow::Result<Self> {
        let started = Instant::now();
        let engine = PluginEngine::new(engine_config(settings), Arc::new(ReqwestHttp::new()?))?;
        let registry = Self {
            inner: Arc::new(Inner {
                engine,
                db,
                reuse: settings.reuse.clone(),
                loaded: Mutex::new(HashMap::new()),
                compiling: tokio::sync::Mutex::new(()),
            }),
        };
        // Every bundled plugin is loaded at start (from the compiled cache after the first
        // start), so that no request pays for a compile.
        for bundled in daifa_bundled_plugins::PLUGINS {
            let (info, _) = registry
                .install(bundled.wasm.to_vec(), Source::Bundled)
                .await
                .map_err(|e| anyhow::anyhow!("bundled plugin {}: {e}", bundled.name))?;
            registry.get(&info.name, &info.version).await?;
        }
        tracing::info!(
            loaded = registry.lock_loaded().len(),
            allocator = ?registry.inner.engine.allocator(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugins ready"
        );
        Ok(registry)
    }

    pub fn allocator(&self) -> Allocator {
        self.inner.engine.allocator()
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Installed>>> {
        self.inner.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs a package: reads and checks its manifest, compiles the component and checks it
    /// implements its kind's world, then records it. Installing the same bytes again is a no-op;
    /// other bytes under an installed name and version are refused (bundled ones replace).
    /// Returns the package and whether it was new.
    pub async fn install(
        &self,
        bytes: Vec<u8>,
        source: Source,
    ) -> Result<(PackageInfo, bool), InstallError> {
        let package = Package::read(&bytes).map_err(|e| InstallError::Invalid(e.to_string()))?;
        let manifest = package.manifest.clone();
        if !supports_wit(&manifest.wit) {
            return Err(InstallError::Invalid(format!(
                "plugin `{}` targets WIT daifa:plugin@{}, which this gateway does not load (it loads {} and the previous minor version)",
                manifest.name,
                manifest.wit,
                daifa_plugin_host::WIT_VERSION
            )));
        }
        let digest = hex::encode(Sha256::digest(&bytes));
        let version = manifest.version.to_string();
        if let Some(existing) = self.package(&manifest.name, &version).await? {
            if existing.digest == digest {
                return Ok((existing, false));
            }
            if source == Source::Upload || existing.source == Source::Upload.as_str() {
                return Err(InstallError::Conflict(format!(
                    "plugin `{}` version {version} is already installed with other content (sha256 {}); a version never changes: bump the version",
                    manifest.name, existing.digest
                )));
            }
        }
        // Compiling proves the component is valid and implements its world; it also warms the
        // on-disk cache. Off the async threads: a large component takes seconds.
        let loaded = self
            .compile(&manifest, bytes.clone())
            .await
            .map_err(|e| match e {
                LoadError::Broken(_, _, m) => InstallError::Invalid(m),
                other => InstallError::Internal(other.into()),
            })?;
        let declared_line = format!("{}.{}", manifest.wit.major, manifest.wit.minor);
        if loaded.wit_line() != declared_line {
            return Err(InstallError::Invalid(format!(
                "the manifest says WIT {} but the component implements the {} world of WIT {}",
                manifest.wit,
                manifest.kind.as_str(),
                loaded.wit_line()
            )));
        }
        let mut tx = self.inner.db.begin().await.map_err(anyhow::Error::from)?;
        let inserted = plugin_packages::install(
            &mut tx,
            NewPackage {
                name: &manifest.name,
                version: &version,
                kind: manifest.kind.as_str(),
                wit_version: manifest.wit.to_string(),
                digest: &digest,
                manifest_toml: &package.manifest_toml,
                package: bytes,
                source: source.as_str(),
                installed_at_ms: now_ms(),
                polling: manifest.capabilities.polling,
                poll_interval_ms: manifest.capabilities.poll_interval.map(ms),
            },
        )
        .await
        .map_err(anyhow::Error::from)?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        let info = self
            .package(&manifest.name, &version)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the package vanished after install"))?;
        if info.digest != digest {
            // Another process installed other bytes under this version in between.
            return Err(InstallError::Conflict(format!(
                "plugin `{}` version {version} was installed concurrently with other content",
                manifest.name
            )));
        }
        self.lock_loaded()
            .insert((manifest.name.clone(), version.clone()), Arc::new(loaded));
        if inserted {
            tracing::info!(plugin = %manifest.name, version = %version, source = source.as_str(), digest = %digest, "plugin installed");
        }
        Ok((info, inserted))
    }

    async fn compile(&self, manifest: &Manifest, bytes: Vec<u8>) -> Result<Installed, LoadError> {
        let config = self.inner.engine.config();
        let toolchain = daifa_plugin_host::manifest::toolchain(&bytes);
        let reuse_calls = manifest.limits.reuse_calls.unwrap_or(match toolchain {
            Toolchain::Compiled => self.inner.reuse.compiled_calls,
            Toolchain::Interpreted => self.inner.reuse.interpreted_calls,
        });
        let spec = PluginSpec {
            name: manifest.name.clone(),
            version: manifest.version.to_string(),
            kind: manifest.kind,
            limits: manifest.limits.resolve(&config.limits, &config.ceiling),
            reuse_calls,
        };
        let (name, version) = (spec.name.clone(), spec.version.clone());
        let engine = self.inner.engine.clone();
        let plugin = tokio::task::spawn_blocking(move || engine.load_spec(spec, &bytes))
            .await
            .map_err(|e| LoadError::Internal(e.into()))?
            .map_err(|e: HostError| LoadError::Broken(name, version, e.to_string()))?;
        Ok(Installed {
            manifest: manifest.clone(),
            toolchain,
            plugin,
        })
    }

    /// The compiled plugin of `name` at `version`, compiling it on first use.
    pub async fn get(&self, name: &str, version: &str) -> Result<Arc<Installed>, LoadError> {
        let key = (name.to_string(), version.to_string());
        if let Some(p) = self.lock_loaded().get(&key) {
            return Ok(p.clone());
        }
        let _compiling = self.inner.compiling.lock().await;
        if let Some(p) = self.lock_loaded().get(&key) {
            return Ok(p.clone());
        }
        let (manifest_toml, bytes) = plugin_packages::component(&self.inner.db, name, version)
            .await
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| LoadError::NotInstalled(name.into(), version.into()))?;
        let manifest = Manifest::from_toml(&manifest_toml)
            .map_err(|e| LoadError::Broken(name.into(), version.into(), e.to_string()))?;
        let loaded = Arc::new(self.compile(&manifest, bytes).await?);
        self.lock_loaded().insert(key, loaded.clone());
        Ok(loaded)
    }

    pub async fn package(&self, name: &str, version: &str) -> anyhow::Result<Option<PackageInfo>> {
        plugin_packages::get(&self.inner.db, name, version)
            .await?
            .map(PackageInfo::from_row)
            .transpose()
    }

    /// Every installed version, by name then newest version first.
    pub async fn list(&self) -> anyhow::Result<Vec<PackageInfo>> {
        let mut list = plugin_packages::all(&self.inner.db)
            .await?
            .into_iter()
            .map(PackageInfo::from_row)
            .collect::<anyhow::Result<Vec<_>>>()?;
        list.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| b.semver().cmp(&a.semver()))
        });
        Ok(list)
    }

    /// The newest enabled version of a plugin.
    pub async fn latest(&self, name: &str) -> anyhow::Result<Option<PackageInfo>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(|p| p.name == name && p.enabled))
    }

    /// Enables or disables a version. A disabled version cannot be pinned by a connection. That
    /// no connection runs a version being disabled is checked by the connections
    /// (`POST /plugins/{name}/{version}/disable` is theirs).
    pub async fn set_enabled(
        &self,
        name: &str,
        version: &str,
        enabled: bool,
    ) -> ApiResult<PackageInfo> {
        let info = self.package(name, version).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "plugin `{name}` version {version} is not installed"
            ))
        })?;
        plugin_packages::set_enabled(&self.inner.db, name, version, enabled).await?;
        tracing::info!(
            plugin = name,
            version,
            enabled,
            "plugin version {}",
            if enabled { "enabled" } else { "disabled" }
        );
        Ok(PackageInfo { enabled, ..info })
    }
}

fn engine_config(settings: &PluginSettings) -> EngineConfig {
    let defaults = CallLimits {
        deadline: settings.call_deadline,
        memory_bytes: settings.memory_limit_mb << 20,
        max_input_bytes: settings.max_input_bytes,
        max_output_bytes: settings.max_output_bytes,
        max_outbound_requests: settings.max_outbound_requests,
        outbound_timeout: settings.outbound_timeout,
    };
    let ceiling = CallLimits {
        deadline: settings.ceiling.call_deadline,
        memory_bytes: settings.ceiling.memory_limit_mb << 20,
        max_input_bytes: settings.ceiling.max_input_bytes,
        max_output_bytes: settings.ceiling.max_output_bytes,
        max_outbound_requests: settings.ceiling.max_outbound_requests,
        outbound_timeout: settings.ceiling.outbound_timeout,
    };
    EngineConfig {
        cache_dir: settings.cache_dir.clone(),
        pool: (settings.pool.instances > 0).then_some(PoolConfig {
            instances: settings.pool.instances,
            max_memory_bytes: ceiling.memory_bytes,
        }),
        limits: defaults,
        ceiling,
        reuse: ReuseConfig {
            max_idle_per_connection: settings.reuse.max_idle_per_connection,
            max_warm_total: settings.reuse.max_warm_total,
        },
        ..EngineConfig::default()
    }
}

/// `/plugins`, for any application state that gives the registry.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    PluginRegistry: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/plugins", get(list_handler).post(install_handler))
        .route("/plugins/{name}", get(versions_handler))
        .route("/plugins/{name}/{version}", get(inspect_handler))
        .route("/plugins/{name}/{version}/enable", post(enable_handler))
}

async fn list_handler(State(registry): State<PluginRegistry>) -> ApiResult<Json<Vec<PackageInfo>>> {
    Ok(Json(registry.list().await?))
}

async fn versions_handler(
    State(registry): State<PluginRegistry>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<PackageInfo>>> {
    let versions: Vec<_> = registry
        .list()
        .await?
        .into_iter()
        .filter(|p| p.name == name)
        .collect();
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!(
            "plugin `{name}` is not installed"
        )));
    }
    Ok(Json(versions))
}

async fn inspect_handler(
    State(registry): State<PluginRegistry>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<PackageInfo>> {
    registry
        .package(&name, &version)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "plugin `{name}` version {version} is not installed"
            ))
        })
}

async fn install_handler(
    State(registry): State<PluginRegistry>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<PackageInfo>)> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/wasm")
        && !content_type.starts_with("application/octet-stream")
    {
        return Err(ApiError::BadRequest(
            "send the package file as the body, with Content-Type: application/wasm".into(),
        ));
    }
    let (info, created) = registry.install(body.to_vec(), Source::Upload).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info)))
}

async fn enable_handler(
    State(registry): State<PluginRegistry>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<PackageInfo>> {
    Ok(Json(registry.set_enabled(&name, &version, true).await?))
}

/// What a plugin made of an inbound request.
pub enum Parsed {
    Channel(Inbound),
    Supplier(SupplierInbound),
    Carrier(CarrierInbound),
}

/// Calls the inbound export of the connection's kind.
pub async fn parse(
    plugin: &Installed,
    kind: PluginKind,
    ctx: Arc<ConnectionContext>,
    request: &InboundRequest,
) -> Result<Parsed, CallFailure> {
    match kind {
        PluginKind::Channel => plugin
            .handle_inbound(ctx, request)
            .await
            .map(Parsed::Channel),
        PluginKind::Supplier => plugin
            .handle_callback(ctx, request)
            .await
            .map(Parsed::Supplier),
        PluginKind::Carrier => plugin
            .handle_webhook(ctx, request)
            .await
            .map(Parsed::Carrier),
    }
}
