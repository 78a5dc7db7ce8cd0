//! The `autopara` binary.

// Naming the facade links every feature-enabled op crate's registrations.
use autopara as _;

fn main() -> std::process::ExitCode {
    // Under mpirun, ranks > 0 serve work inside init() and exit there.
    #[cfg(feature = "mpi")]
    let _mpi = autopara::mpi::init();
    // Without MPI, a launch that asks for it would run the whole job on every rank.
    #[cfg(not(feature = "mpi"))]
    if let Some(why) = autopara::cli::mpi_missing() {
        eprintln!("autopara: error: {why}");
        return std::process::ExitCode::FAILURE;
    }
    autopara::cli::main()
}
