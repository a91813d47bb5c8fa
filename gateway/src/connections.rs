//! Connections: one storefront or supplier account, served by a plugin, with its settings,
//! secrets and the hosts its plugin may call. This module owns the `connections` table.

use crate::app::AppState;
use crate::db::{Db, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::secrets::{SecretBox, SecretError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use daifa_plugin_host::{ConnectionContext, PluginKind};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub name: String,
    pub kind: PluginKind,
    pub plugin: String,
    pub settings: BTreeMap<String, String>,
    /// Secret name → value sealed by [`SecretBox`] (opened only to call the plugin).
    pub sealed_secrets: BTreeMap<String, String>,
    pub allowed_hosts: Vec<String>,
    /// Whether the plugin may reach private, loopback and link-local addresses.
    pub allow_private_network: bool,
    pub enabled: bool,
    pub created_at_ms: i64,
}

/// What a sealed secret is bound to: its connection and name.
fn secret_context(connection_id: &str, name: &str) -> String {
    format!("{connection_id}/{name}")
}

impl Connection {
    /// What the plugin sees of this connection during a call, secrets opened.
    pub fn context(&self, secrets: &SecretBox) -> Result<ConnectionContext, SecretError> {
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
            connection: self.name.clone(),
            settings: self.settings.clone(),
            secrets: opened,
            allowed_hosts: self.allowed_hosts.clone(),
            allow_private_network: self.allow_private_network,
        })
    }

    fn from_row(row: &AnyRow) -> anyhow::Result<Self> {
        let kind: String = row.try_get("kind")?;
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            kind: parse_kind(&kind)
                .ok_or_else(|| anyhow::anyhow!("unknown connection kind {kind}"))?,
            plugin: row.try_get("plugin")?,
            settings: serde_json::from_str(&row.try_get::<String, _>("settings")?)?,
            sealed_secrets: serde_json::from_str(&row.try_get::<String, _>("secrets")?)?,
            allowed_hosts: serde_json::from_str(&row.try_get::<String, _>("allowed_hosts")?)?,
            allow_private_network: row.try_get::<i64, _>("allow_private_network")? != 0,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

fn parse_kind(s: &str) -> Option<PluginKind> {
    match s {
        "channel" => Some(PluginKind::Channel),
        "supplier" => Some(PluginKind::Supplier),
        _ => None,
    }
}

const COLUMNS: &str = "id, name, kind, plugin, settings, secrets, allowed_hosts, allow_private_network, enabled, created_at_ms";

pub async fn by_name(db: &Db, name: &str) -> anyhow::Result<Option<Connection>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from connections where name = $1"
    )))
    .bind(name)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(Connection::from_row).transpose()
}

pub async fn by_id(db: &Db, id: &str) -> anyhow::Result<Option<Connection>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from connections where id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(Connection::from_row).transpose()
}

pub async fn list(db: &Db) -> anyhow::Result<Vec<Connection>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from connections order by name"
    )))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(Connection::from_row).collect()
}

/// A connection to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    pub name: String,
    pub plugin: String,
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

pub async fn create(state: &AppState, new: NewConnection) -> ApiResult<Connection> {
    validate_name(&new.name)?;
    let plugin = state
        .plugins
        .get(&new.plugin)
        .ok_or_else(|| ApiError::Unprocessable(format!("unknown plugin `{}`", new.plugin)))?;
    for host in &new.allowed_hosts {
        if host.trim().is_empty() || host.contains('/') {
            return Err(ApiError::Unprocessable(format!(
                "allowed host `{host}` must be a host name, optionally with :port"
            )));
        }
    }
    if by_name(&state.db, &new.name).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "a connection named `{}` already exists",
            new.name
        )));
    }
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
        kind: plugin.kind(),
        plugin: new.plugin,
        settings: new.settings,
        sealed_secrets,
        allowed_hosts: new.allowed_hosts,
        allow_private_network: new.allow_private_network,
        enabled: true,
        created_at_ms: now_ms(),
    };
    sqlx::query(
        "insert into connections (id, name, kind, plugin, settings, secrets, allowed_hosts, allow_private_network, enabled, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&connection.id)
    .bind(&connection.name)
    .bind(connection.kind.as_str())
    .bind(&connection.plugin)
    .bind(serde_json::to_string(&connection.settings).map_err(anyhow::Error::from)?)
    .bind(serde_json::to_string(&connection.sealed_secrets).map_err(anyhow::Error::from)?)
    .bind(serde_json::to_string(&connection.allowed_hosts).map_err(anyhow::Error::from)?)
    .bind(i64::from(connection.allow_private_network))
    .bind(1i64)
    .bind(connection.created_at_ms)
    .execute(&state.db.pool)
    .await?;
    tracing::info!(connection = %connection.name, plugin = %connection.plugin, "connection created");
    Ok(connection)
}

fn validate_name(name: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
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
            settings: c.settings,
            secret_names: c.sealed_secrets.into_keys().collect(),
            allowed_hosts: c.allowed_hosts,
            allow_private_network: c.allow_private_network,
            enabled: c.enabled,
            created_at_ms: c.created_at_ms,
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/connections", get(list_handler).post(create_handler))
        .route("/connections/{name}", get(get_handler))
}

async fn list_handler(State(state): State<AppState>) -> ApiResult<Json<Vec<ConnectionView>>> {
    Ok(Json(
        list(&state.db).await?.into_iter().map(Into::into).collect(),
    ))
}

async fn get_handler(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ConnectionView>> {
    let c = by_name(&state.db, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no connection named `{name}`")))?;
    Ok(Json(c.into()))
}

async fn create_handler(
    State(state): State<AppState>,
    Json(new): Json<NewConnection>,
) -> ApiResult<(StatusCode, Json<ConnectionView>)> {
    let c = create(&state, new).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}
