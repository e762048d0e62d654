//! `vendor-rest`: a school system's JSON REST API, driven by a profile.
//!
//! The profile's `[rest]` table says where the records are (paths below the
//! source's base URL, the JSON path of the record array), how to log in
//! (OAuth2 client credentials or an API key header; the secrets come from the
//! source config) and how the API pages: offset/limit, page number, a next
//! link in the body, or a cursor in the body sent back as a query parameter.
//! The records are mapped by the same `[columns]`/`[codes]` tables as
//! vendor-csv. An optional `[rest.since]` asks only for what changed since the
//! previous run; that mark is saved only after every page is committed.

use super::Parsed;
use super::mapping::{JsonFields, json_at, json_text, map_fields};
use super::profile::{Profile, ProfileError, invalid};
use super::pull::{SyncError, SyncReport, commit, timed_run};
use super::rest::RestClient;
use crate::store::Store;
use serde::Deserialize;
use serde_json::Value;

/// The stream name of the since cursor.
pub const CURSOR_STREAM: &str = "since";

/// `[rest]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRest {
    /// Resource paths below the source's base URL, fetched in order.
    pub paths: Vec<String>,
    /// Dotted JSON path of the record array (default: the body is the array).
    #[serde(default)]
    pub records: Option<String>,
    /// How to log in.
    #[serde(default)]
    pub auth: RawRestAuth,
    /// How the API pages.
    #[serde(default)]
    pub paging: RawPaging,
    /// Incremental pulls.
    #[serde(default)]
    pub since: Option<RawSince>,
}

/// `[rest.auth]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestAuth {
    /// `oauth2` (client credentials, default), `api-key` or `none`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Token endpoint below the base URL (oauth2; default `/oauth/token`).
    #[serde(default)]
    pub token_path: Option<String>,
    /// OAuth2 scope, when the API wants one.
    #[serde(default)]
    pub scope: Option<String>,
    /// Header carrying the key (api-key; default `X-API-Key`).
    #[serde(default)]
    pub header: Option<String>,
}

/// `[rest.paging]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPaging {
    /// `offset` (default), `page`, `next-link` or `cursor`.
    #[serde(default)]
    pub style: Option<String>,
    /// Records per page (default 500).
    #[serde(default)]
    pub size: Option<u32>,
    /// Query parameter carrying the page size (default `limit`; `none` sends none).
    #[serde(default)]
    pub size_param: Option<String>,
    /// Query parameter of the offset (offset; default `offset`).
    #[serde(default)]
    pub offset_param: Option<String>,
    /// Query parameter of the page number (page; default `page`).
    #[serde(default)]
    pub page_param: Option<String>,
    /// Number of the first page (page; default 1).
    #[serde(default)]
    pub first_page: Option<u32>,
    /// Dotted JSON path of the next page's URL (next-link).
    #[serde(default)]
    pub next: Option<String>,
    /// Dotted JSON path of the next cursor (cursor).
    #[serde(default)]
    pub cursor: Option<String>,
    /// Query parameter carrying the cursor back (cursor; default `cursor`).
    #[serde(default)]
    pub cursor_param: Option<String>,
}

/// `[rest.since]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSince {
    /// Query parameter carrying the previous run's start.
    pub param: String,
    /// `rfc3339` (default) or `millis` (ms since 1970).
    #[serde(default)]
    pub format: Option<String>,
}

/// How to log in (the secrets come from the source config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestAuth {
    /// OAuth2 client credentials.
    OAuth2 {
        /// Token endpoint below the base URL.
        token_path: String,
        /// Scope.
        scope: Option<String>,
    },
    /// A fixed header with the key.
    ApiKey {
        /// Header name.
        header: String,
    },
    /// Open API.
    None,
}

/// How an API pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// `?offset=N&limit=S`.
    Offset {
        /// Offset parameter.
        param: String,
    },
    /// `?page=N&size=S`, counting from `first`.
    Page {
        /// Page parameter.
        param: String,
        /// First page number.
        first: u32,
    },
    /// The body holds the URL of the next page.
    NextLink {
        /// Dotted JSON path of it.
        path: String,
    },
    /// The body holds a cursor to send back.
    Cursor {
        /// Dotted JSON path of it.
        path: String,
        /// Query parameter to send it in.
        param: String,
    },
}

/// How the since mark is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinceFormat {
    /// `2026-03-02T08:00:00Z`.
    Rfc3339,
    /// Milliseconds since 1970.
    Millis,
}

/// A validated `[rest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestLayout {
    /// Resource paths.
    pub paths: Vec<String>,
    /// JSON path of the record array.
    pub records: String,
    /// Login.
    pub auth: RestAuth,
    /// Paging.
    pub paging: Paging,
    /// Page size.
    pub page_size: u32,
    /// Page size parameter, if one is sent.
    pub size_param: Option<String>,
    /// Incremental pulls: (parameter, format).
    pub since: Option<(String, SinceFormat)>,
}

fn non_empty(path: &str, v: Option<String>, default: &str) -> Result<String, ProfileError> {
    match v {
        None => Ok(default.to_string()),
        Some(s) if s.trim().is_empty() => Err(invalid(path, "kan ikke være tom")),
        Some(s) => Ok(s),
    }
}

impl RawRest {
    /// Checks `[rest]`; errors name `rest.…`.
    pub fn validate(self) -> Result<RestLayout, ProfileError> {
        if self.paths.is_empty() {
            return Err(invalid("rest.paths", "må ha minst én sti"));
        }
        for (i, p) in self.paths.iter().enumerate() {
            if !p.starts_with('/') {
                return Err(invalid(format!("rest.paths[{i}]"), format!("«{p}» må begynne med /")));
            }
        }
        let auth = match self.auth.kind.as_deref().unwrap_or("oauth2") {
            "oauth2" => RestAuth::OAuth2 {
                token_path: non_empty("rest.auth.token_path", self.auth.token_path, "/oauth/token")?,
                scope: self.auth.scope,
            },
            "api-key" => RestAuth::ApiKey {
                header: non_empty("rest.auth.header", self.auth.header, "X-API-Key")?,
            },
            "none" => RestAuth::None,
            other => {
                return Err(invalid(
                    "rest.auth.kind",
                    format!("ukjent verdi «{other}» (gyldige: oauth2, api-key, none)"),
                ));
            }
        };
        let pg = self.paging;
        let need = |path: &str, v: Option<String>, style: &str| match v {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(invalid(path, format!("mangler (kreves for style = \"{style}\")"))),
        };
        let paging = match pg.style.as_deref().unwrap_or("offset") {
            "offset" => Paging::Offset {
                param: non_empty("rest.paging.offset_param", pg.offset_param, "offset")?,
            },
            "page" => Paging::Page {
                param: non_empty("rest.paging.page_param", pg.page_param, "page")?,
                first: pg.first_page.unwrap_or(1),
            },
            "next-link" => Paging::NextLink {
                path: need("rest.paging.next", pg.next, "next-link")?,
            },
            "cursor" => Paging::Cursor {
                path: need("rest.paging.cursor", pg.cursor, "cursor")?,
                param: non_empty("rest.paging.cursor_param", pg.cursor_param, "cursor")?,
            },
            other => {
                return Err(invalid(
                    "rest.paging.style",
                    format!("ukjent verdi «{other}» (gyldige: offset, page, next-link, cursor)"),
                ));
            }
        };
        let page_size = pg.size.unwrap_or(500);
        if !(1..=10_000).contains(&page_size) {
            return Err(invalid("rest.paging.size", "må være mellom 1 og 10000"));
        }
        let size_param = match non_empty("rest.paging.size_param", pg.size_param, "limit")? {
            s if s == "none" => None,
            s => Some(s),
        };
        let since = match self.since {
            None => None,
            Some(s) => {
                if s.param.trim().is_empty() {
                    return Err(invalid("rest.since.param", "kan ikke være tom"));
                }
                let format = match s.format.as_deref().unwrap_or("rfc3339") {
                    "rfc3339" => SinceFormat::Rfc3339,
                    "millis" => SinceFormat::Millis,
                    other => {
                        return Err(invalid(
                            "rest.since.format",
                            format!("ukjent verdi «{other}» (gyldige: rfc3339, millis)"),
                        ));
                    }
                };
                Some((s.param, format))
            }
        };
        Ok(RestLayout {
            paths: self.paths,
            records: self.records.unwrap_or_default(),
            auth,
            paging,
            page_size,
            size_param,
            since,
        })
    }
}

/// Maps one page body (sans-IO): the records at the layout's path, through
/// the profile. `location` names the page in quarantine entries.
pub fn map_page(body: &Value, p: &Profile, records_path: &str, location: &str) -> Result<Vec<Parsed>, String> {
    let items = json_at(body, records_path)
        .and_then(Value::as_array)
        .ok_or_else(|| match records_path {
            "" => "svaret er ikke en JSON-liste (profilens rest.records)".to_string(),
            p => format!("svaret har ingen liste på «{p}» (profilens rest.records)"),
        })?;
    Ok(super::map_json_items(items, &p.source, location, |v| {
        map_fields(p, &JsonFields(v))
    }))
}

/// One incremental pull of every path of the profile below `base_url`.
/// Pages are committed as they come; the since mark (the run's start) is
/// saved only after the last one, so a failed run is repeated, not skipped.
pub async fn sync(
    client: &RestClient,
    base_url: &str,
    profile: &Profile,
    store: &Store,
    source_name: &str,
    schools: &crate::config::Schools,
) -> Result<SyncReport, SyncError> {
    let allowed = crate::ingest::Scope::new(profile.source.clone(), schools.clone());
    let layout = profile
        .rest
        .as_ref()
        .ok_or_else(|| SyncError::Protocol(format!("profilen «{}» har ingen [rest]", profile.name)))?;
    let run = timed_run(store, source_name, CURSOR_STREAM).await?;
    let (since, started) = (run.since, run.started);
    // A profile with a version field keeps the source's versions.
    let version = profile.columns.version.is_none().then_some(run.version);
    let mut report = SyncReport {
        from: since,
        to: started,
        ..Default::default()
    };
    let base = base_url.trim_end_matches('/');
    for path in &layout.paths {
        let first_url = format!("{base}{path}");
        let mut url = first_url.clone();
        let mut query: Vec<(&str, String)> = Vec::new();
        if let (Some((param, format)), Some(s)) = (&layout.since, since) {
            query.push((param.as_str(), format_since(s, *format)));
        }
        if let Some(size) = &layout.size_param {
            query.push((size.as_str(), layout.page_size.to_string()));
        }
        let mut offset = 0u64;
        let mut page = match layout.paging {
            Paging::Page { first, .. } => u64::from(first),
            _ => 0,
        };
        let mut seen_marks = std::collections::HashSet::new();
        loop {
            let mut q = query.clone();
            match &layout.paging {
                Paging::Offset { param } => q.push((param.as_str(), offset.to_string())),
                Paging::Page { param, .. } => q.push((param.as_str(), page.to_string())),
                _ => {}
            }
            let resp = client.get_json(&url, &q).await?;
            report.pages += 1;
            let location = match &layout.paging {
                Paging::Offset { param } => format!("{first_url}?{param}={offset}"),
                Paging::Page { param, .. } => format!("{first_url}?{param}={page}"),
                _ => format!("{url}#side{}", report.pages),
            };
            let parsed = map_page(&resp.body, profile, &layout.records, &location)
                .map_err(|m| SyncError::Protocol(format!("{location}: {m}")))?;
            let n = json_at(&resp.body, &layout.records)
                .and_then(Value::as_array)
                .map_or(0, |a| a.len() as u64);
            commit(store, parsed, version, &allowed, &mut report).await?;
            // Without a size parameter the server picks the page size, so only
            // an empty page (or the total) ends the listing.
            let more = n > 0 && (layout.size_param.is_none() || n >= u64::from(layout.page_size));
            match &layout.paging {
                Paging::Offset { .. } | Paging::Page { .. } => {
                    let total = resp
                        .headers
                        .get("x-total-count")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    offset += n;
                    page += 1;
                    if !more || total.is_some_and(|t| offset >= t) {
                        break;
                    }
                }
                Paging::NextLink { path } => {
                    let Some(next) = json_text(json_at(&resp.body, path)) else {
                        break;
                    };
                    let next = reqwest::Url::parse(&url)
                        .and_then(|u| u.join(&next))
                        .map_err(|e| SyncError::Protocol(format!("{location}: neste-lenken «{next}»: {e}")))?
                        .to_string();
                    if !seen_marks.insert(next.clone()) {
                        return Err(SyncError::Protocol(format!(
                            "{location}: neste-lenken «{next}» er allerede hentet"
                        )));
                    }
                    // The next link carries every parameter the server wants.
                    url = next;
                    query.clear();
                }
                Paging::Cursor { path, param } => {
                    let Some(cursor) = json_text(json_at(&resp.body, path)) else {
                        break;
                    };
                    if n == 0 {
                        break;
                    }
                    let cursor = cursor.into_owned();
                    if !seen_marks.insert(cursor.clone()) {
                        return Err(SyncError::Protocol(format!(
                            "{location}: markøren «{cursor}» er allerede brukt"
                        )));
                    }
                    query.retain(|(k, _)| *k != param.as_str());
                    query.push((param.as_str(), cursor));
                }
            }
        }
    }
    if layout.since.is_some() {
        store
            .set_sync_cursor(source_name, CURSOR_STREAM, &started.to_string())
            .await?;
    }
    tracing::info!(source = source_name, pages = report.pages, "vendor-rest sync committed");
    Ok(report)
}

fn format_since(ms: i64, format: SinceFormat) -> String {
    match format {
        SinceFormat::Millis => ms.to_string(),
        SinceFormat::Rfc3339 => chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Kind, Reason, Validity};
    use serde_json::json;

    #[test]
    fn flyt_rest_page_maps_through_the_flyt_tables() {
        let p = Profile::load("flyt-rest").unwrap();
        let body = json!({"data": [
            {"id": "f1", "elev": {"id": "e1"}, "skole": {"id": "s1"}, "dato": "2026-03-02",
             "type": "Dagsfravær", "dokumentasjon": "Dokumentert", "arsak": "sykdom"},
            {"id": "f2", "elev": {"id": "e1"}, "skole": {"id": "s1"}, "dato": "2026-03-03T00:00:00+01:00",
             "type": "Timesfravær", "timer": 2, "dokumentasjon": "Udokumentert", "arsak": "annet"},
            {"id": "f3", "elev": {"id": "e2"}, "skole": {"id": "s1"}, "dato": "2026-03-03",
             "type": "Dagsfravær", "arsak": "influensa"}
        ], "meta": {}});
        let got = map_page(&body, &p, "data", "u").unwrap();
        let Parsed::Record(a) = &got[0] else { panic!("{got:?}") };
        assert_eq!(
            (a.kind, a.validity, a.reason, a.source.as_str()),
            (Kind::Day, Validity::Valid, Some(Reason::Illness), "flyt")
        );
        assert_eq!(a.extensions["source_label"], "Sykdom");
        let Parsed::Record(b) = &got[1] else { panic!() };
        assert_eq!(
            (b.kind, b.lessons, b.date.to_string().as_str()),
            (Kind::Lesson, 2, "2026-03-03")
        );
        let Parsed::Rejected(q) = &got[2] else { panic!() };
        assert!(
            q.code == crate::domain::RejectCode::UnknownCode
                && q.location == "u#2"
                && !q.reason().contains("influensa"),
            "{q:?}"
        );
        assert!(
            map_page(&json!({"x": 1}), &p, "data", "u")
                .unwrap_err()
                .contains("rest.records")
        );
    }

    #[test]
    fn vis_rest_codes_skip_and_delete() {
        let p = Profile::load("vis-rest").unwrap();
        let item = |code: &str, time: u32| json!({"elevnr": "e1", "skolenr": "s1", "dato": "2026-03-03", "time": time, "omfang": "time", "kode": code});
        let got = map_page(&json!([item("M", 2), item("!", 3), item("§", 2)]), &p, "", "u").unwrap();
        assert_eq!(got.len(), 3);
        let (Parsed::Record(m), Parsed::Record(del)) = (&got[0], &got[2]) else {
            panic!("{got:?}")
        };
        assert_eq!(got[1], Parsed::Skipped(crate::adapters::Skip::Presence));
        assert_eq!(m.validity, Validity::Unclassified);
        assert!(del.deleted && del.id == m.id);
    }

    #[test]
    fn rest_errors_name_the_toml_path() {
        let base = "name = \"x\"\nadapter = \"vendor-rest\"\nsource = \"x\"\n[columns]\npupil = \"a\"\nschool = \"b\"\ndate = \"c\"\n";
        let cases = [
            (base.to_string(), "rest"),
            (format!("{base}[rest]\npaths = []\n"), "rest.paths"),
            (format!("{base}[rest]\npaths = [\"x\"]\n"), "rest.paths[0]"),
            (
                format!("{base}[rest]\npaths = [\"/x\"]\n[rest.paging]\nstyle = \"cursor\"\n"),
                "rest.paging.cursor",
            ),
            (
                format!("{base}[rest]\npaths = [\"/x\"]\n[rest.paging]\nstyle = \"next-link\"\n"),
                "rest.paging.next",
            ),
            (
                format!("{base}[rest]\npaths = [\"/x\"]\n[rest.paging]\nstyle = \"scroll\"\n"),
                "rest.paging.style",
            ),
            (
                format!("{base}[rest]\npaths = [\"/x\"]\n[rest.auth]\nkind = \"basic\"\n"),
                "rest.auth.kind",
            ),
            (
                format!("{base}[rest]\npaths = [\"/x\"]\n[rest.since]\nparam = \"s\"\nformat = \"unix\"\n"),
                "rest.since.format",
            ),
            (format!("{base}[rest]\npaths = [\"/x\"]\nwat = 1\n"), "rest"),
        ];
        for (text, path) in cases {
            let err = Profile::from_toml(&text).unwrap_err();
            assert!(err.to_string().starts_with(path), "{path}: {err}");
        }
        let ok = Profile::from_toml(&format!("{base}[rest]\npaths = [\"/x\"]\n")).unwrap();
        let l = ok.rest.unwrap();
        assert_eq!(
            (l.paging, l.page_size, l.size_param.as_deref()),
            (Paging::Offset { param: "offset".into() }, 500, Some("limit"))
        );
    }
}
