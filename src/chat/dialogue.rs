//! The samarbeidsavtale dialogue: `!avtale SAK` starts it, and the person
//! answers one question at a time in the thread. An explicit state machine,
//! pure and serialisable, so it survives a restart (the store keeps it per
//! room, thread and user).

use crate::cases::{Command, SubGoalInput};
use serde::{Deserialize, Serialize};

/// Where the dialogue is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Waiting for the goal.
    Goal,
    /// Waiting for the sub-goals.
    SubGoals,
    /// Waiting for Plan B.
    PlanB,
    /// Waiting for who is responsible for Plan B.
    PlanBResponsible,
    /// Waiting for the pupil's own view.
    PupilView,
    /// Waiting for "ja" to save.
    Confirm,
}

/// A dialogue in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementDialogue {
    /// The case.
    pub case: String,
    /// The step.
    pub step: Step,
    /// The goal.
    pub goal: String,
    /// Sub-goals.
    pub sub_goals: Vec<SubGoalInput>,
    /// Plan B.
    pub plan_b: String,
    /// Responsible for Plan B.
    pub plan_b_responsible: String,
    /// What the pupil said they want.
    #[serde(default)]
    pub pupil_view: Option<String>,
}

/// What one answer led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Ask the next question (the dialogue goes on).
    Ask(String),
    /// The answer was not usable: say why and ask again.
    Again(String),
    /// Done: apply this command.
    Done(Box<Command>),
    /// The person cancelled.
    Cancelled,
}

const SUB_GOALS_QUESTION: &str = "2/5 Delmål, ett per linje, med varighet i uker etter semikolon. \
Eksempel: «Møter til første time tre dager i uka; 2».";

impl AgreementDialogue {
    /// A new dialogue for `case`, and its first question.
    pub fn start(case: &str) -> (AgreementDialogue, String) {
        (
            AgreementDialogue {
                case: case.to_string(),
                step: Step::Goal,
                goal: String::new(),
                sub_goals: Vec::new(),
                plan_b: String::new(),
                plan_b_responsible: String::new(),
                pupil_view: None,
            },
            format!(
                "Samarbeidsavtale for sak {case}. Svar i denne tråden; «avbryt» stopper. \
1/5 Hva er hovedmålet? Skriv det sammen med eleven og foresatte."
            ),
        )
    }

    /// Takes one answer.
    pub fn answer(&mut self, text: &str) -> Outcome {
        let text = text.trim();
        if matches!(text.to_lowercase().as_str(), "avbryt" | "cancel") {
            return Outcome::Cancelled;
        }
        if text.is_empty() {
            return Outcome::Again("Svaret var tomt.".into());
        }
        match self.step {
            Step::Goal => {
                self.goal = text.to_string();
                self.step = Step::SubGoals;
                Outcome::Ask(SUB_GOALS_QUESTION.into())
            }
            Step::SubGoals => match parse_sub_goals(text) {
                Ok(goals) => {
                    self.sub_goals = goals;
                    self.step = Step::PlanB;
                    Outcome::Ask(
                        "3/5 Hva er plan B: hva skjer hvis eleven ikke møter som avtalt, og hvem ringer hvem?".into(),
                    )
                }
                Err(e) => Outcome::Again(format!("{e} {SUB_GOALS_QUESTION}")),
            },
            Step::PlanB => {
                self.plan_b = text.to_string();
                self.step = Step::PlanBResponsible;
                Outcome::Ask("4/5 Hvem er ansvarlig for plan B?".into())
            }
            Step::PlanBResponsible => {
                self.plan_b_responsible = text.to_string();
                self.step = Step::PupilView;
                Outcome::Ask(
                    "5/5 Hva sier eleven selv om målet og tiltakene, med elevens egne ord? Skriv «-» hvis eleven ikke har sagt noe ennå."
                        .into(),
                )
            }
            Step::PupilView => {
                self.pupil_view = (text != "-").then(|| text.to_string());
                self.step = Step::Confirm;
                Outcome::Ask(self.summary())
            }
            Step::Confirm => match text.to_lowercase().as_str() {
                "ja" | "yes" => Outcome::Done(Box::new(Command::CreateAgreement {
                    place: "skolen".into(),
                    // Who is there comes from the meeting's record.
                    present: Vec::new(),
                    goal: self.goal.clone(),
                    sub_goals: self.sub_goals.clone(),
                    plan_b: self.plan_b.clone(),
                    plan_b_responsible: self.plan_b_responsible.clone(),
                    valid_days: None,
                    evaluation_date: None,
                    pupil_view: self.pupil_view.clone(),
                })),
                _ => Outcome::Again("Skriv «ja» for å lagre avtalen eller «avbryt».".into()),
            },
        }
    }

    fn summary(&self) -> String {
        let mut s = format!("Avtalen for sak {}:\nMål: {}\n", self.case, self.goal);
        for (i, g) in self.sub_goals.iter().enumerate() {
            s.push_str(&format!(
                "Delmål {}: {} ({})\n",
                i + 1,
                g.text,
                crate::render::count(g.weeks, "uke", "uker")
            ));
        }
        if let Some(v) = &self.pupil_view {
            s.push_str(&format!("Eleven selv: {v}\n"));
        }
        s.push_str(&format!(
            "Plan B: {} (ansvarlig: {})\nTiltakene som er registrert i saken tas med. Skriv «ja» for å lagre, eller «avbryt».",
            self.plan_b, self.plan_b_responsible
        ));
        s
    }
}

fn parse_sub_goals(text: &str) -> Result<Vec<SubGoalInput>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let (goal, weeks) = line
            .rsplit_once(';')
            .ok_or_else(|| format!("Linje {} mangler «; uker».", i + 1))?;
        let weeks: u32 = weeks
            .trim()
            .parse()
            .ok()
            .filter(|w| (1..=52).contains(w))
            .ok_or_else(|| format!("Linje {}: «{}» er ikke et antall uker (1–52).", i + 1, weeks.trim()))?;
        if goal.trim().is_empty() {
            return Err(format!("Linje {} mangler delmålet.", i + 1));
        }
        out.push(SubGoalInput {
            text: goal.trim().to_string(),
            weeks,
            measures: Vec::new(),
        });
    }
    if out.is_empty() {
        return Err("Ingen delmål.".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialogue_collects_the_agreement_step_by_step_and_survives_serialisation() {
        let (mut d, first) = AgreementDialogue::start("S-1");
        assert!(first.contains("1/5"));
        assert!(matches!(d.answer("Eleven er på skolen hver dag"), Outcome::Ask(q) if q.starts_with("2/5")));
        // A restart in the middle: the state is plain data.
        let mut d: AgreementDialogue = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert!(matches!(d.answer("uten uker"), Outcome::Again(e) if e.contains("Linje 1 mangler")));
        assert!(matches!(d.answer("Første time; 0"), Outcome::Again(e) if e.contains("1–52")));
        assert!(matches!(d.answer("Første time; 2\nHele dager; 3"), Outcome::Ask(q) if q.starts_with("3/5")));
        assert_eq!(d.sub_goals.len(), 2);
        assert!(matches!(d.answer("Hjemmebesøk"), Outcome::Ask(_)));
        assert!(matches!(d.answer("avdelingsleder"), Outcome::Ask(q) if q.starts_with("5/5")));
        assert!(
            matches!(d.answer("Vil begynne med matte"), Outcome::Ask(q) if q.contains("Delmål 2: Hele dager (3 uker)") && q.contains("Eleven selv: Vil begynne med matte"))
        );
        assert!(matches!(d.answer("kanskje"), Outcome::Again(_)));
        match d.answer("ja") {
            Outcome::Done(step) => match *step {
                Command::CreateAgreement {
                    goal,
                    sub_goals,
                    plan_b_responsible,
                    pupil_view,
                    ..
                } => {
                    assert_eq!(pupil_view.as_deref(), Some("Vil begynne med matte"));
                    assert_eq!(goal, "Eleven er på skolen hver dag");
                    assert_eq!(sub_goals[1].weeks, 3);
                    assert_eq!(plan_b_responsible, "avdelingsleder");
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        let (mut d, _) = AgreementDialogue::start("S-1");
        assert_eq!(d.answer("Avbryt"), Outcome::Cancelled);
    }
}
