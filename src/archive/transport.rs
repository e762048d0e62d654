//! How archive messages travel. Fiks IO (KS's message service) needs KS's
//! network and certificates, so tilstede ships two transports a
//! municipality's integration platform can bridge to it:
//!
//! **Directory drop.** Each message becomes a folder `{outbox_dir}/{message
//! id}/` holding `arkivmelding.xml`, the document under its
//! `referanseDokumentfil` name, and `melding.json` (`meldingId`,
//! `meldingstype`). The folder is written under a temporary name and renamed
//! into place, so the integration never sees half a message; a folder that
//! already exists is the same message delivered before. The integration
//! answers with `{reply_dir}/{message id}.xml`: the kvittering or a
//! feilmelding, told apart by its root element.
//!
//! **HTTP.** Against a base URL:
//! - `PUT {url}/meldinger/{id}/filer/{referanseDokumentfil}` uploads the
//!   document (idempotent);
//! - `POST {url}/meldinger/{id}` with `Fiks-Meldingstype:
//!   no.ks.fiks.arkiv.v1.arkivering.arkivmelding.opprett` and the
//!   arkivmelding as the body. `202` with `Fiks-Meldingstype: …mottatt`
//!   means received (a repeat of the same id is answered the same way);
//!   `200` carries a reply at once; `400` carries an `ugyldigforespoersel`;
//!   `5xx` and `429` are worth retrying;
//! - `GET {url}/meldinger/{id}/svar` fetches the reply: `200` with the
//!   kvittering or feilmelding XML, `204` or `404` while there is none.
//!
//! A bearer token is sent when configured.

use super::arkivmelding::{MOTTATT, OPPRETT, Reply, parse_reply};
use super::config::{ConfigError, TransportConfig};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What went wrong carrying a message. Texts carry no personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The archive or the path to it is down or busy; try again later.
    #[error("arkivet svarer ikke nå: {0}")]
    Unavailable(String),
    /// The archive answered something the protocol does not allow.
    #[error("uventet svar fra arkivet: {0}")]
    Protocol(String),
    /// The local directory could not be written or read.
    #[error("arkivmappen: {0}")]
    Io(String),
    /// The transport could not be set up.
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// A message to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The message id (the same on every attempt).
    pub message_id: &'a str,
    /// `arkivmelding.xml`.
    pub arkivmelding: &'a str,
    /// The document's name inside the message.
    pub file_reference: &'a str,
    /// The document.
    pub file: &'a [u8],
}

/// What sending achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The archive has the message («mottatt»); the reply comes later.
    Received,
    /// The archive answered at once.
    Replied(Reply),
}

/// A transport, chosen by configuration.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Directory drop.
    Directory {
        /// Where messages go.
        outbox_dir: PathBuf,
        /// Where replies come.
        reply_dir: PathBuf,
    },
    /// HTTP.
    Http {
        /// The client (with its timeout).
        client: reqwest::Client,
        /// The base URL.
        url: String,
        /// The bearer token, if any.
        token: Option<String>,
    },
}

/// A file name that cannot leave its folder.
fn safe_name(name: &str) -> Result<&str, TransportError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(TransportError::Protocol(format!("ugyldig filnavn «{name}»")));
    }
    Ok(name)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn io(e: std::io::Error) -> TransportError {
    TransportError::Io(e.to_string())
}

impl Transport {
    /// The transport of a validated configuration (reads the HTTP token).
    pub fn from_config(config: &TransportConfig) -> Result<Transport, TransportError> {
        Ok(match config {
            TransportConfig::Directory { outbox_dir, reply_dir } => Transport::Directory {
                outbox_dir: outbox_dir.clone(),
                reply_dir: reply_dir.clone(),
            },
            TransportConfig::Http { url, token, timeout } => Transport::Http {
                client: reqwest::Client::builder()
                    .timeout(*timeout)
                    .build()
                    .map_err(|e| TransportError::Unavailable(e.to_string()))?,
                url: url.clone(),
                token: token.as_ref().map(|t| t.read()).transpose()?,
            },
        })
    }

    /// Sends a message.
    pub async fn send(&self, message: &Outgoing<'_>) -> Result<Sent, TransportError> {
        let id = safe_name(message.message_id)?;
        let file = safe_name(message.file_reference)?;
        match self {
            Transport::Directory { outbox_dir, .. } => {
                let outbox_dir = outbox_dir.clone();
                let (id, file) = (id.to_string(), file.to_string());
                let xml = message.arkivmelding.to_string();
                let bytes = message.file.to_vec();
                tokio::task::spawn_blocking(move || drop_message(&outbox_dir, &id, &file, &xml, &bytes))
                    .await
                    .map_err(|e| TransportError::Io(e.to_string()))?
            }
            Transport::Http { client, url, token } => {
                let auth = |rb: reqwest::RequestBuilder| match token {
                    Some(t) => rb.bearer_auth(t),
                    None => rb,
                };
                let put = auth(client.put(format!("{url}/meldinger/{id}/filer/{file}")))
                    .header(reqwest::header::CONTENT_TYPE, "application/pdf")
                    .body(message.file.to_vec())
                    .send()
                    .await
                    .map_err(unavailable)?;
                let status = put.status();
                if !status.is_success() {
                    return answer_error(status, put).await;
                }
                let post = auth(client.post(format!("{url}/meldinger/{id}")))
                    .header("Fiks-Meldingstype", OPPRETT)
                    .header("Fiks-Melding-Id", id)
                    .header(reqwest::header::CONTENT_TYPE, "application/xml; charset=utf-8")
                    .body(message.arkivmelding.to_string())
                    .send()
                    .await
                    .map_err(unavailable)?;
                let status = post.status();
                if status == reqwest::StatusCode::ACCEPTED {
                    let kind = post
                        .headers()
                        .get("Fiks-Meldingstype")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    return if kind == MOTTATT {
                        Ok(Sent::Received)
                    } else {
                        Err(TransportError::Protocol(format!("202 med meldingstype «{kind}»")))
                    };
                }
                if status == reqwest::StatusCode::OK {
                    let body = post.text().await.map_err(unavailable)?;
                    return parse_reply(&body)
                        .map(Sent::Replied)
                        .map_err(|e| TransportError::Protocol(e.to_string()));
                }
                answer_error(status, post).await
            }
        }
    }

    /// Fetches the reply to `message_id`, if there is one yet.
    pub async fn poll(&self, message_id: &str) -> Result<Option<Reply>, TransportError> {
        let id = safe_name(message_id)?;
        match self {
            Transport::Directory { reply_dir, .. } => {
                let path = reply_dir.join(format!("{id}.xml"));
                match tokio::fs::read_to_string(&path).await {
                    Ok(xml) => parse_reply(&xml)
                        .map(Some)
                        .map_err(|e| TransportError::Protocol(e.to_string())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(e)),
                }
            }
            Transport::Http { client, url, token } => {
                let mut rb = client.get(format!("{url}/meldinger/{id}/svar"));
                if let Some(t) = token {
                    rb = rb.bearer_auth(t);
                }
                let res = rb.send().await.map_err(unavailable)?;
                match res.status() {
                    reqwest::StatusCode::OK => {
                        let body = res.text().await.map_err(unavailable)?;
                        parse_reply(&body)
                            .map(Some)
                            .map_err(|e| TransportError::Protocol(e.to_string()))
                    }
                    reqwest::StatusCode::NO_CONTENT | reqwest::StatusCode::NOT_FOUND => Ok(None),
                    s if s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                        Err(TransportError::Unavailable(format!("HTTP {}", s.as_u16())))
                    }
                    s => Err(TransportError::Protocol(format!("HTTP {}", s.as_u16()))),
                }
            }
        }
    }
}

fn unavailable(e: reqwest::Error) -> TransportError {
    // Without the URL: it may carry a token in a query string.
    TransportError::Unavailable(e.without_url().to_string())
}

/// A non-success answer: a refusal with a feilmelding, or worth a retry.
async fn answer_error(status: reqwest::StatusCode, res: reqwest::Response) -> Result<Sent, TransportError> {
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(TransportError::Unavailable(format!("HTTP {}", status.as_u16())));
    }
    let body = res.text().await.unwrap_or_default();
    match parse_reply(&body) {
        Ok(reply @ Reply::Rejected { .. }) => Ok(Sent::Replied(reply)),
        _ => Err(TransportError::Protocol(format!("HTTP {}", status.as_u16()))),
    }
}

/// Writes one message folder, atomically.
fn drop_message(outbox: &Path, id: &str, file: &str, xml: &str, bytes: &[u8]) -> Result<Sent, TransportError> {
    std::fs::create_dir_all(outbox).map_err(io)?;
    let target = outbox.join(id);
    if target.is_dir() {
        return Ok(Sent::Received);
    }
    let tmp = outbox.join(format!(".{id}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io)?;
    }
    std::fs::create_dir(&tmp).map_err(io)?;
    write_synced(&tmp.join("arkivmelding.xml"), xml.as_bytes()).map_err(io)?;
    write_synced(&tmp.join(file), bytes).map_err(io)?;
    let manifest = serde_json::json!({ "meldingId": id, "meldingstype": OPPRETT, "filer": ["arkivmelding.xml", file] });
    write_synced(&tmp.join("melding.json"), manifest.to_string().as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, &target).map_err(io)?;
    // Make the rename itself durable.
    if let Ok(dir) = std::fs::File::open(outbox) {
        let _ = dir.sync_all();
    }
    Ok(Sent::Received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_directory_drop_is_whole_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transport::Directory {
            outbox_dir: dir.path().join("ut"),
            reply_dir: dir.path().join("svar"),
        };
        let msg = Outgoing {
            message_id: "0b0e7a9e-1111-4222-8333-444455556666",
            arkivmelding: "<arkivmelding/>",
            file_reference: "referat-1.pdf",
            file: b"%PDF",
        };
        assert_eq!(t.send(&msg).await.unwrap(), Sent::Received);
        let folder = dir.path().join("ut").join(msg.message_id);
        assert_eq!(std::fs::read(folder.join("referat-1.pdf")).unwrap(), b"%PDF");
        assert_eq!(
            std::fs::read_to_string(folder.join("arkivmelding.xml")).unwrap(),
            "<arkivmelding/>"
        );
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("melding.json")).unwrap()).unwrap();
        assert_eq!(manifest["meldingstype"], OPPRETT);
        // Sending again changes nothing and leaves no temporary folder.
        assert_eq!(t.send(&msg).await.unwrap(), Sent::Received);
        assert_eq!(std::fs::read_dir(dir.path().join("ut")).unwrap().count(), 1);

        assert_eq!(t.poll(msg.message_id).await.unwrap(), None);
        std::fs::create_dir_all(dir.path().join("svar")).unwrap();
        std::fs::write(
            dir.path().join("svar").join(format!("{}.xml", msg.message_id)),
            "<serverfeil><feilId>1</feilId><feilmelding>nede</feilmelding></serverfeil>",
        )
        .unwrap();
        assert!(matches!(
            t.poll(msg.message_id).await.unwrap(),
            Some(Reply::ServerError { .. })
        ));
    }

    #[tokio::test]
    async fn names_cannot_escape_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let t = Transport::Directory {
            outbox_dir: dir.path().join("ut"),
            reply_dir: dir.path().join("svar"),
        };
        let msg = Outgoing {
            message_id: "../x",
            arkivmelding: "",
            file_reference: "a.pdf",
            file: b"",
        };
        assert!(matches!(t.send(&msg).await, Err(TransportError::Protocol(_))));
        assert!(t.poll("../../etc/passwd").await.is_err());
    }
}
