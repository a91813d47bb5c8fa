//! Routing: which supplier ships which line of an order. A storefront SKU has any number of
//! supplier offers ([`crate::catalogue`]); the decision ([`decide`]) keeps an order on one supplier when
//! one can ship all of it, splits it otherwise, and holds it when a rule says so (an incomplete
//! address, a blocked brand, a value above the threshold, a buyer's note no offer can honour, no
//! offer at all); the declared customs value of each parcel follows the destination's rule
//! ([`customs`]). A supplier that rejects, does not acknowledge in time, or whose push
//! dead-letters hands its lines to the next offer ([`fail_over`]). Holds are released,
//! resolved or cancelled through the API ([`holds`]). Every decision is stored with its reasons;
//! a dry run returns one without acting. Supplier orders, holds and decisions are read and
//! written through their store modules ([`crate::store::supplier_orders`],
//! [`crate::store::holds`], [`crate::store::decisions`]); the catalogue's offers and products
//! through its functions.

pub mod context;
pub mod customs;
pub mod decide;
pub mod holds;
pub mod prefetch;

pub use decide::{Decision, LineToRoute, Outcome, Planned};

use crate::db::{Tx, new_id, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::policy::{self, RoutingPolicy, Scope};
use crate::services::Services;
use crate::store::connections;
use crate::store::decisions::{self, NewDecision};
use crate::store::jobs::{self, JobKind, NewJob};
use crate::store::offers::{self, Offer, Product};
use crate::store::orders::{self, OrderStatus};
use crate::store::supplier_orders::{self, NewLine, NewSupplierOrder, SoStatus};
use crate::worker::Handler;
use axum::Json;
use axum::extract::State;
use axum::routing::post;
use daifa_plugin_host::Order;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Why an order waits for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// No offer can ship a line: the customer is contacted (alternative, later date, or cancel).
    StockOut,
    /// The address is missing, incomplete or suspicious.
    Address,
    /// The order's value is above the policy's threshold.
    Value,
    /// A line is of a blocked brand (counterfeits).
    Brand,
    /// The buyer's note asks for something no offer can honour.
    Note,
    /// The declared customs value cannot be computed (a missing currency rate).
    Customs,
    /// The order has no line to ship.
    Incomplete,
    /// A supplier went on with an order after it was failed over: its replacement waits until
    /// the operator makes sure only one ships.
    DoubleShipment,
    /// The order is not paid (or paid in a way the policy holds: authorized, cash on
    /// delivery): it waits for a copy of the order that says paid, or for the operator.
    Payment,
}

impl HoldKind {
    pub const ALL: [HoldKind; 9] = [
        Self::StockOut,
        Self::Address,
        Self::Value,
        Self::Brand,
        Self::Note,
        Self::Customs,
        Self::Incomplete,
        Self::DoubleShipment,
        Self::Payment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::StockOut => "stock_out",
            Self::Address => "address",
            Self::Value => "value",
            Self::Brand => "brand",
            Self::Note => "note",
            Self::Customs => "customs",
            Self::Incomplete => "incomplete",
            Self::DoubleShipment => "double_shipment",
            Self::Payment => "payment",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What set a routing off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A new order.
    Route,
    /// A supplier failed some lines.
    Fallback,
    /// The operator released a hold.
    Release,
    /// The operator chose for a stock-out (an alternative, a later date).
    Resolve,
    /// The later date of a stock-out came.
    Retry,
    /// The storefront changed the order before any supplier had it.
    Change,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Route => "route",
            Self::Fallback => "fallback",
            Self::Release => "release",
            Self::Resolve => "resolve",
            Self::Retry => "retry",
            Self::Change => "change",
        }
    }
}

/// Everything a decision is made from, loaded in a handful of queries.
pub struct Loaded {
    pub policy: RoutingPolicy,
    /// The routing policies of the lines' SKUs whose product category is not the order's (by
    /// SKU): what concerns one line's goods follows its own category.
    pub line_policies: BTreeMap<String, RoutingPolicy>,
    pub lines: Vec<LineToRoute>,
    pub offers: Vec<Offer>,
    pub products: BTreeMap<String, Product>,
    pub used_today: BTreeMap<String, u32>,
    pub excluded: BTreeSet<(String, String)>,
    pub released: BTreeSet<HoldKind>,
}

/// Loads what routing `order` needs: the lines not yet with a supplier (as substitutions make
/// them), their offers and products, the suppliers' orders of the day, the pairs that failed,
/// the holds released. `order_id` is none for an order not stored (a dry run).
pub async fn load(
    conn: &mut sqlx::AnyConnection,
    channel_connection_id: &str,
    channel_name: &str,
    order_id: Option<&str>,
    order: &Order,
) -> anyhow::Result<Loaded> {
    let scope = context::scope_of(conn, channel_connection_id, channel_name, order).await?;
    let policy: RoutingPolicy = policy::in_scope(conn, &scope).await?;
    load_lines(
        conn,
        channel_connection_id,
        &scope,
        policy,
        order_id,
        order_id.is_none(),
        order,
        None,
        None,
    )
    .await
}

/// As [`load`], under the routing policy the order's context resolved
/// ([`context::OrderContext`]); with `only`, exactly those lines and quantities (a reship, an
/// exchange's replacement), whether or not a supplier has them already. `fresh`: the order has
/// no history yet (stored in this transaction, or not stored: a dry run), so no supplier has
/// its lines, no line was substituted or failed and no hold was released — nothing to read.
#[allow(clippy::too_many_arguments)]
pub async fn load_lines(
    conn: &mut sqlx::AnyConnection,
    channel_connection_id: &str,
    scope: &Scope,
    policy: RoutingPolicy,
    order_id: Option<&str>,
    fresh: bool,
    order: &Order,
    only: Option<&[(String, u32)]>,
    known_products: Option<&BTreeMap<String, Product>>,
) -> anyhow::Result<Loaded> {
    let id = order_id.unwrap_or("");
    let (taken, substitutions) = if fresh {
        Default::default()
    } else {
        (
            supplier_orders::lines_taken(conn, id).await?,
            supplier_orders::substitutions_of(conn, id).await?,
        )
    };
    let wanted = |id: &str, quantity: u32| -> Option<u32> {
        match only {
            Some(only) => only.iter().find(|(l, _)| l == id).map(|(_, q)| *q),
            None => (quantity > 0 && !taken.contains(id)).then_some(quantity),
        }
    };
    let lines: Vec<LineToRoute> = order
        .lines
        .iter()
        .filter_map(|l| wanted(&l.external_line_id, l.quantity).map(|q| (l, q)))
        .map(|(l, quantity)| LineToRoute {
            external_line_id: l.external_line_id.clone(),
            storefront_sku: substitutions
                .get(&l.external_line_id)
                .cloned()
                .unwrap_or_else(|| l.storefront_sku.clone()),
            quantity,
            unit_price: l.unit_price.clone(),
            title: l.title.clone(),
            note: l.note.clone(),
        })
        .collect();
    let mut skus: Vec<&str> = lines.iter().map(|l| l.storefront_sku.as_str()).collect();
    skus.sort_unstable();
    skus.dedup();
    let offers = match prefetch::offers(channel_connection_id, &skus) {
        Some(offers) => offers,
        None => offers::for_skus(conn, channel_connection_id, &skus).await?,
    };
    let products = match known_products {
        Some(known) => known.clone(),
        None => match prefetch::products(channel_connection_id, &skus) {
            Some(products) => products,
            None => offers::products_for(conn, channel_connection_id, &skus).await?,
        },
    };
    let mut line_policies = BTreeMap::new();
    let mut by_category: BTreeMap<String, RoutingPolicy> = BTreeMap::new();
    for sku in &skus {
        let Some(category) = products.get(*sku).and_then(|p| p.category.clone()) else {
            continue;
        };
        if scope.category.as_ref() == Some(&category) {
            continue;
        }
        if !by_category.contains_key(&category) {
            let line_scope = Scope {
                channel: scope.channel.clone(),
                category: Some(category.clone()),
            };
            by_category.insert(category.clone(), policy::in_scope(conn, &line_scope).await?);
        }
        line_policies.insert(sku.to_string(), by_category[&category].clone());
    }
    // Today's count (a range of an index that grows all day) only of suppliers with a cap.
    let capped = |supplier: &str| {
        policy.daily_caps.contains_key(supplier)
            || line_policies
                .values()
                .any(|p: &RoutingPolicy| p.daily_caps.contains_key(supplier))
    };
    let mut suppliers: Vec<&str> = offers
        .iter()
        .filter(|o| capped(&o.supplier))
        .map(|o| o.supplier_connection_id.as_str())
        .collect();
    suppliers.sort_unstable();
    suppliers.dedup();
    let used_today = if suppliers.is_empty() {
        BTreeMap::new()
    } else {
        let day_start = now_ms() - now_ms().rem_euclid(86_400_000);
        // The supplier orders of the batch's earlier orders count: written first.
        crate::db::deferred::flush(conn).await?;
        supplier_orders::counts_since(conn, day_start, &suppliers).await?
    };
    let (excluded, released) = if fresh {
        Default::default()
    } else {
        (
            supplier_orders::failed_pairs(conn, id).await?,
            crate::store::holds::released_kinds(conn, id)
                .await?
                .iter()
                .filter_map(|k| HoldKind::parse(k))
                .collect(),
        )
    };
    Ok(Loaded {
        policy,
        line_policies,
        lines,
        offers,
        products,
        used_today,
        excluded,
        released,
    })
}

/// Decides on loaded inputs.
pub fn decide_loaded(loaded: &Loaded, order: &Order, allow_partial: bool) -> Decision {
    decide::decide(
        &loaded.policy,
        &decide::Inputs {
            order,
            lines: &loaded.lines,
            line_policies: &loaded.line_policies,
            offers: &loaded.offers,
            products: &loaded.products,
            used_today: &loaded.used_today,
            excluded: &loaded.excluded,
            released: &loaded.released,
            allow_partial,
        },
    )
}

/// An order to route.
pub struct Request<'a> {
    pub channel_connection_id: &'a str,
    /// The routing policy in force for the order (its context's).
    pub policy: &'a RoutingPolicy,
    /// Where it applies (the context's): a line of another category follows its own.
    pub scope: Scope,
    pub order_id: &'a str,
    pub order: &'a Order,
    pub trigger: Trigger,
    /// The order was stored in this transaction, `routed` with no hold reason
    /// (`orders::insert_or_find`): it has no supplier orders, substitutions, failed pairs or
    /// holds yet, and routing reads none of them nor sets the status it already has.
    pub fresh: bool,
    /// Ship the lines that have offers, leaving the others waiting (a stock-out's later date).
    pub allow_partial: bool,
    /// The failed supplier order whose lines these are (fallback).
    pub replaces: Option<&'a str>,
    /// A reship or an exchange's replacement: exactly these lines, for this after-sales case,
    /// sending again this supplier order.
    pub reship: Option<Reship<'a>>,
    /// What the shop knows of every SKU of the order's lines, read in this transaction (a
    /// fresh order's context, [`context::OrderContext::products`]); `None`: routing reads it.
    pub known_products: Option<&'a BTreeMap<String, Product>>,
}

/// Goods sent again for an after-sales case.
#[derive(Debug, Clone, Copy)]
pub struct Reship<'a> {
    pub case_id: &'a str,
    pub lines: &'a [(String, u32)],
    /// The supplier order that shipped them first.
    pub of: Option<&'a str>,
}

/// Routes the lines of an order not yet with a supplier, inside the caller's transaction:
/// supplier orders with their push jobs, or a hold; the decision is stored with its reasons.
pub async fn route(tx: &mut Tx, request: Request<'_>) -> anyhow::Result<Decision> {
    let loaded = load_lines(
        tx,
        request.channel_connection_id,
        &request.scope,
        request.policy.clone(),
        Some(request.order_id),
        request.fresh,
        request.order,
        request.reship.map(|r| r.lines),
        request.known_products,
    )
    .await?;
    let decision = decide_loaded(&loaded, request.order, request.allow_partial);
    apply(tx, &loaded.policy, &request, &decision).await?;
    Ok(decision)
}

async fn apply(
    tx: &mut Tx,
    policy: &RoutingPolicy,
    request: &Request<'_>,
    decision: &Decision,
) -> anyhow::Result<()> {
    let order_id = request.order_id;
    let now = now_ms();
    let decision_id = new_id("rd");
    let outcome = match &decision.outcome {
        Outcome::Hold { .. } => "held",
        Outcome::Route { waiting, .. } if !waiting.is_empty() => "partial",
        Outcome::Route { .. } => "routed",
    };
    decisions::insert(
        tx,
        &NewDecision {
            id: &decision_id,
            order_id,
            trigger: request.trigger.as_str(),
            outcome,
            decision: &serde_json::to_string(decision)?,
            created_at_ms: now,
        },
    )
    .await?;
    match &decision.outcome {
        Outcome::Hold { kind, reason } => {
            holds::open(tx, policy, order_id, *kind, reason, &decision_id).await?;
        }
        Outcome::Route {
            orders: planned,
            waiting,
        } => {
            for p in planned {
                let supplier_order_id = new_id("so");
                supplier_orders::insert(
                    tx,
                    &NewSupplierOrder {
                        id: &supplier_order_id,
                        order_id,
                        supplier_connection_id: &p.supplier_connection_id,
                        declared_value_minor: p.declared_value.as_ref().map(|m| m.amount_minor),
                        declared_currency: p.declared_value.as_ref().map(|m| m.currency.as_str()),
                        declared_reason: &p.declared_reason,
                        avoid_carriers: &p.avoid_carriers,
                        replaces_id: request.replaces,
                        decision_id: &decision_id,
                        created_at_ms: now,
                        reship_of: request.reship.and_then(|r| r.of),
                        case_id: request.reship.map(|r| r.case_id),
                        lines: p
                            .lines
                            .iter()
                            .map(|l| NewLine {
                                external_line_id: &l.external_line_id,
                                storefront_sku: &l.storefront_sku,
                                supplier_sku: &l.supplier_sku,
                                quantity: l.quantity,
                                offer_id: &l.offer_id,
                            })
                            .collect(),
                    },
                )
                .await?;
                // A new supplier order's push: its key cannot exist yet.
                jobs::add(
                    tx,
                    vec![(
                        NewJob {
                            kind: JobKind::SupplierSubmit,
                            idempotency_key: format!("{supplier_order_id}.submit"),
                            subject_id: &supplier_order_id,
                            order_id,
                            connection_id: &p.supplier_connection_id,
                        },
                        now_ms(),
                    )],
                )
                .await?;
                orders::record_event(
                    tx,
                    order_id,
                    "order.routed",
                    json!({ "supplier_order_id": supplier_order_id, "supplier_connection_id": p.supplier_connection_id,
                            "supplier": p.supplier, "decision_id": decision_id, "replaces": request.replaces,
                            "declared_value": p.declared_value, "avoid_carriers": p.avoid_carriers,
                            "lines": p.lines.iter().map(|l| json!({"external_line_id": l.external_line_id, "supplier_sku": l.supplier_sku, "quantity": l.quantity, "offer_id": l.offer_id})).collect::<Vec<_>>() }),
                )
                .await?;
            }
            if waiting.is_empty() {
                // A fresh order has no hold to close.
                if !request.fresh {
                    crate::store::holds::close_stock_out(tx, order_id).await?;
                }
                // A reship leaves a shipped order shipped (the table refuses to move it back). A
                // fresh order was stored `routed` in this transaction: nothing to change.
                if !planned.is_empty() && !request.fresh {
                    let _ = orders::set_status(tx, order_id, OrderStatus::Routed, None).await?;
                }
            } else {
                let _ = orders::set_status(
                    tx,
                    order_id,
                    OrderStatus::Routed,
                    Some(&format!("lines waiting for stock: {}", waiting.join(", "))),
                )
                .await?;
                orders::record_event(
                    tx,
                    order_id,
                    "order.partially_routed",
                    json!({ "waiting": waiting, "decision_id": decision_id }),
                )
                .await?;
            }
            tracing::info!(
                order_id,
                suppliers = planned.len(),
                waiting = waiting.len(),
                trigger = request.trigger.as_str(),
                "order routed"
            );
        }
    }
    Ok(())
}

/// Hands the lines of a failed supplier order to the next offers, inside the caller's
/// transaction. `status` says how it failed (`Rejected`, `TimedOut`, `Undeliverable`); the
/// supplier is not tried again for those lines. The move is a compare-and-set: a supplier order
/// that is no longer in a status `status` may follow (acknowledged meanwhile, failed over by a
/// second deadline, cancelled) is left alone and `None` returned. A supplier that may have the
/// order (it was pushed, or its push may have reached it before failing for good) is asked to
/// cancel it, so that it does not ship what the next offer ships.
pub async fn fail_over(
    tx: &mut Tx,
    supplier_order_id: &str,
    status: SoStatus,
    reason: &str,
) -> anyhow::Result<Option<Decision>> {
    debug_assert!(matches!(
        status,
        SoStatus::Rejected | SoStatus::TimedOut | SoStatus::Undeliverable
    ));
    let Some((order_id, supplier_connection_id)) =
        supplier_orders::order_and_supplier(tx, supplier_order_id).await?
    else {
        return Ok(None);
    };
    let supplier = connections::name_in(tx, &supplier_connection_id)
        .await?
        .unwrap_or_default();
    // Serializes with a cancellation of the order and with the supplier's callbacks.
    orders::lock(tx, &order_id).await?;
    let change = supplier_orders::Change {
        external_id: None,
        reason: Some(reason),
    };
    if !supplier_orders::transition(tx, supplier_order_id, status, change)
        .await?
        .happened()
    {
        return Ok(None);
    }
    orders::record_event(
        tx,
        &order_id,
        "supplier_order.failed_over",
        json!({ "supplier_order_id": supplier_order_id, "supplier": supplier, "status": status.as_str(), "reason": reason }),
    )
    .await?;
    // A supplier that refused the order does not have it; any other may.
    if status != SoStatus::Rejected
        && jobs::enqueue(
            tx,
            NewJob {
                kind: JobKind::SupplierCancel,
                idempotency_key: format!("{supplier_order_id}.cancel.failed_over"),
                subject_id: supplier_order_id,
                order_id: &order_id,
                connection_id: &supplier_connection_id,
            },
        )
        .await?
    {
        orders::record_event(
            tx,
            &order_id,
            "supplier_order.cancel_requested",
            json!({ "supplier_order_id": supplier_order_id, "supplier": supplier, "why": "failed_over" }),
        )
        .await?;
    }
    let order = orders::get_in(tx, &order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {order_id} of a supplier order is missing"))?;
    if order.status == OrderStatus::Cancelled.as_str() {
        return Ok(None);
    }
    let context = context::OrderContext::of(tx, order).await?;
    let decision = route(
        tx,
        Request {
            channel_connection_id: &context.order.connection_id,
            policy: &context.routing,
            scope: context.scope(),
            order_id: &order_id,
            order: &context.canonical,
            trigger: Trigger::Fallback,
            fresh: false,
            allow_partial: false,
            replaces: Some(supplier_order_id),
            reship: None,
            known_products: None,
        },
    )
    .await?;
    Ok(Some(decision))
}

/// What [`revive`] did with a supplier order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revival {
    /// It takes its lines back and is pushed again.
    Revived,
    /// It is not an undeliverable supplier order (cancelled since, or its push died without
    /// failing it over): the push runs again and does what the supplier order's status calls
    /// for.
    NotFailedOver,
    /// Another supplier order took its lines since (the ids of the ones that did): pushing it
    /// again would ship them twice.
    LinesTaken(Vec<String>),
}

/// The operator retries a dead push: its supplier order, failed over as undeliverable, takes its
/// lines back if no other supplier order took them, and the stock-out it caused is over when no
/// line of the order is left without a supplier.
pub async fn revive(tx: &mut Tx, supplier_order_id: &str) -> anyhow::Result<Revival> {
    let Some(order_id) = supplier_orders::order_if_undeliverable(tx, supplier_order_id).await?
    else {
        return Ok(Revival::NotFailedOver);
    };
    let taken = supplier_orders::takers_of_lines(tx, &order_id, supplier_order_id).await?;
    if !taken.is_empty() {
        return Ok(Revival::LinesTaken(taken));
    }
    if !supplier_orders::transition_from(
        tx,
        supplier_order_id,
        &[SoStatus::Undeliverable],
        SoStatus::Pending,
        supplier_orders::Change::default(),
    )
    .await?
    .happened()
    {
        return Ok(Revival::NotFailedOver);
    }
    orders::record_event(
        tx,
        &order_id,
        "supplier_order.revived",
        json!({ "supplier_order_id": supplier_order_id }),
    )
    .await?;
    let order = orders::get_in(tx, &order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {order_id} is missing"))?;
    let lines: BTreeSet<String> = order
        .canonical_order()?
        .lines
        .into_iter()
        .filter(|l| l.quantity > 0)
        .map(|l| l.external_line_id)
        .collect();
    let covered = supplier_orders::lines_taken(tx, &order_id).await?;
    if lines.is_subset(&covered) {
        crate::store::holds::close_stock_out(tx, &order_id).await?;
        orders::set_status(tx, &order_id, OrderStatus::Routed, None)
            .await?
            .expected(&order_id, OrderStatus::Routed);
    }
    Ok(Revival::Revived)
}

/// The cost the supplier charged for a line of a supplier order, from the offer it was routed
/// by: unit cost in minor units and currency.
pub async fn line_cost(
    tx: &mut Tx,
    supplier_order_id: &str,
    external_line_id: &str,
) -> sqlx::Result<Option<(Option<i64>, Option<String>)>> {
    match supplier_orders::offer_of_line(tx, supplier_order_id, external_line_id).await? {
        Some(offer_id) => offers::cost_of(tx, &offer_id).await,
        None => Ok(None),
    }
}

/// The held supplier orders of an order with their supplier connections.
pub async fn held_of(tx: &mut Tx, order_id: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(supplier_orders::statuses_of(tx, order_id)
        .await?
        .into_iter()
        .filter(|(_, s, _)| *s == SoStatus::Held)
        .map(|(id, _, supplier)| (id, supplier))
        .collect())
}

// ---- dry run ----

/// `POST /routing/dry-run`: the decision for a stored order (`order_id`) or for an order given
/// in canonical form (`channel` + `order`), without acting on it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRun {
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub order: Option<Order>,
    /// As the stock-out choice "a later date" would route it.
    #[serde(default)]
    pub allow_partial: bool,
}

async fn dry_run(
    State(state): State<Services>,
    Json(req): Json<DryRun>,
) -> ApiResult<Json<Decision>> {
    let (channel, order, order_id) = match (&req.order_id, &req.channel, req.order) {
        (Some(id), None, None) => {
            let stored = orders::get(&state.db, id)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no order `{id}`")))?;
            let channel = connections::by_id(&state.db, &stored.connection_id)
                .await?
                .ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!("the order's connection is missing"))
                })?;
            (channel, stored.canonical_order()?, Some(id.clone()))
        }
        (None, Some(name), Some(order)) => {
            let channel = connections::by_name(&state.db, name)
                .await?
                .ok_or_else(|| ApiError::Unprocessable(format!("no connection named `{name}`")))?;
            (channel, order, None)
        }
        _ => {
            return Err(ApiError::Unprocessable(
                "give either `order_id`, or `channel` and `order` (a canonical order)".into(),
            ));
        }
    };
    let mut conn = state.db.pool.acquire().await?;
    let loaded = load(
        &mut conn,
        &channel.id,
        &channel.name,
        order_id.as_deref(),
        &order,
    )
    .await?;
    Ok(Json(decide_loaded(&loaded, &order, req.allow_partial)))
}

pub fn router() -> axum::Router<Services> {
    axum::Router::new()
        .route("/routing/dry-run", post(dry_run))
        .merge(holds::router())
}

/// The jobs of this stage: a stock-out's later date, when the waiting lines are routed again.
pub fn jobs() -> Vec<Handler> {
    vec![Handler {
        kind: JobKind::RoutingRetry,
        prepare: None,
        run: |s, job| Box::pin(async move { holds::run_retry(s, job).await.map(Into::into) }),
        on_dead: None,
    }]
}
