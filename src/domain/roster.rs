//! Who is who: schools, classes (basisgrupper), pupils and staff, from a
//! roster source. Cases need it for the contact teacher, the grade (which
//! decides barneskole vs ungdomsskole deadlines) and Matrix ids.

use serde::{Deserialize, Serialize};

/// Barneskole (grades 1–7) or ungdomsskole (grades 8–10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Grades 1–7.
    Barneskole,
    /// Grades 8–10.
    Ungdomsskole,
}

impl Level {
    /// The level of a grade (trinn); grades above 10 count as ungdomsskole.
    pub fn of_grade(grade: u8) -> Level {
        if grade <= 7 {
            Level::Barneskole
        } else {
            Level::Ungdomsskole
        }
    }
}

/// A school.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterSchool {
    /// Stable id (the same id absence records use).
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A class (basisgruppe).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterClass {
    /// Stable id.
    pub id: String,
    /// School id.
    pub school: String,
    /// Display name, e.g. `5B`.
    pub name: String,
    /// Grade (trinn) 1–10.
    pub grade: u8,
    /// Staff ids of the contact teachers (kontaktlærere).
    pub contact_teachers: Vec<String>,
}

/// A pupil.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterPupil {
    /// Stable id (the same id absence records use).
    pub id: String,
    /// School id.
    pub school: String,
    /// Class id, when enrolled in one.
    pub class: Option<String>,
    /// Grade (trinn) 1–10.
    pub grade: u8,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
}

impl RosterPupil {
    /// Initials such as `E.H.`, the default way chat names a pupil.
    pub fn initials(&self) -> String {
        initials(&self.given_name, &self.family_name)
    }

    /// Barneskole or ungdomsskole.
    pub fn level(&self) -> Level {
        Level::of_grade(self.grade)
    }
}

/// A member of staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterPerson {
    /// Stable id.
    pub id: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Matrix user id, e.g. `@kari:kommune.no`, when known.
    pub matrix_id: Option<String>,
    /// School id, when tied to one.
    pub school: Option<String>,
}

/// A whole roster, as one source delivers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// Schools.
    pub schools: Vec<RosterSchool>,
    /// Classes.
    pub classes: Vec<RosterClass>,
    /// Pupils.
    pub pupils: Vec<RosterPupil>,
    /// Staff.
    pub staff: Vec<RosterPerson>,
}

/// A pupil with what cases need to know around them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PupilContext {
    /// The pupil.
    pub pupil: RosterPupil,
    /// The pupil's school, when on the roster.
    pub school: Option<RosterSchool>,
    /// The pupil's class, when on the roster.
    pub class: Option<RosterClass>,
    /// The class's contact teachers.
    pub contact_teachers: Vec<RosterPerson>,
}

/// Initials from a given and a family name: first letter of each part of the
/// given name and of the last part of the family name (`Anne Marie Berg` → `A.M.B.`).
pub fn initials(given: &str, family: &str) -> String {
    let mut out = String::new();
    for part in given.split([' ', '-']).filter(|p| !p.is_empty()) {
        if let Some(c) = part.chars().next() {
            out.extend(c.to_uppercase());
            out.push('.');
        }
    }
    if let Some(c) = family.split_whitespace().last().and_then(|p| p.chars().next()) {
        out.extend(c.to_uppercase());
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_of_names() {
        assert_eq!(initials("Emma", "Hansen"), "E.H.");
        assert_eq!(initials("Anne-Marie", "van der Berg"), "A.M.B.");
        assert_eq!(initials("øystein", "ås"), "Ø.Å.");
    }

    #[test]
    fn levels() {
        assert_eq!(Level::of_grade(7), Level::Barneskole);
        assert_eq!(Level::of_grade(8), Level::Ungdomsskole);
    }
}
