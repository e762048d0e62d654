//! The edfi-xml reader over arbitrary bytes.
#![no_main]
#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::adapter("edfi-xml", None, data));
