//! Case workflow settings per municipality: TOML → [`RawCaseConfig`] →
//! [`RawCaseConfig::validate`] → [`CaseConfig`]. Every error names its TOML path.

use super::calendar::{Break, SchoolCalendar, SchoolYear};
use crate::config::toml::parse_toml;
use chrono::{NaiveDate, NaiveTime};
use serde::Deserialize;

/// Why a case configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseConfigError {
    /// The TOML could not be read into the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The TOML path, or `(rot)`.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A setting has an impossible value.
    #[error("{path}: {message}")]
    Invalid {
        /// The TOML path of the setting.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No preset has that name and no file exists at that path.
    #[error("ukjent saksoppsett «{0}»: bruk baerum eller en sti til en TOML-fil")]
    Unknown(String),
}

/// The shipped presets: name and TOML text.
pub const PRESETS: &[(&str, &str)] = &[("baerum", include_str!("presets/baerum.toml"))];

/// The TOML form, before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaseConfig {
    /// Short name, e.g. `baerum`.
    pub name: String,
    /// The school day, used to place same-day deadlines.
    pub school_day: RawSchoolDay,
    /// Deadlines from the routine.
    pub deadlines: RawDeadlines,
    /// When a case counts as long-term (langvarig).
    pub long_term: RawLongTerm,
    /// School staff roles per school id (avdelingsleder, ledelse, ressursteam).
    #[serde(default)]
    pub schools: std::collections::BTreeMap<String, RawSchoolStaff>,
    /// Days a closed case is kept before it is purged, with the bot's
    /// messages about it redacted (default 365).
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// The school years: holidays and planning days.
    #[serde(default)]
    pub calendar: Option<RawCalendar>,
    /// How old absence may be before a new case opens for triage instead
    /// of with same-day deadlines.
    #[serde(default)]
    pub backlog: Option<RawBacklog>,
}

/// The school years, in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCalendar {
    /// One entry per school year.
    #[serde(default)]
    pub years: Vec<RawSchoolYear>,
}

/// One school year, in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchoolYear {
    /// E.g. `2026–27`.
    pub name: String,
    /// The first school day (`YYYY-MM-DD`).
    pub first_day: String,
    /// The last school day.
    pub last_day: String,
    /// Holidays.
    #[serde(default)]
    pub holidays: Vec<RawBreak>,
    /// Planning days (`YYYY-MM-DD`): no pupils at school.
    #[serde(default)]
    pub planning_days: Vec<String>,
}

/// A holiday, in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreak {
    /// Its name.
    pub name: String,
    /// First day.
    pub from: String,
    /// Last day (default: `from`).
    #[serde(default)]
    pub to: Option<String>,
}

/// The backlog rule, in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBacklog {
    /// School days after which absence is old news: a case for it opens for
    /// leadership to triage, without the same-day deadlines.
    pub horizon_school_days: u32,
    /// Days leadership has to triage such a case.
    pub triage_days: u32,
}

/// School hours in Europe/Oslo, `HH:MM`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchoolDay {
    /// When the first lesson starts.
    pub start: String,
    /// When the school day ends (ungdomsskole's "by the end of the day").
    pub end: String,
    /// Length of the first lesson in minutes (barneskole's "within the first lesson").
    pub first_lesson_minutes: u32,
}

/// Deadlines in days or hours.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeadlines {
    /// Hours before a deadline that the reminder goes out.
    pub remind_hours_before: u32,
    /// Days to hold the first phase 3 meeting.
    pub first_meeting_days: u32,
    /// Days to hold a new meeting when mapping is incomplete (the routine: one week).
    pub followup_meeting_days: u32,
    /// Days after a meeting by which the agreement should exist.
    pub agreement_days: u32,
    /// Days from agreement to evaluation (the routine: three weeks).
    pub evaluation_days: u32,
    /// How long an agreement is valid, in days (the routine: usually three weeks).
    pub agreement_valid_days: u32,
    /// Days to hold the ressursteam meeting after entering phase 4.
    pub phase4_meeting_days: u32,
    /// Days a proposed fagkoordinator has to accept.
    pub handoff_accept_days: u32,
    /// Days between reviews of a case that ended "no concern".
    pub monitoring_review_days: u32,
}

/// The long-term (langvarig) marking rule. The routine calls serious
/// absence that lasts over time long-term and names no duration, so the
/// duration is the municipality's decision; phase 4 is something else.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLongTerm {
    /// Serious absence has lasted this many weeks (a criterion still holds
    /// after the case has been open so long); 0 leaves the marking to people.
    pub open_weeks: u32,
    /// Kept so that old files give a clear answer: phase 4 does not make a
    /// case long-term (the routine keeps the two apart).
    #[serde(default)]
    pub phase4: Option<bool>,
}

/// Who holds which role at a school (staff ids from the roster).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchoolStaff {
    /// The avdelingsleder who takes over in phase 3.
    #[serde(default)]
    pub avdelingsleder: Option<String>,
    /// Leadership (rektor and others).
    #[serde(default)]
    pub ledelse: Vec<String>,
    /// Members of the ressursteam.
    #[serde(default)]
    pub ressursteam: Vec<String>,
}

/// Validated case settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseConfig {
    /// Short name.
    pub name: String,
    /// First lesson start (Europe/Oslo).
    pub day_start: NaiveTime,
    /// End of the school day (Europe/Oslo).
    pub day_end: NaiveTime,
    /// Minutes of the first lesson.
    pub first_lesson_minutes: u32,
    /// Lessons in a whole day, for evaluation numbers: 6 unless the service
    /// sets it from the rule set's `lessons_per_day`, so both agree.
    pub lessons_per_day: u32,
    /// Reminder lead time in hours.
    pub remind_hours_before: u32,
    /// See [`RawDeadlines::first_meeting_days`].
    pub first_meeting_days: u32,
    /// See [`RawDeadlines::followup_meeting_days`].
    pub followup_meeting_days: u32,
    /// See [`RawDeadlines::agreement_days`].
    pub agreement_days: u32,
    /// See [`RawDeadlines::evaluation_days`].
    pub evaluation_days: u32,
    /// See [`RawDeadlines::agreement_valid_days`].
    pub agreement_valid_days: u32,
    /// See [`RawDeadlines::phase4_meeting_days`].
    pub phase4_meeting_days: u32,
    /// See [`RawDeadlines::handoff_accept_days`].
    pub handoff_accept_days: u32,
    /// See [`RawDeadlines::monitoring_review_days`].
    pub monitoring_review_days: u32,
    /// Long-term after this many weeks of lasting serious absence (0 = by hand only).
    pub long_term_weeks: u32,
    /// Days a closed case is kept before the purge.
    pub retention_days: u32,
    /// Staff roles per school.
    pub schools: std::collections::BTreeMap<String, SchoolStaff>,
    /// The school years with their holidays and planning days.
    pub calendar: SchoolCalendar,
    /// School days after which absence is backlog: see [`RawBacklog`].
    pub backlog_horizon_school_days: u32,
    /// Days leadership has to triage a backlog case.
    pub triage_days: u32,
    /// The criterion codes the rule set declares with the role
    /// `ugyldig-fravær`: parents are told at once, leadership informed.
    /// Set from the rule set ([`CaseConfig::use_rules`]).
    pub invalid_absence_criteria: std::collections::BTreeSet<String>,
}

/// Validated staff roles of one school.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchoolStaff {
    /// The avdelingsleder.
    pub avdelingsleder: Option<String>,
    /// Leadership.
    pub ledelse: Vec<String>,
    /// Ressursteam members.
    pub ressursteam: Vec<String>,
}

fn invalid(path: &str, message: impl Into<String>) -> CaseConfigError {
    CaseConfigError::Invalid {
        path: path.to_string(),
        message: message.into(),
    }
}

fn time(path: &str, s: &str) -> Result<NaiveTime, CaseConfigError> {
    NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| invalid(path, format!("«{s}» er ikke et klokkeslett TT:MM")))
}

fn days(path: &str, n: u32, max: u32) -> Result<u32, CaseConfigError> {
    if n == 0 || n > max {
        return Err(invalid(path, format!("må være mellom 1 og {max}, ikke {n}")));
    }
    Ok(n)
}

fn date(path: &str, s: &str) -> Result<NaiveDate, CaseConfigError> {
    crate::domain::record::parse_date(s).map_err(|m| invalid(path, m))
}

fn calendar(raw: Option<RawCalendar>) -> Result<SchoolCalendar, CaseConfigError> {
    let mut years: Vec<SchoolYear> = Vec::new();
    for (i, y) in raw.map(|c| c.years).unwrap_or_default().into_iter().enumerate() {
        let path = format!("calendar.years[{i}]");
        if y.name.trim().is_empty() {
            return Err(invalid(&format!("{path}.name"), "kan ikke være tomt"));
        }
        let first_day = date(&format!("{path}.first_day"), &y.first_day)?;
        let last_day = date(&format!("{path}.last_day"), &y.last_day)?;
        if last_day <= first_day {
            return Err(invalid(&format!("{path}.last_day"), "må være etter first_day"));
        }
        if let Some(prev) = years.last()
            && first_day <= prev.last_day
        {
            return Err(invalid(
                &format!("{path}.first_day"),
                format!("må være etter forrige skoleårs siste dag ({})", prev.last_day),
            ));
        }
        let mut breaks = Vec::new();
        for (j, h) in y.holidays.iter().enumerate() {
            let hp = format!("{path}.holidays[{j}]");
            let from = date(&format!("{hp}.from"), &h.from)?;
            let to = match &h.to {
                Some(t) => date(&format!("{hp}.to"), t)?,
                None => from,
            };
            if to < from {
                return Err(invalid(&format!("{hp}.to"), "slutter før den starter"));
            }
            if from < first_day || to > last_day {
                return Err(invalid(&hp, "ligger utenfor skoleåret"));
            }
            breaks.push(Break {
                name: h.name.clone(),
                from,
                to,
            });
        }
        for (j, p) in y.planning_days.iter().enumerate() {
            let d = date(&format!("{path}.planning_days[{j}]"), p)?;
            breaks.push(Break {
                name: "Planleggingsdag".into(),
                from: d,
                to: d,
            });
        }
        years.push(SchoolYear {
            name: y.name,
            first_day,
            last_day,
            breaks,
        });
    }
    Ok(SchoolCalendar { years })
}

impl RawCaseConfig {
    /// Checks every setting and returns the valid form.
    pub fn validate(self) -> Result<CaseConfig, CaseConfigError> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "kan ikke være tomt"));
        }
        let day_start = time("school_day.start", &self.school_day.start)?;
        let day_end = time("school_day.end", &self.school_day.end)?;
        if day_end <= day_start {
            return Err(invalid("school_day.end", "må være etter school_day.start"));
        }
        let first = self.school_day.first_lesson_minutes;
        if first == 0 || i64::from(first) > (day_end - day_start).num_minutes() {
            return Err(invalid(
                "school_day.first_lesson_minutes",
                "må være over 0 og ikke lenger enn skoledagen",
            ));
        }
        if self.long_term.phase4 == Some(true) {
            return Err(invalid(
                "long_term.phase4",
                "fase 4 gjør ikke saken langvarig: rutinen skiller de to. Fjern innstillingen, og sett open_weeks om kommunen har bestemt en varighet",
            ));
        }
        let d = &self.deadlines;
        if d.remind_hours_before > 24 * 7 {
            return Err(invalid(
                "deadlines.remind_hours_before",
                "kan ikke være mer enn 168 timer",
            ));
        }
        let mut schools = std::collections::BTreeMap::new();
        for (id, s) in self.schools {
            let path = format!("schools.{id}");
            let empty = |x: &String| x.trim().is_empty();
            if s.avdelingsleder.as_ref().is_some_and(empty) {
                return Err(invalid(&format!("{path}.avdelingsleder"), "kan ikke være tom"));
            }
            for (field, list) in [("ledelse", &s.ledelse), ("ressursteam", &s.ressursteam)] {
                if let Some(i) = list.iter().position(empty) {
                    return Err(invalid(&format!("{path}.{field}[{i}]"), "kan ikke være tom"));
                }
            }
            schools.insert(
                id,
                SchoolStaff {
                    avdelingsleder: s.avdelingsleder,
                    ledelse: s.ledelse,
                    ressursteam: s.ressursteam,
                },
            );
        }
        Ok(CaseConfig {
            name: self.name,
            day_start,
            day_end,
            first_lesson_minutes: first,
            lessons_per_day: 6,
            remind_hours_before: d.remind_hours_before,
            first_meeting_days: days("deadlines.first_meeting_days", d.first_meeting_days, 60)?,
            followup_meeting_days: days("deadlines.followup_meeting_days", d.followup_meeting_days, 60)?,
            agreement_days: days("deadlines.agreement_days", d.agreement_days, 60)?,
            evaluation_days: days("deadlines.evaluation_days", d.evaluation_days, 120)?,
            agreement_valid_days: days("deadlines.agreement_valid_days", d.agreement_valid_days, 365)?,
            phase4_meeting_days: days("deadlines.phase4_meeting_days", d.phase4_meeting_days, 60)?,
            handoff_accept_days: days("deadlines.handoff_accept_days", d.handoff_accept_days, 60)?,
            monitoring_review_days: days("deadlines.monitoring_review_days", d.monitoring_review_days, 365)?,
            long_term_weeks: self.long_term.open_weeks,
            retention_days: days("retention_days", self.retention_days.unwrap_or(365), 3650)?,
            schools,
            calendar: calendar(self.calendar)?,
            backlog_horizon_school_days: match &self.backlog {
                Some(b) => days("backlog.horizon_school_days", b.horizon_school_days, 60)?,
                None => 3,
            },
            triage_days: match &self.backlog {
                Some(b) => days("backlog.triage_days", b.triage_days, 60)?,
                None => 7,
            },
            invalid_absence_criteria: Default::default(),
        })
    }
}

impl CaseConfig {
    /// Reads and validates TOML text.
    pub fn from_toml(text: &str) -> Result<CaseConfig, CaseConfigError> {
        let raw: RawCaseConfig = parse_toml(text).map_err(|e| CaseConfigError::Parse {
            path: e.path,
            message: e.message,
        })?;
        raw.validate()
    }

    /// A preset by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<CaseConfig, CaseConfigError> {
        if let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == name_or_path) {
            return CaseConfig::from_toml(text);
        }
        let text =
            std::fs::read_to_string(name_or_path).map_err(|_| CaseConfigError::Unknown(name_or_path.to_string()))?;
        CaseConfig::from_toml(&text).map_err(|e| match e {
            CaseConfigError::Parse { path, message } => CaseConfigError::Parse {
                path: format!("{name_or_path}: {path}"),
                message,
            },
            CaseConfigError::Invalid { path, message } => CaseConfigError::Invalid {
                path: format!("{name_or_path}: {path}"),
                message,
            },
            other => other,
        })
    }

    /// Bærum's defaults, with the criterion roles of Bærum's rule set.
    pub fn baerum() -> CaseConfig {
        let mut c = CaseConfig::from_toml(PRESETS[0].1).expect("the shipped preset is valid");
        if let Some(rules) = crate::rules::RuleSet::preset("baerum") {
            c.use_rules(&rules);
        }
        c
    }

    /// Takes what the rule set decides: how many lessons a day counts as,
    /// and which criteria mean invalid absence (by the role the rule set
    /// declares, not by their codes).
    pub fn use_rules(&mut self, rules: &crate::rules::RuleSet) {
        self.lessons_per_day = rules.lessons_per_day;
        self.invalid_absence_criteria = rules.criteria_with_role(crate::rules::CriterionRole::InvalidAbsence);
    }

    /// Whether a criterion code means invalid absence.
    pub fn is_invalid_absence(&self, criterion: &str) -> bool {
        self.invalid_absence_criteria.contains(criterion)
    }

    /// The staff roles of a school (empty when not configured).
    pub fn school(&self, id: &str) -> SchoolStaff {
        self.schools.get(id).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baerum_preset_is_valid() {
        let c = CaseConfig::baerum();
        assert_eq!(c.evaluation_days, 21);
        assert_eq!(c.followup_meeting_days, 7);
    }

    #[test]
    fn errors_name_the_toml_path() {
        let text = PRESETS[0].1.replace("evaluation_days = 21", "evaluation_days = 0");
        let e = CaseConfig::from_toml(&text).unwrap_err();
        assert!(e.to_string().starts_with("deadlines.evaluation_days:"), "{e}");
        let text = PRESETS[0].1.replace("end = \"15:00\"", "end = \"25:00\"");
        let e = CaseConfig::from_toml(&text).unwrap_err();
        assert!(e.to_string().starts_with("school_day.end:"), "{e}");
        let text = PRESETS[0].1.replace("agreement_days = 7", "agreement_days = \"sju\"");
        let e = CaseConfig::from_toml(&text).unwrap_err();
        assert!(e.to_string().contains("deadlines.agreement_days"), "{e}");
    }
}
