//! The case card: the root of the case's thread in the ressursteam room.

use crate::cases::model::Case;
use crate::matrix::escape_html;
use crate::render::when;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::config::SchoolStaff;
    use crate::cases::model::{
        Agency, Channel, CircleBox, CloseReason, ContactOutcome, Contacted, Handoff, MeetingKind, Party, PupilRef, Role,
    };
    use crate::cases::policy::{choose, parties};
    use crate::cases::{CaseConfig, Command, FindingChangeKind, FindingEvent, open_case};
    use crate::domain::roster::Level;
    use crate::matrix::commands::parse;
    use chrono::{DateTime, Utc};

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
            latest: None,
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
        // Someone else cannot accept, and is told who can, in plain words.
        let other = vec![Party::new("@x:helse.no", Role::Fagkoordinator)];
        let e = choose(&c2, &other, &Command::AcceptHandoff).unwrap_err().to_string();
        assert_eq!(
            e,
            "bare den som er foreslått som fagkoordinator (@bup:helse.no) kan ta imot saken"
        );
    }

    #[test]
    fn the_strongest_allowed_role_is_used_and_a_refusal_says_why() {
        let c = case();
        let close = Command::Close {
            reason: CloseReason::Other,
        };
        let teacher = vec![Party::new("t-1", Role::Kontaktlaerer)];
        assert_eq!(choose(&c, &teacher, &close), Ok(teacher[0].clone()));
        let other = vec![Party::new("rt-1", Role::Ressursteam)];
        let e = choose(&c, &other, &Command::ReportToRessursteam)
            .unwrap_err()
            .to_string();
        assert!(e.contains("avdelingsleder melder saken"), "{e}");
        let e = choose(&c, &[], &close).unwrap_err().to_string();
        assert!(e.contains("ingen rolle i sak S-2026-0001"), "{e}");
    }

    #[test]
    fn chat_commands_become_workflow_steps() {
        let c = case();
        let now: DateTime<Utc> = "2026-11-02T10:00:00Z".parse().unwrap();
        let parsed = parse("!kontakt S-2026-0001 telefon bekymring").unwrap();
        assert_eq!(
            parsed.to_step(&c, now),
            Some(Command::LogContact {
                with: Contacted::Parents,
                at: None,
                channel: Channel::Phone,
                outcome: ContactOutcome::Concern,
            })
        );
        let parsed = parse("!kontakt S-2026-0001 telefon ikke-nådd tid=10:30").unwrap();
        let Some(Command::LogContact { at: Some(at), .. }) = parsed.to_step(&c, now) else {
            panic!("a contact with a time");
        };
        assert_eq!(at.to_rfc3339(), "2026-11-02T09:30:00+00:00");
        let parsed = parse("!møte S-2026-0001 2026-11-05 08:30").unwrap();
        let Some(Command::SetMeeting { at, kind, .. }) = parsed.to_step(&c, now) else {
            panic!("a meeting");
        };
        assert_eq!(kind, MeetingKind::Samarbeid);
        assert_eq!(
            at.to_rfc3339(),
            "2026-11-05T07:30:00+00:00",
            "Oslo winter time is UTC+1"
        );
        let parsed = parse("!tiltak S-2026-0001 1 foresatte 2026-11-20 Følger til skolen").unwrap();
        assert!(matches!(
            parsed.to_step(&c, now),
            Some(Command::AddMeasure {
                at_home: true,
                circle_box: CircleBox::RelasjonVoksne,
                ..
            })
        ));
        let parsed = parse("!lukk S-2026-0001").unwrap();
        assert_eq!(
            parsed.to_step(&c, now),
            Some(Command::Close {
                reason: CloseReason::NoConcern
            })
        );
        assert_eq!(parsed.case(), Some("S-2026-0001"));
        let parsed = parse("!saker").unwrap();
        assert_eq!(parsed.to_step(&c, now), None);
    }
}
