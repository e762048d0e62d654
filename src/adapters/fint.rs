//! `fint`: FINT `utdanning/vurdering` fravarsregistrering as HAL JSON
//! (`_embedded._entries`, `_links`), mapped by a profile's Fravarstype table.
//!
//! Follows FINT's information model 3.21 (FINTLabs' `fint-information-model`,
//! `Fravarsregistrering` and `Elevfravar` in utdanning/vurdering): a
//! registration links `fravarstype`, `elevfravar`, `faggruppe`,
//! `undervisningsgruppe` and `registrertAv`, but not the pupil. The pupil is
//! reached through `Elevfravar` → `elevforhold`, and the school through the
//! `Elevforhold`'s `skole`. The pull fetches those resources once each
//! ([`Related`]); the file adapter reads them from a dump of the collections.
//!
//! A registration covers a period (`periode.start`–`periode.slutt`): a whole
//! school day (six hours or more, or spanning days) is a day of absence,
//! anything shorter counts whole 45-minute lessons, at least one. The
//! subject is the `fag` of the registration's `Faggruppe`.

use super::Parsed;
use super::profile::{CodeAction, Profile};
use crate::domain::{AbsenceRecord, Fault, Kind, RejectCode, Validity};
use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The FINT information model version the mapping follows.
pub const MODEL_VERSION: &str = "3.21";

/// Minutes in one lesson when counting lessons from a period.
const LESSON_MINUTES: i64 = 45;

/// The first `_links.{rel}` href.
fn link_href<'a>(v: &'a Value, rel: &str) -> Option<&'a str> {
    v.get("_links")?
        .get(rel)?
        .as_array()?
        .first()?
        .get("href")?
        .as_str()
        .filter(|s| !s.trim().is_empty())
}

/// The last path segment of the first `_links.{rel}` href: FINT links end in
/// `/{idfield}/{value}`.
fn link_id<'a>(v: &'a Value, rel: &str) -> Option<&'a str> {
    last_segment(link_href(v, rel)?)
}

fn last_segment(href: &str) -> Option<&str> {
    href.trim_end_matches('/').rsplit('/').next().filter(|s| !s.is_empty())
}

/// The path of a link (`/utdanning/vurdering/elevfravar/systemid/X`): the
/// key of a related resource, whatever host a link or a dump names.
pub fn link_path(href: &str) -> &str {
    let rest = href.split_once("://").map_or(href, |(_, rest)| rest);
    let path = match rest.find('/') {
        Some(i) if href.contains("://") => &rest[i..],
        Some(_) => rest,
        None => "/",
    };
    path.trim_end_matches('/')
}

/// The resources a page of registrations links to (Elevfravar,
/// Elevforhold, Faggruppe), by link path: filled by the pull or from a dump.
#[derive(Debug, Clone, Default)]
pub struct Related {
    resources: HashMap<String, Value>,
}

impl Related {
    /// Adds a resource fetched from (or dumped for) `href`.
    pub fn insert(&mut self, href: &str, resource: Value) {
        self.resources.insert(link_path(href).to_string(), resource);
    }

    /// Adds each entry of a HAL collection page under its `_links.self` hrefs.
    pub fn insert_page(&mut self, page: &Value) {
        for entry in entries(page).into_iter().flatten() {
            let selves = entry
                .pointer("/_links/self")
                .and_then(Value::as_array)
                .map(|s| s.iter().filter_map(|l| l.get("href")?.as_str()).collect::<Vec<_>>())
                .unwrap_or_default();
            for href in selves {
                self.insert(href, entry.clone());
            }
        }
    }

    /// The resource at `href`, if known.
    pub fn get(&self, href: &str) -> Option<&Value> {
        self.resources.get(link_path(href))
    }

    /// How many resources are known.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether none are known.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// The hrefs the registrations of `page` need and that are not known
    /// yet: their Elevfravar and Faggruppe, and the Elevforhold of every
    /// Elevfravar already known. Fetching them and asking again reaches
    /// everything in two rounds.
    pub fn wanted(&self, page: &Value) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut want = |href: &str| {
            if self.get(href).is_none() && !out.iter().any(|h| link_path(h) == link_path(href)) {
                out.push(href.to_string());
            }
        };
        for v in entries(page).into_iter().flatten() {
            for rel in ["elevfravar", "faggruppe"] {
                if let Some(href) = link_href(v, rel) {
                    want(href);
                }
            }
            if let Some(elevforhold) = link_href(v, "elevfravar")
                .and_then(|href| self.get(href))
                .and_then(|ef| link_href(ef, "elevforhold"))
            {
                want(elevforhold);
            }
        }
        out
    }
}

fn parse_time(s: &str) -> Option<NaiveDateTime> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&chrono_tz::Europe::Oslo).naive_local())
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok())
        // Four-digit years only (chrono's %Y also takes "-6" and "+12345").
        .filter(|t| (0..=9999).contains(&chrono::Datelike::year(t)))
}

/// Maps one fravarsregistrering with the resources it links to; `Ok(None)`
/// when its code means "not absence".
pub fn map_registration(v: &Value, p: &Profile, related: &Related) -> Result<Option<AbsenceRecord>, Fault> {
    let missing = |field: &str| Fault::new(RejectCode::MissingField, field);
    let id = v
        .pointer("/systemId/identifikatorverdi")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("systemId.identifikatorverdi"))?;
    let code_value = link_id(v, "fravarstype").ok_or_else(|| missing("_links.fravarstype"))?;
    let code = p.codes.get(code_value).ok_or_else(|| {
        Fault::new(RejectCode::UnknownCode, "_links.fravarstype").with_limit("ikke i profilens [codes]")
    })?;
    if code.action == CodeAction::Skip {
        return Ok(None);
    }
    let elevfravar_href = link_href(v, "elevfravar").ok_or_else(|| missing("_links.elevfravar"))?;
    // A link to a resource the page did not bring is as good as missing.
    let elevfravar = related
        .get(elevfravar_href)
        .ok_or_else(|| missing("_links.elevfravar").with_limit("ressursen ble ikke funnet"))?;
    let elevforhold_href =
        link_href(elevfravar, "elevforhold").ok_or_else(|| missing("elevfravar._links.elevforhold"))?;
    let pupil = last_segment(elevforhold_href).ok_or_else(|| missing("elevfravar._links.elevforhold"))?;
    let elevforhold = related
        .get(elevforhold_href)
        .ok_or_else(|| missing("elevfravar._links.elevforhold").with_limit("ressursen ble ikke funnet"))?;
    let school = link_id(elevforhold, "skole").ok_or_else(|| missing("elevforhold._links.skole"))?;
    let start_text = v
        .pointer("/periode/start")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("periode.start"))?;
    let start = parse_time(start_text).ok_or_else(|| Fault::new(RejectCode::BadDate, "periode.start"))?;
    let end = match v.pointer("/periode/slutt").and_then(Value::as_str) {
        None => None,
        Some(t) => Some(parse_time(t).ok_or_else(|| Fault::new(RejectCode::BadDate, "periode.slutt"))?),
    };
    // Both spellings occur in FINT models.
    let on_diploma = v
        .get("foresPaVitnemal")
        .or_else(|| v.get("føresPåVitnemål"))
        .and_then(Value::as_bool);
    let (kind, lessons) = match end {
        Some(end) if end.date() == start.date() && (end - start).num_minutes() < 6 * 60 => {
            let minutes = (end - start).num_minutes().max(0);
            (
                Kind::Lesson,
                ((minutes + LESSON_MINUTES / 2) / LESSON_MINUTES).max(1) as u32,
            )
        }
        _ => (Kind::Day, 1),
    };
    let kind = code.kind.unwrap_or(kind);
    let validity = code.validity.unwrap_or(match on_diploma {
        Some(true) => Validity::Invalid,
        Some(false) => Validity::Valid,
        None => Validity::Unclassified,
    });
    // The subject: the Faggruppe's fag, else the group's own name.
    let subject = link_href(v, "faggruppe")
        .and_then(|href| related.get(href))
        .and_then(|fg| {
            link_id(fg, "fag")
                .map(str::to_string)
                .or_else(|| fg.get("navn").and_then(Value::as_str).map(str::to_string))
        })
        .filter(|s| !s.trim().is_empty());
    let mut extensions = Map::new();
    extensions.insert("source_code".into(), Value::String(code_value.to_string()));
    if let Some(l) = &code.label {
        extensions.insert("source_label".into(), Value::String(l.clone()));
    }
    if let Some(group) = link_id(v, "undervisningsgruppe") {
        extensions.insert("undervisningsgruppe".into(), Value::String(group.to_string()));
    }
    Ok(Some(AbsenceRecord {
        source: p.source.clone(),
        id: id.to_string(),
        version: 1,
        pupil: pupil.to_string(),
        school: school.to_string(),
        date: start.date(),
        kind,
        lessons: if kind == Kind::Lesson { lessons } else { 1 },
        minutes: None,
        validity,
        reason: code.reason,
        deleted: code.action == CodeAction::Delete,
        subject,
        period: None,
        extensions,
    }))
}

/// The entries of a HAL page (`_embedded._entries`), or a bare array.
pub fn entries(page: &Value) -> Option<&Vec<Value>> {
    page.pointer("/_embedded/_entries")
        .and_then(Value::as_array)
        .or_else(|| page.as_array())
}

/// Maps one page (sans-IO) with the resources it links to; `location`
/// names it in rejections. Records get version 1; pulls raise it (see [`sync`]).
pub fn map_page(page: &Value, p: &Profile, location: &str, related: &Related) -> Result<Vec<Parsed>, String> {
    let items = entries(page).ok_or("svaret har verken _embedded._entries eller en liste")?;
    Ok(super::map_json_items(items, &p.source, location, |v| {
        map_registration(v, p, related)
    }))
}

/// Maps a file: one HAL page of registrations, or a dump of the
/// collections the pull reads (`{"fravarsregistrering": page, "elevfravar":
/// page, "elevforhold": page, "faggruppe": page}`).
pub fn map_file(doc: &Value, p: &Profile, location: &str) -> Result<Vec<Parsed>, String> {
    let mut related = Related::default();
    let page = match doc.get("fravarsregistrering") {
        Some(page) => {
            for name in ["elevfravar", "elevforhold", "faggruppe"] {
                if let Some(collection) = doc.get(name) {
                    related.insert_page(collection);
                }
            }
            page
        }
        None => doc,
    };
    map_page(page, p, location, &related)
}

/// The stream name of FINT's `sinceTimeStamp` cursor.
pub const CURSOR_STREAM: &str = "since-timestamp";

/// Where a FINT resource lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FintSettings {
    /// The resource URL, e.g. `https://api.felleskomponent.no/utdanning/vurdering/fravarsregistrering`.
    pub resource_url: String,
    /// Entries per page (`size`).
    pub page_size: u32,
}

/// The URL a link is fetched from: the link's path on the configured
/// server (FINT links name the public API host; a tenant may be reached
/// through another address).
fn follow(resource_url: &str, href: &str) -> String {
    let base = match resource_url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => String::new(),
    };
    format!("{base}{}", link_path(href))
}

/// One incremental pull: size/offset paging, `sinceTimeStamp` from the saved
/// cursor. Each page's Elevfravar, Elevforhold and Faggruppe resources are
/// fetched once per run (a pupil's Elevfravar is shared by all their
/// registrations). The cursor (the time the run started, in ms) is saved
/// only after every page is committed, so changes made during the run are
/// fetched again next time rather than missed.
pub async fn sync(
    client: &super::rest::RestClient,
    settings: &FintSettings,
    profile: &Profile,
    store: &crate::store::Store,
    source_name: &str,
    schools: &crate::config::Schools,
) -> Result<super::pull::SyncReport, super::pull::SyncError> {
    let allowed = crate::ingest::Scope::new(profile.source.clone(), schools.clone());
    use super::pull::{SyncError, SyncReport, commit, timed_run};
    let run = timed_run(store, source_name, CURSOR_STREAM).await?;
    let (since, started) = (run.since, run.started);
    let mut report = SyncReport {
        from: since,
        to: started,
        ..Default::default()
    };
    let mut related = Related::default();
    let mut offset = 0u64;
    loop {
        let mut query = vec![("size", settings.page_size.to_string()), ("offset", offset.to_string())];
        if let Some(s) = since {
            query.push(("sinceTimeStamp", s.to_string()));
        }
        let page = client.get_json(&settings.resource_url, &query).await?.body;
        report.pages += 1;
        let location = format!("{}?offset={offset}", settings.resource_url);
        let n = entries(&page)
            .ok_or_else(|| SyncError::Protocol(format!("{location}: verken _embedded._entries eller en liste")))?
            .len() as u64;
        // Two rounds: Elevfravar and Faggruppe, then the Elevforhold they name.
        for _ in 0..2 {
            for href in related.wanted(&page) {
                match client.get_json(&follow(&settings.resource_url, &href), &[]).await {
                    Ok(resp) => related.insert(&href, resp.body),
                    // Gone at the source: the registration is rejected, naming it.
                    Err(super::rest::RestError::Refused { status: 404 | 410, .. }) => {
                        related.insert(&href, Value::Null);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let parsed = map_page(&page, profile, &location, &related).map_err(SyncError::Protocol)?;
        // FINT has no versions; what a later run fetches has changed since
        // the earlier one, so it must win.
        commit(store, parsed, Some(run.version), &allowed, &mut report).await?;
        offset += n;
        let total = page.get("total_items").and_then(Value::as_u64);
        if n == 0 || n < u64::from(settings.page_size) || total.is_some_and(|t| offset >= t) {
            break;
        }
    }
    store
        .set_sync_cursor(source_name, CURSOR_STREAM, &started.to_string())
        .await?;
    tracing::info!(
        source = source_name,
        pages = report.pages,
        related = related.len(),
        "fint sync committed"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const API: &str = "https://api.felleskomponent.no";

    fn reg(id: &str, code: &str, start: &str, end: &str, diploma: Value) -> Value {
        json!({
            "systemId": {"identifikatorverdi": id},
            "periode": {"start": start, "slutt": end},
            "foresPaVitnemal": diploma,
            "kommentar": "Hos psykolog",
            "_links": {
                "self": [{"href": format!("{API}/utdanning/vurdering/fravarsregistrering/systemid/{id}")}],
                "elevfravar": [{"href": format!("{API}/utdanning/vurdering/elevfravar/systemid/EFR-77")}],
                "faggruppe": [{"href": format!("{API}/utdanning/timeplan/faggruppe/systemid/MAT-8A")}],
                "undervisningsgruppe": [{"href": format!("{API}/utdanning/timeplan/undervisningsgruppe/systemid/8A-MAT")}],
                "registrertAv": [{"href": format!("{API}/utdanning/elev/skoleressurs/systemid/L1")}],
                "fravarstype": [{"href": format!("{API}/utdanning/kodeverk/fravarstype/systemid/{code}")}]
            }
        })
    }

    /// The related resources as the model has them.
    fn related() -> Related {
        let mut r = Related::default();
        r.insert(
            &format!("{API}/utdanning/vurdering/elevfravar/systemid/EFR-77"),
            json!({"systemId": {"identifikatorverdi": "EFR-77"}, "_links": {
                "elevforhold": [{"href": format!("{API}/utdanning/elev/elevforhold/systemid/EF-77")}],
                "fravarsregistrering": [{"href": format!("{API}/utdanning/vurdering/fravarsregistrering/systemid/1")}]
            }}),
        );
        r.insert(
            "http://other.example:8080/utdanning/elev/elevforhold/systemid/EF-77/",
            json!({"systemId": {"identifikatorverdi": "EF-77"}, "_links": {
                "skole": [{"href": format!("{API}/utdanning/utdanningsprogram/skole/skolenummer/4321")}]
            }}),
        );
        r.insert(
            &format!("{API}/utdanning/timeplan/faggruppe/systemid/MAT-8A"),
            json!({"navn": "Matematikk 8A", "_links": {"fag": [{"href": format!("{API}/utdanning/timeplan/fag/systemid/MAT0010")}]}}),
        );
        r
    }

    #[test]
    fn hal_page_maps_through_elevfravar_and_the_fravarstype_table() {
        let p = Profile::load("fint").unwrap();
        let mut spelt = reg(
            "5",
            "F",
            "2026-03-06T08:15:00+01:00",
            "2026-03-06T09:00:00+01:00",
            Value::Null,
        );
        spelt.as_object_mut().unwrap().remove("foresPaVitnemal");
        spelt["føresPåVitnemål"] = json!(true);
        let mut lost = reg(
            "6",
            "S",
            "2026-03-06T08:15:00+01:00",
            "2026-03-06T09:00:00+01:00",
            json!(false),
        );
        lost["_links"]["elevfravar"][0]["href"] = json!(format!("{API}/utdanning/vurdering/elevfravar/systemid/GONE"));
        let page = json!({"_embedded": {"_entries": [
            reg("1", "S", "2026-03-02T08:00:00+01:00", "2026-03-02T15:00:00+01:00", json!(false)),
            reg("2", "F", "2026-03-03T08:15:00+01:00", "2026-03-03T09:45:00+01:00", json!(true)),
            reg("3", "A", "2026-03-04T08:15:00+01:00", "2026-03-04T09:00:00+01:00", json!(false)),
            reg("4", "Z", "2026-03-05T08:15:00+01:00", "2026-03-05T09:00:00+01:00", json!(false)),
            spelt,
            lost,
        ]}, "_links": {"self": [{"href": "x"}]}, "total_items": 6, "offset": 0, "size": 6});
        let related = related();
        let got = map_page(&page, &p, "fint", &related).unwrap();
        assert_eq!(got.len(), 6);
        let Parsed::Record(a) = &got[0] else {
            panic!("{:?}", got[0])
        };
        assert_eq!(
            (a.kind, a.validity, a.pupil.as_str(), a.school.as_str()),
            (Kind::Day, Validity::Valid, "EF-77", "4321")
        );
        assert_eq!(a.subject.as_deref(), Some("MAT0010"));
        assert_eq!(a.extensions["source_label"], "Sykdom");
        assert_eq!(a.extensions["undervisningsgruppe"], "8A-MAT");
        let Parsed::Record(b) = &got[1] else { panic!() };
        assert_eq!((b.kind, b.lessons, b.validity), (Kind::Lesson, 2, Validity::Invalid));
        assert_eq!(got[2], Parsed::Skipped(crate::adapters::Skip::Presence));
        let Parsed::Rejected(q) = &got[3] else { panic!() };
        assert!(
            q.code == RejectCode::UnknownCode && q.location == "fint#3" && !q.reason().contains("«Z»"),
            "{q:?}"
        );
        let Parsed::Record(e) = &got[4] else { panic!() };
        assert_eq!((e.lessons, e.validity), (1, Validity::Invalid));
        let Parsed::Rejected(q) = &got[5] else { panic!() };
        assert_eq!(
            (q.code, q.field.as_deref()),
            (RejectCode::MissingField, Some("_links.elevfravar")),
            "{q:?}"
        );
        assert!(!q.reason().contains("GONE"), "{q:?}");
        assert!(!a.to_json_line().contains("psykolog"));
    }

    #[test]
    fn what_is_wanted_comes_in_two_rounds() {
        let page = json!([reg(
            "1",
            "S",
            "2026-03-02T08:00:00+01:00",
            "2026-03-02T15:00:00+01:00",
            json!(false)
        )]);
        let mut r = Related::default();
        assert_eq!(
            r.wanted(&page),
            [
                format!("{API}/utdanning/vurdering/elevfravar/systemid/EFR-77"),
                format!("{API}/utdanning/timeplan/faggruppe/systemid/MAT-8A")
            ]
        );
        let all = related();
        for href in r.wanted(&page) {
            r.insert(&href, all.get(&href).unwrap().clone());
        }
        assert_eq!(
            r.wanted(&page),
            [format!("{API}/utdanning/elev/elevforhold/systemid/EF-77")]
        );
        r.insert(
            &r.wanted(&page)[0].clone(),
            all.get("/utdanning/elev/elevforhold/systemid/EF-77").unwrap().clone(),
        );
        assert!(r.wanted(&page).is_empty());
        assert_eq!(
            follow(
                "http://127.0.0.1:9/utdanning/vurdering/fravarsregistrering",
                &format!("{API}/a/b")
            ),
            "http://127.0.0.1:9/a/b"
        );
    }
}
