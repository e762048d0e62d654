//! Who may do what in a case: the routine's division of roles, as checks
//! that say why in Norwegian when they refuse.

use super::command::Command;
use super::config::{CaseConfig, SchoolStaff};
use super::machine::CaseError;
use super::model::*;

/// The party escalations go to at `school`: the configured avdelingsleder,
/// else the first of leadership, else a role placeholder so that nobody is lost.
pub fn escalation_party(config: &CaseConfig, school: &str) -> Party {
    let staff = config.school(school);
    if let Some(a) = staff.avdelingsleder {
        return Party::new(a, Role::Avdelingsleder);
    }
    if let Some(l) = staff.ledelse.first() {
        return Party::new(l.clone(), Role::Ledelse);
    }
    Party::new(format!("rolle:avdelingsleder@{school}"), Role::Avdelingsleder)
}

fn allowed(actor: &Party, command: &Command, roles: &[Role], why: &str) -> Result<(), CaseError> {
    if roles.contains(&actor.role) {
        Ok(())
    } else {
        Err(CaseError::NotAllowed {
            role: actor.role.norwegian(),
            action: command.norwegian(),
            why: why.to_string(),
        })
    }
}

/// Checks that `actor` may apply `command` to `case`.
pub fn authorize(case: &Case, actor: &Party, command: &Command) -> Result<(), CaseError> {
    use Role::*;
    let refuse = |why: String| CaseError::NotAllowed {
        role: actor.role.norwegian(),
        action: command.norwegian(),
        why,
    };
    if actor.id.trim().is_empty() {
        return Err(refuse("hvem som handler er ikke oppgitt".into()));
    }
    if actor.role == System {
        return Err(refuse("bare personer kan utføre steg i rutinen".into()));
    }
    // A role is a claim about this case: the contact teacher of this pupil,
    // the coordinator of this case.
    if actor.role == Kontaktlaerer
        && let Some(t) = &case.contact_teacher
        && *t != actor.id
    {
        return Err(refuse("du er ikke kontaktlærer for denne eleven".into()));
    }
    // Accepting and declining are about who was proposed, whatever their role.
    match (command, &case.pending_handoff) {
        (Command::AcceptHandoff | Command::DeclineHandoff, None) => {
            return Err(CaseError::Precondition("ingen overtakelse er foreslått i saken".into()));
        }
        (Command::AcceptHandoff, Some(h)) if h.person != actor.id => {
            return Err(CaseError::Precondition(format!(
                "bare den som er foreslått som fagkoordinator ({}) kan ta imot saken",
                h.person
            )));
        }
        (Command::DeclineHandoff, Some(h)) if h.person != actor.id && h.by.id != actor.id => {
            return Err(CaseError::Precondition(format!(
                "bare den som er foreslått som fagkoordinator ({}) eller den som foreslo, kan avslå",
                h.person
            )));
        }
        (Command::AcceptHandoff | Command::DeclineHandoff, Some(_)) => return Ok(()),
        _ => {}
    }
    if actor.role == Fagkoordinator && case.coordinator.as_ref().is_none_or(|c| c.person != actor.id) {
        return Err(refuse("du er ikke fagkoordinator i denne saken".into()));
    }
    let staff = [Kontaktlaerer, Avdelingsleder, Ressursteam, Fagkoordinator, Ledelse];
    match command {
        Command::LogContact { outcome, .. } => {
            if case.phase == Phase::Contact && matches!(outcome, ContactOutcome::Concern | ContactOutcome::NoConcern) {
                allowed(
                    actor,
                    command,
                    &[Kontaktlaerer, Avdelingsleder, Ledelse],
                    "konklusjonen i fase 2 tas av kontaktlærer eller ledelsen",
                )
            } else {
                allowed(actor, command, &staff, "")
            }
        }
        // The seed: «Skolen innkaller og leder møtene, og har ansvar for å
        // skrive referat», also when a coordinator has taken over.
        Command::SetMeeting { kind, .. } | Command::MeetingHeld { kind, .. } => match kind {
            MeetingKind::Samarbeid => allowed(
                actor,
                command,
                &[Kontaktlaerer, Avdelingsleder, Ledelse],
                "skolen ved kontaktlærer eller ledelsen kaller inn til og leder samarbeidsmøtene; fagkoordinator lager dagsorden sammen med skolen",
            ),
            MeetingKind::Ressursteam => allowed(
                actor,
                command,
                &[Avdelingsleder, Ledelse, Ressursteam],
                "skolen kaller inn til møter i ressursteamet",
            ),
        },
        Command::AddParticipants { .. } | Command::RecordDecision { .. } | Command::MinutesSent { .. } => allowed(
            actor,
            command,
            &[Kontaktlaerer, Avdelingsleder, Ledelse, Ressursteam],
            "skolen leder møtene og skriver referatet",
        ),
        Command::MapBox { .. } | Command::AddMeasure { .. } | Command::NotePupilView { .. } => {
            allowed(actor, command, &staff, "")
        }
        Command::CreateAgreement { .. } => allowed(
            actor,
            command,
            &[Kontaktlaerer, Avdelingsleder, Ledelse, Fagkoordinator],
            "avtalen lages av kontaktlærer, ledelsen eller fagkoordinator i møtet",
        ),
        Command::Evaluate { .. } => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse, Fagkoordinator],
            "avdelingsleder har ansvaret for evalueringen i fase 3",
        ),
        Command::ChangePhase { to } => match to {
            Phase::Monitoring | Phase::Contact | Phase::Mapping => allowed(
                actor,
                command,
                &[Kontaktlaerer, Avdelingsleder, Ledelse],
                "fase 2 og 3 styres av kontaktlærer og avdelingsleder",
            ),
            Phase::Further => allowed(
                actor,
                command,
                &[Avdelingsleder, Ledelse, Ressursteam],
                "overgang til fase 4 besluttes av avdelingsleder, ledelsen eller ressursteamet",
            ),
        },
        Command::ReportToRessursteam => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse],
            "avdelingsleder melder saken til ressursteamet",
        ),
        Command::Refer { .. } => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse, Ressursteam, Fagkoordinator],
            "henvisninger besluttes av ledelsen, ressursteamet eller fagkoordinator",
        ),
        Command::ProposeHandoff { .. } => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse, Ressursteam],
            "hvem som blir fagkoordinator avgjøres i ressursteamet",
        ),
        Command::AcceptHandoff | Command::DeclineHandoff => Ok(()),
        Command::MarkLongTerm => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse, Ressursteam, Fagkoordinator],
            "",
        ),
        Command::NoteSpecialOutcome { .. } => allowed(
            actor,
            command,
            &[Avdelingsleder, Ledelse],
            "særskilte utfall besluttes av skolens ledelse",
        ),
        Command::Close { .. } => {
            let mut roles = vec![Avdelingsleder, Ledelse];
            if matches!(case.phase, Phase::Contact | Phase::Monitoring) {
                roles.push(Kontaktlaerer);
            }
            if case.phase == Phase::Further {
                roles.push(Fagkoordinator);
            }
            allowed(
                actor,
                command,
                &roles,
                "etter fase 2 avsluttes saken av avdelingsleder, ledelsen eller fagkoordinator",
            )
        }
    }
}

/// The roles a person holds in a case, strongest first. `id` is who they
/// are (a Matrix id in chat, `--as` on the command line); `other_ids` their
/// other ids (staff ids from the roster); `room_members` the configured
/// members of the case's ressursteam room. Roles come from the roster (the
/// contact teacher), the case settings (avdelingsleder, leadership,
/// ressursteam) and the case itself (the coordinator): never from a claim.
pub fn parties(
    case: &Case,
    id: &str,
    other_ids: &[String],
    staff: &SchoolStaff,
    room_members: &[String],
) -> Vec<Party> {
    let mut ids: Vec<&str> = other_ids.iter().map(String::as_str).collect();
    ids.push(id);
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
    let coordinator = case.coordinator.as_ref().and_then(|c| find(&c.person));
    let proposed = case.pending_handoff.as_ref().and_then(|h| find(&h.person));
    if let Some(c) = coordinator.or(proposed) {
        out.push(Party::new(c, Role::Fagkoordinator));
    }
    if let Some(r) = staff.ressursteam.iter().find_map(|r| find(r)) {
        out.push(Party::new(r, Role::Ressursteam));
    } else if room_members.iter().any(|m| m == id) {
        out.push(Party::new(id, Role::Ressursteam));
    }
    out
}

/// The first of `parties` that may apply `command`, else the refusal of the
/// strongest (or that the person has no role in the case).
pub fn choose(case: &Case, parties: &[Party], command: &Command) -> Result<Party, CaseError> {
    let mut first_refusal = None;
    for p in parties {
        match authorize(case, p, command) {
            Ok(()) => return Ok(p.clone()),
            Err(e) => {
                first_refusal.get_or_insert(e);
            }
        }
    }
    Err(first_refusal.unwrap_or_else(|| CaseError::NoRole(case.number.clone())))
}
