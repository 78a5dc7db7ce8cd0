//! The `autopara` binary.

// Naming the facade links every feature-enabled op crate's registrations.
use autopara as _;

fn main() -> std::process::ExitCode {
    // Under mpirun, ranks > 0 serve work inside init() and exit there.
    #[cfg(feature = "mpi")]
    let _mpi = autopara::mpi::init();
    autopara::cli::main()
}
