//! Plugin packages: the manifest (`daifa-plugin.toml`) and the package file, a component with the
//! manifest embedded in its `daifa-plugin` custom section. See `docs/plugin-package.md`.

use crate::engine::{CallLimits, PluginKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use wasm_encoder::ComponentSection as _;

/// The name of the custom section that holds the manifest in a package.
pub const MANIFEST_SECTION: &str = "daifa-plugin";

/// What a plugin declares about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: semver::Version,
    pub kind: PluginKind,
    /// The `daifa:plugin` WIT version the component was built against.
    pub wit: semver::Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub build: BuildSection,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub limits: LimitRequest,
    /// JSON Schema of the connection's settings (secrets marked `writeOnly`).
    #[serde(default = "empty_object_schema")]
    pub settings: serde_json::Value,
}

/// How `daifa plugin test` and `daifa plugin pack` build and find the component.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// Shell command run in the plugin's directory; default: cargo's release build for wasm32-wasip2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The built component, relative to the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Hosts the plugin calls; `{setting}` is replaced by that connection setting.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Whether the gateway polls the plugin (`poll` of a channel or supplier, `fetch-tracking`
    /// of a carrier): platforms without webhooks, or a safety net for missed ones.
    #[serde(default)]
    pub polling: bool,
    /// How often, when polling; default: the gateway's `polling.interval`. The gateway's
    /// `polling.min_interval` is the least it grants.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub poll_interval: Option<Duration>,
}

/// Limits a plugin asks for; each is clamped to the gateway's ceiling.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub deadline: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_bytes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_outbound_requests: Option<u32>,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub outbound_timeout: Option<Duration>,
    /// Calls one instance serves before it is recycled (1: a fresh instance per call); default:
    /// the gateway's choice for the plugin's toolchain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_calls: Option<u32>,
}

impl LimitRequest {
    /// The limits of this plugin's calls: what it asks for, else `defaults`, never above `ceiling`.
    pub fn resolve(&self, defaults: &CallLimits, ceiling: &CallLimits) -> CallLimits {
        CallLimits {
            deadline: self
                .deadline
                .unwrap_or(defaults.deadline)
                .min(ceiling.deadline),
            memory_bytes: self
                .memory_mb
                .map_or(defaults.memory_bytes, |mb| mb.saturating_mul(1 << 20))
                .min(ceiling.memory_bytes),
            max_input_bytes: self
                .max_input_bytes
                .unwrap_or(defaults.max_input_bytes)
                .min(ceiling.max_input_bytes),
            max_output_bytes: self
                .max_output_bytes
                .unwrap_or(defaults.max_output_bytes)
                .min(ceiling.max_output_bytes),
            max_outbound_requests: self
                .max_outbound_requests
                .unwrap_or(defaults.max_outbound_requests)
                .min(ceiling.max_outbound_requests),
            outbound_timeout: self
                .outbound_timeout
                .unwrap_or(defaults.outbound_timeout)
                .min(ceiling.outbound_timeout),
        }
    }
}

fn empty_object_schema() -> serde_json::Value {
    serde_json::json!({ "type": "object" })
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("the manifest is not valid TOML or has unknown fields: {0}")]
    Syntax(String),
    #[error("invalid manifest: {0}")]
    Invalid(String),
    #[error("the package has no `{MANIFEST_SECTION}` section: pack it with `daifa plugin pack`")]
    Missing,
    #[error("the package is not a wasm component: {0}")]
    NotWasm(String),
}

impl Manifest {
    /// Parses and checks a manifest's TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Syntax(e.message().to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<(), ManifestError> {
        let invalid = |m: String| Err(ManifestError::Invalid(m));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return invalid(format!(
                "name `{}` must be 1 to 64 characters of a-z, 0-9 and `-`",
                self.name
            ));
        }
        for host in &self.capabilities.hosts {
            if host.trim().is_empty() || host.contains('/') || host.contains("://") {
                return invalid(format!(
                    "capabilities.hosts: `{host}` must be a host name (optionally with :port or a {{setting}} placeholder)"
                ));
            }
        }
        if self.settings.get("type").and_then(|t| t.as_str()) != Some("object") {
            return invalid("settings: the schema must have `type = \"object\"`".into());
        }
        if let Err(e) = jsonschema::validator_for(&self.settings) {
            return invalid(format!("settings is not a valid JSON Schema: {e}"));
        }
        for (name, property) in self.properties() {
            match property.get("type").and_then(|t| t.as_str()) {
                None | Some("string") => {}
                Some(other) => {
                    return invalid(format!(
                        "settings.properties.{name}: settings are strings, not `{other}`"
                    ));
                }
            }
        }
        Ok(())
    }

    fn properties(&self) -> impl Iterator<Item = (&String, &serde_json::Value)> {
        self.settings
            .get("properties")
            .and_then(|p| p.as_object())
            .into_iter()
            .flatten()
    }

    /// Names of the settings that are secrets (`writeOnly: true` in the schema).
    pub fn secret_names(&self) -> Vec<String> {
        self.properties()
            .filter(|(_, p)| p.get("writeOnly").and_then(|w| w.as_bool()) == Some(true))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Checks a connection's settings and secrets, together, against the settings schema. Each
    /// problem names the setting; values are never echoed (they may be secrets).
    pub fn validate_settings(
        &self,
        settings: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<(), Vec<String>> {
        let secret_names = self.secret_names();
        let mut problems = Vec::new();
        for name in settings.keys() {
            if secret_names.contains(name) {
                problems.push(format!("`{name}` is a secret: send it in `secrets`"));
            }
        }
        for name in secrets.keys() {
            if !secret_names.contains(name) && self.declares(name) {
                problems.push(format!("`{name}` is a setting, not a secret"));
            }
        }
        let instance: serde_json::Map<String, serde_json::Value> = settings
            .iter()
            .chain(secrets)
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let instance = serde_json::Value::Object(instance);
        // Checked at install, so this cannot fail for an installed plugin.
        let validator = jsonschema::validator_for(&self.settings)
            .map_err(|e| vec![format!("the plugin's settings schema is invalid: {e}")])?;
        for error in validator.iter_errors(&instance) {
            let path = error.instance_path().to_string();
            let at = if path.is_empty() {
                String::new()
            } else {
                format!("{}: ", path.trim_start_matches('/'))
            };
            problems.push(format!("{at}{}", error.masked()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Checks the settings of an existing connection whose secrets are sealed: secrets by name
    /// only (present when required, known to the schema), settings in full.
    pub fn validate_sealed(
        &self,
        settings: &BTreeMap<String, String>,
        secret_names: &[String],
    ) -> Result<(), Vec<String>> {
        let secrets = self.secret_names();
        let mut relaxed = self.clone();
        if let Some(properties) = relaxed
            .settings
            .get_mut("properties")
            .and_then(|p| p.as_object_mut())
        {
            for name in &secrets {
                properties.insert(name.clone(), serde_json::json!({ "writeOnly": true }));
            }
        }
        let placeholders: BTreeMap<String, String> = secret_names
            .iter()
            .map(|n| (n.clone(), String::new()))
            .collect();
        let mut problems = match relaxed.validate_settings(settings, &placeholders) {
            Ok(()) => Vec::new(),
            Err(p) => p,
        };
        for name in secret_names {
            if !secrets.contains(name) && !self.declares(name) {
                // `additionalProperties = false` reports it too; say it once.
                if !problems.iter().any(|p| p.contains(name.as_str())) {
                    problems.push(format!("`{name}` is not a secret of this plugin"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn declares(&self, name: &str) -> bool {
        self.properties().any(|(n, _)| n == name)
    }

    /// The hosts a connection may call: those declared for its settings, then those its operator
    /// added (`extra`), each once. The gateway and the case runner both build the allow-list so.
    pub fn allowed_hosts(
        &self,
        settings: &BTreeMap<String, String>,
        extra: &[String],
    ) -> Vec<String> {
        let mut hosts = self.declared_hosts(settings);
        for host in extra {
            if !hosts.contains(host) {
                hosts.push(host.clone());
            }
        }
        hosts
    }

    /// The hosts a connection with these settings may call by declaration: `capabilities.hosts`
    /// with `{setting}` replaced. A host whose setting is missing is left out; a setting that is a
    /// URL contributes its host (and port, when not the default).
    pub fn declared_hosts(&self, settings: &BTreeMap<String, String>) -> Vec<String> {
        let mut hosts = Vec::new();
        'hosts: for pattern in &self.capabilities.hosts {
            let mut host = String::new();
            let mut rest = pattern.as_str();
            while let Some(open) = rest.find('{') {
                host.push_str(&rest[..open]);
                let Some(close) = rest[open..].find('}') else {
                    continue 'hosts;
                };
                let key = &rest[open + 1..open + close];
                let Some(value) = settings.get(key) else {
                    continue 'hosts;
                };
                host.push_str(&host_of(value));
                rest = &rest[open + close + 1..];
            }
            host.push_str(rest);
            if !host.is_empty() && !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        hosts
    }
}

/// `https://shop.example.com:8443/x` → `shop.example.com:8443`; a bare host stays as it is.
fn host_of(value: &str) -> String {
    match url::Url::parse(value) {
        Ok(u) if u.host_str().is_some() => {
            let host = u.host_str().unwrap_or_default();
            match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            }
        }
        _ => value.trim().trim_end_matches('/').to_string(),
    }
}

/// A package file taken apart: its manifest (parsed, and as written) and the component bytes.
#[derive(Debug, Clone)]
pub struct Package {
    pub manifest: Manifest,
    pub manifest_toml: String,
}

impl Package {
    /// Reads the manifest out of a package.
    pub fn read(bytes: &[u8]) -> Result<Self, ManifestError> {
        let text = manifest_section(bytes)?.ok_or(ManifestError::Missing)?;
        let text = String::from_utf8(text.to_vec())
            .map_err(|_| ManifestError::Syntax("the manifest is not UTF-8".into()))?;
        Ok(Self {
            manifest: Manifest::from_toml(&text)?,
            manifest_toml: text,
        })
    }
}

/// Makes a package: the component with the manifest's text in its `daifa-plugin` section
/// (replacing one already there).
pub fn pack(component: &[u8], manifest_toml: &str) -> Result<Vec<u8>, ManifestError> {
    Manifest::from_toml(manifest_toml)?;
    if manifest_section(component)?.is_some() {
        return Err(ManifestError::Invalid(
            "the component already carries a manifest; pack the component as built".into(),
        ));
    }
    let mut bytes = component.to_vec();
    wasm_encoder::CustomSection {
        name: MANIFEST_SECTION.into(),
        data: manifest_toml.as_bytes().into(),
    }
    .append_to_component(&mut bytes);
    Ok(bytes)
}

/// The component without its manifest: what `pack` was given.
pub fn strip(package: &[u8]) -> Result<Vec<u8>, ManifestError> {
    use wasmparser::{Chunk, Payload};
    let not_wasm = |e: wasmparser::BinaryReaderError| ManifestError::NotWasm(e.to_string());
    let mut parser = wasmparser::Parser::new(0);
    let mut out = wasm_encoder::Component::new();
    let mut rest = package;
    loop {
        let (consumed, payload) = match parser.parse(rest, true).map_err(not_wasm)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => {
                return Err(ManifestError::NotWasm("the file is truncated".into()));
            }
        };
        let mut skip = 0;
        match &payload {
            Payload::Version { encoding, .. } => {
                if *encoding != wasmparser::Encoding::Component {
                    return Err(ManifestError::NotWasm("it is a core module".into()));
                }
            }
            Payload::End(_) => break,
            Payload::CustomSection(section) if section.name() == MANIFEST_SECTION => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&wasm_encoder::RawSection {
                        id,
                        data: &package[range.clone()],
                    });
                    if matches!(
                        other,
                        Payload::ModuleSection { .. } | Payload::ComponentSection { .. }
                    ) {
                        // Copied whole; the parser has moved past it, the input must too.
                        skip = range.len();
                    }
                }
            }
        }
        rest = &rest[consumed + skip..];
    }
    Ok(out.finish())
}

/// The package with another manifest (a new version of the same component).
pub fn repack(package: &[u8], manifest_toml: &str) -> Result<Vec<u8>, ManifestError> {
    pack(&strip(package)?, manifest_toml)
}

/// How a component was made, as its `producers` sections say: what decides whether reusing its
/// instances pays (see docs/benchmarks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Toolchain {
    /// Compiled to wasm (Rust, C, Go…): instantiation is cheap.
    Compiled,
    /// A language engine inside the component (JavaScript via componentize-js, Python via
    /// componentize-py): instantiation costs about a millisecond.
    Interpreted,
}

/// Reads the `producers` sections of a component and its modules.
pub fn toolchain(component: &[u8]) -> Toolchain {
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
            continue;
        };
        let wasmparser::KnownCustom::Producers(fields) = section.as_known() else {
            continue;
        };
        for field in fields.into_iter().flatten() {
            for value in field.values.into_iter().flatten() {
                let name = value.name.to_ascii_lowercase();
                if [
                    "javascript",
                    "componentize",
                    "starlingmonkey",
                    "spidermonkey",
                    "python",
                ]
                .iter()
                .any(|marker| name.contains(marker))
                {
                    return Toolchain::Interpreted;
                }
            }
        }
    }
    Toolchain::Compiled
}

/// The payload of the component's own (top-level) `daifa-plugin` custom section, if any.
fn manifest_section(bytes: &[u8]) -> Result<Option<&[u8]>, ManifestError> {
    let not_wasm = |e: wasmparser::BinaryReaderError| ManifestError::NotWasm(e.to_string());
    let mut depth = 0usize;
    let mut found = None;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(not_wasm)? {
            wasmparser::Payload::Version { encoding, .. }
                if depth == 0 && encoding != wasmparser::Encoding::Component =>
            {
                return Err(ManifestError::NotWasm(
                    "it is a core module; build a component (wasm32-wasip2)".into(),
                ));
            }
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::CustomSection(section)
                if depth == 0 && section.name() == MANIFEST_SECTION =>
            {
                if found.is_some() {
                    return Err(ManifestError::Invalid(format!(
                        "the package has two `{MANIFEST_SECTION}` sections"
                    )));
                }
                found = Some(section.data());
            }
            _ => {}
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
name = "acme"
version = "1.2.0"
kind = "supplier"
wit = "0.1.0"

[capabilities]
hosts = ["{api_url}", "static.acme.test"]

[limits]
deadline = "2s"
memory_mb = 512

[settings]
type = "object"
required = ["api_url", "api_key"]
additionalProperties = false
[settings.properties.api_url]
type = "string"
pattern = "^https?://"
[settings.properties.api_key]
type = "string"
writeOnly = true
minLength = 8
"#;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_lists_secrets() {
        let m = Manifest::from_toml(MANIFEST).expect("valid");
        assert_eq!(m.name, "acme");
        assert_eq!(m.kind, PluginKind::Supplier);
        assert_eq!(m.version, semver::Version::new(1, 2, 0));
        assert_eq!(m.secret_names(), vec!["api_key".to_string()]);
    }

    #[test]
    fn settings_are_checked_against_the_schema_without_echoing_values() {
        let m = Manifest::from_toml(MANIFEST).expect("valid");
        let ok = m.validate_settings(
            &map(&[("api_url", "https://api.acme.test")]),
            &map(&[("api_key", "k-12345678")]),
        );
        assert_eq!(ok, Ok(()));

        let problems = m
            .validate_settings(
                &map(&[("api_url", "ftp://x"), ("colour", "red")]),
                &map(&[("api_key", "q7z")]),
            )
            .expect_err("three problems");
        let text = problems.join("\n");
        assert!(text.contains("api_url"), "{text}");
        assert!(text.contains("api_key"), "{text}");
        assert!(text.contains("colour"), "{text}");
        assert!(!text.contains("q7z"), "a secret value leaked: {text}");

        let problems = m
            .validate_settings(
                &map(&[("api_url", "https://a"), ("api_key", "k-1234567")]),
                &map(&[]),
            )
            .expect_err("a secret sent as a setting");
        assert!(problems[0].contains("is a secret"), "{problems:?}");

        let problems = m
            .validate_settings(&map(&[]), &map(&[("api_key", "k-12345678")]))
            .expect_err("missing required setting");
        assert!(problems.join(" ").contains("api_url"), "{problems:?}");
    }

    #[test]
    fn sealed_secrets_are_checked_by_name() {
        let m = Manifest::from_toml(MANIFEST).expect("valid");
        let settings = map(&[("api_url", "https://api.acme.test")]);
        assert_eq!(m.validate_sealed(&settings, &["api_key".into()]), Ok(()));
        let missing = m
            .validate_sealed(&settings, &[])
            .expect_err("api_key is required");
        assert!(missing.join(" ").contains("api_key"), "{missing:?}");
        let unknown = m
            .validate_sealed(&settings, &["api_key".into(), "token".into()])
            .expect_err("token is unknown");
        assert!(unknown.join(" ").contains("token"), "{unknown:?}");
    }

    #[test]
    fn declared_hosts_expand_settings() {
        let m = Manifest::from_toml(MANIFEST).expect("valid");
        assert_eq!(
            m.declared_hosts(&map(&[("api_url", "https://api.acme.test:8443/v2/")])),
            vec!["api.acme.test:8443".to_string(), "static.acme.test".into()]
        );
        assert_eq!(
            m.allowed_hosts(&map(&[]), &["static.acme.test".into(), "extra.test".into()]),
            vec!["static.acme.test".to_string(), "extra.test".into()],
            "declared first, added hosts after, each once"
        );
        assert_eq!(
            m.declared_hosts(&map(&[])),
            vec!["static.acme.test".to_string()]
        );
    }

    #[test]
    fn limits_are_clamped_to_the_ceiling() {
        let m = Manifest::from_toml(MANIFEST).expect("valid");
        let defaults = CallLimits::default();
        let ceiling = CallLimits {
            memory_bytes: 128 << 20,
            ..CallLimits::default()
        };
        let l = m.limits.resolve(&defaults, &ceiling);
        assert_eq!(l.deadline, Duration::from_secs(2));
        assert_eq!(l.memory_bytes, 128 << 20);
        assert_eq!(l.max_outbound_requests, defaults.max_outbound_requests);
    }

    #[test]
    fn bad_manifests_are_refused_with_the_reason() {
        let cases = [
            (MANIFEST.replace("\"acme\"", "\"Acme!\""), "name"),
            (MANIFEST.replace("1.2.0", "one"), "version"),
            (
                MANIFEST.replace("\"supplier\"", "\"warehouse\""),
                "warehouse",
            ),
            (
                MANIFEST.replace("name = \"acme\"", "name = \"acme\"\nlicence = 1"),
                "licence",
            ),
            (
                MANIFEST.replace("\"static.acme.test\"", "\"https://x/y\""),
                "host name",
            ),
        ];
        for (text, needle) in cases {
            let err = Manifest::from_toml(&text).expect_err(needle).to_string();
            assert!(err.contains(needle), "`{needle}` not in: {err}");
        }
        let typed = MANIFEST.replace(
            "minLength = 8",
            "minLength = 8\n[settings.properties.port]\ntype = \"integer\"",
        );
        let err = Manifest::from_toml(&typed)
            .expect_err("integer setting")
            .to_string();
        assert!(err.contains("settings are strings"), "{err}");
    }

    #[test]
    fn pack_and_read_back() {
        // The smallest component: the preamble alone.
        let component = wasm_encoder::Component::new().finish();
        let package = pack(&component, MANIFEST).expect("packs");
        let read = Package::read(&package).expect("reads");
        assert_eq!(read.manifest.name, "acme");
        assert_eq!(read.manifest_toml, MANIFEST);
        assert_eq!(
            Package::read(&component).expect_err("no manifest"),
            ManifestError::Missing
        );
        assert!(
            pack(&package, MANIFEST).is_err(),
            "a second manifest is refused"
        );
        assert_eq!(strip(&package).expect("strips"), component);
        let v2 = repack(&package, &MANIFEST.replace("1.2.0", "1.3.0")).expect("repacks");
        assert_eq!(
            Package::read(&v2).expect("reads").manifest.version,
            semver::Version::new(1, 3, 0)
        );
        let module = wasm_encoder::Module::new().finish();
        assert!(matches!(
            Package::read(&module),
            Err(ManifestError::NotWasm(_))
        ));
        assert!(matches!(
            Package::read(b"not wasm"),
            Err(ManifestError::NotWasm(_))
        ));
    }
}
