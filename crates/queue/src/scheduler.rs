//! The scheduler seam: what the driver needs from a batch system, as shell
//! commands run on the system's host (locally or over ssh) and parsers of
//! their output. [`Slurm`](crate::slurm::Slurm) and
//! [`Sge`](crate::sge::Sge) implement it.

use crate::resources::Allocation;
use std::collections::HashMap;

/// How the scheduler sees a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Queued or running (Slurm `PENDING`, `RUNNING`, `COMPLETING`; SGE `qw`, `r`, `t`, ...).
    Live(String),
    /// Ended by the scheduler, not by the job: cancelled, time limit, node
    /// failure, preempted, out of memory; SGE's error states.
    Killed(String),
    /// Ended on its own (Slurm `COMPLETED`, `FAILED`): the status file says how.
    Ended(String),
}

/// One job as the scheduler lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    /// The scheduler's job id.
    pub id: String,
    /// The job name.
    pub name: String,
    /// Its state.
    pub state: JobState,
}

/// A batch system: submit, status, cancel, header.
pub trait Scheduler: std::fmt::Debug + Send + Sync {
    /// `slurm` or `sge`.
    fn name(&self) -> &'static str;

    /// The default header of a job named `job` whose directory is `dir` on the
    /// host: name, working directory, output files and the resources of `alloc`.
    fn header(&self, job: &str, dir: &str, alloc: &Allocation) -> Vec<String>;

    /// A shell command that submits the script at `script` (an absolute path on
    /// the host) and prints what [`Scheduler::parse_submitted`] reads the id from.
    fn submit_command(&self, script: &str) -> String;

    /// The job id from the submit command's output.
    fn parse_submitted(&self, stdout: &str) -> Option<String>;

    /// A shell command listing the user's jobs that the scheduler still knows.
    fn list_command(&self) -> String;

    /// The jobs in the list command's output, by id.
    fn parse_list(&self, stdout: &str) -> HashMap<String, QueuedJob>;

    /// A shell command cancelling the jobs `ids`.
    fn cancel_command(&self, ids: &[&str]) -> String;

    /// A shell command asking the scheduler's accounting for a finished job's
    /// final state (empty output or failure when it has none).
    fn accounting_command(&self, id: &str) -> String;

    /// The final state in the accounting command's output.
    fn parse_accounting(&self, stdout: &str) -> Option<String>;
}

/// The scheduler of `kind`.
pub fn of_kind(kind: crate::systems::SchedulerKind) -> Box<dyn Scheduler> {
    match kind {
        crate::systems::SchedulerKind::Slurm => Box::new(crate::slurm::Slurm),
        crate::systems::SchedulerKind::Sge => Box::new(crate::sge::Sge),
    }
}
