//! The vendor XML reader over arbitrary bytes, with both shipped XML
//! profiles; the first byte picks which.
#![no_main]
#[path = "common.rs"]
mod common;

use tilstede::adapters::vendor_xml::VendorXmlReader;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let profile = common::profile(if pick % 2 == 0 { "vis-xml" } else { "flyt-xml" });
    let reader = VendorXmlReader::new(rest, "fuzz", profile).expect("a shipped profile opens");
    common::check(reader, rest.len());
});
