//! `edfi-api`: pulls attendance events from an Ed-Fi ODS/API (v5 and later).
//!
//! One run: read the saved change version, ask the server for its newest
//! (`/changeQueries/v1/availableChangeVersions`), then page (offset/limit,
//! `totalCount`) through `studentSchoolAttendanceEvents` and
//! `studentSectionAttendanceEvents` and their `/deletes` within
//! `minChangeVersion..=maxChangeVersion`. Every page is committed as it
//! arrives; the cursor is saved only after the whole window is committed, so
//! a failed run is simply repeated (the upsert is idempotent).

use super::Parsed;
use super::Rejected;
use super::edfi::{EdfiEvent, EdfiMapping, EventScope};
use super::pull::commit;
pub use super::pull::{SyncError, SyncReport};
use super::rest::RestClient;
use crate::domain::AbsenceRecord;
use crate::store::Store;
use serde_json::Value;

/// The two attendance resources: (path below the data URL, scope).
pub const RESOURCES: [(&str, EventScope); 2] = [
    ("ed-fi/studentSchoolAttendanceEvents", EventScope::School),
    ("ed-fi/studentSectionAttendanceEvents", EventScope::Section),
];

/// The stream name of the change-version cursor.
pub const CURSOR_STREAM: &str = "change-version";

/// Where the ODS/API lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdfiApiSettings {
    /// Base URL of the data API, e.g. `https://ods.example/data/v3`.
    pub data_url: String,
    /// URL of the change queries API, e.g. `https://ods.example/changeQueries/v1`.
    pub change_queries_url: String,
    /// Items per page.
    pub page_size: u32,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads an event from the API's JSON.
pub fn event_from_json(v: &Value, scope: EventScope) -> EdfiEvent {
    let session = v.get("sessionReference");
    let section = v.get("sectionReference");
    let school_ref = v.get("schoolReference");
    let pick = |name: &str| {
        text(school_ref.and_then(|s| s.get(name)))
            .or_else(|| text(section.and_then(|s| s.get(name))))
            .or_else(|| text(session.and_then(|s| s.get(name))))
    };
    let course = text(section.and_then(|s| s.get("localCourseCode")));
    // DS 5 section events list their class periods; the first names the lesson.
    let class_period = v
        .get("classPeriods")
        .and_then(Value::as_array)
        .and_then(|periods| periods.first())
        .and_then(|p| text(p.pointer("/classPeriodReference/classPeriodName")));
    EdfiEvent {
        scope,
        course,
        class_period,
        arrival: text(v.get("arrivalTime")),
        departure: text(v.get("departureTime")),
        student: text(v.get("studentReference").and_then(|s| s.get("studentUniqueId"))),
        school: pick("schoolId"),
        school_year: text(session.and_then(|s| s.get("schoolYear"))).or_else(|| pick("schoolYear")),
        session: text(session.and_then(|s| s.get("sessionName"))).or_else(|| pick("sessionName")),
        date: text(v.get("eventDate")),
        category: text(v.get("attendanceEventCategoryDescriptor")),
        section: section.and_then(|s| {
            let id = text(s.get("sectionIdentifier"))?;
            Some(match text(s.get("localCourseCode")) {
                Some(course) => format!("{course}/{id}"),
                None => id,
            })
        }),
        duration: text(v.get("eventDuration")),
        attendance_minutes: text(v.get("schoolAttendanceDuration"))
            .or_else(|| text(v.get("sectionAttendanceDuration"))),
    }
}

/// Reads a `/deletes` entry (with `keyValues`, as the ODS/API returns them)
/// into the same natural key the live event had.
pub fn deleted_event_from_json(v: &Value, scope: EventScope) -> Option<EdfiEvent> {
    let k = v.get("keyValues")?;
    let section = text(k.get("sectionIdentifier")).map(|id| match text(k.get("localCourseCode")) {
        Some(course) => format!("{course}/{id}"),
        None => id,
    });
    Some(EdfiEvent {
        scope,
        student: text(k.get("studentUniqueId")),
        school: text(k.get("schoolId")),
        school_year: text(k.get("schoolYear")),
        session: text(k.get("sessionName")),
        date: text(k.get("eventDate")),
        category: text(k.get("attendanceEventCategoryDescriptor")),
        section: if scope == EventScope::Section { section } else { None },
        ..Default::default()
    })
}

/// Maps one page of resources (sans-IO). `version` is the run's stamp
/// (see `run_version`): later runs carry newer data, so it must rise.
pub fn map_page(items: &[Value], scope: EventScope, m: &EdfiMapping, location: &str, version: u32) -> Vec<Parsed> {
    super::map_json_items(items, &m.source, location, |v| {
        event_from_json(v, scope).to_record(m).map(|r| {
            r.map(|r| AbsenceRecord {
                version: version.into(),
                ..r
            })
        })
    })
}

/// Maps one page of `/deletes` to tombstones (sans-IO), at `version`.
pub fn map_deletes(items: &[Value], scope: EventScope, m: &EdfiMapping, location: &str, version: u32) -> Vec<Parsed> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match deleted_event_from_json(v, scope) {
            Some(e) if e.student.is_some() && e.date.is_some() => Parsed::Record(AbsenceRecord {
                source: m.source.clone(),
                id: e.record_id(),
                version: version.into(),
                pupil: String::new(),
                school: String::new(),
                date: chrono::NaiveDate::MIN,
                kind: crate::domain::Kind::Day,
                lessons: 1,
                minutes: None,
                validity: crate::domain::Validity::Unclassified,
                reason: None,
                deleted: true,
                subject: None,
                period: None,
                extensions: Default::default(),
            }),
            _ => Parsed::Rejected(Rejected::new(
                Some(m.source.clone()),
                format!("{location}#{i}"),
                crate::domain::Fault::new(crate::domain::RejectCode::MissingField, "keyValues"),
                v.to_string(),
            )),
        })
        .collect()
}

/// The stream holding the version an Ed-Fi pull last gave its records.
pub const VERSION_STREAM: &str = "record-version";

/// The version this Ed-Fi pull's records get: the run's start on the clock of
/// file imports (unix seconds), above the previous run's. Change versions
/// order changes inside the ODS but not against files imported into the same
/// source, so they only steer what is fetched. Saved before anything is
/// written, so a failed run's records are never outranked by its retry's
/// stamp going backwards.
async fn run_version(store: &Store, source_name: &str) -> Result<u32, SyncError> {
    let previous = match store.sync_cursor(source_name, VERSION_STREAM).await? {
        None => 0,
        Some(c) => c
            .parse::<u32>()
            .map_err(|_| SyncError::Protocol(format!("lagret versjon «{c}» er ikke et tall")))?,
    };
    let now = crate::adapters::version_stamp_at(std::time::SystemTime::now()).unwrap_or(1);
    let version = now.max(previous.saturating_add(1));
    store
        .set_sync_cursor(source_name, VERSION_STREAM, &version.to_string())
        .await?;
    Ok(version)
}

/// Runs one incremental sync of `source_name` into `store`.
pub async fn sync(
    client: &RestClient,
    settings: &EdfiApiSettings,
    mapping: &EdfiMapping,
    store: &Store,
    source_name: &str,
    schools: &crate::config::Schools,
) -> Result<SyncReport, SyncError> {
    let allowed = crate::ingest::Scope::new(mapping.source.clone(), schools.clone());
    let from = match store.sync_cursor(source_name, CURSOR_STREAM).await? {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| SyncError::Protocol(format!("lagret markør «{c}» er ikke et tall")))?,
        ),
    };
    let versions_url = format!(
        "{}/availableChangeVersions",
        settings.change_queries_url.trim_end_matches('/')
    );
    let versions = client.get_json(&versions_url, &[]).await?.body;
    let newest = versions
        .get("newestChangeVersion")
        .and_then(Value::as_i64)
        .ok_or_else(|| SyncError::Protocol(format!("{versions_url}: newestChangeVersion mangler")))?;
    let mut report = SyncReport {
        from,
        to: from.unwrap_or(-1).max(newest),
        ..Default::default()
    };
    if from.is_some_and(|f| f >= newest) {
        return Ok(report);
    }
    let min = from.map_or(0, |f| f + 1);
    let version = run_version(store, source_name).await?;
    for (resource, scope) in RESOURCES {
        for deletes in [false, true] {
            let url = format!(
                "{}/{resource}{}",
                settings.data_url.trim_end_matches('/'),
                if deletes { "/deletes" } else { "" }
            );
            let mut offset = 0u64;
            let mut total: Option<u64> = None;
            loop {
                let query = [
                    ("offset", offset.to_string()),
                    ("limit", settings.page_size.to_string()),
                    ("totalCount", "true".to_string()),
                    ("minChangeVersion", min.to_string()),
                    ("maxChangeVersion", newest.to_string()),
                ];
                let resp = client.get_json(&url, &query).await?;
                report.pages += 1;
                if total.is_none() {
                    total = resp
                        .headers
                        .get("total-count")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                }
                let items = resp
                    .body
                    .as_array()
                    .ok_or_else(|| SyncError::Protocol(format!("{url}: svaret er ikke en JSON-liste")))?;
                let n = items.len() as u64;
                let location = format!("{url}?offset={offset}");
                let parsed = if deletes {
                    map_deletes(items, scope, mapping, &location, version)
                } else {
                    map_page(items, scope, mapping, &location, version)
                };
                commit(store, parsed, None, &allowed, &mut report).await?;
                offset += n;
                let done = n == 0 || n < u64::from(settings.page_size) || total.is_some_and(|t| offset >= t);
                if done {
                    break;
                }
            }
            if let Some(t) = total
                && offset < t
            {
                return Err(SyncError::Protocol(format!(
                    "{url}: totalCount var {t}, men bare {offset} kom"
                )));
            }
        }
    }
    store
        .set_sync_cursor(source_name, CURSOR_STREAM, &newest.to_string())
        .await?;
    tracing::info!(source = source_name, from = ?from, to = newest, pages = report.pages, "sync committed");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_xml_give_the_same_id_and_deletes_match_it() {
        let live = json!({
            "id": "abc",
            "attendanceEventCategoryDescriptor": "uri://ed-fi.org/AttendanceEventCategoryDescriptor#Tardy",
            "eventDate": "2026-03-04",
            "schoolAttendanceDuration": 9,
            "studentReference": {"studentUniqueId": "604822"},
            "schoolReference": {"schoolId": 255901001},
            "sessionReference": {"schoolId": 255901001, "schoolYear": 2026, "sessionName": "2025-2026 Høst"}
        });
        let m = EdfiMapping::default();
        let rec = match &map_page(&[live], EventScope::School, &m, "u", 3)[0] {
            Parsed::Record(r) => r.clone(),
            p => panic!("{p:?}"),
        };
        assert_eq!((rec.minutes, rec.school.as_str()), (Some(9), "255901001"));
        let del = json!({"id": "abc", "changeVersion": 12, "keyValues": {
            "attendanceEventCategoryDescriptor": "uri://ed-fi.org/AttendanceEventCategoryDescriptor#Tardy",
            "eventDate": "2026-03-04", "schoolId": 255901001, "schoolYear": 2026,
            "sessionName": "2025-2026 Høst", "studentUniqueId": "604822"}});
        let Parsed::Record(t) = &map_deletes(&[del, json!({"id": "x"})], EventScope::School, &m, "u", 3)[0] else {
            panic!()
        };
        assert!(t.deleted);
        assert_eq!(t.id, rec.id);
        assert!(matches!(
            &map_deletes(&[json!({"id": "x"})], EventScope::School, &m, "u", 3)[0],
            Parsed::Rejected(_)
        ));
    }
}
