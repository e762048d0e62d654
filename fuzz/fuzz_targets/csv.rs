//! The vendor CSV reader (both shipped profiles) and the roster CSV reader
//! over arbitrary bytes; the first byte picks which.
#![no_main]
#[path = "common.rs"]
mod common;

use tilstede::adapters::vendor_csv::VendorCsvReader;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    match pick % 3 {
        0 | 1 => {
            let profile = common::profile(if pick % 3 == 0 { "vis" } else { "flyt" });
            common::check(VendorCsvReader::new(rest, "fuzz", profile), rest.len());
        }
        _ => {
            if let Ok((roster, rejects)) = tilstede::adapters::roster_csv::read_roster(rest, "fuzz", None) {
                for r in &rejects {
                    assert!(!r.location.is_empty(), "a roster rejection names its place");
                }
                drop(roster);
            }
        }
    }
});
