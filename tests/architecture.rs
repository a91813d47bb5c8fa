//! The gateway's table ownership, checked on its source (ARCHITECTURE.md, "The store owns the
//! tables"): the SQL that names a table lives in the `store/` module that owns it, and no
//! module outside the store runs SQL. The stages go through the store's functions, so a
//! table's invariants (a supplier order's status moves by compare-and-set only, an order's
//! timeline explains each change) are kept in one place.
//!
//! Writes (`insert into`, `update`, `delete from`) by any other module fail the test. Reads of
//! another module's table fail it too, except the joins listed in [`READ_JOINS`], each with why
//! it is there; the list may only shrink.
//!
//! The import direction is checked too: each module sits in a layer ([`LAYERS`]: foundation,
//! store, records, services, stages, edges), imports nothing from a layer above its own, and no
//! import closes a circle of modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module (a file or folder of `gateway/src`) and the tables it owns.
const OWNERS: &[(&str, &[&str])] = &[
    ("store/raw_requests", &["raw_requests", "deliveries"]),
    ("store/orders", &["orders", "order_events"]),
    (
        "store/supplier_orders",
        &[
            "supplier_orders",
            "supplier_order_lines",
            "line_substitutions",
            "supplier_order_updates",
        ],
    ),
    ("store/holds", &["holds"]),
    ("store/decisions", &["routing_decisions"]),
    // What suppliers offer for each storefront SKU, the shop's products, suppliers' notices.
    (
        "store/offers",
        &["offers", "products", "notices", "sku_mappings"],
    ),
    ("store/policies", &["policies"]),
    (
        "store/shipments",
        &["shipments", "tracking_registrations", "tracking_events"],
    ),
    ("store/poll_state", &["poll_state"]),
    ("store/jobs", &["jobs", "job_attempts"]),
    (
        "store/connections",
        &[
            "connections",
            "connection_plugin_history",
            "connections_new",
        ],
    ),
    ("store/plugins", &["plugin_packages"]),
    ("store/shadow", &["shadow_results"]),
    ("store/cases", &["cases", "case_events", "return_notes"]),
    ("store/tasks", &["tasks"]),
    // The bare pipeline of `daifa bench ingest`, in a scratch database of its own.
    ("store/bare", &["bare_requests", "bare_orders"]),
];

/// Reads of another module's table that remain, as `(file, table, why)`.
const READ_JOINS: &[(&str, &str, &str)] = &[
    (
        "store/poll_state.rs",
        "connections",
        "the due-poll claim filters on enabled connections in the same locked statement",
    ),
    (
        "store/poll_state.rs",
        "plugin_packages",
        "the due-poll claim filters on versions that poll, in the same locked statement",
    ),
    (
        "store/offers.rs",
        "connections",
        "offers and notices are listed with their channel's and supplier's names",
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module a file of `gateway/src` belongs to: its first path component (`routing/holds.rs`
/// is `routing`), except under `store/`, where each file is a module of its own
/// (`store/orders.rs` is `store/orders`).
fn module_of(rel: &str) -> String {
    let mut parts = rel.split('/');
    let first = parts.next().unwrap_or_default().trim_end_matches(".rs");
    match (first, parts.next()) {
        ("store", Some(file)) => format!("store/{}", file.trim_end_matches(".rs")),
        _ => first.to_string(),
    }
}

/// Every Rust file of `gateway/src`: its path there (`routing/holds.rs`) and its text.
fn sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 20, "the gateway's source was not found");
    files
        .iter()
        .map(|file| {
            let rel = file
                .strip_prefix(src())
                .expect("a file under gateway/src")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(file).expect("reading a gateway source file");
            (rel, text)
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading gateway/src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `(keyword, table)` of SQL in a line: `from t`, `join t`, `into t`, `update t`,
/// `delete from t` (as `delete`).
fn tables_named(line: &str) -> Vec<(&'static str, String)> {
    let words: Vec<&str> = line
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut named = Vec::new();
    for (i, pair) in words.windows(2).enumerate() {
        let keyword = match pair[0] {
            "from" if i > 0 && words[i - 1] == "delete" => "delete",
            "from" => "from",
            "join" => "join",
            "into" => "into",
            "update" => "update",
            _ => continue,
        };
        named.push((keyword, pair[1].to_string()));
    }
    named
}

/// The string literals of Rust source (SQL lives in them), each with the line it starts on;
/// comments are skipped. Enough for this code base: no raw strings in `gateway/src/*.rs`.
fn string_literals(source: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        match chars[i] {
            '\n' => line += 1,
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            // A character literal of a quote or a backslash.
            '\'' if chars.get(i + 2) == Some(&'\'') => i += 2,
            '\'' if chars.get(i + 1) == Some(&'\\') && chars.get(i + 3) == Some(&'\'') => i += 3,
            '"' => {
                let start = line;
                let mut text = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    if chars.get(i) == Some(&'\n') {
                        line += 1;
                    }
                    if let Some(c) = chars.get(i) {
                        text.push(*c);
                    }
                    i += 1;
                }
                out.push((start, text));
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[test]
fn each_tables_sql_lives_in_the_module_that_owns_it() {
    let owner: BTreeMap<&str, Vec<&str>> =
        OWNERS
            .iter()
            .fold(BTreeMap::new(), |mut m, (module, tables)| {
                for t in *tables {
                    m.entry(*t).or_insert_with(Vec::new).push(*module);
                }
                m
            });
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    let mut joins_seen = Vec::new();
    for (rel, text) in sources() {
        let module = module_of(&rel);
        for (n, literal) in string_literals(&text) {
            for (keyword, table) in tables_named(&literal) {
                let Some(owners) = owner.get(table.as_str()) else {
                    continue;
                };
                if owners.contains(&module.as_str()) {
                    continue;
                }
                let place = format!(
                    "{rel}:{}: {keyword} {table} (owned by {})",
                    n,
                    owners.join(", ")
                );
                if matches!(keyword, "into" | "update" | "delete") {
                    writes.push(place);
                } else if READ_JOINS.iter().any(|(f, t, _)| *f == rel && *t == table) {
                    joins_seen.push((rel.clone(), table.clone()));
                } else {
                    reads.push(place);
                }
            }
        }
    }
    assert!(
        writes.is_empty(),
        "modules write tables they do not own:\n{}",
        writes.join("\n")
    );
    assert!(
        reads.is_empty(),
        "modules read tables they do not own (go through the owner's functions):\n{}",
        reads.join("\n")
    );
    for (file, table, _) in READ_JOINS {
        assert!(
            joins_seen.iter().any(|(f, t)| f == file && t == table),
            "{file} no longer reads {table}: take it off READ_JOINS"
        );
    }
}

/// The store is the only layer that runs SQL: every table is owned by a `store/` module, and
/// no file outside `store/` (and `db.rs`, which opens the pool, runs migrations and answers
/// the health check, and `db/deferred.rs`, which runs the inserts store modules hand it) builds
/// a query.
#[test]
fn sql_runs_only_in_the_store() {
    let stages: Vec<_> = OWNERS
        .iter()
        .filter(|(module, _)| !module.starts_with("store/"))
        .collect();
    assert!(
        stages.is_empty(),
        "tables owned outside the store: {stages:?}"
    );
    let mut found = Vec::new();
    for (rel, text) in sources() {
        if rel.starts_with("store/") || rel == "db.rs" || rel.starts_with("db/") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if code.contains("sqlx::query") || code.contains("AssertSqlSafe") {
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "queries outside the store (move them into the store module that owns the table):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_reads_sql_in_string_literals_only() {
    let source = "let p = dir.join(\"cases\"); // update orders\nsqlx::query(\"select id from \\\n  orders where x = '\\\"'\")";
    let literals = string_literals(source);
    assert_eq!(literals.len(), 2, "{literals:?}");
    assert_eq!(literals[1].0, 2, "the line the literal starts on");
    let named: Vec<_> = literals.iter().flat_map(|(_, l)| tables_named(l)).collect();
    assert_eq!(named, [("from", "orders".to_string())]);
}

#[test]
fn the_scanner_finds_sql_of_other_modules() {
    assert_eq!(
        tables_named("\"update supplier_orders set status = $1 where id = $2\""),
        [("update", "supplier_orders".to_string())]
    );
    assert_eq!(
        tables_named("select s.id from shipments s join orders o on o.id = s.order_id"),
        [
            ("from", "shipments".to_string()),
            ("join", "orders".to_string())
        ]
    );
    assert_eq!(
        tables_named("\"delete from offers where id = $1\""),
        [("delete", "offers".to_string())]
    );
    assert!(
        tables_named("let orders = from_row(r);")
            .iter()
            .all(|(_, t)| t != "orders")
    );
}

/// The gateway's layers, bottom first, and the modules of each. A module imports only modules
/// of its own layer or of the layers below it, and no import closes a circle (ARCHITECTURE.md,
/// "Layers"). A new module must be placed here.
const LAYERS: &[(&str, &[&str])] = &[
    // Plumbing that knows nothing of orders.
    (
        "foundation",
        &["cache", "config", "db", "error", "secrets", "telemetry"],
    ),
    // The store: each `store/` module owns a group of tables and is the only one whose SQL
    // names them (`OWNERS`).
    ("store", &["store"]),
    // What the records mean, with no stage logic: the policies (handbook defaults, merged
    // documents), the plugin registry (compiled versions), the service clocks set as jobs.
    ("records", &["policy", "plugins", "clocks"]),
    // What every stage runs with: the shared services, the connections and calls into their
    // plugins, shadow runs, and the job workers (which know no stage: stages register handlers).
    (
        "services",
        &["services", "connections", "calls", "shadow", "worker"],
    ),
    // The order's life.
    (
        "stages",
        &[
            "catalogue",
            "routing",
            "cancellation",
            "tracking",
            "dispatch",
            "fulfilment",
            "aftersales",
            "changes",
            "ingest",
            "polling",
            "replay",
        ],
    ),
    // The HTTP application and its admin API, the CLI and its client, the demo, the plugin
    // developer's kit.
    (
        "edges",
        &[
            "admin", "app", "bench", "demo", "cli", "client", "devkit", "main", "lib",
        ],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    let module = if module.starts_with("store/") {
        "store"
    } else {
        module
    };
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The gateway modules each module imports (`crate::x`, `use crate::{x, y::z}`), comments
/// aside.
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in sources() {
        let module = module_of(&rel);
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let found = imports.entry(module.clone()).or_default();
        for name in crate_paths(&text) {
            if name != module {
                found.insert(name);
            }
        }
    }
    let modules: BTreeSet<String> = imports.keys().cloned().collect();
    for deps in imports.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    imports
}

/// The module of every `crate::` path in `text`, braces included (`crate::{a, b::c}` gives
/// `a` and `b`, `crate::store::{c, d}` gives `store/c` and `store/d`).
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        out.extend(path_heads(&text[at + "crate::".len()..]));
    }
    out.retain(|name| !name.is_empty());
    out
}

/// The modules a path names, read from just after `crate::`: its first segment, or each
/// item's of a group; `store::x` names `store/x`.
fn path_heads(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let item_heads = |item: &str| -> Vec<String> {
        match item.trim_start().strip_prefix("store::") {
            Some(inner) => path_heads(inner)
                .into_iter()
                .map(|m| format!("store/{m}"))
                .collect(),
            None => vec![ident(item)],
        }
    };
    let mut out = Vec::new();
    if let Some(group) = rest.strip_prefix('{') {
        let (mut depth, mut item) = (1, String::new());
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 1 => {
                    out.extend(item_heads(&item));
                    item.clear();
                    continue;
                }
                _ => {}
            }
            if depth == 0 {
                break;
            }
            item.push(c);
        }
        out.extend(item_heads(&item));
    } else {
        out.extend(item_heads(rest));
    }
    out
}

fn reaches(imports: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::from([from.to_string()]);
    let mut stack = vec![from.to_string()];
    while let Some(m) = stack.pop() {
        if m == to {
            return true;
        }
        for next in imports.get(&m).into_iter().flatten() {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn imports_run_downward_and_close_no_circle() {
    let imports = module_imports();
    assert!(imports.len() > 20, "the gateway's source was not found");
    let unplaced: Vec<_> = imports.keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules in no layer (place them in LAYERS and in ARCHITECTURE.md): {unplaced:?}"
    );
    let (mut upward, mut cyclic) = (Vec::new(), Vec::new());
    for (module, deps) in &imports {
        for dep in deps {
            let edge = format!("{module} -> {dep}");
            if layer_of(dep) > layer_of(module) {
                upward.push(format!(
                    "{edge} ({} imports {})",
                    LAYERS[layer_of(module).unwrap()].0,
                    LAYERS[layer_of(dep).unwrap()].0
                ));
            } else if reaches(&imports, dep, module) {
                cyclic.push(edge);
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run upward (take what is needed as a parameter, or register it from \
         above):\n{}",
        upward.join("\n")
    );
    assert!(
        cyclic.is_empty(),
        "imports that close a circle of modules (move the shared part below both):\n{}",
        cyclic.join("\n")
    );
}

#[test]
fn the_layer_check_sees_an_upward_import_and_a_circle() {
    let mut imports = module_imports();
    imports
        .get_mut("store/orders")
        .expect("the orders store")
        .insert("routing".into());
    assert!(layer_of("routing") > layer_of("store/orders"));
    assert!(reaches(&imports, "routing", "store/orders"));
    imports
        .get_mut("routing")
        .expect("the routing module")
        .insert("dispatch".into());
    assert!(
        reaches(&imports, "dispatch", "routing"),
        "dispatch imports routing, so routing -> dispatch closes a circle"
    );
}

#[test]
fn the_import_scanner_reads_paths_and_groups() {
    let text = "use crate::db::{Tx, now_ms};\nuse crate::{store::jobs, routing::{self, status}, tasks};\nuse crate::store::{orders, tasks as t};\nlet x = crate::store::orders::get(tx);";
    assert_eq!(
        crate_paths(text),
        [
            "db",
            "store/jobs",
            "routing",
            "tasks",
            "store/orders",
            "store/tasks",
            "store/orders"
        ]
    );
}
