//! Rule configuration: TOML → raw serde structs → [`RuleSet::validate`] → a
//! [`RuleSet`] the engine can trust. Every error names its TOML path.

use crate::domain::{Kind, Validity};
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::BTreeSet;

/// Why a rule configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// The TOML could not be read into the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The TOML path (e.g. `rules[1].threshold`), or `(rot)`.
        path: String,
        /// What went wrong, with the line when known.
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
    #[error("ukjent regelsett «{0}»: bruk baerum, oslo eller en sti til en TOML-fil")]
    Unknown(String),
}

impl RulesError {
    /// The TOML path at fault, when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            RulesError::Parse { path, .. } | RulesError::Invalid { path, .. } => Some(path),
            RulesError::Unknown(_) => None,
        }
    }
}

/// The TOML form of a rule set, before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleSet {
    /// Short name, e.g. `baerum`.
    pub name: String,
    /// What the rule set is, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// How many lessons a whole day counts as (default 6).
    #[serde(default)]
    pub lessons_per_day: Option<u32>,
    /// Term starts for half-year windows.
    #[serde(default)]
    pub half_year: Option<RawHalfYear>,
    /// The timetable, needed by `unit = "percent"`.
    #[serde(default)]
    pub timetable: Option<RawTimetable>,
    /// The rules; a pupil has serious absence when any holds.
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

/// Term starts as `MM-DD`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHalfYear {
    /// First day of the autumn term (default `08-01`).
    pub autumn_start: Option<String>,
    /// First day of the spring term (default `01-01`).
    pub spring_start: Option<String>,
}

/// Scheduled lessons, for percentage rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimetable {
    /// Lessons Monday to Friday (five numbers).
    pub lessons_per_weekday: Vec<u32>,
    /// Dates without teaching.
    #[serde(default)]
    pub holidays: Vec<RawPeriod>,
}

/// An inclusive date range, `YYYY-MM-DD`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeriod {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
}

/// One rule before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique kebab-case id.
    pub id: String,
    /// The criterion code findings carry (defaults to `id`).
    #[serde(default)]
    pub criterion: Option<String>,
    /// Norwegian noun phrase for explanations (derived when absent).
    #[serde(default)]
    pub label: Option<String>,
    /// Record kinds that count: `day`, `lesson`, `late`, `left`.
    pub kinds: Vec<String>,
    /// Validities that count: `valid`, `invalid`, `unclassified`.
    pub validity: Vec<String>,
    /// `lessons`, `days`, `occurrences` or `percent`.
    pub unit: String,
    /// `>=` or `>`.
    pub comparison: String,
    /// The threshold in `unit`.
    pub threshold: f64,
    /// The window.
    pub window: RawWindow,
    /// What the criterion means for the workflow, when it means something
    /// special: `ugyldig-fravær` (parents are told at once, leadership is
    /// informed). The workflow goes by this role, never by the code.
    #[serde(default)]
    pub role: Option<String>,
}

crate::vocabulary! {
    /// What a criterion means for the workflow.
    pub enum CriterionRole("en rolle for kriteriet") {
        /// Invalid absence: the parents are told at once (barneskole within
        /// the first lesson, ungdomsskole by the end of the day) and
        /// leadership is informed.
        InvalidAbsence = "ugyldig-fravær" | "invalid-absence",
    }
}

/// A window before validation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// `rolling`, `calendar-month` or `half-year`.
    pub kind: String,
    /// Rolling length in months.
    #[serde(default)]
    pub months: Option<u32>,
    /// Rolling length in weeks.
    #[serde(default)]
    pub weeks: Option<u32>,
    /// Rolling length in days.
    #[serde(default)]
    pub days: Option<u32>,
}

/// The unit a rule measures in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Lessons; a day counts as `lessons_per_day`.
    Lessons,
    /// Days; a lesson counts as `1/lessons_per_day`, at most 1 per date.
    Days,
    /// Number of records.
    Occurrences,
    /// Percent of scheduled lessons in the window (needs a timetable).
    Percent,
}

impl Unit {
    /// The spelling in config and findings.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Lessons => "lessons",
            Unit::Days => "days",
            Unit::Occurrences => "occurrences",
            Unit::Percent => "percent",
        }
    }
}

/// How the measured value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `>=`: at least the threshold.
    AtLeast,
    /// `>`: more than the threshold.
    MoreThan,
}

/// Which dates a rule looks at, ending at the as-of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// as_of − N months < d ≤ as_of (month ends clamp).
    RollingMonths(u32),
    /// as_of − N·7 days < d ≤ as_of.
    RollingWeeks(u32),
    /// as_of − N days < d ≤ as_of.
    RollingDays(u32),
    /// From the first of as_of's month to as_of.
    CalendarMonth,
    /// From the start of as_of's school half-year to as_of.
    HalfYear,
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique id.
    pub id: String,
    /// Criterion code carried by findings.
    pub criterion: String,
    /// Norwegian noun phrase (or, for occurrences, verb phrase) for explanations.
    pub label: String,
    /// Kinds that count.
    pub kinds: Vec<Kind>,
    /// Validities that count.
    pub validity: Vec<Validity>,
    /// Unit.
    pub unit: Unit,
    /// Comparison.
    pub comparison: Comparison,
    /// Threshold in `unit`.
    pub threshold: f64,
    /// Window.
    pub window: WindowSpec,
    /// The criterion's role in the workflow, if any.
    pub role: Option<CriterionRole>,
}

/// Scheduled teaching, for percentage rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Timetable {
    /// Lessons Monday..Friday.
    pub lessons_per_weekday: [u32; 5],
    /// Inclusive holiday periods.
    pub holidays: Vec<(NaiveDate, NaiveDate)>,
}

/// A validated rule set.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    /// Short name.
    pub name: String,
    /// Description for people.
    pub description: String,
    /// Lessons in a whole day.
    pub lessons_per_day: u32,
    /// Autumn term start (month, day).
    pub autumn_start: (u32, u32),
    /// Spring term start (month, day).
    pub spring_start: (u32, u32),
    /// Timetable, when known.
    pub timetable: Option<Timetable>,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// Preset rule sets shipped with tilstede.
pub const PRESETS: [(&str, &str); 2] = [
    ("baerum", include_str!("presets/baerum.toml")),
    ("oslo", include_str!("presets/oslo.toml")),
];

impl RuleSet {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<RuleSet, RulesError> {
        let raw: RawRuleSet = parse_toml(text)?;
        raw.validate()
    }

    /// A shipped preset by name.
    pub fn preset(name: &str) -> Option<RuleSet> {
        let text = preset_text(name)?;
        // The presets are tested to validate.
        RuleSet::from_toml(text).ok()
    }

    /// A preset name, or else a path to a TOML file.
    pub fn load(name_or_path: &str) -> Result<RuleSet, RulesError> {
        if let Some(set) = RuleSet::preset(name_or_path) {
            return Ok(set);
        }
        let text = std::fs::read_to_string(name_or_path).map_err(|_| RulesError::Unknown(name_or_path.to_string()))?;
        RuleSet::from_toml(&text).map_err(|e| match e {
            RulesError::Parse { path, message } => RulesError::Parse {
                path: format!("{name_or_path}: {path}"),
                message,
            },
            RulesError::Invalid { path, message } => RulesError::Invalid {
                path: format!("{name_or_path}: {path}"),
                message,
            },
            other => other,
        })
    }

    /// The criterion codes of the rules that declare `role`.
    pub fn criteria_with_role(&self, role: CriterionRole) -> std::collections::BTreeSet<String> {
        self.rules
            .iter()
            .filter(|r| r.role == Some(role))
            .map(|r| r.criterion.clone())
            .collect()
    }

    /// The earliest date any rule looks at for `as_of`.
    pub fn earliest_date(&self, as_of: NaiveDate) -> NaiveDate {
        self.rules
            .iter()
            .map(|r| super::engine::window_start(self, r.window, as_of))
            .min()
            .unwrap_or(as_of)
    }
}

/// The TOML text of a preset.
pub fn preset_text(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Reads TOML into `T`, reporting the TOML path and line of the first error.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, RulesError> {
    crate::config::toml::parse_toml(text).map_err(|e| RulesError::Parse {
        path: e.path,
        message: e.message,
    })
}

fn err(path: impl Into<String>, message: impl Into<String>) -> RulesError {
    RulesError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// Whether `s` is a kebab-case code (lowercase ASCII, digits, single dashes).
pub fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn month_day(path: &str, s: &str) -> Result<(u32, u32), RulesError> {
    let bad = || err(path, format!("«{s}» er ikke en dato på formen MM-DD"));
    let (m, d) = s.split_once('-').ok_or_else(bad)?;
    let (m, d): (u32, u32) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    // 2024 is a leap year, so 02-29 is accepted here and clamped when used.
    NaiveDate::from_ymd_opt(2024, m, d).ok_or_else(bad)?;
    Ok((m, d))
}

impl RawRuleSet {
    /// Checks every setting and produces a [`RuleSet`].
    pub fn validate(self) -> Result<RuleSet, RulesError> {
        if !is_kebab(&self.name) {
            return Err(err("name", "må være små bokstaver, tall og bindestrek"));
        }
        let lessons_per_day = self.lessons_per_day.unwrap_or(6);
        if !(1..=16).contains(&lessons_per_day) {
            return Err(err("lessons_per_day", "må være mellom 1 og 16"));
        }
        let (autumn_start, spring_start) = match &self.half_year {
            None => ((8, 1), (1, 1)),
            Some(h) => (
                month_day("half_year.autumn_start", h.autumn_start.as_deref().unwrap_or("08-01"))?,
                month_day("half_year.spring_start", h.spring_start.as_deref().unwrap_or("01-01"))?,
            ),
        };
        if autumn_start == spring_start {
            return Err(err("half_year", "høst- og vårsemesteret kan ikke starte samme dag"));
        }
        let timetable = match self.timetable {
            None => None,
            Some(t) => {
                let lessons: [u32; 5] = t
                    .lessons_per_weekday
                    .as_slice()
                    .try_into()
                    .map_err(|_| err("timetable.lessons_per_weekday", "må ha fem tall, mandag til fredag"))?;
                if lessons.iter().any(|&n| n > 16) {
                    return Err(err("timetable.lessons_per_weekday", "høyst 16 timer per dag"));
                }
                let mut holidays = Vec::new();
                for (i, p) in t.holidays.iter().enumerate() {
                    let path = format!("timetable.holidays[{i}]");
                    let from =
                        crate::domain::record::parse_date(&p.from).map_err(|m| err(format!("{path}.from"), m))?;
                    let to = crate::domain::record::parse_date(&p.to).map_err(|m| err(format!("{path}.to"), m))?;
                    if to < from {
                        return Err(err(path, "slutter før den starter"));
                    }
                    holidays.push((from, to));
                }
                Some(Timetable {
                    lessons_per_weekday: lessons,
                    holidays,
                })
            }
        };
        if self.rules.is_empty() {
            return Err(err("rules", "minst én regel trengs"));
        }
        let mut ids = BTreeSet::new();
        let mut rules = Vec::new();
        for (i, raw) in self.rules.into_iter().enumerate() {
            let path = format!("rules[{i}]");
            let rule = raw.validate(&path, timetable.is_some())?;
            if !ids.insert(rule.id.clone()) {
                return Err(err(format!("{path}.id"), format!("«{}» er brukt før", rule.id)));
            }
            rules.push(rule);
        }
        Ok(RuleSet {
            name: self.name,
            description: self.description.unwrap_or_default(),
            lessons_per_day,
            autumn_start,
            spring_start,
            timetable,
            rules,
        })
    }
}

impl RawRule {
    fn validate(self, path: &str, has_timetable: bool) -> Result<Rule, RulesError> {
        if !is_kebab(&self.id) {
            return Err(err(format!("{path}.id"), "må være små bokstaver, tall og bindestrek"));
        }
        let criterion = self.criterion.unwrap_or_else(|| self.id.clone());
        if !is_kebab(&criterion) {
            return Err(err(
                format!("{path}.criterion"),
                "må være små bokstaver, tall og bindestrek",
            ));
        }
        let mut kinds = Vec::new();
        for (i, k) in self.kinds.iter().enumerate() {
            let kind = Kind::parse(k).ok_or_else(|| {
                err(
                    format!("{path}.kinds[{i}]"),
                    format!("ukjent «{k}» (gyldige: day, lesson, late, left)"),
                )
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            return Err(err(format!("{path}.kinds"), "minst én fraværstype trengs"));
        }
        let mut validity = Vec::new();
        for (i, v) in self.validity.iter().enumerate() {
            let val = Validity::parse(v).ok_or_else(|| {
                err(
                    format!("{path}.validity[{i}]"),
                    format!("ukjent «{v}» (gyldige: valid, invalid, unclassified)"),
                )
            })?;
            if !validity.contains(&val) {
                validity.push(val);
            }
        }
        if validity.is_empty() {
            return Err(err(format!("{path}.validity"), "minst én gyldighet trengs"));
        }
        let unit = match self.unit.as_str() {
            "lessons" => Unit::Lessons,
            "days" => Unit::Days,
            "occurrences" => Unit::Occurrences,
            "percent" => Unit::Percent,
            other => {
                return Err(err(
                    format!("{path}.unit"),
                    format!("ukjent «{other}» (gyldige: lessons, days, occurrences, percent)"),
                ));
            }
        };
        if unit != Unit::Occurrences && kinds.iter().any(|k| matches!(k, Kind::Late | Kind::Left)) {
            return Err(err(
                format!("{path}.unit"),
                "late og left kan bare telles som occurrences",
            ));
        }
        if unit == Unit::Percent && !has_timetable {
            return Err(err(format!("{path}.unit"), "percent krever [timetable]"));
        }
        let comparison = match self.comparison.as_str() {
            ">=" | "at-least" => Comparison::AtLeast,
            ">" | "more-than" => Comparison::MoreThan,
            other => {
                return Err(err(
                    format!("{path}.comparison"),
                    format!("ukjent «{other}» (gyldige: \">=\", \">\")"),
                ));
            }
        };
        if !self.threshold.is_finite() || self.threshold < 0.0 {
            return Err(err(format!("{path}.threshold"), "må være et tall ≥ 0"));
        }
        if unit == Unit::Percent && self.threshold > 100.0 {
            return Err(err(format!("{path}.threshold"), "en prosent kan ikke være over 100"));
        }
        if comparison == Comparison::AtLeast && self.threshold == 0.0 {
            return Err(err(format!("{path}.threshold"), "«>= 0» ville gjelde alle elever"));
        }
        let window = self.window.validate(&format!("{path}.window"))?;
        let label = match self.label {
            Some(l) if l.trim().is_empty() => return Err(err(format!("{path}.label"), "kan ikke være tom")),
            Some(l) => l,
            None => default_label(unit, &kinds, &validity),
        };
        Ok(Rule {
            id: self.id,
            criterion,
            label,
            kinds,
            validity,
            unit,
            comparison,
            threshold: self.threshold,
            window,
            role: self
                .role
                .as_deref()
                .map(|r| {
                    r.parse()
                        .map_err(|e: crate::cases::words::WordError| err(format!("{path}.role"), e.to_string()))
                })
                .transpose()?,
        })
    }
}

impl RawWindow {
    fn validate(&self, path: &str) -> Result<WindowSpec, RulesError> {
        let lengths = [("months", self.months), ("weeks", self.weeks), ("days", self.days)];
        let given: Vec<_> = lengths.iter().filter(|(_, v)| v.is_some()).collect();
        match self.kind.as_str() {
            "rolling" => {
                let [(name, Some(n))] = given.as_slice() else {
                    return Err(err(path, "rolling trenger nøyaktig én av months, weeks eller days"));
                };
                if *n == 0 || *n > 120 {
                    return Err(err(format!("{path}.{name}"), "må være mellom 1 og 120"));
                }
                Ok(match *name {
                    "months" => WindowSpec::RollingMonths(*n),
                    "weeks" => WindowSpec::RollingWeeks(*n),
                    _ => WindowSpec::RollingDays(*n),
                })
            }
            "calendar-month" | "half-year" => {
                if let Some((name, _)) = given.first() {
                    return Err(err(format!("{path}.{name}"), format!("{} har fast lengde", self.kind)));
                }
                Ok(if self.kind == "half-year" {
                    WindowSpec::HalfYear
                } else {
                    WindowSpec::CalendarMonth
                })
            }
            other => Err(err(
                format!("{path}.kind"),
                format!("ukjent «{other}» (gyldige: rolling, calendar-month, half-year)"),
            )),
        }
    }
}

fn default_label(unit: Unit, kinds: &[Kind], validity: &[Validity]) -> String {
    if unit == Unit::Occurrences {
        return match kinds {
            [Kind::Late] => "kommet for sent",
            [Kind::Left] => "forlatt skolen i skoletiden",
            _ => "hatt fraværshendelser",
        }
        .into();
    }
    let has = |v| validity.contains(&v);
    match (
        has(Validity::Valid),
        has(Validity::Invalid),
        has(Validity::Unclassified),
    ) {
        (true, false, false) => "gyldig fravær",
        (false, true, false) => "ugyldig fravær",
        (false, _, true) => "ugyldig eller ikke vurdert fravær",
        (true, false, true) => "gyldig eller ikke vurdert fravær",
        _ => "fravær",
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate() {
        for (name, _) in PRESETS {
            let set = RuleSet::preset(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(set.name, name);
        }
        let b = RuleSet::preset("baerum").unwrap();
        let codes: Vec<_> = b.rules.iter().map(|r| r.criterion.as_str()).collect();
        assert_eq!(
            codes,
            [
                "invalid-absence",
                "high-valid-absence",
                "repeated-lateness",
                "left-school"
            ]
        );
        assert_eq!(b.lessons_per_day, 6);
    }

    fn bad(toml: &str) -> RulesError {
        RuleSet::from_toml(toml).unwrap_err()
    }

    const RULE: &str = r#"
name = "x"
[[rules]]
id = "a"
kinds = ["day"]
validity = ["invalid"]
unit = "days"
comparison = ">="
threshold = 1
window = { kind = "rolling", months = 3 }
"#;

    #[test]
    fn a_good_minimal_set() {
        let set = RuleSet::from_toml(RULE).unwrap();
        assert_eq!(set.rules[0].criterion, "a");
        assert_eq!(set.rules[0].label, "ugyldig fravær");
    }

    #[test]
    fn errors_name_the_toml_path() {
        let cases = [
            (RULE.replace("\"days\"", "\"hours\""), "rules[0].unit"),
            (
                RULE.replace("threshold = 1", "threshold = \"one\""),
                "rules[0].threshold",
            ),
            (RULE.replace("threshold = 1", "treshold = 1"), "rules[0].treshold"),
            (RULE.replace("months = 3", "months = 0"), "rules[0].window.months"),
            (RULE.replace("months = 3", "months = 3, weeks = 2"), "rules[0].window"),
            (
                RULE.replace("\"rolling\", months = 3", "\"calendar-month\", months = 1"),
                "rules[0].window.months",
            ),
            (RULE.replace("\"rolling\"", "\"fortnight\""), "rules[0].window.kind"),
            (RULE.replace("[\"day\"]", "[\"week\"]"), "rules[0].kinds[0]"),
            (RULE.replace("[\"day\"]", "[\"late\"]"), "rules[0].unit"),
            (RULE.replace("[\"invalid\"]", "[\"bad\"]"), "rules[0].validity[0]"),
            (RULE.replace("\">=\"", "\"=>\""), "rules[0].comparison"),
            (RULE.replace("\"days\"", "\"percent\""), "rules[0].unit"),
            (RULE.replace("id = \"a\"", "id = \"Not Kebab\""), "rules[0].id"),
            (format!("lessons_per_day = 0\n{RULE}"), "lessons_per_day"),
            (
                format!(
                    "{RULE}\n[[rules]]\nid = \"a\"\nkinds=[\"day\"]\nvalidity=[\"valid\"]\nunit=\"days\"\ncomparison=\">\"\nthreshold=2\nwindow={{kind=\"half-year\"}}\n"
                ),
                "rules[1].id",
            ),
            (
                format!("{RULE}\n[timetable]\nlessons_per_weekday = [6, 6]\n"),
                "timetable.lessons_per_weekday",
            ),
            (
                format!("{RULE}\n[half_year]\nautumn_start = \"13-01\"\n"),
                "half_year.autumn_start",
            ),
        ];
        for (toml, path) in cases {
            let e = bad(&toml);
            assert_eq!(e.path(), Some(path), "{e}");
            assert!(e.to_string().starts_with(path), "{e}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(&p, RULE.replace("\"days\"", "\"hours\"")).unwrap();
        let e = RuleSet::load(p.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("r.toml: rules[0].unit"), "{e}");
        assert!(matches!(RuleSet::load("nowhere"), Err(RulesError::Unknown(_))));
    }
}
