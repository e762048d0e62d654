//! Protocol engines that turn source data into canonical records.
//!
//! Every adapter yields [`Parsed`] items: a record, a rejected input with
//! its location and reason ([`Rejected`], which the ingest layer turns into
//! a quarantine entry), or input that was understood and is not absence
//! ([`Skip`]: a present day, an event kind tilstede does not follow), so
//! that every input is counted ([`ParseCounts`]). Adapters never stop at the
//! first bad item; what came before and after it is still delivered. Parsers
//! are sans-IO: they read any `BufRead`, so they are tested without files or
//! a network.

pub mod config;
pub mod edfi;
pub mod edfi_api;
pub mod fint;
pub mod jsonl;
pub mod mapping;
pub mod oneroster;
pub mod profile;
pub mod pull;
pub mod rest;
pub mod roster_csv;
pub mod sif;
pub mod vendor_csv;
pub mod vendor_rest;
pub mod vendor_xml;
pub mod xml;

use crate::domain::{AbsenceRecord, Fault, RejectCode};
use std::io::{self, BufRead};

/// One item read from a source.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A good record.
    Record(AbsenceRecord),
    /// Input that was rejected, for the quarantine.
    Rejected(Rejected),
    /// Input that was read and understood, and is not absence.
    Skipped(Skip),
}

/// Input an adapter could not accept: where it was, why (a reason code
/// and the field or element at fault), and the input itself. A domain
/// value; the store decides what the quarantine keeps of it (the input only
/// for a source with `keep_raw`). What people are shown of it
/// ([`Rejected::reason`]) is built from the code, the field and a limit,
/// never from the input's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The source it was meant for, when known.
    pub source: Option<String>,
    /// Where it was: `file:line[:column]`, `url#index`, …
    pub location: String,
    /// Why it was rejected.
    pub code: RejectCode,
    /// The field, column or element at fault (a name, never a value).
    pub field: Option<String>,
    /// The bound broken, from tilstede or its configuration (never a value
    /// from the input).
    pub limit: Option<String>,
    /// The input as it came (a row, an element written back as XML, JSON).
    pub raw: String,
}

impl Rejected {
    /// A rejection of `raw` at `location` for `fault`.
    pub fn new(source: Option<String>, location: impl Into<String>, fault: Fault, raw: impl Into<String>) -> Rejected {
        Rejected {
            source,
            location: location.into(),
            code: fault.code,
            field: fault.field,
            limit: fault.limit,
            raw: raw.into(),
        }
    }

    /// The text for people: code, field and limit
    /// ([`crate::domain::reject::describe`]).
    pub fn reason(&self) -> String {
        crate::domain::reject::describe(self.code, self.field.as_deref(), self.limit.as_deref())
    }
}

/// Why an input that is not absence was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Attendance: present, in attendance, at an educational activity away
    /// from school, or a code the source's table says is not absence.
    Presence,
    /// An event of a kind tilstede does not follow (Ed-Fi intervention or
    /// program attendance, say); the name is the source's element.
    NotFollowed(&'static str),
}

/// What a parse yielded, counted: so that a file (or a push) that yields
/// no record says why instead of passing in silence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseCounts {
    /// Records accepted.
    pub accepted: u64,
    /// Inputs rejected (to the quarantine).
    pub rejected: u64,
    /// Inputs skipped as presence ([`Skip::Presence`]).
    pub presence: u64,
    /// Inputs of kinds not followed, by element name ([`Skip::NotFollowed`]).
    pub not_followed: std::collections::BTreeMap<&'static str, u64>,
}

impl ParseCounts {
    /// Counts one item.
    pub fn add(&mut self, item: &Parsed) {
        match item {
            Parsed::Record(_) => self.accepted += 1,
            Parsed::Rejected(_) => self.rejected += 1,
            Parsed::Skipped(Skip::Presence) => self.presence += 1,
            Parsed::Skipped(Skip::NotFollowed(kind)) => *self.not_followed.entry(kind).or_default() += 1,
        }
    }

    /// Every input counted.
    pub fn total(&self) -> u64 {
        self.accepted + self.rejected + self.presence + self.not_followed.values().sum::<u64>()
    }

    /// One line for people: `12 godtatt, 1 avvist, 30 hoppet over som oppmøte`
    /// (and the kinds not followed, when there were any).
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{} godtatt, {} avvist, {} hoppet over som oppmøte",
            self.accepted, self.rejected, self.presence
        );
        for (kind, n) in &self.not_followed {
            line.push_str(&format!(", {n} {kind} hoppet over (følges ikke)"));
        }
        line
    }
}

/// A stream of parsed items from some adapter.
pub type ParsedStream = Box<dyn Iterator<Item = io::Result<Parsed>> + Send>;

/// What an adapter reads and where its mapping is written down, for
/// `tilstede adapters list`: no adapter may turn input into nothing without
/// saying by which table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterInfo {
    /// The adapter's name (`--adapter`, `adapter =`).
    pub name: &'static str,
    /// What it reads, for people.
    pub description: &'static str,
    /// The standard and version it follows (or the format's owner).
    pub standard: &'static str,
    /// Where its mapping table is documented.
    pub mapping: &'static str,
}

/// The file adapters.
pub const FILE_ADAPTERS: &[AdapterInfo] = &[
    AdapterInfo {
        name: "jsonl",
        description: "kanoniske JSON Lines",
        standard: "tilstedes kanoniske post",
        mapping: "schemas/absence-record.schema.json",
    },
    AdapterInfo {
        name: "edfi-xml",
        description: "InterchangeStudentAttendance: skole-, time- og tiltakshendelser, strømmet",
        standard: "Ed-Fi Data Standard 5.2 (bulk-XML, Interchange-StudentAttendance.xsd)",
        mapping: "adapters/edfi-xml/README.md",
    },
    AdapterInfo {
        name: "vendor-csv",
        description: "CSV-eksport fra et skolesystem, styrt av en profil (--profile)",
        standard: "leverandørens eksport (UTF-8, Windows-1252 eller ISO-8859-1)",
        mapping: "adapters/README.md og profilens TOML",
    },
    AdapterInfo {
        name: "vendor-xml",
        description: "XML-eksport fra et skolesystem, styrt av en profil (--profile), strømmet",
        standard: "leverandørens eksport",
        mapping: "adapters/README.md og profilens TOML",
    },
    AdapterInfo {
        name: "sif-xml",
        description: "StudentDailyAttendance, StudentPeriodAttendance, StudentAttendanceTimeList, strømmet",
        standard: "SIF AU 3.4 (kodesettene AttendanceCode og AttendanceStatus)",
        mapping: "adapters/sif-xml/README.md",
    },
    AdapterInfo {
        name: "fint",
        description: "én FINT HAL-side (fravarsregistrering), profil «fint» som standard",
        standard: "FINT informasjonsmodell 3.21 (utdanning/vurdering)",
        mapping: "adapters/fint/README.md og adapters/fint/profile.toml",
    },
];

/// The pull adapters (`tilstede sync`, the service's `pull`).
pub const PULL_ADAPTERS: &[AdapterInfo] = &[
    AdapterInfo {
        name: "edfi-api",
        description: "oppmøtehendelser og slettinger, minChangeVersion/maxChangeVersion",
        standard: "Ed-Fi ODS/API 5+ (Data Standard 5.2-ressurser)",
        mapping: "adapters/edfi-xml/README.md",
    },
    AdapterInfo {
        name: "fint",
        description: "fravarsregistrering → elevfravar → elevforhold, sinceTimeStamp",
        standard: "FINT informasjonsmodell 3.21 (utdanning/vurdering)",
        mapping: "adapters/fint/README.md og adapters/fint/profile.toml",
    },
    AdapterInfo {
        name: "vendor-rest",
        description: "JSON REST-API fra et skolesystem, styrt av en profil: offset, side, neste-lenke eller markør",
        standard: "leverandørens API",
        mapping: "adapters/README.md og profilens TOML",
    },
    AdapterInfo {
        name: "oneroster",
        description: "elevliste: skoler, basisgrupper, elever, kontaktlærere",
        standard: "1EdTech OneRoster 1.2 (rostering)",
        mapping: "adapters/README.md (Pull sources)",
    },
];

/// Why an adapter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// No adapter by that name.
    #[error("ukjent adapter «{0}» (se `tilstede adapters list`)")]
    Unknown(String),
    /// The adapter needs a profile.
    #[error("adapteren «{0}» trenger --profile (et profilnavn eller en sti til en TOML-fil)")]
    NeedsProfile(String),
    /// The profile is bad.
    #[error(transparent)]
    Profile(#[from] profile::ProfileError),
}

/// Settings common to the file adapters.
#[derive(Debug, Clone, Default)]
pub struct FileOptions {
    /// Profile name or path (vendor adapters).
    pub profile: Option<String>,
    /// Canonical source name (default: the adapter's or profile's).
    pub source: Option<String>,
    /// Lessons per school day (Ed-Fi part-day events).
    pub lessons_per_day: Option<u32>,
}

/// Maps the JSON items of one fetched page (sans-IO): `map` turns an item
/// into a record (`Ok(None)` for attendance that is not absence, skipped as
/// presence); an item it refuses is rejected as `location#index` with its
/// JSON and the fault.
pub fn map_json_items<E: Into<Fault>>(
    items: &[serde_json::Value],
    source: &str,
    location: &str,
    mut map: impl FnMut(&serde_json::Value) -> Result<Option<AbsenceRecord>, E>,
) -> Vec<Parsed> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match map(v) {
            Ok(Some(r)) => Parsed::Record(r),
            Ok(None) => Parsed::Skipped(Skip::Presence),
            Err(fault) => Parsed::Rejected(Rejected::new(
                Some(source.to_string()),
                format!("{location}#{i}"),
                fault.into(),
                v.to_string(),
            )),
        })
        .collect()
}

/// Whether records from the file adapter `name` (with `profile`) carry their
/// own versions. The others get a version stamp when they are imported
/// ([`version_stamp_at`]).
pub fn carries_versions(name: &str, profile: Option<&str>) -> Result<bool, AdapterError> {
    Ok(match name {
        "jsonl" => true,
        "vendor-csv" => match profile {
            Some(p) => profile::Profile::load(p)?.columns.version.is_some(),
            // open_file names the missing profile.
            None => false,
        },
        _ => false,
    })
}

/// The one clock of version stamps: unix seconds (a u32 lasts until 2106).
/// Records from sources without versions of their own are stamped on it: a
/// file by its modification time, an HTTP push by its arrival, a pull by its
/// start. So a later delivery of a record replaces an earlier one whichever
/// way each came. `None` before 1970 or after 2106.
pub fn version_stamp_at(t: std::time::SystemTime) -> Option<u32> {
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    u32::try_from(secs).ok().filter(|s| *s > 0)
}

/// Opens the file adapter `name` over `input`; `location` names the input.
pub fn open_file(
    name: &str,
    options: &FileOptions,
    input: Box<dyn BufRead + Send>,
    location: &str,
) -> Result<ParsedStream, AdapterError> {
    match name {
        // Lines without a `source` belong to the named source, as in a push.
        "jsonl" => Ok(match &options.source {
            Some(s) => Box::new(jsonl::JsonlReader::new(input, location).with_default_source(s.as_str())),
            None => Box::new(jsonl::JsonlReader::new(input, location)),
        }),
        "edfi-xml" => {
            let mut mapping = edfi::EdfiMapping::default();
            if let Some(s) = &options.source {
                mapping.source = s.clone();
            }
            if let Some(n) = options.lessons_per_day {
                mapping.lessons_per_day = n;
            }
            Ok(Box::new(edfi::EdfiXmlReader::new(input, location, mapping)))
        }
        "sif-xml" => {
            let mut mapping = sif::SifMapping::default();
            if let Some(s) = &options.source {
                mapping.source = s.clone();
            }
            if let Some(n) = options.lessons_per_day {
                mapping.lessons_per_day = n;
            }
            Ok(Box::new(sif::SifXmlReader::new(input, location, mapping)))
        }
        "fint" => {
            let name = options.profile.as_deref().unwrap_or("fint");
            let mut p = profile::Profile::load(name)?;
            if let Some(s) = &options.source {
                p.source = s.clone();
            }
            // A HAL page is one JSON document; pages are bounded by the server.
            let mut input = input;
            let mut text = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut input, &mut text) {
                return Ok(Box::new(std::iter::once(Err(e))));
            }
            let items = match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(doc) => fint::map_file(&doc, &p, location),
                Err(e) => Err(format!("ugyldig JSON: {e}")),
            };
            let location = location.to_string();
            Ok(match items {
                Ok(items) => Box::new(items.into_iter().map(Ok)),
                Err(message) => Box::new(std::iter::once(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{location}: {message}"),
                )))),
            })
        }
        "vendor-csv" => Ok(Box::new(vendor_csv::VendorCsvReader::new(
            input,
            location,
            vendor_profile(name, options)?,
        ))),
        "vendor-xml" => Ok(Box::new(vendor_xml::VendorXmlReader::new(
            input,
            location,
            vendor_profile(name, options)?,
        )?)),
        other => Err(AdapterError::Unknown(other.to_string())),
    }
}

/// The profile a vendor adapter was given, for that adapter, with the
/// `--source` override applied.
fn vendor_profile(adapter: &str, options: &FileOptions) -> Result<profile::Profile, AdapterError> {
    let name = options
        .profile
        .as_deref()
        .ok_or_else(|| AdapterError::NeedsProfile(adapter.into()))?;
    let mut p = profile::Profile::load(name)?;
    if p.adapter != adapter {
        return Err(AdapterError::Profile(profile::ProfileError::Invalid {
            path: format!("{name}: adapter"),
            message: format!("profilen er for {}, ikke {adapter}", p.adapter),
        }));
    }
    if let Some(s) = &options.source {
        p.source = s.clone();
    }
    Ok(p)
}

/// Runs one incremental pull of a configured source into `store`: its
/// component builds the puller that speaks its protocol. The cursor moves
/// only after committed data.
pub async fn pull_once(
    client: &rest::RestClient,
    source: &config::PullSource,
    store: &crate::store::Store,
) -> Result<pull::SyncReport, pull::SyncError> {
    source
        .component
        .build(&source.name, &source.schools)
        .pull(client, store)
        .await
}
