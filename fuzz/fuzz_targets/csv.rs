//! The vendor CSV reader (both shipped profiles) and the roster CSV reader
//! over arbitrary bytes; the first byte picks which.
#![no_main]
#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    match pick % 3 {
        0 => common::adapter("vendor-csv", Some("vis"), rest),
        1 => common::adapter("vendor-csv", Some("flyt"), rest),
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
