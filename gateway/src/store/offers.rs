//! What each supplier offers for a storefront SKU, what the shop knows of its products, and
//! the notices raised on suppliers' catalogue changes. This module owns the `offers`,
//! `products`, `notices` and `sku_mappings` tables; offers and notices are read with their
//! connections' names.

use crate::db::{Conn, Db, Tx, new_id, now_ms, placeholders};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::{BTreeMap, HashMap};

/// A supplier's offer of a storefront SKU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    pub id: String,
    pub channel_connection_id: String,
    /// The channel connection's name.
    pub channel: String,
    pub storefront_sku: String,
    pub supplier_connection_id: String,
    /// The supplier connection's name.
    pub supplier: String,
    pub supplier_sku: String,
    /// One unit's cost and shipping, in `currency`'s minor unit.
    pub unit_cost_minor: Option<i64>,
    pub shipping_cost_minor: Option<i64>,
    pub currency: Option<String>,
    pub stock: Option<i64>,
    pub lead_time_days: Option<i64>,
    pub ships_to: Vec<String>,
    pub carriers: Vec<String>,
    pub capabilities: Vec<String>,
    pub priority: i64,
    pub enabled: bool,
    pub discontinued: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What the shop knows of a storefront SKU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub category: Option<String>,
    pub brand: Option<String>,
    pub weight_grams: Option<i64>,
}

const OFFER_SELECT: &str = "select o.id, o.channel_connection_id, ch.name as channel, o.storefront_sku, o.supplier_connection_id, \
     su.name as supplier, o.supplier_sku, o.unit_cost_minor, o.shipping_cost_minor, o.currency, o.stock, o.lead_time_days, \
     o.ships_to, o.carriers, o.capabilities, o.priority, o.enabled, o.discontinued, o.created_at_ms, o.updated_at_ms \
     from offers o join connections ch on ch.id = o.channel_connection_id join connections su on su.id = o.supplier_connection_id";

fn offer_from_row(r: &AnyRow) -> anyhow::Result<Offer> {
    let list = |name: &str| -> anyhow::Result<Vec<String>> {
        Ok(serde_json::from_str(&r.try_get::<String, _>(name)?)?)
    };
    Ok(Offer {
        id: r.try_get("id")?,
        channel_connection_id: r.try_get("channel_connection_id")?,
        channel: r.try_get("channel")?,
        storefront_sku: r.try_get("storefront_sku")?,
        supplier_connection_id: r.try_get("supplier_connection_id")?,
        supplier: r.try_get("supplier")?,
        supplier_sku: r.try_get("supplier_sku")?,
        unit_cost_minor: r.try_get("unit_cost_minor")?,
        shipping_cost_minor: r.try_get("shipping_cost_minor")?,
        currency: r.try_get("currency")?,
        stock: r.try_get("stock")?,
        lead_time_days: r.try_get("lead_time_days")?,
        ships_to: list("ships_to")?,
        carriers: list("carriers")?,
        capabilities: list("capabilities")?,
        priority: r.try_get("priority")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        discontinued: r.try_get::<i64, _>("discontinued")? != 0,
        created_at_ms: r.try_get("created_at_ms")?,
        updated_at_ms: r.try_get("updated_at_ms")?,
    })
}

fn offers_from_rows(rows: &[AnyRow]) -> anyhow::Result<Vec<Offer>> {
    rows.iter().map(offer_from_row).collect()
}

/// The offers of `skus` for a channel connection, in one query, by SKU then priority.
pub async fn for_skus(
    conn: &mut Conn,
    channel_connection_id: &str,
    skus: &[&str],
) -> anyhow::Result<Vec<Offer>> {
    if skus.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{OFFER_SELECT} where o.channel_connection_id = $1 and o.storefront_sku in ({}) order by o.storefront_sku, o.priority, o.id",
        placeholders(2, skus.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(channel_connection_id);
    for sku in skus {
        query = query.bind(*sku);
    }
    offers_from_rows(&query.fetch_all(&mut *conn).await?)
}

/// What the shop knows of `skus`, by SKU.
pub async fn products_for(
    conn: &mut Conn,
    channel_connection_id: &str,
    skus: &[&str],
) -> anyhow::Result<BTreeMap<String, Product>> {
    if skus.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sql = format!(
        "select storefront_sku, category, brand, weight_grams from products where channel_connection_id = $1 and storefront_sku in ({})",
        placeholders(2, skus.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(channel_connection_id);
    for sku in skus {
        query = query.bind(*sku);
    }
    query
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("storefront_sku")?,
                Product {
                    category: r.try_get("category")?,
                    brand: r.try_get("brand")?,
                    weight_grams: r.try_get("weight_grams")?,
                },
            ))
        })
        .collect()
}

/// An offer to store, its connections by id and its amounts in minor units.
pub struct NewOffer<'a> {
    pub channel_connection_id: &'a str,
    pub storefront_sku: &'a str,
    pub supplier_connection_id: &'a str,
    pub supplier_sku: &'a str,
    pub unit_cost_minor: Option<i64>,
    pub shipping_cost_minor: Option<i64>,
    pub currency: Option<&'a str>,
    pub stock: Option<i64>,
    pub lead_time_days: Option<i64>,
    pub ships_to: &'a [String],
    pub carriers: &'a [String],
    pub capabilities: &'a [String],
    pub priority: i64,
    pub enabled: bool,
    pub discontinued: bool,
}

/// Stores an offer: a new one, or the same four keys' again, replaced (its id and creation
/// time kept).
pub async fn upsert(tx: &mut Tx, offer: &NewOffer<'_>, now_ms: i64) -> anyhow::Result<()> {
    sqlx::query(
        "insert into offers (id, channel_connection_id, storefront_sku, supplier_connection_id, supplier_sku, unit_cost_minor, \
         shipping_cost_minor, currency, stock, lead_time_days, ships_to, carriers, capabilities, priority, enabled, discontinued, \
         created_at_ms, updated_at_ms) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) \
         on conflict (channel_connection_id, storefront_sku, supplier_connection_id, supplier_sku) do update set \
         unit_cost_minor = excluded.unit_cost_minor, shipping_cost_minor = excluded.shipping_cost_minor, currency = excluded.currency, \
         stock = excluded.stock, lead_time_days = excluded.lead_time_days, ships_to = excluded.ships_to, carriers = excluded.carriers, \
         capabilities = excluded.capabilities, priority = excluded.priority, enabled = excluded.enabled, \
         discontinued = excluded.discontinued, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(new_id("off"))
    .bind(offer.channel_connection_id)
    .bind(offer.storefront_sku)
    .bind(offer.supplier_connection_id)
    .bind(offer.supplier_sku)
    .bind(offer.unit_cost_minor)
    .bind(offer.shipping_cost_minor)
    .bind(offer.currency)
    .bind(offer.stock)
    .bind(offer.lead_time_days)
    .bind(serde_json::to_string(offer.ships_to)?)
    .bind(serde_json::to_string(offer.carriers)?)
    .bind(serde_json::to_string(offer.capabilities)?)
    .bind(offer.priority)
    .bind(i64::from(offer.enabled))
    .bind(i64::from(offer.discontinued))
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores what the shop knows of a storefront SKU; a fact left unset keeps the one stored.
pub async fn upsert_product(
    tx: &mut Tx,
    channel_connection_id: &str,
    storefront_sku: &str,
    product: &Product,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into products (channel_connection_id, storefront_sku, category, brand, weight_grams, updated_at_ms) \
         values ($1, $2, $3, $4, $5, $6) on conflict (channel_connection_id, storefront_sku) do update set \
         category = coalesce(excluded.category, products.category), brand = coalesce(excluded.brand, products.brand), \
         weight_grams = coalesce(excluded.weight_grams, products.weight_grams), updated_at_ms = excluded.updated_at_ms",
    )
    .bind(channel_connection_id)
    .bind(storefront_sku)
    .bind(&product.category)
    .bind(&product.brand)
    .bind(product.weight_grams)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every offer, by channel, SKU, priority, supplier and supplier SKU.
pub async fn all(db: &Db) -> anyhow::Result<Vec<Offer>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{OFFER_SELECT} order by ch.name, o.storefront_sku, o.priority, su.name, o.supplier_sku"
    )))
    .fetch_all(&db.pool)
    .await?;
    offers_from_rows(&rows)
}

/// What the shop knows of every storefront SKU, by channel connection id and SKU.
pub async fn all_products(db: &Db) -> sqlx::Result<HashMap<(String, String), Product>> {
    sqlx::query(
        "select channel_connection_id, storefront_sku, category, brand, weight_grams from products",
    )
    .fetch_all(&db.pool)
    .await?
    .iter()
    .map(|r| {
        Ok((
            (
                r.try_get("channel_connection_id")?,
                r.try_get("storefront_sku")?,
            ),
            Product {
                category: r.try_get("category")?,
                brand: r.try_get("brand")?,
                weight_grams: r.try_get("weight_grams")?,
            },
        ))
    })
    .collect()
}

/// The offers of a supplier's SKU, whatever the channel.
pub async fn of_supplier_sku(
    tx: &mut Tx,
    supplier_connection_id: &str,
    supplier_sku: &str,
) -> anyhow::Result<Vec<Offer>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{OFFER_SELECT} where o.supplier_connection_id = $1 and o.supplier_sku = $2"
    )))
    .bind(supplier_connection_id)
    .bind(supplier_sku)
    .fetch_all(&mut **tx)
    .await?;
    offers_from_rows(&rows)
}

/// A supplier's change to its offers of one SKU: what is set replaces what is stored, and
/// `discontinued` is never undone.
pub struct SupplierChange<'a> {
    pub unit_cost_minor: Option<i64>,
    pub currency: Option<&'a str>,
    pub stock: Option<i64>,
    pub lead_time_days: Option<i64>,
    pub discontinued: bool,
}

/// Applies a supplier's change to every offer of its SKU.
pub async fn apply_supplier_change(
    tx: &mut Tx,
    supplier_connection_id: &str,
    supplier_sku: &str,
    change: &SupplierChange<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update offers set unit_cost_minor = coalesce($1, unit_cost_minor), currency = coalesce($2, currency), \
         stock = coalesce($3, stock), lead_time_days = coalesce($4, lead_time_days), \
         discontinued = case when $5 = 1 then 1 else discontinued end, updated_at_ms = $6 \
         where supplier_connection_id = $7 and supplier_sku = $8",
    )
    .bind(change.unit_cost_minor)
    .bind(change.currency)
    .bind(change.stock)
    .bind(change.lead_time_days)
    .bind(i64::from(change.discontinued))
    .bind(now_ms())
    .bind(supplier_connection_id)
    .bind(supplier_sku)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Offers by the names of their channel and supplier and by storefront SKU, each filter
/// unless none.
pub async fn list(
    db: &Db,
    channel: Option<&str>,
    storefront_sku: Option<&str>,
    supplier: Option<&str>,
) -> anyhow::Result<Vec<Offer>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{OFFER_SELECT} where ($1 = '' or ch.name = $1) and ($2 = '' or o.storefront_sku = $2) and ($3 = '' or su.name = $3) \
         order by ch.name, o.storefront_sku, o.priority, su.name"
    )))
    .bind(channel.unwrap_or(""))
    .bind(storefront_sku.unwrap_or(""))
    .bind(supplier.unwrap_or(""))
    .fetch_all(&db.pool)
    .await?;
    offers_from_rows(&rows)
}

/// An offer by id.
pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<Offer>> {
    let row = sqlx::query(AssertSqlSafe(format!("{OFFER_SELECT} where o.id = $1")))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(offer_from_row).transpose()
}

/// The offer of its four keys: channel, storefront SKU, supplier and supplier SKU.
pub async fn by_keys(
    db: &Db,
    channel_connection_id: &str,
    storefront_sku: &str,
    supplier_connection_id: &str,
    supplier_sku: &str,
) -> anyhow::Result<Offer> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "{OFFER_SELECT} where o.channel_connection_id = $1 and o.storefront_sku = $2 and o.supplier_connection_id = $3 and o.supplier_sku = $4"
    )))
    .bind(channel_connection_id)
    .bind(storefront_sku)
    .bind(supplier_connection_id)
    .bind(supplier_sku)
    .fetch_one(&db.pool)
    .await?;
    offer_from_row(&row)
}

/// Deletes an offer; false when there was none by that id.
pub async fn delete(db: &Db, id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("delete from offers where id = $1")
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// The categories of storefront SKUs that have one, in one statement.
pub async fn categories_of(
    conn: &mut Conn,
    channel_connection_id: &str,
    storefront_skus: &[&str],
) -> sqlx::Result<HashMap<String, String>> {
    if storefront_skus.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "select storefront_sku, category from products where channel_connection_id = $1 and category is not null \
         and storefront_sku in ({})",
        placeholders(2, storefront_skus.len())
    );
    let mut query =
        sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql)).bind(channel_connection_id);
    for sku in storefront_skus {
        query = query.bind(*sku);
    }
    Ok(query.fetch_all(&mut *conn).await?.into_iter().collect())
}

/// An offer's unit cost and its currency.
pub async fn cost_of(
    conn: &mut Conn,
    offer_id: &str,
) -> sqlx::Result<Option<(Option<i64>, Option<String>)>> {
    let row = sqlx::query("select unit_cost_minor, currency from offers where id = $1")
        .bind(offer_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| Ok((r.try_get("unit_cost_minor")?, r.try_get("currency")?)))
        .transpose()
}

/// A notice to raise for the shop.
pub struct NewNotice<'a> {
    pub kind: &'a str,
    pub offer_id: Option<&'a str>,
    pub supplier_connection_id: &'a str,
    pub supplier_sku: &'a str,
    pub detail: &'a Value,
}

/// Records a notice, open until the shop acknowledges it.
pub async fn insert_notice(tx: &mut Tx, notice: &NewNotice<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "insert into notices (id, kind, offer_id, supplier_connection_id, supplier_sku, detail, created_at_ms) values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id("ntc"))
    .bind(notice.kind)
    .bind(notice.offer_id)
    .bind(notice.supplier_connection_id)
    .bind(notice.supplier_sku)
    .bind(notice.detail.to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A notice, with its supplier's name.
#[derive(Debug, Serialize)]
pub struct Notice {
    pub id: String,
    pub kind: String,
    pub offer_id: Option<String>,
    pub supplier: String,
    pub supplier_sku: String,
    pub detail: Value,
    pub created_at_ms: i64,
    pub acknowledged_at_ms: Option<i64>,
}

/// The latest notices, newest first, at most 500: the open ones, or all when `all`.
pub async fn notices(db: &Db, all: bool) -> sqlx::Result<Vec<Notice>> {
    let rows = sqlx::query(
        "select n.id, n.kind, n.offer_id, c.name as supplier, n.supplier_sku, n.detail, n.created_at_ms, n.acknowledged_at_ms \
         from notices n join connections c on c.id = n.supplier_connection_id \
         where ($1 = 1 or n.acknowledged_at_ms is null) order by n.created_at_ms desc, n.id desc limit 500",
    )
    .bind(i64::from(all))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Notice {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                offer_id: r.try_get("offer_id")?,
                supplier: r.try_get("supplier")?,
                supplier_sku: r.try_get("supplier_sku")?,
                detail: serde_json::from_str::<Value>(&r.try_get::<String, _>("detail")?)
                    .unwrap_or(Value::Null),
                created_at_ms: r.try_get("created_at_ms")?,
                acknowledged_at_ms: r.try_get("acknowledged_at_ms")?,
            })
        })
        .collect()
}

/// Acknowledges an open notice; false when there is no open notice by that id.
pub async fn acknowledge_notice(db: &Db, id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "update notices set acknowledged_at_ms = $1 where id = $2 and acknowledged_at_ms is null",
    )
    .bind(now_ms())
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(r.rows_affected() > 0)
}
