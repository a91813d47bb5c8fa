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
use daifa_plugin_host::PluginKind;
use daifa_plugin_host::supplier::OfferUpdate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

/// An offer as the API takes it: connections by name, amounts in minor units of `currency`
/// (`unit_cost_minor: 1250` with `currency: "USD"` is 12.50 USD), as the canonical schema carries
/// money. The CSV form has the amounts in major units (`unit_cost`, `12.50`), as people type
/// them in a spreadsheet; [`from_record`] turns them into minor units exactly.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OfferInput {
    pub channel: String,
    pub storefront_sku: String,
    pub supplier: String,
    pub supplier_sku: String,
    #[serde(default)]
    pub unit_cost_minor: Option<i64>,
    #[serde(default)]
    pub shipping_cost_minor: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub stock: Option<i64>,
    #[serde(default)]
    pub lead_time_days: Option<i64>,
    #[serde(default)]
    pub ships_to: Vec<String>,
    #[serde(default)]
    pub carriers: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default = "default_priority")]
    pub priority: i64,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub discontinued: bool,
    /// What the shop knows of the storefront SKU (kept per SKU, not per offer).
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub weight_grams: Option<i64>,
}

fn default_priority() -> i64 {
    100
}

fn yes() -> bool {
    true
}

/// A checked offer, ready to store.
struct Checked {
    channel_connection_id: String,
    supplier_connection_id: String,
    input: OfferInput,
    unit_cost_minor: Option<i64>,
    shipping_cost_minor: Option<i64>,
}

/// The connections by name (kind and id), for checking offers.
async fn connection_index(db: &Db) -> anyhow::Result<HashMap<String, (PluginKind, String)>> {
    Ok(connections::list(db)
        .await?
        .into_iter()
        .map(|c| (c.name, (c.kind, c.id)))
        .collect())
}

fn check(
    input: OfferInput,
    index: &HashMap<String, (PluginKind, String)>,
) -> Result<Checked, Vec<String>> {
    let mut problems = Vec::new();
    let connection =
        |name: &str, kind: PluginKind, problems: &mut Vec<String>| match index.get(name) {
            Some((k, id)) if *k == kind => Some(id.clone()),
            Some((k, _)) => {
                problems.push(format!(
                    "`{name}` is a {} connection, not a {}",
                    k.as_str(),
                    kind.as_str()
                ));
                None
            }
            None => {
                problems.push(format!("no connection named `{name}`"));
                None
            }
        };
    let channel = connection(&input.channel, PluginKind::Channel, &mut problems);
    let supplier = connection(&input.supplier, PluginKind::Supplier, &mut problems);
    if input.storefront_sku.trim().is_empty() {
        problems.push("storefront_sku is empty".into());
    }
    if input.supplier_sku.trim().is_empty() {
        problems.push("supplier_sku is empty".into());
    }
    let amounts = input.unit_cost_minor.is_some() || input.shipping_cost_minor.is_some();
    let currency = input.currency.as_deref().map(str::trim).unwrap_or("");
    if amounts && currency.is_empty() {
        problems.push("a cost needs its currency".into());
    }
    let minor = |amount: Option<i64>, what: &str, problems: &mut Vec<String>| {
        let amount = amount?;
        if amount < 0 {
            problems.push(format!("{what} must not be negative, not {amount}"));
            return None;
        }
        if currency.is_empty() {
            return None;
        }
        crate::money::bounded(amount, currency)
            .map_err(|e| problems.push(format!("{what}: {e}")))
            .ok()
    };
    let unit_cost_minor = minor(input.unit_cost_minor, "unit_cost_minor", &mut problems);
    let shipping_cost_minor = minor(
        input.shipping_cost_minor,
        "shipping_cost_minor",
        &mut problems,
    );
    if input.stock.is_some_and(|s| s < 0) {
        problems.push("stock must not be negative".into());
    }
    if input.lead_time_days.is_some_and(|d| d < 0) {
        problems.push("lead_time_days must not be negative".into());
    }
    if input.weight_grams.is_some_and(|w| w <= 0) {
        problems.push("weight_grams must be positive".into());
    }
    for country in &input.ships_to {
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push(format!(
                "ships_to `{country}` is not an ISO 3166 alpha-2 code"
            ));
        }
    }
    match (channel, supplier, problems.is_empty()) {
        (Some(channel_connection_id), Some(supplier_connection_id), true) => Ok(Checked {
            channel_connection_id,
            supplier_connection_id,
            input,
            unit_cost_minor,
            shipping_cost_minor,
        }),
        _ => Err(problems),
    }
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

/// The columns of the CSV form, in order: an offer's fields, lists space-separated.
pub const CSV_COLUMNS: [&str; 19] = [
    "channel",
    "storefront_sku",
    "supplier",
    "supplier_sku",
    "unit_cost",
    "shipping_cost",
    "currency",
    "stock",
    "lead_time_days",
    "ships_to",
    "carriers",
    "capabilities",
    "priority",
    "enabled",
    "discontinued",
    "category",
    "brand",
    "weight_grams",
    "id",
];

/// One CSV record as an offer: empty cells are unset, lists space-separated, amounts in major
/// units of the row's currency.
fn from_record(
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
) -> Result<OfferInput, String> {
    let mut object = serde_json::Map::new();
    let currency = headers
        .iter()
        .zip(record.iter())
        .find(|(name, _)| *name == "currency")
        .map(|(_, cell)| cell.trim())
        .unwrap_or("");
    for (name, cell) in headers.iter().zip(record.iter()) {
        let cell = cell.trim();
        if cell.is_empty() || name == "id" {
            continue;
        }
        let value = match name {
            "ships_to" | "carriers" | "capabilities" => {
                json!(cell.split_whitespace().collect::<Vec<_>>())
            }
            "unit_cost" | "shipping_cost" if currency.is_empty() => {
                return Err(format!("{name}: a cost needs its currency"));
            }
            "unit_cost" | "shipping_cost" => {
                let minor = crate::money::parse_major(cell, currency)
                    .map_err(|e| format!("{name}: {e}"))?;
                object.insert(format!("{name}_minor"), json!(minor));
                continue;
            }
            "stock" | "lead_time_days" | "priority" | "weight_grams" => json!(
                cell.parse::<i64>()
                    .map_err(|_| format!("{name}: `{cell}` is not a whole number"))?
            ),
            "enabled" | "discontinued" => match cell.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => json!(true),
                "false" | "no" | "0" => json!(false),
                _ => return Err(format!("{name}: `{cell}` is not true or false")),
            },
            _ => json!(cell),
        };
        object.insert(name.to_string(), value);
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| e.to_string())
}

/// Imports offers from CSV: every row is checked first; any problem refuses the whole file
/// (422, each row's problems with its line number) and nothing is stored; otherwise every row
/// is stored in one transaction.
pub async fn import_csv(db: &Db, text: &[u8]) -> ApiResult<usize> {
    if text.contains(&0) {
        return Err(ApiError::Unprocessable(
            "the CSV holds a NUL character, which cannot be stored".into(),
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text);
    let headers = reader
        .headers()
        .map_err(|e| ApiError::Unprocessable(format!("the CSV has no header row: {e}")))?
        .clone();
    let unknown: Vec<&str> = headers
        .iter()
        .filter(|h| !CSV_COLUMNS.contains(h))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "unknown columns: {} (the columns are: {})",
            unknown.join(", "),
            CSV_COLUMNS.join(", ")
        )));
    }
    let index = connection_index(db).await?;
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for (n, record) in reader.records().enumerate() {
        // Line numbers as an editor shows them: the header is line 1.
        let line = n + 2;
        let result = record
            .map_err(|e| vec![e.to_string()])
            .and_then(|r| from_record(&headers, &r).map_err(|e| vec![e]))
            .and_then(|input| check(input, &index));
        match result {
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
    let checked =
        check(input, &index).map_err(|problems| ApiError::Unprocessable(problems.join("; ")))?;
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

impl OfferInput {
    /// An offer with nothing known but the four keys.
    pub fn new(channel: &str, storefront_sku: &str, supplier: &str, supplier_sku: &str) -> Self {
        Self {
            channel: channel.into(),
            storefront_sku: storefront_sku.into(),
            supplier: supplier.into(),
            supplier_sku: supplier_sku.into(),
            unit_cost_minor: None,
            shipping_cost_minor: None,
            currency: None,
            stock: None,
            lead_time_days: None,
            ships_to: Vec::new(),
            carriers: Vec::new(),
            capabilities: Vec::new(),
            priority: default_priority(),
            enabled: true,
            discontinued: false,
            category: None,
            brand: None,
            weight_grams: None,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> HashMap<String, (PluginKind, String)> {
        [
            (
                "shop".to_string(),
                (PluginKind::Channel, "con_shop".to_string()),
            ),
            (
                "acme".to_string(),
                (PluginKind::Supplier, "con_acme".to_string()),
            ),
        ]
        .into()
    }

    fn parse(csv_text: &str) -> Vec<Result<OfferInput, String>> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(csv_text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        reader
            .records()
            .map(|r| from_record(&headers, &r.unwrap()))
            .collect()
    }

    #[test]
    fn csv_rows_become_offers_and_bad_ones_say_why() {
        let rows = parse(
            "channel,storefront_sku,supplier,supplier_sku,unit_cost,currency,stock,ships_to,enabled,weight_grams\n\
             shop,A,acme,S-A,12.50,USD,3,US DE,yes,250\n\
             shop,B,acme,S-B,,,,,,\n\
             shop,C,acme,S-C,twelve,USD,,,,\n\
             shop,D,acme,S-D,1,USD,,,maybe,\n",
        );
        let a = rows[0].as_ref().unwrap();
        assert_eq!(a.unit_cost_minor, Some(1250));
        assert_eq!(a.ships_to, ["US", "DE"]);
        assert_eq!(a.weight_grams, Some(250));
        assert!(a.enabled);
        let b = rows[1].as_ref().unwrap();
        assert_eq!((b.unit_cost_minor, b.stock, b.priority), (None, None, 100));
        assert!(
            rows[2]
                .as_ref()
                .unwrap_err()
                .contains("unit_cost: `twelve` is not an amount")
        );
        assert!(rows[3].as_ref().unwrap_err().contains("enabled: `maybe`"));
        // Amounts are taken exactly, never rounded; a cost without its currency is refused.
        let rows = parse(
            "channel,storefront_sku,supplier,supplier_sku,unit_cost,shipping_cost,currency\n\
             shop,A,acme,S-A,19.99,0.1,USD\n\
             shop,B,acme,S-B,12.345,,USD\n\
             shop,C,acme,S-C,1e308,,USD\n\
             shop,D,acme,S-D,4,,\n\
             shop,E,acme,S-E,1500,,JPY\n",
        );
        let a = rows[0].as_ref().unwrap();
        assert_eq!(
            (a.unit_cost_minor, a.shipping_cost_minor),
            (Some(1999), Some(10))
        );
        assert!(
            rows[1]
                .as_ref()
                .unwrap_err()
                .contains("more decimals than USD's 2")
        );
        assert!(
            rows[2]
                .as_ref()
                .unwrap_err()
                .contains("`1e308` is not an amount")
        );
        assert!(
            rows[3]
                .as_ref()
                .unwrap_err()
                .contains("a cost needs its currency")
        );
        assert_eq!(rows[4].as_ref().unwrap().unit_cost_minor, Some(1500));
        let a = parse(
            "channel,storefront_sku,supplier,supplier_sku,unit_cost,currency,stock,ships_to,enabled,weight_grams\n\
             shop,A,acme,S-A,12.50,USD,3,US DE,yes,250\n",
        )
        .remove(0)
        .unwrap();

        let checked = check(a.clone(), &index()).ok().unwrap();
        assert_eq!(checked.unit_cost_minor, Some(1250));
        let mut wrong = a.clone();
        wrong.supplier = "shop".into();
        wrong.currency = Some("XYZ".into());
        wrong.ships_to = vec!["usa".into()];
        let problems = check(wrong, &index()).err().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`shop` is a channel connection")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`XYZ` is not an ISO 4217")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`usa` is not an ISO 3166")),
            "{problems:?}"
        );
        // 1e308 once became i64::MAX minor units, and routing compared costs with it.
        let mut huge = a.clone();
        huge.unit_cost_minor = Some(i64::MAX);
        huge.shipping_cost_minor = Some(-1);
        let problems = check(huge, &index()).err().unwrap();
        assert!(
            problems.iter().any(|p| p.starts_with(
                "unit_cost_minor: 9223372036854775807 minor units of USD is not an amount"
            )),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p == "shipping_cost_minor must not be negative, not -1"),
            "{problems:?}"
        );
        let mut no_currency = a.clone();
        no_currency.currency = None;
        assert!(
            check(no_currency, &index())
                .err()
                .unwrap()
                .iter()
                .any(|p| p.contains("needs its currency"))
        );
    }
}
