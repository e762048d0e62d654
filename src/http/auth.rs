//! Authentication of pushes (bearer token or HMAC-SHA256 signature) and of
//! read-API users (bearer token mapped to schools).

use super::error::ApiError;
use crate::config::{ApiUser, Secret, SourceConfig};
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying `sha256=<hex>` of the body under the source's HMAC key.
pub const SIGNATURE_HEADER: &str = "x-tilstede-signature";

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn token_matches(headers: &HeaderMap, token: &Secret) -> bool {
    bearer(headers).is_some_and(|given| constant_time_eq(given.as_bytes(), token.expose().as_bytes()))
}

/// `sha256=<hex>` of `body` under `key`.
pub fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn signature_matches(headers: &HeaderMap, key: &Secret, body: &[u8]) -> bool {
    let Some(given) = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(hex_sig) = given.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Accepts a push when it carries the source's bearer token or a valid
/// signature of the body. A source with neither configured accepts nothing.
pub fn check_push(source: &SourceConfig, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let by_token = source.token.as_ref().is_some_and(|t| token_matches(headers, t));
    let by_signature = source
        .hmac_secret
        .as_ref()
        .is_some_and(|k| signature_matches(headers, k, body));
    if by_token || by_signature {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The read-API user whose token the request carries.
pub fn read_user<'a>(users: &'a [ApiUser], headers: &HeaderMap) -> Result<&'a ApiUser, ApiError> {
    users
        .iter()
        .find(|u| token_matches(headers, &u.token))
        .ok_or(ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let key = Secret::new("k");
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, sign("k", b"body").parse().unwrap());
        assert!(signature_matches(&h, &key, b"body"));
        assert!(!signature_matches(&h, &key, b"bodx"));
        assert!(!signature_matches(&h, &Secret::new("other"), b"body"));
        assert!(constant_time_eq(b"ab", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
    }
}
