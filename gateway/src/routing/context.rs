//! One order as a stage works on it, loaded once: the stored order, its canonical copy, the
//! channel it came from, and the policies in force for it — the routing and the after-sales
//! policy of its channel and product category (the category of its first line that has one). Every stage resolves policies the same way through it, so the shipping
//! clocks, the service clocks and the cases of one order follow the same rules.

use crate::connections;
use crate::db::Tx;
use crate::orders::{self, StoredOrder};
use crate::policy::{self, AfterSalesPolicy, RoutingPolicy, Scope};
use daifa_plugin_host::Order;

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
        let scope = scope_of(tx, &order.connection_id, &channel_name, &canonical).await?;
        let routing = policy::in_scope(tx, &scope).await?;
        let after_sales = policy::in_scope(tx, &scope).await?;
        Ok(Self {
            order,
            canonical,
            channel_name,
            category: scope.category,
            routing,
            after_sales,
        })
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
    let mut category = None;
    for line in &order.lines {
        category = crate::catalogue::category_of(conn, channel_connection_id, &line.storefront_sku)
            .await?;
        if category.is_some() {
            break;
        }
    }
    Ok(Scope {
        channel: (!channel_name.is_empty()).then(|| channel_name.to_string()),
        category,
    })
}
