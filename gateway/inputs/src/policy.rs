//! Policy documents: the handbooks' numbered rules as data, each with the handbook's number as
//! its default (shared/domain.md), never a constant in the code that applies it. A policy is a
//! JSON document; what the operator stores is merged over the defaults ([`merge`]) and
//! [`check`]ed through its typed form. Reading and storing them is the gateway's (`policy.rs`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
#[cfg(test)]
use serde_json::json;
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

/// Which orders ship, by what the storefront says of their payment. An order that may not ship
/// is held (`payment`) until a later copy of it says it is paid, or the operator releases it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentPolicy {
    /// Only paid orders ship (paid, or paid and refunded in part). False: every order ships
    /// whatever its payment.
    pub require_paid: bool,
    /// A payment authorized but not captured (the storefront captures it at fulfilment).
    pub authorized: PaymentChoice,
    /// Cash on delivery: the carrier collects the money, so the buyer may refuse the parcel.
    pub cash_on_delivery: PaymentChoice,
}

/// Ship an order in a payment state, or hold it for a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentChoice {
    Ship,
    Hold,
}

impl Default for PaymentPolicy {
    fn default() -> Self {
        Self {
            require_paid: true,
            authorized: PaymentChoice::Hold,
            cash_on_delivery: PaymentChoice::Hold,
        }
    }
}

/// An order the shop cancels (the operator, a stock-out's "cancel" choice) is cancelled on its
/// storefront too, with these options. A storefront that cannot cancel leaves a task instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorefrontCancel {
    /// Ask the storefront at all (false: a task says to cancel it there by hand).
    pub enabled: bool,
    /// Pay the buyer back through the order's payment (nothing shipped, nothing is owed).
    pub refund: bool,
    /// Put the goods back in the storefront's stock count.
    pub restock: bool,
    /// Let the storefront tell the buyer.
    pub notify_customer: bool,
}

impl Default for StorefrontCancel {
    fn default() -> Self {
        Self {
            enabled: true,
            refund: true,
            restock: true,
            notify_customer: true,
        }
    }
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
    #[serde(with = "days")]
    pub ack_deadline: Duration,
    /// An order held for a stock-out: the customer is contacted within this (handbook 001:
    /// 24 hours).
    #[serde(with = "days")]
    pub stock_out_contact: Duration,
    /// Orders whose total is above this are held for a look first; none: never.
    pub hold_above: Option<Amount>,
    /// Brands that must not ship (counterfeits, handbook 002): an order naming one is held.
    pub blocked_brands: Vec<String>,
    pub address: AddressPolicy,
    /// Which orders are paid enough to ship (handbook 000: confirm payment, then ship).
    pub payment: PaymentPolicy,
    /// What the storefront is asked to do when the shop cancels an order there.
    #[serde(default)]
    pub storefront_cancel: StorefrontCancel,
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
            payment: PaymentPolicy::default(),
            storefront_cancel: StorefrontCancel::default(),
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

/// Who pays a freight leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payer {
    Shop,
    Customer,
}

/// Who pays the way back (customer → shop) and the way out again (shop → customer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freight {
    pub back: Payer,
    pub out: Payer,
}

/// The after-sales rules (handbook 001) and the service clocks (002, 003, 004).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AfterSalesPolicy {
    /// Returns, no reason needed, this long after delivery (goods resellable).
    #[serde(with = "days")]
    pub return_window: Duration,
    /// Exchanges for quality problems, this long after delivery.
    #[serde(with = "days")]
    pub exchange_window: Duration,
    /// Repairs under warranty this long after delivery; paid maintenance after.
    #[serde(with = "days")]
    pub warranty_window: Duration,
    /// Who pays freight, by case: `return_quality` (a quality problem), `return` (any other),
    /// `exchange`, `warranty_repair`, `paid_maintenance`.
    pub freight: BTreeMap<String, Freight>,
    /// An order ships within this of payment.
    #[serde(with = "days")]
    pub ship_within: Duration,
    /// A shipment is marked shipped on the storefront within this of the order (at the latest 3
    /// days, handbook 002).
    #[serde(with = "days")]
    pub mark_shipped_within: Duration,
    /// Tracking is followed up (and the customer messaged) this long after shipping: express...
    #[serde(with = "days")]
    pub follow_up_express: Duration,
    /// ...and postal parcels (the carriers of `postal_carriers`).
    #[serde(with = "days")]
    pub follow_up_postal: Duration,
    pub postal_carriers: Vec<String>,
    /// Not delivered and no tracking news this long after shipping: refund or reship.
    #[serde(with = "days")]
    pub no_tracking_after: Duration,
    /// Not delivered this long after shipping (the promised time): extend the storefront's
    /// receipt window.
    #[serde(with = "days")]
    pub delivery_promise: Duration,
    /// A refund is paid within this of the request.
    #[serde(with = "days")]
    pub refund_within: Duration,
    /// A complaint (a case opened) is answered within this.
    #[serde(with = "days")]
    pub complaint_within: Duration,
    /// An exchange's replacement ships within this of receiving the goods back.
    #[serde(with = "days")]
    pub replacement_within: Duration,
    /// When the refund queue is swept each day, shop time ("10:00", "16:30").
    pub refund_sweeps: Vec<String>,
    /// The shop's time zone as an offset from UTC ("+08:00").
    pub utc_offset: String,
    /// A small defect: the partial refund offered before a return, in percent of the lines.
    pub partial_refund_percent: f64,
}

impl Default for AfterSalesPolicy {
    /// The handbooks' numbers (shared/domain.md).
    fn default() -> Self {
        let days = |d: u64| Duration::from_secs(d * 86_400);
        let hours = |h: u64| Duration::from_secs(h * 3_600);
        let freight = |back, out| Freight { back, out };
        Self {
            return_window: days(7),
            exchange_window: days(30),
            warranty_window: days(365),
            freight: [
                ("return_quality", freight(Payer::Shop, Payer::Shop)),
                ("return", freight(Payer::Customer, Payer::Shop)),
                ("exchange", freight(Payer::Customer, Payer::Shop)),
                ("warranty_repair", freight(Payer::Customer, Payer::Shop)),
                (
                    "paid_maintenance",
                    freight(Payer::Customer, Payer::Customer),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            ship_within: hours(24),
            mark_shipped_within: days(3),
            follow_up_express: days(7),
            follow_up_postal: days(30),
            postal_carriers: [
                "China Post",
                "China EMS",
                "EMS",
                "Yanwen",
                "4PX",
                "Cainiao",
                "YunExpress",
                "USPS",
                "Royal Mail",
                "Deutsche Post",
                "La Poste",
            ]
            .map(String::from)
            .to_vec(),
            no_tracking_after: days(40),
            delivery_promise: days(30),
            refund_within: hours(24),
            complaint_within: hours(24),
            replacement_within: hours(24),
            refund_sweeps: vec!["10:00".into(), "16:30".into()],
            utc_offset: "+08:00".into(),
            partial_refund_percent: 20.0,
        }
    }
}

impl AfterSalesPolicy {
    /// The shop's offset from UTC, in milliseconds: `+08:00`, `-05:30`, from -12:00 to +14:00
    /// (the offsets in use).
    pub fn offset_ms(&self) -> Result<i64, String> {
        let s = self.utc_offset.trim();
        let not_like = || format!("utc_offset `{s}` is not like +08:00");
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(not_like()),
        };
        let minutes = sign * clock_minutes(rest).ok_or_else(not_like)?;
        if !(-12 * 60..=14 * 60).contains(&minutes) {
            return Err(format!(
                "utc_offset `{s}` is not an offset in use (-12:00 to +14:00)"
            ));
        }
        Ok(minutes * 60_000)
    }

    /// The times of day of the refund sweeps, in milliseconds after the shop's midnight.
    pub fn sweeps_ms(&self) -> Result<Vec<i64>, String> {
        self.refund_sweeps
            .iter()
            .map(|t| {
                let minutes = clock_minutes(t)
                    .ok_or_else(|| format!("refund sweep `{t}` is not like 16:30"))?;
                if minutes >= 24 * 60 {
                    return Err(format!("refund sweep `{t}` is not a time of day"));
                }
                Ok(minutes * 60_000)
            })
            .collect()
    }

    /// The next refund sweep strictly after `now` (ms since the epoch, UTC).
    pub fn next_sweep(&self, now: i64) -> Result<i64, String> {
        let offset = self.offset_ms()?;
        let mut times = self.sweeps_ms()?;
        times.sort_unstable();
        let Some(first) = times.first().copied() else {
            return Err("no refund sweep is set".into());
        };
        let local = now + offset;
        let midnight = local - local.rem_euclid(86_400_000);
        let next_local = times
            .iter()
            .map(|t| midnight + t)
            .find(|t| *t > local)
            .unwrap_or(midnight + 86_400_000 + first);
        Ok(next_local - offset)
    }

    /// Whether a carrier name is a postal service (followed up later).
    pub fn is_postal(&self, carrier: &str) -> bool {
        self.postal_carriers
            .iter()
            .any(|c| c.eq_ignore_ascii_case(carrier.trim()))
    }
}

/// `HH:MM` (hours of one or two digits, minutes of two, under 60) as minutes; what is not
/// like that, none.
fn clock_minutes(text: &str) -> Option<i64> {
    let (h, m) = text.split_once(':')?;
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60).then_some(h * 60 + m)
}

/// A policy document: its name in the API and the table, and its defaults.
pub trait Policy: Serialize + DeserializeOwned + Default {
    const NAME: &'static str;
}

impl Policy for RoutingPolicy {
    const NAME: &'static str = "routing";
}

impl Policy for AfterSalesPolicy {
    const NAME: &'static str = "aftersales";
}

/// The names `PUT /api/v1/policies/{name}` takes.
pub const NAMES: &[&str] = &[RoutingPolicy::NAME, AfterSalesPolicy::NAME];

/// `over` merged into `base`: objects key by key, anything else replaced.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// A policy in force, `value` (the defaults with the stored documents merged over them),
/// checked through its typed form: the JSON of the typed policy (every default filled in), or
/// the first problem. `name` is one of [`NAMES`].
pub fn check(name: &str, value: Value) -> Result<Value, String> {
    match name {
        RoutingPolicy::NAME => serde_json::from_value::<RoutingPolicy>(value)
            .and_then(serde_json::to_value)
            .map_err(|e| e.to_string()),
        AfterSalesPolicy::NAME => {
            let p = serde_json::from_value::<AfterSalesPolicy>(value).map_err(|e| e.to_string())?;
            p.next_sweep(0)?;
            serde_json::to_value(p).map_err(|e| e.to_string())
        }
        _ => Err(format!(
            "no policy `{name}` (there is: {})",
            NAMES.join(", ")
        )),
    }
}

/// Durations in policy documents: read as humans write them (`7d`, `30days`, `24h`, `1month`),
/// written in whole days or hours when they are (`365days`, not humantime's `11months 30days
/// 3h 50m 24s`), so the document shown reads as the handbook's numbers.
mod days {
    use serde::{Deserializer, Serializer};
    use std::time::Duration;

    const DAY: u64 = 86_400;
    const HOUR: u64 = 3_600;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let secs = d.as_secs();
        let text = if d.subsec_nanos() != 0 || secs == 0 {
            humantime_serde::re::humantime::format_duration(*d).to_string()
        } else if secs.is_multiple_of(DAY) {
            let n = secs / DAY;
            format!("{n}{}", if n == 1 { "day" } else { "days" })
        } else if secs.is_multiple_of(HOUR) {
            format!("{}h", secs / HOUR)
        } else {
            humantime_serde::re::humantime::format_duration(*d).to_string()
        };
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        humantime_serde::deserialize(d)
    }

    #[cfg(test)]
    #[test]
    fn whole_days_and_hours_are_written_as_such() {
        let text = |d: Duration| {
            let mut out = Vec::new();
            serialize(&d, &mut serde_json::Serializer::new(&mut out)).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(Duration::from_secs(365 * DAY)), "\"365days\"");
        assert_eq!(text(Duration::from_secs(DAY)), "\"1day\"");
        assert_eq!(text(Duration::from_secs(36 * HOUR)), "\"36h\"");
        assert_eq!(text(Duration::from_secs(90)), "\"1m 30s\"");
        let back: Duration =
            deserialize(&mut serde_json::Deserializer::from_str("\"40days\"")).unwrap();
        assert_eq!(back, Duration::from_secs(40 * DAY));
    }
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
    fn the_refund_queue_is_swept_at_10_and_16_30_shop_time() {
        let p = AfterSalesPolicy::default();
        // 2026-12-03 01:00 UTC is 09:00 in +08:00: the next sweep is 10:00 local = 02:00 UTC.
        let day = 1_796_256_000_000; // 2026-12-03 00:00 UTC
        let hour = 3_600_000;
        assert_eq!(p.next_sweep(day + hour), Ok(day + 2 * hour));
        // At 10:00 local exactly, the next is 16:30 local = 08:30 UTC.
        assert_eq!(p.next_sweep(day + 2 * hour), Ok(day + 8 * hour + hour / 2));
        // After 16:30 local, tomorrow 10:00 local.
        assert_eq!(p.next_sweep(day + 9 * hour), Ok(day + 26 * hour));
        let bad = AfterSalesPolicy {
            utc_offset: "8".into(),
            ..AfterSalesPolicy::default()
        };
        assert!(bad.next_sweep(0).is_err());
        // Found by the fuzz target `admin_policy`: the hours multiplied past i64 (a panic with
        // overflow checks, a wrapped offset without).
        for (offset, why) in [
            (
                "-0000000000000000000000000000008897408376325130012:30",
                "not like +08:00",
            ),
            ("+99999999999999999:00", "not like +08:00"),
            ("+15:00", "not an offset in use"),
            ("-12:30", "not an offset in use"),
            ("++5:00", "not like +08:00"),
            ("+05:60", "not like +08:00"),
            ("+5:3", "not like +08:00"),
        ] {
            let bad = AfterSalesPolicy {
                utc_offset: offset.into(),
                ..AfterSalesPolicy::default()
            };
            let e = bad.next_sweep(0).unwrap_err();
            assert!(e.contains(why), "{offset}: {e}");
        }
        for (offset, ms) in [
            ("+14:00", 14 * hour),
            ("-12:00", -12 * hour),
            ("+5:45", 5 * hour + 45 * 60_000),
        ] {
            let p = AfterSalesPolicy {
                utc_offset: offset.into(),
                ..AfterSalesPolicy::default()
            };
            assert_eq!(p.offset_ms(), Ok(ms), "{offset}");
        }
        for sweep in ["24:00", "7:5", "+7:05", "07:5x", ""] {
            let bad = AfterSalesPolicy {
                refund_sweeps: vec![sweep.into()],
                ..AfterSalesPolicy::default()
            };
            assert!(bad.next_sweep(0).is_err(), "{sweep}");
        }
        assert_eq!(p.return_window, Duration::from_secs(7 * 86_400));
        assert_eq!(p.exchange_window, Duration::from_secs(30 * 86_400));
        assert_eq!(p.warranty_window, Duration::from_secs(365 * 86_400));
        assert!(p.is_postal("china post"));
        assert!(!p.is_postal("UPS"));
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
