//! `daifa cases` and `daifa tasks`: the after-sales API from the command line.

use super::Body;
use super::Remote;
use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Lists cases, newest first.
    List {
        /// Only cases in this state (`requested`, `approved`, ...).
        #[arg(long)]
        state: Option<String>,
        /// Only the cases of this order (Daifa's id).
        #[arg(long)]
        order: Option<String>,
        /// Only the cases not closed.
        #[arg(long)]
        open: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Shows a case: its lines, money, history, what it may do next and the handbook's proposal.
    Show {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Opens a case on an order.
    Open {
        /// The order (Daifa's id).
        #[arg(long)]
        order: String,
        /// cancel, refund_only, partial_compensation, return_refund, exchange, reship,
        /// warranty_repair or paid_maintenance.
        #[arg(long)]
        kind: String,
        /// quality, damaged, wrong_item, wrong_quantity, not_received, lost, customs_held,
        /// changed_mind, late_delivery, not_as_described or other.
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        note: Option<String>,
        /// A line concerned, as LINE_ID:QUANTITY; repeat for several (default: every line).
        #[arg(long = "line", value_name = "LINE_ID:QUANTITY")]
        lines: Vec<String>,
        /// A link to a photo or an invoice; repeat for several.
        #[arg(long)]
        evidence: Vec<String>,
        /// The refund asked, in minor units of the order's currency (default: the lines' price).
        #[arg(long)]
        refund_minor: Option<i64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Moves a case by an action: approve, reject, quote, intercept, return_shipped, receive,
    /// inspect, start_repair, ship, refund, close...
    Act {
        id: String,
        action: String,
        #[arg(long)]
        note: Option<String>,
        /// `refund`: the amount paid back, in minor units.
        #[arg(long)]
        amount_minor: Option<i64>,
        /// `inspect`: the goods are as new.
        #[arg(long, conflicts_with = "defect")]
        resellable: bool,
        /// `inspect`: the defect found (the goods are not resellable).
        #[arg(long)]
        defect: Option<String>,
        /// `return_shipped`: the return parcel's tracking number.
        #[arg(long)]
        tracking_number: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Lists tasks, oldest first.
    List {
        /// `open` (default), `done` or `all`.
        #[arg(long, default_value = "open")]
        status: String,
        /// Only the tasks of this order.
        #[arg(long)]
        order: Option<String>,
        /// Only tasks of this kind (`ship_overdue`, `tracking_follow_up`...).
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Marks a task done.
    Done {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// `path?k=v&...` with the given pairs, encoded; pairs without a value are left out.
fn with_query(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut url = reqwest::Url::parse("http://query.invalid/").expect("a constant URL parses");
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in pairs {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
    }
    match url.query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

/// `LINE_ID:QUANTITY`.
fn parse_line(text: &str) -> anyhow::Result<Value> {
    let (id, quantity) = text
        .rsplit_once(':')
        .with_context(|| format!("--line `{text}`: expected LINE_ID:QUANTITY"))?;
    let quantity: u32 = quantity
        .trim()
        .parse()
        .with_context(|| format!("--line `{text}`: the quantity is not a whole number"))?;
    if id.trim().is_empty() || quantity == 0 {
        bail!("--line `{text}`: expected a line id and a quantity of at least 1");
    }
    Ok(json!({ "external_line_id": id.trim(), "quantity": quantity }))
}

fn money(minor: &Value, currency: &Value) -> String {
    match minor.as_i64() {
        Some(m) => format!("{m} {}", currency.as_str().unwrap_or("")),
        None => "-".into(),
    }
}

fn print_case(detail: &Value) {
    let case = &detail["case"];
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    println!("case       {}", text(&case["id"]));
    println!(
        "kind       {}{}",
        text(&case["kind"]),
        case["return_kind"]
            .as_str()
            .map(|k| format!(" ({k})"))
            .unwrap_or_default()
    );
    println!("state      {}", text(&case["state"]));
    println!("order      {}", text(&case["order_id"]));
    println!(
        "reason     {}{}",
        text(&case["reason"]),
        case["note"]
            .as_str()
            .map(|n| format!(": {n}"))
            .unwrap_or_default()
    );
    println!(
        "refund     {} asked, {} refunded",
        money(&case["refund_requested_minor"], &case["currency"]),
        money(&case["refunded_minor"], &case["currency"])
    );
    for line in case["lines"].as_array().into_iter().flatten() {
        println!(
            "line       {} x{}",
            text(&line["external_line_id"]),
            line["quantity"]
        );
    }
    if let Some(rma) = case["return_authorization"].as_str() {
        println!("rma        {rma}");
    }
    if !detail["proposal"].is_null() {
        println!("proposal   {}", detail["proposal"]);
    }
    let allowed: Vec<&str> = detail["allowed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!(
        "next       {}",
        if allowed.is_empty() {
            "nothing, it is closed".to_string()
        } else {
            allowed.join(", ")
        }
    );
    println!("history");
    for h in detail["history"].as_array().into_iter().flatten() {
        println!(
            "  {:<18} {:<18} -> {:<18} by {}",
            text(&h["action"]),
            text(&h["from"]),
            text(&h["to"]),
            text(&h["by"])
        );
    }
}

pub async fn cases(command: CasesCommand) -> anyhow::Result<()> {
    match command {
        CasesCommand::List {
            state,
            order,
            open,
            remote,
        } => {
            let path = with_query(
                "/cases",
                &[
                    ("state", state.as_deref()),
                    ("order_id", order.as_deref()),
                    ("open", open.then_some("true")),
                ],
            );
            let list = remote.send(Method::GET, &path, Body::None).await?;
            println!(
                "{:<34} {:<22} {:<18} {:<34} REFUNDED",
                "ID", "KIND", "STATE", "ORDER"
            );
            for c in list["cases"].as_array().into_iter().flatten() {
                println!(
                    "{:<34} {:<22} {:<18} {:<34} {}",
                    c["id"].as_str().unwrap_or(""),
                    c["kind"].as_str().unwrap_or(""),
                    c["state"].as_str().unwrap_or(""),
                    c["order_id"].as_str().unwrap_or(""),
                    money(&c["refunded_minor"], &c["currency"]),
                );
            }
            Ok(())
        }
        CasesCommand::Show { id, remote } => {
            let detail = remote
                .send(Method::GET, &format!("/cases/{id}"), Body::None)
                .await?;
            print_case(&detail);
            Ok(())
        }
        CasesCommand::Open {
            order,
            kind,
            reason,
            note,
            lines,
            evidence,
            refund_minor,
            remote,
        } => {
            let mut body = Map::new();
            body.insert("order_id".into(), json!(order));
            body.insert("kind".into(), json!(kind));
            body.insert("reason".into(), json!(reason));
            body.insert("note".into(), json!(note));
            body.insert(
                "lines".into(),
                Value::Array(
                    lines
                        .iter()
                        .map(|l| parse_line(l))
                        .collect::<anyhow::Result<_>>()?,
                ),
            );
            body.insert("evidence".into(), json!(evidence));
            body.insert("refund_minor".into(), json!(refund_minor));
            let detail = remote
                .send(Method::POST, "/cases", Body::Json(Value::Object(body)))
                .await?;
            print_case(&detail);
            Ok(())
        }
        CasesCommand::Act {
            id,
            action,
            note,
            amount_minor,
            resellable,
            defect,
            tracking_number,
            remote,
        } => {
            let inspecting = action == "inspect";
            let body = json!({
                "action": action,
                "note": note,
                "amount_minor": amount_minor,
                "resellable": if inspecting { Some(resellable && defect.is_none()) } else { None },
                "defect": defect,
                "tracking_number": tracking_number,
            });
            let detail = remote
                .send(
                    Method::POST,
                    &format!("/cases/{id}/actions"),
                    Body::Json(body),
                )
                .await?;
            print_case(&detail);
            Ok(())
        }
    }
}

pub async fn tasks(command: TasksCommand) -> anyhow::Result<()> {
    match command {
        TasksCommand::List {
            status,
            order,
            kind,
            remote,
        } => {
            let path = with_query(
                "/tasks",
                &[
                    ("status", Some(status.as_str())),
                    ("order_id", order.as_deref()),
                    ("kind", kind.as_deref()),
                ],
            );
            let list = remote.send(Method::GET, &path, Body::None).await?;
            println!(
                "{:<34} {:<22} {:<7} {:<15} TITLE",
                "ID", "KIND", "STATUS", "DUE (ms)"
            );
            for t in list["tasks"].as_array().into_iter().flatten() {
                println!(
                    "{:<34} {:<22} {:<7} {:<15} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["kind"].as_str().unwrap_or(""),
                    t["status"].as_str().unwrap_or(""),
                    t["due_at_ms"],
                    t["title"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
        TasksCommand::Done { id, remote } => {
            remote
                .send(Method::POST, &format!("/tasks/{id}/done"), Body::None)
                .await?;
            println!("task {id} done");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_builds_queries() {
        assert_eq!(
            parse_line("866550311766439020:2").unwrap(),
            json!({ "external_line_id": "866550311766439020", "quantity": 2 })
        );
        assert!(parse_line("866550311766439020").is_err());
        assert!(parse_line("866550311766439020:0").is_err());
        assert!(parse_line(":1").is_err());
        assert_eq!(
            with_query(
                "/cases",
                &[("state", Some("return in transit")), ("order_id", None)]
            ),
            "/cases?state=return+in+transit"
        );
        assert_eq!(with_query("/tasks", &[("kind", None)]), "/tasks");
    }
}
