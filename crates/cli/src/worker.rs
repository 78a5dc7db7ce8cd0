//! `autopara worker --job-dir DIR`: the job side of the queue backend. The
//! job script runs it; it reads the job's task and items, runs the op (found
//! by name in this binary's registry) and writes the results.

use std::path::Path;

/// Runs the job in `job_dir`.
pub fn run(job_dir: &Path) -> autopara_core::Result<()> {
    autopara_queue::worker::run_job_dir(job_dir).map_err(|e| autopara_core::Error::Other(e.to_string()))
}
