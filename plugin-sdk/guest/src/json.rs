//! JSON in and out, with errors already in the plugin's terms.

use crate::types::PluginError;
use serde::{Serialize, de::DeserializeOwned};

/// Parses an inbound body; a body that does not match `T` is a `bad-payload`.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, PluginError> {
    serde_json::from_slice(body)
        .map_err(|e| PluginError::bad_payload(format!("invalid JSON body: {e}")))
}

/// Parses a peer's response; a response that does not match `T` is `permanent` (the peer speaks
/// another protocol than the plugin expects, retrying will not change that).
pub fn from_response<T: DeserializeOwned>(body: &[u8]) -> Result<T, PluginError> {
    serde_json::from_slice(body)
        .map_err(|e| PluginError::permanent(format!("unexpected response body: {e}")))
}

pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, PluginError> {
    serde_json::to_vec(value)
        .map_err(|e| PluginError::permanent(format!("cannot encode JSON: {e}")))
}
