//! The connection's settings and the name of its secret.

use daifa_plugin_sdk::connection;

/// The 17TRACK API key ("security key" of the API dashboard): sent as `17token` on every call and
/// the key 17TRACK signs its pushes with.
pub const API_KEY: &str = "api_key";

/// Where the 17TRACK API is when the connection does not say otherwise.
pub const DEFAULT_API_BASE_URL: &str = "https://api.17track.net";

/// The API version the plugin speaks: the paths and the JSON shapes of v2.2.
pub const API_PATH: &str = "/track/v2.2";

/// Where the connection's calls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Scheme and host (and port), without a trailing slash.
    pub api_base_url: String,
}

impl Config {
    /// Builds the configuration from the raw setting; an unset or blank one is the default.
    pub fn new(api_base_url: Option<&str>) -> Self {
        let api_base_url = api_base_url
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_API_BASE_URL)
            .trim_end_matches('/')
            .to_string();
        Self { api_base_url }
    }

    /// Reads the settings of the connection the current call runs for.
    pub fn from_connection() -> Self {
        Self::new(connection::setting("api_base_url").as_deref())
    }

    /// The URL of an endpoint ("register" → `https://api.17track.net/track/v2.2/register`).
    pub fn url(&self, endpoint: &str) -> String {
        format!("{}{API_PATH}/{endpoint}", self.api_base_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_the_public_api() {
        assert_eq!(
            Config::new(None).url("register"),
            "https://api.17track.net/track/v2.2/register"
        );
        assert_eq!(
            Config::new(Some("  ")).url("getquota"),
            "https://api.17track.net/track/v2.2/getquota"
        );
    }

    #[test]
    fn takes_a_base_url_without_its_trailing_slash() {
        assert_eq!(
            Config::new(Some(" http://127.0.0.1:8080/ ")).url("gettrackinfo"),
            "http://127.0.0.1:8080/track/v2.2/gettrackinfo"
        );
    }
}
