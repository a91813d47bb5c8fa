//! Table-driven tests of every rule and strategy of the routing decision.

use super::*;
use crate::policy::{Amount, RoutingPolicy, Strategy};
use daifa_plugin_host::{Address, Contact, Money, Order, OrderLine};

fn usd(minor: i64) -> Money {
    Money {
        amount_minor: minor,
        currency: "USD".into(),
    }
}

fn address(country: &str) -> Address {
    Address {
        name: Some("Jane Doe".into()),
        company: None,
        line1: "1 Main St".into(),
        line2: None,
        city: "Town".into(),
        province: None,
        province_code: None,
        postal_code: Some("12345".into()),
        country_code: country.into(),
        phone: None,
    }
}

/// An order of `lines` (id, sku, quantity, unit price in cents) to `country`.
fn order(lines: &[(&str, &str, u32, i64)], country: &str) -> Order {
    let total: i64 = lines.iter().map(|l| i64::from(l.2) * l.3).sum();
    Order {
        external_id: "1001".into(),
        order_number: None,
        storefront: "test".into(),
        currency: "USD".into(),
        subtotal: usd(total),
        shipping: usd(0),
        tax: usd(0),
        total: usd(total),
        placed_at: 0,
        buyer_note: None,
        customer: Contact {
            name: None,
            email: None,
            phone: None,
        },
        shipping_address: Some(address(country)),
        lines: lines
            .iter()
            .map(|(id, sku, q, price)| OrderLine {
                external_line_id: id.to_string(),
                storefront_sku: sku.to_string(),
                title: format!("Product {sku}"),
                variant_title: None,
                quantity: *q,
                unit_price: usd(*price),
                note: None,
            })
            .collect(),
        payment: None,
        updated_at: None,
    }
}

fn lines_of(order: &Order) -> Vec<LineToRoute> {
    order
        .lines
        .iter()
        .filter(|l| l.quantity > 0)
        .map(|l| LineToRoute {
            external_line_id: l.external_line_id.clone(),
            storefront_sku: l.storefront_sku.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price.clone(),
            title: l.title.clone(),
            note: l.note.clone(),
        })
        .collect()
}

/// An offer of `sku` by `supplier` (its connection id is `con_<supplier>`).
fn offer(sku: &str, supplier: &str) -> Offer {
    Offer {
        id: format!("off_{supplier}_{sku}"),
        channel_connection_id: "con_shop".into(),
        channel: "shop".into(),
        storefront_sku: sku.into(),
        supplier_connection_id: format!("con_{supplier}"),
        supplier: supplier.into(),
        supplier_sku: format!("{supplier}-{sku}"),
        unit_cost_minor: None,
        shipping_cost_minor: None,
        currency: None,
        stock: None,
        lead_time_days: None,
        ships_to: Vec::new(),
        carriers: Vec::new(),
        capabilities: Vec::new(),
        priority: 100,
        enabled: true,
        discontinued: false,
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}

fn with(mut o: Offer, f: impl FnOnce(&mut Offer)) -> Offer {
    f(&mut o);
    o
}

fn cost(o: &mut Offer, unit: i64, shipping: i64) {
    o.unit_cost_minor = Some(unit);
    o.shipping_cost_minor = Some(shipping);
    o.currency = Some("USD".into());
}

/// The inputs a test changes; the rest empty.
#[derive(Default)]
struct World {
    products: BTreeMap<String, Product>,
    line_policies: BTreeMap<String, RoutingPolicy>,
    used_today: BTreeMap<String, u32>,
    excluded: BTreeSet<(String, String)>,
    released: BTreeSet<HoldKind>,
    allow_partial: bool,
}

fn run(policy: &RoutingPolicy, order: &Order, offers: &[Offer], w: &World) -> Decision {
    let lines = lines_of(order);
    decide(
        policy,
        &Inputs {
            order,
            lines: &lines,
            line_policies: &w.line_policies,
            offers,
            products: &w.products,
            used_today: &w.used_today,
            excluded: &w.excluded,
            released: &w.released,
            allow_partial: w.allow_partial,
        },
    )
}

/// The plan as (supplier, [line ids]) pairs.
fn plan(d: &Decision) -> Vec<(String, Vec<String>)> {
    match &d.outcome {
        Outcome::Route { orders, .. } => orders
            .iter()
            .map(|p| {
                (
                    p.supplier.clone(),
                    p.lines.iter().map(|l| l.external_line_id.clone()).collect(),
                )
            })
            .collect(),
        Outcome::Hold { kind, reason } => panic!("held ({kind:?}): {reason}"),
    }
}

fn held(d: &Decision) -> (HoldKind, String) {
    match &d.outcome {
        Outcome::Hold { kind, reason } => (*kind, reason.clone()),
        other => panic!("expected a hold, got {other:?}"),
    }
}

fn policy(strategy: Strategy) -> RoutingPolicy {
    RoutingPolicy {
        strategy,
        ..RoutingPolicy::default()
    }
}

#[test]
fn each_strategy_picks_its_offer() {
    let o = order(&[("1", "A", 2, 1000)], "US");
    let offers = [
        // Priority 1, most expensive, slow.
        with(offer("A", "prio"), |x| {
            x.priority = 1;
            cost(x, 900, 100);
            x.lead_time_days = Some(10);
        }),
        // Cheapest landed cost (unit + shipping), priority 50.
        with(offer("A", "cheap"), |x| {
            x.priority = 50;
            cost(x, 300, 150);
            x.lead_time_days = Some(7);
        }),
        // Cheap unit cost but dear shipping: landed cost loses.
        with(offer("A", "dearship"), |x| {
            x.priority = 60;
            cost(x, 100, 500);
            x.lead_time_days = Some(5);
        }),
        // Fastest, unknown cost.
        with(offer("A", "fast"), |x| {
            x.priority = 90;
            x.lead_time_days = Some(1);
        }),
    ];
    let cases = [
        (Strategy::Priority, "prio"),
        (Strategy::LowestLandedCost, "cheap"),
        (Strategy::Fastest, "fast"),
    ];
    for (strategy, expected) in cases {
        let d = run(&policy(strategy), &o, &offers, &World::default());
        assert_eq!(
            plan(&d),
            [(expected.to_string(), vec!["1".to_string()])],
            "{strategy:?}"
        );
        let chosen: Vec<&str> = d.lines[0]
            .offers
            .iter()
            .filter(|t| t.verdict == "chosen")
            .map(|t| t.supplier.as_str())
            .collect();
        assert_eq!(chosen, [expected], "the trace names the choice");
    }
}

#[test]
fn landed_costs_compare_across_currencies_with_the_rates() {
    let o = order(&[("1", "A", 1, 1000)], "US");
    let offers = [
        // 6.00 EUR = 6.48 USD at 1.08.
        with(offer("A", "eu"), |x| {
            x.unit_cost_minor = Some(600);
            x.currency = Some("EUR".into());
        }),
        // 45 CNY = 6.30 USD at 0.14: cheaper.
        with(offer("A", "cn"), |x| {
            x.unit_cost_minor = Some(4500);
            x.currency = Some("CNY".into());
        }),
    ];
    let d = run(
        &policy(Strategy::LowestLandedCost),
        &o,
        &offers,
        &World::default(),
    );
    assert_eq!(plan(&d)[0].0, "cn");
}

#[test]
fn constraints_leave_offers_out_with_their_reason() {
    let o = order(&[("1", "A", 3, 1000)], "DE");
    let p = RoutingPolicy {
        daily_caps: [("capped".to_string(), 2)].into(),
        ..RoutingPolicy::default()
    };
    let w = World {
        used_today: [("con_capped".to_string(), 2)].into(),
        excluded: [("1".to_string(), "con_failed".to_string())].into(),
        ..World::default()
    };
    let offers = [
        with(offer("A", "off"), |x| x.enabled = false),
        with(offer("A", "gone"), |x| x.discontinued = true),
        with(offer("A", "usonly"), |x| x.ships_to = vec!["US".into()]),
        with(offer("A", "few"), |x| x.stock = Some(2)),
        offer("A", "capped"),
        offer("A", "failed"),
        // Germany: avoid EMS.
        with(offer("A", "ems"), |x| x.carriers = vec!["EMS".into()]),
        with(offer("A", "ok"), |x| {
            x.stock = Some(3);
            x.ships_to = vec!["DE".into(), "FR".into()];
            x.carriers = vec!["EMS".into(), "DHL".into()];
            x.priority = 500;
        }),
    ];
    let d = run(&p, &o, &offers, &w);
    assert_eq!(plan(&d)[0].0, "ok");
    let verdicts: BTreeMap<&str, &str> = d.lines[0]
        .offers
        .iter()
        .map(|t| (t.supplier.as_str(), t.verdict.as_str()))
        .collect();
    assert_eq!(verdicts["off"], "disabled");
    assert_eq!(verdicts["gone"], "discontinued by the supplier");
    assert_eq!(verdicts["usonly"], "does not ship to DE");
    assert_eq!(verdicts["few"], "out of stock (2 for 3)");
    assert_eq!(verdicts["capped"], "daily cap reached (2 of 2)");
    assert_eq!(verdicts["failed"], "this supplier failed this line before");
    assert_eq!(verdicts["ems"], "ships only with EMS (avoided here)");
    assert_eq!(verdicts["ok"], "chosen");
    // The parcel to Germany carries the carrier to avoid.
    let Outcome::Route { orders, .. } = &d.outcome else {
        unreachable!()
    };
    assert_eq!(orders[0].avoid_carriers, ["EMS"]);

    // Unknown stock is taken as available unless the policy says otherwise.
    let unknown = [offer("A", "maybe")];
    assert_eq!(
        plan(&run(
            &RoutingPolicy::default(),
            &o,
            &unknown,
            &World::default()
        ))[0]
            .0,
        "maybe"
    );
    let strict = RoutingPolicy {
        unknown_stock_available: false,
        ..RoutingPolicy::default()
    };
    assert_eq!(
        held(&run(&strict, &o, &unknown, &World::default())).0,
        HoldKind::StockOut
    );
}

/// A line whose category has its own routing policy follows it for which offers may ship it;
/// the order's other lines, and what concerns the whole order, follow the order's.
#[test]
fn a_line_of_another_category_follows_its_own_policy_for_its_offers() {
    let o = order(&[("1", "SOFA", 1, 1000), ("2", "MUG", 1, 1000)], "DE");
    // Furniture ships only from known stock, and never with DHL.
    let furniture = RoutingPolicy {
        unknown_stock_available: false,
        category_avoid_carriers: BTreeMap::new(),
        country_avoid_carriers: [("DE".to_string(), vec!["DHL".to_string()])].into(),
        ..RoutingPolicy::default()
    };
    let offers = [
        offer("SOFA", "maybe"),
        with(offer("SOFA", "dhl"), |x| {
            x.stock = Some(5);
            x.carriers = vec!["DHL".into()];
            x.priority = 10;
        }),
        with(offer("SOFA", "stocked"), |x| {
            x.stock = Some(5);
            x.priority = 50;
        }),
        // Unknown stock and DHL are fine for a mug, under the order's policy.
        with(offer("MUG", "maybe"), |x| x.carriers = vec!["DHL".into()]),
    ];
    let w = World {
        line_policies: [("SOFA".to_string(), furniture)].into(),
        ..World::default()
    };
    let d = run(&RoutingPolicy::default(), &o, &offers, &w);
    let verdicts: BTreeMap<&str, &str> = d.lines[0]
        .offers
        .iter()
        .map(|t| (t.supplier.as_str(), t.verdict.as_str()))
        .collect();
    assert_eq!(verdicts["maybe"], "stock unknown");
    assert_eq!(verdicts["dhl"], "ships only with DHL (avoided here)");
    assert_eq!(verdicts["stocked"], "chosen");
    assert_eq!(d.lines[1].offers[0].verdict, "chosen");
    assert_eq!(
        plan(&d),
        [
            ("maybe".to_string(), vec!["2".to_string()]),
            ("stocked".to_string(), vec!["1".to_string()])
        ]
    );
    // Under the order's policy alone, one supplier ships it all, the sofa from unknown stock.
    let d = run(&RoutingPolicy::default(), &o, &offers, &World::default());
    assert_eq!(
        plan(&d),
        [("maybe".to_string(), vec!["1".to_string(), "2".to_string()])]
    );
}

#[test]
fn an_order_stays_on_one_supplier_when_one_can_ship_it_all_else_it_splits() {
    let o = order(&[("1", "A", 1, 1000), ("2", "B", 1, 1000)], "US");
    // `best` has the best offer of each line but only `both` has both SKUs.
    let offers = [
        with(offer("A", "best"), |x| x.priority = 1),
        with(offer("B", "other"), |x| x.priority = 1),
        with(offer("A", "both"), |x| x.priority = 50),
        with(offer("B", "both"), |x| x.priority = 50),
    ];
    let d = run(&policy(Strategy::Priority), &o, &offers, &World::default());
    assert_eq!(
        plan(&d),
        [("both".to_string(), vec!["1".to_string(), "2".to_string()])]
    );
    // Without the supplier of both, the order splits: one supplier order per supplier.
    let split = [offers[0].clone(), offers[1].clone()];
    let d = run(&policy(Strategy::Priority), &o, &split, &World::default());
    assert_eq!(
        plan(&d),
        [
            ("best".to_string(), vec!["1".to_string()]),
            ("other".to_string(), vec!["2".to_string()])
        ]
    );
    // Of two suppliers of both, the cheaper as a whole.
    let two = [
        with(offer("A", "x"), |o| cost(o, 100, 0)),
        with(offer("B", "x"), |o| cost(o, 900, 0)),
        with(offer("A", "y"), |o| cost(o, 400, 0)),
        with(offer("B", "y"), |o| cost(o, 400, 0)),
    ];
    let d = run(
        &policy(Strategy::LowestLandedCost),
        &o,
        &two,
        &World::default(),
    );
    assert_eq!(plan(&d)[0].0, "y");
}

#[test]
fn no_offer_left_holds_the_order_as_a_stock_out_or_leaves_lines_waiting() {
    let o = order(&[("1", "A", 1, 1000), ("2", "B", 1, 1000)], "US");
    let offers = [
        offer("A", "s1"),
        with(offer("B", "s1"), |x| x.stock = Some(0)),
    ];
    let (kind, reason) = held(&run(
        &RoutingPolicy::default(),
        &o,
        &offers,
        &World::default(),
    ));
    assert_eq!(kind, HoldKind::StockOut);
    assert!(reason.contains("line 2 (B)"), "{reason}");
    assert!(
        reason.contains("s1 s1-B: out of stock (0 for 1)"),
        "{reason}"
    );
    let nothing = run(&RoutingPolicy::default(), &o, &[], &World::default());
    assert!(
        held(&nothing).1.contains("no offer"),
        "{:?}",
        nothing.outcome
    );

    // The customer accepted a later date: line 1 ships, line 2 waits.
    let w = World {
        allow_partial: true,
        ..World::default()
    };
    let d = run(&RoutingPolicy::default(), &o, &offers, &w);
    let Outcome::Route { orders, waiting } = &d.outcome else {
        panic!("{:?}", d.outcome)
    };
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].lines[0].external_line_id, "1");
    assert_eq!(waiting, &["2"]);
}

#[test]
fn order_level_rules_hold_before_routing_and_a_release_skips_them() {
    let offers = [offer("A", "s1")];
    let mut blank = order(&[("1", "A", 1, 1000)], "US");
    if let Some(a) = &mut blank.shipping_address {
        a.postal_code = None;
        a.name = Some(" ".into());
    }
    let mut forwarder = order(&[("1", "A", 1, 1000)], "US");
    if let Some(a) = &mut forwarder.shipping_address {
        a.line2 = Some("c/o Parcel Forwarder Inc.".into());
    }
    let mut hong_kong = order(&[("1", "A", 1, 1000)], "HK");
    if let Some(a) = &mut hong_kong.shipping_address {
        a.postal_code = None;
    }
    let mut no_address = order(&[("1", "A", 1, 1000)], "US");
    no_address.shipping_address = None;
    let dear = order(&[("1", "A", 1, 150_000)], "US");
    let mut branded = order(&[("1", "A", 1, 1000)], "US");
    branded.lines[0].title = "Rolex Submariner homage".into();
    let blocked = RoutingPolicy {
        blocked_brands: vec!["rolex".into()],
        ..RoutingPolicy::default()
    };
    let default = RoutingPolicy::default();
    type Case<'a> = (
        &'a str,
        &'a RoutingPolicy,
        Order,
        Option<(HoldKind, &'a str)>,
    );
    let cases: Vec<Case> = vec![
        (
            "incomplete",
            &default,
            blank,
            Some((HoldKind::Address, "incomplete: no name, postal_code")),
        ),
        (
            "forwarder",
            &default,
            forwarder,
            Some((HoldKind::Address, "suspicious: it mentions `forwarder`")),
        ),
        (
            "no postal code where there are none",
            &default,
            hong_kong,
            None,
        ),
        (
            "no address",
            &default,
            no_address,
            Some((HoldKind::Address, "no shipping address")),
        ),
        (
            "above the threshold",
            &default,
            dear,
            Some((HoldKind::Value, "1500.00 USD is above 1000.00 USD")),
        ),
        (
            "blocked brand",
            &blocked,
            branded,
            Some((HoldKind::Brand, "blocked brand `rolex`")),
        ),
    ];
    for (name, p, o, expected) in cases {
        let d = run(p, &o, &offers, &World::default());
        match expected {
            None => assert_eq!(plan(&d).len(), 1, "{name}"),
            Some((kind, words)) => {
                let (k, reason) = held(&d);
                assert_eq!(k, kind, "{name}");
                assert!(reason.contains(words), "{name}: {reason}");
                // Released, the same check is not made again (but an order without an
                // address is never routed).
                let w = World {
                    released: [kind].into(),
                    ..World::default()
                };
                let again = run(p, &o, &offers, &w);
                if o.shipping_address.is_some() {
                    assert_eq!(plan(&again).len(), 1, "{name} released");
                } else {
                    assert_eq!(held(&again).0, HoldKind::Address);
                }
            }
        }
    }
    // A brand known from the product data, not the title.
    let o = order(&[("1", "A", 1, 1000)], "US");
    let w = World {
        products: [(
            "A".to_string(),
            Product {
                brand: Some("Rolex".into()),
                ..Product::default()
            },
        )]
        .into(),
        ..World::default()
    };
    assert_eq!(held(&run(&blocked, &o, &offers, &w)).0, HoldKind::Brand);
    // No threshold: never held for value.
    let none = RoutingPolicy {
        hold_above: None,
        ..RoutingPolicy::default()
    };
    let dear = order(&[("1", "A", 1, 10_000_000)], "US");
    assert_eq!(
        plan(&run(&none, &dear, &offers, &World::default())).len(),
        1
    );
    let euros = RoutingPolicy {
        hold_above: Some(Amount {
            amount: 100.0,
            currency: "EUR".into(),
        }),
        ..RoutingPolicy::default()
    };
    // 120 USD is 111 EUR at the default rates.
    let o = order(&[("1", "A", 1, 12_000)], "US");
    assert_eq!(
        held(&run(&euros, &o, &offers, &World::default())).0,
        HoldKind::Value
    );
}

#[test]
fn buyer_notes_need_an_offer_that_can_honour_them() {
    let mut o = order(&[("1", "A", 1, 1000)], "US");
    o.buyer_note = Some("请用礼品包装 please".into());
    let plain = offer("A", "plain");
    let wraps = with(offer("A", "wraps"), |x| {
        x.capabilities = vec!["gift_wrap".into()];
        x.priority = 900;
    });
    // The offer that can wrap wins though its priority is worse.
    let d = run(
        &RoutingPolicy::default(),
        &o,
        &[plain.clone(), wraps],
        &World::default(),
    );
    assert_eq!(plan(&d)[0].0, "wraps");
    // None can: held for the customer to confirm, not as a stock-out.
    let (kind, reason) = held(&run(
        &RoutingPolicy::default(),
        &o,
        std::slice::from_ref(&plain),
        &World::default(),
    ));
    assert_eq!(kind, HoldKind::Note);
    assert!(reason.contains("gift_wrap"), "{reason}");
    // A line's own note counts too.
    let mut o2 = order(&[("1", "A", 1, 1000)], "US");
    o2.lines[0].note = Some("Colour: navy".into());
    assert_eq!(
        held(&run(
            &RoutingPolicy::default(),
            &o2,
            std::slice::from_ref(&plain),
            &World::default()
        ))
        .0,
        HoldKind::Note
    );
    // Confirmed with the customer (released): the note no longer binds.
    let w = World {
        released: [HoldKind::Note].into(),
        ..World::default()
    };
    assert_eq!(
        plan(&run(&RoutingPolicy::default(), &o, &[plain], &w))[0].0,
        "plain"
    );
}

#[test]
fn restricted_goods_avoid_their_carriers() {
    let o = order(&[("1", "A", 1, 1000)], "US");
    let w = World {
        products: [(
            "A".to_string(),
            Product {
                category: Some("wood".into()),
                ..Product::default()
            },
        )]
        .into(),
        ..World::default()
    };
    let dhl_only = with(offer("A", "dhl"), |x| {
        x.carriers = vec!["DHL".into()];
        x.priority = 1;
    });
    let post = with(offer("A", "post"), |x| {
        x.carriers = vec!["China Post".into(), "DHL".into()]
    });
    let d = run(&RoutingPolicy::default(), &o, &[dhl_only.clone(), post], &w);
    assert_eq!(plan(&d)[0].0, "post");
    let Outcome::Route { orders, .. } = &d.outcome else {
        unreachable!()
    };
    assert_eq!(orders[0].avoid_carriers, ["DHL"]);
    // Only DHL can ship it: nothing can.
    assert_eq!(
        held(&run(&RoutingPolicy::default(), &o, &[dhl_only], &w)).0,
        HoldKind::StockOut
    );
}

#[test]
fn declared_values_follow_the_destinations_rule() {
    let weight = |grams: i64| World {
        products: [(
            "A".to_string(),
            Product {
                weight_grams: Some(grams),
                ..Product::default()
            },
        )]
        .into(),
        ..World::default()
    };
    let declared = |country: &str, price: i64, quantity: u32, w: &World| {
        let o = order(&[("1", "A", quantity, price)], country);
        let d = run(&RoutingPolicy::default(), &o, &[offer("A", "s")], w);
        let Outcome::Route { orders, .. } = d.outcome else {
            panic!("{:?}", d.outcome)
        };
        orders[0]
            .declared_value
            .clone()
            .map(|m| (m.amount_minor, m.currency))
    };
    let unknown = World::default();
    let (w400, w3500, w300, w800) = (weight(400), weight(3500), weight(300), weight(800));
    /// (name, country, unit price, quantity, world, expected declared value).
    type Case<'a> = (&'a str, &'a str, i64, u32, &'a World, (i64, &'a str));
    let cases: Vec<Case> = vec![
        // US, under 3 kg: 5 to 30 USD.
        ("US light, dear", "US", 19_900, 2, &w400, (3000, "USD")),
        ("US light, cheap", "US", 200, 1, &w400, (500, "USD")),
        ("US light, between", "US", 1_250, 1, &w400, (1250, "USD")),
        // Over 3 kg: only the 50 USD cap.
        ("US heavy", "US", 4_500, 1, &w3500, (4500, "USD")),
        ("US heavy, dear", "US", 19_900, 1, &w3500, (5000, "USD")),
        // Germany: under 500 g exactly 5 EUR; heavier 10 to 20 EUR (converted at 1.08).
        ("DE light", "DE", 19_900, 1, &w300, (500, "EUR")),
        ("DE heavy, dear", "DE", 19_900, 1, &w800, (2000, "EUR")),
        ("DE heavy, cheap", "DE", 500, 1, &w800, (1000, "EUR")),
        (
            "DE weight unknown: the open band",
            "DE",
            1_500,
            1,
            &unknown,
            (1389, "EUR"),
        ),
        ("GB", "GB", 19_900, 1, &unknown, (1700, "GBP")),
        ("DK", "DK", 19_900, 1, &unknown, (1300, "USD")),
        ("PL", "PL", 19_900, 1, &unknown, (2000, "USD")),
        ("IT", "IT", 19_900, 1, &unknown, (4000, "USD")),
        ("SE", "SE", 19_900, 1, &unknown, (13000, "USD")),
        (
            "AU under the cap",
            "AU",
            19_900,
            1,
            &unknown,
            (19900, "USD"),
        ),
        (
            "MX (latin america)",
            "MX",
            19_900,
            1,
            &unknown,
            (5000, "USD"),
        ),
        (
            "FR: no rule, the goods' value",
            "FR",
            19_900,
            1,
            &unknown,
            (19900, "USD"),
        ),
    ];
    for (name, country, price, quantity, w, expected) in cases {
        assert_eq!(
            declared(country, price, quantity, w),
            Some((expected.0, expected.1.to_string())),
            "{name}"
        );
    }
    // No rate to convert into the rule's currency: held, unless released.
    let mut p = RoutingPolicy::default();
    p.currency_rates.remove("GBP");
    let o = order(&[("1", "A", 1, 1000)], "GB");
    let (kind, reason) = held(&run(&p, &o, &[offer("A", "s")], &World::default()));
    assert_eq!(kind, HoldKind::Customs);
    assert!(
        reason.contains("no rate to convert USD into GBP"),
        "{reason}"
    );
    let w = World {
        released: [HoldKind::Customs].into(),
        ..World::default()
    };
    let d = run(&p, &o, &[offer("A", "s")], &w);
    let Outcome::Route { orders, .. } = d.outcome else {
        panic!()
    };
    assert_eq!(orders[0].declared_value, None);
}

#[test]
fn orders_with_nothing_to_ship_are_held_as_incomplete() {
    let empty = order(&[], "US");
    assert_eq!(
        held(&run(
            &RoutingPolicy::default(),
            &empty,
            &[],
            &World::default()
        )),
        (HoldKind::Incomplete, "order has no lines".to_string())
    );
    let zero = order(&[("1", "A", 0, 1000)], "US");
    assert_eq!(
        held(&run(
            &RoutingPolicy::default(),
            &zero,
            &[offer("A", "s")],
            &World::default()
        )),
        (
            HoldKind::Incomplete,
            "order has no line with a quantity to ship".to_string()
        )
    );
}

#[test]
fn only_paid_orders_ship_and_the_policy_chooses_for_authorized_and_cash_on_delivery() {
    use crate::policy::{PaymentChoice, PaymentPolicy};
    use daifa_plugin_host::PaymentStatus as P;
    let offers = [offer("A", "s1")];
    let w = World::default();
    let paid_as = |payment: Option<P>| Order {
        payment,
        ..order(&[("1", "A", 1, 1000)], "US")
    };
    let default = RoutingPolicy::default();
    // Shipped: paid, paid and refunded in part, and a storefront that does not say.
    for payment in [Some(P::Paid), Some(P::PartiallyRefunded), None] {
        assert_eq!(
            plan(&run(&default, &paid_as(payment), &offers, &w)),
            [("s1".to_string(), vec!["1".to_string()])],
            "{payment:?}"
        );
    }
    // Held, with the reason in words.
    for (payment, words) in [
        (P::Pending, "not paid yet"),
        (P::PartiallyPaid, "paid in part"),
        (P::Authorized, "authorized but not captured"),
        (P::CashOnDelivery, "cash on delivery"),
        (P::Refunded, "refunded"),
        (P::Voided, "voided"),
    ] {
        let (kind, reason) = held(&run(&default, &paid_as(Some(payment)), &offers, &w));
        assert_eq!(kind, HoldKind::Payment, "{payment:?}");
        assert!(reason.contains(words), "{payment:?}: {reason}");
    }
    // The policy ships authorized payments and cash on delivery when told to.
    let lenient = RoutingPolicy {
        payment: PaymentPolicy {
            authorized: PaymentChoice::Ship,
            cash_on_delivery: PaymentChoice::Ship,
            ..PaymentPolicy::default()
        },
        ..RoutingPolicy::default()
    };
    for payment in [P::Authorized, P::CashOnDelivery] {
        assert_eq!(
            plan(&run(&lenient, &paid_as(Some(payment)), &offers, &w)).len(),
            1
        );
    }
    assert_eq!(
        held(&run(&lenient, &paid_as(Some(P::Pending)), &offers, &w)).0,
        HoldKind::Payment
    );
    // Not requiring payment ships everything; a released payment hold is not checked again.
    let anything = RoutingPolicy {
        payment: PaymentPolicy {
            require_paid: false,
            ..PaymentPolicy::default()
        },
        ..RoutingPolicy::default()
    };
    assert_eq!(
        plan(&run(&anything, &paid_as(Some(P::Voided)), &offers, &w)).len(),
        1
    );
    let released = World {
        released: [HoldKind::Payment].into(),
        ..World::default()
    };
    assert_eq!(
        plan(&run(
            &default,
            &paid_as(Some(P::Pending)),
            &offers,
            &released
        ))
        .len(),
        1
    );
}
