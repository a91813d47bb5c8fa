//! Outbound HTTP on behalf of plugins: the allow-list and the client.

use crate::bindings::host::HttpError;
use crate::bindings::types::{HttpHeader, OutboundRequest, OutboundResponse};
use reqwest::Url;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

/// Performs plugins' outbound requests. The gateway uses [`ReqwestHttp`]; tests may script
/// answers with [`crate::harness::ScriptedHttp`].
pub trait OutboundHttp: Send + Sync + 'static {
    fn fetch(
        &self,
        url: Url,
        request: OutboundRequest,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<OutboundResponse, HttpError>> + Send + '_>>;
}

/// Refuses any URL whose host is not allowed for the connection. Only `http` and `https`.
pub(crate) fn check_allowed(url: &str, allowed_hosts: &[String]) -> Result<Url, HttpError> {
    let parsed = Url::parse(url)
        .map_err(|e| HttpError::InvalidRequest(format!("invalid url `{url}`: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(HttpError::InvalidRequest(format!(
            "scheme `{}` is not allowed",
            parsed.scheme()
        )));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| HttpError::InvalidRequest(format!("url `{url}` has no host")))?
        .to_ascii_lowercase();
    let port = parsed.port_or_known_default();
    if allowed_hosts
        .iter()
        .any(|entry| host_matches(entry, &host, port))
    {
        Ok(parsed)
    } else {
        Err(HttpError::NotAllowed(format!(
            "host `{host}` is not in the connection's allowed hosts"
        )))
    }
}

fn host_matches(entry: &str, host: &str, port: Option<u16>) -> bool {
    let entry = entry.trim().to_ascii_lowercase();
    let (entry_host, entry_port) = match entry.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h.to_string(), p.parse::<u16>().ok())
        }
        _ => (entry.clone(), None),
    };
    if entry_port.is_some() && entry_port != port {
        return false;
    }
    match entry_host.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => entry_host == host,
    }
}

/// Parses `Retry-After` (delay in seconds or an HTTP date).
pub(crate) fn retry_after(headers: &[HttpHeader], now: SystemTime) -> Option<Duration> {
    let value = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("retry-after"))?
        .value
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// The real client. Redirects are not followed: a plugin sees the 3xx and must ask again, so
/// the allow-list is checked for every hop.
#[derive(Clone)]
pub struct ReqwestHttp {
    client: reqwest::Client,
}

impl ReqwestHttp {
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("daifa/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }
}

impl OutboundHttp for ReqwestHttp {
    fn fetch(
        &self,
        url: Url,
        request: OutboundRequest,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<OutboundResponse, HttpError>> + Send + '_>> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
                HttpError::InvalidRequest(format!("invalid method `{}`", request.method))
            })?;
            let mut builder = self
                .client
                .request(method, url)
                .timeout(timeout)
                .body(request.body);
            for h in &request.headers {
                builder = builder.header(h.name.as_str(), h.value.as_str());
            }
            let response = builder.send().await.map_err(|e| {
                if e.is_builder() {
                    HttpError::InvalidRequest(e.to_string())
                } else {
                    HttpError::Unreachable(error_chain(&e))
                }
            })?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| HttpHeader {
                    name: n.as_str().to_string(),
                    value: String::from_utf8_lossy(v.as_bytes()).into_owned(),
                })
                .collect();
            let body = response
                .bytes()
                .await
                .map_err(|e| HttpError::Unreachable(error_chain(&e)))?
                .to_vec();
            Ok(OutboundResponse {
                status,
                headers,
                body,
            })
        })
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list() {
        let allowed = vec![
            "shop.example.com".to_string(),
            "127.0.0.1:8080".to_string(),
            "*.myshopify.com".to_string(),
        ];
        let ok = |u: &str| check_allowed(u, &allowed).is_ok();
        assert!(ok("https://shop.example.com/admin"));
        assert!(ok("http://127.0.0.1:8080/x"));
        assert!(!ok("http://127.0.0.1:8081/x"));
        assert!(ok("https://a.myshopify.com/admin"));
        assert!(!ok("https://myshopify.com/admin"));
        assert!(!ok("https://evil.com/?shop.example.com"));
        assert!(!ok("https://shop.example.com.evil.com/"));
        assert!(!ok("file:///etc/passwd"));
        assert!(matches!(
            check_allowed("http://169.254.169.254/", &allowed),
            Err(HttpError::NotAllowed(_))
        ));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let h = |v: &str| {
            vec![HttpHeader {
                name: "Retry-After".into(),
                value: v.into(),
            }]
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after(&h("120"), now), Some(Duration::from_secs(120)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(retry_after(&h(&date), now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&h("soon"), now), None);
        assert_eq!(retry_after(&[], now), None);
    }
}
