//! Policies: the handbooks' numbered rules as data (their documents, defaults and checks are in
//! the `daifa-inputs` crate, `gateway/inputs/src/policy.rs`, re-exported here). What the operator
//! stores (`PUT /api/v1/policies/{name}`, for every channel, one channel or one category) is
//! merged over the defaults: the global document, then the channel's, then the category's. The
//! documents are kept in the `policies` table (`store/policies.rs`) and read through a cache.

use crate::cache::{Cache, Generation};
use crate::db::Db;
use crate::error::{ApiError, ApiResult};
use crate::store::policies;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::get;
pub use daifa_inputs::policy::*;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Where a stored document applies, from the widest: every channel, one channel connection (by
/// name), one product category. A narrower document is merged over the wider ones.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Scope {
    pub channel: Option<String>,
    pub category: Option<String>,
}

impl Scope {
    pub fn channel(channel: &str) -> Self {
        Self {
            channel: Some(channel.to_string()),
            category: None,
        }
    }

    /// The keys of the stored documents that apply, widest first.
    fn keys(&self) -> Vec<String> {
        let mut keys = vec!["global".to_string()];
        keys.extend(self.channel.as_ref().map(|c| format!("channel:{c}")));
        keys.extend(self.category.as_ref().map(|c| format!("category:{c}")));
        keys
    }

    /// The key of the document a `PUT` with this scope stores (its narrowest).
    fn key(&self) -> String {
        self.keys().pop().unwrap_or_else(|| "global".into())
    }
}

/// The defaults with the stored documents of `keys` merged over them, in order; `last`, when
/// given, replaces the document of the last key (a `PUT` being checked).
async fn merged<P: Policy>(
    conn: &mut sqlx::AnyConnection,
    keys: &[String],
    last: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut value = serde_json::to_value(P::default())?;
    // Every stored document of the scope in one read (a policy is read for each order).
    let mut stored = policies::get_many(conn, P::NAME, keys).await?;
    for (i, key) in keys.iter().enumerate() {
        let document = match last {
            Some(d) if i + 1 == keys.len() => Some(d.clone()),
            _ => stored.remove(key),
        };
        if let Some(document) = document {
            merge(&mut value, &document);
        }
    }
    Ok(value)
}

/// The policy in force for a channel connection (or for all of them): the defaults, the global
/// document, the channel's. Read on `conn`, so that a transaction sees its own changes.
pub async fn effective<P: Policy>(
    conn: &mut sqlx::AnyConnection,
    channel: Option<&str>,
) -> anyhow::Result<P> {
    let scope = Scope {
        channel: channel.map(str::to_string),
        category: None,
    };
    in_scope(conn, &scope).await
}

/// Policies in force by scope, kept in memory for the ingest and dispatch paths (a policy is
/// read for each order and each push), cleared by `PUT /policies` (see [`crate::cache`]).
pub struct PolicyCache(Cache<(&'static str, Vec<String>), Value>);

/// Reads policies through a [`PolicyCache`] for one transaction, taken before it began (what
/// a snapshot older than a change read is not kept).
#[derive(Clone, Copy)]
pub struct PolicyReader<'a> {
    cache: &'a PolicyCache,
    since: Generation,
}

impl PolicyReader<'_> {
    /// The policy in force in `scope`, from memory when it was read less than `ttl` ago.
    pub async fn in_scope<P: Policy>(
        &self,
        conn: &mut sqlx::AnyConnection,
        scope: &Scope,
    ) -> anyhow::Result<P> {
        let key = (P::NAME, scope.keys());
        let value = match self.cache.0.get(&key) {
            Some(value) => value,
            None => {
                let value = merged::<P>(conn, &key.1, None).await?;
                self.cache.0.keep(self.since, key, value.clone());
                value
            }
        };
        Ok(serde_json::from_value(value)?)
    }
}

impl PolicyCache {
    pub fn new(ttl: Duration) -> Self {
        Self(Cache::new(ttl))
    }

    /// A reader for a transaction that has not begun yet.
    pub fn reader(&self) -> PolicyReader<'_> {
        PolicyReader {
            cache: self,
            since: self.0.generation(),
        }
    }

    /// Forgets every policy read: one changed.
    pub fn clear(&self) {
        self.0.clear()
    }
}

/// The policy in force in a scope (a channel, a product category).
pub async fn in_scope<P: Policy>(
    conn: &mut sqlx::AnyConnection,
    scope: &Scope,
) -> anyhow::Result<P> {
    Ok(serde_json::from_value(
        merged::<P>(conn, &scope.keys(), None).await?,
    )?)
}

fn check_name(name: &str) -> ApiResult<()> {
    if NAMES.contains(&name) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "no policy `{name}` (there is: {})",
            NAMES.join(", ")
        )))
    }
}

/// The policy in force with `last` as the scope's document, checked: its JSON form, or the
/// first problem.
async fn checked(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    scope: &Scope,
    last: Option<&Value>,
) -> ApiResult<Value> {
    let keys = scope.keys();
    let value = match name {
        RoutingPolicy::NAME => merged::<RoutingPolicy>(conn, &keys, last).await?,
        AfterSalesPolicy::NAME => merged::<AfterSalesPolicy>(conn, &keys, last).await?,
        _ => return Err(ApiError::NotFound(format!("no policy `{name}`"))),
    };
    check(name, value).map_err(|e| ApiError::Unprocessable(format!("policy `{name}`: {e}")))
}

/// The document in force with every default filled in, and what is stored for the scope.
async fn describe(db: &Db, name: &str, scope: &Scope) -> ApiResult<Value> {
    let mut conn = db.pool.acquire().await?;
    let effective = checked(&mut conn, name, scope, None).await?;
    let stored = policies::get(&mut conn, name, &scope.key()).await?;
    Ok(json!({ "name": name, "scope": scope.key(), "effective": effective, "stored": stored }))
}

async fn get_handler(
    State(db): State<Db>,
    Path(name): Path<String>,
    Query(scope): Query<Scope>,
) -> ApiResult<Json<Value>> {
    check_name(&name)?;
    Ok(Json(describe(&db, &name, &scope).await?))
}

/// Stores the scope's document (a partial one: what it changes), after checking that the policy
/// in force with it is valid: 422 with the first problem otherwise.
async fn put_handler(
    State(db): State<Db>,
    State(cache): State<Arc<PolicyCache>>,
    Path(name): Path<String>,
    Query(scope): Query<Scope>,
    Json(document): Json<Value>,
) -> ApiResult<Json<Value>> {
    check_name(&name)?;
    if !document.is_object() {
        return Err(ApiError::Unprocessable(
            "a policy document is a JSON object".into(),
        ));
    }
    checked(
        &mut *db.pool.acquire().await?,
        &name,
        &scope,
        Some(&document),
    )
    .await?;
    let key = scope.key();
    policies::put(&mut *db.pool.acquire().await?, &name, &key, &document).await?;
    cache.clear();
    tracing::info!(policy = %name, scope = %key, "policy changed");
    Ok(Json(describe(&db, &name, &scope).await?))
}

/// `GET` and `PUT /policies/{name}`, for any application state that gives the database.
pub fn router<S>() -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
    Db: axum::extract::FromRef<S>,
    Arc<PolicyCache>: axum::extract::FromRef<S>,
{
    axum::Router::new().route("/policies/{name}", get(get_handler).put(put_handler))
}
