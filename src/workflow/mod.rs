//! Runs the routine over the store: finding events open and update cases,
//! people's steps change them, the clock reminds and escalates. Each change
//! happens in one store transaction ([`CaseTx`]) with its audit row and the
//! notices it queues, so a notice is queued exactly when its change is
//! stored. The rules of the routine are the pure state machine in
//! [`crate::cases`]; the store only persists.

use crate::cases::machine::evaluation_prompt;
use crate::cases::model::Case;
use crate::cases::numbers::{Comparison, compare, earliest};
use crate::cases::{
    CaseConfig, CaseError, Command, FindingChangeKind, FindingEvent, Notice, NoticeKind, Party, PupilRef, Role, apply,
    escalation_party, on_finding, open_case, tick,
};
use crate::domain::dates::school_date_utc;
use crate::domain::roster::Level;
use crate::store::{CaseStoreError, CaseTx, FindingChange, Store, StoreError, role_text};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Serialize;

/// Finding events handled per round of [`sync_cases`].
const SYNC_BATCH: i64 = 500;
/// The meta key of the cursor into the finding event log.
const CURSOR_KEY: &str = crate::store::FINDING_CURSOR;

/// What went wrong while running the routine.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The routine refused the step; the message says why, in Norwegian.
    #[error(transparent)]
    Refused(#[from] CaseError),
    /// No case has that number.
    #[error("fant ingen sak med nummer «{0}»")]
    NotFound(String),
    /// Someone else changed the case at the same time; try again.
    #[error("saken {0} ble endret samtidig av noen andre; prøv igjen")]
    Conflict(String),
}

impl From<CaseStoreError> for WorkflowError {
    fn from(e: CaseStoreError) -> Self {
        match e {
            CaseStoreError::Store(s) => WorkflowError::Store(s),
            CaseStoreError::NotFound(n) => WorkflowError::NotFound(n),
            CaseStoreError::Conflict(n) => WorkflowError::Conflict(n),
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncStats {
    /// Finding events read.
    pub events: u64,
    /// Cases opened.
    pub opened: u64,
    /// Cases changed.
    pub changed: u64,
    /// Notifications queued.
    pub notices: u64,
}

fn system() -> Party {
    Party::new("tilstede", Role::System)
}

fn change_name(c: FindingChangeKind) -> &'static str {
    match c {
        FindingChangeKind::Opened => "opened",
        FindingChangeKind::Updated => "updated",
        FindingChangeKind::Cleared => "cleared",
    }
}

async fn audit(
    tx: &mut CaseTx,
    case: &str,
    actor: &Party,
    action: &str,
    detail: &serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.audit(case, &actor.id, &role_text(actor.role), action, detail, at)
        .await
}

/// The pupil as a case sees them, from the roster (a pupil missing from
/// the roster still gets a case, with the stricter barneskole deadlines).
async fn pupil_ref(store: &Store, pupil: &str, school: &str) -> Result<(PupilRef, Option<String>), StoreError> {
    Ok(match store.pupil_context(pupil).await? {
        Some(ctx) => (
            PupilRef {
                id: ctx.pupil.id.clone(),
                school: ctx.pupil.school.clone(),
                initials: ctx.pupil.initials(),
                class_name: ctx.class.as_ref().map(|c| c.name.clone()),
                level: ctx.pupil.level(),
            },
            ctx.contact_teachers.first().map(|t| t.id.clone()),
        ),
        None => (
            PupilRef {
                id: pupil.to_string(),
                school: school.to_string(),
                initials: "–".into(),
                class_name: None,
                level: Level::Barneskole,
            },
            None,
        ),
    })
}

/// The agreement period so far: from the day it was made to today, or to
/// its evaluation date when that has passed.
fn agreement_period(made: NaiveDate, evaluation_date: NaiveDate, now: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    (made, evaluation_date.min(school_date_utc(now)).max(made))
}

/// The before/after numbers of the agreement period `made..=to`, read in
/// the transaction: equal periods of school days, holidays left out.
async fn numbers_in(
    tx: &mut CaseTx,
    case: &Case,
    (made, to): (NaiveDate, NaiveDate),
    config: &CaseConfig,
) -> Result<Comparison, StoreError> {
    let from = earliest(&config.calendar, made, to);
    let records = tx.records(&case.pupil.id, from, to).await?;
    Ok(compare(&records, &config.calendar, made, to, config.lessons_per_day))
}

/// The numbers that go with an evaluation prompt.
async fn evaluation_numbers(
    tx: &mut CaseTx,
    case: &Case,
    kind: &NoticeKind,
    now: DateTime<Utc>,
    config: &CaseConfig,
) -> Result<Option<Comparison>, StoreError> {
    let NoticeKind::EvaluationDue {
        made, evaluation_date, ..
    } = kind
    else {
        return Ok(None);
    };
    let period = agreement_period(*made, *evaluation_date, now);
    Ok(Some(numbers_in(tx, case, period, config).await?))
}

/// The newest date among a finding's evidence records.
async fn newest_evidence(store: &Store, f: &crate::domain::Finding) -> Result<Option<NaiveDate>, StoreError> {
    let records = store.pupil_records(&f.pupil, f.window.from, f.window.to).await?;
    Ok(records
        .iter()
        .filter(|r| f.evidence.contains(&r.id))
        .map(|r| r.date)
        .max())
}

/// Queues `notices`, each with the facts the renderer needs besides the
/// case. Returns how many were new.
async fn queue(
    tx: &mut CaseTx,
    case: &Case,
    notices: &[Notice],
    now: DateTime<Utc>,
    config: &CaseConfig,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for notice in notices {
        let extra = match evaluation_numbers(tx, case, &notice.kind, now, config).await? {
            Some(numbers) => serde_json::json!({ "numbers": numbers }),
            None => serde_json::json!({}),
        };
        n += tx.queue(notice, &extra, now).await?;
    }
    Ok(n)
}

/// Feeds new finding events into cases: opens a case for a pupil without
/// an open one, and updates open cases. Keeps its own cursor; each event
/// is handled in one transaction with the cursor, so a crash repeats
/// nothing and loses nothing.
pub async fn sync_cases(store: &Store, config: &CaseConfig, now: DateTime<Utc>) -> Result<SyncStats, WorkflowError> {
    let mut stats = SyncStats::default();
    loop {
        let cursor: i64 = store.meta(CURSOR_KEY).await?.and_then(|s| s.parse().ok()).unwrap_or(0);
        let events = store.finding_events_after(cursor, SYNC_BATCH).await?;
        if events.is_empty() {
            return Ok(stats);
        }
        for (seq, change) in events {
            stats.events += 1;
            let f = change.finding();
            let event = FindingEvent {
                change: match change {
                    FindingChange::Opened { .. } => FindingChangeKind::Opened,
                    FindingChange::Updated { .. } => FindingChangeKind::Updated,
                    FindingChange::Cleared { .. } => FindingChangeKind::Cleared,
                },
                criterion: f.criterion.clone(),
                tentative: f.is_tentative(),
                latest: match change {
                    FindingChange::Cleared { .. } => None,
                    _ => newest_evidence(store, f).await?,
                },
            };
            let pupil = pupil_ref(store, &f.pupil, &f.school).await?;
            let mut tx = store.begin_cases().await?;
            let detail = serde_json::json!({ "criterion": f.criterion, "rule": f.rule, "seq": seq });
            match tx.open_case_of(&f.pupil).await? {
                Some(mut case) => {
                    let before = case.revision;
                    let notices = on_finding(&mut case, &event, now, config);
                    if case.revision != before {
                        tx.update(&case, before, now).await?;
                        let action = format!("finding:{}", change_name(event.change));
                        audit(&mut tx, &case.number, &system(), &action, &detail, now).await?;
                        stats.changed += 1;
                    }
                    stats.notices += queue(&mut tx, &case, &notices, now, config).await?;
                }
                None if event.change != FindingChangeKind::Cleared => {
                    let (pref, teacher) = pupil;
                    let number = tx.next_case_number(school_date_utc(now).year()).await?;
                    let escalate = escalation_party(config, &pref.school);
                    let (case, notices) = open_case(&number, pref, teacher, escalate, &event, now, config);
                    tx.insert(&case, now).await?;
                    audit(&mut tx, &number, &system(), "open", &detail, now).await?;
                    stats.opened += 1;
                    stats.notices += queue(&mut tx, &case, &notices, now, config).await?;
                }
                None => {}
            }
            tx.set_meta(CURSOR_KEY, &seq.to_string()).await?;
            tx.commit().await?;
        }
    }
}

/// Applies a person's step to a case; the refusal, if any, says why and is
/// kept in the audit log like an accepted step.
pub async fn apply_case_command(
    store: &Store,
    number: &str,
    actor: &Party,
    command: &Command,
    now: DateTime<Utc>,
    config: &CaseConfig,
) -> Result<(Case, Vec<Notice>), WorkflowError> {
    let mut tx = store.begin_cases().await?;
    let before = tx
        .case(number)
        .await?
        .ok_or_else(|| WorkflowError::NotFound(number.to_string()))?;
    let mut case = before.clone();
    // An evaluation freezes the numbers it was made on: the records decide
    // them, not the caller.
    let mut command = command.clone();
    if let Command::Evaluate { numbers, .. } = &mut command {
        *numbers = match case.current_agreement() {
            Some(a) => {
                let period = agreement_period(school_date_utc(a.made_at), a.evaluation_date, now);
                Some(numbers_in(&mut tx, &case, period, config).await?)
            }
            None => None,
        };
    }
    let command = &command;
    let detail = serde_json::to_value(command).unwrap_or_default();
    let notices = match apply(&mut case, actor, command, now, config) {
        Ok(n) => n,
        Err(e) => {
            // A refused attempt is part of the story too.
            audit(
                &mut tx,
                number,
                actor,
                &format!("refused:{}", command.name()),
                &serde_json::json!({ "why": e.to_string() }),
                now,
            )
            .await?;
            tx.commit().await?;
            return Err(e.into());
        }
    };
    tx.update(&case, before.revision, now).await?;
    tx.mirror(&before, &case).await?;
    audit(&mut tx, number, actor, command.name(), &detail, now).await?;
    queue(&mut tx, &case, &notices, now, config).await?;
    tx.commit().await?;
    tracing::info!(case = number, command = command.name(), "case changed");
    Ok((case, notices))
}

/// Moves the clock for every open case: reminders, escalations, reviews,
/// long-term marking. Returns the notices queued.
pub async fn tick_cases(store: &Store, config: &CaseConfig, now: DateTime<Utc>) -> Result<Vec<Notice>, WorkflowError> {
    let mut all = Vec::new();
    for number in store.open_case_numbers().await? {
        let mut tx = store.begin_cases().await?;
        let Some(mut case) = tx.case(&number).await?.filter(|c| c.is_open()) else {
            continue;
        };
        let before = case.revision;
        let notices = tick(&mut case, now, config);
        if case.revision != before {
            tx.update(&case, before, now).await?;
            let keys: Vec<&str> = notices.iter().map(|n| n.key.as_str()).collect();
            audit(
                &mut tx,
                &number,
                &system(),
                "tick",
                &serde_json::json!({ "notices": keys }),
                now,
            )
            .await?;
            queue(&mut tx, &case, &notices, now, config).await?;
        }
        tx.commit().await?;
        all.extend(notices);
    }
    Ok(all)
}

/// Before/after numbers for a case's newest agreement, up to `now`.
pub async fn agreement_numbers(
    store: &Store,
    case: &Case,
    now: DateTime<Utc>,
    config: &CaseConfig,
) -> Result<Option<Comparison>, StoreError> {
    let Some(NoticeKind::EvaluationDue {
        made, evaluation_date, ..
    }) = evaluation_prompt(case).or_else(|| {
        case.current_agreement().map(|a| NoticeKind::EvaluationDue {
            agreement: a.number,
            made: school_date_utc(a.made_at),
            evaluation_date: a.evaluation_date,
        })
    })
    else {
        return Ok(None);
    };
    let (made, to) = agreement_period(made, evaluation_date, now);
    let records = store
        .pupil_records(&case.pupil.id, earliest(&config.calendar, made, to), to)
        .await?;
    Ok(Some(compare(
        &records,
        &config.calendar,
        made,
        to,
        config.lessons_per_day,
    )))
}

/// Someone acting on cases: who they are and the ids the roster knows them
/// by. Their roles in a case follow from these ([`crate::cases::policy::parties`]),
/// never from what they claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    /// A Matrix id (chat) or whatever `--as` says (a staff or Matrix id).
    pub id: String,
    /// Other ids of the same person: staff ids for a Matrix id, the Matrix
    /// id for a staff id.
    pub other_ids: Vec<String>,
    /// Configured members of the ressursteam rooms the person speaks in.
    pub room_members: Vec<String>,
}

impl Person {
    /// Looks `id` up in the roster.
    pub async fn identify(store: &Store, id: &str) -> Result<Person, StoreError> {
        let other_ids = if id.starts_with('@') && id.contains(':') {
            store.staff_by_matrix_id(id).await?.into_iter().map(|p| p.id).collect()
        } else {
            store
                .staff_member(id)
                .await?
                .and_then(|p| p.matrix_id)
                .into_iter()
                .collect()
        };
        Ok(Person {
            id: id.to_string(),
            other_ids,
            room_members: Vec::new(),
        })
    }

    /// The roles the person holds in `case`, strongest first.
    pub fn parties(&self, case: &Case, config: &CaseConfig) -> Vec<Party> {
        crate::cases::policy::parties(
            case,
            &self.id,
            &self.other_ids,
            &config.school(&case.pupil.school),
            &self.room_members,
        )
    }

    /// The party to act as in `case`: the strongest role that may take
    /// `step`, or only `role` when one is asked for.
    pub fn choose(
        &self,
        case: &Case,
        config: &CaseConfig,
        role: Option<Role>,
        step: &Command,
    ) -> Result<Party, CaseError> {
        let mut parties = self.parties(case, config);
        if let Some(role) = role {
            parties.retain(|p| p.role == role);
            if parties.is_empty() {
                return Err(CaseError::RoleNotHeld {
                    role: role.norwegian(),
                    case: case.number.clone(),
                });
            }
        }
        crate::cases::policy::choose(case, &parties, step)
    }
}

/// Records a refusal decided outside the state machine (no role, a server
/// not allowed, the wrong room) in the audit log, like an accepted step.
pub async fn refuse(
    store: &Store,
    number: &str,
    actor: &str,
    role: &str,
    action: &str,
    why: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = store.begin_cases().await?;
    if tx.case(number).await?.is_none() {
        return Ok(());
    }
    tx.audit(
        number,
        actor,
        role,
        &format!("refused:{action}"),
        &serde_json::json!({ "why": why }),
        now,
    )
    .await?;
    tx.commit().await
}

/// What an accepted step did.
#[derive(Debug, Clone)]
pub struct Acted {
    /// The case after the step.
    pub case: Case,
    /// The notices queued.
    pub notices: Vec<Notice>,
    /// Who acted, in which role.
    pub actor: Party,
}

/// A person takes a step in a case, in the strongest role they hold that
/// may take it (or in `role`). Every refusal, for whatever reason, is in
/// the audit log.
pub async fn act(
    store: &Store,
    config: &CaseConfig,
    person: &Person,
    role: Option<Role>,
    number: &str,
    step: &Command,
    now: DateTime<Utc>,
) -> Result<Acted, WorkflowError> {
    let case = store
        .case_state(number)
        .await?
        .ok_or_else(|| WorkflowError::NotFound(number.to_string()))?;
    let actor = match person.choose(&case, config, role, step) {
        Ok(p) => p,
        Err(e) => {
            let (who, role) = match person.parties(&case, config).first() {
                Some(p) => (p.id.clone(), role_text(p.role)),
                None => (person.id.clone(), "ingen".to_string()),
            };
            refuse(store, number, &who, &role, step.name(), &e.to_string(), now).await?;
            return Err(e.into());
        }
    };
    let (case, notices) = apply_case_command(store, number, &actor, step, now, config).await?;
    Ok(Acted { case, notices, actor })
}
