//! The plugin developer kit, local to the developer's machine: `daifa plugin test` runs a
//! plugin project's recorded cases (`docs/plugin-cases.md`) against its component in the real
//! host, and `daifa plugin new` writes a project to start from ([`new`]).

pub mod new;

use anyhow::{Context, bail};
use daifa_plugin_host::cases::{self, CaseOutcome, CaseRunner};
use daifa_plugin_host::{EngineConfig, Manifest, PluginSpec};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What `daifa plugin test` was asked to do.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The plugin project (holding `daifa-plugin.toml` and `cases/`).
    pub dir: PathBuf,
    /// Whether to run the project's build first.
    pub build: bool,
    /// Whether to write the actual result into the `expect` of failing cases.
    pub bless: bool,
    /// Only the cases whose file name contains this.
    pub filter: Option<String>,
}

/// How a run went, case by case.
#[derive(Debug, Default)]
pub struct TestSummary {
    pub passed: usize,
    pub failed: usize,
    pub blessed: usize,
}

/// Builds (unless told not to), loads the component with the manifest's limits and runs every
/// case, printing a line per case and a diff per failure. Fails when any case fails.
pub async fn test(options: &TestOptions) -> anyhow::Result<TestSummary> {
    let dir = options.dir.as_path();
    let manifest = read_manifest(dir)?;
    if options.build {
        build(dir, &manifest)?;
    }
    let wasm_path = component_path(dir, &manifest)?;
    let wasm = std::fs::read(&wasm_path).with_context(|| {
        let hint = if options.build {
            "the build did not write it: set `[build] component` in daifa-plugin.toml"
        } else {
            "build the plugin, or run without --no-build"
        };
        format!("reading the component {} ({hint})", wasm_path.display())
    })?;

    let files = case_files(dir, options.filter.as_deref())?;
    let config = EngineConfig::default();
    let spec = PluginSpec {
        name: manifest.name.clone(),
        version: manifest.version.to_string(),
        kind: manifest.kind,
        limits: manifest.limits.resolve(&config.limits, &config.ceiling),
        // Every case gets a fresh instance: no case sees what an earlier one left behind.
        reuse_calls: 0,
    };
    let started = Instant::now();
    let mut runner = CaseRunner::new(config, spec, &wasm, Some(manifest.clone()))
        .with_context(|| format!("loading {}", wasm_path.display()))?;
    println!(
        "plugin {} {} ({}): {} loaded in {}, {} case{}",
        manifest.name,
        manifest.version,
        manifest.kind.as_str(),
        wasm_path.display(),
        duration(started.elapsed()),
        files.len(),
        if files.len() == 1 { "" } else { "s" }
    );

    let mut summary = TestSummary::default();
    let mut in_cases = Duration::ZERO;
    for file in &files {
        let case = match cases::load(file) {
            Ok(case) => case,
            Err(e) => {
                summary.failed += 1;
                println!("FAILED  {}", display_name(file));
                println!("    - {}", e.message);
                continue;
            }
        };
        let outcome = runner.run(&case).await;
        in_cases += outcome.elapsed;
        report(&outcome);
        if outcome.passed() {
            summary.passed += 1;
        } else if options.bless {
            if bless(&case, &outcome)? {
                summary.blessed += 1;
            } else {
                summary.failed += 1;
            }
        } else {
            summary.failed += 1;
        }
    }

    let blessed = if summary.blessed > 0 {
        format!(", {} blessed", summary.blessed)
    } else {
        String::new()
    };
    println!(
        "{} passed, {} failed{blessed} (calls took {})",
        summary.passed,
        summary.failed,
        duration(in_cases)
    );
    if summary.failed > 0 {
        bail!(
            "{} of {} cases failed",
            summary.failed,
            summary.passed + summary.failed + summary.blessed
        );
    }
    Ok(summary)
}

fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join("daifa-plugin.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Manifest::from_toml(&text).with_context(|| format!("in {}", path.display()))
}

/// The project's build: `[build] command` through `sh -c`, else cargo's release build for
/// wasm32-wasip2; run in the project's directory, its output shown as it goes.
fn build(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let (mut command, shown) = match &manifest.build.command {
        Some(line) => {
            let mut command = Command::new("sh");
            command.arg("-c").arg(line);
            (command, line.clone())
        }
        None => {
            let mut command = Command::new("cargo");
            command.args(["build", "--release", "--target", "wasm32-wasip2"]);
            (
                command,
                "cargo build --release --target wasm32-wasip2".to_string(),
            )
        }
    };
    println!("building: {shown}");
    let started = Instant::now();
    let status = command
        .current_dir(dir)
        .status()
        .with_context(|| format!("running `{shown}` in {}", dir.display()))?;
    if !status.success() {
        bail!(
            "the build failed ({status}): `{shown}` in {}",
            dir.display()
        );
    }
    println!("built in {}", duration(started.elapsed()));
    Ok(())
}

/// `DIR/cases/*.json` whose name contains `filter`, sorted.
fn case_files(dir: &Path, filter: Option<&str>) -> anyhow::Result<Vec<PathBuf>> {
    let all = cases::discover(dir)
        .with_context(|| format!("reading the cases in {}", dir.join("cases").display()))?;
    let files: Vec<PathBuf> = all
        .into_iter()
        .filter(|f| filter.is_none_or(|needle| display_name(f).contains(needle)))
        .collect();
    match filter {
        _ if !files.is_empty() => Ok(files),
        Some(needle) => bail!(
            "no case in {} matches `{needle}`",
            dir.join("cases").display()
        ),
        None => bail!(
            "no cases: write some in {} (see docs/plugin-cases.md)",
            dir.join("cases").display()
        ),
    }
}

fn report(outcome: &CaseOutcome) {
    let status = if outcome.passed() { "ok" } else { "FAILED" };
    println!(
        "{status:<7} {}: {} ({})",
        outcome.name,
        outcome.description,
        duration(outcome.elapsed)
    );
    if !outcome.passed() {
        print!("{}", outcome.details());
    }
}

/// Writes the actual result into a failing case's `expect`; whether it did.
fn bless(case: &cases::LoadedCase, outcome: &CaseOutcome) -> anyhow::Result<bool> {
    let Some(expect) = outcome.blessable() else {
        println!("    not blessed: fix the case's `http` or the plugin's requests first");
        return Ok(false);
    };
    let text = cases::bless(&case.text, &expect)
        .map_err(|e| anyhow::anyhow!("{}: cannot bless: {e}", case.path.display()))?;
    std::fs::write(&case.path, text).with_context(|| format!("writing {}", case.path.display()))?;
    println!(
        "    blessed: wrote the actual result to {}",
        case.path.display()
    );
    Ok(true)
}

fn display_name(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The built component of a plugin project: `[build] component`, else cargo's wasm32-wasip2
/// release output for the crate in `dir` (in the target directory cargo uses there).
pub fn component_path(dir: &Path, manifest: &Manifest) -> anyhow::Result<PathBuf> {
    if let Some(path) = &manifest.build.component {
        return Ok(dir.join(path));
    }
    let cargo_toml = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&cargo_toml).with_context(|| {
        format!(
            "the manifest has no [build] component and {} cannot be read",
            cargo_toml.display()
        )
    })?;
    let value: toml::Value = toml::from_str(&text)?;
    let Some(crate_name) = value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
    else {
        bail!("{} has no package name", cargo_toml.display());
    };
    Ok(cargo_target_dir(dir)
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", crate_name.replace('-', "_"))))
}

/// Where cargo builds the crate in `dir`, as `cargo metadata` tells it: `$CARGO_TARGET_DIR`, the
/// target directory of the workspace the crate belongs to, or a `.cargo/config.toml` setting.
/// Without cargo: `$CARGO_TARGET_DIR`, else `dir/target`.
fn cargo_target_dir(dir: &Path) -> PathBuf {
    let from_cargo = std::process::Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|m| m["target_directory"].as_str().map(PathBuf::from));
    from_cargo.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("target"))
    })
}
