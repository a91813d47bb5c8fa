//! The routing decision, as a pure function of the order, its lines' offers and the policy: no
//! database, no clock. Its trace says, for every line and every offer, why the offer was chosen,
//! eligible, or left out.

use super::{HoldKind, Offer, Product};
use crate::policy::{PaymentChoice, PaymentPolicy, RoutingPolicy, Strategy};
use daifa_plugin_host::{Address, Money, Order, PaymentStatus};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// An order line to route, as routing sees it: a substitution may have replaced the storefront's
/// SKU (the stock-out choice "an alternative product").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineToRoute {
    pub external_line_id: String,
    pub storefront_sku: String,
    pub quantity: u32,
    pub unit_price: Money,
    pub title: String,
    pub note: Option<String>,
}

/// What one decision is made from.
pub struct Inputs<'a> {
    pub order: &'a Order,
    pub lines: &'a [LineToRoute],
    /// The routing policies of SKUs whose category has its own (by storefront SKU): which offers
    /// may ship a line (stock, caps, notes, carriers) follows the line's; what concerns the
    /// whole order (payment, address, brands, value, the strategy, customs) the order's.
    pub line_policies: &'a BTreeMap<String, RoutingPolicy>,
    /// The offers of the lines' SKUs.
    pub offers: &'a [Offer],
    /// What the shop knows of the lines' SKUs, by SKU.
    pub products: &'a BTreeMap<String, Product>,
    /// Supplier orders each supplier connection (by id) has taken today.
    pub used_today: &'a BTreeMap<String, u32>,
    /// (line, supplier connection) pairs that failed before (rejected, unacknowledged, dead).
    pub excluded: &'a BTreeSet<(String, String)>,
    /// Holds the operator released for this order: their checks are not made again.
    pub released: &'a BTreeSet<HoldKind>,
    /// Route the lines that have offers and leave the others waiting (the stock-out choice "a
    /// later date"), instead of holding the order.
    pub allow_partial: bool,
}

/// The decision and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub strategy: Strategy,
    pub outcome: Outcome,
    pub lines: Vec<LineTrace>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// One supplier order per supplier; `waiting` lines have no offer now (partial routing).
    Route {
        orders: Vec<Planned>,
        waiting: Vec<String>,
    },
    Hold {
        kind: HoldKind,
        reason: String,
    },
}

/// A supplier order to place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Planned {
    pub supplier_connection_id: String,
    pub supplier: String,
    pub lines: Vec<PlannedLine>,
    /// The customs value to declare, clamped by the destination's rule.
    pub declared_value: Option<Money>,
    /// How the declared value was reached.
    pub declared_reason: String,
    /// Carriers the supplier must not use for this parcel.
    pub avoid_carriers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedLine {
    pub external_line_id: String,
    pub storefront_sku: String,
    pub supplier_sku: String,
    pub quantity: u32,
    pub offer_id: String,
}

/// What became of each offer of a line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineTrace {
    pub external_line_id: String,
    pub storefront_sku: String,
    pub quantity: u32,
    pub offers: Vec<OfferTrace>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OfferTrace {
    pub offer_id: String,
    pub supplier: String,
    pub supplier_sku: String,
    /// `chosen`, `eligible`, or why it was left out.
    pub verdict: String,
}

/// Why an offer cannot serve a line.
#[derive(Debug, Clone, PartialEq)]
enum Refusal {
    /// Only the buyer's note stands in the way.
    Note(String),
    Other(String),
}

impl Refusal {
    fn text(&self) -> &str {
        match self {
            Self::Note(s) | Self::Other(s) => s,
        }
    }
}

pub fn decide(policy: &RoutingPolicy, input: &Inputs<'_>) -> Decision {
    let mut lines: Vec<LineTrace> = input
        .lines
        .iter()
        .map(|l| LineTrace {
            external_line_id: l.external_line_id.clone(),
            storefront_sku: l.storefront_sku.clone(),
            quantity: l.quantity,
            offers: Vec::new(),
        })
        .collect();
    let hold = |kind, reason: String, lines: Vec<LineTrace>| Decision {
        strategy: policy.strategy,
        outcome: Outcome::Hold { kind, reason },
        lines,
    };
    if input.order.lines.is_empty() {
        return hold(HoldKind::Incomplete, "order has no lines".into(), lines);
    }
    if input.lines.is_empty() {
        return hold(
            HoldKind::Incomplete,
            "order has no line with a quantity to ship".into(),
            lines,
        );
    }
    if !input.released.contains(&HoldKind::Payment)
        && let Some(reason) = unpaid(&policy.payment, input.order.payment)
    {
        return hold(HoldKind::Payment, reason, lines);
    }
    let Some(address) = &input.order.shipping_address else {
        return hold(
            HoldKind::Address,
            "order has no shipping address".into(),
            lines,
        );
    };
    if !input.released.contains(&HoldKind::Address)
        && let Err(reason) = check_address(policy, address)
    {
        return hold(HoldKind::Address, reason, lines);
    }
    if !input.released.contains(&HoldKind::Brand)
        && let Some(reason) = blocked_brand(policy, input)
    {
        return hold(HoldKind::Brand, reason, lines);
    }
    if !input.released.contains(&HoldKind::Value)
        && let Some(reason) = above_threshold(policy, input.order)
    {
        return hold(HoldKind::Value, reason, lines);
    }
    let country = address.country_code.as_str();
    let honour_notes = !input.released.contains(&HoldKind::Note);

    // Every line's eligible offers, and why the others are not.
    let mut eligible: Vec<Vec<&Offer>> = Vec::with_capacity(input.lines.len());
    let mut waiting = Vec::new();
    for (line, trace) in input.lines.iter().zip(lines.iter_mut()) {
        let policy = input
            .line_policies
            .get(&line.storefront_sku)
            .unwrap_or(policy);
        let needs = if honour_notes {
            capabilities_asked(
                policy,
                input.order.buyer_note.as_deref(),
                line.note.as_deref(),
            )
        } else {
            BTreeSet::new()
        };
        let avoid = carriers_to_avoid(policy, input.products.get(&line.storefront_sku), country);
        let mut ok = Vec::new();
        let mut only_note = false;
        for offer in input
            .offers
            .iter()
            .filter(|o| o.storefront_sku == line.storefront_sku)
        {
            let verdict = match refusal(policy, input, line, offer, country, &avoid, &needs) {
                None => {
                    ok.push(offer);
                    "eligible".to_string()
                }
                Some(r) => {
                    only_note |= matches!(r, Refusal::Note(_));
                    r.text().to_string()
                }
            };
            trace.offers.push(OfferTrace {
                offer_id: offer.id.clone(),
                supplier: offer.supplier.clone(),
                supplier_sku: offer.supplier_sku.clone(),
                verdict,
            });
        }
        if ok.is_empty() {
            if only_note {
                let asked: Vec<&str> = needs.iter().map(String::as_str).collect();
                return hold(
                    HoldKind::Note,
                    format!(
                        "line {} ({}): the buyer's note asks for {} which no offer that could ship it can honour; confirm with the customer",
                        line.external_line_id,
                        line.storefront_sku,
                        asked.join(", ")
                    ),
                    lines,
                );
            }
            if !input.allow_partial {
                let why: Vec<String> = trace
                    .offers
                    .iter()
                    .map(|o| format!("{} {}: {}", o.supplier, o.supplier_sku, o.verdict))
                    .collect();
                let why = if why.is_empty() {
                    "no offer".to_string()
                } else {
                    why.join("; ")
                };
                return hold(
                    HoldKind::StockOut,
                    format!(
                        "no offer can ship line {} ({}): {why}",
                        line.external_line_id, line.storefront_sku
                    ),
                    lines,
                );
            }
            waiting.push(line.external_line_id.clone());
        }
        eligible.push(ok);
    }

    let routable: Vec<usize> = (0..input.lines.len())
        .filter(|&i| !eligible[i].is_empty())
        .collect();
    let choice = choose(policy, input, &eligible, &routable);

    // One supplier order per supplier, lines in the order's order.
    let mut by_supplier: BTreeMap<String, Vec<(usize, &Offer)>> = BTreeMap::new();
    for (i, offer) in choice {
        by_supplier
            .entry(offer.supplier_connection_id.clone())
            .or_default()
            .push((i, offer));
    }
    let mut orders = Vec::new();
    for (supplier_connection_id, chosen) in by_supplier {
        let mut avoid = BTreeSet::new();
        let mut planned_lines = Vec::new();
        for &(i, offer) in &chosen {
            let line = &input.lines[i];
            avoid.extend(carriers_to_avoid(
                input
                    .line_policies
                    .get(&line.storefront_sku)
                    .unwrap_or(policy),
                input.products.get(&line.storefront_sku),
                country,
            ));
            planned_lines.push(PlannedLine {
                external_line_id: line.external_line_id.clone(),
                storefront_sku: line.storefront_sku.clone(),
                supplier_sku: offer.supplier_sku.clone(),
                quantity: line.quantity,
                offer_id: offer.id.clone(),
            });
            if let Some(t) = lines[i].offers.iter_mut().find(|t| t.offer_id == offer.id) {
                t.verdict = "chosen".into();
            }
        }
        let goods: Vec<&LineToRoute> = chosen.iter().map(|&(i, _)| &input.lines[i]).collect();
        let (declared_value, declared_reason) =
            match super::customs::declared_value(policy, country, &goods, input.products) {
                Ok(d) => d,
                Err(reason) if input.released.contains(&HoldKind::Customs) => (None, reason),
                Err(reason) => return hold(HoldKind::Customs, reason, lines),
            };
        orders.push(Planned {
            supplier: chosen[0].1.supplier.clone(),
            supplier_connection_id,
            lines: planned_lines,
            declared_value,
            declared_reason,
            avoid_carriers: avoid.into_iter().collect(),
        });
    }
    Decision {
        strategy: policy.strategy,
        outcome: Outcome::Route { orders, waiting },
        lines,
    }
}

/// Why `offer` cannot ship `line`, or `None` when it can.
fn refusal(
    policy: &RoutingPolicy,
    input: &Inputs<'_>,
    line: &LineToRoute,
    offer: &Offer,
    country: &str,
    avoid: &BTreeSet<String>,
    needs: &BTreeSet<String>,
) -> Option<Refusal> {
    let other = |s: String| Some(Refusal::Other(s));
    if !offer.enabled {
        return other("disabled".into());
    }
    if offer.discontinued {
        return other("discontinued by the supplier".into());
    }
    if input.excluded.contains(&(
        line.external_line_id.clone(),
        offer.supplier_connection_id.clone(),
    )) {
        return other("this supplier failed this line before".into());
    }
    if !offer.ships_to.is_empty() && !offer.ships_to.iter().any(|c| c == country) {
        return other(format!("does not ship to {country}"));
    }
    match offer.stock {
        Some(stock) if stock < i64::from(line.quantity) => {
            return other(format!("out of stock ({stock} for {})", line.quantity));
        }
        None if !policy.unknown_stock_available => return other("stock unknown".into()),
        _ => {}
    }
    if let Some(cap) = policy.daily_caps.get(&offer.supplier) {
        let used = input
            .used_today
            .get(&offer.supplier_connection_id)
            .copied()
            .unwrap_or(0);
        if used >= *cap {
            return other(format!("daily cap reached ({used} of {cap})"));
        }
    }
    if !offer.carriers.is_empty()
        && offer
            .carriers
            .iter()
            .all(|c| avoid.iter().any(|a| a.eq_ignore_ascii_case(c)))
    {
        return other(format!(
            "ships only with {} (avoided here)",
            offer.carriers.join(", ")
        ));
    }
    let missing: Vec<&str> = needs
        .iter()
        .filter(|n| !offer.capabilities.iter().any(|c| c == *n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Some(Refusal::Note(format!(
            "cannot honour the buyer's note (needs {})",
            missing.join(", ")
        )));
    }
    None
}

/// The offer chosen for each routable line: on one supplier when one can ship all of them,
/// else the best offer of each line (a split).
fn choose<'o>(
    policy: &RoutingPolicy,
    input: &Inputs<'_>,
    eligible: &[Vec<&'o Offer>],
    routable: &[usize],
) -> Vec<(usize, &'o Offer)> {
    let best = |candidates: &mut dyn Iterator<Item = &'o Offer>, i: usize| {
        candidates.min_by(|a, b| {
            key(policy, a, input.lines[i].quantity)
                .partial_cmp(&key(policy, b, input.lines[i].quantity))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.id.cmp(&b.id))
        })
    };
    let suppliers: BTreeSet<&str> = routable
        .iter()
        .flat_map(|&i| {
            eligible[i]
                .iter()
                .map(|o| o.supplier_connection_id.as_str())
        })
        .collect();
    let mut whole: Option<(Key, Vec<(usize, &'o Offer)>)> = None;
    for supplier in suppliers {
        let mut picks = Vec::new();
        for &i in routable {
            let mut of_supplier = eligible[i]
                .iter()
                .copied()
                .filter(|o| o.supplier_connection_id == supplier);
            match best(&mut of_supplier, i) {
                Some(o) => picks.push((i, o)),
                None => break,
            }
        }
        if picks.len() != routable.len() {
            continue;
        }
        let total = aggregate(policy, input, &picks);
        if whole.as_ref().is_none_or(|(k, _)| total < *k) {
            whole = Some((total, picks));
        }
    }
    if let Some((_, picks)) = whole {
        return picks;
    }
    routable
        .iter()
        .filter_map(|&i| best(&mut eligible[i].iter().copied(), i).map(|o| (i, o)))
        .collect()
}

/// How an offer ranks for a line under the strategy: lower is better.
type Key = (f64, f64);

fn key(policy: &RoutingPolicy, offer: &Offer, quantity: u32) -> Key {
    let cost = landed_cost_usd(policy, offer, quantity).unwrap_or(f64::INFINITY);
    let priority = offer.priority as f64;
    let lead = offer.lead_time_days.map_or(f64::INFINITY, |d| d as f64);
    match policy.strategy {
        Strategy::Priority => (priority, cost),
        Strategy::LowestLandedCost => (cost, priority),
        Strategy::Fastest => (lead, priority),
    }
}

/// How a whole-order choice of one supplier ranks: the sum of the lines' keys (the slowest line
/// for `fastest`).
fn aggregate(policy: &RoutingPolicy, input: &Inputs<'_>, picks: &[(usize, &Offer)]) -> Key {
    let keys = picks
        .iter()
        .map(|&(i, o)| key(policy, o, input.lines[i].quantity));
    match policy.strategy {
        Strategy::Fastest => keys.fold((0.0, 0.0), |(a, b), (x, y)| (a.max(x), b + y)),
        _ => keys.fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y)),
    }
}

/// Unit cost plus shipping, times the quantity, in US dollars; none when unknown.
pub fn landed_cost_usd(policy: &RoutingPolicy, offer: &Offer, quantity: u32) -> Option<f64> {
    let currency = offer.currency.as_deref()?;
    let unit = offer.unit_cost_minor? + offer.shipping_cost_minor.unwrap_or(0);
    let major = super::customs::to_major(unit, currency)?;
    Some(major * f64::from(quantity) * policy.currency_rates.get(currency)?)
}

/// Why an order may not ship yet for its payment, by the policy; none: it may. An order whose
/// storefront says nothing of payment (a plugin built before WIT 0.4) ships, as it did before.
pub fn unpaid(policy: &PaymentPolicy, payment: Option<PaymentStatus>) -> Option<String> {
    let payment = payment?;
    if !policy.require_paid {
        return None;
    }
    let why = match payment {
        PaymentStatus::Paid | PaymentStatus::PartiallyRefunded => return None,
        PaymentStatus::Authorized if policy.authorized == PaymentChoice::Ship => return None,
        PaymentStatus::CashOnDelivery if policy.cash_on_delivery == PaymentChoice::Ship => {
            return None;
        }
        PaymentStatus::Authorized => "authorized but not captured",
        PaymentStatus::CashOnDelivery => "cash on delivery",
        PaymentStatus::Pending => "not paid yet",
        PaymentStatus::PartiallyPaid => "paid in part",
        PaymentStatus::Refunded => "refunded",
        PaymentStatus::Voided => "voided (the payment failed or expired)",
    };
    Some(format!(
        "payment is {why}: the order ships once the storefront says it is paid"
    ))
}

fn check_address(policy: &RoutingPolicy, a: &Address) -> Result<(), String> {
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    let mut missing = Vec::new();
    for field in &policy.address.required {
        let absent = match field.as_str() {
            "name" => blank(&a.name),
            "line1" => a.line1.trim().is_empty(),
            "city" => a.city.trim().is_empty(),
            "postal_code" => {
                blank(&a.postal_code) && !policy.address.no_postal_code.contains(&a.country_code)
            }
            "phone" => blank(&a.phone),
            "province" => blank(&a.province) && blank(&a.province_code),
            _ => false,
        };
        if absent {
            missing.push(field.as_str());
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "the shipping address is incomplete: no {}",
            missing.join(", ")
        ));
    }
    let text = [
        a.name.as_deref(),
        a.company.as_deref(),
        Some(&a.line1),
        a.line2.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
    .to_lowercase();
    if let Some(word) = policy
        .address
        .suspicious
        .iter()
        .find(|w| text.contains(&w.to_lowercase()))
    {
        return Err(format!(
            "the shipping address looks suspicious: it mentions `{word}`"
        ));
    }
    Ok(())
}

fn blocked_brand(policy: &RoutingPolicy, input: &Inputs<'_>) -> Option<String> {
    for line in input.lines {
        let brand = input
            .products
            .get(&line.storefront_sku)
            .and_then(|p| p.brand.as_deref());
        let title = line.title.to_lowercase();
        if let Some(blocked) = policy.blocked_brands.iter().find(|b| {
            let b = b.to_lowercase();
            brand.is_some_and(|brand| brand.to_lowercase() == b)
                || title
                    .split(|c: char| !c.is_alphanumeric())
                    .any(|word| word == b)
        }) {
            return Some(format!(
                "line {} ({}) is of the blocked brand `{blocked}` (counterfeits must not ship)",
                line.external_line_id, line.storefront_sku
            ));
        }
    }
    None
}

fn above_threshold(policy: &RoutingPolicy, order: &Order) -> Option<String> {
    let limit = policy.hold_above.as_ref()?;
    let total = super::customs::convert(&order.total, &limit.currency, policy)?;
    (total > limit.amount).then(|| {
        format!(
            "the order's total {:.2} {} is above {:.2} {}: check it before it ships",
            super::customs::to_major(order.total.amount_minor, &order.currency).unwrap_or(0.0),
            order.currency,
            limit.amount,
            limit.currency
        )
    })
}

/// The capabilities the notes ask for, by the policy's keyword rules.
pub fn capabilities_asked(
    policy: &RoutingPolicy,
    order_note: Option<&str>,
    line_note: Option<&str>,
) -> BTreeSet<String> {
    let text = [order_note, line_note]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    policy
        .note_rules
        .iter()
        .filter(|r| r.keywords.iter().any(|k| text.contains(&k.to_lowercase())))
        .map(|r| r.capability.clone())
        .collect()
}

fn carriers_to_avoid(
    policy: &RoutingPolicy,
    product: Option<&Product>,
    country: &str,
) -> BTreeSet<String> {
    let mut avoid: BTreeSet<String> = policy
        .country_avoid_carriers
        .get(country)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Some(category) = product.and_then(|p| p.category.as_deref())
        && let Some(carriers) = policy.category_avoid_carriers.get(category)
    {
        avoid.extend(carriers.iter().cloned());
    }
    avoid
}

#[cfg(test)]
mod tests;
