//! Template contexts: case facts prepared for people (Norwegian dates and
//! names), with nothing sensitive in them.

use super::plural::count;
use crate::cases::model::{Case, CircleBox, Party, Role};
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
    let r = (x * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}").replace('.', ",")
    }
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
    })
}

/// Everything a case document may show.
pub fn case_context(case: &Case, now: DateTime<Utc>, comparison: Option<&Comparison>) -> Value {
    let measure = |m: &crate::cases::model::Measure| {
        json!({
            "number": m.number,
            "box": m.circle_box.norwegian(),
            "text": m.text,
            "responsible": m.responsible,
            "due": norwegian(m.due),
            "where": if m.at_home { "hjemme" } else { "på skolen" },
        })
    };
    let agreement = case.current_agreement().map(|a| {
        json!({
            "number": a.number,
            "made": when(a.made_at),
            "place": a.place,
            "present": a.present,
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
        })
    });
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
        "meetings": case.meetings.iter().map(|m| json!({
            "kind": m.kind.norwegian(),
            "at": when(m.at),
            "held": m.held,
            "leadership": m.leadership_present,
        })).collect::<Vec<_>>(),
        "mapping": CircleBox::ALL.iter().zip(&case.mapping).map(|(b, m)| json!({
            "number": b.number(),
            "title": b.norwegian(),
            "resources": m.resources,
            "risks": m.risks,
            "suggestions": suggestions::for_box(*b),
            "start_here": *b == CircleBox::RelasjonVoksne,
            "not_first": !suggestions::good_place_to_start(*b),
        })).collect::<Vec<_>>(),
        "measures": case.measures.iter().map(measure).collect::<Vec<_>>(),
        "agreement": agreement,
        "agreements": case.agreements.len(),
        "evaluations": case.evaluations.iter().map(|e| json!({
            "agreement": e.agreement,
            "at": when(e.at),
            "by": party(&e.by),
            "outcome": e.outcome.norwegian(),
        })).collect::<Vec<_>>(),
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
        "status": match &case.status {
            crate::cases::model::Status::Open => "åpen".to_string(),
            crate::cases::model::Status::Closed { reason, at } => format!("avsluttet {} ({})", when(*at), reason.norwegian()),
        },
    })
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
