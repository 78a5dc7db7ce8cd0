//! `cargo xtask`: developer automation for autopara.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(other) => {
            eprintln!("xtask: unknown command {other}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("usage: cargo xtask <test|bench|deps|demo|run|new-op|ci>");
            ExitCode::FAILURE
        }
    }
}
