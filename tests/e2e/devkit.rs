//! The plugin developer kit through the real `daifa` binary: projects made by `daifa plugin new`
//! (channel, supplier and carrier) pass `cargo test` and `daifa plugin test` as generated; a case
//! that expects something else fails and shows the difference; `--bless` records what the plugin
//! returns; the bundled plugins pass their recorded cases.
//!
//! Generated projects build into `<repo>/target/devkit-plugins`, shared across runs, so that
//! only the first run pays for compiling the SDK and its dependencies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A directory of the test's own under cargo's temp dir for tests, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("devkit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(command: &mut Command) -> (bool, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.success(), text)
}

/// `daifa ARGS` with `CARGO_TARGET_DIR` set to `target_dir`.
fn daifa(args: &[&str], target_dir: &Path) -> (bool, String) {
    run(Command::new(env!("CARGO_BIN_EXE_daifa"))
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUST_LOG", "warn"))
}

fn shared_plugin_target() -> PathBuf {
    repo().join("target/devkit-plugins")
}

/// Generates a project and checks it passes `cargo test` and `daifa plugin test` as it is.
fn generate_and_pass(scratch: &Scratch, name: &str, kind: &str) -> PathBuf {
    let target = shared_plugin_target();
    let parent = scratch.0.to_str().unwrap();
    let (ok, out) = daifa(
        &["plugin", "new", name, "--kind", kind, "--dir", parent],
        &target,
    );
    assert!(ok, "{out}");
    let dir = scratch.0.join(name);
    assert!(out.contains(&dir.display().to_string()), "{out}");

    // A second time is refused, and leaves the project as it was.
    let (ok, out) = daifa(
        &["plugin", "new", name, "--kind", kind, "--dir", parent],
        &target,
    );
    assert!(!ok, "{out}");
    assert!(out.contains("already exists"), "{out}");

    let cargo = |args: &[&str]| {
        run(Command::new("cargo")
            .args(args)
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target))
    };
    let (ok, out) = cargo(&["test"]);
    assert!(
        ok,
        "cargo test of the generated {kind} project failed:\n{out}"
    );
    assert!(out.contains("test result: ok."), "{out}");
    // What its developer starts from is formatted and lint-free.
    let (ok, out) = cargo(&["fmt", "--check"]);
    assert!(ok, "the generated {kind} project is not formatted:\n{out}");
    let (ok, out) = cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]);
    assert!(ok, "clippy warns on the generated {kind} project:\n{out}");

    let (ok, out) = daifa(&["plugin", "test", dir.to_str().unwrap()], &target);
    assert!(
        ok,
        "daifa plugin test of the generated {kind} project failed:\n{out}"
    );
    let cases = std::fs::read_dir(dir.join("cases")).unwrap().count();
    assert!(cases >= 5, "{cases} cases");
    assert!(
        out.contains(&format!("{cases} passed, 0 failed")),
        "every case runs and passes:\n{out}"
    );
    assert_eq!(out.matches("\nok ").count(), cases, "{out}");
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn devkit_a_generated_channel_passes_and_a_changed_expectation_fails_with_a_diff() {
    let scratch = Scratch::new("channel");
    let dir = generate_and_pass(&scratch, "acme-shop", "channel");
    let target = shared_plugin_target();
    let dir_arg = dir.to_str().unwrap();
    let case = dir.join("cases/push-fulfillment.json");

    // The case expects another fulfillment id than the storefront answers.
    edit(
        &case,
        r#""external_id": "F-5001""#,
        r#""external_id": "F-5002""#,
    );
    let (ok, out) = daifa(&["plugin", "test", dir_arg, "--no-build"], &target);
    assert!(!ok, "a failing case must fail the command:\n{out}");
    assert!(out.contains("FAILED  push-fulfillment: "), "{out}");
    assert!(out.contains("the result differs from `expect`"), "{out}");
    assert!(out.contains("--- expected"), "{out}");
    assert!(out.contains(r#"-    "external_id": "F-5002""#), "{out}");
    assert!(out.contains(r#"+    "external_id": "F-5001""#), "{out}");
    assert!(out.contains("5 passed, 1 failed"), "{out}");
    assert!(out.contains("1 of 6 cases failed"), "{out}");

    // --case runs only the matching cases.
    let (ok, out) = daifa(
        &["plugin", "test", dir_arg, "--no-build", "--case", "order-c"],
        &target,
    );
    assert!(ok, "{out}");
    assert!(out.contains("2 passed, 0 failed"), "{out}");

    // --bless writes what the plugin returned; the case passes from then on.
    let (ok, out) = daifa(
        &["plugin", "test", dir_arg, "--no-build", "--bless"],
        &target,
    );
    assert!(ok, "{out}");
    assert!(out.contains("5 passed, 0 failed, 1 blessed"), "{out}");
    let blessed = std::fs::read_to_string(&case).unwrap();
    assert!(blessed.contains(r#""external_id": "F-5001""#), "{blessed}");
    assert!(
        blessed.starts_with("{\n  \"description\": \"a shipment is POSTed"),
        "the rest of the case is kept:\n{blessed}"
    );
    let (ok, out) = daifa(&["plugin", "test", dir_arg, "--no-build"], &target);
    assert!(ok, "{out}");

    // A request the case does not list fails the case, and is not blessed away.
    edit(
        &case,
        "https://shop.example.com/api/orders/1001/fulfillments",
        "https://shop.example.com/api/v2/orders/1001/fulfillments",
    );
    let (ok, out) = daifa(
        &["plugin", "test", dir_arg, "--no-build", "--bless"],
        &target,
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("http[0].request: url is `https://shop.example.com/api/orders/1001/fulfillments`, the case expects `https://shop.example.com/api/v2/orders/1001/fulfillments`"),
        "{out}"
    );
    assert!(out.contains("not blessed"), "{out}");
}

#[test]
fn devkit_a_generated_supplier_passes_as_generated() {
    let scratch = Scratch::new("supplier");
    let dir = generate_and_pass(&scratch, "acme-supply", "supplier");

    // A broken case names its file and field, and fails the run.
    edit(
        &dir.join("cases/submit-order.json"),
        r#""quantity": 2,"#,
        r#""quantity": "2","#,
    );
    let (ok, out) = daifa(
        &["plugin", "test", dir.to_str().unwrap(), "--no-build"],
        &shared_plugin_target(),
    );
    assert!(!ok, "{out}");
    assert!(out.contains("FAILED  submit-order\n"), "{out}");
    assert!(
        out.contains("input.lines[0].quantity: invalid type"),
        "{out}"
    );
}

#[test]
fn devkit_a_generated_carrier_passes_as_generated() {
    let scratch = Scratch::new("carrier");
    let dir = generate_and_pass(&scratch, "acme-track", "carrier");

    // A parcel of `fetch-tracking`'s list that is not a WIT `parcel` names its place.
    edit(
        &dir.join("cases/fetch-tracking.json"),
        r#""shipped_at": 1767344400000"#,
        r#""shipped_at": "2026-01-02""#,
    );
    let (ok, out) = daifa(
        &["plugin", "test", dir.to_str().unwrap(), "--no-build"],
        &shared_plugin_target(),
    );
    assert!(!ok, "{out}");
    assert!(out.contains("FAILED  fetch-tracking\n"), "{out}");
    assert!(out.contains("[0].shipped_at: invalid type"), "{out}");
    assert!(out.contains("6 passed, 1 failed"), "{out}");
}

#[test]
fn devkit_the_bundled_plugins_pass_their_recorded_cases() {
    // The components the gateway ships, as `plugins/bundled/build.rs` built them.
    let built = std::env::var_os("DAIFA_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/wasm-plugins"));
    for plugin in ["shopify", "webhook-supplier", "seventeentrack"] {
        let dir = repo().join("plugins").join(plugin);
        let cases = std::fs::read_dir(dir.join("cases")).unwrap().count();
        assert!(cases >= 5, "{plugin} has {cases} cases");
        let (ok, out) = daifa(
            &["plugin", "test", dir.to_str().unwrap(), "--no-build"],
            &built,
        );
        assert!(ok, "{plugin}:\n{out}");
        assert!(
            out.contains(&format!("{cases} passed, 0 failed")),
            "{plugin}:\n{out}"
        );
    }
}
