//! The queue error type.

use std::path::PathBuf;

/// Errors from the queue backend: configuration, job files, scheduler
/// commands, ssh, and jobs that failed, died or did not finish in time.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// An operating-system error on a file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A job file that does not parse.
    #[error("{path}: {message}")]
    JobFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Bad remote info (from the API, a pipeline file or `AUTOPARA_REMOTE_INFO`).
    #[error("remote info ({origin}): {field}: {message}")]
    RemoteInfo {
        /// Where it came from (`AUTOPARA_REMOTE_INFO`, a file path, `--remote-info`).
        origin: String,
        /// The offending field, or `-` for the whole value.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A bad systems file (or a system that is not in it).
    #[error("systems ({origin}): {field}: {message}")]
    Systems {
        /// The file and system.
        origin: String,
        /// The offending field, or `-` for the whole file.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The ssh connection to a host failed (the driver retries while polling).
    #[error("ssh to {host} failed: {message}")]
    Connection {
        /// The host.
        host: String,
        /// ssh's or rsync's exit status and stderr.
        message: String,
    },
    /// A scheduler command (`sbatch`, `squeue`, `scancel`) that could not run or failed.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr, or why it could not start.
        message: String,
    },
    /// A job whose worker exited with a non-zero status.
    #[error("job {job} ({scheduler_job}, {dir}) failed with exit code {exit_code}; stderr tail:\n{stderr_tail}")]
    JobFailed {
        /// The job's name (`<job_name>-<hash>`).
        job: String,
        /// The scheduler and its job id (`slurm job 1234`).
        scheduler_job: String,
        /// The job directory.
        dir: PathBuf,
        /// The worker's exit code, from the job's status file.
        exit_code: i32,
        /// The last lines of the job's stderr.
        stderr_tail: String,
    },
    /// A job that left the queue without finishing: time limit, cancellation, node failure.
    #[error("job {job} ({scheduler_job}, {dir}) died: {state}; stderr tail:\n{stderr_tail}")]
    JobDied {
        /// The job's name (`<job_name>-<hash>`).
        job: String,
        /// The scheduler and its job id (`slurm job 1234`).
        scheduler_job: String,
        /// The job directory.
        dir: PathBuf,
        /// The scheduler's last word on it (`CANCELLED`, `TIMEOUT`, `gone from the queue`).
        state: String,
        /// The last lines of the job's stderr.
        stderr_tail: String,
    },
    /// Jobs still queued or running when the driver's `timeout` ran out.
    #[error(
        "timed out after {seconds} s waiting for {pending} batch job(s) ({jobs}); they keep running, rerun to re-attach"
    )]
    Timeout {
        /// The timeout in seconds.
        seconds: f64,
        /// How many jobs were unfinished.
        pending: usize,
        /// Their names, comma-separated.
        jobs: String,
    },
    /// A worker that cannot run its job (unknown op, mismatched files).
    #[error("worker ({dir}): {message}")]
    Worker {
        /// The job directory.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An error from core (building the op).
    #[error(transparent)]
    Core(#[from] autopara_core::Error),
}

impl QueueError {
    /// A [`QueueError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> QueueError {
        QueueError::Io { path: path.into(), source }
    }
}

/// Result with [`QueueError`].
pub type Result<T, E = QueueError> = std::result::Result<T, E>;
