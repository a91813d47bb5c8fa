//! The `plugin_packages` table: every installed version of every plugin, with its component's
//! bytes, so that each gateway process sees the same packages. What a package is (its manifest,
//! its compiled component) is the plugin registry's (`plugins.rs`).

use crate::db::{Db, Tx};
use sqlx::Row;
use sqlx::any::AnyRow;

/// An installed package as stored, its manifest as TOML text.
pub struct PackageRow {
    pub name: String,
    pub version: String,
    pub kind: String,
    pub wit_version: String,
    pub digest: String,
    pub source: String,
    pub enabled: bool,
    pub installed_at_ms: i64,
    pub size_bytes: i64,
    pub manifest_toml: String,
}

const COLUMNS: &str = "name, version, kind, wit_version, digest, source, enabled, installed_at_ms, manifest, cast(length(package) as bigint) as size_bytes";

impl PackageRow {
    fn from_row(row: &AnyRow) -> sqlx::Result<Self> {
        Ok(Self {
            name: row.try_get("name")?,
            version: row.try_get("version")?,
            kind: row.try_get("kind")?,
            wit_version: row.try_get("wit_version")?,
            digest: row.try_get("digest")?,
            source: row.try_get("source")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            installed_at_ms: row.try_get("installed_at_ms")?,
            size_bytes: row.try_get("size_bytes")?,
            manifest_toml: row.try_get("manifest")?,
        })
    }
}

/// A package to record.
pub struct NewPackage<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub wit_version: String,
    pub digest: &'a str,
    pub manifest_toml: &'a str,
    pub package: Vec<u8>,
    pub source: &'a str,
    pub installed_at_ms: i64,
    pub polling: bool,
    pub poll_interval_ms: Option<i64>,
}

/// Records a package, replacing a bundled one of the same name and version; another package
/// already recorded under them stays. Whether this one was recorded.
pub async fn install(tx: &mut Tx, package: NewPackage<'_>) -> sqlx::Result<bool> {
    sqlx::query(
        "delete from plugin_packages where name = $1 and version = $2 and source = 'bundled'",
    )
    .bind(package.name)
    .bind(package.version)
    .execute(&mut **tx)
    .await?;
    let inserted = sqlx::query(
        "insert into plugin_packages (name, version, kind, wit_version, digest, manifest, package, source, enabled, installed_at_ms, polling, poll_interval_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11) on conflict (name, version) do nothing",
    )
    .bind(package.name)
    .bind(package.version)
    .bind(package.kind)
    .bind(package.wit_version)
    .bind(package.digest)
    .bind(package.manifest_toml)
    .bind(package.package)
    .bind(package.source)
    .bind(package.installed_at_ms)
    .bind(i64::from(package.polling))
    .bind(package.poll_interval_ms)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() > 0)
}

/// A package's manifest (TOML) and component bytes.
pub async fn component(
    db: &Db,
    name: &str,
    version: &str,
) -> sqlx::Result<Option<(String, Vec<u8>)>> {
    let row = sqlx::query(
        "select manifest, package from plugin_packages where name = $1 and version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| Ok((r.try_get("manifest")?, r.try_get("package")?)))
        .transpose()
}

/// One installed version.
pub async fn get(db: &Db, name: &str, version: &str) -> sqlx::Result<Option<PackageRow>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from plugin_packages where name = $1 and version = $2"
    )))
    .bind(name)
    .bind(version)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(PackageRow::from_row).transpose()
}

/// Every installed version, in no order.
pub async fn all(db: &Db) -> sqlx::Result<Vec<PackageRow>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from plugin_packages"
    )))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(PackageRow::from_row).collect()
}

/// Enables or disables a version.
pub async fn set_enabled(db: &Db, name: &str, version: &str, enabled: bool) -> sqlx::Result<()> {
    sqlx::query("update plugin_packages set enabled = $1 where name = $2 and version = $3")
        .bind(i64::from(enabled))
        .bind(name)
        .bind(version)
        .execute(&db.pool)
        .await?;
    Ok(())
}
