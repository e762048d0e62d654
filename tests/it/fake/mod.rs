//! Fake source servers speaking the real protocols over loopback.

pub mod archive;

pub mod edfi;

pub mod fint;

pub mod oneroster;

pub mod vendor;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;

/// The answer to the next queued fault (500, 429 with `Retry-After: 0`, any
/// other status), or `None` to serve the request (no fault queued, or 200).
pub fn next_fault(faults: &mut VecDeque<u16>) -> Option<Response> {
    match faults.pop_front() {
        None | Some(200) => None,
        Some(429) => Some((StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], "").into_response()),
        Some(code) => Some(StatusCode::from_u16(code).unwrap().into_response()),
    }
}

/// Whether the request carries HTTP Basic credentials `id:secret`, as an
/// OAuth2 client authenticates at the token endpoint.
pub fn basic_auth_is(headers: &HeaderMap, id: &str, secret: &str) -> bool {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

/// Serves `app` on 127.0.0.1:0 and returns the address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

/// Whether the request carries a bearer token starting with `prefix`.
pub fn bearer_starts_with(headers: &HeaderMap, prefix: &str) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.starts_with(prefix))
}
