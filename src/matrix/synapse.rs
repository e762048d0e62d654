//! A private Synapse homeserver on loopback, for the integration tests and the
//! Matrix benchmark. It runs from the virtualenv that `scripts/synapse`
//! installs, keeps its data in a temp dir, and can be stopped and started
//! again on the same port to play a homeserver outage.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What went wrong while running Synapse.
#[derive(Debug, thiserror::Error)]
pub enum SynapseError {
    /// The virtualenv with Synapse is missing.
    #[error("fant ikke Synapse i {0}: kjør scripts/synapse")]
    NotInstalled(PathBuf),
    /// A process or file operation failed.
    #[error("Synapse: {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Synapse did not answer on its port in time.
    #[error("Synapse svarte ikke innen {0:?}; se {1}")]
    NotReady(Duration, PathBuf),
    /// The admin registration API refused.
    #[error("registrering av {user} feilet: {detail}")]
    Register {
        /// The localpart.
        user: String,
        /// The server's answer.
        detail: String,
    },
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> SynapseError {
    move |source| SynapseError::Io { what, source }
}

/// Which rate limits the server applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// Every `rc_*` limit lifted, so tests do not wait on the server.
    Lifted,
    /// Synapse's shipped defaults (0.2 messages/s after a burst of 10, …).
    Stock,
}

/// A running (or stopped) Synapse.
#[derive(Debug)]
pub struct Synapse {
    python: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    secret: String,
    child: Mutex<Option<Child>>,
}

/// The server name every test user lives on.
pub const SERVER_NAME: &str = "localhost";

impl Synapse {
    /// The Python interpreter of the Synapse virtualenv:
    /// `TILSTEDE_SYNAPSE_PYTHON`, else `.venv/bin/python` in the repository.
    pub fn python() -> Result<PathBuf, SynapseError> {
        let path = std::env::var_os("TILSTEDE_SYNAPSE_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
        if path.exists() {
            Ok(path)
        } else {
            Err(SynapseError::NotInstalled(path))
        }
    }

    /// Generates a config in a fresh temp dir and starts the server on a free
    /// loopback port, waiting until it answers.
    pub fn start(python: &Path, limits: Limits) -> Result<Synapse, SynapseError> {
        let dir = tempfile::Builder::new()
            .prefix("tilstede-synapse-")
            .tempdir()
            .map_err(io("temp dir"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io("free port"))?
            .port();
        let secret = format!("{:032x}", rand::random::<u128>());
        let d = dir.path();
        let status = Command::new(python)
            .args(["-m", "synapse.app.homeserver", "--server-name", SERVER_NAME])
            .arg("--config-path")
            .arg(d.join("homeserver.yaml"))
            .args(["--generate-config", "--report-stats=no", "--data-directory"])
            .arg(d)
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(io("generate config"))?;
        if !status.success() {
            return Err(SynapseError::Io {
                what: "generate config",
                source: std::io::Error::other(format!("exit {status}")),
            });
        }
        let mut overrides = format!(
            "listeners:\n  - port: {port}\n    tls: false\n    type: http\n    x_forwarded: false\n    \
             bind_addresses: ['127.0.0.1']\n    resources:\n      - names: [client]\n        compress: false\n\
             registration_shared_secret: \"{secret}\"\nenable_registration: false\ntrusted_key_servers: []\n\
             suppress_key_server_warning: true\npid_file: {pid}\n",
            pid = d.join("homeserver.pid").display()
        );
        if limits == Limits::Lifted {
            let fast = "{per_second: 100000, burst_count: 100000}";
            for key in [
                "rc_message",
                "rc_registration",
                "rc_admin_redaction",
                "rc_joins_per_room",
                "rc_3pid_validation",
                "rc_invites_per_room",
                "rc_key_requests",
                "rc_room_creation",
                "rc_reports",
                "rc_presence",
                "rc_delayed_event_mgmt",
            ] {
                overrides.push_str(&format!("{key}: {fast}\n"));
            }
            overrides.push_str(&format!(
                "rc_login:\n  address: {fast}\n  account: {fast}\n  failed_attempts: {fast}\n\
                 rc_joins:\n  local: {fast}\n  remote: {fast}\n\
                 rc_invites:\n  per_room: {fast}\n  per_user: {fast}\n  per_issuer: {fast}\n"
            ));
        }
        std::fs::write(d.join("overrides.yaml"), overrides).map_err(io("write config"))?;
        let server = Synapse {
            python: python.to_path_buf(),
            dir,
            port,
            secret,
            child: Mutex::new(None),
        };
        server.resume()?;
        Ok(server)
    }

    /// The client-server API base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The data directory (logs are in `homeserver.log` and `stderr.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server at once, as a crash or outage would.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().expect("lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port with the same data.
    pub fn resume(&self) -> Result<(), SynapseError> {
        let mut guard = self.child.lock().expect("lock");
        if guard.is_some() {
            return Ok(());
        }
        let d = self.dir.path();
        let _ = std::fs::remove_file(d.join("homeserver.pid"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("stderr.log"))
            .map_err(io("open log"))?;
        let child = Command::new(&self.python)
            .args(["-m", "synapse.app.homeserver", "--config-path"])
            .arg(d.join("homeserver.yaml"))
            .arg("--config-path")
            .arg(d.join("overrides.yaml"))
            .current_dir(d)
            .stdout(log.try_clone().map_err(io("open log"))?)
            .stderr(log)
            .spawn()
            .map_err(io("start"))?;
        // Statics are never dropped, so a server shared by a test run would
        // outlive it; a watchdog kills it when this process is gone.
        let watchdog = format!(
            "while kill -0 {parent} 2>/dev/null && kill -0 {child} 2>/dev/null; do sleep 1; done; kill {child} 2>/dev/null",
            parent = std::process::id(),
            child = child.id()
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("start watchdog"))?;
        *guard = Some(child);
        drop(guard);
        let limit = Duration::from_secs(90);
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.healthy() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(SynapseError::NotReady(limit, d.join("stderr.log")))
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
    }

    /// Registers a user through the shared-secret admin API and returns the
    /// full user id.
    pub async fn register(&self, localpart: &str, password: &str, admin: bool) -> Result<String, SynapseError> {
        Ok(self.register_with_token(localpart, password, admin).await?.0)
    }

    /// Registers a user like [`Synapse::register`] and also returns the
    /// access token of the session the registration opened (a device
    /// without keys), for calls to the client or admin API.
    pub async fn register_with_token(
        &self,
        localpart: &str,
        password: &str,
        admin: bool,
    ) -> Result<(String, String), SynapseError> {
        let fail = |detail: String| SynapseError::Register {
            user: localpart.to_string(),
            detail,
        };
        let http = reqwest::Client::new();
        let url = format!("{}/_synapse/admin/v1/register", self.url());
        let nonce: serde_json::Value = http
            .get(&url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?
            .json()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let nonce = nonce["nonce"].as_str().ok_or_else(|| fail("no nonce".into()))?;
        let message = format!(
            "{nonce}\0{localpart}\0{password}\0{}",
            if admin { "admin" } else { "notadmin" }
        );
        let mac = hex::encode(hmac_sha1(self.secret.as_bytes(), message.as_bytes()));
        let body = serde_json::json!({
            "nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac,
        });
        let response = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.map_err(|e| fail(e.to_string()))?;
        match (answer["user_id"].as_str(), answer["access_token"].as_str()) {
            (Some(id), Some(token)) if status.is_success() => Ok((id.to_string(), token.to_string())),
            _ => Err(fail(format!("{status}: {answer}"))),
        }
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// HMAC (RFC 2104) over SHA-1, which is what Synapse's registration API asks for.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha1::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202 test case 2.
        let mac = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
}
