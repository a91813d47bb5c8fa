//! The declared customs value of a parcel (handbook 002): the goods' value, converted to the
//! destination rule's currency with the policy's rates, and clamped by the rule (a cap, and
//! bands by weight). Amounts convert through their currency's minor unit (ISO 4217).

use super::decide::LineToRoute;
use crate::policy::RoutingPolicy;
use crate::store::offers::Product;
use daifa_plugin_host::Money;
use std::collections::BTreeMap;

pub use crate::money::{to_major, to_minor};

/// `money` in major units of `currency`, through the policy's US-dollar rates.
pub fn convert(money: &Money, currency: &str, policy: &RoutingPolicy) -> Option<f64> {
    let major = to_major(money.amount_minor, &money.currency)?;
    if money.currency == currency {
        return Some(major);
    }
    let from = policy.currency_rates.get(&money.currency)?;
    let to = policy.currency_rates.get(currency)?;
    (*to > 0.0).then(|| major * from / to)
}

/// The value to declare for `lines` sent to `country`, and how it was reached; an error when the
/// value cannot be converted into the rule's currency (a missing rate).
pub fn declared_value(
    policy: &RoutingPolicy,
    country: &str,
    lines: &[&LineToRoute],
    products: &BTreeMap<String, Product>,
) -> Result<(Option<Money>, String), String> {
    let Some(first) = lines.first() else {
        return Ok((None, "no goods".into()));
    };
    let currency = first.unit_price.currency.clone();
    let goods_minor: i64 = lines
        .iter()
        .map(|l| {
            l.unit_price
                .amount_minor
                .saturating_mul(i64::from(l.quantity))
        })
        .sum();
    let goods = Money {
        amount_minor: goods_minor,
        currency: currency.clone(),
    };
    let Some(rule) = policy.customs_rule(country) else {
        return Ok((
            Some(goods),
            format!("the goods' value: no declared-value rule for {country}"),
        ));
    };
    let value = convert(&goods, &rule.currency, policy).ok_or_else(|| {
        format!(
            "cannot declare the value of a parcel to {country}: no rate to convert {currency} into {}",
            rule.currency
        )
    })?;
    // The parcel's weight, when every line's product weight is known.
    let weight: Option<u64> = lines
        .iter()
        .map(|l| {
            products
                .get(&l.storefront_sku)
                .and_then(|p| p.weight_grams)
                .and_then(|w| u64::try_from(w).ok())
                .map(|w| w * u64::from(l.quantity))
        })
        .sum();
    let band = match weight {
        Some(w) => rule
            .bands
            .iter()
            .find(|b| b.up_to_grams.is_none_or(|up_to| w <= u64::from(up_to))),
        // Unknown weight: only a band without an upper weight can apply.
        None => rule.bands.iter().find(|b| b.up_to_grams.is_none()),
    };
    let (low, high) = match band {
        Some(b) => (b.min, b.max.min(rule.max)),
        None => (0.0, rule.max),
    };
    let declared = value.clamp(low.min(high), high);
    let weight_text = weight.map_or_else(|| "weight unknown".to_string(), |w| format!("{w} g"));
    let reason = format!(
        "goods {value:.2} {cur}, {weight_text}: {country} allows {low:.2} to {high:.2} {cur}",
        cur = rule.currency
    );
    let amount_minor = to_minor(declared, &rule.currency).ok_or_else(|| {
        format!(
            "the customs rule of {country} names an unknown currency {}",
            rule.currency
        )
    })?;
    Ok((
        Some(Money {
            amount_minor,
            currency: rule.currency.clone(),
        }),
        reason,
    ))
}
