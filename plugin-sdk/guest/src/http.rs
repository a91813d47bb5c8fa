//! Outbound HTTP, performed by the host (only to the connection's allowed hosts).

use crate::host::{self, HttpError};
use crate::types::{HttpHeader, OutboundRequest, OutboundResponse, PluginError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A request being built.
#[derive(Debug, Clone)]
pub struct Request {
    inner: OutboundRequest,
}

impl Request {
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Self {
            inner: OutboundRequest {
                method: method.into(),
                url: url.into(),
                headers: Vec::new(),
                body: Vec::new(),
            },
        }
    }
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.inner.headers.push(HttpHeader {
            name: name.to_ascii_lowercase(),
            value: value.into(),
        });
        self
    }
    pub fn headers(mut self, headers: impl IntoIterator<Item = HttpHeader>) -> Self {
        self.inner.headers.extend(headers);
        self
    }
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.inner.body = body;
        self
    }
    /// Sets a JSON body and its content type.
    pub fn json<T: Serialize>(self, value: &T) -> Result<Self, PluginError> {
        let body = crate::json::to_vec(value)?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Sends the request; any HTTP status is returned as a response.
    pub fn send(self) -> Result<OutboundResponse, PluginError> {
        host::http_fetch(&self.inner).map_err(|e| match e {
            HttpError::NotAllowed(m) => {
                PluginError::permanent(format!("outbound request refused: {m}"))
            }
            HttpError::InvalidRequest(m) => {
                PluginError::permanent(format!("invalid outbound request: {m}"))
            }
            HttpError::Unreachable(m) => PluginError::transient(format!("peer unreachable: {m}")),
        })
    }

    /// Sends the request and classifies the status: 2xx is returned; 408, 429 and 5xx are
    /// `transient` (the host also honours their `Retry-After`); other statuses are `permanent`.
    pub fn send_ok(self) -> Result<OutboundResponse, PluginError> {
        let what = format!("{} {}", self.inner.method, self.inner.url);
        let response = self.send()?;
        check_status(&what, response)
    }
}

/// Classifies a response by status, as [`Request::send_ok`] does.
pub fn check_status(
    what: &str,
    response: OutboundResponse,
) -> Result<OutboundResponse, PluginError> {
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(response);
    }
    let excerpt: String = String::from_utf8_lossy(&response.body)
        .chars()
        .take(300)
        .collect();
    let message = format!("{what} answered {status}: {excerpt}");
    if status == 408 || status == 429 || status >= 500 {
        Err(PluginError::transient(message))
    } else {
        Err(PluginError::permanent(message))
    }
}

impl OutboundResponse {
    /// Parses the body as JSON; a body of another shape is `permanent`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        crate::json::from_response(&self.body)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::signature::header(&self.headers, name)
    }
}
