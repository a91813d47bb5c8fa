//! Policies: the handbooks' numbered rules as data, each with the handbook's number as its
//! default (shared/domain.md), never a constant in the code that applies it. A policy is a JSON
//! document; what the operator stores (`PUT /api/v1/policies/{name}`, for every channel or for
//! one) is merged over the defaults: the global document, then the channel's. This module owns
//! the `policies` table.

use crate::app::AppState;
use crate::db::{Db, now_ms};
use crate::error::{ApiError, ApiResult};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// How the routing engine chooses among a SKU's offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The offer with the lowest `priority` number (ties: the cheaper).
    Priority,
    /// The lowest unit cost plus shipping, in one currency (the policy's rates).
    LowestLandedCost,
    /// The shortest lead time.
    Fastest,
}

/// An amount in a currency's major unit, as operators write it (`{ "amount": 50, "currency":
/// "USD" }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    pub amount: f64,
    pub currency: String,
}

/// A buyer-note rule: a note that mentions any of `keywords` (case-insensitive) asks for
/// `capability`, which the chosen offer must have (handbook 002: buyer notes are honoured or the
/// customer is told before shipping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteRule {
    pub keywords: Vec<String>,
    pub capability: String,
}

/// What makes an address incomplete or suspicious.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AddressPolicy {
    /// Fields that must not be empty: `name`, `line1`, `city`, `postal_code`, `phone`.
    pub required: Vec<String>,
    /// Countries without postal codes, where `postal_code` is not required.
    pub no_postal_code: Vec<String>,
    /// Words that make an address suspicious (a parcel forwarder, a PO box), case-insensitive.
    pub suspicious: Vec<String>,
}

impl Default for AddressPolicy {
    fn default() -> Self {
        Self {
            required: ["name", "line1", "city", "postal_code"]
                .map(String::from)
                .to_vec(),
            // Countries whose addresses have no postal code (a partial list; extend it).
            no_postal_code: ["AE", "AG", "BS", "BZ", "HK", "IE", "JM", "MO", "PA", "QA"]
                .map(String::from)
                .to_vec(),
            suspicious: [
                "forwarder",
                "forwarding",
                "转运",
                "集运",
                "p.o. box",
                "po box",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// The declared customs value of parcels to a country (handbook 002): never above `max`; when
/// the parcel's weight falls in a band, between the band's `min` and `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomsRule {
    pub currency: String,
    pub max: f64,
    #[serde(default)]
    pub bands: Vec<WeightBand>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightBand {
    /// The band holds parcels up to this weight; none: any heavier parcel.
    pub up_to_grams: Option<u32>,
    pub min: f64,
    pub max: f64,
}

/// The rules of the routing engine (routing.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingPolicy {
    pub strategy: Strategy,
    /// Whether an offer whose stock the supplier never reported may be chosen.
    pub unknown_stock_available: bool,
    /// Supplier orders a supplier connection (by name) takes a day (UTC), at most.
    pub daily_caps: BTreeMap<String, u32>,
    /// A supplier that has not acknowledged an order this long after it was pushed loses it to
    /// the next offer.
    #[serde(with = "humantime_serde")]
    pub ack_deadline: Duration,
    /// An order held for a stock-out: the customer is contacted within this (handbook 001:
    /// 24 hours).
    #[serde(with = "humantime_serde")]
    pub stock_out_contact: Duration,
    /// Orders whose total is above this are held for a look first; none: never.
    pub hold_above: Option<Amount>,
    /// Brands that must not ship (counterfeits, handbook 002): an order naming one is held.
    pub blocked_brands: Vec<String>,
    pub address: AddressPolicy,
    pub note_rules: Vec<NoteRule>,
    /// Product categories customs hold, and the carriers to avoid for them (handbook 002: wood
    /// and feathers, avoid DHL).
    pub category_avoid_carriers: BTreeMap<String, Vec<String>>,
    /// Carriers to avoid per destination (handbook 002: Germany, avoid EMS).
    pub country_avoid_carriers: BTreeMap<String, Vec<String>>,
    /// Declared-value rules by country (ISO alpha-2) or by a region of `regions`.
    pub customs: BTreeMap<String, CustomsRule>,
    pub regions: BTreeMap<String, Vec<String>>,
    /// What one unit of each currency is worth in US dollars: landed costs are compared and
    /// declared values converted with these.
    pub currency_rates: BTreeMap<String, f64>,
    /// A supplier raising an offer's cost by more than this percentage raises a notice.
    pub price_rise_notice_percent: f64,
}

fn rule(currency: &str, max: f64, bands: &[(Option<u32>, f64, f64)]) -> CustomsRule {
    CustomsRule {
        currency: currency.into(),
        max,
        bands: bands
            .iter()
            .map(|&(up_to_grams, min, max)| WeightBand {
                up_to_grams,
                min,
                max,
            })
            .collect(),
    }
}

impl Default for RoutingPolicy {
    /// The handbooks' numbers (shared/domain.md).
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Self {
            strategy: Strategy::Priority,
            unknown_stock_available: true,
            daily_caps: BTreeMap::new(),
            ack_deadline: Duration::from_secs(24 * 3600),
            stock_out_contact: Duration::from_secs(24 * 3600),
            hold_above: Some(Amount {
                amount: 1000.0,
                currency: "USD".into(),
            }),
            blocked_brands: Vec::new(),
            address: AddressPolicy::default(),
            note_rules: vec![
                NoteRule {
                    keywords: strings(&["gift wrap", "gift-wrap", "礼品包装", "礼物包装"]),
                    capability: "gift_wrap".into(),
                },
                NoteRule {
                    keywords: strings(&["colour", "color", "颜色"]),
                    capability: "colour_choice".into(),
                },
                NoteRule {
                    keywords: strings(&["size", "尺码", "尺寸"]),
                    capability: "size_choice".into(),
                },
                NoteRule {
                    keywords: strings(&["no invoice", "no price", "不要发票", "不放发票"]),
                    capability: "blind_packing".into(),
                },
            ],
            category_avoid_carriers: [
                ("wood".to_string(), strings(&["DHL"])),
                ("feathers".to_string(), strings(&["DHL"])),
            ]
            .into(),
            country_avoid_carriers: [("DE".to_string(), strings(&["EMS"]))].into(),
            customs: [
                // US parcels under 3 kg: declare 5 to 30 USD, never over 50.
                ("US", rule("USD", 50.0, &[(Some(3000), 5.0, 30.0)])),
                // Germany: at most 20 EUR; under 500 g 5 EUR, heavier 10 to 20.
                (
                    "DE",
                    rule("EUR", 20.0, &[(Some(500), 5.0, 5.0), (None, 10.0, 20.0)]),
                ),
                ("GB", rule("GBP", 17.0, &[])),
                ("DK", rule("USD", 13.0, &[])),
                ("PL", rule("USD", 20.0, &[])),
                ("IT", rule("USD", 40.0, &[])),
                ("NO", rule("USD", 130.0, &[])),
                ("SE", rule("USD", 130.0, &[])),
                ("FI", rule("USD", 130.0, &[])),
                ("AU", rule("USD", 1000.0, &[])),
                ("latin_america", rule("USD", 50.0, &[])),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            regions: [(
                "latin_america".to_string(),
                strings(&[
                    "AR", "BO", "BR", "CL", "CO", "CR", "CU", "DO", "EC", "GT", "HN", "MX", "NI",
                    "PA", "PE", "PR", "PY", "SV", "UY", "VE",
                ]),
            )]
            .into(),
            // Indicative rates; the shop keeps them current.
            currency_rates: [
                ("USD", 1.0),
                ("EUR", 1.08),
                ("GBP", 1.27),
                ("CNY", 0.14),
                ("JPY", 0.0067),
                ("CAD", 0.73),
                ("AUD", 0.66),
                ("HKD", 0.128),
                ("VND", 0.000039),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            price_rise_notice_percent: 10.0,
        }
    }
}

impl RoutingPolicy {
    /// The customs rule for a destination: its own, else its region's.
    pub fn customs_rule(&self, country: &str) -> Option<&CustomsRule> {
        self.customs.get(country).or_else(|| {
            self.regions
                .iter()
                .find(|(_, countries)| countries.iter().any(|c| c == country))
                .and_then(|(region, _)| self.customs.get(region))
        })
    }
}

/// A policy document: its name in the API and the table, and its defaults.
pub trait Policy: Serialize + DeserializeOwned + Default {
    const NAME: &'static str;
}

impl Policy for RoutingPolicy {
    const NAME: &'static str = "routing";
}

/// The names `PUT /api/v1/policies/{name}` takes.
const NAMES: &[&str] = &[RoutingPolicy::NAME];

/// Where a stored document applies: every channel, or one channel connection (by name).
fn scope_key(channel: Option<&str>) -> String {
    channel.map_or_else(|| "global".to_string(), |c| format!("channel:{c}"))
}

/// `over` merged into `base`: objects key by key, anything else replaced.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

async fn stored(
    conn: &mut sqlx::AnyConnection,
    name: &str,
    scope: &str,
) -> anyhow::Result<Option<Value>> {
    let text: Option<String> =
        sqlx::query_scalar("select value from policies where name = $1 and scope = $2")
            .bind(name)
            .bind(scope)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
}

/// The policy in force for a channel connection (or for all of them): the defaults, the global
/// document, the channel's. Read on `conn`, so that a transaction sees its own changes.
pub async fn effective<P: Policy>(
    conn: &mut sqlx::AnyConnection,
    channel: Option<&str>,
) -> anyhow::Result<P> {
    let mut value = serde_json::to_value(P::default())?;
    if let Some(global) = stored(conn, P::NAME, "global").await? {
        merge(&mut value, &global);
    }
    if let Some(channel) = channel
        && let Some(own) = stored(conn, P::NAME, &scope_key(Some(channel))).await?
    {
        merge(&mut value, &own);
    }
    Ok(serde_json::from_value(value)?)
}

#[derive(Debug, Deserialize)]
pub struct ScopeQuery {
    /// A channel connection's name: its own document; none: the global one.
    pub channel: Option<String>,
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

/// The document in force with every default filled in, and what is stored for the scope.
async fn describe(db: &Db, name: &str, channel: Option<&str>) -> ApiResult<Value> {
    let mut conn = db.pool.acquire().await?;
    let effective = match name {
        RoutingPolicy::NAME => {
            serde_json::to_value(effective::<RoutingPolicy>(&mut conn, channel).await?)
                .map_err(anyhow::Error::from)?
        }
        _ => return Err(ApiError::NotFound(format!("no policy `{name}`"))),
    };
    let stored = stored(&mut conn, name, &scope_key(channel)).await?;
    Ok(
        json!({ "name": name, "scope": scope_key(channel), "effective": effective, "stored": stored }),
    )
}

async fn get_handler(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ScopeQuery>,
) -> ApiResult<Json<Value>> {
    check_name(&name)?;
    Ok(Json(
        describe(&state.db, &name, q.channel.as_deref()).await?,
    ))
}

/// Stores the scope's document (a partial one: what it changes), after checking that the policy
/// in force with it is valid: 422 with the first problem otherwise.
async fn put_handler(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ScopeQuery>,
    Json(document): Json<Value>,
) -> ApiResult<Json<Value>> {
    check_name(&name)?;
    if !document.is_object() {
        return Err(ApiError::Unprocessable(
            "a policy document is a JSON object".into(),
        ));
    }
    let scope = scope_key(q.channel.as_deref());
    let mut value = serde_json::to_value(RoutingPolicy::default()).map_err(anyhow::Error::from)?;
    if q.channel.is_some()
        && let Some(global) = stored(&mut *state.db.pool.acquire().await?, &name, "global").await?
    {
        merge(&mut value, &global);
    }
    merge(&mut value, &document);
    serde_json::from_value::<RoutingPolicy>(value)
        .map_err(|e| ApiError::Unprocessable(format!("policy `{name}`: {e}")))?;
    sqlx::query(
        "insert into policies (name, scope, value, updated_at_ms) values ($1, $2, $3, $4) \
         on conflict (name, scope) do update set value = excluded.value, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(&name)
    .bind(&scope)
    .bind(document.to_string())
    .bind(now_ms())
    .execute(&state.db.pool)
    .await?;
    tracing::info!(policy = %name, scope = %scope, "policy changed");
    Ok(Json(
        describe(&state.db, &name, q.channel.as_deref()).await?,
    ))
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/policies/{name}", get(get_handler).put(put_handler))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_handbooks_numbers() {
        let p = RoutingPolicy::default();
        assert_eq!(p.ack_deadline, Duration::from_secs(86_400));
        assert_eq!(p.stock_out_contact, Duration::from_secs(86_400));
        let cap = |c: &str| {
            p.customs_rule(c)
                .map(|r| (r.currency.as_str(), r.max))
                .unwrap()
        };
        assert_eq!(cap("US"), ("USD", 50.0));
        assert_eq!(cap("DE"), ("EUR", 20.0));
        assert_eq!(cap("GB"), ("GBP", 17.0));
        assert_eq!(cap("DK"), ("USD", 13.0));
        assert_eq!(cap("PL"), ("USD", 20.0));
        assert_eq!(cap("IT"), ("USD", 40.0));
        for nordic in ["NO", "SE", "FI"] {
            assert_eq!(cap(nordic), ("USD", 130.0));
        }
        assert_eq!(cap("AU"), ("USD", 1000.0));
        assert_eq!(cap("MX"), ("USD", 50.0), "latin america by region");
        assert_eq!(cap("BR"), ("USD", 50.0));
        assert!(p.customs_rule("FR").is_none());
        assert_eq!(p.category_avoid_carriers["wood"], ["DHL"]);
        assert_eq!(p.category_avoid_carriers["feathers"], ["DHL"]);
        assert_eq!(p.country_avoid_carriers["DE"], ["EMS"]);
    }

    #[test]
    fn documents_merge_over_the_defaults_key_by_key() {
        let mut base = serde_json::to_value(RoutingPolicy::default()).unwrap();
        merge(
            &mut base,
            &json!({ "strategy": "fastest", "customs": { "FR": { "currency": "EUR", "max": 22.0 } }, "daily_caps": { "acme": 3 } }),
        );
        let p: RoutingPolicy = serde_json::from_value(base).unwrap();
        assert_eq!(p.strategy, Strategy::Fastest);
        assert_eq!(p.daily_caps["acme"], 3);
        assert_eq!(p.customs_rule("FR").unwrap().max, 22.0);
        assert_eq!(p.customs_rule("US").unwrap().max, 50.0, "others stay");
        // A duration as humans write it.
        let mut base = serde_json::to_value(RoutingPolicy::default()).unwrap();
        merge(&mut base, &json!({ "ack_deadline": "6h" }));
        let p: RoutingPolicy = serde_json::from_value(base).unwrap();
        assert_eq!(p.ack_deadline, Duration::from_secs(6 * 3600));
        // Unknown fields are refused.
        let mut base = serde_json::to_value(RoutingPolicy::default()).unwrap();
        merge(&mut base, &json!({ "stratgy": "fastest" }));
        assert!(serde_json::from_value::<RoutingPolicy>(base).is_err());
    }
}
