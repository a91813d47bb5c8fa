//! Routing decisions per second with 100,000 offers. `cargo bench -p daifa --bench routing`;
//! the numbers are in docs/benchmarks.md.
//!
//! The dataset is generated, the same on every run (a fixed seed): one channel connection, 12
//! supplier connections, 20,000 storefront SKUs with 5 offers each from 5 different suppliers
//! (100,000 offers: priorities 1–200, costs in USD, CNY, EUR, GBP and JPY or unknown, stock
//! unknown, none or 1–500, lead times, `ships_to` lists, carriers, capabilities, a few disabled
//! or discontinued), a product for every SKU (category, brand, weight), supplier orders already
//! placed today (one supplier at its daily cap), and 2,000 orders of 1–5 lines to 12 countries,
//! some with buyer notes, a few above the value threshold or with an incomplete address.
//!
//! Groups, each for the three strategies (`priority`, `lowest_landed_cost`, `fastest`); one
//! iteration is one order's decision, the orders taken in turn:
//! - `routing/pure`: the order's lines, offers, products and supplier usage built from in-memory
//!   maps keyed by SKU (offers cloned, as `routing::load` builds them), then
//!   `routing::decide::decide`.
//! - `routing/decide-only`: `decide` alone, on inputs built beforehand.
//! - `routing/sqlite`: `routing::load` + `routing::decide_loaded` on one pooled connection to a
//!   SQLite file holding the dataset; read-only, nothing is routed. Then parts of `load` alone:
//!   `offers_for-only` (`store::offers::for_skus`, the one of its nine queries that reads
//!   the 100k offers) and `policy-only` (`policy::effective`: two of them, merged over the
//!   defaults).
//! - `routing/postgres`: the same on PostgreSQL when `DAIFA_BENCH_DATABASE_URL` names a server
//!   (`postgres://user@host:5432/db`): a fresh database is created there and dropped after.
//!
//! Before measuring, the database path is checked against the in-memory one: the same policy,
//! the same decision for the first orders.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use daifa::db::{Backend, Db, Tx, now_ms};
use daifa::policy::{RoutingPolicy, Strategy};
use daifa::routing::decide::{self, Decision, Inputs, LineToRoute, Outcome};
use daifa::store::offers::{Offer, Product};
use daifa_plugin_host::{Address, Contact, Money, Order, OrderLine};
use serde_json::json;
use sqlx::AssertSqlSafe;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SKUS: usize = 20_000;
const OFFERS_PER_SKU: usize = 5;
const SUPPLIERS: usize = 12;
const ORDERS: usize = 2_000;
const CHANNEL_ID: &str = "con_shop";
const CHANNEL: &str = "shop";
/// Orders whose decision is compared between the database and memory before measuring.
const CHECKED_ORDERS: usize = 300;
const STRATEGIES: [Strategy; 3] = [
    Strategy::Priority,
    Strategy::LowestLandedCost,
    Strategy::Fastest,
];

/// SplitMix64: a small deterministic generator, so every run routes the same dataset.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    /// An item of `(item, weight)` pairs, by weight.
    fn weighted<T: Copy>(&mut self, items: &[(T, usize)]) -> T {
        let mut n = self.below(items.iter().map(|(_, w)| w).sum());
        for &(item, w) in items {
            if n < w {
                return item;
            }
            n -= w;
        }
        items[items.len() - 1].0
    }
}

/// Destinations, by share of orders: own customs rules (US, DE, GB, IT, SE, AU), a region's
/// (BR, MX), none (FR, CA, JP, NL); Germany avoids EMS.
const COUNTRIES: [(&str, usize); 12] = [
    ("US", 30),
    ("DE", 14),
    ("GB", 10),
    ("FR", 8),
    ("CA", 7),
    ("AU", 7),
    ("BR", 6),
    ("MX", 4),
    ("JP", 4),
    ("IT", 4),
    ("SE", 3),
    ("NL", 3),
];
/// Carriers, EMS and DHL (the ones the default policy avoids somewhere) the most common.
const CARRIERS: [(&str, usize); 8] = [
    ("EMS", 4),
    ("DHL", 4),
    ("YunExpress", 3),
    ("4PX", 2),
    ("UPS", 1),
    ("FedEx", 1),
    ("USPS", 1),
    ("Royal Mail", 1),
];
/// Offer currencies and what one unit is worth in US dollars (the default policy's rates).
const CURRENCIES: [(&str, f64, usize); 5] = [
    ("USD", 1.0, 35),
    ("CNY", 0.14, 35),
    ("EUR", 1.08, 15),
    ("GBP", 1.27, 10),
    ("JPY", 0.0067, 5),
];
const CAPABILITIES: [(&str, usize); 4] = [
    ("gift_wrap", 50),
    ("colour_choice", 40),
    ("size_choice", 40),
    ("blind_packing", 30),
];
const CATEGORIES: [(Option<&str>, usize); 7] = [
    (None, 10),
    (Some("apparel"), 25),
    (Some("electronics"), 20),
    (Some("toys"), 15),
    (Some("home"), 15),
    (Some("wood"), 10),
    (Some("feathers"), 5),
];

struct Supplier {
    id: String,
    name: String,
    /// Supplier orders it has taken today.
    used_today: u32,
}

struct Dataset {
    suppliers: Vec<Supplier>,
    /// By SKU, then priority, then id: the order `for_skus` reads them in.
    offers: Vec<Offer>,
    products: Vec<(String, Product)>,
    /// (order id, order).
    orders: Vec<(String, Order)>,
}

fn sku(n: usize) -> String {
    format!("SKU-{n:05}")
}

fn generate() -> Dataset {
    let mut rng = Rng(0x00da_1fa0_0000_0001);
    let suppliers: Vec<Supplier> = (1..=SUPPLIERS)
        .map(|n| Supplier {
            id: format!("con_sup-{n:02}"),
            name: format!("sup-{n:02}"),
            used_today: match n {
                1 => 40,
                3 => 120,
                7 => 150,
                _ => 0,
            },
        })
        .collect();
    let countries: Vec<&str> = COUNTRIES.iter().map(|(c, _)| *c).collect();
    let mut offers = Vec::with_capacity(SKUS * OFFERS_PER_SKU);
    let mut products = Vec::with_capacity(SKUS);
    for n in 0..SKUS {
        let sku = sku(n);
        let mut chosen: Vec<usize> = Vec::with_capacity(OFFERS_PER_SKU);
        while chosen.len() < OFFERS_PER_SKU {
            let s = rng.below(SUPPLIERS);
            if !chosen.contains(&s) {
                chosen.push(s);
            }
        }
        // The SKU's cost in US dollars; each supplier's within ±40 % of it.
        let base_usd = rng.range(150, 4000) as f64 / 100.0;
        let mut of_sku = Vec::with_capacity(OFFERS_PER_SKU);
        for (k, &s) in chosen.iter().enumerate() {
            let supplier = &suppliers[s];
            let (currency, rate, _) = CURRENCIES[rng.weighted(&[
                (0, CURRENCIES[0].2),
                (1, CURRENCIES[1].2),
                (2, CURRENCIES[2].2),
                (3, CURRENCIES[3].2),
                (4, CURRENCIES[4].2),
            ])];
            let scale = if currency == "JPY" { 1.0 } else { 100.0 };
            let to_minor = |usd: f64| (usd / rate * scale).round() as i64;
            let unit_usd = base_usd * rng.range(60, 140) as f64 / 100.0;
            let known_cost = rng.chance(95);
            let ships_to = if rng.chance(45) {
                Vec::new()
            } else {
                let mut list: Vec<String> = Vec::new();
                for _ in 0..rng.range(4, 9) {
                    let c = rng.pick(&countries).to_string();
                    if !list.contains(&c) {
                        list.push(c);
                    }
                }
                list
            };
            let mut carriers: Vec<String> = Vec::new();
            if rng.chance(95) {
                for _ in 0..rng.range(1, 3) {
                    let c = rng.weighted(&CARRIERS).to_string();
                    if !carriers.contains(&c) {
                        carriers.push(c);
                    }
                }
            }
            let capabilities: Vec<String> = CAPABILITIES
                .iter()
                .filter(|(_, p)| rng.chance(*p))
                .map(|(c, _)| c.to_string())
                .collect();
            of_sku.push(Offer {
                id: format!("off_{:06}", n * OFFERS_PER_SKU + k),
                channel_connection_id: CHANNEL_ID.into(),
                channel: CHANNEL.into(),
                storefront_sku: sku.clone(),
                supplier_connection_id: supplier.id.clone(),
                supplier: supplier.name.clone(),
                supplier_sku: format!("S{:02}-{n:05}", s + 1),
                unit_cost_minor: known_cost.then(|| to_minor(unit_usd)),
                shipping_cost_minor: (known_cost && rng.chance(80))
                    .then(|| to_minor(rng.range(0, 1500) as f64 / 100.0)),
                currency: known_cost.then(|| currency.to_string()),
                stock: match rng.below(100) {
                    0..15 => None,
                    15..25 => Some(0),
                    _ => Some(rng.range(1, 500)),
                },
                lead_time_days: rng.chance(90).then(|| rng.range(2, 25)),
                ships_to,
                carriers,
                capabilities,
                priority: rng.range(1, 200),
                enabled: rng.chance(98),
                discontinued: rng.chance(2),
                created_at_ms: 1_700_000_000_000,
                updated_at_ms: 1_700_000_000_000,
            });
        }
        of_sku.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        offers.extend(of_sku);
        products.push((
            sku,
            Product {
                category: rng.weighted(&CATEGORIES).map(String::from),
                brand: Some(if rng.below(500) == 0 {
                    "Rolex".to_string()
                } else {
                    format!("Brand{:03}", rng.below(300))
                }),
                weight_grams: rng.chance(90).then(|| rng.range(40, 5000)),
            },
        ));
    }
    let orders = (0..ORDERS)
        .map(|i| (format!("ord_bench_{i:05}"), order(&mut rng, i)))
        .collect();
    Dataset {
        suppliers,
        offers,
        products,
        orders,
    }
}

fn order(rng: &mut Rng, i: usize) -> Order {
    let currency = if rng.chance(80) { "USD" } else { "EUR" };
    let money = |amount_minor: i64| Money {
        amount_minor,
        currency: currency.into(),
    };
    let country = rng.weighted(&COUNTRIES);
    let mut skus: Vec<usize> = Vec::new();
    for _ in 0..rng.range(1, 5) {
        let n = rng.below(SKUS);
        if !skus.contains(&n) {
            skus.push(n);
        }
    }
    let lines: Vec<OrderLine> = skus
        .iter()
        .enumerate()
        .map(|(k, &n)| OrderLine {
            external_line_id: format!("{i}-{k}"),
            storefront_sku: sku(n),
            title: format!("Product {}", sku(n)),
            variant_title: None,
            quantity: if rng.chance(75) {
                1
            } else {
                rng.range(2, 4) as u32
            },
            // A few expensive lines push their orders above the value threshold.
            unit_price: money(if rng.chance(3) {
                rng.range(40_000, 120_000)
            } else {
                rng.range(500, 9000)
            }),
            note: rng.chance(4).then(|| "size M please".to_string()),
        })
        .collect();
    let total: i64 = lines
        .iter()
        .map(|l| l.unit_price.amount_minor * i64::from(l.quantity))
        .sum();
    Order {
        external_id: format!("{}", 100_000 + i),
        order_number: Some(format!("#{}", 100_000 + i)),
        storefront: "shopify".into(),
        currency: currency.into(),
        subtotal: money(total),
        shipping: money(0),
        tax: money(0),
        total: money(total),
        placed_at: 1_700_000_000_000,
        buyer_note: match rng.below(100) {
            0..8 => Some("Please gift wrap it".into()),
            8..12 => Some("colour: navy blue".into()),
            _ => None,
        },
        customer: Contact {
            name: Some("Jane Doe".into()),
            email: Some("jane@example.com".into()),
            phone: None,
        },
        shipping_address: Some(Address {
            name: Some("Jane Doe".into()),
            company: None,
            line1: format!("{} Main Street", 1 + i % 200),
            line2: None,
            city: "Springfield".into(),
            province: None,
            province_code: None,
            // 2 % without a postal code: an incomplete address.
            postal_code: rng.chance(98).then(|| "12345".to_string()),
            country_code: country.into(),
            phone: None,
        }),
        lines,
        payment: None,
        updated_at: None,
    }
}

/// The policy every variant routes with: the defaults, daily caps on two suppliers (sup-07
/// reached), a blocked brand, the strategy. Stored as two documents for the database variants.
fn policy(strategy: Strategy) -> RoutingPolicy {
    RoutingPolicy {
        strategy,
        daily_caps: BTreeMap::from([("sup-03".into(), 200), ("sup-07".into(), 150)]),
        blocked_brands: vec!["Rolex".into()],
        ..RoutingPolicy::default()
    }
}

fn global_policy_document() -> serde_json::Value {
    json!({ "daily_caps": { "sup-03": 200, "sup-07": 150 }, "blocked_brands": ["Rolex"] })
}

fn strategy_name(s: Strategy) -> String {
    serde_json::to_value(s)
        .expect("a strategy serialises")
        .as_str()
        .expect("a string")
        .to_string()
}

// ---- in memory ----

/// The dataset indexed by SKU, as an in-memory store would hold it.
struct Memory {
    offers: HashMap<String, Vec<Offer>>,
    products: HashMap<String, Product>,
    used_today: HashMap<String, u32>,
}

impl Memory {
    fn new(data: &Dataset) -> Self {
        let mut offers: HashMap<String, Vec<Offer>> = HashMap::with_capacity(SKUS);
        for o in &data.offers {
            offers
                .entry(o.storefront_sku.clone())
                .or_default()
                .push(o.clone());
        }
        Self {
            offers,
            products: data.products.iter().cloned().collect(),
            used_today: data
                .suppliers
                .iter()
                .filter(|s| s.used_today > 0)
                .map(|s| (s.id.clone(), s.used_today))
                .collect(),
        }
    }
}

/// A decision's inputs, built as `routing::load` builds them (a new order: nothing taken,
/// substituted, excluded or released).
struct Built {
    lines: Vec<LineToRoute>,
    offers: Vec<Offer>,
    products: BTreeMap<String, Product>,
    used_today: BTreeMap<String, u32>,
    excluded: BTreeSet<(String, String)>,
    released: BTreeSet<daifa::routing::HoldKind>,
}

impl Built {
    fn new(memory: &Memory, order: &Order) -> Self {
        let lines: Vec<LineToRoute> = order
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
            .collect();
        let mut skus: Vec<&str> = lines.iter().map(|l| l.storefront_sku.as_str()).collect();
        skus.sort_unstable();
        skus.dedup();
        let offers: Vec<Offer> = skus
            .iter()
            .filter_map(|s| memory.offers.get(*s))
            .flatten()
            .cloned()
            .collect();
        let products = skus
            .iter()
            .filter_map(|s| memory.products.get(*s).map(|p| (s.to_string(), p.clone())))
            .collect();
        let used_today = offers
            .iter()
            .filter_map(|o| {
                memory
                    .used_today
                    .get(&o.supplier_connection_id)
                    .map(|n| (o.supplier_connection_id.clone(), *n))
            })
            .collect();
        Self {
            lines,
            offers,
            products,
            used_today,
            excluded: BTreeSet::new(),
            released: BTreeSet::new(),
        }
    }

    fn decide(&self, policy: &RoutingPolicy, order: &Order) -> Decision {
        decide::decide(
            policy,
            &Inputs {
                order,
                lines: &self.lines,
                line_policies: &BTreeMap::new(),
                offers: &self.offers,
                products: &self.products,
                used_today: &self.used_today,
                excluded: &self.excluded,
                released: &self.released,
                allow_partial: false,
            },
        )
    }
}

/// What the decisions of all the orders come to, to say what was measured.
fn outcome_mix(policy: &RoutingPolicy, memory: &Memory, data: &Dataset) -> String {
    let mut mix: BTreeMap<String, usize> = BTreeMap::new();
    for (_, order) in &data.orders {
        let d = Built::new(memory, order).decide(policy, order);
        let key = match &d.outcome {
            Outcome::Route { orders, .. } if orders.len() == 1 => "one supplier".to_string(),
            Outcome::Route { .. } => "split".to_string(),
            Outcome::Hold { kind, .. } => format!("held: {}", kind.as_str()),
        };
        *mix.entry(key).or_default() += 1;
    }
    mix.iter()
        .map(|(k, n)| format!("{k} {:.1} %", 100.0 * *n as f64 / data.orders.len() as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- in a database ----

/// `rows` rows of `columns` placeholders: `(?, ?), (?, ?)` on SQLite, `($1, $2), ($3, $4)` on
/// PostgreSQL. SQLite's `$N` are named parameters, and binding by name scans the statement's
/// names: quadratic in the parameters of a statement (27 s instead of 1 s for the offers).
fn values(backend: Backend, columns: usize, rows: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| match backend {
                    Backend::Sqlite => "?".to_string(),
                    Backend::Postgres => format!("${}", r * columns + c),
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stores the dataset in one transaction, with multi-row inserts.
async fn fill(db: &Db, data: &Dataset, now: i64) {
    let mut tx: Tx = db.begin().await.expect("a transaction");
    let mut connections = vec![(CHANNEL_ID, CHANNEL, "channel", "shopify")];
    connections.extend(data.suppliers.iter().map(|s| {
        (
            s.id.as_str(),
            s.name.as_str(),
            "supplier",
            "webhook-supplier",
        )
    }));
    for (id, name, kind, plugin) in connections {
        sqlx::query(
            "insert into connections (id, name, kind, plugin, settings, secrets, allowed_hosts, enabled, created_at_ms, plugin_version) \
             values ($1, $2, $3, $4, '{}', '{}', '[]', 1, $5, $6)",
        )
        .bind(id)
        .bind(name)
        .bind(kind)
        .bind(plugin)
        .bind(now)
        .bind("0.1.0")
        .execute(&mut *tx)
        .await
        .expect("a connection");
    }
    // 18 columns × 500 rows = 9,000 parameters a statement (SQLite allows 32,766, PostgreSQL
    // 65,535).
    for chunk in data.offers.chunks(500) {
        let sql = format!(
            "insert into offers (id, channel_connection_id, storefront_sku, supplier_connection_id, supplier_sku, unit_cost_minor, \
             shipping_cost_minor, currency, stock, lead_time_days, ships_to, carriers, capabilities, priority, enabled, \
             discontinued, created_at_ms, updated_at_ms) values {}",
            values(db.backend, 18, chunk.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for o in chunk {
            query = query
                .bind(o.id.as_str())
                .bind(o.channel_connection_id.as_str())
                .bind(o.storefront_sku.as_str())
                .bind(o.supplier_connection_id.as_str())
                .bind(o.supplier_sku.as_str())
                .bind(o.unit_cost_minor)
                .bind(o.shipping_cost_minor)
                .bind(o.currency.as_deref())
                .bind(o.stock)
                .bind(o.lead_time_days)
                .bind(serde_json::to_string(&o.ships_to).expect("JSON"))
                .bind(serde_json::to_string(&o.carriers).expect("JSON"))
                .bind(serde_json::to_string(&o.capabilities).expect("JSON"))
                .bind(o.priority)
                .bind(i64::from(o.enabled))
                .bind(i64::from(o.discontinued))
                .bind(o.created_at_ms)
                .bind(o.updated_at_ms);
        }
        query.execute(&mut *tx).await.expect("offers");
    }
    for chunk in data.products.chunks(1000) {
        let sql = format!(
            "insert into products (channel_connection_id, storefront_sku, category, brand, weight_grams, updated_at_ms) values {}",
            values(db.backend, 6, chunk.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (sku, p) in chunk {
            query = query
                .bind(CHANNEL_ID)
                .bind(sku.as_str())
                .bind(p.category.as_deref())
                .bind(p.brand.as_deref())
                .bind(p.weight_grams)
                .bind(now);
        }
        query.execute(&mut *tx).await.expect("products");
    }
    // Today's supplier orders (of other orders), for the daily caps.
    let mut n = 0;
    for s in &data.suppliers {
        for _ in 0..s.used_today {
            sqlx::query(
                "insert into supplier_orders (id, order_id, supplier_connection_id, status, created_at_ms, updated_at_ms) \
                 values ($1, $2, $3, 'submitted', $4, $4)",
            )
            .bind(format!("so_bench_{n:05}"))
            .bind(format!("ord_earlier_{n:05}"))
            .bind(s.id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .expect("a supplier order");
            n += 1;
        }
    }
    sqlx::query("insert into policies (name, scope, value, updated_at_ms) values ('routing', 'global', $1, $2)")
        .bind(global_policy_document().to_string())
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("the global policy");
    tx.commit().await.expect("commit");
}

/// Stores the channel's policy document: the strategy.
async fn set_strategy(db: &Db, strategy: Strategy) {
    sqlx::query("delete from policies where name = 'routing' and scope = $1")
        .bind(format!("channel:{CHANNEL}"))
        .execute(&db.pool)
        .await
        .expect("delete the policy");
    sqlx::query(
        "insert into policies (name, scope, value, updated_at_ms) values ('routing', $1, $2, $3)",
    )
    .bind(format!("channel:{CHANNEL}"))
    .bind(json!({ "strategy": strategy }).to_string())
    .bind(now_ms())
    .execute(&db.pool)
    .await
    .expect("the channel's policy");
}

/// One decision as the engine makes it: `load`, then `decide_loaded`.
async fn decide_from_db(conn: &mut sqlx::AnyConnection, id: &str, order: &Order) -> Decision {
    let loaded = daifa::routing::load(conn, CHANNEL_ID, CHANNEL, Some(id), order)
        .await
        .expect("load");
    daifa::routing::decide_loaded(&loaded, order, false)
}

/// Iterations counted over every measured call (warm-up included), for a decisions/s line.
#[derive(Default)]
struct Tally {
    iterations: u64,
    elapsed: Duration,
}

impl Tally {
    fn add(&mut self, iterations: u64, elapsed: Duration) -> Duration {
        self.iterations += iterations;
        self.elapsed += elapsed;
        elapsed
    }
    /// `what`: what one iteration is, and its plural ("decision", "decisions").
    fn print(&self, id: &str, (what, whats): (&str, &str)) {
        if self.iterations == 0 {
            return;
        }
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{id}: {:.0} {whats}/s ({:.1} µs a {what}, mean of {} {whats})",
            self.iterations as f64 / secs,
            secs * 1e6 / self.iterations as f64,
            self.iterations
        );
    }
}

fn bench_database(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    group: &str,
    db: &Db,
    data: &Dataset,
    memory: &Memory,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    for strategy in STRATEGIES {
        let name = strategy_name(strategy);
        let expected = policy(strategy);
        rt.block_on(async {
            set_strategy(db, strategy).await;
            let mut conn = db.pool.acquire().await.expect("a connection");
            for (id, order) in data.orders.iter().take(CHECKED_ORDERS) {
                let loaded = daifa::routing::load(&mut conn, CHANNEL_ID, CHANNEL, Some(id), order)
                    .await
                    .expect("load");
                assert_eq!(loaded.policy, expected, "the stored policy");
                assert_eq!(
                    daifa::routing::decide_loaded(&loaded, order, false),
                    Built::new(memory, order).decide(&expected, order),
                    "order {id}: the database and memory decide alike"
                );
            }
        });
        let mut next = 0usize;
        let mut tally = Tally::default();
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut conn = db.pool.acquire().await.expect("a connection");
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (id, order) = &data.orders[next % data.orders.len()];
                        next += 1;
                        black_box(decide_from_db(&mut conn, id, order).await);
                    }
                    tally.add(iters, start.elapsed())
                })
            })
        });
        tally.print(&format!("{group}/{name}"), ("decision", "decisions"));
    }
    // Parts of `load` alone, to see where its time goes: the offers of the order's SKUs (the
    // query that reads the 100k), and the policy (two reads, merged over the defaults).
    let mut next = 0usize;
    let mut tally = Tally::default();
    g.bench_function("offers_for-only", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut conn = db.pool.acquire().await.expect("a connection");
                let start = Instant::now();
                for _ in 0..iters {
                    let (_, order) = &data.orders[next % data.orders.len()];
                    next += 1;
                    let mut skus: Vec<&str> = order
                        .lines
                        .iter()
                        .map(|l| l.storefront_sku.as_str())
                        .collect();
                    skus.sort_unstable();
                    skus.dedup();
                    black_box(
                        daifa::store::offers::for_skus(&mut conn, CHANNEL_ID, &skus)
                            .await
                            .expect("offers"),
                    );
                }
                tally.add(iters, start.elapsed())
            })
        })
    });
    tally.print(&format!("{group}/offers_for-only"), ("query", "queries"));
    let mut tally = Tally::default();
    g.bench_function("policy-only", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut conn = db.pool.acquire().await.expect("a connection");
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(
                        daifa::policy::effective::<RoutingPolicy>(&mut conn, Some(CHANNEL))
                            .await
                            .expect("policy"),
                    );
                }
                tally.add(iters, start.elapsed())
            })
        })
    });
    tally.print(
        &format!("{group}/policy-only"),
        ("policy read", "policy reads"),
    );
    g.finish();
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn bench(c: &mut Criterion) {
    let start = Instant::now();
    let data = generate();
    let memory = Memory::new(&data);
    let lines: usize = data.orders.iter().map(|(_, o)| o.lines.len()).sum();
    let offers_seen: usize = data
        .orders
        .iter()
        .map(|(_, o)| Built::new(&memory, o).offers.len())
        .sum();
    println!(
        "dataset: {} offers of {} SKUs from {} suppliers, {} orders ({:.2} lines and {:.1} offers an order), generated in {:.2} s",
        data.offers.len(),
        SKUS,
        SUPPLIERS,
        data.orders.len(),
        lines as f64 / data.orders.len() as f64,
        offers_seen as f64 / data.orders.len() as f64,
        start.elapsed().as_secs_f64()
    );
    for strategy in STRATEGIES {
        println!(
            "outcomes, {}: {}",
            strategy_name(strategy),
            outcome_mix(&policy(strategy), &memory, &data)
        );
    }

    // In memory: the lookups by SKU and the decision.
    let mut g = c.benchmark_group("routing/pure");
    g.throughput(Throughput::Elements(1));
    for strategy in STRATEGIES {
        let name = strategy_name(strategy);
        let policy = policy(strategy);
        let mut next = 0usize;
        let mut tally = Tally::default();
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let (_, order) = &data.orders[next % data.orders.len()];
                    next += 1;
                    black_box(Built::new(&memory, order).decide(&policy, order));
                }
                tally.add(iters, start.elapsed())
            })
        });
        tally.print(&format!("routing/pure/{name}"), ("decision", "decisions"));
    }
    g.finish();

    // The decision alone, on inputs built beforehand.
    let built: Vec<Built> = data
        .orders
        .iter()
        .map(|(_, o)| Built::new(&memory, o))
        .collect();
    let mut g = c.benchmark_group("routing/decide-only");
    g.throughput(Throughput::Elements(1));
    for strategy in STRATEGIES {
        let name = strategy_name(strategy);
        let policy = policy(strategy);
        let mut next = 0usize;
        let mut tally = Tally::default();
        g.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let i = next % data.orders.len();
                    next += 1;
                    black_box(built[i].decide(&policy, &data.orders[i].1));
                }
                tally.add(iters, start.elapsed())
            })
        });
        tally.print(
            &format!("routing/decide-only/{name}"),
            ("decision", "decisions"),
        );
    }
    g.finish();
    drop(built);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // SQLite, a temp file.
    let dir = std::env::temp_dir().join(format!("daifa-bench-routing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dir = tempdir::Dir(dir);
    let url = format!("sqlite://{}?mode=rwc", dir.0.join("bench.db").display());
    let db = rt.block_on(async {
        let db = Db::connect(&url).await.expect("SQLite");
        db.migrate().await.expect("migrations");
        let start = Instant::now();
        fill(&db, &data, now_ms()).await;
        println!(
            "SQLite: dataset stored in {:.2} s",
            start.elapsed().as_secs_f64()
        );
        db
    });
    bench_database(c, &rt, "routing/sqlite", &db, &data, &memory);
    rt.block_on(db.pool.close());
    drop(dir);

    // PostgreSQL, when a server is named.
    match std::env::var("DAIFA_BENCH_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    {
        Some(server) => {
            let name = format!("daifa_bench_{}", uuid::Uuid::now_v7().simple());
            let base = server
                .rsplit_once('/')
                .map(|(b, _)| b.to_string())
                .unwrap_or_else(|| server.clone());
            let admin = |sql: String| {
                let server = server.clone();
                async move {
                    let admin = sqlx::PgPool::connect(&server)
                        .await
                        .expect("connecting to DAIFA_BENCH_DATABASE_URL");
                    sqlx::query(AssertSqlSafe(sql))
                        .execute(&admin)
                        .await
                        .expect("create or drop the bench database");
                    admin.close().await;
                }
            };
            let db = rt.block_on(async {
                admin(format!("create database {name}")).await;
                let db = Db::connect(&format!("{base}/{name}"))
                    .await
                    .expect("PostgreSQL");
                db.migrate().await.expect("migrations");
                let start = Instant::now();
                fill(&db, &data, now_ms()).await;
                sqlx::query("analyze")
                    .execute(&db.pool)
                    .await
                    .expect("analyze");
                println!(
                    "PostgreSQL: dataset stored in {:.2} s",
                    start.elapsed().as_secs_f64()
                );
                db
            });
            bench_database(c, &rt, "routing/postgres", &db, &data, &memory);
            rt.block_on(async {
                db.pool.close().await;
                admin(format!("drop database if exists {name} with (force)")).await;
            });
        }
        None => println!(
            "routing/postgres: skipped (set DAIFA_BENCH_DATABASE_URL=postgres://user@host:5432/db)"
        ),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
