//! A synthetic municipality: schools, classes, pupils, contact teachers and a
//! school year of absence. Deterministic for a given seed, so benchmarks,
//! demos and tests can share data without shipping any.
//!
//! All names are invented from short lists; no real person is described.

mod names;
pub mod writers;

use crate::domain::roster::{Roster, RosterClass, RosterPerson, RosterPupil, RosterSchool};
use crate::domain::{AbsenceRecord, Kind, Reason, Validity};
use chrono::{Datelike, Days, NaiveDate, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which grades a school teaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Grades 1–7 (barneskole).
    Primary,
    /// Grades 8–10 (ungdomsskole).
    Lower,
    /// Grades 1–10.
    Combined,
}

impl Stage {
    /// The grades taught.
    pub fn grades(self) -> std::ops::RangeInclusive<u8> {
        match self {
            Stage::Primary => 1..=7,
            Stage::Lower => 8..=10,
            Stage::Combined => 1..=10,
        }
    }
}

/// A school.
#[derive(Debug, Clone)]
pub struct School {
    /// Stable id, e.g. `skole-03`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Grades taught.
    pub stage: Stage,
}

/// A staff member.
#[derive(Debug, Clone)]
pub struct Staff {
    /// Stable id, e.g. `ansatt-0012`.
    pub id: String,
    /// Username (for Matrix id templates).
    pub username: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// School.
    pub school: String,
}

/// A class (basisgruppe) with its contact teacher.
#[derive(Debug, Clone)]
pub struct Class {
    /// Stable id, e.g. `skole-03-5b`.
    pub id: String,
    /// School id.
    pub school: String,
    /// Grade 1–10.
    pub grade: u8,
    /// Display name, e.g. `5B`.
    pub name: String,
    /// Staff id of the contact teacher (kontaktlærer).
    pub contact_teacher: String,
}

/// A pupil.
#[derive(Debug, Clone)]
pub struct Pupil {
    /// Stable id, e.g. `elev-000123`.
    pub id: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// School id.
    pub school: String,
    /// Class id.
    pub class: String,
    /// Grade 1–10.
    pub grade: u8,
}

/// A generated municipality.
#[derive(Debug, Clone)]
pub struct Municipality {
    /// Schools.
    pub schools: Vec<School>,
    /// Classes.
    pub classes: Vec<Class>,
    /// Pupils.
    pub pupils: Vec<Pupil>,
    /// Staff (contact teachers).
    pub staff: Vec<Staff>,
    /// The seed it was made from.
    pub seed: u64,
}

/// Pupils per class, at most.
const CLASS_SIZE: usize = 25;

impl Municipality {
    /// Generates about `pupils` pupils over `schools` schools.
    pub fn generate(pupils: usize, schools: usize, seed: u64) -> Municipality {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let schools = schools.max(1);
        let mut m = Municipality {
            schools: Vec::new(),
            classes: Vec::new(),
            pupils: Vec::new(),
            staff: Vec::new(),
            seed,
        };
        for s in 0..schools {
            // Mostly primary schools, like a real municipality.
            let stage = match s % 4 {
                3 => Stage::Lower,
                2 if s % 8 == 2 => Stage::Combined,
                _ => Stage::Primary,
            };
            let place = names::PLACES[s % names::PLACES.len()];
            let suffix = if s >= names::PLACES.len() {
                format!(" {}", s / names::PLACES.len() + 1)
            } else {
                String::new()
            };
            m.schools.push(School {
                id: format!("skole-{:02}", s + 1),
                name: match stage {
                    Stage::Lower => format!("{place}{suffix} ungdomsskole"),
                    _ => format!("{place}{suffix} skole"),
                },
                stage,
            });
        }
        // Share pupils between schools by the number of grades they teach.
        let weights: Vec<usize> = m.schools.iter().map(|s| s.stage.grades().count()).collect();
        let total_weight: usize = weights.iter().sum();
        let mut next_pupil = 0usize;
        for (si, school) in m.schools.clone().iter().enumerate() {
            let share = if si + 1 == m.schools.len() {
                pupils - next_pupil.min(pupils)
            } else {
                pupils * weights[si] / total_weight
            };
            let grades: Vec<u8> = school.stage.grades().collect();
            let per_grade = share.div_ceil(grades.len());
            let mut left = share;
            for &grade in &grades {
                let in_grade = per_grade.min(left);
                left -= in_grade;
                let classes = in_grade.div_ceil(CLASS_SIZE).max(1);
                for c in 0..classes {
                    let teacher = m.new_staff(&mut rng, &school.id);
                    let letter = (b'A' + c as u8) as char;
                    let class_id = format!("{}-{}{}", school.id, grade, letter.to_ascii_lowercase());
                    m.classes.push(Class {
                        id: class_id.clone(),
                        school: school.id.clone(),
                        grade,
                        name: format!("{grade}{letter}"),
                        contact_teacher: teacher,
                    });
                    let size = in_grade / classes + usize::from(c < in_grade % classes);
                    for _ in 0..size {
                        next_pupil += 1;
                        m.pupils.push(Pupil {
                            id: format!("elev-{next_pupil:06}"),
                            given_name: names::GIVEN[rng.random_range(0..names::GIVEN.len())].into(),
                            family_name: names::FAMILY[rng.random_range(0..names::FAMILY.len())].into(),
                            school: school.id.clone(),
                            class: class_id.clone(),
                            grade,
                        });
                    }
                }
            }
        }
        m
    }

    fn new_staff(&mut self, rng: &mut ChaCha8Rng, school: &str) -> String {
        let n = self.staff.len() + 1;
        let given = names::GIVEN[rng.random_range(0..names::GIVEN.len())];
        let family = names::FAMILY[rng.random_range(0..names::FAMILY.len())];
        let id = format!("ansatt-{n:04}");
        self.staff.push(Staff {
            id: id.clone(),
            username: format!(
                "{}{}{n}",
                ascii_lower(given).chars().take(3).collect::<String>(),
                ascii_lower(family).chars().take(3).collect::<String>()
            ),
            given_name: given.into(),
            family_name: family.into(),
            school: school.into(),
        });
        id
    }

    /// The municipality as a roster. `matrix_template` makes Matrix ids from
    /// usernames, e.g. `@{username}:example.org`.
    pub fn roster(&self, matrix_template: Option<&str>) -> Roster {
        Roster {
            schools: self
                .schools
                .iter()
                .map(|s| RosterSchool {
                    id: s.id.clone(),
                    name: s.name.clone(),
                })
                .collect(),
            classes: self
                .classes
                .iter()
                .map(|c| RosterClass {
                    id: c.id.clone(),
                    school: c.school.clone(),
                    name: c.name.clone(),
                    grade: c.grade,
                    contact_teachers: vec![c.contact_teacher.clone()],
                })
                .collect(),
            pupils: self
                .pupils
                .iter()
                .map(|p| RosterPupil {
                    id: p.id.clone(),
                    school: p.school.clone(),
                    class: Some(p.class.clone()),
                    grade: p.grade,
                    given_name: p.given_name.clone(),
                    family_name: p.family_name.clone(),
                })
                .collect(),
            staff: self
                .staff
                .iter()
                .map(|s| RosterPerson {
                    id: s.id.clone(),
                    given_name: s.given_name.clone(),
                    family_name: s.family_name.clone(),
                    matrix_id: matrix_template.map(|t| t.replace("{username}", &s.username)),
                    school: Some(s.school.clone()),
                })
                .collect(),
        }
    }

    /// The school days of the school year starting in August of `year`.
    pub fn school_days(year: i32) -> Vec<NaiveDate> {
        school_days(year)
    }

    /// A year of absence for every pupil, pupil by pupil, as canonical
    /// records from source `source`. Streams: nothing is held but one pupil.
    pub fn absence<'a>(&'a self, year: i32, source: &'a str) -> impl Iterator<Item = AbsenceRecord> + 'a {
        let days = school_days(year);
        self.pupils.iter().enumerate().flat_map(move |(i, pupil)| {
            // One stream per pupil, so a pupil's absence does not depend on
            // how many pupils came before.
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            pupil_year(&mut rng, pupil, &days, source)
        })
    }
}

fn ascii_lower(s: &str) -> String {
    s.to_lowercase()
        .replace('æ', "ae")
        .replace('ø', "o")
        .replace('å', "a")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// Weekdays from the third Monday of August to June 20, without the usual
/// breaks (autumn week 40, Christmas, winter week 8, Easter week, May 1 and 17).
fn school_days(year: i32) -> Vec<NaiveDate> {
    let mut start = NaiveDate::from_ymd_opt(year, 8, 15).unwrap_or_default();
    while start.weekday() != Weekday::Mon {
        start = start + Days::new(1);
    }
    let end = NaiveDate::from_ymd_opt(year + 1, 6, 20).unwrap_or_default();
    let week = |d: NaiveDate| d.iso_week().week();
    start
        .iter_days()
        .take_while(|d| *d <= end)
        .filter(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
        .filter(|d| {
            let (m, day) = (d.month(), d.day());
            let christmas = (m == 12 && day >= 20) || (m == 1 && day <= 2);
            let fixed = (m == 5 && (day == 1 || day == 17)) || christmas;
            let breaks =
                (d.year() == year && week(*d) == 40) || (d.year() == year + 1 && (week(*d) == 8 || week(*d) == 14));
            !fixed && !breaks
        })
        .collect()
}

/// How absent a pupil tends to be.
struct Profile {
    day: f64,
    lesson: f64,
    late: f64,
    left: f64,
    /// Share of absence that is invalid.
    invalid: f64,
}

fn profile(rng: &mut ChaCha8Rng) -> Profile {
    let roll: f64 = rng.random();
    let mut p = Profile {
        day: rng.random_range(0.003..0.02),
        lesson: rng.random_range(0.15..0.5),
        late: rng.random_range(0.0..0.06),
        left: 0.0,
        invalid: 0.0,
    };
    if roll < 0.06 {
        // Much ill or away.
        p.day = rng.random_range(0.06..0.2);
    } else if roll < 0.10 {
        // Skips school.
        p.invalid = rng.random_range(0.2..0.6);
        p.day = rng.random_range(0.02..0.08);
        p.left = rng.random_range(0.002..0.01);
    } else if roll < 0.14 {
        p.late = rng.random_range(0.08..0.2);
    } else if roll < 0.30 {
        // Now and then a lesson or a day without leave.
        p.invalid = 0.02;
    }
    p
}

/// Subjects of the synthetic timetable.
const SUBJECTS: [&str; 8] = ["NOR", "MAT", "ENG", "NAT", "SAF", "KRLE", "KHV", "KRO"];

/// Lessons in a synthetic school day.
const LESSONS_PER_DAY: u32 = 6;

/// Where missed lessons fall in the day: the first lesson (from a digest of
/// pupil and day, so the random stream of the year is not disturbed) and,
/// for a single lesson, its subject in a timetable by weekday and lesson.
fn lesson_slot(pupil: &str, date: NaiveDate, lessons: u32) -> (Option<String>, Option<u8>) {
    let h = crate::adapters::edfi::fnv1a32(format!("{pupil}{date}").as_bytes());
    let starts = LESSONS_PER_DAY.saturating_sub(lessons) + 1;
    let period = 1 + h % starts.max(1);
    let subject = (lessons == 1).then(|| {
        let slot = date.weekday().num_days_from_monday() * 3 + period;
        SUBJECTS[slot as usize % SUBJECTS.len()].to_string()
    });
    (subject, u8::try_from(period).ok())
}

fn pupil_year(rng: &mut ChaCha8Rng, pupil: &Pupil, days: &[NaiveDate], source: &str) -> Vec<AbsenceRecord> {
    let p = profile(rng);
    let mut out = Vec::new();
    let last = days.len();
    for (i, &date) in days.iter().enumerate() {
        // The last week is not yet classified by the school.
        let recent = i + 5 >= last;
        let classify = |rng: &mut ChaCha8Rng, valid_reason: Reason| -> (Validity, Option<Reason>) {
            if recent && rng.random_bool(0.7) {
                (Validity::Unclassified, None)
            } else if rng.random_bool(p.invalid) {
                (Validity::Invalid, None)
            } else {
                (Validity::Valid, Some(valid_reason))
            }
        };
        let mut push =
            |kind: Kind, lessons: u32, minutes: Option<u32>, (validity, reason): (Validity, Option<Reason>)| {
                let (subject, period) = match kind {
                    Kind::Lesson => lesson_slot(&pupil.id, date, lessons),
                    _ => (None, None),
                };
                out.push(AbsenceRecord {
                    source: source.to_string(),
                    id: format!("{}-{}-{}", pupil.id, date.format("%Y%m%d"), kind.as_str()),
                    version: 1,
                    pupil: pupil.id.clone(),
                    school: pupil.school.clone(),
                    date,
                    kind,
                    lessons,
                    minutes,
                    validity,
                    reason,
                    deleted: false,
                    subject,
                    period,
                    extensions: Default::default(),
                });
            };
        if rng.random_bool(p.day) {
            let reason = if rng.random_bool(0.9) {
                Reason::Illness
            } else {
                Reason::Leave
            };
            let c = classify(rng, reason);
            push(Kind::Day, 1, None, c);
            continue;
        }
        if rng.random_bool(p.lesson) {
            let n = if rng.random_bool(0.85) {
                1
            } else {
                rng.random_range(2..=3)
            };
            let c = classify(rng, Reason::Illness);
            push(Kind::Lesson, n, None, c);
        }
        if rng.random_bool(p.late) {
            let minutes = rng.random_range(2..=40);
            let c = classify(rng, Reason::Other);
            push(Kind::Late, 1, Some(minutes), c);
        }
        if rng.random_bool(p.left) {
            let c = classify(rng, Reason::Other);
            push(Kind::Left, 1, None, c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let a = Municipality::generate(1000, 5, 7);
        let b = Municipality::generate(1000, 5, 7);
        assert_eq!(a.pupils.len(), 1000);
        assert_eq!(a.schools.len(), 5);
        let ra: Vec<_> = a.absence(2025, "gen").take(500).collect();
        let rb: Vec<_> = b.absence(2025, "gen").take(500).collect();
        assert_eq!(ra, rb);
        // Every class has a contact teacher on staff.
        assert!(
            a.classes
                .iter()
                .all(|c| a.staff.iter().any(|s| s.id == c.contact_teacher))
        );
        let c = Municipality::generate(1000, 5, 8);
        assert_ne!(ra, c.absence(2025, "gen").take(500).collect::<Vec<_>>());
    }

    #[test]
    fn school_year_is_about_190_days() {
        let days = school_days(2025);
        assert!((180..=200).contains(&days.len()), "{}", days.len());
        assert!(days.iter().all(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)));
    }
}
