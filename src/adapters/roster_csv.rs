//! `roster-csv`: pupils with school, class (basisgruppe), grade and contact
//! teacher, one pupil and one contact teacher per row.
//!
//! Columns (header names, `;`-separated; order free):
//! `skole_id`, `skole_navn`, `klasse_id`, `klasse_navn`, `trinn`, `elev_id`,
//! `elev_fornavn`, `elev_etternavn`, and optionally `kontaktlaerer_id`,
//! `kontaktlaerer_fornavn`, `kontaktlaerer_etternavn`,
//! `kontaktlaerer_brukernavn`, `kontaktlaerer_matrix_id`. A class with two
//! contact teachers appears in two rows. The Matrix id is the column when
//! filled, else the template (e.g. `@{username}:kommune.no`) applied to the
//! username.
//!
//! With an identity map (the source's `identity` in the service config),
//! one more column carries the identifier the pupil shares with other
//! sources (a Feide id, a national id). It becomes an identity token as the
//! row is read ([`IdentityColumn::token`]); the value itself goes nowhere.

use crate::domain::identity::{IdentityColumn, PupilIdentity};
use crate::domain::reject::{Fault, RejectCode};
use crate::domain::roster::{Roster, RosterClass, RosterPerson, RosterPupil, RosterSchool};
use std::collections::BTreeMap;
use std::io::Read;

/// A row that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterReject {
    /// `file:line`.
    pub location: String,
    /// Why: a reason code and the column, never the row's values.
    pub fault: Fault,
}

/// Why the file as a whole could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    /// A required column is missing from the header.
    #[error("{location}:1: kolonnen «{column}» mangler i overskriftslinjen")]
    MissingColumn {
        /// File name.
        location: String,
        /// The column.
        column: &'static str,
    },
    /// The identity map's column is missing from the header.
    #[error(
        "{location}:1: kolonnen «{column}» (identitetskolonnen i kildens identity.column) mangler i overskriftslinjen"
    )]
    MissingIdentityColumn {
        /// File name.
        location: String,
        /// The column.
        column: String,
    },
    /// The CSV itself is broken.
    #[error("{location}: {message}")]
    Csv {
        /// File name.
        location: String,
        /// What is wrong.
        message: String,
    },
}

const REQUIRED: [&str; 8] = [
    "skole_id",
    "skole_navn",
    "klasse_id",
    "klasse_navn",
    "trinn",
    "elev_id",
    "elev_fornavn",
    "elev_etternavn",
];

/// Reads a roster CSV. Rows with faults are returned as rejects; the rest
/// make the roster.
pub fn read_roster(
    input: impl Read,
    location: &str,
    matrix_template: Option<&str>,
) -> Result<(Roster, Vec<RosterReject>), RosterError> {
    read_roster_linked(input, location, matrix_template, None).map(|(roster, _, rejects)| (roster, rejects))
}

/// [`read_roster`], also reading the identity map's column when the source
/// has one: each pupil with a value in it gets its identity token. A value
/// that is no identifier of its kind is rejected (the pupil stays on the
/// roster, unlinked); the reason never repeats the value.
pub fn read_roster_linked(
    input: impl Read,
    location: &str,
    matrix_template: Option<&str>,
    identity: Option<&IdentityColumn>,
) -> Result<(Roster, Vec<PupilIdentity>, Vec<RosterReject>), RosterError> {
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(b';')
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let csv_err = |e: csv::Error| RosterError::Csv {
        location: location.to_string(),
        message: e.to_string(),
    };
    let names: Vec<String> = csv
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    let col = |name: &str| names.iter().position(|n| n == name);
    for c in REQUIRED {
        if col(c).is_none() {
            return Err(RosterError::MissingColumn {
                location: location.to_string(),
                column: c,
            });
        }
    }
    let identity_idx = match identity {
        None => None,
        Some(i) => Some(col(&i.column).ok_or_else(|| RosterError::MissingIdentityColumn {
            location: location.to_string(),
            column: i.column.clone(),
        })?),
    };
    let mut links: BTreeMap<String, PupilIdentity> = BTreeMap::new();
    let idx = |name: &str| col(name).unwrap_or(usize::MAX);
    let mut schools = BTreeMap::new();
    let mut classes: BTreeMap<String, RosterClass> = BTreeMap::new();
    let mut pupils = BTreeMap::new();
    let mut staff = BTreeMap::new();
    let mut rejects = Vec::new();
    for row in csv.records() {
        let row = row.map_err(csv_err)?;
        let line = row.position().map(|p| p.line()).unwrap_or(0);
        let get = |name: &str| row.get(idx(name)).filter(|v| !v.is_empty());
        let missing: Vec<&str> = REQUIRED.iter().copied().filter(|c| get(c).is_none()).collect();
        if !missing.is_empty() {
            rejects.push(RosterReject {
                location: format!("{location}:{line}"),
                fault: Fault::new(RejectCode::MissingField, missing.join(", ")),
            });
            continue;
        }
        let v = |name: &str| get(name).unwrap_or_default().to_string();
        let grade = match v("trinn").parse::<u8>() {
            Ok(g) if (1..=10).contains(&g) => g,
            _ => {
                rejects.push(RosterReject {
                    location: format!("{location}:{line}"),
                    fault: Fault::new(RejectCode::OutOfRange, "trinn").with_limit("et tall fra 1 til 10"),
                });
                continue;
            }
        };
        schools.insert(
            v("skole_id"),
            RosterSchool {
                id: v("skole_id"),
                name: v("skole_navn"),
            },
        );
        let class = classes.entry(v("klasse_id")).or_insert_with(|| RosterClass {
            id: v("klasse_id"),
            school: v("skole_id"),
            name: v("klasse_navn"),
            grade,
            contact_teachers: Vec::new(),
        });
        if let Some(teacher) = get("kontaktlaerer_id") {
            if !class.contact_teachers.iter().any(|t| t == teacher) {
                class.contact_teachers.push(teacher.to_string());
            }
            let matrix_id = get("kontaktlaerer_matrix_id").map(str::to_string).or_else(|| {
                let user = get("kontaktlaerer_brukernavn")?;
                matrix_template.map(|t| t.replace("{username}", user))
            });
            staff.insert(
                teacher.to_string(),
                RosterPerson {
                    id: teacher.to_string(),
                    given_name: v("kontaktlaerer_fornavn"),
                    family_name: v("kontaktlaerer_etternavn"),
                    matrix_id,
                    school: Some(v("skole_id")),
                },
            );
        }
        if let (Some(identity), Some(i)) = (identity, identity_idx) {
            match identity.token(row.get(i).unwrap_or_default()) {
                Ok(Some(token)) => {
                    links.insert(
                        v("elev_id"),
                        PupilIdentity {
                            local: v("elev_id"),
                            school: v("skole_id"),
                            token,
                        },
                    );
                }
                Ok(None) => {}
                Err(why) => rejects.push(RosterReject {
                    location: format!("{location}:{line}"),
                    fault: Fault::new(RejectCode::IdentityMalformed, identity.column.clone()).with_limit(why),
                }),
            }
        }
        pupils.insert(
            v("elev_id"),
            RosterPupil {
                id: v("elev_id"),
                school: v("skole_id"),
                class: Some(v("klasse_id")),
                grade,
                given_name: v("elev_fornavn"),
                family_name: v("elev_etternavn"),
            },
        );
    }
    Ok((
        Roster {
            schools: schools.into_values().collect(),
            classes: classes.into_values().collect(),
            pupils: pupils.into_values().collect(),
            staff: staff.into_values().collect(),
        },
        links.into_values().collect(),
        rejects,
    ))
}

/// The header line of the roster CSV, for writers.
pub const HEADER: &str = "skole_id;skole_navn;klasse_id;klasse_navn;trinn;elev_id;elev_fornavn;elev_etternavn;kontaktlaerer_id;kontaktlaerer_fornavn;kontaktlaerer_etternavn;kontaktlaerer_brukernavn;kontaktlaerer_matrix_id";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::roster::Level;

    #[test]
    fn rows_make_a_roster_with_matrix_ids_and_levels() {
        let text = format!(
            "{HEADER}\n\
s1;Bekkestua skole;s1-5a;5A;5;e1;Emma;Hansen;t1;Kari;Berg;karber;\n\
s1;Bekkestua skole;s1-5a;5A;5;e2;Ola;Dahl;t2;Per;Lie;perlie;@per:kommune.no\n\
s2;Hauger ungdomsskole;s2-9b;9B;9;e3;Nora;Moe;;;;;\n\
s2;Hauger ungdomsskole;s2-9b;9B;12;e4;Ali;Khan;;;;;\n\
s2;;s2-9b;9B;9;e5;Ali;Khan;;;;;\n"
        );
        let (r, rejects) = read_roster(text.as_bytes(), "r.csv", Some("@{username}:example.org")).unwrap();
        assert_eq!(r.schools.len(), 2);
        assert_eq!(r.pupils.len(), 3);
        assert_eq!(r.classes[0].contact_teachers, ["t1", "t2"]);
        assert_eq!(r.staff[0].matrix_id.as_deref(), Some("@karber:example.org"));
        assert_eq!(r.staff[1].matrix_id.as_deref(), Some("@per:kommune.no"));
        assert_eq!(r.pupils[0].level(), Level::Barneskole);
        assert_eq!(r.pupils[2].level(), Level::Ungdomsskole);
        assert_eq!(rejects.len(), 2);
        assert_eq!(rejects[0].location, "r.csv:5");
        assert_eq!(
            rejects[0].fault,
            Fault::new(RejectCode::OutOfRange, "trinn").with_limit("et tall fra 1 til 10")
        );
        assert_eq!(rejects[1].fault.code, RejectCode::MissingField);
        assert!(rejects[1].fault.to_string().contains("skole_navn"));
    }

    #[test]
    fn the_identity_column_becomes_tokens_and_nothing_else() {
        use crate::domain::identity::IdentityKind;
        let text = format!(
            "{HEADER};fnr\n\
s1;Bekkestua skole;s1-5a;5A;5;e1;Emma;Hansen;;;;;;010101 12345\n\
s1;Bekkestua skole;s1-5a;5A;5;e2;Ola;Dahl;;;;;;\n\
s1;Bekkestua skole;s1-5a;5A;5;e3;Nora;Moe;;;;;;12345\n"
        );
        let column = IdentityColumn::new(IdentityKind::NationalId, "fnr", &[3; 32]);
        let (roster, links, rejects) = read_roster_linked(text.as_bytes(), "r.csv", None, Some(&column)).unwrap();
        assert_eq!(
            roster.pupils.len(),
            3,
            "an unlinked or badly linked pupil stays on the roster"
        );
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].local, "e1");
        assert_eq!(links[0].school, "s1");
        assert_eq!(Some(links[0].token.clone()), column.token("01010112345").unwrap());
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].location, "r.csv:4");
        let reason = rejects[0].fault.to_string();
        assert!(reason.starts_with("identity-malformed: feltet «fnr»"), "{reason}");
        assert!(!reason.contains("12345"));
        let err = read_roster_linked(
            format!("{HEADER}\n").as_bytes(),
            "r.csv",
            None,
            Some(&IdentityColumn::new(IdentityKind::Feide, "feide", &[3; 32])),
        )
        .unwrap_err();
        assert!(err.to_string().contains("«feide»"), "{err}");
    }

    #[test]
    fn missing_column_is_named() {
        let err = read_roster(&b"skole_id;elev_id\n"[..], "r.csv", None).unwrap_err();
        assert!(err.to_string().contains("«skole_navn»"), "{err}");
    }
}
