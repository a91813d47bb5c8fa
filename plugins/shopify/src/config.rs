//! The connection's settings and the names of its secrets.

use daifa_plugin_sdk::PluginError;
use daifa_plugin_sdk::connection;

/// The app's client secret: Shopify signs webhooks with it.
pub const WEBHOOK_SECRET: &str = "webhook_secret";
/// The Admin API access token of the app's installation on the shop.
pub const ACCESS_TOKEN: &str = "access_token";

/// The Admin API version used when the connection does not name one. Shopify supports a version
/// for a year; an unsupported one is served by the oldest supported version instead.
pub const DEFAULT_API_VERSION: &str = "2025-07";

/// Where the Admin API of the connection's shop is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The shop's `*.myshopify.com` host, as Shopify names it in `X-Shopify-Shop-Domain`.
    pub shop_domain: String,
    pub api_version: String,
    /// Scheme and host of the Admin API, without a trailing slash.
    pub admin_base_url: String,
}

impl Config {
    /// Builds the configuration from the raw settings. Operators paste shop addresses in many
    /// forms, so a scheme and a trailing slash are tolerated in `shop_domain`.
    pub fn new(
        shop_domain: &str,
        api_version: Option<&str>,
        admin_base_url: Option<&str>,
    ) -> Result<Self, PluginError> {
        let shop_domain = normalize_shop_domain(shop_domain).ok_or_else(|| {
            PluginError::permanent(format!(
                "connection setting `shop_domain` must be a host name like `demo-shop.myshopify.com`, not `{shop_domain}`"
            ))
        })?;
        let api_version = api_version
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_API_VERSION)
            .to_string();
        let admin_base_url = match admin_base_url.map(str::trim).filter(|v| !v.is_empty()) {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("https://{shop_domain}"),
        };
        Ok(Self {
            shop_domain,
            api_version,
            admin_base_url,
        })
    }

    /// Reads the settings of the connection the current call runs for.
    pub fn from_connection() -> Result<Self, PluginError> {
        let shop_domain = connection::required_setting("shop_domain")?;
        let api_version = connection::setting("api_version");
        let admin_base_url = connection::setting("admin_base_url");
        Self::new(
            &shop_domain,
            api_version.as_deref(),
            admin_base_url.as_deref(),
        )
    }

    /// The GraphQL Admin API endpoint.
    pub fn graphql_url(&self) -> String {
        format!(
            "{}/admin/api/{}/graphql.json",
            self.admin_base_url, self.api_version
        )
    }
}

/// The bare host of a shop ("demo-shop.myshopify.com"), or `None` when it is not one.
pub fn normalize_shop_domain(value: &str) -> Option<String> {
    let value = value.trim();
    let value = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .unwrap_or(value);
    let host = value.trim_end_matches('/').to_ascii_lowercase();
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
    valid.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_the_shop_and_the_pinned_api_version() {
        let config = Config::new("demo-shop.myshopify.com", None, None).unwrap();
        assert_eq!(
            config.graphql_url(),
            "https://demo-shop.myshopify.com/admin/api/2025-07/graphql.json"
        );
    }

    #[test]
    fn takes_an_explicit_base_url_and_version() {
        let config = Config::new(
            " https://Demo-Shop.myshopify.com/ ",
            Some("2025-10"),
            Some("http://127.0.0.1:8080/"),
        )
        .unwrap();
        assert_eq!(config.shop_domain, "demo-shop.myshopify.com");
        assert_eq!(
            config.graphql_url(),
            "http://127.0.0.1:8080/admin/api/2025-10/graphql.json"
        );
    }

    #[test]
    fn refuses_a_shop_domain_with_a_path() {
        let err = Config::new("demo-shop.myshopify.com/admin", None, None).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(err.message().contains("shop_domain"), "{}", err.message());
    }
}
