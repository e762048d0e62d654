//! The REST engine: the IO edge of the pull adapters. OAuth2 client
//! credentials and password grants (token cached until shortly before it
//! expires, renewed once on 401), API keys, retries with exponential backoff
//! on 5xx, timeouts and connection errors, and 429 honouring Retry-After.
//!
//! Mapping the JSON is left to the adapters, so it stays testable without a
//! network.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How a client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No authentication.
    None,
    /// A fixed header, e.g. `X-API-Key`.
    ApiKey {
        /// Header name.
        header: String,
        /// The key.
        value: String,
    },
    /// OAuth2 client credentials grant.
    ClientCredentials {
        /// Token endpoint URL.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: String,
        /// Scope, if the server wants one.
        scope: Option<String>,
    },
    /// OAuth2 resource owner password grant (some vendor APIs still use it).
    Password {
        /// Token endpoint URL.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: String,
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

/// Retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// First backoff; doubled per retry.
    pub base_delay: Duration,
    /// Longest wait, also the cap on Retry-After.
    pub max_delay: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

/// What went wrong talking to a source.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// The server kept failing; the last status or error is given.
    #[error("{url}: ga opp etter {attempts} forsøk: {last}")]
    GaveUp {
        /// The URL (without query secrets).
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The server refused the request for good (4xx other than 401/429).
    #[error("{url}: HTTP {status}")]
    Refused {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The token endpoint refused the credentials.
    #[error("innlogging mot {url} feilet: HTTP {status}")]
    Token {
        /// Token endpoint.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body was not the JSON expected.
    #[error("{url}: uventet svar: {message}")]
    Body {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The client could not be built.
    #[error("HTTP-klienten kunne ikke lages: {0}")]
    Client(String),
}

/// A JSON response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The body.
    pub body: serde_json::Value,
    /// The headers.
    pub headers: HeaderMap,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A REST client for one source.
#[derive(Debug)]
pub struct RestClient {
    http: Client,
    auth: Auth,
    retry: RetryPolicy,
    token: Mutex<Option<(String, Instant)>>,
}

/// Renew a token this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);

impl RestClient {
    /// A client with `auth` and `retry`.
    pub fn new(auth: Auth, retry: RetryPolicy) -> Result<RestClient, RestError> {
        let http = Client::builder()
            .timeout(retry.timeout)
            .user_agent(concat!("tilstede/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RestError::Client(e.to_string()))?;
        Ok(RestClient {
            http,
            auth,
            retry,
            token: Mutex::new(None),
        })
    }

    async fn bearer(&self, renew: bool) -> Result<Option<String>, RestError> {
        let (token_url, form, client_id, client_secret) = match &self.auth {
            Auth::None | Auth::ApiKey { .. } => return Ok(None),
            Auth::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let mut form = vec![("grant_type", "client_credentials".to_string())];
                if let Some(s) = scope {
                    form.push(("scope", s.clone()));
                }
                (token_url, form, client_id, client_secret)
            }
            Auth::Password {
                token_url,
                client_id,
                client_secret,
                username,
                password,
            } => (
                token_url,
                vec![
                    ("grant_type", "password".to_string()),
                    ("username", username.clone()),
                    ("password", password.clone()),
                ],
                client_id,
                client_secret,
            ),
        };
        let mut cached = self.token.lock().await;
        if !renew
            && let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(Some(t.clone()));
        }
        let mut last = String::new();
        for attempt in 0..self.retry.attempts {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            let resp = self
                .http
                .post(token_url)
                .basic_auth(client_id, Some(client_secret))
                .form(&form)
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => {
                    let t: TokenResponse = r.json().await.map_err(|e| RestError::Body {
                        url: token_url.clone(),
                        message: e.to_string(),
                    })?;
                    let life = Duration::from_secs(t.expires_in.unwrap_or(3600));
                    let until = Instant::now() + life.saturating_sub(TOKEN_MARGIN);
                    *cached = Some((t.access_token.clone(), until));
                    tracing::debug!(url = %token_url, "token fetched");
                    return Ok(Some(t.access_token));
                }
                Ok(r) if r.status().is_server_error() || r.status() == StatusCode::TOO_MANY_REQUESTS => {
                    last = format!("HTTP {}", r.status().as_u16());
                }
                Ok(r) => {
                    return Err(RestError::Token {
                        url: token_url.clone(),
                        status: r.status().as_u16(),
                    });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(RestError::GaveUp {
            url: token_url.clone(),
            attempts: self.retry.attempts,
            last,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let d = self
            .retry
            .base_delay
            .saturating_mul(1u32 << attempt.min(16).saturating_sub(1));
        d.min(self.retry.max_delay)
    }

    fn retry_after(&self, headers: &HeaderMap, attempt: u32) -> Duration {
        headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or_else(|| self.backoff(attempt + 1))
            .min(self.retry.max_delay)
    }

    /// GETs `url` with `query`, retrying as the policy says.
    pub async fn get_json(&self, url: &str, query: &[(&str, String)]) -> Result<Response, RestError> {
        let mut last = String::new();
        let mut renewed = false;
        let mut attempt = 0;
        while attempt < self.retry.attempts {
            let mut req = self.http.get(url).query(query);
            if let Auth::ApiKey { header, value } = &self.auth {
                req = req.header(header.as_str(), value.as_str());
            }
            if let Some(token) = self.bearer(false).await? {
                req = req.bearer_auth(token);
            }
            let wait = match req.send().await {
                Ok(r) if r.status().is_success() => {
                    let headers = r.headers().clone();
                    match r.json::<serde_json::Value>().await {
                        Ok(body) => return Ok(Response { body, headers }),
                        // A body cut off mid-way is worth another try.
                        Err(e) => {
                            last = format!("ufullstendig svar: {e}");
                            self.backoff(attempt + 1)
                        }
                    }
                }
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !renewed => {
                    // The token may have been revoked early; renew once.
                    renewed = true;
                    self.bearer(true).await?;
                    continue;
                }
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS => {
                    last = "HTTP 429".into();
                    let wait = self.retry_after(r.headers(), attempt);
                    tracing::info!(url, wait_ms = wait.as_millis() as u64, "rate limited");
                    wait
                }
                Ok(r) if r.status().is_server_error() => {
                    last = format!("HTTP {}", r.status().as_u16());
                    self.backoff(attempt + 1)
                }
                Ok(r) => {
                    return Err(RestError::Refused {
                        url: url.to_string(),
                        status: r.status().as_u16(),
                    });
                }
                Err(e) => {
                    last = if e.is_timeout() {
                        "tidsavbrudd".to_string()
                    } else {
                        e.to_string()
                    };
                    self.backoff(attempt + 1)
                }
            };
            attempt += 1;
            if attempt < self.retry.attempts {
                tracing::debug!(url, attempt, "retrying");
                tokio::time::sleep(wait).await;
            }
        }
        Err(RestError::GaveUp {
            url: url.to_string(),
            attempts: self.retry.attempts,
            last,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = RestClient::new(
            Auth::None,
            RetryPolicy {
                attempts: 3,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(500),
                timeout: Duration::from_secs(1),
            },
        )
        .unwrap();
        assert_eq!(c.backoff(1), Duration::from_millis(100));
        assert_eq!(c.backoff(2), Duration::from_millis(200));
        assert_eq!(c.backoff(3), Duration::from_millis(400));
        assert_eq!(c.backoff(4), Duration::from_millis(500));
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(c.retry_after(&h, 0), Duration::from_millis(500), "capped");
        h.insert(RETRY_AFTER, "0".parse().unwrap());
        assert_eq!(c.retry_after(&h, 0), Duration::ZERO);
    }
}
