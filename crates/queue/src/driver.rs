//! The driver: the executor's [`Backend`] for batch systems. Chunks are
//! grouped into content-keyed jobs; jobs without a live or finished submission
//! are submitted (all that are ready at once, in one command on the system's
//! host), followed with the scheduler's job list and their status files, and
//! their results handed back to the executor in input order. On a remote host
//! job directories are copied to its `rundir` before submission and their
//! results copied back when their status file appears.
//!
//! Re-attach rules, applied to each job directory when the driver reaches it:
//! - results with exit status 0: reused, nothing is submitted;
//! - a recorded submission that the scheduler still lists as queued or running: followed;
//! - a recorded submission that died (time limit, cancelled, node failure, or
//!   gone from the queue without a status file): an error, or resubmitted
//!   once with `resubmit_killed_jobs`;
//! - a non-zero exit status from an earlier run: resubmitted (a rerun is the
//!   user's retry, as in wfl, where failed jobs are not re-attached);
//! - no submission: submitted, unless the scheduler already lists a job of
//!   that name as queued or running (the driver died between submitting and
//!   recording the id), which is adopted.
//!
//! A run resumed part-way through a job's index range (the driver was killed
//! after the job finished but before the output journal recorded all of its
//! items) does not make a job of the remaining items: it finds the earlier
//! job whose items end with them and takes its results (or follows it).
//!
//! Once the host has been reached, a failed ssh command (the connection
//! dropped) is reported and retried at the next poll; a submission cut off by
//! it is followed up by name. Failing to reach the host at first (unknown host
//! key, no key accepted, no such host) is an error at once.

use crate::error::{QueueError, Result};
use crate::host::{Host, set_private};
use crate::job::{FORMAT, JobDir, JobTask, ScriptParts, Submission, job_script, read_json, write_atomic, write_json};
use crate::remote_info::{JOB_FAILED_KEY, RemoteInfo};
use crate::resources::{Allocation, hms};
use crate::scheduler::{JobState, QueuedJob, Scheduler};
use crate::systems::{System, Systems, render_template};
use autopara_core::executor::backend::{Backend, Job, Pool};
use autopara_core::executor::{ChunkOutcome, ChunkTask, JobSpec};
use autopara_core::{Item, ItemFailure, ItemResult, Payload, Value};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
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

/// The line between the status listing and the scheduler's job list in a
/// remote poll's output.
const LIST_MARK: &str = "@@autopara-queue-list@@";

/// The files of a job directory the driver writes, copied to the host.
const JOB_INPUTS: [&str; 4] = ["task.json", "items.xyz", "items.json", "job.sh"];

/// The files a job writes, copied back.
const JOB_OUTPUTS: [&str; 4] = ["status", "results.json", "stdout", "stderr"];

/// Runs an op's chunks as batch jobs: plug it into
/// `AutoparaInfo { backend: Some(Arc::new(QueueBackend::new(&info)?)), .. }`.
#[derive(Debug)]
pub struct QueueBackend {
    info: RemoteInfo,
    system: System,
    scheduler: Box<dyn Scheduler>,
    host: Host,
    alloc: Allocation,
    /// The driver's job directories.
    jobs_dir: PathBuf,
    /// Jobs run elsewhere than `jobs_dir` (a remote host, or a `rundir`): copied there and back.
    staged: bool,
    /// Where job directories are on the host, absolute (resolved at first use).
    rundir: OnceLock<String>,
    autopara_bin: String,
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

fn bad_info(field: &str, message: impl Into<String>) -> QueueError {
    QueueError::RemoteInfo { origin: "QueueBackend".into(), field: field.into(), message: message.into() }
}

impl QueueBackend {
    /// A backend with a copy of `info` (the caller's value is never changed);
    /// its `system`, if any, comes from the default systems file
    /// ([`Systems::load`]), which is read only then.
    pub fn new(info: &RemoteInfo) -> Result<QueueBackend> {
        match &info.system {
            Some(_) => QueueBackend::with_systems(info, &Systems::load()?),
            None => QueueBackend::with_systems(info, &Systems::default()),
        }
    }

    /// A backend for `info` whose system comes from `systems`.
    pub fn with_systems(info: &RemoteInfo, systems: &Systems) -> Result<QueueBackend> {
        info.validate("QueueBackend")?;
        let system = match &info.system {
            Some(name) => systems.get(name)?.clone(),
            None => System::default(),
        };
        let alloc = info
            .resources
            .allocate(&system.partitions, info.exact_fit, info.partial_node)
            .map_err(|m| bad_info("resources", m))?;
        let jobs_dir = std::path::absolute(&info.jobs_dir).map_err(|e| QueueError::io(&info.jobs_dir, e))?;
        let staged = system.is_remote() || system.rundir.is_some();
        if !staged && jobs_dir.to_string_lossy().chars().any(|c| c.is_whitespace() || c == '\'') {
            return Err(bad_info(
                "jobs_dir",
                format!("{} contains whitespace or quotes, which job script headers cannot hold", jobs_dir.display()),
            ));
        }
        let host = if system.is_remote() {
            // The shared connection outlives a poll interval, not much more.
            Host::ssh(&system.host, &system.ssh_options, info.check_interval as u64 + 60)?
        } else {
            Host::local()
        };
        let autopara_bin =
            info.autopara_bin.clone().or_else(|| system.autopara_bin.clone()).unwrap_or_else(|| "autopara".into());
        Ok(QueueBackend {
            info: info.clone(),
            scheduler: crate::scheduler::of_kind(system.scheduler),
            system,
            host,
            alloc,
            jobs_dir,
            staged,
            rundir: OnceLock::new(),
            autopara_bin,
            retrying: false,
            last: Mutex::default(),
        })
    }

    /// The backend for an op call from `AUTOPARA_REMOTE_INFO` (the first of
    /// `labels` with an entry, see [`RemoteInfo::select`]); `None` when the
    /// variable is unset or has no entry (the op runs locally).
    pub fn from_env(labels: &[&str]) -> Result<Option<QueueBackend>> {
        RemoteInfo::from_env(labels)?.map(|info| QueueBackend::new(&info)).transpose()
    }

    /// Adds an environment variable to every scheduler command (and so to
    /// every job, where the scheduler passes the submitting environment on):
    /// `SLURM_CONF` for a private cluster, `PATH` for other commands.
    pub fn with_env(mut self, key: &str, value: impl Into<std::ffi::OsString>) -> QueueBackend {
        self.host = self.host.with_env(key, value);
        self
    }

    /// The backend for `--retry-failed` (`runner::retry_failed`): every job is
    /// run again, even one that finished (its items failed inside it, and the
    /// retry is for running them again), except one still queued or running,
    /// which is followed.
    pub fn for_retry(mut self) -> QueueBackend {
        self.retrying = true;
        self
    }

    /// What the last run on this backend did with its jobs.
    pub fn last_run(&self) -> JobCounts {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The remote info in use.
    pub fn info(&self) -> &RemoteInfo {
        &self.info
    }

    /// Where the jobs run: `slurm on this machine`, `sge on me@host`.
    pub fn describe(&self) -> String {
        format!("{} on {}", self.scheduler.name(), self.host.describe())
    }

    /// What each job gets: partition, nodes, cores (the worker's threads), time.
    pub fn allocation(&self) -> &Allocation {
        &self.alloc
    }

    /// The job directories a run of `spec` over `items` with `chunk_size` uses,
    /// in order, without writing anything.
    pub fn job_dirs(&self, spec: &JobSpec, chunk_size: usize, items: &[Item]) -> Result<Vec<JobDir>> {
        let per_job = self.range_len(chunk_size);
        items
            .chunk_by(|a, b| a.index / per_job == b.index / per_job)
            .map(|c| Ok(self.describe_job(spec, chunk_size, c)?.0))
            .collect()
    }

    /// The scheduler's jobs (the job list command on the host).
    pub fn queue(&self) -> Result<HashMap<String, QueuedJob>> {
        Ok(self.scheduler.parse_list(&self.host.run(&self.scheduler.list_command())?))
    }

    /// Cancels the scheduler's jobs `ids`.
    pub fn cancel(&self, ids: &[&str]) -> Result<()> {
        self.host.run(&self.scheduler.cancel_command(ids)).map(|_| ())
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
        self.alloc.num_cores as usize
    }

    /// Whole chunks per job: `num_inputs_per_queued_job` items rounded up to chunks.
    fn chunks_per_job(&self, chunk_size: usize) -> usize {
        self.info.items_per_job(chunk_size).div_ceil(chunk_size.max(1))
    }

    /// The job directories' place on the host (absolute): `jobs_dir` itself,
    /// or the system's `rundir` (default `autopara-jobs` on a remote host),
    /// created (0700) on first use.
    fn rundir(&self) -> Result<&str> {
        if let Some(dir) = self.rundir.get() {
            return Ok(dir);
        }
        let dir = match (&self.system.rundir, self.host.is_remote()) {
            (None, false) => self.jobs_dir.to_string_lossy().into_owned(),
            (dir, _) => {
                let dir = dir.as_deref().unwrap_or("autopara-jobs");
                let q = crate::job::shell_quote(dir);
                let out = self.host.run(&format!("mkdir -p -m 700 {q} && cd {q} && pwd -P"))?;
                out.trim().to_string()
            }
        };
        if dir.is_empty() || dir.chars().any(|c| c.is_whitespace() || c == '\'') {
            return Err(bad_info(
                "rundir",
                format!("{dir:?} on {} is empty or holds whitespace", self.host.describe()),
            ));
        }
        Ok(self.rundir.get_or_init(|| dir))
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

    fn describe_job(&self, spec: &JobSpec, chunk_size: usize, items: &[Item]) -> Result<(JobDir, JobTask, Vec<u8>)> {
        let task = JobTask::new(spec, chunk_size, self.threads(), items);
        let items_json = serde_json::to_vec(items).map_err(|e| QueueError::JobFile {
            path: self.jobs_dir.clone(),
            message: format!("serializing items: {e}"),
        })?;
        let hash = task.content_hash(&items_json);
        Ok((JobDir::new(&self.jobs_dir, &self.info.job_name, &hash), task, items_json))
    }

    /// The job script of `job`, running in `dir` on the host.
    fn script(&self, job: &JobDir, dir: &str) -> Result<String> {
        let a = &self.alloc;
        let values: BTreeMap<&str, String> = [
            ("num_nodes", a.num_nodes.to_string()),
            ("num_cores", a.num_cores.to_string()),
            ("num_cores_per_node", a.num_cores_per_node.to_string()),
            ("partition", a.partition.clone().unwrap_or_default()),
            ("queue", a.partition.clone().unwrap_or_default()),
            ("max_time", a.max_time.map(hms).unwrap_or_default()),
            ("id", job.name.clone()),
        ]
        .into();
        let mut header =
            if self.system.no_default_header { Vec::new() } else { self.scheduler.header(&job.name, dir, a) };
        for line in self.system.header.iter().chain(&self.info.header_extra) {
            header.push(render_template(line, &values).map_err(|m| bad_info("header", m))?);
        }
        Ok(job_script(&ScriptParts {
            header,
            env_vars: &self.info.env_vars.0,
            threads: self.threads(),
            commands: self.system.commands.iter().chain(&self.info.pre_cmds).map(String::as_str).collect(),
            post_cmds: &self.info.post_cmds,
            autopara_bin: &self.autopara_bin,
            dir,
        }))
    }

    /// A finished job's state from the scheduler's accounting, if it has one.
    fn accounted_state(&self, id: &str) -> Option<String> {
        let out = self.host.run(&format!("{} 2>/dev/null", self.scheduler.accounting_command(id))).ok()?;
        self.scheduler.parse_accounting(&out)
    }
}

impl Backend for QueueBackend {
    fn name(&self) -> &str {
        self.scheduler.name()
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
        let mut pool = QueuePool {
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
    /// Not yet told: finished or gone from the queue with no status file seen
    /// (looked at again), or waiting for the host to be reachable.
    Pending,
    /// Its status file says it finished.
    Finished,
    /// A live job of its name was adopted.
    Adopted,
    /// To be submitted, never having been before.
    Submitted,
    /// To be submitted again after it died.
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
    /// To be submitted, as this attempt.
    to_submit: Option<u32>,
    /// A submission was cut off (the connection dropped): the job may have
    /// been submitted; a live job of its name is adopted before submitting.
    uncertain: bool,
    /// Made by an earlier run and not yet counted in [`JobCounts`].
    uncounted: bool,
    resubmitted: bool,
    missing_polls: u32,
    outcome: Option<Outcome>,
}

impl QueueJob {
    fn new(dir: JobDir, items: usize) -> QueueJob {
        QueueJob {
            dir,
            skip: 0,
            items,
            submission: None,
            to_submit: None,
            uncertain: false,
            uncounted: false,
            resubmitted: false,
            missing_polls: 0,
            outcome: None,
        }
    }

    /// Marks the job for (re)submission as `attempt`, forgetting the last one.
    fn resubmit(&mut self, attempt: u32) -> Result<()> {
        self.dir.clear_attempt()?;
        self.submission = None;
        self.to_submit = Some(attempt);
        self.missing_polls = 0;
        Ok(())
    }
}

/// The executor's handle on a batch run. Jobs cover fixed ranges of item
/// indices and the executor's chunks need not line up with them (a run
/// resumed at an odd index): items go into jobs one by one and results come
/// back as one stream, cut into the executor's chunks again.
struct QueuePool<'a> {
    backend: &'a QueueBackend,
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
}

impl Pool for QueuePool<'_> {
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
        loop {
            // Said once every job found from an earlier run has been told apart.
            if !self.reported && self.jobs.iter().all(|j| !j.uncounted) {
                self.reported = true;
                let b = self.backend;
                eprintln!("autopara: {}: {} in {}", b.describe(), self.counts.describe(), b.jobs_dir.display());
            }
            let Some(&(chunk, len)) = self.chunks.front() else {
                return Err(autopara_core::Error::Other("queue backend: no chunk outstanding".into()));
            };
            if self.results.len() >= len {
                self.chunks.pop_front();
                return Ok(ChunkOutcome::new(chunk, self.results.drain(..len).collect()));
            }
            if self.jobs.front().is_some_and(|j| j.outcome.is_some()) {
                self.hand_back_front()?;
                continue;
            }
            if self.jobs.is_empty() {
                return Err(autopara_core::Error::Other(format!("queue backend: chunk {chunk} is in no job")));
            }
            self.submit_pending()?;
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

impl QueuePool<'_> {
    /// Turns the batched items into a job: writes (or finds) its directory;
    /// a new job is submitted with the others when the driver first waits.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let chunk_size = self.chunk_size.unwrap_or(1);
        let items = std::mem::take(&mut self.batch);
        let (dir, task, items_json) = self.backend.describe_job(&self.spec, chunk_size, &items)?;
        let mut job = QueueJob::new(dir, items.len());
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
                set_private(&job.dir.dir)?;
                job.dir.write_items(&items, &items_json)?;
                write_json(&job.dir.task(), &task)?;
                job.resubmit(1)?;
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

    /// Takes up a job an earlier run made: reused or resubmitted by its status
    /// file; anything else is told at the next poll.
    fn resume(&mut self, job: &mut QueueJob) -> Result<()> {
        job.submission = job.dir.read_submission()?;
        job.uncounted = true;
        if let Some(event) = self.backend.settle(job)? {
            self.count(job, event);
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

    /// Submits every job waiting for it with one command on the host (after
    /// copying their directories there). A dropped connection leaves them
    /// waiting, for the next poll.
    fn submit_pending(&mut self) -> Result<()> {
        let b = self.backend;
        let waiting: Vec<usize> = (0..self.jobs.len()).filter(|&i| self.jobs[i].to_submit.is_some()).collect();
        if waiting.is_empty() {
            return Ok(());
        }
        let result = (|| -> Result<BTreeMap<String, String>> {
            let rundir = b.rundir()?.to_string();
            let mut files = Vec::new();
            let mut script = format!("cd {} || exit 1\n", crate::job::shell_quote(&rundir));
            for &i in &waiting {
                let job = &self.jobs[i];
                let hash = job.dir.hash();
                let exec_dir = format!("{rundir}/{hash}");
                write_atomic(&job.dir.script(), b.script(&job.dir, &exec_dir)?.as_bytes())?;
                files.push(hash.to_string());
                files.extend(JOB_INPUTS.iter().filter(|f| job.dir.dir.join(f).exists()).map(|f| format!("{hash}/{f}")));
                let stale = JOB_OUTPUTS.map(|f| format!("{hash}/{f}")).join(" ");
                let submit = b.scheduler.submit_command(&format!("{exec_dir}/job.sh"));
                script += &format!(
                    "rm -f {stale}\nif out=$({submit}); then echo \"submitted {hash} $(echo $out)\"; \
                     else echo \"failed {hash}\"; fi\n"
                );
            }
            if b.staged {
                b.host.copy(true, &b.jobs_dir, &rundir, &files)?;
            }
            let (stdout, stderr) = b.host.run_output(&script)?;
            let mut ids = BTreeMap::new();
            let mut failed = Vec::new();
            for line in stdout.lines() {
                match line.split_whitespace().collect::<Vec<_>>()[..] {
                    ["submitted", hash, ref rest @ ..] => {
                        let id = b.scheduler.parse_submitted(&rest.join(" ")).ok_or_else(|| QueueError::Command {
                            command: format!("submitting {hash}"),
                            message: format!("unexpected output {:?}; stderr: {}", rest.join(" "), stderr.trim()),
                        })?;
                        ids.insert(hash.to_string(), id);
                    }
                    ["failed", hash] => failed.push(hash.to_string()),
                    _ => {}
                }
            }
            if !failed.is_empty() {
                // Record what was submitted before reporting what was not.
                self.record_submissions(&ids)?;
                return Err(QueueError::Command {
                    command: format!("{} (jobs {})", b.scheduler.submit_command("job.sh"), failed.join(", ")),
                    message: stderr.trim().to_string(),
                });
            }
            Ok(ids)
        })();
        match result {
            Ok(ids) => {
                self.record_submissions(&ids)?;
                // Jobs the script did not get to (cut off) are followed up by name.
                for &i in &waiting {
                    let job = &mut self.jobs[i];
                    job.uncertain = job.to_submit.is_some();
                }
                Ok(())
            }
            Err(QueueError::Connection { host, message }) if b.rundir.get().is_some() => {
                eprintln!(
                    "autopara: ssh to {host} failed while submitting ({message}); retrying in {} s",
                    b.info.check_interval
                );
                for &i in &waiting {
                    self.jobs[i].uncertain = true;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the submissions of jobs submitted just now (hash → id).
    fn record_submissions(&mut self, ids: &BTreeMap<String, String>) -> Result<()> {
        for job in self.jobs.iter_mut() {
            let (Some(attempt), Some(id)) = (job.to_submit, ids.get(job.dir.hash())) else { continue };
            let sub = Submission { id: id.clone(), attempt };
            write_json(&job.dir.submission(), &sub)?;
            job.submission = Some(sub);
            job.to_submit = None;
            job.uncertain = false;
            job.missing_polls = 0;
        }
        Ok(())
    }

    /// One look at every unfinished job: the scheduler's job list (and on a
    /// staged host which status files exist, and their results copied back).
    /// A dropped connection skips the look, to try again later.
    fn poll(&mut self) -> Result<()> {
        match self.look() {
            Ok(queue) => {
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
            Err(QueueError::Connection { host, message }) if self.backend.rundir.get().is_some() => {
                eprintln!(
                    "autopara: ssh to {host} failed while polling ({message}); retrying in {} s",
                    self.backend.info.check_interval
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The scheduler's job list; on a staged host also copies back the files
    /// of jobs that finished or left the queue.
    fn look(&self) -> Result<HashMap<String, QueuedJob>> {
        let b = self.backend;
        let list = b.scheduler.list_command();
        if !b.staged {
            return Ok(b.scheduler.parse_list(&b.host.run(&list)?));
        }
        let rundir = b.rundir()?;
        let open: Vec<&QueueJob> = self.jobs.iter().filter(|j| j.outcome.is_none() && j.submission.is_some()).collect();
        let hashes = open.iter().map(|j| j.dir.hash()).collect::<Vec<_>>().join(" ");
        let script = format!(
            "cd {} || exit 1\nfor h in {hashes}; do [ -f \"$h/status\" ] && echo \"$h\"; done\necho {LIST_MARK}\n{list}\n",
            crate::job::shell_quote(rundir)
        );
        let out = b.host.run(&script)?;
        let (done, listing) = out.split_once(LIST_MARK).unwrap_or(("", &out));
        let queue = b.scheduler.parse_list(listing);
        let done: HashSet<&str> = done.lines().map(str::trim).collect();
        // Finished jobs, and jobs the scheduler no longer runs (for their stderr).
        let fetch: Vec<String> = open
            .iter()
            .filter(|j| {
                done.contains(j.dir.hash())
                    || j.submission
                        .as_ref()
                        .is_some_and(|s| !matches!(queue.get(&s.id).map(|q| &q.state), Some(JobState::Live(_))))
            })
            .flat_map(|j| JOB_OUTPUTS.map(|f| format!("{}/{f}", j.dir.hash())))
            .collect();
        b.host.copy(false, &b.jobs_dir, rundir, &fetch)?;
        Ok(queue)
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

impl QueueBackend {
    /// What a job's status file says, when it has one. The script writes it as
    /// its last act: it is the truth. Exit status 0: finished. Otherwise the
    /// job failed: an error, or given up on; but a job an earlier run left
    /// failed is resubmitted (a rerun is the user's retry), and so is every
    /// finished job of an earlier run under `--retry-failed`.
    fn settle(&self, job: &mut QueueJob) -> Result<Option<Event>> {
        let Some(code) = job.dir.read_status()? else { return Ok(None) };
        if job.uncounted && (code != 0 || self.retrying) {
            let why = if code == 0 { "retrying its items".to_string() } else { format!("exit code {code}") };
            eprintln!("autopara: job {} ran in an earlier run ({why}); resubmitting", job.dir.name);
            let attempt = job.submission.as_ref().map_or(1, |s| s.attempt + 1);
            job.resubmit(attempt)?;
            return Ok(Some(Event::Resubmitted));
        }
        if code == 0 {
            job.outcome = Some(Outcome::Succeeded);
            return Ok(Some(Event::Finished));
        }
        let err = QueueError::JobFailed {
            job: job.dir.name.clone(),
            scheduler_job: format!(
                "{} job {}",
                self.scheduler.name(),
                job.submission.as_ref().map_or("?", |s| s.id.as_str())
            ),
            dir: job.dir.dir.clone(),
            exit_code: code,
            stderr_tail: job.dir.stderr_tail(STDERR_TAIL),
        };
        self.give_up(job, err).map(Some)
    }

    /// One look at one unfinished job, given the scheduler's job list.
    fn advance(&self, job: &mut QueueJob, queue: &HashMap<String, QueuedJob>) -> Result<Event> {
        if let Some(event) = self.settle(job)? {
            return Ok(event);
        }
        let Some(sub) = &job.submission else {
            // Only a live job of this name is adopted: a finished one either wrote its
            // status (read above) or belongs to an attempt that was cleared.
            let adopt = queue.values().find(|q| q.name == job.dir.name && matches!(q.state, JobState::Live(_)));
            if let Some(q) = adopt.filter(|_| job.to_submit.is_none() || job.uncertain) {
                let sub = Submission { id: q.id.clone(), attempt: job.to_submit.unwrap_or(1) };
                write_json(&job.dir.submission(), &sub)?;
                eprintln!("autopara: re-attached to {} job {} ({})", self.scheduler.name(), sub.id, job.dir.name);
                job.submission = Some(sub);
                (job.to_submit, job.uncertain) = (None, false);
                return Ok(Event::Adopted);
            }
            job.uncertain = false;
            if job.to_submit.is_some() {
                return Ok(Event::Pending);
            }
            job.resubmit(1)?;
            return Ok(Event::Submitted);
        };
        let dead = match queue.get(&sub.id).map(|q| &q.state) {
            Some(JobState::Live(_)) => None,
            Some(JobState::Killed(state)) => Some(state.clone()),
            Some(JobState::Ended(state)) => {
                job.missing_polls += 1;
                (job.missing_polls >= GRACE_POLLS).then(|| format!("{state} without a status file"))
            }
            None => {
                job.missing_polls += 1;
                (job.missing_polls >= GRACE_POLLS).then(|| match self.accounted_state(&sub.id) {
                    Some(state) => format!("{state} (accounting) without a status file"),
                    None => "gone from the queue without a status file".to_string(),
                })
            }
        };
        let Some(state) = dead else {
            return Ok(if job.missing_polls > 0 { Event::Pending } else { Event::Live });
        };
        if self.info.resubmit_killed_jobs && !job.resubmitted {
            eprintln!(
                "autopara: job {} ({} job {}) died ({state}); resubmitting",
                job.dir.name,
                self.scheduler.name(),
                sub.id
            );
            let attempt = sub.attempt + 1;
            job.resubmitted = true;
            job.resubmit(attempt)?;
            return Ok(Event::Resubmitted);
        }
        let err = QueueError::JobDied {
            job: job.dir.name.clone(),
            scheduler_job: format!("{} job {}", self.scheduler.name(), sub.id),
            dir: job.dir.dir.clone(),
            state,
            stderr_tail: job.dir.stderr_tail(STDERR_TAIL),
        };
        self.give_up(job, err)
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
        .map(|item| {
            let config = match &item.payload {
                Payload::Atoms(a) => Some(a.clone()),
                Payload::Frame(raw) => raw.parse().ok(),
                Payload::Counter(_) => None,
            };
            match config {
                Some(mut a) => {
                    a.info.insert(JOB_FAILED_KEY.to_string(), Value::Bool(true));
                    Err(ItemFailure::with_frames(why, vec![a]))
                }
                None => Err(ItemFailure::new(why)),
            }
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

    /// A backend whose `sbatch` is fake (logs the script, prints its line number
    /// as the id), as are `squeue` (with `lists`, every submitted job is
    /// `RUNNING` unless the compute node marked it gone; without, the queue is
    /// always empty) and `sacct`.
    fn fake_slurm(info: &RemoteInfo, dir: &Path, lists: bool) -> QueueBackend {
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
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        QueueBackend::with_systems(info, &Systems::default()).unwrap().with_env("PATH", path)
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

    fn run(backend: QueueBackend, n: usize) -> autopara_core::Result<Vec<ItemResult>> {
        run_on(&Arc::new(backend), &items(n))
    }

    /// Runs `items` (a run resumed at item k passes `items(n)[k..]`) on `backend`.
    fn run_on(backend: &Arc<QueueBackend>, items: &[Item]) -> autopara_core::Result<Vec<ItemResult>> {
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
        let all = run(fake_slurm(&info, tmp.path(), true), 8).unwrap();
        node.join().unwrap();
        assert_eq!(submitted_scripts(tmp.path()), 2, "jobs of 4 items: 0..4, 4..8");
        // Killed after the jobs finished, the journal at item 1, 2 or 5: every
        // result comes from the jobs' directories, nothing is submitted.
        for from in [1, 2, 5] {
            let backend = Arc::new(fake_slurm(&info, tmp.path(), true));
            assert_eq!(run_on(&backend, &items(8)[from..]).unwrap(), all[from..], "resumed at {from}");
            let finished = if from < 4 { 2 } else { 1 };
            assert_eq!(backend.last_run(), JobCounts { finished, ..JobCounts::default() });
            assert_eq!(submitted_scripts(tmp.path()), 2, "resumed at {from}: a job was submitted");
        }
        // Other items at the same indices are other work.
        let mut changed = items(8);
        changed[6] = items(9).remove(8);
        changed[6].index = 6;
        let backend = Arc::new(fake_slurm(&info, tmp.path(), true));
        let node = compute_node(tmp.path().to_path_buf(), 3, 1);
        run_on(&backend, &changed[5..]).unwrap();
        node.join().unwrap();
        assert_eq!(backend.last_run(), JobCounts { submitted: 1, ..JobCounts::default() });
        // A retry of the trailing item 7 runs it again rather than reusing its result.
        let backend = Arc::new(fake_slurm(&info, tmp.path(), true).for_retry());
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
        let err = run(fake_slurm(&info, tmp.path(), false), 2).unwrap_err().to_string();
        assert!(err.contains("gone from the queue"), "{err}");
        // Found dead by the rerun: given up on with ignore_failed_jobs, its items failed...
        info.ignore_failed_jobs = true;
        let backend = Arc::new(fake_slurm(&info, tmp.path(), false));
        let got = run_on(&backend, &items(2)).unwrap();
        assert!(got.iter().all(|r| r.as_ref().is_err_and(|f| f.frames.len() == 1)), "{got:?}");
        assert_eq!(backend.last_run(), JobCounts { dead: 1, ..JobCounts::default() });
        assert_eq!(submitted_scripts(tmp.path()), 1);
        // ... and forgotten, so that the next run (here a retry) submits it again.
        std::fs::write(tmp.path().join("gone/1"), "").unwrap();
        let backend = Arc::new(fake_slurm(&info, tmp.path(), true).for_retry());
        let node = compute_node(tmp.path().to_path_buf(), 2, 1);
        let got = run_on(&backend, &items(2)).unwrap();
        node.join().unwrap();
        assert!(got.iter().all(Result::is_ok), "{got:?}");
        assert_eq!(backend.last_run(), JobCounts { submitted: 1, ..JobCounts::default() });
        // A recorded submission found dead is resubmitted with resubmit_killed_jobs.
        let tmp = tempfile::tempdir().unwrap();
        let mut info = RemoteInfo { jobs_dir: tmp.path().join("jobs"), ..info };
        info.ignore_failed_jobs = false;
        assert!(run(fake_slurm(&info, tmp.path(), false), 2).is_err());
        info.resubmit_killed_jobs = true;
        std::fs::write(tmp.path().join("gone/1"), "").unwrap();
        let backend = Arc::new(fake_slurm(&info, tmp.path(), true));
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
        let err = run(fake_slurm(&info(tmp.path()), tmp.path(), false), 3).unwrap_err().to_string();
        assert!(err.contains("died: gone from the queue without a status file"), "{err}");
        let log = std::fs::read_to_string(tmp.path().join("sbatch.log")).unwrap();
        assert_eq!(log.lines().count(), 1, "one job of 3 items (num_inputs_per_queued_job = -100)");
        // Where accounting works, it names the state; the rerun re-attaches, submits nothing.
        std::fs::write(tmp.path().join("sacct.txt"), "TIMEOUT\n").unwrap();
        let err = run(fake_slurm(&info(tmp.path()), tmp.path(), false), 3).unwrap_err().to_string();
        assert!(err.contains("died: TIMEOUT (accounting) without a status file"), "{err}");
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
        let got = run(fake_slurm(&info, tmp.path(), true), 7).unwrap();
        node.join().unwrap();
        let seen: Vec<i64> = got.iter().map(|r| r.as_ref().unwrap()[0].info["seen"].as_i64().unwrap()).collect();
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        let log = std::fs::read_to_string(tmp.path().join("sbatch.log")).unwrap();
        assert_eq!(log.lines().count(), 4);
        // A second death is an error, not a second resubmission.
        let tmp = tempfile::tempdir().unwrap();
        let mut again = info.clone();
        again.jobs_dir = tmp.path().join("jobs");
        let err = run(fake_slurm(&again, tmp.path(), false), 1).unwrap_err().to_string();
        assert!(err.contains("gone from the queue"), "{err}");
        assert_eq!(std::fs::read_to_string(tmp.path().join("sbatch.log")).unwrap().lines().count(), 2);
    }

    #[test]
    fn jobs_cover_fixed_index_ranges() {
        let tmp = tempfile::tempdir().unwrap();
        let info = RemoteInfo { num_inputs_per_queued_job: -2, ..info(tmp.path()) };
        let backend = QueueBackend::with_systems(&info, &Systems::default()).unwrap();
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
        let backend = fake_slurm(&info, tmp.path(), true);
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
        let err = QueueBackend::with_systems(&info, &Systems::default()).unwrap_err().to_string();
        assert!(err.contains("jobs_dir") && err.contains("whitespace"), "{err}");
    }

    #[test]
    fn ignored_failures_flag_configs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut info = info(tmp.path());
        info.ignore_failed_jobs = true;
        let got = run(fake_slurm(&info, tmp.path(), false), 2).unwrap();
        for (r, item) in got.iter().zip(items(2)) {
            let failure = r.as_ref().unwrap_err();
            assert!(failure.message.contains("died: gone from the queue"), "{failure:?}");
            let a = &failure.frames[0];
            assert_eq!(a.info[JOB_FAILED_KEY], Value::Bool(true));
            assert_eq!(a.positions, item.atoms().unwrap().positions);
        }
    }
}

#[cfg(test)]
mod doc_tests {
    //! The examples of docs/queue.md and docs/coming-from-wfl.md read as they say.
    use super::*;
    use std::path::Path;

    fn doc(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The bodies of the ```lang blocks of `text`.
    fn blocks(text: &str, lang: &str) -> Vec<String> {
        let open = format!("```{lang}\n");
        text.split(&open).skip(1).map(|b| b.split("```").next().unwrap_or("").to_string()).collect()
    }

    /// The single-quoted value of `export NAME='...'` in `text`.
    fn exported(text: &str, name: &str) -> String {
        let start = text.find(&format!("export {name}='")).unwrap() + name.len() + 9;
        text[start..start + text[start..].find('\'').unwrap()].to_string()
    }

    #[test]
    fn a_wfl_expyre_info_and_its_systems_translate_as_coming_from_wfl_shows() {
        let text = doc("coming-from-wfl.md");
        let systems = Systems::from_toml_str(&blocks(&text, "toml")[0], "coming-from-wfl.md").unwrap();
        let sh = blocks(&text, "sh").join("\n");
        let ours = RemoteInfo::select(&exported(&sh, "AUTOPARA_REMOTE_INFO"), "doc", &["md"]).unwrap().unwrap();
        let wfl = RemoteInfo::select(&exported(&sh, "WFL_EXPYRE_INFO"), "doc", &["md"]).unwrap().unwrap();
        assert_eq!(ours, wfl, "the wfl entry reads as the autopara one");
        let backend = QueueBackend::with_systems(&ours, &systems).unwrap();
        let a = backend.allocation();
        assert_eq!(
            (a.partition.as_deref(), a.num_nodes, a.num_cores, a.max_time),
            (Some("standard"), 1, 32, Some(14400))
        );
        assert_eq!(backend.info().env_vars.0["OMP_NUM_THREADS"], "1");
        // The ExPyRe config.json's systems, as JSON, read the same once the
        // header lines autopara's default header replaces are dropped.
        let json: serde_json::Value = serde_json::from_str(&blocks(&text, "json")[0]).unwrap();
        let womble = &json["systems"]["womble"];
        assert_eq!(womble["partitions"]["standard"]["num_cores"], 32);
        assert_eq!(systems.get("womble").unwrap().host, womble["host"].as_str().unwrap());
    }

    #[test]
    fn the_queue_doc_systems_file_reads() {
        let text = doc("queue.md");
        let systems = Systems::from_toml_str(&blocks(&text, "toml")[0], "queue.md").unwrap();
        let info = RemoteInfo {
            system: Some("archer".into()),
            resources: toml::from_str("num_nodes = 1\nmax_time = \"2h\"").unwrap(),
            ..RemoteInfo::default()
        };
        let backend = QueueBackend::with_systems(&info, &systems).unwrap();
        assert_eq!(backend.allocation().num_cores, 128);
        assert_eq!(backend.describe(), "slurm on me@login.archer2.ac.uk");
    }
}
