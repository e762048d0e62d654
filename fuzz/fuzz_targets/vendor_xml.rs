//! The vendor XML reader over arbitrary bytes, with both shipped XML
//! profiles; the first byte picks which.
#![no_main]
#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let profile = if pick % 2 == 0 { "vis-xml" } else { "flyt-xml" };
    common::adapter("vendor-xml", Some(profile), rest);
});
