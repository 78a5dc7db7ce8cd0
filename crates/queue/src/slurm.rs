//! The Slurm client commands the driver uses: `sbatch --parsable` to submit,
//! `squeue -t all` to follow jobs (pending, running, and finished ones for
//! `MinJobAge` seconds), `scancel`. `sacct` is not needed: a job's outcome is
//! its status file, so clusters without accounting work too; where it works,
//! it names the final state of a job that left `squeue` without a status file.

use crate::error::{QueueError, Result};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// How the scheduler sees a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Queued or running (`PENDING`, `RUNNING`, `COMPLETING`, ...).
    Live(String),
    /// Ended by the scheduler, not by the job: `CANCELLED`, `TIMEOUT`, `NODE_FAIL`,
    /// `PREEMPTED`, `BOOT_FAIL`, `DEADLINE`, `OUT_OF_MEMORY`.
    Killed(String),
    /// Ended on its own: `COMPLETED` or `FAILED` (the status file says how).
    Ended(String),
}

impl JobState {
    /// Classifies a Slurm state name (`squeue %T`); unknown names count as live,
    /// so the driver waits rather than resubmitting something that may be running.
    pub fn from_slurm(state: &str) -> JobState {
        let s = state.trim().to_string();
        match s.as_str() {
            "COMPLETED" | "FAILED" => JobState::Ended(s),
            "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" | "DEADLINE" | "OUT_OF_MEMORY"
            | "REVOKED" => JobState::Killed(s),
            _ => JobState::Live(s),
        }
    }
}

/// One job as `squeue` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    /// The Slurm job id.
    pub id: String,
    /// The job name.
    pub name: String,
    /// Its state.
    pub state: JobState,
}

/// Runs the Slurm client commands, with extra environment variables (such as
/// `SLURM_CONF` for a private cluster) and an optional directory holding them.
#[derive(Debug, Clone, Default)]
pub struct Slurm {
    env: Vec<(OsString, OsString)>,
    bin_dir: Option<std::path::PathBuf>,
}

impl Slurm {
    /// The commands found on `PATH`, with the process environment.
    pub fn new() -> Slurm {
        Slurm::default()
    }

    /// Adds an environment variable to every command (and so to every job, as
    /// `sbatch` exports its environment).
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Slurm {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Takes the commands from `dir` instead of `PATH` (used by the fast unit tests' fake `sbatch`).
    pub fn with_bin_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Slurm {
        self.bin_dir = Some(dir.into());
        self
    }

    /// The extra environment variables.
    pub fn env(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    fn command(&self, program: &str) -> Command {
        let path = match &self.bin_dir {
            Some(d) => d.join(program),
            None => program.into(),
        };
        let mut c = Command::new(path);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs `c` and returns its stdout; a non-zero exit is an error with stderr.
    fn output(mut c: Command) -> Result<String> {
        let line = format!("{c:?}").replace('"', "");
        let out = c.output().map_err(|e| QueueError::Command { command: line.clone(), message: e.to_string() })?;
        if !out.status.success() {
            return Err(QueueError::Command {
                command: line,
                message: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Submits `script` (`sbatch --parsable`) and returns the job id.
    pub fn submit(&self, script: &Path) -> Result<String> {
        let mut c = self.command("sbatch");
        c.arg("--parsable").arg(script);
        let out = Slurm::output(c)?;
        // `--parsable` prints `id` or `id;cluster`.
        let id = out.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(QueueError::Command {
                command: format!("sbatch --parsable {}", script.display()),
                message: format!("unexpected output {out:?}"),
            });
        }
        Ok(id)
    }

    /// The user's jobs known to the controller, including finished ones still
    /// within `MinJobAge` (`squeue --me -t all`), by id.
    pub fn jobs(&self) -> Result<HashMap<String, QueuedJob>> {
        let mut c = self.command("squeue");
        c.args(["--me", "--noheader", "--states=all", "--format=%i|%T|%j"]);
        let out = Slurm::output(c)?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut f = l.trim().splitn(3, '|');
                let (id, state, name) = (f.next()?, f.next()?, f.next()?);
                Some((
                    id.to_string(),
                    QueuedJob { id: id.to_string(), name: name.to_string(), state: JobState::from_slurm(state) },
                ))
            })
            .collect())
    }

    /// A finished job's state from accounting (`sacct`), for clusters that have it;
    /// `None` when `sacct` is missing, fails (no slurmdbd) or does not know the job.
    pub fn accounted_state(&self, id: &str) -> Option<String> {
        let mut c = self.command("sacct");
        c.args(["--noheader", "--parsable2", "--allocations", "--format=State", "--jobs", id]);
        let out = Slurm::output(c).ok()?;
        // `CANCELLED by 1234` → `CANCELLED`.
        out.lines().next().and_then(|l| l.split_whitespace().next()).map(str::to_string)
    }

    /// Cancels a job (`scancel`).
    pub fn cancel(&self, id: &str) -> Result<()> {
        let mut c = self.command("scancel");
        c.arg(id);
        Slurm::output(c).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_classified() {
        assert_eq!(JobState::from_slurm("RUNNING"), JobState::Live("RUNNING".into()));
        assert_eq!(JobState::from_slurm("COMPLETING"), JobState::Live("COMPLETING".into()));
        assert_eq!(JobState::from_slurm("TIMEOUT"), JobState::Killed("TIMEOUT".into()));
        assert_eq!(JobState::from_slurm("NODE_FAIL"), JobState::Killed("NODE_FAIL".into()));
        assert_eq!(JobState::from_slurm("CANCELLED"), JobState::Killed("CANCELLED".into()));
        assert_eq!(JobState::from_slurm("FAILED"), JobState::Ended("FAILED".into()));
    }
}
