//! The chat command parser over arbitrary text: it answers every message
//! (a command or a reason why not), and a parsed command names its case
//! only when it takes one.
#![no_main]

use tilstede::matrix::commands;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = commands::is_command(text);
    match commands::parse(text) {
        Ok(command) => {
            let _ = command.case();
        }
        Err(e) => {
            assert!(!e.reason().is_empty(), "a refusal says why");
        }
    }
});
