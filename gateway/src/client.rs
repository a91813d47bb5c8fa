//! The CLI's side of plugin and connection management: a client of a running gateway's admin
//! API (so that every replica sees the change at once), and `plugin pack`, which is local.

pub mod aftersales;

use crate::devkit::component_path;
use anyhow::{Context, bail};
use clap::Subcommand;
use daifa_plugin_host::manifest::{Manifest, pack};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum OffersCommand {
    /// Imports offers from a CSV file (columns as `export` writes them): every row or none; a
    /// refused file lists each bad row's problems.
    Import {
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Writes every offer as CSV, to FILE or standard output.
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Where the admin API is.
#[derive(Debug, clap::Args)]
pub struct Remote {
    /// Base URL of the gateway.
    #[arg(long, env = "DAIFA_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The admin bearer token, when the gateway has one.
    #[arg(long, env = "DAIFA_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Who acts, as recorded in a case's history and on a task done (default: `api`).
    #[arg(long, env = "DAIFA_OPERATOR")]
    pub operator: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Makes a package (`NAME-VERSION.daifa.wasm`) from a plugin project: its `daifa-plugin.toml` and
    /// the built component.
    Pack {
        /// The plugin project (holding daifa-plugin.toml).
        dir: PathBuf,
        /// Where to write the package (default: DIR/NAME-VERSION.daifa.wasm).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Uploads a package to the gateway.
    Install {
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Lists installed plugins and versions.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Shows a version's manifest, capabilities and settings schema (or every version's).
    Inspect {
        name: String,
        version: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Lets connections use a version again.
    Enable {
        name: String,
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stops new connections and upgrades from using a version.
    Disable {
        name: String,
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Runs a plugin project's recorded cases (DIR/cases/*.json, see docs/plugin-cases.md)
    /// against its component in the real host; builds it first. Exits non-zero when a case fails.
    Test {
        /// The plugin project (holding daifa-plugin.toml and cases/).
        dir: PathBuf,
        /// Use the component as it is built, without running the build.
        #[arg(long)]
        no_build: bool,
        /// Write the actual result into the `expect` of failing cases (review the diff).
        #[arg(long)]
        bless: bool,
        /// Only the cases whose file name contains this.
        #[arg(long, value_name = "NAME_SUBSTRING")]
        case: Option<String>,
    },
    /// Creates a plugin project to start from: PARENT/NAME with its code, unit tests, manifest
    /// and recorded cases, passing as generated.
    New {
        /// The plugin's name (a-z, 0-9, `-`).
        name: String,
        /// What the plugin adapts.
        #[arg(long, value_parser = crate::devkit::new::parse_kind)]
        kind: daifa_plugin_host::PluginKind,
        /// The directory to create the project in.
        #[arg(long = "dir", value_name = "PARENT", default_value = ".")]
        parent: PathBuf,
        /// The guest SDK (plugin-sdk/guest) to depend on; default: this build's repository's.
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectionCommand {
    /// Lists connections with their plugin versions.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Moves a connection to another version of its plugin.
    Upgrade {
        name: String,
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Returns a connection to the version it ran before its last upgrade.
    Rollback {
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Runs a candidate version in shadow on the connection's live traffic.
    Shadow {
        name: String,
        version: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stops the shadow run.
    Unshadow {
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub async fn plugin(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Test {
            dir,
            no_build,
            bless,
            case,
        } => {
            let options = crate::devkit::TestOptions {
                dir,
                build: !no_build,
                bless,
                filter: case,
            };
            crate::devkit::test(&options).await.map(drop)
        }
        PluginCommand::New {
            name,
            kind,
            parent,
            sdk,
        } => crate::devkit::new::run(&crate::devkit::new::NewOptions {
            name,
            kind,
            parent,
            sdk,
        }),
        PluginCommand::Pack { dir, output } => {
            let written = pack_dir(&dir, output.as_deref())?;
            println!("{}", written.display());
            Ok(())
        }
        PluginCommand::Install { file, remote } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let info = remote
                .send(Method::POST, "/plugins", Body::Wasm(bytes))
                .await?;
            println!(
                "installed {} {} ({}, sha256 {})",
                info["name"].as_str().unwrap_or("?"),
                info["version"].as_str().unwrap_or("?"),
                info["kind"].as_str().unwrap_or("?"),
                info["digest"].as_str().unwrap_or("?"),
            );
            Ok(())
        }
        PluginCommand::List { remote } => {
            let list = remote.send(Method::GET, "/plugins", Body::None).await?;
            println!(
                "{:<24} {:<12} {:<9} {:<5} {:<8} {:<8} SHA256",
                "NAME", "VERSION", "KIND", "WIT", "SOURCE", "ENABLED"
            );
            for p in list.as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<12} {:<9} {:<5} {:<8} {:<8} {}",
                    p["name"].as_str().unwrap_or(""),
                    p["version"].as_str().unwrap_or(""),
                    p["kind"].as_str().unwrap_or(""),
                    p["wit_version"].as_str().unwrap_or(""),
                    p["source"].as_str().unwrap_or(""),
                    p["enabled"].as_bool().unwrap_or(false),
                    &p["digest"].as_str().unwrap_or("")
                        [..12.min(p["digest"].as_str().unwrap_or("").len())],
                );
            }
            Ok(())
        }
        PluginCommand::Inspect {
            name,
            version,
            remote,
        } => {
            let path = match &version {
                Some(v) => format!("/plugins/{name}/{v}"),
                None => format!("/plugins/{name}"),
            };
            let info = remote.send(Method::GET, &path, Body::None).await?;
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
        PluginCommand::Enable {
            name,
            version,
            remote,
        } => {
            remote
                .send(
                    Method::POST,
                    &format!("/plugins/{name}/{version}/enable"),
                    Body::None,
                )
                .await?;
            println!("enabled {name} {version}");
            Ok(())
        }
        PluginCommand::Disable {
            name,
            version,
            remote,
        } => {
            remote
                .send(
                    Method::POST,
                    &format!("/plugins/{name}/{version}/disable"),
                    Body::None,
                )
                .await?;
            println!("disabled {name} {version}");
            Ok(())
        }
    }
}

pub async fn connection(command: ConnectionCommand) -> anyhow::Result<()> {
    let (remote, method, path, body) = match command {
        ConnectionCommand::List { remote } => {
            let list = remote.send(Method::GET, "/connections", Body::None).await?;
            println!(
                "{:<24} {:<9} {:<20} {:<10} {:<10} SHADOW",
                "NAME", "KIND", "PLUGIN", "VERSION", "PREVIOUS"
            );
            for c in list.as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<9} {:<20} {:<10} {:<10} {}",
                    c["name"].as_str().unwrap_or(""),
                    c["kind"].as_str().unwrap_or(""),
                    c["plugin"].as_str().unwrap_or(""),
                    c["plugin_version"].as_str().unwrap_or(""),
                    c["previous_plugin_version"].as_str().unwrap_or("-"),
                    c["shadow_plugin_version"].as_str().unwrap_or("-"),
                );
            }
            return Ok(());
        }
        ConnectionCommand::Upgrade {
            name,
            version,
            remote,
        } => (
            remote,
            Method::POST,
            format!("/connections/{name}/upgrade"),
            Body::Json(json!({ "version": version })),
        ),
        ConnectionCommand::Rollback { name, remote } => (
            remote,
            Method::POST,
            format!("/connections/{name}/rollback"),
            Body::None,
        ),
        ConnectionCommand::Shadow {
            name,
            version,
            remote,
        } => (
            remote,
            Method::PUT,
            format!("/connections/{name}/shadow"),
            Body::Json(json!({ "version": version })),
        ),
        ConnectionCommand::Unshadow { name, remote } => (
            remote,
            Method::DELETE,
            format!("/connections/{name}/shadow"),
            Body::None,
        ),
    };
    let c = remote.send(method, &path, body).await?;
    println!(
        "{}: {} {} (previous {}, shadow {})",
        c["name"].as_str().unwrap_or("?"),
        c["plugin"].as_str().unwrap_or("?"),
        c["plugin_version"].as_str().unwrap_or("?"),
        c["previous_plugin_version"].as_str().unwrap_or("-"),
        c["shadow_plugin_version"].as_str().unwrap_or("-"),
    );
    Ok(())
}

/// Packs the plugin project in `dir`: its manifest embedded in its built component.
pub fn pack_dir(dir: &Path, output: Option<&Path>) -> anyhow::Result<PathBuf> {
    let manifest_path = dir.join("daifa-plugin.toml");
    let manifest_toml = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let manifest = Manifest::from_toml(&manifest_toml)
        .with_context(|| format!("in {}", manifest_path.display()))?;
    let component_path = component_path(dir, &manifest)?;
    let component = std::fs::read(&component_path).with_context(|| {
        format!(
            "reading the component {} (build the plugin first)",
            component_path.display()
        )
    })?;
    let package = pack(&component, &manifest_toml)?;
    let output = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join(format!("{}-{}.daifa.wasm", manifest.name, manifest.version)));
    std::fs::write(&output, package).with_context(|| format!("writing {}", output.display()))?;
    Ok(output)
}

pub async fn offers(command: OffersCommand) -> anyhow::Result<()> {
    match command {
        OffersCommand::Import { file, remote } => {
            let text =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            match remote
                .send(Method::POST, "/offers.csv", Body::Csv(text))
                .await
            {
                Ok(answer) => {
                    println!("imported {} offers", answer["imported"]);
                    Ok(())
                }
                Err(e) => {
                    // The gateway listed each bad row: show them, one a line.
                    if let Some(rows) = e
                        .downcast_ref::<Refused>()
                        .and_then(|r| r.0["rows"].as_array())
                    {
                        for row in rows {
                            for error in row["errors"].as_array().into_iter().flatten() {
                                eprintln!(
                                    "{}:{}: {}",
                                    file.display(),
                                    row["line"],
                                    error.as_str().unwrap_or_default()
                                );
                            }
                        }
                    }
                    Err(e)
                }
            }
        }
        OffersCommand::Export { output, remote } => {
            let text = remote.get_text("/offers.csv").await?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display())),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
    }
}

/// A refusal of the gateway, with its JSON answer.
#[derive(Debug)]
struct Refused(Value, String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Refused {}

enum Body {
    None,
    Json(Value),
    Wasm(Vec<u8>),
    Csv(Vec<u8>),
}

impl Remote {
    async fn send(&self, method: Method, path: &str, body: Body) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{path}", self.url.trim_end_matches('/'));
        let client = reqwest::Client::new();
        let mut request = client.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(operator) = &self.operator {
            request = request.header("x-daifa-operator", operator);
        }
        request = match body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Wasm(bytes) => request
                .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                .body(bytes),
            Body::Csv(bytes) => request
                .header(reqwest::header::CONTENT_TYPE, "text/csv")
                .body(bytes),
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {url}"))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = format!(
                "{status}: {}",
                value["error"].as_str().unwrap_or("(no message)")
            );
            return Err(Refused(value, message).into());
        }
        Ok(value)
    }

    async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}/api/v1{path}", self.url.trim_end_matches('/'));
        let mut request = reqwest::Client::new().get(&url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {url}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{status}: {text}");
        }
        Ok(text)
    }
}
