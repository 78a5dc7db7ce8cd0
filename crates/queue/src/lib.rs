//! autopara's queue backend: an op's items run as batch jobs keyed by their
//! content, on Slurm or Grid Engine, here or on a cluster reached over ssh, so a
//! driver that was killed re-attaches to its jobs when rerun.
//!
//! - [`RemoteInfo`]: which system, resources, job script contents, polling
//!   and failure policy; from the API, a pipeline file or `AUTOPARA_REMOTE_INFO`.
//! - [`Systems`]: the clusters, from a TOML file (host, scheduler, working
//!   directory, job commands, header, partitions).
//! - [`QueueBackend`]: writes job directories, copies them to the host,
//!   submits them, follows them with the scheduler's job list and each job's
//!   status file, copies results back and gathers them in input order.
//! - [`scheduler::Scheduler`]: the seam a batch system plugs into ([`Slurm`], [`Sge`]).
//! - [`worker::run_job_dir`]: the job side, run as `autopara worker --job-dir DIR`.
//! - [`testing`]: a private single-node Slurm and an sshd for tests.
//!
//! See `docs/queue.md` for the systems file, the job directory layout and
//! what happens on each failure.

pub mod driver;
pub mod error;
pub mod host;
pub mod job;
pub mod remote_info;
pub mod resources;
pub mod scheduler;
pub mod sge;
pub mod slurm;
pub mod systems;
pub mod testing;
pub mod worker;

pub use driver::{JobCounts, QueueBackend};
pub use error::{QueueError, Result};
pub use remote_info::{JOB_FAILED_KEY, REMOTE_INFO_ENV, RemoteInfo};
pub use sge::Sge;
pub use slurm::Slurm;
pub use systems::{SYSTEMS_ENV, Systems};
