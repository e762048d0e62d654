//! Protocol engines that turn source data into canonical records.
//!
//! Every adapter yields [`Parsed`] items: a record, or a rejected input with
//! its location and reason for the quarantine. Adapters never stop at the
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
pub mod rest;
pub mod roster_csv;
pub mod sif;
pub mod vendor_csv;
pub mod vendor_rest;
pub mod vendor_xml;
pub mod xml;

use crate::domain::AbsenceRecord;
use crate::store::QuarantineEntry;
use std::io::{self, BufRead};

/// One item read from a source.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A good record.
    Record(AbsenceRecord),
    /// Input that was rejected, for the quarantine.
    Rejected(QuarantineEntry),
}

/// A stream of parsed items from some adapter.
pub type ParsedStream = Box<dyn Iterator<Item = io::Result<Parsed>> + Send>;

/// The file adapters: (name, description).
pub const FILE_ADAPTERS: &[(&str, &str)] = &[
    ("jsonl", "kanoniske JSON Lines"),
    (
        "edfi-xml",
        "Ed-Fi 5.x InterchangeStudentAttendance (StudentSchool-/StudentSectionAttendanceEvent), strømmet",
    ),
    (
        "vendor-csv",
        "CSV-eksport fra et skolesystem, styrt av en profil (--profile)",
    ),
    (
        "vendor-xml",
        "XML-eksport fra et skolesystem, styrt av en profil (--profile), strømmet",
    ),
    (
        "sif-xml",
        "SIF AU 3.4 StudentDailyAttendance, StudentPeriodAttendance, StudentAttendanceTimeList, strømmet",
    ),
    (
        "fint",
        "én FINT HAL-side (fravarsregistrering), profil «fint» som standard",
    ),
];

/// The pull adapters (`tilstede sync`, the service's `pull`): (name, description).
pub const PULL_ADAPTERS: &[(&str, &str)] = &[
    (
        "edfi-api",
        "Ed-Fi ODS/API: oppmøtehendelser og slettinger, minChangeVersion/maxChangeVersion",
    ),
    ("fint", "FINT utdanning/vurdering fravarsregistrering, sinceTimeStamp"),
    (
        "vendor-rest",
        "JSON REST-API fra et skolesystem, styrt av en profil: offset, side, neste-lenke eller markør",
    ),
    (
        "oneroster",
        "OneRoster 1.2 elevliste: skoler, basisgrupper, elever, kontaktlærere",
    ),
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
/// into a record (`Ok(None)` for attendance that is not absence); an item it
/// refuses is quarantined as `location#index` with its JSON and the reason.
pub fn map_json_items<E: std::fmt::Display>(
    items: &[serde_json::Value],
    source: &str,
    location: &str,
    mut map: impl FnMut(&serde_json::Value) -> Result<Option<AbsenceRecord>, E>,
) -> Vec<Parsed> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match map(v) {
            Ok(Some(r)) => Some(Parsed::Record(r)),
            Ok(None) => None,
            Err(reason) => Some(Parsed::Rejected(QuarantineEntry {
                source: Some(source.to_string()),
                location: format!("{location}#{i}"),
                reason: reason.to_string(),
                raw: v.to_string(),
            })),
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
        "jsonl" => Ok(Box::new(jsonl::JsonlReader::new(input, location))),
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
                Ok(page) => fint::map_page(&page, &p, location),
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

/// Runs one incremental pull of a configured source into `store`, with the
/// protocol its adapter speaks. The cursor moves only after committed data.
pub async fn pull_once(
    client: &rest::RestClient,
    source: &config::PullSource,
    store: &crate::store::Store,
) -> Result<edfi_api::SyncReport, edfi_api::SyncError> {
    if let Some(settings) = &source.oneroster {
        return oneroster::sync(client, settings, store, &source.name).await;
    }
    if let Some((base_url, profile)) = &source.vendor_rest {
        return vendor_rest::sync(client, base_url, profile, store, &source.name).await;
    }
    match &source.fint {
        Some((settings, profile)) => fint::sync(client, settings, profile, store, &source.name).await,
        None => edfi_api::sync(client, &source.edfi, &source.mapping, store, &source.name).await,
    }
}
