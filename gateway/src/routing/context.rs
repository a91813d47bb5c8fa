//! One order as a stage works on it, loaded once: the stored order, its canonical copy, the
//! channel it came from, and the policies in force for it — the routing and the after-sales
//! policy of its channel and product category (the category of its first line that has one).
//! Every stage resolves policies the same way through it, so the shipping clocks, the service
//! clocks and the cases of one order follow the same rules. What concerns goods rather than the
//! order follows each line's own category: a case's return, exchange and warranty windows
//! ([`OrderContext::after_sales_of_lines`]), and which offers may ship a line
//! (`routing::load_lines` loads the routing policies of the lines' categories).

use crate::db::{Conn, Tx};
use crate::policy::{self, AfterSalesPolicy, PolicyReader, RoutingPolicy, Scope};
use crate::services::Services;
use crate::store::connections;
use crate::store::offers::{self, Product};
use crate::store::orders::{self, StoredOrder};
use daifa_plugin_host::Order;
use std::collections::{BTreeMap, HashMap};

pub struct OrderContext {
    pub order: StoredOrder,
    /// The order as the storefront last sent it.
    pub canonical: Order,
    /// The name of the channel connection the order came from ("" when it was deleted).
    pub channel_name: String,
    /// The order's product category, for the policies' scope.
    pub category: Option<String>,
    pub routing: RoutingPolicy,
    pub after_sales: AfterSalesPolicy,
    /// What the shop knows of every SKU of the order's lines, when the context read it to find
    /// the category (a fresh order's: routing takes it rather than reading it again).
    pub products: Option<BTreeMap<String, Product>>,
}

/// An order read already, with what its context needs of it: its canonical copy parsed and
/// its product category.
#[derive(Clone)]
pub struct Known {
    pub order: StoredOrder,
    pub canonical: Order,
    pub category: Option<String>,
}

/// The name of an order's channel connection ("" when it was deleted), through the cache.
async fn channel_name(
    conn: &mut Conn,
    order: &StoredOrder,
    state: &Services,
) -> anyhow::Result<String> {
    Ok(state
        .connection_cache
        .by_id_in(conn, &order.connection_id)
        .await?
        .map(|c| c.name)
        .unwrap_or_default())
}

/// How a context finds the order's product category.
enum Category {
    /// With the products of the order's SKUs, kept for routing (one statement).
    Products,
    /// With the categories alone (one statement).
    Read,
    /// Known already.
    Known(Option<String>),
}

impl OrderContext {
    /// Loads an order's context inside `tx`; none when the order does not exist.
    pub async fn load(tx: &mut Tx, order_id: &str) -> anyhow::Result<Option<Self>> {
        let Some(order) = orders::get_in(tx, order_id).await? else {
            return Ok(None);
        };
        Ok(Some(Self::of(tx, order).await?))
    }

    /// The context of an order read already.
    pub async fn of(tx: &mut Tx, order: StoredOrder) -> anyhow::Result<Self> {
        let canonical = order.canonical_order()?;
        let channel_name = connections::name_in(tx, &order.connection_id)
            .await?
            .unwrap_or_default();
        Self::with(tx, order, canonical, channel_name, None, Category::Read).await
    }

    /// As [`OrderContext::load`], its policies from `policies` (a cache: the push of a
    /// supplier order reads its order's context on every attempt), taken before `tx` began,
    /// and its channel's name from the connection cache.
    pub async fn load_cached(
        conn: &mut Conn,
        order_id: &str,
        policies: PolicyReader<'_>,
        state: &Services,
    ) -> anyhow::Result<Option<Self>> {
        let Some(order) = orders::get_in(conn, order_id).await? else {
            return Ok(None);
        };
        let canonical = order.canonical_order()?;
        let channel_name = channel_name(conn, &order, state).await?;
        let context = Self::with(
            conn,
            order,
            canonical,
            channel_name,
            Some(policies),
            Category::Read,
        );
        Ok(Some(context.await?))
    }

    /// As [`OrderContext::load_cached`], of an order read already with its canonical copy and
    /// category (for a batch of orders: [`category_of`]).
    pub async fn of_known(
        conn: &mut Conn,
        known: Known,
        policies: PolicyReader<'_>,
        state: &Services,
    ) -> anyhow::Result<Self> {
        let channel_name = channel_name(conn, &known.order, state).await?;
        Self::with(
            conn,
            known.order,
            known.canonical,
            channel_name,
            Some(policies),
            Category::Known(known.category),
        )
        .await
    }

    /// The context of an order just stored from `canonical` by its channel `channel_name`:
    /// nothing read back of what is in hand.
    /// Its policies come from `policies` (the ingest path's cache).
    pub async fn fresh(
        tx: &mut Tx,
        order: StoredOrder,
        canonical: &Order,
        channel_name: &str,
        policies: PolicyReader<'_>,
    ) -> anyhow::Result<Self> {
        let (canonical, channel_name) = (canonical.clone(), channel_name.to_string());
        Self::with(
            tx,
            order,
            canonical,
            channel_name,
            Some(policies),
            Category::Products,
        )
        .await
    }

    async fn with(
        conn: &mut Conn,
        order: StoredOrder,
        canonical: Order,
        channel_name: String,
        cache: Option<PolicyReader<'_>>,
        category: Category,
    ) -> anyhow::Result<Self> {
        let (scope, products) = match category {
            Category::Products => {
                let skus: Vec<&str> = canonical
                    .lines
                    .iter()
                    .map(|l| l.storefront_sku.as_str())
                    .collect();
                let products = match super::prefetch::products(&order.connection_id, &skus) {
                    Some(products) => products,
                    None => offers::products_for(conn, &order.connection_id, &skus).await?,
                };
                // The category of the first line that has one, as `scope_of` finds it.
                let category = skus
                    .iter()
                    .find_map(|sku| products.get(*sku).and_then(|p| p.category.clone()));
                (scope(&channel_name, category), Some(products))
            }
            Category::Read => {
                let scope = scope_of(conn, &order.connection_id, &channel_name, &canonical).await?;
                (scope, None)
            }
            Category::Known(category) => (scope(&channel_name, category), None),
        };
        let (routing, after_sales) = match cache {
            Some(cache) => (
                cache.in_scope(conn, &scope).await?,
                cache.in_scope(conn, &scope).await?,
            ),
            None => (
                policy::in_scope(conn, &scope).await?,
                policy::in_scope(conn, &scope).await?,
            ),
        };
        Ok(Self {
            order,
            canonical,
            channel_name,
            category: scope.category,
            routing,
            after_sales,
            products,
        })
    }
}

impl OrderContext {
    /// Where the order's policies apply: its channel and its category.
    pub fn scope(&self) -> Scope {
        scope(&self.channel_name, self.category.clone())
    }

    /// The after-sales policy in force for some of the order's lines (a case's): their channel's
    /// and the category of the first of them that has one; the order's policy for none.
    pub async fn after_sales_of_lines(
        &self,
        tx: &mut Tx,
        line_ids: &[&str],
    ) -> anyhow::Result<AfterSalesPolicy> {
        if line_ids.is_empty() {
            return Ok(self.after_sales.clone());
        }
        let skus = self
            .canonical
            .lines
            .iter()
            .filter(|l| line_ids.contains(&l.external_line_id.as_str()))
            .map(|l| l.storefront_sku.as_str());
        let category = first_category(tx, &self.order.connection_id, skus).await?;
        if category == self.category {
            return Ok(self.after_sales.clone());
        }
        policy::in_scope(tx, &scope(&self.channel_name, category)).await
    }
}

/// Where an order's policies apply: its channel, and the category of its first line that has
/// one (a dry run of an order not stored resolves it the same way).
pub async fn scope_of(
    conn: &mut sqlx::AnyConnection,
    channel_connection_id: &str,
    channel_name: &str,
    order: &Order,
) -> sqlx::Result<Scope> {
    let skus = order.lines.iter().map(|l| l.storefront_sku.as_str());
    let category = first_category(conn, channel_connection_id, skus).await?;
    Ok(scope(channel_name, category))
}

/// An order's product category from the categories of its channel's SKUs (read for several
/// orders at once): its first line's that has one, as [`scope_of`] finds it.
pub fn category_of(order: &Order, categories: &HashMap<String, String>) -> Option<String> {
    order
        .lines
        .iter()
        .find_map(|l| categories.get(&l.storefront_sku).cloned())
}

/// The category of the first of `skus` whose product has one.
async fn first_category<'a>(
    conn: &mut sqlx::AnyConnection,
    channel_connection_id: &str,
    skus: impl Iterator<Item = &'a str>,
) -> sqlx::Result<Option<String>> {
    let skus: Vec<&str> = skus.collect();
    let categories =
        crate::store::offers::categories_of(conn, channel_connection_id, &skus).await?;
    Ok(skus.iter().find_map(|sku| categories.get(*sku).cloned()))
}

/// A channel's scope (none for a deleted channel, whose name is empty) with a category.
fn scope(channel_name: &str, category: Option<String>) -> Scope {
    Scope {
        channel: (!channel_name.is_empty()).then(|| channel_name.to_string()),
        category,
    }
}
