//! Slurm: `sbatch --parsable` to submit, `squeue -t all` to follow jobs
//! (pending, running, and finished ones for `MinJobAge` seconds), `scancel`.
//! `sacct` is not needed: a job's outcome is its status file, so clusters
//! without accounting work too; where it works, it names the final state of a
//! job that left `squeue` without a status file.

use crate::job::shell_quote;
use crate::resources::{Allocation, hms};
use crate::scheduler::{JobState, QueuedJob, Scheduler};
use std::collections::HashMap;

/// The Slurm scheduler.
#[derive(Debug, Clone, Copy, Default)]
pub struct Slurm;

impl Slurm {
    /// Classifies a Slurm state name (`squeue %T`); unknown names count as live,
    /// so the driver waits rather than resubmitting something that may be running.
    pub fn state(state: &str) -> JobState {
        let s = state.trim().to_string();
        match s.as_str() {
            "COMPLETED" | "FAILED" => JobState::Ended(s),
            "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" | "DEADLINE" | "OUT_OF_MEMORY"
            | "REVOKED" => JobState::Killed(s),
            _ => JobState::Live(s),
        }
    }
}

impl Scheduler for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn header(&self, job: &str, dir: &str, alloc: &Allocation) -> Vec<String> {
        let mut h = vec![
            format!("#SBATCH --job-name={job}"),
            format!("#SBATCH --chdir={dir}"),
            format!("#SBATCH --output={dir}/stdout"),
            format!("#SBATCH --error={dir}/stderr"),
            format!("#SBATCH --nodes={}", alloc.num_nodes),
            "#SBATCH --ntasks=1".to_string(),
            format!("#SBATCH --cpus-per-task={}", alloc.num_cores),
        ];
        if let Some(p) = &alloc.partition {
            h.push(format!("#SBATCH --partition={p}"));
        }
        if let Some(t) = alloc.max_time {
            h.push(format!("#SBATCH --time={}", hms(t)));
        }
        match alloc.memory {
            Some((kb, false)) => h.push(format!("#SBATCH --mem={kb}K")),
            Some((kb, true)) => h.push(format!("#SBATCH --mem-per-cpu={kb}K")),
            None => {}
        }
        h
    }

    fn submit_command(&self, script: &str) -> String {
        format!("sbatch --parsable {}", shell_quote(script))
    }

    fn parse_submitted(&self, stdout: &str) -> Option<String> {
        // `--parsable` prints `id` or `id;cluster`.
        let id = stdout.trim().split(';').next()?.trim();
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
    }

    fn list_command(&self) -> String {
        "squeue --me --noheader --states=all --format='%i|%T|%j'".into()
    }

    fn parse_list(&self, stdout: &str) -> HashMap<String, QueuedJob> {
        stdout
            .lines()
            .filter_map(|l| {
                let mut f = l.trim().splitn(3, '|');
                let (id, state, name) = (f.next()?, f.next()?, f.next()?);
                let job = QueuedJob { id: id.to_string(), name: name.to_string(), state: Slurm::state(state) };
                Some((id.to_string(), job))
            })
            .collect()
    }

    fn cancel_command(&self, ids: &[&str]) -> String {
        format!("scancel {}", ids.iter().map(|i| shell_quote(i)).collect::<Vec<_>>().join(" "))
    }

    fn accounting_command(&self, id: &str) -> String {
        format!("sacct --noheader --parsable2 --allocations --format=State --jobs {}", shell_quote(id))
    }

    fn parse_accounting(&self, stdout: &str) -> Option<String> {
        // `CANCELLED by 1234` → `CANCELLED`.
        stdout.lines().next().and_then(|l| l.split_whitespace().next()).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_classified() {
        assert_eq!(Slurm::state("RUNNING"), JobState::Live("RUNNING".into()));
        assert_eq!(Slurm::state("COMPLETING"), JobState::Live("COMPLETING".into()));
        assert_eq!(Slurm::state("TIMEOUT"), JobState::Killed("TIMEOUT".into()));
        assert_eq!(Slurm::state("NODE_FAIL"), JobState::Killed("NODE_FAIL".into()));
        assert_eq!(Slurm::state("CANCELLED"), JobState::Killed("CANCELLED".into()));
        assert_eq!(Slurm::state("FAILED"), JobState::Ended("FAILED".into()));
    }

    #[test]
    fn outputs_are_parsed() {
        assert_eq!(Slurm.parse_submitted("1234;cluster\n").as_deref(), Some("1234"));
        assert_eq!(Slurm.parse_submitted("sbatch: error\n"), None);
        let jobs = Slurm.parse_list("12|RUNNING|md-ab|c\n13|CANCELLED|x\n");
        assert_eq!(jobs["12"].name, "md-ab|c");
        assert_eq!(jobs["13"].state, JobState::Killed("CANCELLED".into()));
        assert_eq!(Slurm.parse_accounting("CANCELLED by 0\n").as_deref(), Some("CANCELLED"));
    }
}
