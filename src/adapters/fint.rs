//! `fint`: FINT `utdanning/vurdering` fravarsregistrering as HAL JSON
//! (`_embedded._entries`, `_links`), mapped by a profile's Fravarstype table.
//!
//! A registration covers a period (`periode.start`–`periode.slutt`): a whole
//! school day (six hours or more, or spanning days) is a day of absence,
//! anything shorter counts whole 45-minute lessons, at least one.

use super::Parsed;
use super::profile::{CodeAction, Profile};
use crate::domain::{AbsenceRecord, Kind, Validity};
use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};

/// Minutes in one lesson when counting lessons from a period.
const LESSON_MINUTES: i64 = 45;

/// The last path segment of the first `_links.{rel}` href: FINT links end in
/// `/{idfield}/{value}`.
fn link_id<'a>(v: &'a Value, rel: &str) -> Option<&'a str> {
    v.get("_links")?
        .get(rel)?
        .as_array()?
        .first()?
        .get("href")?
        .as_str()?
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
}

fn parse_time(s: &str) -> Option<NaiveDateTime> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&chrono_tz::Europe::Oslo).naive_local())
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok())
}

/// Maps one fravarsregistrering; `Ok(None)` when its code means "not absence".
pub fn map_registration(v: &Value, p: &Profile) -> Result<Option<AbsenceRecord>, String> {
    let id = v
        .pointer("/systemId/identifikatorverdi")
        .and_then(Value::as_str)
        .ok_or("systemId.identifikatorverdi mangler")?;
    let code_value = link_id(v, "fravarstype").ok_or("_links.fravarstype mangler")?;
    let code = p
        .codes
        .get(code_value)
        .ok_or_else(|| format!("Fravarstype «{code_value}» finnes ikke i profilens [codes]"))?;
    if code.action == CodeAction::Skip {
        return Ok(None);
    }
    let pupil = link_id(v, "elevforhold")
        .or_else(|| link_id(v, "elev"))
        .ok_or("_links.elevforhold mangler")?;
    let school = link_id(v, "skole").ok_or("_links.skole mangler")?;
    let start_text = v
        .pointer("/periode/start")
        .and_then(Value::as_str)
        .ok_or("periode.start mangler")?;
    let start = parse_time(start_text).ok_or_else(|| format!("periode.start «{start_text}» er ikke et tidspunkt"))?;
    let end = match v.pointer("/periode/slutt").and_then(Value::as_str) {
        None => None,
        Some(t) => Some(parse_time(t).ok_or_else(|| format!("periode.slutt «{t}» er ikke et tidspunkt"))?),
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
    let mut extensions = Map::new();
    extensions.insert("source_code".into(), Value::String(code_value.to_string()));
    if let Some(l) = &code.label {
        extensions.insert("source_label".into(), Value::String(l.clone()));
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
        extensions,
    }))
}

/// The entries of a HAL page (`_embedded._entries`), or a bare array.
pub fn entries(page: &Value) -> Option<&Vec<Value>> {
    page.pointer("/_embedded/_entries")
        .and_then(Value::as_array)
        .or_else(|| page.as_array())
}

/// Maps one page (sans-IO); `location` names it in quarantine entries.
/// Records get version 1; pulls raise it (see [`sync`]).
pub fn map_page(page: &Value, p: &Profile, location: &str) -> Result<Vec<Parsed>, String> {
    let items = entries(page).ok_or("svaret har verken _embedded._entries eller en liste")?;
    Ok(super::map_json_items(items, &p.source, location, |v| {
        map_registration(v, p)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg(id: &str, code: &str, start: &str, end: &str, diploma: Value) -> Value {
        json!({
            "systemId": {"identifikatorverdi": id},
            "periode": {"start": start, "slutt": end},
            "foresPaVitnemal": diploma,
            "kommentar": "Hos psykolog",
            "_links": {
                "self": [{"href": format!("https://api.felleskomponent.no/utdanning/vurdering/fravarsregistrering/systemid/{id}")}],
                "elevforhold": [{"href": "https://api.felleskomponent.no/utdanning/elev/elevforhold/systemid/EF-77"}],
                "skole": [{"href": "https://api.felleskomponent.no/utdanning/utdanningsprogram/skole/skolenummer/4321"}],
                "fravarstype": [{"href": format!("https://api.felleskomponent.no/utdanning/kodeverk/fravarstype/systemid/{code}")}]
            }
        })
    }

    #[test]
    fn hal_page_maps_through_the_fravarstype_table() {
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
        let page = json!({"_embedded": {"_entries": [
            reg("1", "S", "2026-03-02T08:00:00+01:00", "2026-03-02T15:00:00+01:00", json!(false)),
            reg("2", "F", "2026-03-03T08:15:00+01:00", "2026-03-03T09:45:00+01:00", json!(true)),
            reg("3", "A", "2026-03-04T08:15:00+01:00", "2026-03-04T09:00:00+01:00", json!(false)),
            reg("4", "Z", "2026-03-05T08:15:00+01:00", "2026-03-05T09:00:00+01:00", json!(false)),
            spelt,
        ]}, "_links": {"self": [{"href": "x"}]}, "total_items": 5, "offset": 0, "size": 5});
        let got = map_page(&page, &p, "fint").unwrap();
        assert_eq!(got.len(), 4);
        let Parsed::Record(a) = &got[0] else { panic!() };
        assert_eq!(
            (a.kind, a.validity, a.pupil.as_str(), a.school.as_str()),
            (Kind::Day, Validity::Valid, "EF-77", "4321")
        );
        assert_eq!(a.extensions["source_label"], "Sykdom");
        let Parsed::Record(b) = &got[1] else { panic!() };
        assert_eq!((b.kind, b.lessons, b.validity), (Kind::Lesson, 2, Validity::Invalid));
        let Parsed::Rejected(q) = &got[2] else { panic!() };
        assert!(q.reason.contains("«Z»") && q.location == "fint#3", "{q:?}");
        let Parsed::Record(e) = &got[3] else { panic!() };
        assert_eq!((e.lessons, e.validity), (1, Validity::Invalid));
        assert!(!a.to_json_line().contains("psykolog"));
    }
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

/// One incremental pull: size/offset paging, `sinceTimeStamp` from the saved
/// cursor. The cursor (the time the run started, in ms) is saved only after
/// every page is committed, so changes made during the run are fetched again
/// next time rather than missed.
pub async fn sync(
    client: &super::rest::RestClient,
    settings: &FintSettings,
    profile: &Profile,
    store: &crate::store::Store,
    source_name: &str,
) -> Result<super::edfi_api::SyncReport, super::edfi_api::SyncError> {
    use super::edfi_api::{SyncError, SyncReport, commit, timed_run};
    let run = timed_run(store, source_name, CURSOR_STREAM).await?;
    let (since, started) = (run.since, run.started);
    let mut report = SyncReport {
        from: since,
        to: started,
        ..Default::default()
    };
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
        let parsed = map_page(&page, profile, &location).map_err(SyncError::Protocol)?;
        // FINT has no versions; what a later run fetches has changed since
        // the earlier one, so it must win.
        commit(store, parsed, Some(run.version), &mut report).await?;
        offset += n;
        let total = page.get("total_items").and_then(Value::as_u64);
        if n == 0 || n < u64::from(settings.page_size) || total.is_some_and(|t| offset >= t) {
            break;
        }
    }
    store
        .set_sync_cursor(source_name, CURSOR_STREAM, &started.to_string())
        .await?;
    tracing::info!(source = source_name, pages = report.pages, "fint sync committed");
    Ok(report)
}
