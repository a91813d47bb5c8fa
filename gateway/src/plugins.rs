//! The plugins this gateway runs: the bundled components, compiled once at start.

use crate::config::PluginSettings;
use anyhow::Context;
use daifa_plugin_host::{
    CallLimits, EngineConfig, LoadedPlugin, PluginEngine, PluginKind, ReqwestHttp,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone)]
pub struct PluginRegistry {
    plugins: Arc<HashMap<String, Arc<LoadedPlugin>>>,
}

impl PluginRegistry {
    /// Compiles (or loads from the cache) every bundled plugin.
    pub fn load_bundled(settings: &PluginSettings) -> anyhow::Result<Self> {
        let config = EngineConfig {
            cache_dir: settings.cache_dir.clone(),
            limits: CallLimits {
                deadline: settings.call_deadline,
                memory_bytes: settings.memory_limit_mb << 20,
                max_outbound_requests: settings.max_outbound_requests,
                outbound_timeout: settings.outbound_timeout,
            },
            ..EngineConfig::default()
        };
        let http = ReqwestHttp::new().context("creating the outbound HTTP client")?;
        let engine = PluginEngine::new(config, Arc::new(http))?;
        let started = Instant::now();
        let mut plugins = HashMap::new();
        for bundled in daifa_bundled_plugins::PLUGINS {
            let kind = match bundled.kind {
                "channel" => PluginKind::Channel,
                "supplier" => PluginKind::Supplier,
                other => anyhow::bail!("bundled plugin {} has unknown kind {other}", bundled.name),
            };
            let plugin = engine.load(bundled.name, kind, bundled.wasm)?;
            plugins.insert(bundled.name.to_string(), Arc::new(plugin));
        }
        tracing::info!(
            count = plugins.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugins loaded"
        );
        Ok(Self {
            plugins: Arc::new(plugins),
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins.get(name).cloned()
    }

    /// (name, kind) of every plugin, sorted by name.
    pub fn list(&self) -> Vec<(String, PluginKind)> {
        let mut v: Vec<_> = self
            .plugins
            .iter()
            .map(|(n, p)| (n.clone(), p.kind()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}
