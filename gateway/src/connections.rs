//! Connections: one storefront or supplier account, served by a plugin, with its settings,
//! secrets and the hosts its plugin may call: creating, changing, upgrading and shadowing them
//! (the rows are `store/connections.rs`'s).

use crate::db::{Db, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::plugins::{Installed, PackageInfo, PluginRegistry};
use crate::secrets::{SecretBox, SecretError};
use crate::services::Services;
use crate::store::connections::{self as store, Connection, HistoryEntry};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use daifa_plugin_host::ConnectionContext;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a sealed secret is bound to: its connection and name.
fn secret_context(connection_id: &str, name: &str) -> String {
    format!("{connection_id}/{name}")
}

impl Connection {
    /// What the plugin sees of this connection during a call, secrets opened. The hosts it may
    /// call are those its manifest declares (for these settings) and those the operator added.
    pub fn context(
        &self,
        secrets: &SecretBox,
        plugin: &Installed,
    ) -> Result<ConnectionContext, SecretError> {
        let allowed_hosts = plugin
            .manifest
            .allowed_hosts(&self.settings, &self.allowed_hosts);
        let opened = self
            .sealed_secrets
            .iter()
            .map(|(name, sealed)| {
                Ok((
                    name.clone(),
                    secrets.open(&secret_context(&self.id, name), sealed)?,
                ))
            })
            .collect::<Result<_, SecretError>>()?;
        Ok(ConnectionContext {
            plugin: self.plugin.clone(),
            plugin_version: plugin.version().to_string(),
            connection: self.name.clone(),
            settings: self.settings.clone(),
            secrets: opened,
            allowed_hosts,
            allow_private_network: self.allow_private_network,
            fixed_now_ms: None,
            recorder: None,
        })
    }
}

/// A connection to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    pub name: String,
    pub plugin: String,
    /// The plugin version to run; default: the newest enabled one.
    #[serde(default)]
    pub plugin_version: Option<String>,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Lets the plugin reach private, loopback and link-local addresses; off by default.
    #[serde(default)]
    pub allow_private_network: bool,
}

pub async fn create(state: &Services, new: NewConnection) -> ApiResult<Connection> {
    validate_name(&new.name)?;
    if store::by_name(&state.db, &new.name).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "a connection named `{}` already exists",
            new.name
        )));
    }
    let package = pinnable(state, &new.plugin, new.plugin_version.as_deref()).await?;
    check_settings(&package, &new.settings, &new.secrets)?;
    check_hosts(&new.allowed_hosts)?;
    let id = new_id("con");
    let sealed_secrets = new
        .secrets
        .iter()
        .map(|(name, value)| {
            (
                name.clone(),
                state.secrets.seal(&secret_context(&id, name), value),
            )
        })
        .collect();
    let connection = Connection {
        id,
        name: new.name,
        kind: package.manifest.kind,
        plugin: new.plugin,
        plugin_version: package.version.clone(),
        previous_plugin_version: None,
        shadow_plugin_version: None,
        settings: new.settings,
        previous_settings: None,
        sealed_secrets,
        allowed_hosts: new.allowed_hosts,
        allow_private_network: new.allow_private_network,
        enabled: true,
        created_at_ms: now_ms(),
    };
    store::insert(&state.db, &connection).await?;
    state.connection_cache.clear();
    tracing::info!(connection = %connection.name, plugin = %connection.plugin, version = %connection.plugin_version, "connection created");
    Ok(connection)
}

/// An installed, enabled version of `plugin` (the newest when `version` is `None`).
async fn pinnable(state: &Services, plugin: &str, version: Option<&str>) -> ApiResult<PackageInfo> {
    let package = match version {
        Some(v) => state.plugins.package(plugin, v).await?.ok_or_else(|| {
            ApiError::Unprocessable(format!("plugin `{plugin}` version {v} is not installed"))
        })?,
        None => state.plugins.latest(plugin).await?.ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "no enabled version of plugin `{plugin}` is installed"
            ))
        })?,
    };
    if !package.enabled {
        return Err(ApiError::Unprocessable(format!(
            "plugin `{plugin}` version {} is disabled",
            package.version
        )));
    }
    Ok(package)
}

/// Settings and secrets against the plugin's schema: 422 listing every problem.
fn check_settings(
    package: &PackageInfo,
    settings: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> ApiResult<()> {
    package
        .manifest
        .validate_settings(settings, secrets)
        .map_err(|problems| {
            ApiError::Unprocessable(format!(
                "settings do not fit plugin `{}` version {}: {}",
                package.name,
                package.version,
                problems.join("; ")
            ))
        })
}

fn check_hosts(hosts: &[String]) -> ApiResult<()> {
    for host in hosts {
        if host.trim().is_empty() || host.contains('/') {
            return Err(ApiError::Unprocessable(format!(
                "allowed host `{host}` must be a host name, optionally with :port"
            )));
        }
    }
    Ok(())
}

fn validate_name(name: &str) -> ApiResult<()> {
    if store::valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "connection name `{name}` must be 1 to 64 characters of a-z, 0-9, `-` and `_` (it is part of the hook url)"
        )))
    }
}

/// A connection as the API shows it: secret values never leave the gateway, only their names.
#[derive(Debug, Serialize)]
pub struct ConnectionView {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub plugin: String,
    pub plugin_version: String,
    pub previous_plugin_version: Option<String>,
    pub shadow_plugin_version: Option<String>,
    pub settings: BTreeMap<String, String>,
    pub secret_names: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub allow_private_network: bool,
    pub enabled: bool,
    pub hook_path: String,
    pub created_at_ms: i64,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        Self {
            hook_path: format!("/hooks/{}", c.name),
            id: c.id,
            name: c.name,
            kind: c.kind.as_str(),
            plugin: c.plugin,
            plugin_version: c.plugin_version,
            previous_plugin_version: c.previous_plugin_version,
            shadow_plugin_version: c.shadow_plugin_version,
            settings: c.settings,
            secret_names: c.sealed_secrets.into_keys().collect(),
            allowed_hosts: c.allowed_hosts,
            allow_private_network: c.allow_private_network,
            enabled: c.enabled,
            created_at_ms: c.created_at_ms,
        }
    }
}

pub fn router() -> Router<Services> {
    Router::new()
        .route("/connections", get(list_handler).post(create_handler))
        .route(
            "/connections/{name}",
            get(get_handler).patch(update_handler),
        )
        .route("/connections/{name}/upgrade", post(upgrade_handler))
        .route("/connections/{name}/rollback", post(rollback_handler))
        .route(
            "/connections/{name}/shadow",
            put(shadow_handler).delete(unshadow_handler),
        )
        .route("/connections/{name}/history", get(history_handler))
        .route("/connections/{name}/check", post(check_handler))
        .route(
            "/plugins/{name}/{version}/disable",
            post(disable_plugin_handler),
        )
}

/// `POST /plugins/{name}/{version}/disable`: a version that connections run (pinned or in
/// shadow) cannot be disabled; upgrade or roll them back first.
async fn disable_plugin_handler(
    State(state): State<Services>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<PackageInfo>> {
    let users = store::using_version(&state.db, &name, &version).await?;
    if !users.is_empty() {
        return Err(ApiError::Conflict(format!(
            "plugin `{name}` version {version} is used by connection(s) {}: move them to another version first",
            users.join(", ")
        )));
    }
    Ok(Json(
        state.plugins.set_enabled(&name, &version, false).await?,
    ))
}

/// At start: connections made before plugins had versions are pinned to the newest installed
/// version, and every version a connection runs is loaded, so that no request pays for a
/// compile.
pub async fn prepare_plugins(db: &Db, registry: &PluginRegistry) -> anyhow::Result<()> {
    for plugin in store::unpinned_plugins(db).await? {
        let Some(latest) = registry.latest(&plugin).await? else {
            tracing::error!(plugin = %plugin, "connections use a plugin that is not installed");
            continue;
        };
        let pinned = store::pin_unpinned(db, &plugin, &latest.version).await?;
        tracing::info!(plugin = %plugin, version = %latest.version, connections = pinned, "pinned connections to a plugin version");
    }
    for (name, version) in store::plugin_versions_in_use(db).await? {
        if let Err(e) = registry.get(&name, &version).await {
            tracing::error!(plugin = %name, version = %version, error = %e, "a connection's plugin version cannot be loaded");
        }
    }
    Ok(())
}

async fn existing(state: &Services, name: &str) -> ApiResult<Connection> {
    store::by_name(&state.db, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection named `{name}`")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionChange {
    pub version: String,
    /// New settings the version needs, replacing the current ones in the same step (a rollback
    /// restores the ones replaced). Not for shadow runs.
    #[serde(default)]
    pub settings: Option<BTreeMap<String, String>>,
}

/// Moves a connection to another version of its plugin (up or down). Its next call runs the new
/// version; calls in flight finish on the one they started with.
pub async fn upgrade(
    state: &Services,
    name: &str,
    version: &str,
    settings: Option<BTreeMap<String, String>>,
) -> ApiResult<Connection> {
    let connection = existing(state, name).await?;
    let package = pinnable(state, &connection.plugin, Some(version)).await?;
    if package.version == connection.plugin_version {
        return Err(ApiError::Conflict(format!(
            "connection `{name}` already runs {} {}",
            connection.plugin, package.version
        )));
    }
    let settings = settings.unwrap_or_else(|| connection.settings.clone());
    switch_version(state, connection, &package, "upgrade", settings).await
}

/// Returns a connection to the version it ran before its last upgrade.
pub async fn rollback(state: &Services, name: &str) -> ApiResult<Connection> {
    let connection = existing(state, name).await?;
    let previous = connection.previous_plugin_version.clone().ok_or_else(|| {
        ApiError::Conflict(format!(
            "connection `{name}` has no earlier version to roll back to"
        ))
    })?;
    let package = pinnable(state, &connection.plugin, Some(&previous)).await?;
    let settings = connection
        .previous_settings
        .clone()
        .unwrap_or_else(|| connection.settings.clone());
    switch_version(state, connection, &package, "rollback", settings).await
}

async fn switch_version(
    state: &Services,
    mut connection: Connection,
    package: &PackageInfo,
    action: &str,
    settings: BTreeMap<String, String>,
) -> ApiResult<Connection> {
    let current_settings = std::mem::replace(&mut connection.settings, settings);
    // The new version may ask for other settings: the connection's must fit it first.
    check_settings_names(package, &connection)?;
    // Load (compile) before switching, so that the first call after the switch is not the one
    // to find out the version does not load.
    state
        .plugins
        .get(&package.name, &package.version)
        .await
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let mut tx = state.db.begin().await?;
    // Upgrading to the version in shadow ends the shadow run: it would parse every request twice.
    let changed = store::switch_version(
        &mut tx,
        &connection.id,
        &connection.plugin_version,
        &package.version,
        &connection.settings,
        &current_settings,
    )
    .await?;
    if !changed {
        return Err(ApiError::Conflict(format!(
            "connection `{}` changed version meanwhile; look again",
            connection.name
        )));
    }
    store::record_history(
        &mut tx,
        &connection.id,
        action,
        Some(&connection.plugin_version),
        Some(&package.version),
    )
    .await?;
    tx.commit().await?;
    state.connection_cache.clear();
    // Warm instances of the old version are not reused by this connection any more. (Another
    // gateway process evicts its own when they are recycled; they are never called again.)
    if let Ok(old) = state
        .plugins
        .get(&connection.plugin, &connection.plugin_version)
        .await
    {
        old.evict(&connection.name);
    }
    tracing::info!(connection = %connection.name, plugin = %connection.plugin, from = %connection.plugin_version, to = %package.version, action, "connection plugin version changed");
    existing(state, &connection.name).await
}

/// Like [`check_settings`] for a connection that exists: its secrets are sealed, so only their
/// names are checked against the new version's schema.
fn check_settings_names(package: &PackageInfo, connection: &Connection) -> ApiResult<()> {
    let secret_names: Vec<String> = connection.sealed_secrets.keys().cloned().collect();
    package
        .manifest
        .validate_sealed(&connection.settings, &secret_names)
        .map_err(|problems| {
            ApiError::Unprocessable(format!(
                "the connection's settings do not fit plugin `{}` version {}: {}",
                package.name,
                package.version,
                problems.join("; ")
            ))
        })
}

/// Runs a candidate version beside the pinned one on live traffic (see `shadow`).
pub async fn set_shadow(
    state: &Services,
    name: &str,
    version: Option<&str>,
) -> ApiResult<Connection> {
    let connection = existing(state, name).await?;
    if let Some(version) = version {
        let package = pinnable(state, &connection.plugin, Some(version)).await?;
        if package.version == connection.plugin_version {
            return Err(ApiError::Conflict(format!(
                "connection `{name}` already runs {} {}: shadow another version",
                connection.plugin, package.version
            )));
        }
        state
            .plugins
            .get(&package.name, &package.version)
            .await
            .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    }
    let mut tx = state.db.begin().await?;
    store::set_shadow(&mut tx, &connection.id, version).await?;
    let action = if version.is_some() {
        "shadow-on"
    } else {
        "shadow-off"
    };
    store::record_history(
        &mut tx,
        &connection.id,
        action,
        connection.shadow_plugin_version.as_deref(),
        version,
    )
    .await?;
    tx.commit().await?;
    state.connection_cache.clear();
    existing(state, name).await
}

async fn upgrade_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
    Json(change): Json<VersionChange>,
) -> ApiResult<Json<ConnectionView>> {
    Ok(Json(
        upgrade(&state, &name, &change.version, change.settings)
            .await?
            .into(),
    ))
}

async fn rollback_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    Ok(Json(rollback(&state, &name).await?.into()))
}

async fn shadow_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
    Json(change): Json<VersionChange>,
) -> ApiResult<Json<ConnectionView>> {
    if change.settings.is_some() {
        return Err(ApiError::Unprocessable(
            "a shadow run uses the connection's settings; upgrade to change them".into(),
        ));
    }
    Ok(Json(
        set_shadow(&state, &name, Some(&change.version))
            .await?
            .into(),
    ))
}

async fn unshadow_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    Ok(Json(set_shadow(&state, &name, None).await?.into()))
}

async fn history_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<HistoryEntry>>> {
    let connection = existing(&state, &name).await?;
    Ok(Json(store::history(&state.db, &connection.id).await?))
}

async fn list_handler(State(state): State<Services>) -> ApiResult<Json<Vec<ConnectionView>>> {
    Ok(Json(
        store::list(&state.db)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

async fn get_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    let c = store::by_name(&state.db, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection named `{name}`")))?;
    Ok(Json(c.into()))
}

async fn create_handler(
    State(state): State<Services>,
    Json(new): Json<NewConnection>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let c = create(&state, new).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// `POST /connections/{name}/check`: the plugin checks the connection's settings and
/// credentials against the platform. 200 either way; `ok` says how it went.
async fn check_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let connection = existing(&state, &name).await?;
    let plugin = state
        .plugins
        .get(&connection.plugin, &connection.plugin_version)
        .await
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let ctx = std::sync::Arc::new(
        connection
            .context(&state.secrets, &plugin)
            .map_err(anyhow::Error::from)?,
    );
    Ok(Json(match plugin.check_connection(ctx).await {
        Ok(detail) => {
            serde_json::json!({ "ok": true, "plugin_version": plugin.version(), "detail": detail })
        }
        Err(failure) => {
            serde_json::json!({ "ok": false, "plugin_version": plugin.version(), "kind": failure.error.kind(), "error": failure.error.to_string() })
        }
    }))
}

/// A change to a connection: each field given replaces the current one; `secrets` are merged
/// (a secret given replaces the one of that name, a `null` removes it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionUpdate {
    pub settings: Option<BTreeMap<String, String>>,
    pub secrets: Option<BTreeMap<String, Option<String>>>,
    pub allowed_hosts: Option<Vec<String>>,
    pub allow_private_network: Option<bool>,
    pub enabled: Option<bool>,
}

/// Changes a connection's settings, secrets, hosts or state; checked against the schema of the
/// plugin version it runs (secrets by name: the stored ones are sealed).
pub async fn update(
    state: &Services,
    name: &str,
    change: ConnectionUpdate,
) -> ApiResult<Connection> {
    let mut connection = existing(state, name).await?;
    if let Some(settings) = change.settings {
        connection.settings = settings;
    }
    if let Some(secrets) = change.secrets {
        for (key, value) in secrets {
            match value {
                Some(value) => {
                    let sealed = state
                        .secrets
                        .seal(&secret_context(&connection.id, &key), &value);
                    connection.sealed_secrets.insert(key, sealed);
                }
                None => {
                    connection.sealed_secrets.remove(&key);
                }
            }
        }
    }
    if let Some(hosts) = change.allowed_hosts {
        check_hosts(&hosts)?;
        connection.allowed_hosts = hosts;
    }
    if let Some(allow) = change.allow_private_network {
        connection.allow_private_network = allow;
    }
    if let Some(enabled) = change.enabled {
        connection.enabled = enabled;
    }
    let package = state
        .plugins
        .package(&connection.plugin, &connection.plugin_version)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "plugin `{}` version {} is not installed",
                connection.plugin, connection.plugin_version
            ))
        })?;
    check_settings_names(&package, &connection)?;
    store::update(&state.db, &connection).await?;
    state.connection_cache.clear();
    tracing::info!(connection = %connection.name, "connection updated");
    existing(state, name).await
}

async fn update_handler(
    State(state): State<Services>,
    Path(name): Path<String>,
    Json(change): Json<ConnectionUpdate>,
) -> ApiResult<Json<ConnectionView>> {
    Ok(Json(update(&state, &name, change).await?.into()))
}
