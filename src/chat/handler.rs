//! Chat commands → workflow steps, with roles from roster and configuration.

use super::card::{case_of, choose, parties, to_case_command};
use super::dialogue::{AgreementDialogue, Outcome};
use super::{Chat, ChatError};
use crate::cases::model::{Case, Party, Role};
use crate::cases::{Command, SubGoalInput};
use crate::domain::dates::school_date_utc;
use crate::matrix::commands::{self as chat};
use crate::matrix::{CommandContext, CommandHandler, Reply, case_room, escape_html, notice};
use crate::render::{Document, case_context, when};
use crate::store::RoomPlan;
use crate::workflow::{self, WorkflowError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// What the person sees when tilstede itself failed.
const FAILED: &str = "Noe gikk galt hos tilstede, og ingenting ble endret. Prøv igjen om litt; feilen er logget.";

impl CommandHandler for Chat {
    fn handle<'a>(&'a self, context: &'a CommandContext, command: chat::Command) -> BoxFuture<'a, Reply> {
        Box::pin(async move {
            match self.command(context, command, Utc::now()).await {
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
            match self.dialogue(context, text, Utc::now()).await {
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
    async fn parties_of(&self, case: &Case, sender: &str) -> Result<Vec<Party>, ChatError> {
        let staff_ids: Vec<String> = self
            .store()
            .staff_by_matrix_id(sender)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let staff = self.inner.cases.school(&case.pupil.school);
        Ok(parties(
            case,
            sender,
            &staff_ids,
            &staff,
            self.room_members(&case.pupil.school),
        ))
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
        let Some(number) = case_of(&command) else {
            return Ok(Reply::text(chat::help_text()));
        };
        let Some(case) = self.store().case_state(number).await? else {
            return Ok(Reply::text(format!("Fant ingen sak med nummer «{number}».")));
        };
        if let Err(why) = scope(context, &case) {
            return Ok(Reply::text(format!("Nei: {why}.")));
        }
        let parties = self.parties_of(&case, &context.sender).await?;
        match &command {
            chat::Command::Case(_) => {
                let Some(reader) = parties.first() else {
                    return Ok(Reply::text(format!(
                        "Nei: du har ingen rolle i sak {}, så du får ikke se den.",
                        case.number
                    )));
                };
                let case = self.store().read_case(&case.number, reader, now).await?;
                let responsible = self
                    .matrix_id(&case.responsible.id)
                    .await?
                    .unwrap_or_else(|| case.responsible.id.clone());
                Ok(self.show(&case, &responsible))
            }
            chat::Command::Agreement(_) => {
                let probe = Command::CreateAgreement {
                    place: String::new(),
                    present: Vec::new(),
                    goal: String::new(),
                    sub_goals: Vec::<SubGoalInput>::new(),
                    plan_b: String::new(),
                    plan_b_responsible: String::new(),
                    valid_days: None,
                    evaluation_date: None,
                };
                if let Err(why) = choose(&case, &parties, &probe) {
                    return Ok(Reply::text(format!("Nei: {why}.")));
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
            chat::Command::Coordinator { user, role, .. } => {
                self.handoff(context, &case, &parties, user, *role, now).await
            }
            other => {
                let today = school_date_utc(now);
                let Some(step) = to_case_command(other, &case, now, today) else {
                    return Ok(Reply::text(chat::help_text()));
                };
                self.step(&case, &parties, step, now).await
            }
        }
    }

    /// Applies one workflow step as the strongest role that may take it.
    async fn step(
        &self,
        case: &Case,
        parties: &[Party],
        step: Command,
        now: DateTime<Utc>,
    ) -> Result<Reply, ChatError> {
        let actor = match choose(case, parties, &step) {
            Ok(p) => p,
            Err(why) => {
                // The refused attempt goes into the audit log too.
                if let Some(p) = parties.first() {
                    let _ = workflow::apply_case_command(self.store(), &case.number, p, &step, now, &self.inner.cases)
                        .await;
                }
                return Ok(Reply::text(format!("Nei: {why}.")));
            }
        };
        match workflow::apply_case_command(self.store(), &case.number, &actor, &step, now, &self.inner.cases).await {
            Ok((after, _)) => {
                self.refresh_card(&after).await?;
                self.relay(now).await?;
                Ok(Reply::text(format!(
                    "Registrert i sak {} ({} som {}). {}",
                    after.number,
                    step.norwegian(),
                    actor.role.norwegian(),
                    status(&after)
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
        parties: &[Party],
        user: &str,
        role: chat::Agency,
        now: DateTime<Utc>,
    ) -> Result<Reply, ChatError> {
        if !self.server_allowed(user) {
            let server = user.split_once(':').map(|(_, s)| s).unwrap_or(user);
            return Ok(Reply::text(format!(
                "Nei: tjeneren «{server}» er ikke godkjent for saksrom. IT kan legge den til i matrix.allowed_servers."
            )));
        }
        let step = Command::ProposeHandoff {
            agency: super::card::agency(role),
            person: user.to_string(),
        };
        let reply = self.step(case, parties, step, now).await?;
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
        let summary = self
            .inner
            .renderer
            .render(Document::Overforing, &case_context(&after, now, numbers.as_ref()))?;
        let ask = format!(
            "{user}: du er foreslått som fagkoordinator i sak {}. Skriv «!aksepter {}» her for å overta ansvaret.",
            after.number, after.number
        );
        let posts = vec![
            notice(&key, &summary.plain, &summary.html, &[]),
            notice(&key, &ask, &escape_html(&ask), &[user.to_string()]),
        ];
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
        if cases.is_empty() {
            return Ok(Reply::text("Ingen åpne saker her."));
        }
        let mut out = format!("{} åpne saker:\n", cases.len());
        for c in &cases {
            out.push_str(&format!(
                "{} – {} – fase {}{}\n",
                c.number,
                c.pupil_label,
                c.phase,
                if c.long_term { " – langvarig" } else { "" }
            ));
        }
        Ok(Reply::text(out.trim_end().to_string()))
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
                let parties = self.parties_of(&case, &context.sender).await?;
                self.step(&case, &parties, step, now).await?
            }
        }))
    }
}
