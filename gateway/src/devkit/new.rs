//! `daifa plugin new`: a plugin project to start from, written from the templates in
//! `templates/`. It builds standalone (its own `[workspace]`), passes `cargo test` and
//! `daifa plugin test` as it is, and shows the patterns of the bundled plugins: translation in
//! plain functions tested natively, the component tested through the host with recorded cases.

use anyhow::{Context, bail};
use daifa_plugin_host::PluginKind;
use std::path::{Path, PathBuf};

/// What `daifa plugin new` was asked to do.
#[derive(Debug, Clone)]
pub struct NewOptions {
    pub name: String,
    pub kind: PluginKind,
    /// Where the project's directory is made.
    pub parent: PathBuf,
    /// The guest SDK the project depends on; default: the one of the repository this binary
    /// was built from.
    pub sdk: Option<PathBuf>,
}

/// The SDK of the repository this binary was built from.
const DEFAULT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-sdk/guest");

macro_rules! template {
    ($path:literal) => {
        include_str!(concat!("templates/", $path))
    };
}

/// (path in the project, template) of every kind.
const COMMON: &[(&str, &str)] = &[
    ("Cargo.toml", template!("Cargo.toml.tmpl")),
    (".gitignore", template!("gitignore.tmpl")),
    // The toolchain the gateway is built and tested with, wasm target included.
    (
        "rust-toolchain.toml",
        include_str!("../../../rust-toolchain.toml"),
    ),
    // The versions the SDK is tested with; cargo drops the entries the project does not use.
    ("Cargo.lock", include_str!("../../../Cargo.lock")),
];

const CHANNEL: &[(&str, &str)] = &[
    (
        "daifa-plugin.toml",
        template!("channel/daifa-plugin.toml.tmpl"),
    ),
    ("README.md", template!("channel/README.md.tmpl")),
    ("src/lib.rs", template!("channel/lib.rs.tmpl")),
    (
        "cases/order-created.json",
        template!("channel/cases/order-created.json"),
    ),
    (
        "cases/order-cancelled.json",
        template!("channel/cases/order-cancelled.json"),
    ),
    (
        "cases/bad-signature.json",
        template!("channel/cases/bad-signature.json"),
    ),
    (
        "cases/other-event-ignored.json",
        template!("channel/cases/other-event-ignored.json"),
    ),
    (
        "cases/push-fulfillment.json",
        template!("channel/cases/push-fulfillment.json"),
    ),
    (
        "cases/push-fulfillment-5xx.json",
        template!("channel/cases/push-fulfillment-5xx.json"),
    ),
];

const SUPPLIER: &[(&str, &str)] = &[
    (
        "daifa-plugin.toml",
        template!("supplier/daifa-plugin.toml.tmpl"),
    ),
    ("README.md", template!("supplier/README.md.tmpl")),
    ("src/lib.rs", template!("supplier/lib.rs.tmpl")),
    (
        "cases/submit-order.json",
        template!("supplier/cases/submit-order.json"),
    ),
    (
        "cases/submit-order-5xx.json",
        template!("supplier/cases/submit-order-5xx.json"),
    ),
    (
        "cases/submit-order-refused.json",
        template!("supplier/cases/submit-order-refused.json"),
    ),
    (
        "cases/callback-shipped.json",
        template!("supplier/cases/callback-shipped.json"),
    ),
    (
        "cases/callback-rejected.json",
        template!("supplier/cases/callback-rejected.json"),
    ),
    (
        "cases/callback-bad-signature.json",
        template!("supplier/cases/callback-bad-signature.json"),
    ),
];

const CARRIER: &[(&str, &str)] = &[
    (
        "daifa-plugin.toml",
        template!("carrier/daifa-plugin.toml.tmpl"),
    ),
    ("README.md", template!("carrier/README.md.tmpl")),
    ("src/lib.rs", template!("carrier/lib.rs.tmpl")),
    (
        "cases/register.json",
        template!("carrier/cases/register.json"),
    ),
    (
        "cases/register-already-registered.json",
        template!("carrier/cases/register-already-registered.json"),
    ),
    (
        "cases/register-5xx.json",
        template!("carrier/cases/register-5xx.json"),
    ),
    (
        "cases/fetch-tracking.json",
        template!("carrier/cases/fetch-tracking.json"),
    ),
    (
        "cases/webhook-tracking-updated.json",
        template!("carrier/cases/webhook-tracking-updated.json"),
    ),
    (
        "cases/webhook-bad-signature.json",
        template!("carrier/cases/webhook-bad-signature.json"),
    ),
    (
        "cases/check-connection.json",
        template!("carrier/cases/check-connection.json"),
    ),
];

/// `daifa plugin new`: writes the project and says what to do next.
pub fn run(options: &NewOptions) -> anyhow::Result<()> {
    let dir = new_project(options)?;
    println!(
        "created the {} plugin `{}` in {}",
        options.kind.as_str(),
        options.name,
        dir.display()
    );
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  cargo test           # the translation, natively");
    println!(
        "  daifa plugin test .  # builds the component and runs cases/*.json through the host"
    );
    Ok(())
}

/// The `--kind` of `daifa plugin new`.
pub fn parse_kind(value: &str) -> Result<PluginKind, String> {
    match value {
        "channel" => Ok(PluginKind::Channel),
        "supplier" => Ok(PluginKind::Supplier),
        "carrier" => Ok(PluginKind::Carrier),
        other => Err(format!(
            "`{other}` is not a kind: channel, supplier or carrier"
        )),
    }
}

/// Writes the project; returns its directory. Refuses a directory that exists.
pub fn new_project(options: &NewOptions) -> anyhow::Result<PathBuf> {
    check_name(&options.name)?;
    let sdk = sdk_path(options.sdk.as_deref())?;
    let dir = options.parent.join(&options.name);
    if dir.exists() {
        bail!(
            "{} already exists: choose another name or parent directory (--dir)",
            dir.display()
        );
    }
    let files = render(&options.name, options.kind, &sdk)?;
    std::fs::create_dir_all(&options.parent)
        .with_context(|| format!("creating {}", options.parent.display()))?;
    // `create_dir` fails when the directory appeared meanwhile: never write into another's.
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

/// The project's files, placeholders filled in.
pub fn render(name: &str, kind: PluginKind, sdk: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let kind_files = match kind {
        PluginKind::Channel => CHANNEL,
        PluginKind::Supplier => SUPPLIER,
        PluginKind::Carrier => CARRIER,
    };
    let crate_name = format!("daifa-plugin-{name}");
    let sdk_toml = toml::Value::String(sdk.display().to_string()).to_string();
    let values = [
        ("name", name.to_string()),
        ("kind", kind.as_str().to_string()),
        ("crate_name", crate_name.clone()),
        ("crate_file", crate_name.replace('-', "_")),
        ("sdk_path", sdk_toml),
        // The WIT version the SDK is generated from, which the host holds the manifest to.
        ("wit", daifa_plugin_host::WIT_VERSION.to_string()),
    ];
    let mut files = Vec::new();
    for (path, template) in COMMON.iter().chain(kind_files) {
        let mut text = template.to_string();
        for (key, value) in &values {
            text = text.replace(&format!("{{{{{key}}}}}"), value);
        }
        if let Some(at) = text.find("{{") {
            let rest: String = text[at..].chars().take(30).collect();
            bail!("template {path} has an unknown placeholder at `{rest}`");
        }
        files.push((path.to_string(), text));
    }
    Ok(files)
}

/// The manifest's rule (1-64 of a-z, 0-9, `-`), starting with a letter so that the crate name
/// and the component's file name are valid too.
fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        bail!(
            "`{name}` is not a plugin name: 1 to 64 characters of a-z, 0-9 and `-`, starting with a letter"
        );
    }
    Ok(())
}

/// The SDK as an absolute path (cargo reads a relative path from the project's directory).
fn sdk_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => {
            std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?
        }
        None => PathBuf::from(DEFAULT_SDK),
    };
    let path = path.canonicalize().unwrap_or(path);
    if !path.join("Cargo.toml").is_file() {
        bail!(
            "the plugin SDK (daifa-plugin-sdk) is not at {}: pass its directory with --sdk",
            path.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_placeholder_is_filled_in() {
        for kind in PluginKind::ALL {
            let files = render("acme-shop", kind, Path::new("/sdk \"x\"")).unwrap();
            let cargo = &files.iter().find(|(p, _)| p == "Cargo.toml").unwrap().1;
            assert!(
                cargo.contains("name = \"daifa-plugin-acme-shop\""),
                "{cargo}"
            );
            let parsed: toml::Value = toml::from_str(cargo).unwrap();
            let sdk = &parsed["dependencies"]["daifa-plugin-sdk"];
            assert_eq!(sdk["path"].as_str(), Some("/sdk \"x\""), "{cargo}");
            assert_eq!(
                sdk["features"].as_array().unwrap()[0].as_str(),
                Some(kind.as_str())
            );
            assert!(parsed.get("workspace").is_some(), "builds standalone");
            let manifest = &files
                .iter()
                .find(|(p, _)| p == "daifa-plugin.toml")
                .unwrap()
                .1;
            let parsed = daifa_plugin_host::Manifest::from_toml(manifest).unwrap();
            assert_eq!(parsed.name, "acme-shop");
            assert_eq!(parsed.kind, kind);
            let cases = files
                .iter()
                .filter(|(p, _)| p.starts_with("cases/"))
                .count();
            assert!(cases >= 5, "{kind:?} has {cases} cases");
        }
    }

    #[test]
    fn the_cases_of_the_templates_parse() {
        for kind in PluginKind::ALL {
            for (path, text) in render("acme", kind, Path::new("/sdk")).unwrap() {
                if path.starts_with("cases/") {
                    let parsed = daifa_plugin_host::cases::parse(Path::new(&path), text);
                    assert!(parsed.is_ok(), "{path}: {:?}", parsed.err());
                }
            }
        }
    }

    #[test]
    fn every_case_of_the_templates_is_written() {
        // A case file added to `templates/<kind>/cases/` but not to the kind's list would
        // silently be left out of the projects.
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/devkit/templates");
        for kind in PluginKind::ALL {
            let mut on_disk: Vec<String> =
                std::fs::read_dir(templates.join(kind.as_str()).join("cases"))
                    .unwrap()
                    .map(|e| format!("cases/{}", e.unwrap().file_name().to_string_lossy()))
                    .collect();
            on_disk.sort();
            let mut written: Vec<String> = render("acme", kind, Path::new("/sdk"))
                .unwrap()
                .into_iter()
                .map(|(path, _)| path)
                .filter(|path| path.starts_with("cases/"))
                .collect();
            written.sort();
            assert_eq!(written, on_disk, "{kind:?}");
        }
    }

    #[test]
    fn parses_every_kind() {
        for kind in PluginKind::ALL {
            assert_eq!(parse_kind(kind.as_str()), Ok(kind));
        }
        let error = parse_kind("tracker").unwrap_err();
        assert!(error.contains("channel, supplier or carrier"), "{error}");
    }

    #[test]
    fn names_follow_the_manifest_rule() {
        for good in ["acme", "acme-shop-2", "a"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "2shop",
            "-a",
            "a-",
            "a_b",
            "a.b",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_an_existing_directory_and_a_missing_sdk() {
        let parent = std::env::temp_dir().join(format!("daifa-new-{}", std::process::id()));
        std::fs::create_dir_all(parent.join("taken")).unwrap();
        let options = |name: &str, sdk: Option<PathBuf>| NewOptions {
            name: name.into(),
            kind: PluginKind::Channel,
            parent: parent.clone(),
            sdk,
        };
        let error = new_project(&options("taken", None))
            .unwrap_err()
            .to_string();
        assert!(error.contains("already exists"), "{error}");
        let error = new_project(&options("fresh", Some(parent.join("no-sdk"))))
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not at"), "{error}");
        assert!(!parent.join("fresh").exists());

        let dir = new_project(&options("fresh", None)).unwrap();
        assert!(dir.join("src/lib.rs").is_file());
        assert!(dir.join("cases/order-created.json").is_file());
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
