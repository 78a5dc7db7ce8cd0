//! autopara's Slurm backend: an op's items run as batch jobs keyed by their
//! content, so a driver that was killed re-attaches to its jobs when rerun.
//!
//! - [`RemoteInfo`]: resources, job script contents, polling and failure
//!   policy; from the API, a pipeline file or `AUTOPARA_REMOTE_INFO`.
//! - [`SlurmBackend`]: writes job directories, submits with `sbatch`,
//!   follows jobs with `squeue` and each job's status file, gathers results
//!   in input order.
//! - [`worker::run_job_dir`]: the job side, run as `autopara worker --job-dir DIR`.
//! - [`testing::LocalCluster`]: a private single-node Slurm for tests.
//!
//! See `docs/queue.md` for the job directory layout and re-attach semantics.

pub mod driver;
pub mod error;
pub mod job;
pub mod remote_info;
pub mod slurm;
pub mod testing;
pub mod worker;

pub use driver::{JobCounts, SlurmBackend};
pub use error::{QueueError, Result};
pub use remote_info::{JOB_FAILED_KEY, REMOTE_INFO_ENV, RemoteInfo};
pub use slurm::Slurm;
