//! The JSON Lines reader over arbitrary bytes, with and without a default
//! source (a push names its source; a file may not).
#![no_main]
#[path = "common.rs"]
mod common;

use std::io::Cursor;
use tilstede::adapters::Parsed;
use tilstede::adapters::jsonl::JsonlReader;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::adapter("jsonl", None, data);
    let reader = JsonlReader::new(Cursor::new(data), "fuzz").with_default_source("kilde");
    for item in reader.flatten() {
        if let Parsed::Record(r) = item {
            common::round_trip(&r);
        }
    }
});
