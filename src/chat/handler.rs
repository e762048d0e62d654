//! Chat commands → workflow steps, with roles from roster and configuration.

use super::attachments::pdf_media;
use super::dialogue::{AgreementDialogue, Outcome};
use super::{Chat, ChatError};
use crate::cases::model::{Agency, Case, Party, Role};
use crate::cases::{Command, SubGoalInput};
use crate::matrix::commands::{self as chat};
use crate::matrix::{
    CommandContext, CommandHandler, Reply, case_room, case_thread_media, escape_html, media_post, notice,
};
use crate::render::{Document, case_context, when};
use crate::store::RoomPlan;
use crate::workflow::{self, Person, WorkflowError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// What the person sees when tilstede itself failed.
const FAILED: &str = "Noe gikk galt hos tilstede, og ingenting ble endret. Prøv igjen om litt; feilen er logget.";

impl CommandHandler for Chat {
    fn handle<'a>(&'a self, context: &'a CommandContext, command: chat::Command) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            match self.command(context, command, self.now()).await {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::error!(error = %e, room = %context.room_key, "chat command failed");
                    Reply::text(FAILED)
                }
            }
        })
    }

    fn handle_text<'a>(&'a self, context: &'a CommandContext, text: &'a str) -> BoxFuture<'a, Option<Reply>> {
        Box::pin(async move {
            match self.dialogue(context, text, self.now()).await {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::error!(error = %e, room = %context.room_key, "chat dialogue failed");
                    Some(Reply::text(FAILED))
                }
            }
        })
    }
}

/// Whether a case may be worked on from this room: its school's ressursteam
/// room, its own case room, or a direct message.
fn scope(context: &CommandContext, case: &Case) -> Result<(), String> {
    match context.room_kind.as_str() {
        "ressursteam" if context.room_key != crate::matrix::school_room(&case.pupil.school) => Err(format!(
            "sak {} hører til en annen skole; bruk ressursteam-rommet for den skolen",
            case.number
        )),
        "case" if context.room_key != case_room(&case.number) => {
            Err(format!("dette saksrommet gjelder en annen sak enn {}", case.number))
        }
        _ => Ok(()),
    }
}

/// The answer to `!saker`: how many, then one line per case.
pub(super) fn list_text(cases: &[crate::store::CaseSummary]) -> String {
    if cases.is_empty() {
        return "Ingen åpne saker her.".into();
    }
    let mut out = format!("{}:\n", crate::render::count_len(cases.len(), "åpen sak", "åpne saker"));
    for c in cases {
        out.push_str(&format!(
            "{} – {} – fase {}{}\n",
            c.number,
            c.pupil_label,
            c.phase,
            if c.long_term { " – langvarig" } else { "" }
        ));
    }
    out.trim_end().to_string()
}

fn status(case: &Case) -> String {
    let next = case
        .next_deadline()
        .map(|d| format!("{} innen {}", d.kind.norwegian(), when(d.due)))
        .unwrap_or_else(|| "ingen".into());
    format!(
        "{}. Neste frist: {}.",
        super::card::capitalized(case.phase.norwegian()),
        next
    )
}

impl Chat {
    /// The person behind a Matrix id, with the ressursteam room members of
    /// `school` (who count as ressursteam there).
    async fn person(&self, sender: &str, school: &str) -> Result<Person, ChatError> {
        let mut person = Person::identify(self.store(), sender).await?;
        person.room_members = self.room_members(school).to_vec();
        Ok(person)
    }

    async fn parties_of(&self, case: &Case, sender: &str) -> Result<Vec<Party>, ChatError> {
        Ok(self
            .person(sender, &case.pupil.school)
            .await?
            .parties(case, &self.inner.cases))
    }

    /// Audits a refusal decided here (the room, the server) and says it.
    async fn refused(
        &self,
        case: &Case,
        sender: &str,
        action: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<Reply, ChatError> {
        let parties = self.parties_of(case, sender).await?;
        let (who, role) = match parties.first() {
            Some(p) => (p.id.clone(), crate::store::role_text(p.role)),
            None => (sender.to_string(), "ingen".to_string()),
        };
        workflow::refuse(self.store(), &case.number, &who, &role, action, why, now).await?;
        Ok(Reply::text(format!("Nei: {why}.")))
    }

    async fn command(
        &self,
        context: &CommandContext,
        command: chat::Command,
        now: DateTime<Utc>,
    ) -> Result<Reply, ChatError> {
        if command == chat::Command::Cases {
            return self.list(context, now).await;
        }
        let Some(number) = command.case() else {
            return Ok(Reply::text(chat::help_text()));
        };
        let Some(case) = self.store().case_state(number).await? else {
            return Ok(Reply::text(format!("Fant ingen sak med nummer «{number}».")));
        };
        if let Err(why) = scope(context, &case) {
            let action = command.to_step(&case, now).map(|s| s.name()).unwrap_or("read");
            return self.refused(&case, &context.sender, action, &why, now).await;
        }
        match &command {
            chat::Command::Case(_) => {
                let parties = self.parties_of(&case, &context.sender).await?;
                let Some(reader) = parties.first() else {
                    return self
                        .refused(
                            &case,
                            &context.sender,
                            "read",
                            &format!("du har ingen rolle i sak {}, så du får ikke se den", case.number),
                            now,
                        )
                        .await;
                };
                let case = self.store().read_case(&case.number, reader, now).await?;
                let responsible = self
                    .matrix_id(&case.responsible.id)
                    .await?
                    .unwrap_or_else(|| case.responsible.id.clone());
                Ok(self.show(&case, &responsible))
            }
            chat::Command::Agreement { terms: None, .. } => {
                let probe = Command::CreateAgreement {
                    place: String::new(),
                    present: Vec::new(),
                    goal: String::new(),
                    sub_goals: Vec::<SubGoalInput>::new(),
                    plan_b: String::new(),
                    plan_b_responsible: String::new(),
                    valid_days: None,
                    evaluation_date: None,
                    pupil_view: None,
                };
                let person = self.person(&context.sender, &case.pupil.school).await?;
                if let Err(why) = person.choose(&case, &self.inner.cases, None, &probe) {
                    return self
                        .refused(&case, &context.sender, probe.name(), &why.to_string(), now)
                        .await;
                }
                let (dialogue, question) = AgreementDialogue::start(&case.number);
                self.store()
                    .put_dialogue(
                        &context.room_key,
                        &context.thread_root,
                        &context.sender,
                        Some(&serde_json::to_string(&dialogue)?),
                    )
                    .await?;
                Ok(Reply::text(question))
            }
            chat::Command::Coordinator { user, role, .. } => self.handoff(context, &case, user, *role, now).await,
            chat::Command::Suggestions(_) => {
                let parties = self.parties_of(&case, &context.sender).await?;
                let Some(reader) = parties.first() else {
                    return self
                        .refused(
                            &case,
                            &context.sender,
                            "read",
                            &format!("du har ingen rolle i sak {}, så du får ikke se den", case.number),
                            now,
                        )
                        .await;
                };
                let case = self.store().read_case(&case.number, reader, now).await?;
                Ok(Reply::text(crate::cases::suggestions::for_risks(&case)))
            }
            other => {
                let Some(step) = other.to_step(&case, now) else {
                    return Ok(Reply::text(chat::help_text()));
                };
                // A risk noted in a box comes back with small measures for it.
                let extra = match other {
                    chat::Command::Map {
                        circle_box,
                        side: crate::cases::model::Side::Risk,
                        ..
                    } => Some(crate::cases::suggestions::for_box_text(*circle_box)),
                    _ => None,
                };
                let mut reply = self.step(&case, &context.sender, step, now).await?;
                if let Some(extra) = extra
                    && reply.plain.starts_with("Registrert")
                {
                    reply = Reply::text(format!("{}\n{extra}", reply.plain));
                }
                Ok(reply)
            }
        }
    }

    /// Applies one workflow step as the strongest role the sender holds
    /// that may take it; a refusal is audited and says why.
    async fn step(&self, case: &Case, sender: &str, step: Command, now: DateTime<Utc>) -> Result<Reply, ChatError> {
        let person = self.person(sender, &case.pupil.school).await?;
        match workflow::act(self.store(), &self.inner.cases, &person, None, &case.number, &step, now).await {
            Ok(acted) => {
                self.refresh_card(&acted.case).await?;
                self.relay(now).await?;
                Ok(Reply::text(format!(
                    "Registrert i sak {} ({} som {}). {}",
                    acted.case.number,
                    step.norwegian(),
                    acted.actor.role.norwegian(),
                    status(&acted.case)
                )))
            }
            Err(WorkflowError::Refused(e)) => Ok(Reply::text(format!("Nei: {e}."))),
            Err(WorkflowError::Conflict(_)) => Ok(Reply::text(
                "Saken ble endret av noen andre samtidig. Se !sak og prøv igjen.",
            )),
            Err(e) => Err(e.into()),
        }
    }

    async fn handoff(
        &self,
        context: &CommandContext,
        case: &Case,
        user: &str,
        role: Agency,
        now: DateTime<Utc>,
    ) -> Result<Reply, ChatError> {
        let step = Command::ProposeHandoff {
            agency: role,
            person: user.to_string(),
        };
        if !self.server_allowed(user) {
            let server = user.split_once(':').map(|(_, s)| s).unwrap_or(user);
            let why = format!(
                "tjeneren «{server}» er ikke godkjent for saksrom. IT kan legge den til i matrix.allowed_servers"
            );
            return self.refused(case, &context.sender, step.name(), &why, now).await;
        }
        let reply = self.step(case, &context.sender, step, now).await?;
        let Some(after) = self.store().case_state(&case.number).await? else {
            return Ok(reply);
        };
        if after.pending_handoff.as_ref().is_none_or(|h| h.person != user) {
            return Ok(reply);
        }
        // Exactly the people on the case: the coordinator, who proposed it,
        // and who is responsible now.
        let mut members = vec![user.to_string(), context.sender.clone()];
        if let Some(r) = self.matrix_id(&after.responsible.id).await? {
            members.push(r);
        }
        members.retain(|m| *m != self.inner.matrix.user);
        members.sort();
        members.dedup();
        let key = case_room(&after.number);
        self.store()
            .plan_matrix_room(&RoomPlan {
                room_key: key.clone(),
                kind: "case".into(),
                name: Some(format!("Sak {}", after.number)),
                members,
            })
            .await?;
        let numbers = workflow::agreement_numbers(self.store(), &after, now, &self.inner.cases).await?;
        let patterns = self.pattern_lines(&after, None, now).await?;
        let context = crate::render::with_patterns(case_context(&after, now, numbers.as_ref()), &patterns);
        let summary = self.inner.renderer.render(Document::Overforing, &context)?;
        let ask = format!(
            "{user}: du er foreslått som fagkoordinator i sak {}. Skriv «!aksepter {}» her for å overta ansvaret.",
            after.number, after.number
        );
        let mut posts = vec![notice(&key, &summary.plain, &summary.html, &[])];
        // The overføring is a final document: its PDF/A goes to the case
        // room and the case thread, and to the archive.
        let sequence = self
            .store()
            .case_audit(&after.number)
            .await?
            .iter()
            .filter(|a| a.action == "propose-handoff")
            .count()
            .max(1) as u32;
        let chart = self.case_chart(&after, numbers.as_ref(), now).await?;
        if let Some(pdf) = self
            .final_pdf(
                &after,
                crate::archive::DocumentKind::Overforing,
                sequence,
                &summary.markdown,
                chart.as_ref(),
                now,
            )
            .await?
        {
            posts.push(media_post(&key, &pdf.file_name, pdf_media(&pdf.file_name, &pdf.pdf)));
            if let Some(room) = self.school_room(&after.pupil.school) {
                posts.push(case_thread_media(
                    &room,
                    &after.number,
                    &pdf.file_name,
                    pdf_media(&pdf.file_name, &pdf.pdf),
                ));
            }
            if let Some(entry) = &pdf.archive {
                self.store().archive_enqueue(entry, now).await?;
            }
        }
        posts.push(notice(&key, &ask, &escape_html(&ask), &[user.to_string()]));
        self.store().relay_posts(None, Some(&after.number), &posts, &[]).await?;
        Ok(Reply {
            plain: format!(
                "{} Et kryptert saksrom lages for {user}; ansvaret flyttes først når {user} skriver !aksepter {}.",
                reply.plain, after.number
            ),
            html: format!(
                "{} Et kryptert saksrom lages for {}; ansvaret flyttes først når {} skriver !aksepter {}.",
                reply.html,
                escape_html(user),
                escape_html(user),
                escape_html(&after.number)
            ),
            mentions: vec![user.to_string()],
        })
    }

    fn show(&self, case: &Case, responsible: &str) -> Reply {
        let mut lines = vec![
            format!("Sak {} – {}", case.number, case.pupil_label()),
            status(case),
            format!("Ansvarlig: {responsible} ({}).", case.responsible.role.norwegian()),
            format!(
                "Kontakter logget: {}. Tiltak som venter på avtale: {}. Avtaler: {}. Henvisninger: {}.",
                case.contacts.len(),
                case.measures.len(),
                case.agreements.len(),
                case.referrals.len()
            ),
        ];
        if let Some(a) = case.current_agreement() {
            lines.push(format!(
                "Gjeldende avtale {}: evaluering {}.",
                a.number,
                crate::domain::dates::norwegian(a.evaluation_date)
            ));
        }
        if let Some(c) = &case.coordinator {
            lines.push(format!("Fagkoordinator: {} ({}).", c.person, c.agency.norwegian()));
        }
        Reply::text(lines.join("\n"))
    }

    async fn list(&self, context: &CommandContext, now: DateTime<Utc>) -> Result<Reply, ChatError> {
        let cases = match context.room_kind.as_str() {
            "ressursteam" => {
                let school = context.room_key.trim_start_matches("school:");
                let reader = Party::new(context.sender.clone(), Role::Ressursteam);
                self.store().list_cases(Some(school), false, &reader, now).await?
            }
            _ => {
                // Elsewhere: the open cases where the sender has a role.
                let mut mine = Vec::new();
                for c in self.store().cases_raw(None, false).await? {
                    if context.room_kind == "case" && context.room_key != case_room(&c.number) {
                        continue;
                    }
                    if let Some(p) = self.parties_of(&c, &context.sender).await?.first() {
                        let c = self.store().read_case(&c.number, p, now).await?;
                        mine.push(crate::store::CaseSummary::of(&c));
                    }
                }
                mine
            }
        };
        Ok(Reply::text(list_text(&cases)))
    }

    async fn dialogue(
        &self,
        context: &CommandContext,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Reply>, ChatError> {
        let store = self.store();
        let Some(saved) = store
            .dialogue(&context.room_key, &context.thread_root, &context.sender)
            .await?
        else {
            return Ok(None);
        };
        let mut dialogue: AgreementDialogue = serde_json::from_str(&saved)?;
        let outcome = dialogue.answer(text);
        let keep = matches!(outcome, Outcome::Ask(_) | Outcome::Again(_));
        let state = if keep {
            Some(serde_json::to_string(&dialogue)?)
        } else {
            None
        };
        store
            .put_dialogue(
                &context.room_key,
                &context.thread_root,
                &context.sender,
                state.as_deref(),
            )
            .await?;
        Ok(Some(match outcome {
            Outcome::Ask(q) | Outcome::Again(q) => Reply::text(q),
            Outcome::Cancelled => Reply::text("Avbrutt; ingen avtale ble laget."),
            Outcome::Done(step) => {
                let Some(case) = store.case_state(&dialogue.case).await? else {
                    return Ok(Some(Reply::text(format!(
                        "Fant ingen sak med nummer «{}».",
                        dialogue.case
                    ))));
                };
                self.step(&case, &context.sender, *step, now).await?
            }
        }))
    }
}
