//! Builds the bundled plugins to wasm components and embeds them in this crate.
//!
//! Each plugin is built by a nested `cargo build --target wasm32-wasip2` with its own target
//! directory (the outer build holds the lock on the main one) and in its own invocation (each
//! plugin enables one world of the SDK; built together, cargo would unify the features and every
//! component would claim both worlds). The way wasmtime's `test-programs` artifacts are built.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (package, directory) of every bundled plugin; name, version and kind come from the
/// directory's `daifa-plugin.toml`, which is embedded in the component: each is a package.
const PLUGINS: &[(&str, &str)] = &[
    ("daifa-plugin-shopify", "plugins/shopify"),
    ("daifa-plugin-webhook-supplier", "plugins/webhook-supplier"),
    ("daifa-plugin-seventeentrack", "plugins/seventeentrack"),
];

/// Plugins that exist to test the host (`TEST_PLUGINS`): built the same way, never in `PLUGINS`,
/// so the gateway cannot load them.
const TEST_PLUGINS: &[(&str, &str)] = &[
    ("daifa-plugin-misbehaving", "plugins/testing/misbehaving"),
    ("daifa-plugin-legacy-wit", "plugins/testing/legacy-wit"),
];

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("workspace root");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for dir in [
        "plugins/shopify",
        "plugins/webhook-supplier",
        "plugins/seventeentrack",
        "plugins/testing/misbehaving",
        "plugins/testing/legacy-wit",
        "plugin-sdk/wit-archive",
        "plugin-sdk/guest",
        "plugin-sdk/wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=DAIFA_WASM_TARGET_DIR");

    ensure_target_installed();
    let target_dir = env::var_os("DAIFA_WASM_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/wasm-plugins"));

    let mut generated = String::new();
    for (doc, static_name, plugins) in [
        ("Every plugin bundled with the gateway.", "PLUGINS", PLUGINS),
        (
            "Plugins that test the host (misbehaving on purpose); the gateway never loads them.",
            "TEST_PLUGINS",
            TEST_PLUGINS,
        ),
    ] {
        writeln!(
            generated,
            "/// {doc}\npub static {static_name}: &[BundledPlugin] = &["
        )
        .expect("writing to a String");
        for (package, dir) in plugins {
            let wasm = build_plugin(&root, &target_dir, package);
            let manifest_path = root.join(dir).join("daifa-plugin.toml");
            let manifest_toml = std::fs::read_to_string(&manifest_path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", manifest_path.display()));
            let manifest: Manifest = toml::from_str(&manifest_toml)
                .unwrap_or_else(|e| panic!("{}: {e}", manifest_path.display()));
            let component =
                std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()));
            let dest = out_dir.join(format!("{}.wasm", manifest.name));
            std::fs::write(&dest, pack(component, &manifest_toml))
                .unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
            writeln!(
                generated,
                "    BundledPlugin {{ name: {name:?}, kind: {kind:?}, version: {version:?}, wasm: include_bytes!({dest:?}) }},",
                name = manifest.name,
                kind = manifest.kind,
                version = manifest.version,
                dest = dest.display().to_string(),
            )
            .expect("writing to a String");
        }
        generated.push_str("];\n");
    }
    std::fs::write(out_dir.join("bundled.rs"), generated).expect("writing bundled.rs");
}

/// The part of a manifest the build needs; the gateway checks the whole manifest at install.
#[derive(serde::Deserialize)]
struct Manifest {
    name: String,
    version: String,
    kind: String,
}

/// The component with its manifest in the `daifa-plugin` custom section (as `daifa plugin pack`
/// does; `daifa_plugin_host::manifest` reads it back).
fn pack(mut component: Vec<u8>, manifest_toml: &str) -> Vec<u8> {
    use wasm_encoder::ComponentSection as _;
    wasm_encoder::CustomSection {
        name: "daifa-plugin".into(),
        data: manifest_toml.as_bytes().into(),
    }
    .append_to_component(&mut component);
    component
}

fn build_plugin(root: &Path, target_dir: &Path, package: &str) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "-p",
            package,
            "--target-dir",
        ])
        .arg(target_dir);
    // The outer build's flags are for the host, not for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for {package}: {e}"));
    assert!(
        status.success(),
        "building plugin {package} for {TARGET} failed"
    );
    let file = format!("{}.wasm", package.replace('-', "_"));
    target_dir.join(TARGET).join("release").join(file)
}

/// `targets` in rust-toolchain.toml is not applied when the toolchain is already installed, so
/// install the wasm target here when it is missing rather than fail with "can't find std".
fn ensure_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = &sysroot
        && sysroot.join("lib/rustlib").join(TARGET).exists()
    {
        return;
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`rustup target add {TARGET}` failed ({s}); install the target to build the bundled plugins"
        ),
        Err(e) => panic!(
            "the {TARGET} target is missing and rustup could not be run ({e}); install the target for {} to build the bundled plugins",
            sysroot
                .map(|s| s.display().to_string())
                .unwrap_or_else(|| rustc.clone())
        ),
    }
}
