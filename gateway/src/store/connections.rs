//! The `connections` table and its history (`connection_plugin_history`): each storefront,
//! supplier or carrier account with the plugin version it runs, its settings, its sealed secrets
//! and the hosts its plugin may call. What a connection may be changed to is `connections.rs`'s.

use crate::db::{Conn, Db, Tx, new_id, now_ms};
use daifa_plugin_host::PluginKind;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub name: String,
    pub kind: PluginKind,
    pub plugin: String,
    /// The version of the plugin the connection runs.
    pub plugin_version: String,
    /// The version it ran before its last upgrade (what a rollback returns to).
    pub previous_plugin_version: Option<String>,
    /// A candidate version parsing live traffic in shadow.
    pub shadow_plugin_version: Option<String>,
    pub settings: BTreeMap<String, String>,
    /// The settings it had before its last upgrade (restored by a rollback).
    pub previous_settings: Option<BTreeMap<String, String>>,
    /// Secret name → value sealed by [`SecretBox`] (opened only to call the plugin).
    pub sealed_secrets: BTreeMap<String, String>,
    pub allowed_hosts: Vec<String>,
    /// Whether the plugin may reach private, loopback and link-local addresses.
    pub allow_private_network: bool,
    pub enabled: bool,
    pub created_at_ms: i64,
}

impl Connection {
    fn from_row(row: &AnyRow) -> anyhow::Result<Self> {
        let kind: String = row.try_get("kind")?;
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            kind: PluginKind::parse(&kind)
                .ok_or_else(|| anyhow::anyhow!("unknown connection kind {kind}"))?,
            plugin: row.try_get("plugin")?,
            plugin_version: row
                .try_get::<Option<String>, _>("plugin_version")?
                .unwrap_or_default(),
            previous_plugin_version: row.try_get("previous_plugin_version")?,
            shadow_plugin_version: row.try_get("shadow_plugin_version")?,
            settings: serde_json::from_str(&row.try_get::<String, _>("settings")?)?,
            previous_settings: row
                .try_get::<Option<String>, _>("previous_settings")?
                .map(|s| serde_json::from_str(&s))
                .transpose()?,
            sealed_secrets: serde_json::from_str(&row.try_get::<String, _>("secrets")?)?,
            allowed_hosts: serde_json::from_str(&row.try_get::<String, _>("allowed_hosts")?)?,
            allow_private_network: row.try_get::<i64, _>("allow_private_network")? != 0,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

const COLUMNS: &str = "id, name, kind, plugin, plugin_version, previous_plugin_version, shadow_plugin_version, settings, previous_settings, secrets, allowed_hosts, allow_private_network, enabled, created_at_ms";

/// The connection of a name.
/// Whether `name` can name a connection: 1 to 64 characters of a-z, 0-9, `-` and `_` (it is
/// part of the hook url).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub async fn by_name(db: &Db, name: &str) -> anyhow::Result<Option<Connection>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from connections where name = $1"
    )))
    .bind(name)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(Connection::from_row).transpose()
}

/// The connection of an id.
pub async fn by_id(db: &Db, id: &str) -> anyhow::Result<Option<Connection>> {
    by_id_through(&mut *db.pool.acquire().await?, id).await
}

/// A connection by id, read through `conn` (a transaction's, so that a caller holding one
/// never waits for a second from the pool: with every pooled connection held that way, none
/// would come).
async fn by_id_through(conn: &mut Conn, id: &str) -> anyhow::Result<Option<Connection>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from connections where id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(Connection::from_row).transpose()
}

/// Connections kept in memory for the paths that read one for each request: a webhook's
/// connection by its name, a job's by its id; cleared by `connections.rs` after each change
/// (see [`crate::cache`]).
pub struct Cache(crate::cache::Cache<Key, Connection>);

#[derive(PartialEq, Eq, Hash)]
enum Key {
    Id(String),
    Name(String),
}

impl Cache {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self(crate::cache::Cache::new(ttl))
    }

    /// The connection of a name, from memory when it was read less than `ttl` ago.
    pub async fn by_name(&self, db: &Db, name: &str) -> anyhow::Result<Option<Connection>> {
        self.get(Key::Name(name.to_string()), by_name(db, name))
            .await
    }

    /// The connection of an id, from memory when it was read less than `ttl` ago.
    pub async fn by_id(&self, db: &Db, id: &str) -> anyhow::Result<Option<Connection>> {
        self.get(Key::Id(id.to_string()), by_id(db, id)).await
    }

    /// The connection of an id, from memory, or else read through `conn` (a caller holding a
    /// connection or a transaction must not wait for a second one from the pool).
    pub async fn by_id_in(&self, conn: &mut Conn, id: &str) -> anyhow::Result<Option<Connection>> {
        self.get(Key::Id(id.to_string()), by_id_through(conn, id))
            .await
    }

    /// Forgets every connection read: one changed (call it after the change committed).
    pub fn clear(&self) {
        self.0.clear()
    }

    async fn get(
        &self,
        key: Key,
        read: impl std::future::Future<Output = anyhow::Result<Option<Connection>>>,
    ) -> anyhow::Result<Option<Connection>> {
        if let Some(found) = self.0.get(&key) {
            return Ok(Some(found));
        }
        let since = self.0.generation();
        let connection = read.await?;
        if let Some(c) = &connection {
            self.0.keep(since, Key::Id(c.id.clone()), c.clone());
            self.0.keep(since, Key::Name(c.name.clone()), c.clone());
        }
        Ok(connection)
    }
}

/// A connection's name, read inside a transaction (a policy is chosen by the channel's name).
pub async fn name_in(tx: &mut Tx, id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("select name from connections where id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// The enabled carrier connections (every new shipment is registered with each).
pub async fn enabled_carriers(tx: &mut Tx) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select id from connections where kind = 'carrier' and enabled = 1 order by name",
    )
    .fetch_all(&mut **tx)
    .await
}

/// The plugin versions connections run (pinned or shadowed).
pub async fn plugin_versions_in_use(db: &Db) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query(
        "select distinct plugin, plugin_version from connections where plugin_version is not null",
    )
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("plugin")?, r.try_get("plugin_version")?)))
    .collect()
}

/// The connections that run or shadow a plugin version.
pub async fn using_version(db: &Db, plugin: &str, version: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select name from connections where plugin = $1 and (plugin_version = $2 or shadow_plugin_version = $2) order by name",
    )
    .bind(plugin)
    .bind(version)
    .fetch_all(&db.pool)
    .await
}

/// Plugins whose connections were made before plugins had versions.
pub async fn unpinned_plugins(db: &Db) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("select distinct plugin from connections where plugin_version is null")
        .fetch_all(&db.pool)
        .await
}

/// Pins the unversioned connections of a plugin to a version; how many there were.
pub async fn pin_unpinned(db: &Db, plugin: &str, version: &str) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "update connections set plugin_version = $1 where plugin = $2 and plugin_version is null",
    )
    .bind(version)
    .bind(plugin)
    .execute(&db.pool)
    .await?
    .rows_affected())
}

/// Every connection, by name.
pub async fn list(db: &Db) -> anyhow::Result<Vec<Connection>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {COLUMNS} from connections order by name"
    )))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(Connection::from_row).collect()
}

/// Records a new connection (enabled).
pub async fn insert(db: &Db, connection: &Connection) -> anyhow::Result<()> {
    sqlx::query(
        "insert into connections (id, name, kind, plugin, plugin_version, settings, secrets, allowed_hosts, allow_private_network, enabled, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&connection.id)
    .bind(&connection.name)
    .bind(connection.kind.as_str())
    .bind(&connection.plugin)
    .bind(&connection.plugin_version)
    .bind(serde_json::to_string(&connection.settings)?)
    .bind(serde_json::to_string(&connection.sealed_secrets)?)
    .bind(serde_json::to_string(&connection.allowed_hosts)?)
    .bind(i64::from(connection.allow_private_network))
    .bind(1i64)
    .bind(connection.created_at_ms)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Stores a connection's settings, sealed secrets, hosts and state.
pub async fn update(db: &Db, connection: &Connection) -> anyhow::Result<()> {
    sqlx::query(
        "update connections set settings = $1, secrets = $2, allowed_hosts = $3, allow_private_network = $4, enabled = $5 where id = $6",
    )
    .bind(serde_json::to_string(&connection.settings)?)
    .bind(serde_json::to_string(&connection.sealed_secrets)?)
    .bind(serde_json::to_string(&connection.allowed_hosts)?)
    .bind(i64::from(connection.allow_private_network))
    .bind(i64::from(connection.enabled))
    .bind(&connection.id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Moves a connection from the version it runs (`from`, a compare-and-set) to `to`, with the
/// settings `to` runs with; the version and settings it leaves are kept for a rollback, and a
/// shadow run of `to` ends. Whether it moved (false: it changed version meanwhile).
pub async fn switch_version(
    tx: &mut Tx,
    id: &str,
    from: &str,
    to: &str,
    settings: &BTreeMap<String, String>,
    previous_settings: &BTreeMap<String, String>,
) -> anyhow::Result<bool> {
    let changed = sqlx::query(
        "update connections set plugin_version = $1, previous_plugin_version = $2, settings = $4, previous_settings = $5, \
         shadow_plugin_version = case when shadow_plugin_version = $1 then null else shadow_plugin_version end \
         where id = $3 and plugin_version = $2",
    )
    .bind(to)
    .bind(from)
    .bind(id)
    .bind(serde_json::to_string(settings)?)
    .bind(serde_json::to_string(previous_settings)?)
    .execute(&mut **tx)
    .await?;
    Ok(changed.rows_affected() > 0)
}

/// Sets (or, with `None`, ends) the version a connection runs in shadow.
pub async fn set_shadow(tx: &mut Tx, id: &str, version: Option<&str>) -> sqlx::Result<()> {
    sqlx::query("update connections set shadow_plugin_version = $1 where id = $2")
        .bind(version)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One change of a connection's plugin version (`upgrade`, `rollback`, `shadow-on`, …).
#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    pub action: String,
    pub from_version: Option<String>,
    pub to_version: Option<String>,
    pub at_ms: i64,
}

/// Records a change of a connection's plugin version.
pub async fn record_history(
    tx: &mut Tx,
    connection_id: &str,
    action: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into connection_plugin_history (id, connection_id, action, from_version, to_version, at_ms) values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id("cph"))
    .bind(connection_id)
    .bind(action)
    .bind(from)
    .bind(to)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A connection's changes of plugin version, oldest first.
pub async fn history(db: &Db, connection_id: &str) -> sqlx::Result<Vec<HistoryEntry>> {
    sqlx::query(
        "select action, from_version, to_version, at_ms from connection_plugin_history where connection_id = $1 order by at_ms, id",
    )
    .bind(connection_id)
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok(HistoryEntry {
            action: r.try_get("action")?,
            from_version: r.try_get("from_version")?,
            to_version: r.try_get("to_version")?,
            at_ms: r.try_get("at_ms")?,
        })
    })
    .collect()
}
