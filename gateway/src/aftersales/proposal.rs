//! Decision helpers from the handbooks (002, 004): reship or refund by which loses less, a
//! partial refund before a return for a small defect, what to do with a short shipment.

use super::*;

/// What the handbooks propose for a case: reship or refund by which loses less, a partial
/// refund before a return for a small defect, the choices for a short shipment.
pub async fn proposal(tx: &mut Tx, case: &Case) -> anyhow::Result<Option<Value>> {
    let order = orders::get_in(tx, &case.order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the case's order is missing"))?;
    let canonical = order.canonical_order()?;
    let price: i64 = case
        .lines
        .iter()
        .filter_map(|l| {
            canonical
                .lines
                .iter()
                .find(|o| o.external_line_id == l.external_line_id)
                .map(|o| o.unit_price.amount_minor * i64::from(l.quantity))
        })
        .sum();
    let in_transit = matches!(
        case.return_kind,
        Some(ReturnKind::InTransitReturn | ReturnKind::RefusedParcel)
    ) || case.reason == Some(Reason::Lost);
    if in_transit {
        // Reshipping costs the goods and the freight again; refunding costs what was paid.
        let context = crate::routing::context::OrderContext::of(tx, order.clone()).await?;
        let lines = case.line_quantities();
        let loaded = routing::load_lines(
            tx,
            &order.connection_id,
            &context.scope(),
            context.routing.clone(),
            Some(&order.id),
            false,
            &canonical,
            Some(&lines),
            None,
        )
        .await?;
        let reship_cost: Option<f64> = case
            .lines
            .iter()
            .map(|l| {
                let sku = &loaded
                    .lines
                    .iter()
                    .find(|x| x.external_line_id == l.external_line_id)?
                    .storefront_sku;
                loaded
                    .offers
                    .iter()
                    .filter(|o| &o.storefront_sku == sku && o.enabled && !o.discontinued)
                    .filter_map(|o| routing::decide::landed_cost_usd(&loaded.policy, o, l.quantity))
                    .reduce(f64::min)
            })
            .sum();
        let refund_usd = routing::customs::convert(
            &Money {
                amount_minor: price,
                currency: order.currency.clone(),
            },
            "USD",
            &loaded.policy,
        );
        let (choice, why) = match (reship_cost, refund_usd) {
            (Some(reship), Some(refund)) if reship < refund => (
                "reship",
                format!(
                    "reshipping costs {reship:.2} USD (goods and freight), less than refunding {refund:.2} USD"
                ),
            ),
            (Some(reship), Some(refund)) => (
                "refund",
                format!("refunding {refund:.2} USD loses less than reshipping for {reship:.2} USD"),
            ),
            _ => (
                "refund",
                "the offers' costs are unknown: refunding loses what was paid, nothing more"
                    .to_string(),
            ),
        };
        return Ok(Some(json!({ "propose": choice, "why": why })));
    }
    match case.reason {
        Some(Reason::Damaged | Reason::Quality | Reason::NotAsDescribed)
            if matches!(case.kind, CaseKind::ReturnRefund | CaseKind::Exchange)
                && case.state == CaseState::Requested =>
        {
            let policy = policy_of_case(tx, &order, case).await?;
            let partial = (price as f64 * policy.partial_refund_percent / 100.0).round() as i64;
            Ok(Some(
                json!({ "propose": "partial_compensation", "amount_minor": partial, "currency": order.currency,
                "why": format!("a small defect: offer a partial refund of {}% before a return", policy.partial_refund_percent) }),
            ))
        }
        Some(Reason::WrongQuantity) => Ok(Some(
            json!({ "propose": ["add_to_next_order", "reship", "partial_compensation"],
            "why": "short-shipped (check the parcel's weight and the shipping record): add the missing goods to the customer's next order, reship them, or refund them in part" }),
        )),
        Some(Reason::WrongItem) => Ok(Some(
            json!({ "propose": ["reship", "partial_compensation", "return_refund"],
            "why": "ask for photos; then reship the right item, refund in part, or take it back and refund in full" }),
        )),
        _ => Ok(None),
    }
}
