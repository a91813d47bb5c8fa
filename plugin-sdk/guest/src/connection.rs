//! The settings and secrets of the connection a call runs for.

use crate::types::PluginError;

/// A setting, or `None` when the operator did not set it.
pub fn setting(key: &str) -> Option<String> {
    crate::host::config(key)
}

/// A setting the plugin cannot work without.
pub fn required_setting(key: &str) -> Result<String, PluginError> {
    setting(key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PluginError::permanent(format!("connection setting `{key}` is not set")))
}

/// A secret the plugin cannot work without. Never log it.
pub fn required_secret(key: &str) -> Result<String, PluginError> {
    crate::host::secret(key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PluginError::permanent(format!("connection secret `{key}` is not set")))
}
