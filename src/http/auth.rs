//! Authentication of pushes (bearer token, or an HMAC-SHA256 signature over
//! a timestamp, a request id and the body) and of read-API users (bearer
//! token mapped to schools).
//!
//! A bearer token is checked before a byte of the body is read. A signature
//! can only be checked after the body, so a signed push must first pass the
//! cheap checks (a well-formed signature header, a fresh timestamp, a request
//! id not seen before) and then waits for one of its source's few push slots
//! before its body is read: an attacker without the key can hold at most
//! those slots' worth of memory.

use super::error::ApiError;
use crate::config::{ApiUser, Secret, SourceConfig};
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The header carrying `sha256=<hex>` of the signed message (see [`signed_message`]).
pub const SIGNATURE_HEADER: &str = "x-tilstede-signature";
/// The header carrying the unix second the push was signed at.
pub const TIMESTAMP_HEADER: &str = "x-tilstede-timestamp";
/// The header carrying the push's unique id (1–128 of `A-Z a-z 0-9 . _ : -`).
pub const REQUEST_ID_HEADER: &str = "x-tilstede-request-id";
/// How far a signed timestamp may be from the server's clock, in seconds.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Compares two secrets in time independent of where they differ and of
/// their lengths: both are hashed first, and the digests compared by every byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn token_matches(given: Option<&str>, token: &Secret) -> bool {
    given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.expose().as_bytes()))
}

/// The bytes a push signature covers: `TIMESTAMP.REQUEST_ID.` then the body,
/// so neither the time nor the id can be changed without the key.
pub fn signed_message(timestamp: &str, request_id: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + request_id.len() + 2 + body.len());
    m.extend_from_slice(timestamp.as_bytes());
    m.push(b'.');
    m.extend_from_slice(request_id.as_bytes());
    m.push(b'.');
    m.extend_from_slice(body);
    m
}

/// `sha256=<hex>` of a push signed with `key` at `timestamp` (unix seconds)
/// under `request_id`: what a sender puts in [`SIGNATURE_HEADER`].
pub fn sign(key: &str, timestamp: i64, request_id: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(&signed_message(&timestamp.to_string(), request_id, body));
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A request id as sent, when it is well-formed.
pub fn request_id(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(v) = headers.get(REQUEST_ID_HEADER) else {
        return Ok(None);
    };
    let ok = v.to_str().ok().filter(|s| {
        (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    });
    match ok {
        Some(id) => Ok(Some(id)),
        None => Err(ApiError::BadRequest(format!(
            "{REQUEST_ID_HEADER} må ha 1–128 tegn av A–Z, a–z, 0–9, . _ : -"
        ))),
    }
}

/// How a push is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushAuth {
    /// By bearer token: done, before the body.
    Token,
    /// By signature: to be verified over the body with [`verify_signature`].
    Signed {
        /// The signature bytes.
        signature: Vec<u8>,
        /// The timestamp as sent (it is part of the signed message).
        timestamp: String,
        /// The signed timestamp, in unix seconds.
        at: i64,
        /// The request id.
        request_id: String,
    },
}

/// Decides, from the headers alone, whether a push may have its body read:
/// a right bearer token authenticates it; otherwise it needs a well-formed
/// signature with a fresh timestamp and a request id. Anything else is
/// refused before the body.
pub fn check_push_headers(source: &SourceConfig, headers: &HeaderMap, now: i64) -> Result<PushAuth, ApiError> {
    if source.token.as_ref().is_some_and(|t| token_matches(bearer(headers), t)) {
        return Ok(PushAuth::Token);
    }
    let Some(_) = &source.hmac_secret else {
        return Err(ApiError::Unauthorized);
    };
    let Some(given) = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::Unauthorized);
    };
    let signature = given
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .filter(|s| s.len() == 32)
        .ok_or(ApiError::Unauthorized)?;
    let timestamp = headers
        .get(TIMESTAMP_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest(format!("en signert sending må ha {TIMESTAMP_HEADER}")))?;
    let at: i64 = timestamp
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{TIMESTAMP_HEADER} må være unix-sekunder")))?;
    if (now - at).abs() > MAX_SKEW_SECONDS {
        return Err(ApiError::Stale);
    }
    let request_id = request_id(headers)?
        .ok_or_else(|| ApiError::BadRequest(format!("en signert sending må ha {REQUEST_ID_HEADER}")))?;
    Ok(PushAuth::Signed {
        signature,
        timestamp: timestamp.to_string(),
        at,
        request_id: request_id.to_string(),
    })
}

/// Verifies a signed push's signature over its body.
pub fn verify_signature(key: &Secret, auth: &PushAuth, body: &[u8]) -> Result<(), ApiError> {
    let PushAuth::Signed {
        signature,
        timestamp,
        request_id,
        ..
    } = auth
    else {
        return Ok(());
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(&signed_message(timestamp, request_id, body));
    // verify_slice compares in constant time.
    mac.verify_slice(signature).map_err(|_| ApiError::Unauthorized)
}

/// The read-API user whose token the request carries. Every user's token
/// is compared (no early exit), so the time taken does not tell which one
/// matched.
pub fn read_user<'a>(users: &'a [ApiUser], headers: &HeaderMap) -> Result<&'a ApiUser, ApiError> {
    let given = bearer(headers);
    let mut found = None;
    for u in users {
        if token_matches(given, &u.token) && found.is_none() {
            found = Some(u);
        }
    }
    found.ok_or(ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Schools;

    fn source() -> SourceConfig {
        SourceConfig {
            name: "vis".into(),
            schools: Schools::All,
            token: Some(Secret::new("t".repeat(32))),
            hmac_secret: Some(Secret::new("k".repeat(32))),
            max_body_bytes: 1024,
            max_concurrent: 1,
            profile: None,
            extensions: Vec::new(),
            keep_raw: false,
            identity: None,
            pull: None,
        }
    }

    fn signed(key: &str, at: i64, id: &str, body: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, sign(key, at, id, body).parse().unwrap());
        h.insert(TIMESTAMP_HEADER, at.to_string().parse().unwrap());
        h.insert(REQUEST_ID_HEADER, id.parse().unwrap());
        h
    }

    #[test]
    fn signatures_cover_time_id_and_body() {
        let s = source();
        let key = "k".repeat(32);
        let now = 1_800_000_000;
        let h = signed(&key, now, "req-1", b"body");
        let auth = check_push_headers(&s, &h, now).unwrap();
        let secret = s.hmac_secret.as_ref().unwrap();
        assert!(verify_signature(secret, &auth, b"body").is_ok());
        assert!(verify_signature(secret, &auth, b"bodx").is_err());
        // Another id or time under the same signature fails.
        let mut moved = h.clone();
        moved.insert(REQUEST_ID_HEADER, "req-2".parse().unwrap());
        let auth = check_push_headers(&s, &moved, now).unwrap();
        assert!(verify_signature(secret, &auth, b"body").is_err());
        let mut moved = h.clone();
        moved.insert(TIMESTAMP_HEADER, (now + 1).to_string().parse().unwrap());
        let auth = check_push_headers(&s, &moved, now).unwrap();
        assert!(verify_signature(secret, &auth, b"body").is_err());
        // A timestamp more than five minutes away is refused before the body.
        assert!(matches!(check_push_headers(&s, &h, now + 301), Err(ApiError::Stale)));
        assert!(matches!(check_push_headers(&s, &h, now - 301), Err(ApiError::Stale)));
        assert!(check_push_headers(&s, &h, now + 300).is_ok());
        // No id, no timestamp, a malformed signature.
        let mut no_id = h.clone();
        no_id.remove(REQUEST_ID_HEADER);
        assert!(matches!(
            check_push_headers(&s, &no_id, now),
            Err(ApiError::BadRequest(_))
        ));
        let mut no_time = h.clone();
        no_time.remove(TIMESTAMP_HEADER);
        assert!(matches!(
            check_push_headers(&s, &no_time, now),
            Err(ApiError::BadRequest(_))
        ));
        let mut bad = h.clone();
        bad.insert(SIGNATURE_HEADER, "sha256=zz".parse().unwrap());
        assert!(matches!(check_push_headers(&s, &bad, now), Err(ApiError::Unauthorized)));
    }

    #[test]
    fn tokens_are_checked_before_anything_else() {
        let s = source();
        let mut h = HeaderMap::new();
        assert!(matches!(check_push_headers(&s, &h, 0), Err(ApiError::Unauthorized)));
        h.insert("authorization", "Bearer wrong".parse().unwrap());
        assert!(matches!(check_push_headers(&s, &h, 0), Err(ApiError::Unauthorized)));
        h.insert("authorization", format!("Bearer {}", "t".repeat(32)).parse().unwrap());
        assert_eq!(check_push_headers(&s, &h, 0).unwrap(), PushAuth::Token);
        assert!(constant_time_eq(b"ab", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn request_ids_are_checked() {
        let mut h = HeaderMap::new();
        assert_eq!(request_id(&h).unwrap(), None);
        h.insert(REQUEST_ID_HEADER, "2026-12-06T10:00:00Z_abc.1".parse().unwrap());
        assert!(request_id(&h).unwrap().is_some());
        h.insert(REQUEST_ID_HEADER, "has space".parse().unwrap());
        assert!(request_id(&h).is_err());
        h.insert(REQUEST_ID_HEADER, "x".repeat(129).parse().unwrap());
        assert!(request_id(&h).is_err());
    }
}
