//! What every adapter target checks: the adapter opens, its stream ends,
//! and every record it accepts is one the canonical JSON form accepts back
//! unchanged (what enters by one door could enter by any).

use std::io::{BufRead, Cursor};
use std::sync::{Mutex, OnceLock};
use tilstede::adapters::profile::Profile;
use tilstede::adapters::{FileOptions, ParseCounts, Parsed, open_file};
use tilstede::domain::record::AbsenceRecord;

/// Runs the file adapter `name` (with `profile`) over `data`.
#[allow(dead_code)]
pub fn adapter(name: &str, profile: Option<&str>, data: &[u8]) {
    let options = FileOptions {
        profile: profile.map(str::to_string),
        ..FileOptions::default()
    };
    let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(data.to_vec()));
    let stream = open_file(name, &options, input, "fuzz").expect("a shipped adapter opens");
    check(stream, data.len());
}

/// A shipped profile, read once per process (reading its TOML on every
/// input would be most of the work).
#[allow(dead_code)]
pub fn profile(name: &'static str) -> Profile {
    static CACHE: OnceLock<Mutex<Vec<(&'static str, Profile)>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    if let Some((_, p)) = cache.iter().find(|(n, _)| *n == name) {
        return p.clone();
    }
    let p = Profile::load(name).expect("a shipped profile");
    cache.push((name, p.clone()));
    p
}

/// Reads a whole stream of `len` input bytes, checking every item.
pub fn check(stream: impl Iterator<Item = std::io::Result<Parsed>>, len: usize) {
    let mut counts = ParseCounts::default();
    // An input of n bytes cannot hold more than n items: a stream that goes
    // on is a hang, not a parse.
    let mut items = 0usize;
    for item in stream {
        items += 1;
        assert!(items <= len + 1, "more items than input bytes");
        let Ok(item) = item else { continue };
        if let Parsed::Record(r) = &item {
            round_trip(r);
        }
        if let Parsed::Rejected(r) = &item {
            assert!(!r.location.is_empty(), "a rejection names its place");
        }
        counts.add(&item);
    }
}

/// An accepted record survives its canonical JSON form. One known
/// difference is allowed: serde_json (without its `float_roundtrip`
/// feature) may read a float in an extension field back one unit in the
/// last place off; extension fields are the source's own codes and labels,
/// kept only where the source's allow-list names them.
pub fn round_trip(r: &AbsenceRecord) {
    let line = r.to_json_line();
    match AbsenceRecord::from_json_str(&line) {
        Ok(mut back) => {
            for (k, v) in back.extensions.iter_mut() {
                if let (Some(a), Some(b)) = (v.as_f64(), r.extensions.get(k).and_then(|o| o.as_f64()))
                    && v.is_f64()
                    && (a == b || (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()))
                {
                    *v = r.extensions[k].clone();
                }
            }
            assert_eq!(&back, r, "record changed on the way through JSON: {line}")
        }
        Err(e) => panic!("an accepted record is refused in JSON form ({e}): {line}"),
    }
}
