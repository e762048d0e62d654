//! Pure pieces of the chat workflow: the case card, who a chat user is in a
//! case, and chat commands translated into the workflow's commands.

use crate::cases::config::SchoolStaff;
use crate::cases::model::{
    Agency, Case, Channel, CircleBox, CloseReason, ContactOutcome, Contacted, EvaluationOutcome, MeetingKind, Party,
    Phase, Role,
};
use crate::cases::{Command, authorize};
use crate::matrix::commands::{self as chat, Responsible};
use crate::matrix::escape_html;
use crate::render::when;
use chrono::{DateTime, NaiveDate, Utc};

/// The case card: the root of the case's thread. It shows the case number,
/// the pupil's initials and class, the phase, who is responsible and the next
/// deadline; nothing else about the pupil. `responsible` is how the
/// responsible person is shown (a Matrix id when known).
pub fn card(case: &Case, responsible: &str) -> (String, String) {
    let mut lines = vec![
        format!("Sak {} – {}", case.number, case.pupil_label()),
        capitalized(case.phase.norwegian()),
        format!("Ansvarlig: {} ({})", responsible, case.responsible.role.norwegian()),
    ];
    match &case.status {
        crate::cases::model::Status::Closed { reason, at } => {
            lines.push(format!("Avsluttet {}: {}", when(*at), reason.norwegian()));
        }
        crate::cases::model::Status::Open => match case.next_deadline() {
            Some(d) => lines.push(format!("Neste frist: {} innen {}", d.kind.norwegian(), when(d.due))),
            None => lines.push("Neste frist: ingen".into()),
        },
    }
    if let Some(h) = &case.pending_handoff {
        lines.push(format!(
            "Venter på at {} godtar å bli fagkoordinator ({})",
            h.person,
            h.agency.norwegian()
        ));
    }
    if case.long_term {
        lines.push("Langvarig fravær".into());
    }
    let plain = lines.join("\n");
    let mut html = format!("<b>{}</b>", escape_html(&lines[0]));
    for l in &lines[1..] {
        html.push_str("<br>");
        html.push_str(&escape_html(l));
    }
    (plain, html)
}

/// `text` with its first letter in upper case.
pub fn capitalized(text: &str) -> String {
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The roles a chat user holds in a case, strongest first. `staff_ids` are
/// the user's ids in the roster; `room_members` the configured ressursteam
/// members of the case's school room.
pub fn parties(
    case: &Case,
    sender: &str,
    staff_ids: &[String],
    staff: &SchoolStaff,
    room_members: &[String],
) -> Vec<Party> {
    let mut ids: Vec<&str> = staff_ids.iter().map(String::as_str).collect();
    ids.push(sender);
    let find = |wanted: &str| ids.iter().find(|i| **i == wanted).map(|i| i.to_string());
    let mut out = Vec::new();
    if let Some(a) = staff.avdelingsleder.as_deref().and_then(find) {
        out.push(Party::new(a, Role::Avdelingsleder));
    }
    if let Some(l) = staff.ledelse.iter().find_map(|l| find(l)) {
        out.push(Party::new(l, Role::Ledelse));
    }
    if let Some(t) = case.contact_teacher.as_deref().and_then(find) {
        out.push(Party::new(t, Role::Kontaktlaerer));
    }
    let coordinator = case.coordinator.as_ref().is_some_and(|c| c.person == sender);
    let proposed = case.pending_handoff.as_ref().is_some_and(|h| h.person == sender);
    if coordinator || proposed {
        out.push(Party::new(sender, Role::Fagkoordinator));
    }
    if let Some(r) = staff.ressursteam.iter().find_map(|r| find(r)) {
        out.push(Party::new(r, Role::Ressursteam));
    } else if room_members.iter().any(|m| m == sender) {
        out.push(Party::new(sender, Role::Ressursteam));
    }
    out
}

/// The first of `parties` that may apply `command`, else the refusal of the
/// strongest (or a note that the user has no role in the case).
pub fn choose(case: &Case, parties: &[Party], command: &Command) -> Result<Party, String> {
    let mut first_refusal = None;
    for p in parties {
        match authorize(case, p, command) {
            Ok(()) => return Ok(p.clone()),
            Err(e) => {
                first_refusal.get_or_insert(e.to_string());
            }
        }
    }
    Err(first_refusal.unwrap_or_else(|| {
        format!(
            "du har ingen rolle i sak {}: tilstede kjenner deg ikke som kontaktlærer, ledelse, ressursteam eller fagkoordinator for den",
            case.number
        )
    }))
}

/// The workflow's agency for a chat agency.
pub fn agency(a: chat::Agency) -> Agency {
    match a {
        chat::Agency::Ppt => Agency::Ppt,
        chat::Agency::Bup => Agency::Bup,
        chat::Agency::Barnevern => Agency::Barnevern,
        chat::Agency::Helsesykepleier => Agency::Helsesykepleier,
        chat::Agency::Familievern => Agency::Familievern,
        chat::Agency::Fastlege => Agency::Fastlege,
        chat::Agency::PsykiskHelse => Agency::PsykiskHelse,
        chat::Agency::Utekontakten => Agency::Utekontakten,
    }
}

/// Translates a chat command about `case` into the workflow's command.
/// `None` for commands that are not a single workflow step (listing,
/// showing, the agreement dialogue, handoff).
pub fn to_case_command(command: &chat::Command, case: &Case, now: DateTime<Utc>, today: NaiveDate) -> Option<Command> {
    Some(match command {
        chat::Command::Contact { channel, outcome, .. } => Command::LogContact {
            with: Contacted::Foresatte,
            at: now,
            channel: match channel {
                chat::Channel::Phone => Channel::Telefon,
                chat::Channel::Meeting => Channel::Mote,
                chat::Channel::Message => Channel::Melding,
            },
            outcome: match outcome {
                chat::ContactOutcome::NotReached => ContactOutcome::IkkeNadd,
                chat::ContactOutcome::NoConcern => ContactOutcome::IngenBekymring,
                chat::ContactOutcome::Concern => ContactOutcome::Bekymring,
            },
        },
        chat::Command::Meeting { at, .. } => Command::SetMeeting {
            kind: if case.phase == Phase::Further {
                MeetingKind::Ressursteam
            } else {
                MeetingKind::Samarbeid
            },
            at: crate::domain::dates::oslo_instant(*at),
            leadership_present: false,
        },
        chat::Command::Measure {
            circle_box,
            responsible,
            due,
            text,
            ..
        } => Command::AddMeasure {
            circle_box: CircleBox::from_number(*circle_box)?,
            text: text.clone(),
            responsible: match responsible {
                Responsible::ContactTeacher => "kontaktlærer".into(),
                Responsible::Leadership => "ledelsen".into(),
                Responsible::Parents => "foresatte".into(),
                Responsible::Pupil => "eleven".into(),
                Responsible::User(u) => u.clone(),
            },
            due: *due,
            at_home: matches!(responsible, Responsible::Parents),
        },
        chat::Command::Evaluate { outcome, .. } => Command::Evaluate {
            outcome: match outcome {
                chat::EvaluationOutcome::Resolved => EvaluationOutcome::Resolved,
                chat::EvaluationOutcome::Improved => EvaluationOutcome::NewAgreement,
                chat::EvaluationOutcome::Unchanged => EvaluationOutcome::Phase4,
            },
        },
        chat::Command::Phase { phase, .. } => Command::ChangePhase {
            to: Phase::from_number(*phase)?,
        },
        chat::Command::Refer {
            agency: a,
            report,
            medical,
            ..
        } => Command::Refer {
            agency: agency(*a),
            decided: today,
            sent: None,
            pedagogisk_rapport: *report,
            legeerklaering_needed: *medical,
        },
        chat::Command::Accept(_) => Command::AcceptHandoff,
        chat::Command::Close { reason, .. } => Command::Close {
            reason: match reason {
                Some(chat::CloseWhy::Resolved) => CloseReason::Lost,
                Some(chat::CloseWhy::NoConcern) => CloseReason::IngenBekymring,
                Some(chat::CloseWhy::Moved) => CloseReason::Flyttet,
                Some(chat::CloseWhy::Special) => CloseReason::SaerskiltUtfall,
                Some(chat::CloseWhy::Other) => CloseReason::Annet,
                None if matches!(case.phase, Phase::Contact | Phase::Monitoring) => CloseReason::IngenBekymring,
                None => CloseReason::Lost,
            },
        },
        chat::Command::Help(_)
        | chat::Command::Cases
        | chat::Command::Case(_)
        | chat::Command::Agreement(_)
        | chat::Command::Coordinator { .. } => return None,
    })
}

/// The case number a chat command is about, if any.
pub fn case_of(command: &chat::Command) -> Option<&str> {
    match command {
        chat::Command::Case(n)
        | chat::Command::Agreement(n)
        | chat::Command::Accept(n)
        | chat::Command::Contact { case: n, .. }
        | chat::Command::Meeting { case: n, .. }
        | chat::Command::Measure { case: n, .. }
        | chat::Command::Evaluate { case: n, .. }
        | chat::Command::Phase { case: n, .. }
        | chat::Command::Refer { case: n, .. }
        | chat::Command::Coordinator { case: n, .. }
        | chat::Command::Close { case: n, .. } => Some(n.0.as_str()),
        chat::Command::Help(_) | chat::Command::Cases => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::model::{Handoff, PupilRef};
    use crate::cases::{CaseConfig, FindingChangeKind, FindingEvent, open_case};
    use crate::domain::roster::Level;

    fn case() -> Case {
        let now = "2026-11-02T08:00:00Z".parse().unwrap();
        let pupil = PupilRef {
            id: "p-1".into(),
            school: "sk-01".into(),
            initials: "E.H.".into(),
            class_name: Some("5B".into()),
            level: Level::Barneskole,
        };
        let event = FindingEvent {
            change: FindingChangeKind::Opened,
            criterion: "days-invalid".into(),
            tentative: false,
        };
        let config = CaseConfig::baerum();
        let escalate = Party::new("al-1", Role::Avdelingsleder);
        open_case("S-2026-0001", pupil, Some("t-1".into()), escalate, &event, now, &config).0
    }

    fn staff() -> SchoolStaff {
        SchoolStaff {
            avdelingsleder: Some("al-1".into()),
            ledelse: vec!["r-1".into()],
            ressursteam: vec!["rt-1".into()],
        }
    }

    #[test]
    fn the_card_names_no_more_than_initials_and_class() {
        let (plain, html) = card(&case(), "@kari:kommune.no");
        assert!(plain.starts_with("Sak S-2026-0001 – E.H. (5B)\nFase 2 – "), "{plain}");
        assert!(plain.contains("Ansvarlig: @kari:kommune.no (kontaktlærer)"), "{plain}");
        assert!(plain.contains("Neste frist: "), "{plain}");
        assert!(
            html.starts_with("<b>Sak S-2026-0001 – E.H. (5B)</b><br>Fase 2 – "),
            "{html}"
        );
    }

    #[test]
    fn roles_come_from_roster_ids_config_and_the_case() {
        let c = case();
        let p = parties(&c, "@kari:x", &["t-1".into()], &staff(), &[]);
        assert_eq!(p, vec![Party::new("t-1", Role::Kontaktlaerer)]);
        let p = parties(&c, "@al:x", &["al-1".into(), "rt-1".into()], &staff(), &[]);
        assert_eq!(
            p,
            vec![
                Party::new("al-1", Role::Avdelingsleder),
                Party::new("rt-1", Role::Ressursteam)
            ]
        );
        // A configured member of the ressursteam room counts as ressursteam.
        let p = parties(&c, "@rt:x", &[], &staff(), &["@rt:x".into()]);
        assert_eq!(p, vec![Party::new("@rt:x", Role::Ressursteam)]);
        assert!(parties(&c, "@nobody:x", &[], &staff(), &[]).is_empty());
        let mut c2 = c.clone();
        c2.pending_handoff = Some(Handoff {
            agency: Agency::Bup,
            person: "@bup:helse.no".into(),
            by: Party::new("al-1", Role::Avdelingsleder),
            at: "2026-11-02T09:00:00Z".parse().unwrap(),
        });
        let p = parties(&c2, "@bup:helse.no", &[], &staff(), &[]);
        assert_eq!(p, vec![Party::new("@bup:helse.no", Role::Fagkoordinator)]);
        assert_eq!(choose(&c2, &p, &Command::AcceptHandoff), Ok(p[0].clone()));
    }

    #[test]
    fn the_strongest_allowed_role_is_used_and_a_refusal_says_why() {
        let c = case();
        let close = Command::Close {
            reason: CloseReason::Annet,
        };
        let teacher = vec![Party::new("t-1", Role::Kontaktlaerer)];
        assert_eq!(choose(&c, &teacher, &close), Ok(teacher[0].clone()));
        let other = vec![Party::new("rt-1", Role::Ressursteam)];
        let e = choose(&c, &other, &Command::ReportToRessursteam).unwrap_err();
        assert!(e.contains("avdelingsleder melder saken"), "{e}");
        let e = choose(&c, &[], &close).unwrap_err();
        assert!(e.contains("ingen rolle i sak S-2026-0001"), "{e}");
    }

    #[test]
    fn chat_commands_become_workflow_steps() {
        let c = case();
        let now: DateTime<Utc> = "2026-11-02T10:00:00Z".parse().unwrap();
        let today = now.date_naive();
        let parsed = crate::matrix::commands::parse("!kontakt S-2026-0001 telefon bekymring").unwrap();
        assert_eq!(
            to_case_command(&parsed, &c, now, today),
            Some(Command::LogContact {
                with: Contacted::Foresatte,
                at: now,
                channel: Channel::Telefon,
                outcome: ContactOutcome::Bekymring,
            })
        );
        let parsed = crate::matrix::commands::parse("!møte S-2026-0001 2026-11-05 08:30").unwrap();
        let Some(Command::SetMeeting { at, kind, .. }) = to_case_command(&parsed, &c, now, today) else {
            panic!("a meeting");
        };
        assert_eq!(kind, MeetingKind::Samarbeid);
        assert_eq!(
            at.to_rfc3339(),
            "2026-11-05T07:30:00+00:00",
            "Oslo winter time is UTC+1"
        );
        let parsed =
            crate::matrix::commands::parse("!tiltak S-2026-0001 1 foresatte 2026-11-20 Følger til skolen").unwrap();
        assert!(matches!(
            to_case_command(&parsed, &c, now, today),
            Some(Command::AddMeasure {
                at_home: true,
                circle_box: CircleBox::RelasjonVoksne,
                ..
            })
        ));
        let parsed = crate::matrix::commands::parse("!lukk S-2026-0001").unwrap();
        assert_eq!(
            to_case_command(&parsed, &c, now, today),
            Some(Command::Close {
                reason: CloseReason::IngenBekymring
            })
        );
        assert_eq!(case_of(&parsed), Some("S-2026-0001"));
        let parsed = crate::matrix::commands::parse("!saker").unwrap();
        assert_eq!(to_case_command(&parsed, &c, now, today), None);
    }
}
