//! Webhook signatures, verified on the raw body before any parsing.

use crate::types::{HttpHeader, PluginError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// base64(HMAC-SHA256(secret, body)): the scheme of Shopify, WooCommerce, AfterShip and CJ.
pub fn hmac_sha256_base64(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

/// Checks a base64(HMAC-SHA256(secret, body)) header value in constant time.
pub fn verify_hmac_sha256_base64(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), PluginError> {
    let header = header.ok_or_else(|| PluginError::bad_signature("signature header is missing"))?;
    let given = BASE64
        .decode(header.trim())
        .map_err(|_| PluginError::bad_signature("signature header is not base64"))?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| PluginError::bad_signature("signature does not match the body"))
}

/// The value of a header (names compare case-insensitively), the first when repeated.
pub fn header<'a>(headers: &'a [HttpHeader], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Standard Webhooks (<https://www.standardwebhooks.com>): `webhook-id`, `webhook-timestamp`,
/// `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub mod standard {
    use super::*;
    use standardwebhooks::Webhook;

    pub const ID: &str = "webhook-id";
    pub const TIMESTAMP: &str = "webhook-timestamp";
    pub const SIGNATURE: &str = "webhook-signature";

    fn webhook(secret: &str) -> Result<Webhook, PluginError> {
        Webhook::new(secret).map_err(|e| {
            PluginError::permanent(format!(
                "webhook secret is not a valid `whsec_` base64 key: {e}"
            ))
        })
    }

    /// The three headers of a signed message.
    pub fn sign(
        secret: &str,
        id: &str,
        timestamp_secs: i64,
        body: &[u8],
    ) -> Result<Vec<HttpHeader>, PluginError> {
        let signature = webhook(secret)?
            .sign(id, timestamp_secs, body)
            .map_err(|e| PluginError::permanent(format!("cannot sign: {e}")))?;
        Ok(vec![
            HttpHeader {
                name: ID.into(),
                value: id.into(),
            },
            HttpHeader {
                name: TIMESTAMP.into(),
                value: timestamp_secs.to_string(),
            },
            HttpHeader {
                name: SIGNATURE.into(),
                value: signature,
            },
        ])
    }

    /// Verifies a signed message (signature and a timestamp within 5 minutes); returns its id.
    pub fn verify(
        secret: &str,
        headers: &[HttpHeader],
        body: &[u8],
    ) -> Result<String, PluginError> {
        let mut map = http::HeaderMap::new();
        for name in [ID, TIMESTAMP, SIGNATURE] {
            if let Some(v) = header(headers, name) {
                let value = http::HeaderValue::from_str(v).map_err(|_| {
                    PluginError::bad_signature(format!("header `{name}` is not valid"))
                })?;
                map.insert(name, value);
            }
        }
        webhook(secret)?
            .verify(body, &map)
            .map_err(|e| PluginError::bad_signature(e.to_string()))?;
        Ok(header(headers, ID).unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shopify_published_test_vector() {
        // shopify-api-js validate.test.ts: secret `test_secret_key`, body `{"foo": "bar"}`.
        let expected = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=";
        assert_eq!(
            hmac_sha256_base64(b"test_secret_key", br#"{"foo": "bar"}"#),
            expected
        );
        assert!(
            verify_hmac_sha256_base64(b"test_secret_key", br#"{"foo": "bar"}"#, Some(expected))
                .is_ok()
        );
        let err =
            verify_hmac_sha256_base64(b"other", br#"{"foo": "bar"}"#, Some(expected)).unwrap_err();
        assert_eq!(err.kind(), "bad-signature");
        assert!(verify_hmac_sha256_base64(b"k", b"{}", None).is_err());
    }

    #[test]
    fn standard_webhooks_published_test_vector() {
        // standard-webhooks test vectors (Rust `test_sign`).
        let headers = standard::sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(
            headers[2].value,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
