//! The driver: the executor's [`Backend`] for Slurm. Chunks are grouped into
//! content-keyed jobs; jobs without a live or finished submission are
//! submitted, followed with `squeue` and their status files, and their results
//! handed back to the executor in input order.
//!
//! Re-attach rules, applied to each job directory when the driver reaches it:
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
//!
//! A run resumed part-way through a job's index range (the driver was killed
//! after the job finished but before the output journal recorded all of its
//! items) does not make a job of the remaining items: it finds the earlier
//! job whose items end with them and takes its results (or follows it).

use crate::error::{QueueError, Result};
use crate::job::{FORMAT, JobDir, JobTask, Submission, job_script, read_json, write_atomic, write_json};
use crate::remote_info::{JOB_FAILED_KEY, RemoteInfo};
use crate::slurm::{JobState, QueuedJob, Slurm};
use autopara_core::executor::backend::{Backend, Job, Pool};
use autopara_core::executor::{ChunkOutcome, ChunkTask, JobSpec};
use autopara_core::{Item, ItemFailure, ItemResult, Payload, Value};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Polls a job may stay finished-or-gone without a status file before it counts
/// as dead (allows for shared filesystems that show the file late).
const GRACE_POLLS: u32 = 3;

/// Lines of a job's stderr shown in errors.
const STDERR_TAIL: usize = 20;

/// Chunks the executor may hand over before it waits for results. Chunks are
/// written to job directories as soon as a job is full, so this bounds only
/// the executor's per-item bookkeeping (index and location); as in wfl, every
/// job of a run of ordinary size is queued at once.
const CAPACITY_CHUNKS: usize = 1 << 20;

/// Runs an op's chunks as Slurm jobs: plug it into
/// `AutoparaInfo { backend: Some(Arc::new(SlurmBackend::new(&info, Slurm::new())?)), .. }`.
#[derive(Debug)]
pub struct SlurmBackend {
    info: RemoteInfo,
    jobs_dir: PathBuf,
    slurm: Slurm,
    /// `--retry-failed`: finished jobs are run again, never reused.
    retrying: bool,
    /// What the last run did with its jobs.
    last: Mutex<JobCounts>,
}

/// How a run took up its jobs, as the driver reports it when it first waits:
/// every job is counted once, by what the run found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Jobs this run submitted for the first time.
    pub submitted: usize,
    /// Queued or running jobs of an earlier run that this run follows.
    pub reattached: usize,
    /// Jobs that had finished (exit status 0) before this run: their results are reused.
    pub finished: usize,
    /// Jobs that had failed or died and were submitted again.
    pub resubmitted: usize,
    /// Jobs found dead and given up on (`ignore_failed_jobs`): their items count as failed.
    pub dead: usize,
}

impl JobCounts {
    /// All jobs of the run.
    pub fn total(&self) -> usize {
        self.submitted + self.reattached + self.finished + self.resubmitted + self.dead
    }

    /// `3 jobs: 1 submitted, 1 re-attached, 1 finished earlier` (and resubmitted, dead when any).
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} jobs: {} submitted, {} re-attached, {} finished earlier",
            self.total(),
            self.submitted,
            self.reattached,
            self.finished
        );
        if self.resubmitted > 0 {
            s += &format!(", {} resubmitted", self.resubmitted);
        }
        if self.dead > 0 {
            s += &format!(", {} dead", self.dead);
        }
        s
    }
}

impl SlurmBackend {
    /// A backend with a copy of `info` (the caller's value is never changed)
    /// that runs the Slurm commands through `slurm`.
    pub fn new(info: &RemoteInfo, slurm: Slurm) -> Result<SlurmBackend> {
        info.validate("SlurmBackend")?;
        let jobs_dir = std::path::absolute(&info.jobs_dir).map_err(|e| QueueError::io(&info.jobs_dir, e))?;
        if jobs_dir.to_string_lossy().chars().any(char::is_whitespace) {
            return Err(QueueError::RemoteInfo {
                origin: "SlurmBackend".into(),
                field: "jobs_dir".into(),
                message: format!("{} contains whitespace, which #SBATCH lines cannot hold", jobs_dir.display()),
            });
        }
        Ok(SlurmBackend { info: info.clone(), jobs_dir, slurm, retrying: false, last: Mutex::default() })
    }

    /// The backend for `--retry-failed` (`runner::retry_failed`): every job is
    /// run again, even one that finished (its items failed inside it, and the
    /// retry is for running them again), except one still queued or running,
    /// which is followed.
    pub fn for_retry(mut self) -> SlurmBackend {
        self.retrying = true;
        self
    }

    /// What the last run on this backend did with its jobs.
    pub fn last_run(&self) -> JobCounts {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The backend for an op call from `AUTOPARA_REMOTE_INFO` (the first of
    /// `labels` with an entry, see [`RemoteInfo::select`]), with the Slurm commands
    /// on `PATH`; `None` when the variable is unset or has no entry (the op runs locally).
    pub fn from_env(labels: &[&str]) -> Result<Option<SlurmBackend>> {
        RemoteInfo::from_env(labels)?.map(|info| SlurmBackend::new(&info, Slurm::new())).transpose()
    }

    /// The remote info in use.
    pub fn info(&self) -> &RemoteInfo {
        &self.info
    }

    /// The job directories a run of `spec` over `items` with `chunk_size` uses,
    /// in order, without writing anything.
    pub fn job_dirs(&self, spec: &JobSpec, chunk_size: usize, items: &[Item]) -> Result<Vec<JobDir>> {
        let per_job = self.range_len(chunk_size);
        items
            .chunk_by(|a, b| a.index / per_job == b.index / per_job)
            .map(|c| Ok(self.describe(spec, chunk_size, c)?.0))
            .collect()
    }

    /// The length of the index range each job covers: jobs cover fixed ranges
    /// of global indices, so a run resumed after part of its output was
    /// written (starting mid-range) still meets the earlier run's later jobs,
    /// and re-attaches to them.
    fn range_len(&self, chunk_size: usize) -> u64 {
        (chunk_size.max(1) * self.chunks_per_job(chunk_size)) as u64
    }

    /// Worker threads per job.
    fn threads(&self) -> usize {
        self.info.num_cores.unwrap_or(1) as usize
    }

    /// Whole chunks per job: `num_inputs_per_queued_job` items rounded up to chunks.
    fn chunks_per_job(&self, chunk_size: usize) -> usize {
        self.info.items_per_job(chunk_size).div_ceil(chunk_size.max(1))
    }

    /// The directory of an earlier job whose items end with `items`, and how many
    /// items come before them: the job a run resumed part-way through its index
    /// range belongs to. Items, spec and indices must all match exactly.
    fn covering_job(&self, spec: &JobSpec, items: &[Item]) -> Result<Option<(JobDir, usize)>> {
        let Ok(entries) = std::fs::read_dir(&self.jobs_dir) else { return Ok(None) };
        for entry in entries.flatten() {
            let job = JobDir::new(&self.jobs_dir, &self.info.job_name, &entry.file_name().to_string_lossy());
            let Ok(task) = read_json::<JobTask>(&job.task()) else { continue };
            let Some(skip) = task.items.len().checked_sub(items.len()) else { continue };
            if task.format != FORMAT
                || task.spec != *spec
                || task.items[skip..].iter().map(|h| h.index).ne(items.iter().map(|i| i.index))
            {
                continue;
            }
            if job.read_items(&task)?.get(skip..) == Some(items) {
                return Ok(Some((job, skip)));
            }
        }
        Ok(None)
    }

    fn describe(&self, spec: &JobSpec, chunk_size: usize, items: &[Item]) -> Result<(JobDir, JobTask, Vec<u8>)> {
        let task = JobTask::new(spec, chunk_size, self.threads(), items);
        let items_json = serde_json::to_vec(items).map_err(|e| QueueError::JobFile {
            path: self.jobs_dir.clone(),
            message: format!("serializing items: {e}"),
        })?;
        let hash = task.content_hash(&items_json);
        Ok((JobDir::new(&self.jobs_dir, &self.info.job_name, &hash), task, items_json))
    }
}

impl Backend for SlurmBackend {
    fn name(&self) -> &str {
        "slurm"
    }

    /// Threads per job.
    fn workers(&self) -> usize {
        self.threads()
    }

    fn run(
        &self,
        job: &Job<'_>,
        driver: &mut dyn FnMut(&mut dyn Pool) -> autopara_core::Result<()>,
    ) -> autopara_core::Result<()> {
        let mut pool = SlurmPool {
            backend: self,
            spec: job.spec.clone(),
            chunk_size: None,
            chunks_seen: 0,
            batch: Vec::new(),
            chunks: VecDeque::new(),
            jobs: VecDeque::new(),
            results: VecDeque::new(),
            start: Instant::now(),
            counts: JobCounts::default(),
            reported: false,
            snapshot: None,
        };
        let result = driver(&mut pool);
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = pool.counts;
        result
    }
}

impl From<QueueError> for autopara_core::Error {
    fn from(e: QueueError) -> autopara_core::Error {
        match e {
            QueueError::Core(e) => e,
            e => autopara_core::Error::Other(e.to_string()),
        }
    }
}

/// How a job ended, as far as the driver knows.
enum Outcome {
    /// Status 0: `results.json` holds the results.
    Succeeded,
    /// Failed or died with `ignore_failed_jobs`: its items come back as failures
    /// (configurations flagged with [`JOB_FAILED_KEY`] written in their places).
    Ignored(String),
}

/// What one look at a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// Queued or running: followed.
    Live,
    /// Finished or gone from the queue, its status file not (yet) seen: looked at again.
    Pending,
    /// Its status file says it finished.
    Finished,
    /// A live job of its name was adopted.
    Adopted,
    /// Submitted, never having been before.
    Submitted,
    /// Submitted again after it died.
    Resubmitted,
    /// Given up on (`ignore_failed_jobs`).
    GaveUp,
}

/// One job of a run.
struct QueueJob {
    dir: JobDir,
    /// Items of the job before this run's (a run resumed part-way through the
    /// job's range): their results are skipped.
    skip: usize,
    /// This run's items in the job.
    items: usize,
    submission: Option<Submission>,
    /// Made by an earlier run and not yet counted in [`JobCounts`] (waiting for
    /// its status file decides whether it finished or died).
    uncounted: bool,
    resubmitted: bool,
    missing_polls: u32,
    outcome: Option<Outcome>,
}

/// The executor's handle on a Slurm run. Jobs cover fixed ranges of item
/// indices and the executor's chunks need not line up with them (a run
/// resumed at an odd index): items go into jobs one by one and results come
/// back as one stream, cut into the executor's chunks again.
struct SlurmPool<'a> {
    backend: &'a SlurmBackend,
    spec: JobSpec,
    /// The run's chunk size, from the first chunk (every chunk but the last has it).
    chunk_size: Option<usize>,
    /// Chunks handed over so far.
    chunks_seen: usize,
    /// Items not yet in a job, all in one job's range.
    batch: Vec<Item>,
    /// (chunk number, item count) of the chunks handed over and not yet returned.
    chunks: VecDeque<(u64, usize)>,
    /// Jobs in input order whose results have not been handed back.
    jobs: VecDeque<QueueJob>,
    /// Results of finished jobs, in input order, not yet returned.
    results: VecDeque<ItemResult>,
    start: Instant,
    /// What this run did with its jobs so far.
    counts: JobCounts,
    /// Whether the counts were reported (once, when the driver first waits).
    reported: bool,
    /// The queue as listed for jobs found in earlier runs' directories while
    /// the executor hands over chunks (one listing for all of them).
    snapshot: Option<HashMap<String, QueuedJob>>,
}

impl Pool for SlurmPool<'_> {
    fn capacity(&self) -> usize {
        CAPACITY_CHUNKS
    }

    fn submit(&mut self, task: ChunkTask) -> autopara_core::Result<()> {
        let chunk_size = *self.chunk_size.get_or_insert(task.items.len().max(1));
        let per_job = self.backend.range_len(chunk_size);
        self.chunks_seen += 1;
        self.chunks.push_back((task.chunk, task.items.len()));
        for item in task.items {
            if self.batch.first().is_some_and(|b| b.index / per_job != item.index / per_job) {
                self.flush()?;
            }
            let ends_range = (item.index + 1).is_multiple_of(per_job);
            self.batch.push(item);
            if ends_range {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn recv(&mut self) -> autopara_core::Result<ChunkOutcome> {
        // The executor waits only when it has nothing more to hand over.
        self.flush()?;
        self.snapshot = None;
        loop {
            // Said once every job found from an earlier run has been told apart.
            if !self.reported && self.jobs.iter().all(|j| !j.uncounted) {
                self.reported = true;
                eprintln!("autopara: slurm: {} in {}", self.counts.describe(), self.backend.jobs_dir.display());
            }
            let Some(&(chunk, len)) = self.chunks.front() else {
                return Err(autopara_core::Error::Other("slurm backend: no chunk outstanding".into()));
            };
            if self.results.len() >= len {
                self.chunks.pop_front();
                return Ok(ChunkOutcome { chunk, results: self.results.drain(..len).collect() });
            }
            if self.jobs.front().is_some_and(|j| j.outcome.is_some()) {
                self.hand_back_front()?;
                continue;
            }
            if self.jobs.is_empty() {
                return Err(autopara_core::Error::Other(format!("slurm backend: chunk {chunk} is in no job")));
            }
            self.poll()?;
            if self.jobs.front().is_some_and(|j| j.outcome.is_some()) {
                continue;
            }
            let info = &self.backend.info;
            if self.start.elapsed().as_secs_f64() >= info.timeout {
                let pending: Vec<&str> =
                    self.jobs.iter().filter(|j| j.outcome.is_none()).map(|j| j.dir.name.as_str()).collect();
                return Err(QueueError::Timeout {
                    seconds: info.timeout,
                    pending: pending.len(),
                    jobs: pending.join(", "),
                }
                .into());
            }
            std::thread::sleep(Duration::from_secs_f64(info.check_interval));
        }
    }
}

impl SlurmPool<'_> {
    /// Turns the batched items into a job: writes (or finds) its directory and
    /// submits it unless it has finished or has a submission already.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let chunk_size = self.chunk_size.unwrap_or(1);
        let items = std::mem::take(&mut self.batch);
        let (dir, task, items_json) = self.backend.describe(&self.spec, chunk_size, &items)?;
        let mut job = QueueJob {
            dir,
            skip: 0,
            items: items.len(),
            submission: None,
            uncounted: false,
            resubmitted: false,
            missing_polls: 0,
            outcome: None,
        };
        // A batch starting after its job range's first index is the rest of a
        // job an earlier run made (it was killed before all of that job's
        // results were written); so may be the one short chunk of a run, whose
        // size is then not the run's chunk size. A retry's batches are subsets
        // to run again.
        let first = items.first().map_or(0, |i| i.index);
        let partial = !first.is_multiple_of(self.backend.range_len(chunk_size)) || self.chunks_seen == 1;
        let earlier = if job.dir.task().exists() {
            Some((job.dir.clone(), 0))
        } else if partial && !self.backend.retrying {
            self.backend.covering_job(&self.spec, &items)?
        } else {
            None
        };
        match earlier {
            None => {
                // task.json is written last: a directory without it is incomplete and rewritten.
                std::fs::create_dir_all(&job.dir.dir).map_err(|e| QueueError::io(&job.dir.dir, e))?;
                job.dir.clear_attempt()?;
                job.dir.write_items(&items, &items_json)?;
                write_json(&job.dir.task(), &task)?;
                self.backend.submit(&mut job, 1)?;
                self.counts.submitted += 1;
            }
            Some((dir, skip)) => {
                (job.dir, job.skip) = (dir, skip);
                self.resume(&mut job)?;
            }
        }
        self.jobs.push_back(job);
        Ok(())
    }

    /// Takes up a job an earlier run made: reuses, follows or resubmits it.
    fn resume(&mut self, job: &mut QueueJob) -> Result<()> {
        match job.dir.read_status()? {
            Some(0) if !self.backend.retrying => {
                job.outcome = Some(Outcome::Succeeded);
                self.counts.finished += 1;
            }
            Some(code) => {
                let why = if code == 0 { "retrying its items".to_string() } else { format!("exit code {code}") };
                eprintln!("autopara: job {} ran in an earlier run ({why}); resubmitting", job.dir.name);
                let attempt = job.dir.read_submission()?.map_or(1, |s| s.attempt + 1);
                job.dir.clear_attempt()?;
                self.backend.submit(job, attempt)?;
                self.counts.resubmitted += 1;
            }
            None => {
                job.submission = job.dir.read_submission()?;
                let queue = match self.snapshot.take() {
                    Some(q) => q,
                    None => self.backend.slurm.jobs()?,
                };
                let event = self.backend.advance(job, &queue);
                self.snapshot = Some(queue);
                job.uncounted = true;
                self.count(job, event?);
            }
        }
        Ok(())
    }

    /// Counts an earlier run's job once a look at it has told what it is.
    fn count(&mut self, job: &mut QueueJob, event: Event) {
        if !job.uncounted {
            return;
        }
        let c = &mut self.counts;
        let slot = match event {
            Event::Pending => return,
            Event::Live | Event::Adopted => &mut c.reattached,
            Event::Finished => &mut c.finished,
            Event::Submitted => &mut c.submitted,
            Event::Resubmitted => &mut c.resubmitted,
            Event::GaveUp => &mut c.dead,
        };
        *slot += 1;
        job.uncounted = false;
    }

    /// One look at every unfinished job.
    fn poll(&mut self) -> Result<()> {
        let queue = self.backend.slurm.jobs()?;
        let mut jobs = std::mem::take(&mut self.jobs);
        let mut result = Ok(());
        for job in jobs.iter_mut().filter(|j| j.outcome.is_none()) {
            match self.backend.advance(job, &queue) {
                Ok(event) => self.count(job, event),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.jobs = jobs;
        result
    }

    /// Moves the finished front job's results to `results`.
    fn hand_back_front(&mut self) -> Result<()> {
        let Some(job) = self.jobs.pop_front() else { return Ok(()) };
        let n = job.items;
        let results: Vec<ItemResult> = match &job.outcome {
            Some(Outcome::Succeeded) => job.dir.read_results()?,
            Some(Outcome::Ignored(why)) => {
                let task: JobTask = read_json(&job.dir.task())?;
                flagged(&job.dir.read_items(&task)?, why)
            }
            None => return Ok(()),
        };
        if results.len() != job.skip + n {
            return Err(QueueError::JobFile {
                path: job.dir.results(),
                message: format!("{} results for {} items", results.len(), job.skip + n),
            });
        }
        self.results.extend(results.into_iter().skip(job.skip));
        Ok(())
    }
}

impl SlurmBackend {
    /// One poll of one unfinished job.
    fn advance(&self, job: &mut QueueJob, queue: &HashMap<String, QueuedJob>) -> Result<Event> {
        // The status file is written by the script as its last act: it is the truth.
        if let Some(code) = job.dir.read_status()? {
            if code == 0 {
                job.outcome = Some(Outcome::Succeeded);
                return Ok(Event::Finished);
            }
            let err = QueueError::JobFailed {
                job: job.dir.name.clone(),
                slurm_id: job.submission.as_ref().map_or_else(|| "?".to_string(), |s| s.slurm_id.clone()),
                dir: job.dir.dir.clone(),
                exit_code: code,
                stderr_tail: job.dir.stderr_tail(STDERR_TAIL),
            };
            return self.give_up(job, err);
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
                    Ok(Event::Adopted)
                }
                None => self.submit(job, 1).map(|()| Event::Submitted),
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
                (job.missing_polls >= GRACE_POLLS).then(|| match self.slurm.accounted_state(&sub.slurm_id) {
                    Some(state) => format!("{state} (sacct) without a status file"),
                    None => "gone from the queue without a status file".to_string(),
                })
            }
        };
        let Some(state) = dead else {
            return Ok(if job.missing_polls > 0 { Event::Pending } else { Event::Live });
        };
        if self.info.resubmit_killed_jobs && !job.resubmitted {
            eprintln!("autopara: job {} (Slurm id {}) died ({state}); resubmitting", job.dir.name, sub.slurm_id);
            let attempt = sub.attempt + 1;
            job.resubmitted = true;
            job.dir.clear_attempt()?;
            return self.submit(job, attempt).map(|()| Event::Resubmitted);
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
    fn submit(&self, job: &mut QueueJob, attempt: u32) -> Result<()> {
        write_atomic(&job.dir.script(), job_script(&job.dir, &self.info, self.threads()).as_bytes())?;
        let slurm_id = self.slurm.submit(&job.dir.script())?;
        let sub = Submission { slurm_id, attempt };
        write_json(&job.dir.submission(), &sub)?;
        job.submission = Some(sub);
        job.missing_polls = 0;
        Ok(())
    }

    /// A failed or dead job: an error, or with `ignore_failed_jobs` its items
    /// as failures. The dead job's submission is forgotten, so that a later
    /// run (a resume, `--retry-failed`) submits it again, as it does a failed one.
    fn give_up(&self, job: &mut QueueJob, err: QueueError) -> Result<Event> {
        if !self.info.ignore_failed_jobs {
            return Err(err);
        }
        eprintln!("autopara: ignoring failed job: {err}");
        if job.dir.read_status()?.is_none() {
            job.dir.clear_attempt()?;
        }
        job.outcome = Some(Outcome::Ignored(err.to_string()));
        Ok(Event::GaveUp)
    }
}

/// The items of a failed job as failures; a configuration is still written in
/// its place, flagged with [`JOB_FAILED_KEY`] (as wfl writes a failed job's
/// inputs), counters have nothing to write.
fn flagged(items: &[Item], why: &str) -> Vec<ItemResult> {
    items
        .iter()
        .map(|item| match &item.payload {
            Payload::Atoms(a) => {
                let mut a = a.clone();
                a.info.insert(JOB_FAILED_KEY.to_string(), Value::Bool(true));
                Err(ItemFailure::with_frames(why, vec![a]))
            }
            Payload::Counter(_) => Err(ItemFailure::new(why)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Fast tests of the state machine with fake `sbatch`/`squeue` scripts; the
    //! real-cluster tests are in `tests/cluster.rs`.
    use super::*;
    use autopara_core::autopara_info::AutoparaInfo;
    use autopara_core::executor::execute;
    use autopara_core::{Atoms, InputKind, Location, OpInfo, OpRegistration, Operation, WorkerContext};
    use std::path::Path;
    use std::sync::Arc;

    static INFO: OpInfo = OpInfo {
        name: "driver_unit_test",
        version: 1,
        default_chunk_size: 2,
        summary: "test op: stores the item index",
        input_kind: InputKind::Configs,
    };

    struct IndexOp;

    impl Operation for IndexOp {
        fn info(&self) -> &'static OpInfo {
            &INFO
        }
        fn args(&self) -> serde_json::Value {
            serde_json::json!({})
        }
        fn run_chunk(&self, items: &[Item], _ctx: &mut WorkerContext) -> Vec<ItemResult> {
            items
                .iter()
                .map(|i| {
                    let mut a = i.atoms()?.clone();
                    a.info.insert("seen".into(), Value::Int(i.index as i64));
                    Ok(vec![a])
                })
                .collect()
        }
    }

    autopara_core::inventory::submit!(OpRegistration { info: &INFO, build: |_| Ok(Box::new(IndexOp)) });

    /// A directory with fake `sbatch` (logs the script, prints its line number as
    /// the id) and `squeue`: with `lists`, every submitted job is `RUNNING` unless
    /// the compute node marked it gone; without, the queue is always empty.
    fn fake_slurm(dir: &Path, lists: bool) -> Slurm {
        let bin = dir.join("bin");
        std::fs::create_dir_all(dir.join("gone")).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let d = dir.display();
        let sbatch = format!("#!/bin/sh\necho \"$2\" >> '{d}/sbatch.log'\nwc -l < '{d}/sbatch.log'\n");
        let squeue = if lists {
            format!(
                "#!/bin/sh\n[ -e '{d}/sbatch.log' ] || exit 0\nn=0\nwhile read -r s; do n=$((n+1)); \
                 [ -e '{d}/gone/'$n ] || echo \"$n|RUNNING|x\"; done < '{d}/sbatch.log'\n"
            )
        } else {
            "#!/bin/sh\nexit 0\n".to_string()
        };
        // Accounting: what `sacct.txt` says, else disabled as on the test cluster.
        let sacct = format!(
            "#!/bin/sh\n[ -e '{d}/sacct.txt' ] && exec cat '{d}/sacct.txt'\n\
             echo 'Slurm accounting storage is disabled' >&2\nexit 1\n"
        );
        std::fs::write(bin.join("sbatch"), sbatch).unwrap();
        std::fs::write(bin.join("squeue"), squeue).unwrap();
        std::fs::write(bin.join("sacct"), sacct).unwrap();
        for f in ["sbatch", "squeue", "sacct"] {
            std::fs::set_permissions(bin.join(f), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        Slurm::new().with_bin_dir(bin)
    }

    /// Plays the compute node: jobs submitted before script number `first_run`
    /// (1-based) vanish from the queue; later ones run and write their status, as
    /// `job.sh` would. Stops after running `jobs` jobs.
    fn compute_node(dir: PathBuf, first_run: usize, jobs: usize) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let (mut next, mut ran) = (0, 0);
            let start = Instant::now();
            while ran < jobs && start.elapsed() < Duration::from_secs(30) {
                let log = std::fs::read_to_string(dir.join("sbatch.log")).unwrap_or_default();
                for script in log.lines().skip(next) {
                    next += 1;
                    if next < first_run {
                        std::fs::write(dir.join(format!("gone/{next}")), "").unwrap();
                        continue;
                    }
                    let job = Path::new(script).parent().unwrap();
                    crate::worker::run_job_dir(job).unwrap();
                    std::fs::write(job.join("status"), "0\n").unwrap();
                    ran += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    }

    fn items(n: usize) -> Vec<Item> {
        (0..n)
            .map(|i| Item {
                index: i as u64,
                location: Location { file: None, path: vec![i] },
                payload: Payload::Atoms(Atoms::new(vec![1], vec![[i as f64, 0.0, 0.0]])),
            })
            .collect()
    }

    fn run(info: &RemoteInfo, slurm: Slurm, n: usize) -> autopara_core::Result<Vec<ItemResult>> {
        run_on(&Arc::new(SlurmBackend::new(info, slurm).unwrap()), &items(n))
    }

    /// Runs `items` (a run resumed at item k passes `items(n)[k..]`) on `backend`.
    fn run_on(backend: &Arc<SlurmBackend>, items: &[Item]) -> autopara_core::Result<Vec<ItemResult>> {
        let settings = AutoparaInfo {
            chunk_size: Some(2),
            progress: Some(false),
            backend: Some(backend.clone()),
            ..AutoparaInfo::default()
        }
        .resolve(&INFO)?;
        let mut sink = crate::worker::ItemResults::default();
        execute(&IndexOp, items.iter().cloned().map(Ok), &mut sink, &settings, None)?;
        Ok(sink.results)
    }

    fn submitted_scripts(dir: &Path) -> usize {
        std::fs::read_to_string(dir.join("sbatch.log")).map_or(0, |l| l.lines().count())
    }

    #[test]
    fn a_run_resumed_mid_job_takes_the_finished_jobs_results() {
        let tmp = tempfile::tempdir().unwrap();
        let info = RemoteInfo { num_inputs_per_queued_job: -2, ..info(tmp.path()) };
        let node = compute_node(tmp.path().to_path_buf(), 1, 2);
        let all = run(&info, fake_slurm(tmp.path(), true), 8).unwrap();
        node.join().unwrap();
        assert_eq!(submitted_scripts(tmp.path()), 2, "jobs of 4 items: 0..4, 4..8");
        // Killed after the jobs finished, the journal at item 1, 2 or 5: every
        // result comes from the jobs' directories, nothing is submitted.
        for from in [1, 2, 5] {
            let backend = Arc::new(SlurmBackend::new(&info, fake_slurm(tmp.path(), true)).unwrap());
            assert_eq!(run_on(&backend, &items(8)[from..]).unwrap(), all[from..], "resumed at {from}");
            let finished = if from < 4 { 2 } else { 1 };
            assert_eq!(backend.last_run(), JobCounts { finished, ..JobCounts::default() });
            assert_eq!(submitted_scripts(tmp.path()), 2, "resumed at {from}: a job was submitted");
        }
        // Other items at the same indices are other work.
        let mut changed = items(8);
        changed[6] = items(9).remove(8);
        changed[6].index = 6;
        let backend = Arc::new(SlurmBackend::new(&info, fake_slurm(tmp.path(), true)).unwrap());
        let node = compute_node(tmp.path().to_path_buf(), 3, 1);
        run_on(&backend, &changed[5..]).unwrap();
        node.join().unwrap();
        assert_eq!(backend.last_run(), JobCounts { submitted: 1, ..JobCounts::default() });
        // A retry of the trailing item 7 runs it again rather than reusing its result.
        let backend = Arc::new(SlurmBackend::new(&info, fake_slurm(tmp.path(), true)).unwrap().for_retry());
        let node = compute_node(tmp.path().to_path_buf(), 4, 1);
        assert_eq!(run_on(&backend, &items(8)[7..]).unwrap(), all[7..]);
        node.join().unwrap();
        assert_eq!(backend.last_run(), JobCounts { submitted: 1, ..JobCounts::default() });
        assert_eq!(submitted_scripts(tmp.path()), 4);
    }

    #[test]
    fn dead_jobs_are_counted_as_dead_or_resubmitted_not_reattached() {
        let tmp = tempfile::tempdir().unwrap();
        let mut info = info(tmp.path());
        // The first run's job vanishes from the queue without running.
        let err = run(&info, fake_slurm(tmp.path(), false), 2).unwrap_err().to_string();
        assert!(err.contains("gone from the queue"), "{err}");
        // Found dead by the rerun: given up on with ignore_failed_jobs, its items failed...
        info.ignore_failed_jobs = true;
        let backend = Arc::new(SlurmBackend::new(&info, fake_slurm(tmp.path(), false)).unwrap());
        let got = run_on(&backend, &items(2)).unwrap();
        assert!(got.iter().all(|r| r.as_ref().is_err_and(|f| f.frames.len() == 1)), "{got:?}");
        assert_eq!(backend.last_run(), JobCounts { dead: 1, ..JobCounts::default() });
        assert_eq!(submitted_scripts(tmp.path()), 1);
        // ... and forgotten, so that the next run (here a retry) submits it again.
        std::fs::write(tmp.path().join("gone/1"), "").unwrap();
        let backend = Arc::new(SlurmBackend::new(&info, fake_slurm(tmp.path(), true)).unwrap().for_retry());
        let node = compute_node(tmp.path().to_path_buf(), 2, 1);
        let got = run_on(&backend, &items(2)).unwrap();
        node.join().unwrap();
        assert!(got.iter().all(Result::is_ok), "{got:?}");
        assert_eq!(backend.last_run(), JobCounts { submitted: 1, ..JobCounts::default() });
        // A recorded submission found dead is resubmitted with resubmit_killed_jobs.
        let tmp = tempfile::tempdir().unwrap();
        let mut info = RemoteInfo { jobs_dir: tmp.path().join("jobs"), ..info };
        info.ignore_failed_jobs = false;
        assert!(run(&info, fake_slurm(tmp.path(), false), 2).is_err());
        info.resubmit_killed_jobs = true;
        std::fs::write(tmp.path().join("gone/1"), "").unwrap();
        let backend = Arc::new(SlurmBackend::new(&info, fake_slurm(tmp.path(), true)).unwrap());
        let node = compute_node(tmp.path().to_path_buf(), 2, 1);
        assert!(run_on(&backend, &items(2)).unwrap().iter().all(Result::is_ok));
        node.join().unwrap();
        assert_eq!(backend.last_run(), JobCounts { resubmitted: 1, ..JobCounts::default() });
    }

    fn info(dir: &Path) -> RemoteInfo {
        RemoteInfo { check_interval: 0.01, timeout: 30.0, jobs_dir: dir.join("jobs"), ..RemoteInfo::default() }
    }

    #[test]
    fn a_job_gone_without_status_dies_after_the_grace_polls() {
        let tmp = tempfile::tempdir().unwrap();
        let err = run(&info(tmp.path()), fake_slurm(tmp.path(), false), 3).unwrap_err().to_string();
        assert!(err.contains("died: gone from the queue without a status file"), "{err}");
        let log = std::fs::read_to_string(tmp.path().join("sbatch.log")).unwrap();
        assert_eq!(log.lines().count(), 1, "one job of 3 items (num_inputs_per_queued_job = -100)");
        // Where accounting works, it names the state; the rerun re-attaches, submits nothing.
        std::fs::write(tmp.path().join("sacct.txt"), "TIMEOUT\n").unwrap();
        let err = run(&info(tmp.path()), fake_slurm(tmp.path(), false), 3).unwrap_err().to_string();
        assert!(err.contains("died: TIMEOUT (sacct) without a status file"), "{err}");
        assert_eq!(std::fs::read_to_string(tmp.path().join("sbatch.log")).unwrap().lines().count(), 1);
    }

    #[test]
    fn resubmitted_once_then_results_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut info = info(tmp.path());
        info.resubmit_killed_jobs = true;
        info.num_inputs_per_queued_job = 3; // rounded up to whole chunks: jobs of 4 items
        // The first attempts of both jobs vanish; the resubmissions (scripts 3 and 4) run.
        let node = compute_node(tmp.path().to_path_buf(), 3, 2);
        let got = run(&info, fake_slurm(tmp.path(), true), 7).unwrap();
        node.join().unwrap();
        let seen: Vec<i64> = got.iter().map(|r| r.as_ref().unwrap()[0].info["seen"].as_i64().unwrap()).collect();
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        let log = std::fs::read_to_string(tmp.path().join("sbatch.log")).unwrap();
        assert_eq!(log.lines().count(), 4);
        // A second death is an error, not a second resubmission.
        let tmp = tempfile::tempdir().unwrap();
        let mut again = info.clone();
        again.jobs_dir = tmp.path().join("jobs");
        let err = run(&again, fake_slurm(tmp.path(), false), 1).unwrap_err().to_string();
        assert!(err.contains("gone from the queue"), "{err}");
        assert_eq!(std::fs::read_to_string(tmp.path().join("sbatch.log")).unwrap().lines().count(), 2);
    }

    #[test]
    fn jobs_cover_fixed_index_ranges() {
        let tmp = tempfile::tempdir().unwrap();
        let info = RemoteInfo { num_inputs_per_queued_job: -2, ..info(tmp.path()) };
        let backend = SlurmBackend::new(&info, Slurm::new()).unwrap();
        let spec = JobSpec::of(&IndexOp, 0);
        let all = backend.job_dirs(&spec, 2, &items(10)).unwrap();
        assert_eq!(all.len(), 3, "jobs of 4 items: 0..4, 4..8, 8..10");
        // A run resumed at item 2 redoes 2..4 in a new job and meets the others.
        let resumed = backend.job_dirs(&spec, 2, &items(10)[2..]).unwrap();
        assert_eq!(resumed.len(), 3);
        assert_ne!(resumed[0], all[0]);
        assert_eq!(resumed[1..], all[1..]);
        // The pool groups the executor's chunks the same way.
        let node = compute_node(tmp.path().to_path_buf(), 1, 3);
        let slurm = fake_slurm(tmp.path(), true);
        let backend = SlurmBackend::new(&info, slurm).unwrap();
        let settings = AutoparaInfo {
            chunk_size: Some(2),
            progress: Some(false),
            backend: Some(Arc::new(backend)),
            ..AutoparaInfo::default()
        }
        .resolve(&INFO)
        .unwrap();
        let mut sink = crate::worker::ItemResults::default();
        execute(&IndexOp, items(10).into_iter().skip(2).map(Ok), &mut sink, &settings, None).unwrap();
        node.join().unwrap();
        assert_eq!(sink.results.len(), 8);
        let log = std::fs::read_to_string(tmp.path().join("sbatch.log")).unwrap();
        let submitted: Vec<&Path> = log.lines().map(|l| Path::new(l).parent().unwrap()).collect();
        let expected: Vec<&Path> = resumed.iter().map(|d| d.dir.as_path()).collect();
        assert_eq!(submitted, expected);
    }

    #[test]
    fn jobs_dir_with_whitespace_is_refused() {
        let info = RemoteInfo { jobs_dir: "/tmp/my jobs".into(), ..RemoteInfo::default() };
        let err = SlurmBackend::new(&info, Slurm::new()).unwrap_err().to_string();
        assert!(err.contains("jobs_dir") && err.contains("whitespace"), "{err}");
    }

    #[test]
    fn ignored_failures_flag_configs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut info = info(tmp.path());
        info.ignore_failed_jobs = true;
        let got = run(&info, fake_slurm(tmp.path(), false), 2).unwrap();
        for (r, item) in got.iter().zip(items(2)) {
            let failure = r.as_ref().unwrap_err();
            assert!(failure.message.contains("died: gone from the queue"), "{failure:?}");
            let a = &failure.frames[0];
            assert_eq!(a.info[JOB_FAILED_KEY], Value::Bool(true));
            assert_eq!(a.positions, item.atoms().unwrap().positions);
        }
    }
}
