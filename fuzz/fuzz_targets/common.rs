//! What every adapter target checks: the adapter opens, its stream ends,
//! and every record it accepts is one the canonical JSON form accepts back
//! unchanged (what enters by one door could enter by any).

use std::io::{BufRead, Cursor};
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
    let mut counts = ParseCounts::default();
    // An input of n bytes cannot hold more than n items: a stream that goes
    // on is a hang, not a parse.
    let mut items = 0usize;
    for item in stream {
        items += 1;
        assert!(items <= data.len() + 1, "more items than input bytes");
        let Ok(item) = item else { continue };
        if let Parsed::Record(r) = &item {
            round_trip(r);
        }
        if let Parsed::Rejected(r) = &item {
            assert!(!r.location.is_empty(), "a rejection names its place");
        }
        counts.add(&item);
    }
    assert_eq!(counts.total(), counts.accepted + counts.rejected + counts.presence + counts.not_followed.values().sum::<u64>());
}

/// An accepted record survives its canonical JSON form.
pub fn round_trip(r: &AbsenceRecord) {
    let line = r.to_json_line();
    match AbsenceRecord::from_json_str(&line) {
        Ok(back) => assert_eq!(&back, r, "record changed on the way through JSON: {line}"),
        Err(e) => panic!("an accepted record is refused in JSON form ({e}): {line}"),
    }
}
