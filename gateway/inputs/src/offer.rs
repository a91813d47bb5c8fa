//! Offers as people give them: the JSON body of `POST /api/v1/offers` and the rows of a CSV
//! file (`POST /api/v1/offers.csv`), parsed and checked against the shop's connections
//! ([`check`]). Storing them is the gateway's (`catalogue.rs`).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The shop's connections by name: their kind (`channel`, `supplier`, `carrier`) and id.
pub type Connections = HashMap<String, (String, String)>;

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

/// A checked offer, ready to store.
pub struct Checked {
    pub channel_connection_id: String,
    pub supplier_connection_id: String,
    pub input: OfferInput,
    pub unit_cost_minor: Option<i64>,
    pub shipping_cost_minor: Option<i64>,
}

/// An offer checked against the shop's connections: every problem found, or the offer ready to
/// store with its connections' ids and its amounts bounded.
pub fn check(input: OfferInput, index: &Connections) -> Result<Checked, Vec<String>> {
    let mut problems = Vec::new();
    let connection = |name: &str, kind: &str, problems: &mut Vec<String>| match index.get(name) {
        Some((k, id)) if k == kind => Some(id.clone()),
        Some((k, _)) => {
            problems.push(format!("`{name}` is a {k} connection, not a {kind}"));
            None
        }
        None => {
            problems.push(format!("no connection named `{name}`"));
            None
        }
    };
    let channel = connection(&input.channel, "channel", &mut problems);
    let supplier = connection(&input.supplier, "supplier", &mut problems);
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
pub fn from_record(
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

/// A row of a CSV file: its line number and its offer, or what is wrong with it.
pub type Row = (usize, Result<OfferInput, String>);

/// A CSV file of offers, row by row with its line number (as an editor shows them: the header is
/// line 1), each an offer or what is wrong with it; or why the whole file is refused (a NUL
/// character, no header row, unknown columns).
pub fn read_csv(text: &[u8]) -> Result<Vec<Row>, String> {
    if text.contains(&0) {
        return Err("the CSV holds a NUL character, which cannot be stored".into());
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text);
    let headers = reader
        .headers()
        .map_err(|e| format!("the CSV has no header row: {e}"))?
        .clone();
    let unknown: Vec<&str> = headers
        .iter()
        .filter(|h| !CSV_COLUMNS.contains(h))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown columns: {} (the columns are: {})",
            unknown.join(", "),
            CSV_COLUMNS.join(", ")
        ));
    }
    // The line a record starts on (a quoted cell may hold line breaks); the line after the
    // previous record's when the reader does not say.
    let mut rows = Vec::new();
    let mut last = 1;
    for record in reader.records() {
        let (position, row) = match record {
            Ok(r) => (r.position().cloned(), from_record(&headers, &r)),
            Err(e) => (e.position().cloned(), Err(e.to_string())),
        };
        let line = position
            .and_then(|p| usize::try_from(p.line()).ok())
            .filter(|line| *line > last)
            .unwrap_or(last + 1);
        last = line;
        rows.push((line, row));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rows_problem_names_the_line_it_starts_on() {
        let rows = read_csv(
            b"channel,storefront_sku,supplier,supplier_sku,brand,stock\n\
              shop,A,acme,S-A,\"Acme\nHome\",1\n\
              shop,B,acme,S-B,Acme,many\n\
              shop,C,acme,S-C,Acme,2\n",
        )
        .unwrap();
        let lines: Vec<usize> = rows.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 4, 5], "the first row spans lines 2 and 3");
        assert_eq!(
            rows[0].1.as_ref().unwrap().brand.as_deref(),
            Some("Acme\nHome")
        );
        assert!(rows[1].1.as_ref().unwrap_err().contains("stock: `many`"));
        let refused = read_csv(b"channel,storefront_sku,colour\nshop,A,red\n").unwrap_err();
        assert!(refused.starts_with("unknown columns: colour"), "{refused}");
    }

    fn index() -> Connections {
        [
            (
                "shop".to_string(),
                ("channel".to_string(), "con_shop".to_string()),
            ),
            (
                "acme".to_string(),
                ("supplier".to_string(), "con_acme".to_string()),
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
