//! The `autopara` binary.

// Naming the facade links every feature-enabled op crate's registrations.
use autopara as _;

fn main() -> std::process::ExitCode {
    autopara::cli::main()
}
