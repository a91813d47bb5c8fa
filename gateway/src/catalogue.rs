//! Offers: what each supplier offers for a storefront SKU (cost, stock, lead time, where it
//! ships, how), what the shop knows of its products, and what suppliers' catalogue changes mean
//! (notices). Managed through the API one by one or as CSV, in bulk, all rows or none; kept
//! current by suppliers' `offer-updated` events. The rows are kept by [`crate::store::offers`].
//! Routing reads them through the store (`offers::for_skus`, `products_for`, `category_of`) and
//! never writes them.

use crate::db::{Db, Tx, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::policy::{self, RoutingPolicy};
use crate::services::Services;
use crate::store::connections;
use crate::store::offers::{self, Offer, Product};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use daifa_inputs::offer::{self, Checked};
pub use daifa_inputs::offer::{CSV_COLUMNS, OfferInput};
use daifa_plugin_host::supplier::OfferUpdate;
use serde::Deserialize;
use serde_json::{Value, json};

/// The connections by name (kind and id), for checking offers.
async fn connection_index(db: &Db) -> anyhow::Result<offer::Connections> {
    Ok(connections::list(db)
        .await?
        .into_iter()
        .map(|c| (c.name, (c.kind.as_str().to_string(), c.id)))
        .collect())
}

/// Stores an offer (a new one, or the same four keys' again: replaced), and its product facts.
async fn upsert(tx: &mut Tx, c: &Checked) -> anyhow::Result<()> {
    let i = &c.input;
    let now = now_ms();
    let offer = offers::NewOffer {
        channel_connection_id: &c.channel_connection_id,
        storefront_sku: i.storefront_sku.trim(),
        supplier_connection_id: &c.supplier_connection_id,
        supplier_sku: i.supplier_sku.trim(),
        unit_cost_minor: c.unit_cost_minor,
        shipping_cost_minor: c.shipping_cost_minor,
        currency: i.currency.as_deref().map(str::trim),
        stock: i.stock,
        lead_time_days: i.lead_time_days,
        ships_to: &i.ships_to,
        carriers: &i.carriers,
        capabilities: &i.capabilities,
        priority: i.priority,
        enabled: i.enabled,
        discontinued: i.discontinued,
    };
    offers::upsert(tx, &offer, now).await?;
    if i.category.is_some() || i.brand.is_some() || i.weight_grams.is_some() {
        let product = Product {
            category: i.category.clone(),
            brand: i.brand.clone(),
            weight_grams: i.weight_grams,
        };
        offers::upsert_product(
            tx,
            &c.channel_connection_id,
            i.storefront_sku.trim(),
            &product,
            now,
        )
        .await?;
    }
    Ok(())
}

/// Imports offers from CSV: every row is checked first; any problem refuses the whole file
/// (422, each row's problems with its line number) and nothing is stored; otherwise every row
/// is stored in one transaction.
pub async fn import_csv(db: &Db, text: &[u8]) -> ApiResult<usize> {
    let rows = offer::read_csv(text).map_err(ApiError::Unprocessable)?;
    let index = connection_index(db).await?;
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for (line, row) in rows {
        match row
            .map_err(|e| vec![e])
            .and_then(|input| offer::check(input, &index))
        {
            Ok(c) => checked.push(c),
            Err(errors) => problems.push(json!({ "line": line, "errors": errors })),
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::UnprocessableRows {
            message: format!(
                "{} of {} rows have problems; nothing was imported",
                problems.len(),
                problems.len() + checked.len()
            ),
            rows: problems,
        });
    }
    let mut tx = db.begin().await?;
    for c in &checked {
        upsert(&mut tx, c).await?;
    }
    tx.commit().await?;
    Ok(checked.len())
}

/// Every offer as CSV, in `CSV_COLUMNS` order (what `import_csv` takes back).
pub async fn export_csv(db: &Db) -> anyhow::Result<String> {
    let offers = offers::all(db).await?;
    let products = offers::all_products(db).await?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_COLUMNS)?;
    for o in offers {
        let money = |m: Option<i64>| {
            m.and_then(|m| crate::money::format_major(m, o.currency.as_deref()?))
                .unwrap_or_default()
        };
        let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let product = products
            .get(&(o.channel_connection_id.clone(), o.storefront_sku.clone()))
            .cloned()
            .unwrap_or_default();
        writer.write_record([
            o.channel.clone(),
            o.storefront_sku.clone(),
            o.supplier.clone(),
            o.supplier_sku.clone(),
            money(o.unit_cost_minor),
            money(o.shipping_cost_minor),
            o.currency.clone().unwrap_or_default(),
            opt(o.stock),
            opt(o.lead_time_days),
            o.ships_to.join(" "),
            o.carriers.join(" "),
            o.capabilities.join(" "),
            o.priority.to_string(),
            o.enabled.to_string(),
            o.discontinued.to_string(),
            product.category.unwrap_or_default(),
            product.brand.unwrap_or_default(),
            opt(product.weight_grams),
            o.id.clone(),
        ])?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

// ---- catalogue updates from suppliers ----

/// Applies a supplier's catalogue change to every offer of that supplier SKU, inside the
/// caller's transaction, and raises the notices that matter: a price rise beyond the policy's
/// threshold, a stock-out, a discontinued product.
pub async fn apply_update(
    tx: &mut Tx,
    supplier_connection_id: &str,
    raw_id: &str,
    update: &OfferUpdate,
) -> anyhow::Result<Value> {
    let policy: RoutingPolicy = policy::effective(tx, None).await?;
    let offers = offers::of_supplier_sku(tx, supplier_connection_id, &update.supplier_sku).await?;
    let mut notices = Vec::new();
    for offer in &offers {
        let cost = update
            .unit_cost
            .as_ref()
            .map(|m| (m.amount_minor, m.currency.clone()));
        if let (Some((new, new_currency)), Some(old), Some(old_currency)) =
            (&cost, offer.unit_cost_minor, offer.currency.as_deref())
            && new_currency == old_currency
            && old > 0
        {
            let rise = (*new - old) as f64 * 100.0 / old as f64;
            if rise > policy.price_rise_notice_percent {
                notices.push((
                    "price_up",
                    offer,
                    json!({ "from_minor": old, "to_minor": new, "currency": new_currency, "percent": (rise * 10.0).round() / 10.0 }),
                ));
            }
        }
        if update.stock == Some(0) && offer.stock != Some(0) {
            notices.push(("out_of_stock", offer, json!({})));
        }
        if update.discontinued && !offer.discontinued {
            notices.push(("discontinued", offer, json!({ "note": update.note })));
        }
    }
    let (cost_minor, currency) = match &update.unit_cost {
        Some(m) => (Some(m.amount_minor), Some(m.currency.clone())),
        None => (None, None),
    };
    let change = offers::SupplierChange {
        unit_cost_minor: cost_minor,
        currency: currency.as_deref(),
        stock: update.stock.map(i64::from),
        lead_time_days: update.lead_time_days.map(i64::from),
        discontinued: update.discontinued,
    };
    offers::apply_supplier_change(tx, supplier_connection_id, &update.supplier_sku, &change)
        .await?;
    let kinds: Vec<&str> = notices.iter().map(|(k, _, _)| *k).collect();
    for (kind, offer, detail) in &notices {
        raise(
            tx,
            kind,
            Some(offer),
            supplier_connection_id,
            &update.supplier_sku,
            detail.clone(),
            raw_id,
        )
        .await?;
    }
    Ok(
        json!({ "event": "offer_updated", "supplier_sku": update.supplier_sku, "offers": offers.len(), "notices": kinds }),
    )
}

/// Records a notice for the shop.
pub async fn raise(
    tx: &mut Tx,
    kind: &str,
    offer: Option<&Offer>,
    supplier_connection_id: &str,
    supplier_sku: &str,
    mut detail: Value,
    raw_id: &str,
) -> anyhow::Result<()> {
    if let Some(offer) = offer {
        detail["storefront_sku"] = json!(offer.storefront_sku);
        detail["channel"] = json!(offer.channel);
        detail["supplier"] = json!(offer.supplier);
    }
    if !raw_id.is_empty() {
        detail["raw_request_id"] = json!(raw_id);
    }
    let notice = offers::NewNotice {
        kind,
        offer_id: offer.map(|o| o.id.as_str()),
        supplier_connection_id,
        supplier_sku,
        detail: &detail,
    };
    offers::insert_notice(tx, &notice).await?;
    tracing::warn!(kind, supplier_sku, "notice raised");
    Ok(())
}

/// A supplier said it is out of a SKU (a rejection): its offers of that SKU have no stock.
pub async fn mark_out_of_stock(
    tx: &mut Tx,
    supplier_connection_id: &str,
    supplier_sku: &str,
    raw_id: &str,
) -> anyhow::Result<()> {
    let update = OfferUpdate {
        supplier_sku: supplier_sku.to_string(),
        unit_cost: None,
        stock: Some(0),
        lead_time_days: None,
        discontinued: false,
        note: None,
    };
    apply_update(tx, supplier_connection_id, raw_id, &update).await?;
    Ok(())
}

// ---- API ----

#[derive(Debug, Deserialize)]
pub struct OfferQuery {
    pub channel: Option<String>,
    pub storefront_sku: Option<String>,
    pub supplier: Option<String>,
}

async fn list(
    State(state): State<Services>,
    Query(q): Query<OfferQuery>,
) -> ApiResult<Json<Value>> {
    let offers = offers::list(
        &state.db,
        q.channel.as_deref(),
        q.storefront_sku.as_deref(),
        q.supplier.as_deref(),
    )
    .await?;
    Ok(Json(json!({ "offers": offers })))
}

async fn get_one(State(state): State<Services>, Path(id): Path<String>) -> ApiResult<Json<Offer>> {
    let offer = offers::get(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no offer `{id}`")))?;
    Ok(Json(offer))
}

/// Creates an offer, or replaces the one with the same channel, SKU, supplier and supplier SKU.
pub async fn create(db: &Db, input: OfferInput) -> ApiResult<Offer> {
    let index = connection_index(db).await?;
    let checked = offer::check(input, &index)
        .map_err(|problems| ApiError::Unprocessable(problems.join("; ")))?;
    let mut tx = db.begin().await?;
    upsert(&mut tx, &checked).await?;
    tx.commit().await?;
    Ok(offers::by_keys(
        db,
        &checked.channel_connection_id,
        checked.input.storefront_sku.trim(),
        &checked.supplier_connection_id,
        checked.input.supplier_sku.trim(),
    )
    .await?)
}

async fn put(
    State(state): State<Services>,
    Json(input): Json<OfferInput>,
) -> ApiResult<(StatusCode, Json<Offer>)> {
    Ok((StatusCode::CREATED, Json(create(&state.db, input).await?)))
}

async fn delete_one(
    State(state): State<Services>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !offers::delete(&state.db, &id).await? {
        return Err(ApiError::NotFound(format!("no offer `{id}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn import_handler(State(state): State<Services>, body: Bytes) -> ApiResult<Json<Value>> {
    let imported = import_csv(&state.db, &body).await?;
    Ok(Json(json!({ "imported": imported })))
}

async fn export_handler(State(state): State<Services>) -> ApiResult<impl IntoResponse> {
    let text = export_csv(&state.db).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text))
}

#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    /// Also the acknowledged ones.
    #[serde(default)]
    pub all: bool,
}

async fn list_notices(
    State(state): State<Services>,
    Query(q): Query<NoticeQuery>,
) -> ApiResult<Json<Value>> {
    let notices = offers::notices(&state.db, q.all).await?;
    Ok(Json(json!({ "notices": notices })))
}

async fn acknowledge(
    State(state): State<Services>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !offers::acknowledge_notice(&state.db, &id).await? {
        return Err(ApiError::NotFound(format!("no open notice `{id}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> Router<Services> {
    Router::new()
        .route("/offers", get(list).post(put))
        .route("/offers.csv", get(export_handler).post(import_handler))
        .route("/offers/{id}", get(get_one).delete(delete_one))
        .route("/notices", get(list_notices))
        .route("/notices/{id}/acknowledge", post(acknowledge))
}
