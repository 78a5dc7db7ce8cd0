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

use crate::error::{QueueError, Result};
use crate::job::{JobDir, JobTask, Submission, job_script, read_json, write_atomic, write_json};
use crate::remote_info::{JOB_FAILED_KEY, RemoteInfo};
use crate::slurm::{JobState, QueuedJob, Slurm};
use autopara_core::executor::backend::{Backend, Job, Pool};
use autopara_core::executor::{ChunkOutcome, ChunkTask, JobSpec};
use autopara_core::{Item, ItemFailure, ItemResult, Payload, Value};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
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
#[derive(Debug, Clone)]
pub struct SlurmBackend {
    info: RemoteInfo,
    jobs_dir: PathBuf,
    slurm: Slurm,
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
        Ok(SlurmBackend { info: info.clone(), jobs_dir, slurm })
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
        items
            .chunk_by(|a, b| self.job_number(chunk_size, a.index) == self.job_number(chunk_size, b.index))
            .map(|c| Ok(self.describe(spec, chunk_size, c)?.0))
            .collect()
    }

    /// The job an item belongs to: jobs cover fixed ranges of global indices, so a
    /// run resumed after part of its output was written (starting mid-range)
    /// still meets the earlier run's later jobs, and re-attaches to them.
    fn job_number(&self, chunk_size: usize, index: u64) -> u64 {
        index / (chunk_size.max(1) * self.chunks_per_job(chunk_size)) as u64
    }

    /// Worker threads per job.
    fn threads(&self) -> usize {
        self.info.num_cores.unwrap_or(1) as usize
    }

    /// Whole chunks per job: `num_inputs_per_queued_job` items rounded up to chunks.
    fn chunks_per_job(&self, chunk_size: usize) -> usize {
        self.info.items_per_job(chunk_size).div_ceil(chunk_size.max(1))
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
            batch: Vec::new(),
            jobs: VecDeque::new(),
            ready: VecDeque::new(),
            start: Instant::now(),
            counts: (0, 0, 0),
            reported: false,
        };
        driver(&mut pool)
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
    /// Failed or died with `ignore_failed_jobs`: its items come back flagged.
    Ignored(String),
}

/// One job of a run.
struct QueueJob {
    dir: JobDir,
    /// (chunk number, item count) of the executor's chunks in this job, in order.
    chunks: Vec<(u64, usize)>,
    submission: Option<Submission>,
    resubmitted: bool,
    missing_polls: u32,
    outcome: Option<Outcome>,
}

/// The executor's handle on a Slurm run.
struct SlurmPool<'a> {
    backend: &'a SlurmBackend,
    spec: JobSpec,
    /// The run's chunk size, from the first chunk (every chunk but the last has it).
    chunk_size: Option<usize>,
    /// Chunks not yet in a job.
    batch: Vec<ChunkTask>,
    /// Jobs in input order whose results have not been handed back.
    jobs: VecDeque<QueueJob>,
    /// Outcomes of finished jobs, in order, waiting for `recv`.
    ready: VecDeque<ChunkOutcome>,
    start: Instant,
    /// Jobs so far: (submitted by this run, followed from an earlier run, finished earlier).
    counts: (usize, usize, usize),
    /// Whether the counts were reported (once, when the driver first waits).
    reported: bool,
}

impl Pool for SlurmPool<'_> {
    fn capacity(&self) -> usize {
        CAPACITY_CHUNKS
    }

    fn submit(&mut self, task: ChunkTask) -> autopara_core::Result<()> {
        let chunk_size = *self.chunk_size.get_or_insert(task.items.len().max(1));
        let job_of = |t: &ChunkTask| t.items.first().map(|i| self.backend.job_number(chunk_size, i.index));
        if self.batch.last().is_some_and(|last| job_of(last) != job_of(&task)) {
            self.flush()?;
        }
        self.batch.push(task);
        if self.batch.len() >= self.backend.chunks_per_job(chunk_size) {
            self.flush()?;
        }
        Ok(())
    }

    fn recv(&mut self) -> autopara_core::Result<ChunkOutcome> {
        if let Some(o) = self.ready.pop_front() {
            return Ok(o);
        }
        // The executor waits only when it has nothing more to hand over.
        self.flush()?;
        if !self.reported {
            self.reported = true;
            let (new, followed, finished) = self.counts;
            eprintln!(
                "autopara: slurm: {} jobs in {}: {new} submitted, {followed} re-attached, {finished} finished earlier",
                new + followed + finished,
                self.backend.jobs_dir.display()
            );
        }
        loop {
            if self.jobs.front().is_some_and(|j| j.outcome.is_some()) {
                self.hand_back_front()?;
                if let Some(o) = self.ready.pop_front() {
                    return Ok(o);
                }
                continue;
            }
            if self.jobs.is_empty() {
                return Err(autopara_core::Error::Other("slurm backend: no chunk outstanding".into()));
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
    /// Turns the batched chunks into a job: writes (or finds) its directory and
    /// submits it unless it has finished or has a submission already.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let chunk_size = self.chunk_size.unwrap_or(1);
        let chunks = self.batch.iter().map(|t| (t.chunk, t.items.len())).collect();
        let items: Vec<Item> = self.batch.drain(..).flat_map(|t| t.items).collect();
        let (dir, task, items_json) = self.backend.describe(&self.spec, chunk_size, &items)?;
        let mut job = QueueJob { dir, chunks, submission: None, resubmitted: false, missing_polls: 0, outcome: None };
        if !job.dir.task().exists() {
            // task.json is written last: a directory without it is incomplete and rewritten.
            std::fs::create_dir_all(&job.dir.dir).map_err(|e| QueueError::io(&job.dir.dir, e))?;
            job.dir.clear_attempt()?;
            job.dir.write_items(&items, &items_json)?;
            write_json(&job.dir.task(), &task)?;
            self.backend.submit(&mut job, 1)?;
            self.counts.0 += 1;
        } else {
            match job.dir.read_status()? {
                Some(0) => {
                    job.outcome = Some(Outcome::Succeeded);
                    self.counts.2 += 1;
                }
                Some(code) => {
                    eprintln!(
                        "autopara: job {} failed in an earlier run (exit code {code}); resubmitting",
                        job.dir.name
                    );
                    job.dir.clear_attempt()?;
                    self.backend.submit(&mut job, 1)?;
                    self.counts.0 += 1;
                }
                None => {
                    job.submission = job.dir.read_submission()?;
                    if job.submission.is_none() {
                        let queue = self.backend.slurm.jobs()?;
                        self.backend.advance(&mut job, &queue)?;
                    }
                    self.counts.1 += 1;
                }
            }
        }
        self.jobs.push_back(job);
        Ok(())
    }

    /// One look at every unfinished job.
    fn poll(&mut self) -> Result<()> {
        let queue = self.backend.slurm.jobs()?;
        for job in self.jobs.iter_mut().filter(|j| j.outcome.is_none()) {
            self.backend.advance(job, &queue)?;
        }
        Ok(())
    }

    /// Moves the finished front job's results to `ready`, split into its chunks.
    fn hand_back_front(&mut self) -> Result<()> {
        let Some(job) = self.jobs.pop_front() else { return Ok(()) };
        let n: usize = job.chunks.iter().map(|(_, len)| len).sum();
        let results: Vec<ItemResult> = match &job.outcome {
            Some(Outcome::Succeeded) => job.dir.read_results()?,
            Some(Outcome::Ignored(why)) => {
                let task: JobTask = read_json(&job.dir.task())?;
                flagged(&job.dir.read_items(&task)?, why)
            }
            None => return Ok(()),
        };
        if results.len() != n {
            return Err(QueueError::JobFile {
                path: job.dir.results(),
                message: format!("{} results for {n} items", results.len()),
            });
        }
        let mut results = results.into_iter();
        for (chunk, len) in job.chunks {
            self.ready.push_back(ChunkOutcome { chunk, results: results.by_ref().take(len).collect() });
        }
        Ok(())
    }
}

impl SlurmBackend {
    /// One poll of one unfinished job.
    fn advance(&self, job: &mut QueueJob, queue: &HashMap<String, QueuedJob>) -> Result<()> {
        // The status file is written by the script as its last act: it is the truth.
        if let Some(code) = job.dir.read_status()? {
            if code == 0 {
                job.outcome = Some(Outcome::Succeeded);
                return Ok(());
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
                (job.missing_polls >= GRACE_POLLS).then(|| match self.slurm.accounted_state(&sub.slurm_id) {
                    Some(state) => format!("{state} (sacct) without a status file"),
                    None => "gone from the queue without a status file".to_string(),
                })
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
    fn submit(&self, job: &mut QueueJob, attempt: u32) -> Result<()> {
        write_atomic(&job.dir.script(), job_script(&job.dir, &self.info, self.threads()).as_bytes())?;
        let slurm_id = self.slurm.submit(&job.dir.script())?;
        let sub = Submission { slurm_id, attempt };
        write_json(&job.dir.submission(), &sub)?;
        job.submission = Some(sub);
        job.missing_polls = 0;
        Ok(())
    }

    /// A failed or dead job: an error, or flagged items with `ignore_failed_jobs`.
    fn give_up(&self, job: &mut QueueJob, err: QueueError) -> Result<()> {
        if !self.info.ignore_failed_jobs {
            return Err(err);
        }
        eprintln!("autopara: ignoring failed job: {err}");
        job.outcome = Some(Outcome::Ignored(err.to_string()));
        Ok(())
    }
}

/// The inputs of a failed job flagged with [`JOB_FAILED_KEY`]; counters, which
/// have no configuration to flag, become failures.
fn flagged(items: &[Item], why: &str) -> Vec<ItemResult> {
    items
        .iter()
        .map(|item| match &item.payload {
            Payload::Atoms(a) => {
                let mut a = a.clone();
                a.info.insert(JOB_FAILED_KEY.to_string(), Value::Bool(true));
                Ok(vec![a])
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
        let backend = SlurmBackend::new(info, slurm).unwrap();
        let settings = AutoparaInfo {
            chunk_size: Some(2),
            progress: Some(false),
            backend: Some(Arc::new(backend)),
            ..AutoparaInfo::default()
        }
        .resolve(&INFO)?;
        let mut sink = crate::worker::ItemResults::default();
        execute(&IndexOp, items(n).into_iter().map(Ok), &mut sink, &settings, None)?;
        Ok(sink.results)
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
            let a = &r.as_ref().unwrap()[0];
            assert_eq!(a.info[JOB_FAILED_KEY], Value::Bool(true));
            assert_eq!(a.positions, item.atoms().unwrap().positions);
        }
    }
}
