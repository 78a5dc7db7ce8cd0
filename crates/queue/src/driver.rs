//! The driver: splits items into content-keyed jobs, submits the ones that
//! have no live or finished submission, follows them, and gathers results in
//! input order.
//!
//! Re-attach rules, applied to each job directory when the driver starts:
//! - results with exit status 0: reused, nothing is submitted;
//! - a recorded submission that Slurm still lists as queued or running: followed;
//! - a recorded submission that died (time limit, cancelled, node failure, or
//!   gone from the queue without a status file): an error, or resubmitted
//!   once with `resubmit_killed_jobs`;
//! - a non-zero exit status from an earlier run: resubmitted (a rerun is the
//!   user's retry, as in wfl, where failed jobs are not re-attached);
//! - no submission: submitted, unless Slurm already lists a job of that name
//!   as queued or running (the driver died between `sbatch` and recording the
//!   id), which is adopted.

use crate::error::{QueueError, Result};
use crate::job::{JobDir, JobTask, Submission, job_script, write_atomic, write_json};
use crate::remote_info::{JOB_FAILED_KEY, RemoteInfo};
use crate::slurm::{JobState, QueuedJob, Slurm};
use autopara_core::{Item, ItemFailure, ItemResult, Operation, Payload, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Polls a job may stay finished-or-gone without a status file before it counts
/// as dead (allows for shared filesystems that show the file late).
const GRACE_POLLS: u32 = 3;

/// Lines of a job's stderr shown in errors.
const STDERR_TAIL: usize = 20;

/// Runs an op's items as Slurm jobs.
#[derive(Debug, Clone)]
pub struct SlurmBackend {
    info: RemoteInfo,
    jobs_dir: PathBuf,
    slurm: Slurm,
}

/// One job of a run and what the driver knows about it.
struct Job {
    dir: JobDir,
    items: Vec<Item>,
    submission: Option<Submission>,
    resubmitted: bool,
    missing_polls: u32,
    outcome: Option<Vec<ItemResult>>,
}

impl SlurmBackend {
    /// A backend with a copy of `info` (the caller's value is never changed)
    /// that runs the Slurm commands through `slurm`.
    pub fn new(info: &RemoteInfo, slurm: Slurm) -> Result<SlurmBackend> {
        info.validate("SlurmBackend")?;
        let jobs_dir = std::path::absolute(&info.jobs_dir).map_err(|e| QueueError::io(&info.jobs_dir, e))?;
        Ok(SlurmBackend { info: info.clone(), jobs_dir, slurm })
    }

    /// The remote info in use.
    pub fn info(&self) -> &RemoteInfo {
        &self.info
    }

    /// The job directories for `items`, in order, with how many items each holds
    /// (what [`SlurmBackend::run`] would use), without writing anything.
    pub fn plan(
        &self,
        op: &dyn Operation,
        label: &str,
        seed: u64,
        chunk_size: usize,
        items: &[Item],
    ) -> Result<Vec<(JobDir, usize)>> {
        let per_job = self.info.items_per_job(chunk_size);
        items
            .chunks(per_job)
            .map(|chunk| {
                let (dir, _, _) = self.describe(op, label, seed, chunk_size, chunk)?;
                Ok((dir, chunk.len()))
            })
            .collect()
    }

    fn threads(&self) -> usize {
        self.info.num_cores.unwrap_or(1) as usize
    }

    fn describe(
        &self,
        op: &dyn Operation,
        label: &str,
        seed: u64,
        chunk_size: usize,
        chunk: &[Item],
    ) -> Result<(JobDir, JobTask, Vec<u8>)> {
        let task = JobTask::new(op, label, seed, chunk_size, self.threads(), chunk);
        let items_json = serde_json::to_vec(chunk).map_err(|e| QueueError::JobFile {
            path: self.jobs_dir.clone(),
            message: format!("serializing items: {e}"),
        })?;
        let hash = task.content_hash(&items_json);
        Ok((JobDir::new(&self.jobs_dir, &self.info.job_name, &hash), task, items_json))
    }

    /// Runs `items` through `op` as Slurm jobs of
    /// [`RemoteInfo::items_per_job`]`(chunk_size)` items each and returns one
    /// result per item, in input order. The random stream of each item is the
    /// one a local run with the same `seed` and `label` gives it, so results are
    /// identical to a local run.
    pub fn run(
        &self,
        op: &dyn Operation,
        label: &str,
        seed: u64,
        chunk_size: usize,
        items: Vec<Item>,
    ) -> Result<Vec<ItemResult>> {
        let per_job = self.info.items_per_job(chunk_size);
        let mut jobs = Vec::new();
        for chunk in items.chunks(per_job) {
            jobs.push(self.prepare(op, label, seed, chunk_size, chunk)?);
        }
        let start = Instant::now();
        loop {
            if jobs.iter().all(|j| j.outcome.is_some()) {
                break;
            }
            let queue = self.slurm.jobs()?;
            for job in jobs.iter_mut().filter(|j| j.outcome.is_none()) {
                self.advance(job, &queue)?;
            }
            let pending: Vec<&str> = jobs.iter().filter(|j| j.outcome.is_none()).map(|j| j.dir.name.as_str()).collect();
            if pending.is_empty() {
                break;
            }
            if start.elapsed().as_secs_f64() >= self.info.timeout {
                return Err(QueueError::Timeout {
                    seconds: self.info.timeout,
                    pending: pending.len(),
                    jobs: pending.join(", "),
                });
            }
            std::thread::sleep(Duration::from_secs_f64(self.info.check_interval));
        }
        Ok(jobs.into_iter().flat_map(|j| j.outcome.unwrap_or_default()).collect())
    }

    /// Creates (or finds) the job directory for `chunk`.
    fn prepare(&self, op: &dyn Operation, label: &str, seed: u64, chunk_size: usize, chunk: &[Item]) -> Result<Job> {
        let (dir, task, items_json) = self.describe(op, label, seed, chunk_size, chunk)?;
        let mut job =
            Job { dir, items: chunk.to_vec(), submission: None, resubmitted: false, missing_polls: 0, outcome: None };
        if !job.dir.task().exists() {
            // task.json is written last: a directory without it is incomplete and rewritten.
            std::fs::create_dir_all(&job.dir.dir).map_err(|e| QueueError::io(&job.dir.dir, e))?;
            job.dir.clear_attempt()?;
            write_atomic(&job.dir.items(), &items_json)?;
            write_json(&job.dir.task(), &task)?;
            return Ok(job);
        }
        match job.dir.read_status()? {
            Some(0) => job.outcome = Some(self.results(&job)?),
            Some(code) => {
                eprintln!("autopara: job {} failed in an earlier run (exit code {code}); resubmitting", job.dir.name);
                job.dir.clear_attempt()?;
            }
            None => job.submission = job.dir.read_submission()?,
        }
        Ok(job)
    }

    /// One poll of one unfinished job.
    fn advance(&self, job: &mut Job, queue: &HashMap<String, QueuedJob>) -> Result<()> {
        // The status file is written by the script as its last act: it is the truth.
        if let Some(code) = job.dir.read_status()? {
            return if code == 0 {
                job.outcome = Some(self.results(job)?);
                Ok(())
            } else {
                let err = QueueError::JobFailed {
                    job: job.dir.name.clone(),
                    slurm_id: slurm_id(job),
                    dir: job.dir.dir.clone(),
                    exit_code: code,
                    stderr_tail: job.dir.stderr_tail(STDERR_TAIL),
                };
                self.give_up(job, err)
            };
        }
        let Some(sub) = &job.submission else {
            // Only a live job of this name is adopted: a finished one either wrote its
            // status (read above) or belongs to an attempt that was cleared.
            let adopt = queue.values().find(|q| q.name == job.dir.name && matches!(q.state, JobState::Live(_)));
            return match adopt {
                Some(q) => {
                    let sub = Submission { slurm_id: q.id.clone(), attempt: 1 };
                    write_json(&job.dir.submission(), &sub)?;
                    eprintln!("autopara: re-attached to Slurm job {} ({})", sub.slurm_id, job.dir.name);
                    job.submission = Some(sub);
                    Ok(())
                }
                None => self.submit(job, 1),
            };
        };
        let dead = match queue.get(&sub.slurm_id).map(|q| &q.state) {
            Some(JobState::Live(_)) => None,
            Some(JobState::Killed(state)) => Some(state.clone()),
            Some(JobState::Ended(state)) => {
                job.missing_polls += 1;
                (job.missing_polls >= GRACE_POLLS).then(|| format!("{state} without a status file"))
            }
            None => {
                job.missing_polls += 1;
                (job.missing_polls >= GRACE_POLLS).then(|| "gone from the queue without a status file".to_string())
            }
        };
        let Some(state) = dead else { return Ok(()) };
        if self.info.resubmit_killed_jobs && !job.resubmitted {
            eprintln!("autopara: job {} (Slurm id {}) died ({state}); resubmitting", job.dir.name, sub.slurm_id);
            let attempt = sub.attempt + 1;
            job.resubmitted = true;
            job.dir.clear_attempt()?;
            return self.submit(job, attempt);
        }
        let err = QueueError::JobDied {
            job: job.dir.name.clone(),
            slurm_id: sub.slurm_id.clone(),
            dir: job.dir.dir.clone(),
            state,
            stderr_tail: job.dir.stderr_tail(STDERR_TAIL),
        };
        self.give_up(job, err)
    }

    /// Writes the current script and submits it.
    fn submit(&self, job: &mut Job, attempt: u32) -> Result<()> {
        write_atomic(&job.dir.script(), job_script(&job.dir, &self.info, self.threads()).as_bytes())?;
        let slurm_id = self.slurm.submit(&job.dir.script())?;
        let sub = Submission { slurm_id, attempt };
        write_json(&job.dir.submission(), &sub)?;
        job.submission = Some(sub);
        job.missing_polls = 0;
        Ok(())
    }

    /// A failed or dead job: an error, or flagged items with `ignore_failed_jobs`.
    fn give_up(&self, job: &mut Job, err: QueueError) -> Result<()> {
        if !self.info.ignore_failed_jobs {
            return Err(err);
        }
        eprintln!("autopara: ignoring failed job: {err}");
        let why = err.to_string();
        job.outcome = Some(
            job.items
                .iter()
                .map(|item| match &item.payload {
                    Payload::Atoms(a) => {
                        let mut a = a.clone();
                        a.info.insert(JOB_FAILED_KEY.to_string(), Value::Bool(true));
                        Ok(vec![a])
                    }
                    Payload::Counter(_) => Err(ItemFailure::new(why.clone())),
                })
                .collect(),
        );
        Ok(())
    }

    /// The job's results, checked to hold one per item.
    fn results(&self, job: &Job) -> Result<Vec<ItemResult>> {
        let results = job.dir.read_results()?;
        if results.len() != job.items.len() {
            return Err(QueueError::JobFile {
                path: job.dir.results(),
                message: format!("{} results for {} items", results.len(), job.items.len()),
            });
        }
        Ok(results)
    }
}

fn slurm_id(job: &Job) -> String {
    job.submission.as_ref().map_or_else(|| "?".to_string(), |s| s.slurm_id.clone())
}
