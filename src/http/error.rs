//! The HTTP error type: a status and a Norwegian message, never internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What an HTTP handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or wrong credentials.
    #[error("ikke autentisert")]
    Unauthorized,
    /// Authenticated, but not allowed.
    #[error("ingen tilgang: {0}")]
    Forbidden(String),
    /// Unknown resource.
    #[error("finnes ikke: {0}")]
    NotFound(String),
    /// Unsupported content type.
    #[error("innholdstypen «{0}» støttes ikke her")]
    UnsupportedMediaType(String),
    /// The request is malformed.
    #[error("ugyldig forespørsel: {0}")]
    BadRequest(String),
    /// A dependency (store, homeserver) is not reachable.
    #[error("tjenesten er ikke klar")]
    Unavailable,
    /// Anything else; details go to the log, not to the client.
    #[error("intern feil")]
    Internal(#[source] anyhow::Error),
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
