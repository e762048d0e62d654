//! Template contexts: case facts prepared for people (Norwegian dates and
//! names), with nothing sensitive in them.

use super::plural::count;
use crate::cases::model::{
    Agreement, Case, CircleBox, Evaluation, EvaluationOutcome, Measure, Meeting, Participant, ParticipantRole, Party,
    Role, Stage,
};
use crate::cases::numbers::{Comparison, PeriodNumbers};
use crate::cases::suggestions;
use crate::cases::{Notice, NoticeKind, Recipient, RessursteamReason};
use crate::domain::dates::norwegian;
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Oslo;
use serde_json::{Value, json};

/// `2.3.2026 kl. 15:00` in Oslo time.
pub fn when(t: DateTime<Utc>) -> String {
    let local = t.with_timezone(&Oslo);
    format!("{} kl. {}", norwegian(local.date_naive()), local.format("%H:%M"))
}

/// The Norwegian name of a criterion code.
pub fn criterion_name(code: &str) -> String {
    match code {
        "invalid-absence" => "ugyldig fravær".into(),
        "high-valid-absence" => "høyt gyldig fravær".into(),
        "repeated-lateness" => "gjentatte forsentkomminger".into(),
        "left-school" => "forlater skolen i skoletiden".into(),
        other => other.into(),
    }
}

fn party(p: &Party) -> Value {
    json!({ "id": p.id, "role": p.role.norwegian() })
}

fn number(x: f64) -> String {
    crate::cases::words::decimal(x)
}

/// «2 dager, 14 timer, 1 forsentkomming, oppmøte 89,4 %».
fn summary(p: &PeriodNumbers) -> String {
    format!(
        "{}, {}, {}, oppmøte {} %",
        count(p.days, "dag", "dager"),
        count(p.lessons, "time", "timer"),
        count(p.lates, "forsentkomming", "forsentkomminger"),
        number(p.attendance_percent)
    )
}

fn period(p: &PeriodNumbers) -> Value {
    json!({
        "summary": summary(p),
        "from": norwegian(p.from),
        "to": norwegian(p.to),
        "school_days": p.school_days,
        "days": p.days,
        "lessons": p.lessons,
        "lates": p.lates,
        "left": p.left,
        "attendance": number(p.attendance_percent),
    })
}

fn numbers(c: &Comparison) -> Value {
    let change = c.attendance_change();
    json!({
        "before": period(&c.before),
        "during": period(&c.during),
        "change": format!("{}{}", if change > 0.0 { "+" } else { "" }, number(change)),
        "direction": if change >= 0.5 { "bedre" } else if change <= -0.5 { "dårligere" } else { "omtrent likt" },
        "short": c.during.school_days < crate::cases::numbers::FEW_SCHOOL_DAYS,
    })
}

fn measure(m: &Measure) -> Value {
    json!({
        "number": m.number,
        "box": m.circle_box.norwegian(),
        "text": m.text,
        "responsible": m.responsible,
        "due": norwegian(m.due),
        "where": if m.at_home { "hjemme" } else { "på skolen" },
    })
}

fn participants(list: &[Participant]) -> Value {
    json!(
        list.iter()
            .map(|p| json!({ "label": p.label(), "role": p.role.word() }))
            .collect::<Vec<_>>()
    )
}

/// A meeting as documents show it, with what was recorded around it: the
/// measures and agreements made after the previous held meeting and before
/// the next one.
fn meeting(case: &Case, m: &Meeting) -> Value {
    let local = m.at.with_timezone(&Oslo);
    let previous = case
        .meetings
        .iter()
        .filter(|x| x.held && x.at < m.at)
        .map(|x| x.at)
        .max();
    let following = case.meetings.iter().filter(|x| x.at > m.at).map(|x| x.at).min();
    let inside = |t: DateTime<Utc>| previous.is_none_or(|p| t > p) && following.is_none_or(|f| t < f);
    let measures: Vec<Value> = case
        .all_measures()
        .into_iter()
        .filter(|x| x.added_at.is_some_and(inside))
        .map(measure)
        .collect();
    let agreements: Vec<u32> = case
        .agreements
        .iter()
        .filter(|a| inside(a.made_at))
        .map(|a| a.number)
        .collect();
    let next = m.next_at.or_else(|| {
        case.meetings
            .iter()
            .filter(|x| !x.held && x.at > m.at)
            .map(|x| x.at)
            .min()
    });
    json!({
        "number": m.number,
        "kind": m.kind.norwegian(),
        "date": norwegian(local.date_naive()),
        "time": local.format("%H:%M").to_string(),
        "when": when(m.at),
        "place": m.place,
        "participants": participants(&m.participants),
        "leadership": m.has_leadership(),
        "pupil_present": m.pupil_present(),
        "held": m.held,
        "mapping_complete": m.mapping_complete,
        "decisions": m.decisions,
        "measures": measures,
        "agreements": agreements,
        "next": next.map(when),
        "recorded_by": m.recorded_by.as_ref().map(party),
        "copy_to_parents": m.copy_to_parents.map(norwegian),
    })
}

/// The pupil's views as noted, oldest first.
fn pupil_views(case: &Case, stage: Option<Stage>) -> Value {
    json!(
        case.pupil_views
            .iter()
            .filter(|v| stage.is_none_or(|s| v.stage == s))
            .map(|v| json!({
                "stage": v.stage.word(),
                "at": norwegian(crate::domain::dates::school_date_utc(v.at)),
                "text": v.text,
                "took_part": v.took_part,
            }))
            .collect::<Vec<_>>()
    )
}

fn evaluation(case: &Case, e: &Evaluation) -> Value {
    let agreement = case.agreements.iter().find(|a| a.number == e.agreement);
    let sub_goals: Vec<Value> = agreement
        .map(|a| {
            a.sub_goals
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let rating = e.sub_goals.iter().find(|r| r.number as usize == i + 1);
                    json!({
                        "number": i + 1,
                        "text": g.text,
                        "rating": rating.map(|r| r.rating.norwegian()),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let measures: Vec<Value> = agreement
        .map(|a| {
            a.measures
                .iter()
                .map(|m| {
                    let mut v = measure(m);
                    v["rating"] = json!(
                        e.measures
                            .iter()
                            .find(|r| r.number == m.number)
                            .map(|r| r.rating.norwegian())
                    );
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    let choice = |o: EvaluationOutcome| if e.outcome == o { "[x]" } else { "[ ]" };
    json!({
        "agreement": e.agreement,
        "at": when(e.at),
        "date": norwegian(crate::domain::dates::school_date_utc(e.at)),
        "by": party(&e.by),
        "outcome": e.outcome.norwegian(),
        "outcome_word": e.outcome.word(),
        "decisions": [
            { "mark": choice(EvaluationOutcome::Resolved), "text": "Det er ikke lenger behov for systematisk oppfølging av skolefraværet." },
            { "mark": choice(EvaluationOutcome::NewAgreement), "text": "Det lages en ny samarbeidsavtale." },
            { "mark": choice(EvaluationOutcome::Phase4), "text": "Fraværet er uendret eller øker: saken går videre til fase 4 (eller fase 4 fortsetter med nytt møte og ny avtale)." },
        ],
        "place": e.place,
        "present": participants(&e.present),
        "goal": agreement.map(|a| a.goal.clone()),
        "goal_rating": e.goal.map(|g| g.norwegian()),
        "sub_goals": sub_goals,
        "measures": measures,
        "plan_b": agreement.map(|a| a.plan_b.clone()),
        "plan_b_use": e.plan_b.map(|p| p.norwegian()),
        "considered": e.referrals_considered.iter().map(|a| a.norwegian()).collect::<Vec<_>>(),
        "pupil_view": e.pupil_view,
        "numbers": e.numbers.as_ref().map(numbers),
        "confirmed_against_numbers": e.confirmed_against_numbers,
    })
}

fn agreement(case: &Case, a: &Agreement) -> Value {
    let evaluated = case.evaluations.iter().find(|e| e.agreement == a.number);
    json!({
        "number": a.number,
        "made": when(a.made_at),
        "date": norwegian(crate::domain::dates::school_date_utc(a.made_at)),
        "place": a.place,
        "present": participants(&a.present),
        "pupil_present": a.present.iter().any(|p| p.role == ParticipantRole::Elev),
        "goal": a.goal,
        "sub_goals": a.sub_goals.iter().enumerate().map(|(i, g)| json!({
            "number": i + 1,
            "text": g.text,
            "weeks": g.weeks,
            "measures": g.measures,
        })).collect::<Vec<_>>(),
        "measures": a.measures.iter().map(measure).collect::<Vec<_>>(),
        "plan_b": a.plan_b,
        "plan_b_responsible": a.plan_b_responsible,
        "valid_until": norwegian(a.valid_until),
        "evaluation_date": norwegian(a.evaluation_date),
        "pupil_view": a.pupil_view,
        "evaluation": evaluated.map(|e| e.outcome.norwegian()),
        "evaluation_numbers": evaluated.and_then(|e| e.numbers.as_ref()).map(numbers),
    })
}

/// Everything a case document may show. `comparison` is the attendance so
/// far under the current agreement (preliminary: an evaluation freezes its
/// own). `patterns` holds sentences about the pupil's absence pattern, when
/// someone computed them (see [`with_patterns`]).
pub fn case_context(case: &Case, now: DateTime<Utc>, comparison: Option<&Comparison>) -> Value {
    let current = case.current_agreement();
    // The referat is about the latest held meeting; the agenda about the next.
    let last_held = case.last_held_meeting();
    let next_planned = case.next_meeting();
    let latest_evaluation = current
        .and_then(|a| case.evaluations.iter().rev().find(|e| e.agreement == a.number))
        .or_else(|| case.evaluations.last());
    let mapping: Vec<Value> = CircleBox::ALL
        .iter()
        .zip(&case.mapping)
        .map(|(b, m)| {
            json!({
                "number": b.number(),
                "title": b.norwegian(),
                "resources": m.resources,
                "risks": m.risks,
                "noted": !m.resources.is_empty() || !m.risks.is_empty(),
                "suggestions": suggestions::for_box(*b),
                "start_here": *b == CircleBox::RelasjonVoksne,
                "not_first": !suggestions::good_place_to_start(*b),
            })
        })
        .collect();
    let risk_boxes: Vec<Value> = mapping
        .iter()
        .filter(|m| m["risks"].as_array().is_some_and(|r| !r.is_empty()))
        .cloned()
        .collect();
    json!({
        "number": case.number,
        "pupil": case.pupil_label(),
        "initials": case.pupil.initials,
        "class": case.pupil.class_name,
        "school": case.pupil.school,
        "level": match case.pupil.level {
            crate::domain::roster::Level::Barneskole => "barneskole",
            crate::domain::roster::Level::Ungdomsskole => "ungdomsskole",
        },
        "open": case.is_open(),
        "phase": case.phase.number(),
        "phase_name": case.phase.norwegian(),
        "opened": when(case.opened_at),
        "today": when(now),
        "responsible": party(&case.responsible),
        "contact_teacher": case.contact_teacher,
        "escalation_to": party(&case.escalation_to),
        "long_term": case.long_term,
        "reported_to_ressursteam": case.reported_to_ressursteam,
        "criteria": case.active_criteria.iter().map(|c| criterion_name(c)).collect::<Vec<_>>(),
        "deadlines": case.deadlines.iter().map(|d| json!({
            "what": d.kind.norwegian(),
            "due": when(d.due),
            "owner": party(&d.owner),
        })).collect::<Vec<_>>(),
        "contacts": case.contacts.iter().map(|c| json!({
            "at": when(c.at),
            "by": party(&c.by),
            "with": c.with.norwegian(),
            "channel": c.channel.norwegian(),
            "outcome": c.outcome.norwegian(),
        })).collect::<Vec<_>>(),
        "meetings": case.meetings.iter().map(|m| meeting(case, m)).collect::<Vec<_>>(),
        "meeting": last_held.map(|m| meeting(case, m)),
        "next_meeting": next_planned.map(|m| meeting(case, m)),
        "mapping": mapping,
        "mapped": case.mapping.iter().any(|m| !m.resources.is_empty() || !m.risks.is_empty()),
        "risk_boxes": risk_boxes,
        "measures": case.measures.iter().map(measure).collect::<Vec<_>>(),
        "measures_tried": case.all_measures().into_iter().map(measure).collect::<Vec<_>>(),
        "agreement": current.map(|a| agreement(case, a)),
        "agreements": case.agreements.iter().map(|a| agreement(case, a)).collect::<Vec<_>>(),
        "evaluation": latest_evaluation.map(|e| evaluation(case, e)),
        "evaluations": case.evaluations.iter().map(|e| evaluation(case, e)).collect::<Vec<_>>(),
        "pupil_views": pupil_views(case, None),
        "pupil_views_mapping": pupil_views(case, Some(Stage::Mapping)),
        "referrals": case.referrals.iter().map(|r| json!({
            "agency": r.agency.norwegian(),
            "decided": norwegian(r.decided),
            "sent": r.sent.map(norwegian),
            "pedagogisk_rapport": r.pedagogisk_rapport,
            "legeerklaering_needed": r.legeerklaering_needed,
        })).collect::<Vec<_>>(),
        "coordinator": case.coordinator.as_ref().map(|c| json!({
            "agency": c.agency.norwegian(),
            "person": c.person,
            "since": when(c.since),
        })),
        "pending_handoff": case.pending_handoff.as_ref().map(|h| json!({
            "agency": h.agency.norwegian(),
            "person": h.person,
        })),
        "special_outcomes": case.special_outcomes.iter().map(|s| s.norwegian()).collect::<Vec<_>>(),
        "numbers": comparison.map(numbers),
        "patterns": Vec::<String>::new(),
        "status": match &case.status {
            crate::cases::model::Status::Open => "åpen".to_string(),
            crate::cases::model::Status::Closed { reason, at } => format!("avsluttet {} ({})", when(*at), reason.norwegian()),
        },
    })
}

/// Adds sentences about the pupil's absence pattern (weekday, subject,
/// period, after holidays) to a case context; the documents show them
/// where the numbers are.
pub fn with_patterns(mut context: Value, lines: &[String]) -> Value {
    context["patterns"] = json!(lines);
    context
}

/// [`case_context`] with `meeting` as the meeting a referat is about.
pub fn case_context_for_meeting(
    case: &Case,
    now: DateTime<Utc>,
    comparison: Option<&Comparison>,
    number: u32,
) -> Value {
    let mut v = case_context(case, now, comparison);
    if let Some(m) = case.meetings.iter().find(|m| m.number == number) {
        v["meeting"] = meeting(case, m);
        if !m.held {
            v["next_meeting"] = meeting(case, m);
        }
    }
    v
}

/// The context of a chat notice: the case's minimal facts and the notice.
pub fn notice_context(notice: &Notice, case: &Case, extra: &Value) -> Value {
    let mut n = json!({ "kind": "" });
    let set = |n: &mut Value, k: &str, v: Value| {
        n[k] = v;
    };
    let kind = serde_json::to_value(&notice.kind).unwrap_or(Value::Null);
    set(&mut n, "kind", kind["notice"].clone());
    match &notice.kind {
        NoticeKind::ContactParents {
            criteria,
            invalid_absence,
            tentative,
            again,
            due,
        } => {
            set(
                &mut n,
                "criteria",
                json!(criteria.iter().map(|c| criterion_name(c)).collect::<Vec<_>>()),
            );
            set(&mut n, "invalid_absence", json!(invalid_absence));
            set(&mut n, "tentative", json!(tentative));
            set(&mut n, "again", json!(again));
            set(&mut n, "due", json!(when(*due)));
        }
        NoticeKind::NewEvidence { criterion } => set(&mut n, "criterion", json!(criterion_name(criterion))),
        NoticeKind::CallMeeting {
            within_days,
            leadership_required,
        } => {
            set(&mut n, "within_days", json!(within_days));
            set(&mut n, "leadership_required", json!(leadership_required));
        }
        NoticeKind::ToRessursteam { reason } => set(
            &mut n,
            "reason",
            json!(match reason {
                RessursteamReason::Reported => "meldt av avdelingsleder",
                RessursteamReason::Evaluated => "samarbeidsavtalen er evaluert",
                RessursteamReason::Phase4 => "saken går til fase 4: kall inn til møte i ressursteamet",
                RessursteamReason::Escalated => "en frist er oversittet",
            }),
        ),
        NoticeKind::Reminder { deadline, due } => {
            set(&mut n, "what", json!(deadline.norwegian()));
            set(&mut n, "due", json!(when(*due)));
        }
        NoticeKind::Escalation { deadline, due, owner } => {
            set(&mut n, "what", json!(deadline.norwegian()));
            set(&mut n, "due", json!(when(*due)));
            set(&mut n, "owner", party(owner));
        }
        NoticeKind::AgreementMade {
            agreement,
            evaluation_date,
        } => {
            set(&mut n, "agreement", json!(agreement));
            set(&mut n, "evaluation_date", json!(norwegian(*evaluation_date)));
        }
        NoticeKind::EvaluationDue {
            agreement,
            made,
            evaluation_date,
        } => {
            set(&mut n, "agreement", json!(agreement));
            set(&mut n, "made", json!(norwegian(*made)));
            set(&mut n, "evaluation_date", json!(norwegian(*evaluation_date)));
            let cmp: Option<Comparison> = serde_json::from_value(extra["numbers"].clone()).ok();
            set(&mut n, "numbers", json!(cmp.as_ref().map(numbers)));
        }
        NoticeKind::HandoffProposed { agency } | NoticeKind::HandoffDeclined { agency } => {
            set(&mut n, "agency", json!(agency.norwegian()));
        }
        NoticeKind::HandoffAccepted { agency, person } => {
            set(&mut n, "agency", json!(agency.norwegian()));
            set(&mut n, "person", json!(person));
        }
        NoticeKind::Closed { reason } => set(&mut n, "reason", json!(reason.norwegian())),
        NoticeKind::MeetingSet { meeting: number } | NoticeKind::MeetingHeld { meeting: number } => {
            if let Some(m) = case.meetings.iter().find(|m| m.number == *number) {
                set(&mut n, "meeting", meeting(case, m));
            }
        }
        NoticeKind::InvalidAbsenceAgain { date, due } => {
            set(&mut n, "date", json!(norwegian(*date)));
            set(&mut n, "due", json!(when(*due)));
        }
        NoticeKind::Triage { latest } => set(&mut n, "latest", json!(norwegian(*latest))),
        NoticeKind::InvalidAbsenceToLeadership | NoticeKind::TakeOver | NoticeKind::LongTerm => {}
    }
    json!({
        "number": case.number,
        "pupil": case.pupil_label(),
        "phase": case.phase.number(),
        "phase_name": case.phase.norwegian(),
        "ressursteam": matches!(notice.recipient, Recipient::Ressursteam { .. }),
        "recipient_role": match &notice.recipient {
            Recipient::Person { role, .. } => role.norwegian(),
            Recipient::Ressursteam { .. } => Role::Ressursteam.norwegian(),
        },
        "notice": n,
    })
}

fn dates_norwegian(mut v: Value) -> Value {
    // Digest structs serialize dates as ISO text; people read d.m.yyyy.
    fn walk(v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    *s = norwegian(d);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

/// The context of a contact teacher's monthly review.
pub fn teacher_digest_context(d: &crate::cases::digest::TeacherDigest) -> Value {
    let mut v = dates_norwegian(serde_json::to_value(d).unwrap_or(Value::Null));
    if let Some(pupils) = v["pupils"].as_array_mut() {
        for (p, orig) in pupils.iter_mut().zip(&d.pupils) {
            p["numbers"]["attendance_percent"] = json!(number(orig.numbers.attendance_percent));
        }
    }
    v
}

/// The context of leadership's review, with the registration gaps found.
pub fn school_digest_context(d: &crate::cases::digest::SchoolDigest, gaps: &[crate::cases::digest::Gap]) -> Value {
    let mut v = dates_norwegian(serde_json::to_value(d).unwrap_or(Value::Null));
    v["gaps"] = dates_norwegian(serde_json::to_value(gaps).unwrap_or(Value::Null));
    v["trend_names"] = json!({ "better": "bedre", "same": "omtrent likt", "worse": "dårligere" });
    let fmt = |x: &mut Value| {
        if let Some(f) = x.as_f64() {
            *x = json!(number(f));
        }
    };
    fmt(&mut v["total"]["attendance_percent"]);
    fmt(&mut v["total"]["previous_percent"]);
    if let Some(grades) = v["grades"].as_array_mut() {
        for g in grades {
            fmt(&mut g["attendance_percent"]);
            fmt(&mut g["previous_percent"]);
        }
    }
    v
}
