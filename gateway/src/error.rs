//! The admin and hook APIs' error type: a status and a message for the client; internal causes
//! are logged with their chain and never shown. And who acted, for every handler's audit.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    /// A bulk input refused whole, with each bad row's problems.
    #[error("{message}")]
    UnprocessableRows {
        message: String,
        rows: Vec<serde_json::Value>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) | Self::UnprocessableRows { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // Named constraints are the one place database errors become client errors.
        if let Some(db) = e.as_database_error()
            && db.is_unique_violation()
        {
            let what = db
                .constraint()
                .map(constraint_message)
                .unwrap_or("already exists");
            return Self::Conflict(what.to_string());
        }
        Self::Internal(e.into())
    }
}

fn constraint_message(constraint: &str) -> &'static str {
    match constraint {
        "connections_name_key" => "a connection with this name already exists",
        "offers_key" => {
            "this supplier sku of this supplier is already an offer for this storefront sku"
        }
        _ => "already exists",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::UnprocessableRows { message, rows } = self {
            return (status, Json(json!({ "error": message, "rows": rows }))).into_response();
        }
        let message = match &self {
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Who acted, for the audit: the `x-daifa-operator` header (the admin token authenticates the
/// caller; this names the person), else `api`.
pub fn operator(headers: &HeaderMap) -> String {
    headers
        .get("x-daifa-operator")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map_or_else(|| "api".to_string(), |s| s.chars().take(100).collect())
}
