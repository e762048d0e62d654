//! The `tilstede` command line.

#![recursion_limit = "256"]

mod cli;

/// mimalloc: large imports allocate on one thread and free on another,
/// which glibc's malloc handles poorly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tilstede::store::configure_sqlite();
    let args = cli::Cli::parse();
    // Output commands behave like other Unix tools when piped into `head`:
    // a closed pipe ends the process quietly. `serve` keeps Rust's default
    // (SIGPIPE ignored), so a client hanging up can never kill the service.
    #[cfg(unix)]
    if !matches!(args.command, cli::Command::Serve { .. }) {
        // SAFETY: setting a signal disposition is process-wide and nothing
        // else in tilstede touches SIGPIPE.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    cli::init_logging(args.verbose);
    match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            // Print the cause chain, skipping causes the message already quotes.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message = format!("{message}: {cause}");
                }
            }
            eprintln!("feil: {message}");
            ExitCode::from(1)
        }
    }
}
