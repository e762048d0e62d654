//! The HTTP error type: a status and a Norwegian message, never internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Seconds a client is asked to wait after a 429 or 503.
pub const RETRY_AFTER_SECONDS: &str = "1";

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
    /// A signed push whose timestamp is too far from the server's clock.
    #[error("tidsstempelet er mer enn fem minutter fra serverens klokke")]
    Stale,
    /// A push whose request id was used before (a replay or a repeat).
    #[error("forespørsels-id-en er brukt før; sendingen ble ikke lagret på nytt")]
    Replayed,
    /// The body is larger than the source may send.
    #[error("innholdet er større enn {0} byte")]
    TooLarge(usize),
    /// The source has as many pushes in progress as it may.
    #[error("for mange samtidige sendinger fra kilden; prøv igjen om litt")]
    TooMany,
    /// The client took too long to send the body.
    #[error("innholdet kom ikke fram i tide")]
    BodyTimeout,
    /// The request took too long as a whole.
    #[error("forespørselen tok for lang tid")]
    RequestTimeout,
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
            ApiError::Unauthorized | ApiError::Stale => StatusCode::UNAUTHORIZED,
            ApiError::Replayed => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooMany => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RequestTimeout => StatusCode::SERVICE_UNAVAILABLE,
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
        if matches!(self, ApiError::TooMany | ApiError::RequestTimeout) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        if matches!(self, ApiError::BodyTimeout | ApiError::TooLarge(_)) {
            // The rest of the body is not read: the connection cannot be reused.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
