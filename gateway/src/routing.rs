//! Routing v0: each storefront SKU maps to one supplier connection and the supplier's SKU. An
//! order whose lines are all mapped becomes one supplier order per supplier, each with a job
//! that pushes it; an order with an unmapped SKU is held with that reason. This module owns the
//! `sku_mappings`, `supplier_orders` and `supplier_order_lines` tables.

use crate::app::AppState;
use crate::connections;
use crate::db::{Db, Tx, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{self, JobKind, NewJob};
use crate::orders::{self, OrderStatus};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use daifa_plugin_host::{Order, PluginKind};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

/// Where one storefront SKU is sourced.
#[derive(Debug, Clone, Serialize)]
pub struct SkuMapping {
    pub id: String,
    pub channel_connection_id: String,
    pub storefront_sku: String,
    pub supplier_connection_id: String,
    pub supplier_sku: String,
    pub created_at_ms: i64,
}

/// The routing decision for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// One entry per supplier connection: the order's lines it ships, with the supplier SKUs.
    Route(BTreeMap<String, Vec<RoutedLine>>),
    Hold {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedLine {
    pub external_line_id: String,
    pub storefront_sku: String,
    pub supplier_sku: String,
    pub quantity: u32,
}

/// Decides from the mappings of the order's SKUs (`mappings` by storefront SKU).
pub fn decide(order: &Order, mappings: &BTreeMap<String, SkuMapping>) -> Decision {
    if order.lines.is_empty() {
        return Decision::Hold {
            reason: "order has no lines".into(),
        };
    }
    let unmapped: Vec<&str> = order
        .lines
        .iter()
        .filter(|l| !mappings.contains_key(&l.storefront_sku))
        .map(|l| l.storefront_sku.as_str())
        .collect();
    if !unmapped.is_empty() {
        let mut skus = unmapped;
        skus.sort_unstable();
        skus.dedup();
        return Decision::Hold {
            reason: format!("unmapped sku: {}", skus.join(", ")),
        };
    }
    if order.shipping_address.is_none() {
        return Decision::Hold {
            reason: "order has no shipping address".into(),
        };
    }
    let mut by_supplier: BTreeMap<String, Vec<RoutedLine>> = BTreeMap::new();
    for line in order.lines.iter().filter(|l| l.quantity > 0) {
        let m = &mappings[&line.storefront_sku];
        by_supplier
            .entry(m.supplier_connection_id.clone())
            .or_default()
            .push(RoutedLine {
                external_line_id: line.external_line_id.clone(),
                storefront_sku: line.storefront_sku.clone(),
                supplier_sku: m.supplier_sku.clone(),
                quantity: line.quantity,
            });
    }
    if by_supplier.is_empty() {
        return Decision::Hold {
            reason: "order has no line with a quantity to ship".into(),
        };
    }
    Decision::Route(by_supplier)
}

/// Routes a newly stored order inside the ingest transaction: supplier orders and their push
/// jobs, or a hold.
pub async fn route(
    tx: &mut Tx,
    channel_connection_id: &str,
    order_id: &str,
    order: &Order,
) -> anyhow::Result<Decision> {
    let mappings = mappings_for(tx, channel_connection_id, order).await?;
    let decision = decide(order, &mappings);
    match &decision {
        Decision::Hold { reason } => {
            orders::set_status(tx, order_id, OrderStatus::OnHold, Some(reason)).await?;
            orders::record_event(tx, order_id, "order.held", json!({ "reason": reason })).await?;
            tracing::info!(order_id, reason = %reason, "order held");
        }
        Decision::Route(by_supplier) => {
            let now = now_ms();
            for (supplier_connection_id, lines) in by_supplier {
                let supplier_order_id = new_id("so");
                sqlx::query(
                    "insert into supplier_orders (id, order_id, supplier_connection_id, status, created_at_ms, updated_at_ms) \
                     values ($1, $2, $3, 'pending', $4, $4)",
                )
                .bind(&supplier_order_id)
                .bind(order_id)
                .bind(supplier_connection_id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                for line in lines {
                    sqlx::query(
                        "insert into supplier_order_lines (supplier_order_id, external_line_id, storefront_sku, supplier_sku, quantity) \
                         values ($1, $2, $3, $4, $5)",
                    )
                    .bind(&supplier_order_id)
                    .bind(&line.external_line_id)
                    .bind(&line.storefront_sku)
                    .bind(&line.supplier_sku)
                    .bind(i64::from(line.quantity))
                    .execute(&mut **tx)
                    .await?;
                }
                jobs::enqueue(
                    tx,
                    NewJob {
                        kind: JobKind::SupplierSubmit,
                        idempotency_key: format!("{supplier_order_id}.submit"),
                        subject_id: &supplier_order_id,
                        order_id,
                        connection_id: supplier_connection_id,
                    },
                )
                .await?;
                orders::record_event(
                    tx,
                    order_id,
                    "order.routed",
                    json!({ "supplier_order_id": supplier_order_id, "supplier_connection_id": supplier_connection_id,
                            "lines": lines.iter().map(|l| json!({"external_line_id": l.external_line_id, "supplier_sku": l.supplier_sku, "quantity": l.quantity})).collect::<Vec<_>>() }),
                )
                .await?;
            }
            tracing::info!(order_id, suppliers = by_supplier.len(), "order routed");
        }
    }
    Ok(decision)
}

/// The mappings of the order's SKUs, in one query.
async fn mappings_for(
    tx: &mut Tx,
    channel_connection_id: &str,
    order: &Order,
) -> anyhow::Result<BTreeMap<String, SkuMapping>> {
    let mut skus: Vec<&str> = order
        .lines
        .iter()
        .map(|l| l.storefront_sku.as_str())
        .collect();
    skus.sort_unstable();
    skus.dedup();
    if skus.is_empty() {
        return Ok(BTreeMap::new());
    }
    // One placeholder per SKU ($2, $3, ...): the Any driver binds no arrays.
    let placeholders: Vec<String> = (0..skus.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "{MAPPING_SELECT} where channel_connection_id = $1 and storefront_sku in ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(channel_connection_id);
    for sku in &skus {
        query = query.bind(*sku);
    }
    let rows = query.fetch_all(&mut **tx).await?;
    rows.iter()
        .map(|r| Ok(mapping_from_row(r).map(|m| (m.storefront_sku.clone(), m))?))
        .collect()
}

const MAPPING_SELECT: &str = "select id, channel_connection_id, storefront_sku, supplier_connection_id, supplier_sku, created_at_ms from sku_mappings";

fn mapping_from_row(r: &sqlx::any::AnyRow) -> sqlx::Result<SkuMapping> {
    Ok(SkuMapping {
        id: r.try_get("id")?,
        channel_connection_id: r.try_get("channel_connection_id")?,
        storefront_sku: r.try_get("storefront_sku")?,
        supplier_connection_id: r.try_get("supplier_connection_id")?,
        supplier_sku: r.try_get("supplier_sku")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// A supplier order with its lines.
#[derive(Debug, Clone, Serialize)]
pub struct SupplierOrderView {
    pub id: String,
    pub order_id: String,
    pub supplier_connection_id: String,
    pub status: String,
    pub external_id: Option<String>,
    pub reason: Option<String>,
    pub lines: Vec<SupplierOrderLineView>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SupplierOrderLineView {
    pub external_line_id: String,
    pub storefront_sku: String,
    pub supplier_sku: String,
    pub quantity: i64,
}

/// Supplier orders matching a where clause over `supplier_orders` (`$1` bound to `arg`), with
/// their lines, in two queries.
async fn load_supplier_orders(
    db: &Db,
    filter_sql: &str,
    arg: &str,
) -> anyhow::Result<Vec<SupplierOrderView>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select id, order_id, supplier_connection_id, status, external_id, reason, created_at_ms, updated_at_ms \
         from supplier_orders where {filter_sql} order by created_at_ms, id"
    )))
    .bind(arg)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(SupplierOrderView {
            id: r.try_get("id")?,
            order_id: r.try_get("order_id")?,
            supplier_connection_id: r.try_get("supplier_connection_id")?,
            status: r.try_get("status")?,
            external_id: r.try_get("external_id")?,
            reason: r.try_get("reason")?,
            lines: Vec::new(),
            created_at_ms: r.try_get("created_at_ms")?,
            updated_at_ms: r.try_get("updated_at_ms")?,
        });
    }
    let lines = sqlx::query(AssertSqlSafe(format!(
        "select supplier_order_id, external_line_id, storefront_sku, supplier_sku, quantity from supplier_order_lines \
         where supplier_order_id in (select id from supplier_orders where {filter_sql}) order by external_line_id"
    )))
    .bind(arg)
    .fetch_all(&db.pool)
    .await?;
    for l in lines {
        let so_id: String = l.try_get("supplier_order_id")?;
        if let Some(so) = out.iter_mut().find(|s| s.id == so_id) {
            so.lines.push(SupplierOrderLineView {
                external_line_id: l.try_get("external_line_id")?,
                storefront_sku: l.try_get("storefront_sku")?,
                supplier_sku: l.try_get("supplier_sku")?,
                quantity: l.try_get("quantity")?,
            });
        }
    }
    Ok(out)
}

pub async fn supplier_order(db: &Db, id: &str) -> anyhow::Result<Option<SupplierOrderView>> {
    Ok(load_supplier_orders(db, "id = $1", id).await?.pop())
}

pub async fn supplier_orders_of(db: &Db, order_id: &str) -> anyhow::Result<Vec<SupplierOrderView>> {
    load_supplier_orders(db, "order_id = $1", order_id).await
}

pub async fn set_supplier_order_status(
    tx: &mut Tx,
    id: &str,
    status: &str,
    external_id: Option<&str>,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update supplier_orders set status = $1, external_id = coalesce($2, external_id), reason = coalesce($3, reason), updated_at_ms = $4 \
         where id = $5",
    )
    .bind(status)
    .bind(external_id)
    .bind(reason)
    .bind(now_ms())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// ---- admin API ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSkuMapping {
    /// The channel connection's name.
    pub channel: String,
    pub storefront_sku: String,
    /// The supplier connection's name.
    pub supplier: String,
    pub supplier_sku: String,
}

pub async fn create_mapping(db: &Db, new: NewSkuMapping) -> ApiResult<SkuMapping> {
    if new.storefront_sku.trim().is_empty() || new.supplier_sku.trim().is_empty() {
        return Err(ApiError::Unprocessable(
            "storefront_sku and supplier_sku must not be empty".into(),
        ));
    }
    let channel = connections::by_name(db, &new.channel)
        .await?
        .ok_or_else(|| ApiError::Unprocessable(format!("no connection named `{}`", new.channel)))?;
    let supplier = connections::by_name(db, &new.supplier)
        .await?
        .ok_or_else(|| {
            ApiError::Unprocessable(format!("no connection named `{}`", new.supplier))
        })?;
    if channel.kind != PluginKind::Channel {
        return Err(ApiError::Unprocessable(format!(
            "`{}` is not a channel connection",
            channel.name
        )));
    }
    if supplier.kind != PluginKind::Supplier {
        return Err(ApiError::Unprocessable(format!(
            "`{}` is not a supplier connection",
            supplier.name
        )));
    }
    let mapping = SkuMapping {
        id: new_id("map"),
        channel_connection_id: channel.id,
        storefront_sku: new.storefront_sku,
        supplier_connection_id: supplier.id,
        supplier_sku: new.supplier_sku,
        created_at_ms: now_ms(),
    };
    sqlx::query(
        "insert into sku_mappings (id, channel_connection_id, storefront_sku, supplier_connection_id, supplier_sku, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&mapping.id)
    .bind(&mapping.channel_connection_id)
    .bind(&mapping.storefront_sku)
    .bind(&mapping.supplier_connection_id)
    .bind(&mapping.supplier_sku)
    .bind(mapping.created_at_ms)
    .execute(&db.pool)
    .await
    .map_err(|e| match ApiError::from(e) {
        ApiError::Conflict(_) => ApiError::Conflict(format!("sku `{}` is already mapped for this channel", mapping.storefront_sku)),
        other => other,
    })?;
    Ok(mapping)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/sku-mappings",
            get(list_mappings).post(create_mapping_handler),
        )
        .route("/sku-mappings/{id}", delete(delete_mapping))
}

async fn list_mappings(State(state): State<AppState>) -> ApiResult<Json<Vec<SkuMapping>>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "{MAPPING_SELECT} order by channel_connection_id, storefront_sku"
    )))
    .fetch_all(&state.db.pool)
    .await?;
    Ok(Json(
        rows.iter()
            .map(mapping_from_row)
            .collect::<sqlx::Result<_>>()?,
    ))
}

async fn create_mapping_handler(
    State(state): State<AppState>,
    Json(new): Json<NewSkuMapping>,
) -> ApiResult<(StatusCode, Json<SkuMapping>)> {
    Ok((
        StatusCode::CREATED,
        Json(create_mapping(&state.db, new).await?),
    ))
}

async fn delete_mapping(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let r = sqlx::query("delete from sku_mappings where id = $1")
        .bind(&id)
        .execute(&state.db.pool)
        .await?;
    if r.rows_affected() == 0 {
        return Err(ApiError::NotFound(format!("no sku mapping `{id}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use daifa_plugin_host::{Address, Contact, Money, OrderLine};

    fn money(minor: i64) -> Money {
        Money {
            amount_minor: minor,
            currency: "USD".into(),
        }
    }

    fn order(lines: &[(&str, &str, u32)], with_address: bool) -> Order {
        Order {
            external_id: "1".into(),
            order_number: None,
            storefront: "test".into(),
            currency: "USD".into(),
            subtotal: money(0),
            shipping: money(0),
            tax: money(0),
            total: money(0),
            placed_at: 0,
            buyer_note: None,
            customer: Contact {
                name: None,
                email: None,
                phone: None,
            },
            shipping_address: with_address.then(|| Address {
                name: None,
                company: None,
                line1: "1 Main St".into(),
                line2: None,
                city: "Town".into(),
                province: None,
                province_code: None,
                postal_code: None,
                country_code: "US".into(),
                phone: None,
            }),
            lines: lines
                .iter()
                .map(|(id, sku, q)| OrderLine {
                    external_line_id: id.to_string(),
                    storefront_sku: sku.to_string(),
                    title: sku.to_string(),
                    variant_title: None,
                    quantity: *q,
                    unit_price: money(100),
                    note: None,
                })
                .collect(),
        }
    }

    fn mappings(entries: &[(&str, &str, &str)]) -> BTreeMap<String, SkuMapping> {
        entries
            .iter()
            .map(|(sku, supplier, supplier_sku)| {
                (
                    sku.to_string(),
                    SkuMapping {
                        id: format!("map_{sku}"),
                        channel_connection_id: "con_shop".into(),
                        storefront_sku: sku.to_string(),
                        supplier_connection_id: supplier.to_string(),
                        supplier_sku: supplier_sku.to_string(),
                        created_at_ms: 0,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn decisions() {
        let m = mappings(&[
            ("A", "sup1", "S-A"),
            ("B", "sup2", "S-B"),
            ("C", "sup1", "S-C"),
        ]);
        // All lines of one supplier stay together; another supplier gets its own order.
        let Decision::Route(by) = decide(
            &order(&[("1", "A", 1), ("2", "B", 2), ("3", "C", 3)], true),
            &m,
        ) else {
            panic!("expected a route")
        };
        assert_eq!(by.len(), 2);
        assert_eq!(
            by["sup1"]
                .iter()
                .map(|l| (l.supplier_sku.as_str(), l.quantity))
                .collect::<Vec<_>>(),
            [("S-A", 1), ("S-C", 3)]
        );
        assert_eq!(by["sup2"].len(), 1);

        let cases: &[(Order, &str)] = &[
            (
                order(&[("1", "A", 1), ("2", "X", 1), ("3", "X", 1)], true),
                "unmapped sku: X",
            ),
            (order(&[], true), "order has no lines"),
            (
                order(&[("1", "A", 1)], false),
                "order has no shipping address",
            ),
            (
                order(&[("1", "A", 0)], true),
                "order has no line with a quantity to ship",
            ),
        ];
        for (o, reason) in cases {
            assert_eq!(
                decide(o, &m),
                Decision::Hold {
                    reason: reason.to_string()
                }
            );
        }
    }
}
