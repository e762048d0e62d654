//! Shared helpers for the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `tilstede` binary with `args` and the store at `store`.
pub fn tilstede(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tilstede"))
        .args(args)
        .env("TILSTEDE_STORE", store)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tilstede")
}

/// Like [`tilstede`], but panics with the output when the command fails.
pub fn tilstede_ok(store: &Path, args: &[&str]) -> (String, String) {
    let out = tilstede(store, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "tilstede {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}
