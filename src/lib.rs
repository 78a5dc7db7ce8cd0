//! autopara: apply operations (single points, molecular dynamics, minimization,
//! descriptors, random structures) to many atomic configurations in parallel,
//! with content-keyed caching and resumable outputs.
//!
//! This facade re-exports the core and names every op crate enabled by cargo
//! features, so that their `inventory` registrations are linked into any
//! binary or test that uses `autopara`.

pub use autopara_core::*;

#[cfg(feature = "buildcell")]
pub use autopara_buildcell as buildcell;
#[cfg(feature = "calculators")]
pub use autopara_calculators as calculators;
#[cfg(feature = "descriptor")]
pub use autopara_descriptor as descriptor;
#[cfg(feature = "md")]
pub use autopara_md as md;
#[cfg(feature = "minim")]
pub use autopara_minim as minim;
/// The MPI backend: call [`mpi::init`] first thing in `main` (feature `mpi`).
#[cfg(feature = "mpi")]
pub use autopara_mpi as mpi;
/// The queue backend: batch jobs on Slurm, locally or over ssh.
pub use autopara_queue as queue;

/// The command-line front end (also used by `src/main.rs`).
pub use autopara_cli as cli;
