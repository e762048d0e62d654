//! `oneroster`: rostering from a OneRoster 1.2 REST service (orgs, classes,
//! users, enrollments) into the store's roster.
//!
//! - schools: orgs of type `school`;
//! - classes (basisgrupper): classes of classType `homeroom`, grade (trinn)
//!   from the class's `grades` (`05` → 5), else from its pupils';
//! - contact teachers: teacher enrollments in a homeroom class (the
//!   `primary` ones when any is marked primary);
//! - pupils: users with the role `student`, placed by their homeroom
//!   enrollment; the grade from the user's `grades`, else the class's;
//! - staff: users with the role `teacher` or `administrator`, with a Matrix
//!   id from a user field (a dotted path such as `metadata.matrixId`) or a
//!   template such as `@{username}:example.org`.
//!
//! With an identity map (the service config's `sources.ID.identity`), each
//! pupil's shared identifier is read from the user: `userIds.TYPE` takes
//! the `identifier` of the user's `userIds` entry of that type (e.g.
//! `userIds.Feide`), any other column is a dotted field path. It becomes an
//! identity token at once; the pupils are stored under their pupil keys and
//! linked ([`Store::link_identities`]).
//!
//! Entries with status `tobedeleted` are left out. Lists page by
//! limit/offset; the `Link: <…>; rel="next"` header is followed when the
//! server sends one, and `X-Total-Count` is checked.

use super::mapping::{json_at, json_text};
use super::pull::{SyncError, SyncReport};
use super::rest::RestClient;
use crate::domain::identity::{IdentityColumn, PupilIdentity};
use crate::domain::reject::{Fault, RejectCode};
use crate::domain::roster::{Roster, RosterClass, RosterPerson, RosterPupil, RosterSchool};
use crate::store::Store;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The stream name of the time of the last complete roster pull.
pub const CURSOR_STREAM: &str = "roster";

/// Where the service lives and how people get Matrix ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneRosterSettings {
    /// Base of the rostering API, e.g. `https://sis.example/ims/oneroster/rostering/v1p2`.
    pub rostering_url: String,
    /// Items per page (`limit`).
    pub page_size: u32,
    /// Template for staff Matrix ids; `{username}` and `{sourcedId}` are filled in.
    pub matrix_template: Option<String>,
    /// Dotted path of a user field holding the Matrix id (wins over the template).
    pub matrix_id_field: Option<String>,
    /// The source's identity column, from the service config (`None` in
    /// `adapters.toml`): pupils are then linked across sources.
    pub identity: Option<IdentityColumn>,
}

/// What one roster pull delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RosterCounts {
    /// Schools stored.
    pub schools: usize,
    /// Classes stored.
    pub classes: usize,
    /// Pupils stored.
    pub pupils: usize,
    /// Staff stored.
    pub staff: usize,
    /// Entries left out, with the reason (ids only).
    pub skipped: Vec<String>,
}

/// The four collections as the service delivers them.
#[derive(Debug, Clone, Default)]
pub struct Collections {
    /// `orgs`.
    pub orgs: Vec<Value>,
    /// `classes`.
    pub classes: Vec<Value>,
    /// `users`.
    pub users: Vec<Value>,
    /// `enrollments`.
    pub enrollments: Vec<Value>,
}

fn sid(v: &Value) -> Option<String> {
    json_text(v.get("sourcedId")).map(|s| s.into_owned())
}

/// The sourcedId of a GUIDRef field (`{"sourcedId": …}`), or a plain id.
fn ref_id(v: &Value, field: &str) -> Option<String> {
    let r = v.get(field)?;
    json_text(r.get("sourcedId"))
        .or_else(|| json_text(Some(r)))
        .map(|s| s.into_owned())
}

fn active(v: &Value) -> bool {
    v.get("status").and_then(Value::as_str) != Some("tobedeleted")
}

/// A OneRoster grade (`05`, `5`) as trinn 1–10.
fn grade(v: &Value) -> Option<u8> {
    v.get("grades")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .find_map(|g| g.trim().parse::<u8>().ok().filter(|g| (1..=10).contains(g)))
}

/// Whether a user has `role` (1.2 `roles[].role`, or 1.1 `role`).
fn has_role(user: &Value, role: &str) -> bool {
    user.get("role").and_then(Value::as_str) == Some(role)
        || user
            .get("roles")
            .and_then(Value::as_array)
            .is_some_and(|rs| rs.iter().any(|r| r.get("role").and_then(Value::as_str) == Some(role)))
}

/// A user's organisation: `primaryOrg`, else the org of its first role.
fn org_of(u: &Value) -> Option<String> {
    ref_id(u, "primaryOrg").or_else(|| u.get("roles")?.as_array()?.iter().find_map(|r| ref_id(r, "org")))
}

/// Builds the roster from the collections (sans-IO).
pub fn build_roster(c: &Collections, settings: &OneRosterSettings) -> (Roster, Vec<String>) {
    let mut skipped = Vec::new();
    let schools: BTreeMap<String, RosterSchool> = c
        .orgs
        .iter()
        .filter(|o| active(o) && o.get("type").and_then(Value::as_str) == Some("school"))
        .filter_map(|o| {
            let id = sid(o)?;
            let name = json_text(o.get("name"))
                .map(|s| s.into_owned())
                .unwrap_or_else(|| id.clone());
            Some((id.clone(), RosterSchool { id, name }))
        })
        .collect();
    let users: BTreeMap<String, &Value> = c
        .users
        .iter()
        .filter(|u| active(u))
        .filter_map(|u| Some((sid(u)?, u)))
        .collect();
    // Homeroom classes with their school and own grade.
    let mut classes: BTreeMap<String, (RosterClass, Option<u8>)> = BTreeMap::new();
    for cl in c.classes.iter().filter(|cl| active(cl)) {
        let Some(id) = sid(cl) else { continue };
        if cl.get("classType").and_then(Value::as_str) != Some("homeroom") {
            continue;
        }
        let Some(school) = ref_id(cl, "school").filter(|s| schools.contains_key(s)) else {
            skipped.push(format!("klasse {id}: skolen finnes ikke blant orgs"));
            continue;
        };
        let name = json_text(cl.get("title"))
            .or_else(|| json_text(cl.get("classCode")))
            .map(|s| s.into_owned())
            .unwrap_or_else(|| id.clone());
        classes.insert(
            id.clone(),
            (
                RosterClass {
                    id,
                    school,
                    name,
                    grade: 0,
                    contact_teachers: Vec::new(),
                },
                grade(cl),
            ),
        );
    }
    let mut pupil_class: BTreeMap<String, String> = BTreeMap::new();
    let mut teachers: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for e in c.enrollments.iter().filter(|e| active(e)) {
        let (Some(user), Some(class)) = (ref_id(e, "user"), ref_id(e, "class")) else {
            continue;
        };
        if !classes.contains_key(&class) || !users.contains_key(&user) {
            continue;
        }
        match e.get("role").and_then(Value::as_str) {
            Some("student") => {
                pupil_class.insert(user, class);
            }
            Some("teacher") => {
                let primary = e.get("primary").and_then(Value::as_bool).unwrap_or(false);
                teachers.entry(class).or_default().push((user, primary));
            }
            _ => {}
        }
    }
    let mut pupils = Vec::new();
    let mut class_grades: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (id, u) in users.iter().filter(|(_, u)| has_role(u, "student")) {
        let class = pupil_class.get(id);
        let school = match class {
            Some(c) => classes.get(c).map(|(c, _)| c.school.clone()),
            None => org_of(u),
        };
        let Some(school) = school.filter(|s| schools.contains_key(s)) else {
            skipped.push(format!("elev {id}: ingen skole"));
            continue;
        };
        let Some(g) = grade(u).or_else(|| class.and_then(|c| classes.get(c)).and_then(|(_, g)| *g)) else {
            skipped.push(format!("elev {id}: trinn mangler"));
            continue;
        };
        if let Some(c) = class {
            class_grades.entry(c.clone()).or_default().push(g);
        }
        let name = |f: &str| json_text(u.get(f)).map(|s| s.into_owned()).unwrap_or_default();
        pupils.push(RosterPupil {
            id: id.clone(),
            school,
            class: class.cloned(),
            grade: g,
            given_name: name("givenName"),
            family_name: name("familyName"),
        });
    }
    let staff: BTreeMap<String, RosterPerson> = users
        .iter()
        .filter(|(_, u)| has_role(u, "teacher") || has_role(u, "administrator"))
        .map(|(id, u)| {
            let name = |f: &str| json_text(u.get(f)).map(|s| s.into_owned()).unwrap_or_default();
            let matrix_id = settings
                .matrix_id_field
                .as_deref()
                .and_then(|f| json_text(json_at(u, f)).map(|s| s.into_owned()))
                .or_else(|| {
                    let template = settings.matrix_template.as_deref()?;
                    let username = json_text(u.get("username"))?;
                    Some(template.replace("{username}", &username).replace("{sourcedId}", id))
                });
            let school = org_of(u).filter(|o| schools.contains_key(o));
            (
                id.clone(),
                RosterPerson {
                    id: id.clone(),
                    given_name: name("givenName"),
                    family_name: name("familyName"),
                    matrix_id,
                    school,
                },
            )
        })
        .collect();
    let mut out_classes = Vec::new();
    for (id, (mut class, own)) in classes {
        // A class without a grade of its own takes its pupils' most common one.
        let from_pupils = class_grades.get(&id).and_then(|gs| {
            let mut counts = BTreeMap::new();
            for g in gs {
                *counts.entry(*g).or_insert(0usize) += 1;
            }
            counts
                .into_iter()
                .max_by_key(|(g, n)| (*n, std::cmp::Reverse(*g)))
                .map(|(g, _)| g)
        });
        let Some(g) = own.or(from_pupils) else {
            skipped.push(format!("klasse {id}: trinn mangler"));
            continue;
        };
        class.grade = g;
        let ts = teachers.remove(&id).unwrap_or_default();
        let any_primary = ts.iter().any(|(_, p)| *p);
        let mut seen = BTreeSet::new();
        for (t, primary) in ts {
            if (any_primary && !primary) || !seen.insert(t.clone()) {
                continue;
            }
            if !staff.contains_key(&t) {
                continue;
            }
            class.contact_teachers.push(t);
        }
        out_classes.push(class);
    }
    // Pupils of a class that was left out keep their school, without a class.
    let kept: BTreeSet<&str> = out_classes.iter().map(|c| c.id.as_str()).collect();
    for p in &mut pupils {
        if p.class.as_deref().is_some_and(|c| !kept.contains(c)) {
            p.class = None;
        }
    }
    (
        Roster {
            schools: schools.into_values().collect(),
            classes: out_classes,
            pupils,
            staff: staff.into_values().collect(),
        },
        skipped,
    )
}

/// A user's value of the identity column (see the module documentation).
fn identity_value<'a>(u: &'a Value, column: &str) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(kind) = column.strip_prefix("userIds.")
        && let Some(ids) = u.get("userIds").and_then(Value::as_array)
    {
        let typed = ids.iter().find(|i| {
            i.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        });
        if let Some(entry) = typed {
            return json_text(entry.get("identifier"));
        }
    }
    json_text(json_at(u, column))
}

/// The identity tokens of the roster's pupils (sans-IO), and the pupils
/// whose value is no identifier of its kind, with the fault (never the
/// value).
pub fn identities(
    c: &Collections,
    roster: &Roster,
    column: &IdentityColumn,
) -> (Vec<PupilIdentity>, Vec<(String, Fault)>) {
    let users: BTreeMap<String, &Value> = c.users.iter().filter_map(|u| Some((sid(u)?, u))).collect();
    let mut links = Vec::new();
    let mut bad = Vec::new();
    for p in &roster.pupils {
        let Some(value) = users.get(&p.id).and_then(|u| identity_value(u, &column.column)) else {
            continue;
        };
        match column.token(&value) {
            Ok(Some(token)) => links.push(PupilIdentity {
                local: p.id.clone(),
                school: p.school.clone(),
                token,
            }),
            Ok(None) => {}
            Err(why) => bad.push((
                p.id.clone(),
                Fault::new(RejectCode::IdentityMalformed, column.column.clone()).with_limit(why),
            )),
        }
    }
    (links, bad)
}

/// The URL in a `Link` header's `rel="next"` entry.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|part| {
            part.split(';')
                .skip(1)
                .any(|p| matches!(p.replace(' ', "").as_str(), "rel=\"next\"" | "rel=next"))
        })
        .and_then(|part| {
            let url = part.split(';').next()?.trim();
            Some(url.strip_prefix('<')?.strip_suffix('>')?.to_string())
        })
}

/// Fetches every page of one collection.
async fn fetch_all(
    client: &RestClient,
    settings: &OneRosterSettings,
    name: &str,
    report: &mut SyncReport,
) -> Result<Vec<Value>, SyncError> {
    let first = format!("{}/{name}", settings.rostering_url.trim_end_matches('/'));
    let mut out: Vec<Value> = Vec::new();
    let mut url = first.clone();
    let mut query = vec![("limit", settings.page_size.to_string()), ("offset", "0".to_string())];
    let mut total: Option<u64> = None;
    let mut seen = BTreeSet::new();
    loop {
        let resp = client.get_json(&url, &query).await?;
        report.pages += 1;
        if total.is_none() {
            total = resp
                .headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
        }
        let items = resp
            .body
            .get(name)
            .and_then(Value::as_array)
            .ok_or_else(|| SyncError::Protocol(format!("{url}: svaret mangler listen «{name}»")))?;
        let n = items.len() as u64;
        out.extend(items.iter().cloned());
        let fetched = out.len() as u64;
        if n == 0 || total.is_some_and(|t| fetched >= t) {
            break;
        }
        match next_link(&resp.headers) {
            Some(next) => {
                let next = reqwest::Url::parse(&url)
                    .and_then(|u| u.join(&next))
                    .map_err(|e| SyncError::Protocol(format!("{url}: Link «{next}»: {e}")))?
                    .to_string();
                if !seen.insert(next.clone()) {
                    return Err(SyncError::Protocol(format!("{url}: Link «{next}» er allerede hentet")));
                }
                url = next;
                query.clear();
            }
            None if total.is_some() || n >= u64::from(settings.page_size) => {
                url = first.clone();
                query = vec![
                    ("limit", settings.page_size.to_string()),
                    ("offset", fetched.to_string()),
                ];
            }
            None => break,
        }
    }
    if let Some(t) = total
        && (out.len() as u64) < t
    {
        return Err(SyncError::Protocol(format!(
            "{first}: X-Total-Count var {t}, men bare {} kom",
            out.len()
        )));
    }
    // Pages that shift under a concurrent change could repeat an entry.
    let mut ids = BTreeSet::new();
    out.retain(|v| sid(v).is_none_or(|id| ids.insert(id)));
    Ok(out)
}

/// Pulls the whole roster and stores it in one transaction; the time of the
/// pull is saved as the source's cursor afterwards.
pub async fn sync(
    client: &RestClient,
    settings: &OneRosterSettings,
    store: &Store,
    source_name: &str,
    schools: &crate::config::Schools,
) -> Result<SyncReport, SyncError> {
    let from = store
        .sync_cursor(source_name, CURSOR_STREAM)
        .await?
        .and_then(|c| c.parse::<i64>().ok());
    let started = chrono::Utc::now().timestamp_millis();
    let mut report = SyncReport {
        from,
        to: started,
        ..Default::default()
    };
    let collections = Collections {
        orgs: fetch_all(client, settings, "orgs", &mut report).await?,
        classes: fetch_all(client, settings, "classes", &mut report).await?,
        users: fetch_all(client, settings, "users", &mut report).await?,
        enrollments: fetch_all(client, settings, "enrollments", &mut report).await?,
    };
    let (mut roster, mut skipped) = build_roster(&collections, settings);
    // A roster source writes only its own schools, like an absence source.
    roster.schools.retain(|s| {
        let keep = schools.allows(&s.id);
        if !keep {
            skipped.push(format!("skole {}: {}", s.id, crate::ingest::SCHOOL_NOT_ALLOWED));
        }
        keep
    });
    roster.classes.retain(|c| {
        let keep = schools.allows(&c.school);
        if !keep {
            skipped.push(format!("klasse {}: {}", c.id, crate::ingest::SCHOOL_NOT_ALLOWED));
        }
        keep
    });
    roster.pupils.retain(|p| {
        let keep = schools.allows(&p.school);
        if !keep {
            skipped.push(format!("elev {}: {}", p.id, crate::ingest::SCHOOL_NOT_ALLOWED));
        }
        keep
    });
    roster
        .staff
        .retain(|p| p.school.as_deref().is_none_or(|s| schools.allows(s)));
    match &settings.identity {
        None => store.upsert_roster(&roster).await?,
        Some(column) => {
            let (links, bad) = identities(&collections, &roster, column);
            let scope = crate::ingest::Scope::new(source_name, schools.clone());
            let linked = store.link_identities(&scope, &links).await?;
            store.upsert_source_roster(source_name, &roster).await?;
            // Refused links and unreadable identities go to the quarantine
            // with their reason code, for IT to resolve.
            let refused: Vec<(String, Fault)> = bad
                .into_iter()
                .chain(linked.refused.iter().map(|r| (r.local.clone(), r.fault())))
                .collect();
            let entries: Vec<_> = refused
                .iter()
                .map(|(local, fault)| {
                    crate::ingest::quarantine_entry(super::Rejected::new(
                        Some(source_name.to_string()),
                        format!("{source_name}/users/{}", crate::domain::plausibility::printable(local)),
                        fault.clone(),
                        String::new(),
                    ))
                })
                .collect();
            if !entries.is_empty() {
                store.ingest(&[], &entries).await?;
            }
            skipped.extend(
                refused
                    .into_iter()
                    .map(|(local, fault)| format!("elev {local}: {fault}")),
            );
            tracing::info!(
                source = source_name,
                linked = linked.linked,
                moved = linked.moved,
                refused = linked.refused.len(),
                "identity map updated"
            );
        }
    }
    store
        .set_sync_cursor(source_name, CURSOR_STREAM, &started.to_string())
        .await?;
    tracing::info!(
        source = source_name,
        schools = roster.schools.len(),
        classes = roster.classes.len(),
        pupils = roster.pupils.len(),
        staff = roster.staff.len(),
        skipped = skipped.len(),
        "roster committed"
    );
    report.roster = Some(RosterCounts {
        schools: roster.schools.len(),
        classes: roster.classes.len(),
        pupils: roster.pupils.len(),
        staff: roster.staff.len(),
        skipped,
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> OneRosterSettings {
        OneRosterSettings {
            rostering_url: "http://x".into(),
            page_size: 100,
            matrix_template: Some("@{username}:example.org".into()),
            matrix_id_field: Some("metadata.matrixId".into()),
            identity: None,
        }
    }

    #[test]
    fn identities_come_from_user_ids_or_a_field() {
        use crate::domain::identity::IdentityKind;
        let c = Collections {
            users: vec![
                json!({"sourcedId": "e1", "userIds": [{"type": "Other", "identifier": "x"}, {"type": "Feide", "identifier": "Ola@Skole.no"}]}),
                json!({"sourcedId": "e2", "metadata": {"feide": "kari@skole.no"}}),
                json!({"sourcedId": "e3", "userIds": [{"type": "Feide", "identifier": "ola nordmann@x"}]}),
                json!({"sourcedId": "e4"}),
            ],
            ..Default::default()
        };
        let pupil = |id: &str| RosterPupil {
            id: id.into(),
            school: "s1".into(),
            class: None,
            grade: 5,
            given_name: String::new(),
            family_name: String::new(),
        };
        let roster = Roster {
            pupils: ["e1", "e2", "e3", "e4"].iter().map(|i| pupil(i)).collect(),
            ..Default::default()
        };
        let by_type = IdentityColumn::new(IdentityKind::Feide, "userIds.feide", &[5; 32]);
        let (links, bad) = identities(&c, &roster, &by_type);
        assert_eq!(links.len(), 1);
        assert_eq!((links[0].local.as_str(), links[0].school.as_str()), ("e1", "s1"));
        assert_eq!(Some(links[0].token.clone()), by_type.token("ola@skole.no").unwrap());
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, "e3");
        assert_eq!(bad[0].1.code, RejectCode::IdentityMalformed);
        assert!(!bad[0].1.to_string().contains("nordmann"));
        let by_field = IdentityColumn::new(IdentityKind::Feide, "metadata.feide", &[5; 32]);
        let (links, _) = identities(&c, &roster, &by_field);
        assert_eq!(links.iter().map(|l| l.local.as_str()).collect::<Vec<_>>(), ["e2"]);
    }

    #[test]
    fn collections_become_a_roster() {
        let c = Collections {
            orgs: vec![
                json!({"sourcedId": "k1", "status": "active", "name": "Kommunen", "type": "district"}),
                json!({"sourcedId": "s1", "status": "active", "name": "Bekkestua skole", "type": "school"}),
                json!({"sourcedId": "s9", "status": "tobedeleted", "name": "Nedlagt", "type": "school"}),
            ],
            classes: vec![
                json!({"sourcedId": "c5a", "status": "active", "title": "5A", "classType": "homeroom", "grades": ["05"], "school": {"sourcedId": "s1", "type": "org"}}),
                json!({"sourcedId": "c9b", "status": "active", "title": "9B", "classType": "homeroom", "school": {"sourcedId": "s1"}}),
                json!({"sourcedId": "math", "status": "active", "title": "Matte 5", "classType": "scheduled", "grades": ["05"], "school": {"sourcedId": "s1"}}),
            ],
            users: vec![
                json!({"sourcedId": "e1", "status": "active", "givenName": "Emma", "familyName": "Hansen", "roles": [{"roleType": "primary", "role": "student", "org": {"sourcedId": "s1"}}]}),
                json!({"sourcedId": "e2", "status": "active", "givenName": "Ola", "familyName": "Dahl", "grades": ["09"], "roles": [{"role": "student", "org": {"sourcedId": "s1"}}]}),
                json!({"sourcedId": "e3", "status": "active", "givenName": "Nora", "familyName": "Moe", "role": "student", "grades": ["03"], "primaryOrg": {"sourcedId": "s1"}}),
                json!({"sourcedId": "e4", "status": "active", "givenName": "Ali", "familyName": "Khan", "role": "student"}),
                json!({"sourcedId": "t1", "status": "active", "username": "karber", "givenName": "Kari", "familyName": "Berg", "roles": [{"role": "teacher", "org": {"sourcedId": "s1"}}]}),
                json!({"sourcedId": "t2", "status": "active", "username": "perlie", "givenName": "Per", "familyName": "Lie", "role": "teacher", "metadata": {"matrixId": "@per:kommune.no"}}),
                json!({"sourcedId": "t3", "status": "active", "username": "assist", "givenName": "Ida", "familyName": "Ask", "role": "teacher"}),
            ],
            enrollments: vec![
                json!({"sourcedId": "n1", "status": "active", "role": "student", "user": {"sourcedId": "e1"}, "class": {"sourcedId": "c5a"}}),
                json!({"sourcedId": "n2", "status": "active", "role": "student", "user": {"sourcedId": "e2"}, "class": {"sourcedId": "c9b"}}),
                json!({"sourcedId": "n3", "status": "active", "role": "teacher", "primary": true, "user": {"sourcedId": "t1"}, "class": {"sourcedId": "c5a"}}),
                json!({"sourcedId": "n4", "status": "active", "role": "teacher", "primary": false, "user": {"sourcedId": "t3"}, "class": {"sourcedId": "c5a"}}),
                json!({"sourcedId": "n5", "status": "active", "role": "teacher", "user": {"sourcedId": "t2"}, "class": {"sourcedId": "c9b"}}),
                json!({"sourcedId": "n6", "status": "tobedeleted", "role": "teacher", "user": {"sourcedId": "t3"}, "class": {"sourcedId": "c9b"}}),
            ],
        };
        let (r, skipped) = build_roster(&c, &settings());
        assert_eq!(r.schools.len(), 1);
        let names: Vec<(&str, u8, Vec<String>)> = r
            .classes
            .iter()
            .map(|c| (c.name.as_str(), c.grade, c.contact_teachers.clone()))
            .collect();
        assert_eq!(
            names,
            [("5A", 5, vec!["t1".to_string()]), ("9B", 9, vec!["t2".to_string()])]
        );
        let e1 = r.pupils.iter().find(|p| p.id == "e1").unwrap();
        assert_eq!(
            (e1.grade, e1.class.as_deref(), e1.school.as_str()),
            (5, Some("c5a"), "s1")
        );
        let e3 = r.pupils.iter().find(|p| p.id == "e3").unwrap();
        assert_eq!((e3.grade, e3.class.as_deref()), (3, None));
        assert_eq!(skipped, ["elev e4: ingen skole"]);
        let t1 = r.staff.iter().find(|s| s.id == "t1").unwrap();
        assert_eq!(t1.matrix_id.as_deref(), Some("@karber:example.org"));
        let t2 = r.staff.iter().find(|s| s.id == "t2").unwrap();
        assert_eq!(t2.matrix_id.as_deref(), Some("@per:kommune.no"));
        let t3 = r.staff.iter().find(|s| s.id == "t3").unwrap();
        assert_eq!(
            (t3.school.as_deref(), t3.matrix_id.as_deref()),
            (None, Some("@assist:example.org"))
        );
        assert_eq!(r.staff.len(), 3);
    }

    #[test]
    fn link_header_next_is_found() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            "<https://x/users?offset=0&limit=2>; rel=\"first\", <https://x/users?offset=2&limit=2>; rel=\"next\""
                .parse()
                .unwrap(),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x/users?offset=2&limit=2"));
        h.insert(
            reqwest::header::LINK,
            "<https://x/u?offset=4>; rel=\"last\"".parse().unwrap(),
        );
        assert_eq!(next_link(&h), None);
    }
}
