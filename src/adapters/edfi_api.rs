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
use super::edfi::{EdfiEvent, EdfiMapping, EventScope};
use super::rest::{RestClient, RestError};
use crate::domain::AbsenceRecord;
use crate::store::{IngestStats, QuarantineEntry, Store, StoreError};
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

/// What went wrong in a sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Talking to the source failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source answered something that is not what the protocol says.
    #[error("{0}")]
    Protocol(String),
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Change version the run started after (`None`: first run).
    pub from: Option<i64>,
    /// Change version the run synced up to (the saved cursor).
    pub to: i64,
    /// Store counts.
    pub stats: IngestStats,
    /// Tombstones among the received records.
    pub deleted: u64,
    /// Pages fetched.
    pub pages: u64,
    /// For a roster source: what the roster held.
    pub roster: Option<super::oneroster::RosterCounts>,
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
    EdfiEvent {
        scope,
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
        duration: None,
        attendance_minutes: None,
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
                extensions: Default::default(),
            }),
            _ => Parsed::Rejected(QuarantineEntry {
                source: Some(m.source.clone()),
                location: format!("{location}#{i}"),
                reason: "sletting uten keyValues (studentUniqueId, eventDate …)".into(),
                raw: v.to_string(),
            }),
        })
        .collect()
}

/// Commits one page of parsed items, the records at `version` when given
/// (else at their own), and counts them into `report`.
pub(crate) async fn commit(
    store: &Store,
    items: Vec<Parsed>,
    version: Option<u32>,
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    let mut records = Vec::new();
    let mut rejected = Vec::new();
    for p in items {
        match p {
            Parsed::Record(r) => {
                report.deleted += u64::from(r.deleted);
                records.push(match version {
                    Some(version) => AbsenceRecord {
                        version: version.into(),
                        ..r
                    },
                    None => r,
                });
            }
            Parsed::Rejected(q) => rejected.push(q),
        }
    }
    report.stats.add(store.ingest(&records, &rejected).await?);
    Ok(())
}

/// A run of a source whose cursor is the start time (ms) of the previous
/// complete run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimedRun {
    /// The saved mark: the previous run's start.
    pub since: Option<i64>,
    /// This run's start, saved as the mark when it completes.
    pub started: i64,
    /// The version this run's records get: sources without versions still
    /// need a later run's records to replace an earlier run's.
    pub version: u32,
}

/// Reads the mark of `source_name`'s `stream` and starts a timed run.
pub(crate) async fn timed_run(store: &Store, source_name: &str, stream: &str) -> Result<TimedRun, SyncError> {
    let since = match store.sync_cursor(source_name, stream).await? {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| SyncError::Protocol(format!("lagret markør «{c}» er ikke et tall")))?,
        ),
    };
    let started = chrono::Utc::now().timestamp_millis();
    // On the clock of file imports (unix seconds, see
    // adapters::version_stamp_at), kept above the previous run's even when
    // both start within the same second.
    let run = (started / 1000).max(since.map_or(1, |s| s / 1000 + 1));
    Ok(TimedRun {
        since,
        started,
        version: u32::try_from(run.max(1)).unwrap_or(u32::MAX),
    })
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
) -> Result<SyncReport, SyncError> {
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
                commit(store, parsed, None, &mut report).await?;
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
