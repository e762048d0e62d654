//! Why an input was rejected, as a stable code and the name of the field at
//! fault: never the input's own values. A value a source sent in the wrong
//! field may be health data (a diagnosis typed into a date column), so what
//! the quarantine stores and what IT is shown is built from the code, the
//! field's name and tilstede's own bounds only ([`Fault`]'s `Display`).

use std::fmt;

/// A rejection's reason, with a stable snake_case name (stored in the
/// quarantine, listed by `tilstede quarantine`, answered to pushes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    /// A required field or element is missing or empty.
    MissingField,
    /// A date that is not a date (or not in the expected form).
    BadDate,
    /// A number that is not a number (or not a whole one).
    BadNumber,
    /// A value of the wrong type or form (text where a flag belongs, …).
    BadValue,
    /// A value outside what is accepted (a plausibility bound, zero lessons).
    OutOfRange,
    /// A code that is not in the table that maps it.
    UnknownCode,
    /// Input that is not valid UTF-8 (or the profile's encoding).
    BadEncoding,
    /// Control characters in an identifier.
    ControlCharacters,
    /// Input that is not well-formed JSON (or not an object, or with a key
    /// given twice).
    MalformedJson,
    /// Input that is not well-formed XML (or cut short, or refused).
    MalformedXml,
    /// Input that is not readable CSV.
    MalformedCsv,
    /// A record for a school its source may not write.
    SchoolNotAllowed,
    /// A record in the name of another source than the one sending it.
    SourceMismatch,
    /// An identity link that would join a child already linked elsewhere.
    IdentityConflict,
    /// An identity link across schools.
    IdentityOtherSchool,
    /// An identity link between two pupils who both have an open case.
    IdentityOpenCases,
    /// An identity value that is no valid id of its kind.
    IdentityMalformed,
    /// Quarantined before reasons were codes; the free text was dropped at
    /// the upgrade (migration 63).
    Legacy,
}

impl RejectCode {
    /// Every code, in order.
    pub const ALL: [RejectCode; 18] = [
        RejectCode::MissingField,
        RejectCode::BadDate,
        RejectCode::BadNumber,
        RejectCode::BadValue,
        RejectCode::OutOfRange,
        RejectCode::UnknownCode,
        RejectCode::BadEncoding,
        RejectCode::ControlCharacters,
        RejectCode::MalformedJson,
        RejectCode::MalformedXml,
        RejectCode::MalformedCsv,
        RejectCode::SchoolNotAllowed,
        RejectCode::SourceMismatch,
        RejectCode::IdentityConflict,
        RejectCode::IdentityOtherSchool,
        RejectCode::IdentityOpenCases,
        RejectCode::IdentityMalformed,
        RejectCode::Legacy,
    ];

    /// The stable name (`missing_field`, `school-not-allowed`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectCode::MissingField => "missing_field",
            RejectCode::BadDate => "bad_date",
            RejectCode::BadNumber => "bad_number",
            RejectCode::BadValue => "bad_value",
            RejectCode::OutOfRange => "out_of_range",
            RejectCode::UnknownCode => "unknown_code",
            RejectCode::BadEncoding => "bad_encoding",
            RejectCode::ControlCharacters => "control_characters",
            RejectCode::MalformedJson => "malformed_json",
            RejectCode::MalformedXml => "malformed_xml",
            RejectCode::MalformedCsv => "malformed_csv",
            // These were reason prefixes before codes; their names stay.
            RejectCode::SchoolNotAllowed => "school-not-allowed",
            RejectCode::SourceMismatch => "source-mismatch",
            RejectCode::IdentityConflict => "identity-conflict",
            RejectCode::IdentityOtherSchool => "identity-other-school",
            RejectCode::IdentityOpenCases => "identity-open-cases",
            RejectCode::IdentityMalformed => "identity-malformed",
            RejectCode::Legacy => "legacy",
        }
    }

    /// The code named `s` ([`RejectCode::as_str`]).
    pub fn parse(s: &str) -> Option<RejectCode> {
        RejectCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// What the code means, for people.
    pub fn describe(self) -> &'static str {
        match self {
            RejectCode::MissingField => "mangler eller er tom",
            RejectCode::BadDate => "er ikke en gyldig dato",
            RejectCode::BadNumber => "er ikke et gyldig tall",
            RejectCode::BadValue => "har feil type eller form",
            RejectCode::OutOfRange => "ligger utenfor det som tas imot",
            RejectCode::UnknownCode => "har en kode som ikke er i kodetabellen",
            RejectCode::BadEncoding => "er ikke gyldig UTF-8 (eller profilens tegnsett)",
            RejectCode::ControlCharacters => "inneholder kontrolltegn",
            RejectCode::MalformedJson => "er ikke gyldig JSON",
            RejectCode::MalformedXml => "er ikke gyldig XML",
            RejectCode::MalformedCsv => "er ikke lesbar CSV",
            RejectCode::SchoolNotAllowed => "gjelder en skole kilden ikke har lov til å skrive for",
            RejectCode::SourceMismatch => "gjelder en annen kilde enn den som sendte posten",
            RejectCode::IdentityConflict => "knytter et barn som alt er knyttet til et annet",
            RejectCode::IdentityOtherSchool => "knytter elever på to forskjellige skoler",
            RejectCode::IdentityOpenCases => "knytter to elever som begge har en åpen sak",
            RejectCode::IdentityMalformed => "er ikke en gyldig identitet av sin type",
            RejectCode::Legacy => "ble avvist før årsakskoder fantes (detaljene ble fjernet ved oppgraderingen)",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for RejectCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Why one input was rejected: a code, the field or element at fault (a
/// name from the format, the profile or the configuration, never a value
/// from the input), and a limit from tilstede or its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The reason code.
    pub code: RejectCode,
    /// The field, column or element at fault, when there is one.
    pub field: Option<String>,
    /// The bound or the accepted values, for people (`høyst 16`); from
    /// tilstede or its configuration, never from the input.
    pub limit: Option<String>,
}

impl Fault {
    /// A fault in `field`.
    pub fn new(code: RejectCode, field: impl Into<String>) -> Fault {
        Fault {
            code,
            field: Some(field.into()),
            limit: None,
        }
    }

    /// A fault of the whole input (no field).
    pub fn whole(code: RejectCode) -> Fault {
        Fault {
            code,
            field: None,
            limit: None,
        }
    }

    /// The same fault with the bound that was broken.
    pub fn with_limit(self, limit: impl Into<String>) -> Fault {
        Fault {
            limit: Some(limit.into()),
            ..self
        }
    }
}

/// The text people see for a rejection: the code, what it means and the
/// field, and the limit, e.g. `bad_date: feltet «date» er ikke en gyldig
/// dato`. Built from the code, the field's name and the limit only.
pub fn describe(code: RejectCode, field: Option<&str>, limit: Option<&str>) -> String {
    let mut text = match field {
        Some(field) => format!(
            "{code}: feltet «{}» {}",
            super::plausibility::printable(field),
            code.describe()
        ),
        None => format!("{code}: innholdet {}", code.describe()),
    };
    if let Some(limit) = limit {
        text.push_str(&format!(" ({})", super::plausibility::printable(limit)));
    }
    text
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe(self.code, self.field.as_deref(), self.limit.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_keep_the_old_names() {
        for c in RejectCode::ALL {
            assert_eq!(RejectCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(RejectCode::SchoolNotAllowed.as_str(), "school-not-allowed");
        assert_eq!(RejectCode::SourceMismatch.as_str(), "source-mismatch");
        assert_eq!(RejectCode::parse("nonsense"), None);
    }

    #[test]
    fn text_is_built_from_code_field_and_limit() {
        let f = Fault::new(RejectCode::OutOfRange, "lessons").with_limit("høyst 16");
        assert_eq!(
            f.to_string(),
            "out_of_range: feltet «lessons» ligger utenfor det som tas imot (høyst 16)"
        );
        assert_eq!(
            Fault::whole(RejectCode::MalformedXml).to_string(),
            "malformed_xml: innholdet er ikke gyldig XML"
        );
    }
}
