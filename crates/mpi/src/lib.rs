//! The MPI backend: wfl's `WFL_MPIPOOL` mode on a real MPI.
//!
//! The whole program runs under `mpirun`. Every rank calls [`init`] early; on
//! rank 0 it returns a guard and the program goes on, on the other ranks it
//! serves chunks until rank 0 is done and then exits with status 0. With
//! `AUTOPARA_MPI=1` (or wfl's `WFL_MPIPOOL`) set, every autoparallelized call
//! on rank 0 hands chunks dynamically to all ranks, rank 0 included (wfl
//! leaves it idle), and each rank runs `workers` threads (hybrid MPI +
//! threads).
//!
//! ```no_run
//! // First thing in `main`: ranks > 0 serve work here and exit.
//! let _mpi = autopara_mpi::init();
//! // ... rank 0: build ConfigSets and run ops as usual ...
//! ```
//!
//! Ops and calculators are found by name through the registry on every rank,
//! so every rank must run the same binary. Items and results travel as JSON
//! (floats round-trip exactly), so outputs are byte-identical to a serial run
//! with the same seed.

use autopara_core::executor::backend::{Backend, Job, Pool};
use autopara_core::executor::{ChunkOutcome, ChunkTask, JobSpec, execute_chunk};
use autopara_core::{Error, Operation, Result, WorkerContext, build_op};
use mpi::Threading;
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source, Status};
use mpi::topology::{Communicator, SimpleCommunicator};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Rank 0 → workers: a job (JSON [`JobSpec`] and thread count) starts.
const TAG_JOB: i32 = 11;
/// Rank 0 → worker: a chunk (JSON [`ChunkTask`]).
const TAG_TASK: i32 = 12;
/// Worker → rank 0: a finished chunk (JSON [`ChunkOutcome`]) or an error text.
const TAG_OUTCOME: i32 = 13;
/// Worker → rank 0: the worker could not run the job (error text).
const TAG_ERROR: i32 = 14;
/// Rank 0 → workers: the job is over; wait for the next one.
const TAG_END_JOB: i32 = 15;
/// Rank 0 → workers: the program is done; exit.
const TAG_SHUTDOWN: i32 = 16;

/// Held by rank 0 until the program ends: dropping it stops the worker ranks
/// and finalizes MPI.
pub struct MpiGuard {
    universe: Option<mpi::environment::Universe>,
}

impl Drop for MpiGuard {
    fn drop(&mut self) {
        if let Some(universe) = self.universe.take() {
            let world = universe.world();
            for rank in 1..world.size() {
                world.process_at_rank(rank).send_with_tag(&[0u8][..], TAG_SHUTDOWN);
            }
            drop(universe);
        }
    }
}

impl MpiGuard {
    /// This process's rank (always 0 where the guard exists).
    pub fn rank(&self) -> i32 {
        self.universe.as_ref().map_or(0, |u| u.world().rank())
    }

    /// Number of ranks.
    pub fn size(&self) -> i32 {
        self.universe.as_ref().map_or(1, |u| u.world().size())
    }
}

/// True when the environment asks for the MPI backend (`AUTOPARA_MPI`, or
/// wfl's `WFL_MPIPOOL`, set to anything but `0` or empty).
pub fn requested() -> bool {
    autopara_core::autopara_info::mpi_requested(|k| std::env::var(k).ok()).is_some()
}

/// Initializes MPI. On rank 0 returns the guard (hold it until the end of
/// `main`) and, when [`requested`], installs the MPI backend as the process
/// default for every executor call. On other ranks serves work until rank 0
/// is done, then exits the process with status 0 (or 1 if serving failed).
///
/// A process that no MPI launcher started with more than one rank, and whose
/// environment does not ask for MPI, does not initialize it: a plain command
/// pays nothing for MPI (Open MPI's singleton start-up took about 0.3 s and
/// writes to pipes of its own).
pub fn init() -> MpiGuard {
    if !requested() && autopara_core::autopara_info::mpi_launch(|k| std::env::var(k).ok()).is_none() {
        return MpiGuard { universe: None };
    }
    let Some((universe, _threading)) = mpi::initialize_with_threading(Threading::Serialized) else {
        // Already initialized (a second call): nothing to do.
        return MpiGuard { universe: None };
    };
    let world = universe.world();
    if world.rank() != 0 {
        let status = match serve(&world) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("autopara mpi rank {}: {e}", world.rank());
                1
            }
        };
        drop(universe);
        std::process::exit(status);
    }
    if requested() {
        autopara_core::autopara_info::set_process_backend(Arc::new(MpiBackend::new(threads_per_rank())));
    }
    MpiGuard { universe: Some(universe) }
}

/// Threads per rank: `AUTOPARA_NUM_WORKERS` (or wfl's name) when set, else 1.
fn threads_per_rank() -> usize {
    ["AUTOPARA_NUM_WORKERS", "WFL_NUM_PYTHON_SUBPROCESSES"]
        .iter()
        .find_map(|k| std::env::var(k).ok().and_then(|v| v.trim().parse::<usize>().ok()))
        .unwrap_or(1)
        .max(1)
}

/// The MPI backend: chunks go to whichever rank (or local thread) is free.
#[derive(Debug, Clone)]
pub struct MpiBackend {
    threads: usize,
}

impl MpiBackend {
    /// A backend running `threads` worker threads on every rank.
    pub fn new(threads: usize) -> MpiBackend {
        MpiBackend { threads: threads.max(1) }
    }
}

fn world_size() -> usize {
    usize::try_from(SimpleCommunicator::world().size()).unwrap_or(1)
}

impl Backend for MpiBackend {
    fn name(&self) -> &str {
        "mpi"
    }

    fn workers(&self) -> usize {
        world_size() * self.threads
    }

    fn run(&self, job: &Job<'_>, driver: &mut dyn FnMut(&mut dyn Pool) -> Result<()>) -> Result<()> {
        let world = SimpleCommunicator::world();
        let header = serde_json::to_vec(&(job.spec, self.threads))
            .map_err(|e| Error::Other(format!("mpi: cannot encode job: {e}")))?;
        for rank in 1..world.size() {
            world.process_at_rank(rank).send_with_tag(&header[..], TAG_JOB);
        }
        let result = std::thread::scope(|scope| {
            let local = LocalWorkers::start(scope, job, 0, self.threads)?;
            let mut free = vec![self.threads; world_size()];
            free[0] = 0;
            let mut pool = MpiPool {
                world: &world,
                local,
                threads: self.threads,
                free,
                sent: vec![VecDeque::new(); world_size()],
                turnaround: vec![None; world_size()],
                capacity: world_size() * self.threads * CHUNKS_PER_THREAD,
                per_rank: vec![0; world_size()],
            };
            let result = driver(&mut pool);
            pool.local.stop();
            // After a failure, chunks still running elsewhere answer before the job ends.
            pool.drain();
            if std::env::var("AUTOPARA_PROGRESS").map_or(true, |v| v.trim() != "0") {
                let counts: Vec<String> = pool.per_rank.iter().enumerate().map(|(r, n)| format!("{r}: {n}")).collect();
                eprintln!("autopara: mpi: chunks per rank: {}", counts.join(", "));
            }
            result
        });
        for rank in 1..world.size() {
            world.process_at_rank(rank).send_with_tag(&[0u8][..], TAG_END_JOB);
        }
        result
    }
}

/// Chunks the driver may have outstanding per worker thread (on any rank):
/// one running, one waiting on rank 0 so that a rank that finishes gets its
/// next chunk at once, and one of slack for the reorder buffer.
const CHUNKS_PER_THREAD: usize = 3;

/// First wait between two looks at MPI while a rank's main thread has
/// nothing to do; each further wait is longer by this much, up to [`POLL_MAX`].
const POLL_MIN: Duration = Duration::from_micros(50);

/// Longest wait between two looks at MPI once an answer is due (or when no
/// answer time is known): the most a remote rank that finished a chunk
/// waits for rank 0 to take it and send the next.
const POLL_MAX: Duration = Duration::from_millis(1);

/// Longest wait between two looks at MPI while no answer is due yet: rank
/// 0 wakes rarely while remote ranks compute, and a chunk that finishes
/// earlier than the ones before it waits at most this long.
const POLL_EARLY: Duration = Duration::from_millis(5);

/// Rank 0 expects a remote rank's answer after this fraction of its recent
/// turnaround, and looks at MPI often from then on.
const DUE_FRACTION: f64 = 0.9;

/// A rank's own worker threads, fed from a shared queue of chunks not yet started.
struct LocalWorkers {
    queue: Arc<(Mutex<LocalQueue>, Condvar)>,
    outcomes: mpsc::Receiver<ChunkOutcome>,
    threads: usize,
}

#[derive(Default)]
struct LocalQueue {
    tasks: VecDeque<ChunkTask>,
    busy: usize,
    stop: bool,
}

impl LocalWorkers {
    /// Starts `threads` threads, numbered as workers `first_worker..`.
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        job: &'scope Job<'_>,
        first_worker: usize,
        threads: usize,
    ) -> Result<Self> {
        let queue = Arc::new((Mutex::new(LocalQueue::default()), Condvar::new()));
        let (tx, outcomes) = mpsc::channel();
        for t in 0..threads {
            let mut ctx = job.worker_context(first_worker + t)?;
            let (queue, tx) = (Arc::clone(&queue), tx.clone());
            let op = job.op;
            scope.spawn(move || {
                while let Some(task) = next_local_task(&queue) {
                    let outcome = execute_chunk(op, &mut ctx, task);
                    if let Ok(mut q) = queue.0.lock() {
                        q.busy -= 1;
                    }
                    if tx.send(outcome).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(LocalWorkers { queue, outcomes, threads })
    }

    fn push(&self, task: ChunkTask) {
        if let Ok(mut q) = self.queue.0.lock() {
            q.tasks.push_back(task);
        }
        self.queue.1.notify_one();
    }

    /// A queued chunk that no idle local thread is about to take, if any.
    fn spare(&self) -> Option<ChunkTask> {
        let mut q = self.queue.0.lock().ok()?;
        let idle = self.threads.saturating_sub(q.busy);
        if q.tasks.len() > idle { q.tasks.pop_back() } else { None }
    }

    fn stop(&self) {
        if let Ok(mut q) = self.queue.0.lock() {
            q.stop = true;
            q.tasks.clear();
        }
        self.queue.1.notify_all();
    }

    /// Waits for the next chunk finished by a local thread or a message from
    /// `source`, whichever comes first. A local outcome wakes the caller at
    /// once. MPI is probed every [`POLL_EARLY`] until `due` (when a message
    /// is expected, if known), then between waits that grow from
    /// [`POLL_MIN`] to [`POLL_MAX`], so the waiting thread takes little from
    /// the workers and notices a message soon after it is due.
    fn next_event(&self, source: &impl Source, due: Option<Instant>) -> Result<Event> {
        let mut wait = POLL_MIN;
        loop {
            if let Some(probe) = source.immediate_matched_probe() {
                let (bytes, status) = probe.matched_receive_vec::<u8>();
                return Ok(Event::Message(bytes, status));
            }
            let timeout = match due.and_then(|due| due.checked_duration_since(Instant::now())) {
                Some(until_due) if until_due > POLL_MIN => until_due.min(POLL_EARLY),
                _ => {
                    let timeout = wait;
                    wait = (wait + POLL_MIN).min(POLL_MAX);
                    timeout
                }
            };
            match self.outcomes.recv_timeout(timeout) {
                Ok(outcome) => return Ok(Event::Local(outcome)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Other("mpi: this rank's worker threads stopped".into()));
                }
            }
        }
    }
}

/// What a rank's main thread waited for: a chunk its threads finished, or a message.
enum Event {
    Local(ChunkOutcome),
    Message(Vec<u8>, Status),
}

fn next_local_task(queue: &(Mutex<LocalQueue>, Condvar)) -> Option<ChunkTask> {
    let mut q = queue.0.lock().ok()?;
    loop {
        if let Some(task) = q.tasks.pop_front() {
            q.busy += 1;
            return Some(task);
        }
        if q.stop {
            return None;
        }
        q = queue.1.wait(q).ok()?;
    }
}

/// Rank 0's pool. Chunks queue on rank 0, whose threads take them in order;
/// a remote rank with a free thread gets a queued chunk no local thread is
/// about to start, and gets the next one as soon as it answers, before its
/// answer is decoded.
struct MpiPool<'a> {
    world: &'a SimpleCommunicator,
    local: LocalWorkers,
    /// Threads per rank.
    threads: usize,
    /// Free threads of each rank (index = rank; rank 0's own entry is unused).
    free: Vec<usize>,
    /// When each rank's chunks in flight were sent, oldest first.
    sent: Vec<VecDeque<Instant>>,
    /// Each rank's recent time from sending a chunk to taking its answer.
    turnaround: Vec<Option<Duration>>,
    capacity: usize,
    /// Chunks finished by each rank in this job.
    per_rank: Vec<u64>,
}

impl Pool for MpiPool<'_> {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn submit(&mut self, task: ChunkTask) -> Result<()> {
        self.local.push(task);
        self.feed_remote(1)
    }

    fn recv(&mut self) -> Result<ChunkOutcome> {
        match self.local.next_event(&self.world.any_process(), self.due())? {
            Event::Local(outcome) => {
                self.per_rank[0] += 1;
                Ok(outcome)
            }
            Event::Message(bytes, status) => {
                let rank = status.source_rank();
                let index = usize::try_from(rank).unwrap_or(0);
                if status.tag() == TAG_ERROR {
                    // That rank runs nothing more in this job.
                    if let Some(free) = self.free.get_mut(index) {
                        *free = self.threads;
                    }
                    return Err(Error::Other(format!("mpi rank {rank}: {}", String::from_utf8_lossy(&bytes))));
                }
                if let Some(free) = self.free.get_mut(index) {
                    *free += 1;
                }
                if let (Some(sent), Some(turnaround)) = (self.sent.get_mut(index), self.turnaround.get_mut(index))
                    && let Some(sent) = sent.pop_front()
                {
                    let took = sent.elapsed();
                    *turnaround = Some(turnaround.map_or(took, |t| (t * 3 + took) / 4));
                }
                // The rank waits for its next chunk: send it before decoding this one.
                self.feed_remote(rank)?;
                if let Some(n) = self.per_rank.get_mut(index) {
                    *n += 1;
                }
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Other(format!("mpi rank {rank}: undecodable result: {e}")))
            }
        }
    }
}

impl MpiPool<'_> {
    /// When the first answer from a remote rank is due: [`DUE_FRACTION`] of
    /// that rank's recent turnaround after the chunk was sent (unknown before
    /// a rank's first answer).
    fn due(&self) -> Option<Instant> {
        let mut due = None;
        for (sent, turnaround) in self.sent.iter().zip(&self.turnaround) {
            let Some(&sent) = sent.front() else { continue };
            let at = sent + turnaround.as_ref()?.mul_f64(DUE_FRACTION);
            due = Some(due.map_or(at, |d: Instant| d.min(at)));
        }
        due
    }

    /// Gives free remote threads, starting with rank `first`'s, the queued
    /// chunks that no local thread is about to take.
    fn feed_remote(&mut self, first: i32) -> Result<()> {
        let size = self.world.size();
        for rank in (first..size).chain(1..first) {
            let index = usize::try_from(rank).unwrap_or(0);
            while self.free.get(index).is_some_and(|&f| f > 0) {
                let Some(task) = self.local.spare() else { return Ok(()) };
                send_json(&self.world.process_at_rank(rank), &task, TAG_TASK)?;
                self.free[index] -= 1;
                self.sent[index].push_back(Instant::now());
            }
        }
        Ok(())
    }

    /// Waits for (and drops) the answers to chunks still running on remote
    /// ranks, so that none arrives in a later job.
    fn drain(&mut self) {
        let source = self.world.any_process();
        while self.free.iter().skip(1).any(|&f| f < self.threads) {
            let (_, status) = match self.local.next_event(&source, None) {
                Ok(Event::Message(bytes, status)) => (bytes, status),
                // Local threads are stopped; only remote answers remain.
                Ok(Event::Local(_)) | Err(_) => {
                    std::thread::sleep(POLL_MIN);
                    continue;
                }
            };
            if let Some(free) = usize::try_from(status.source_rank()).ok().and_then(|r| self.free.get_mut(r)) {
                *free = if status.tag() == TAG_ERROR { self.threads } else { (*free + 1).min(self.threads) };
            }
        }
    }
}

/// Sends `value` as JSON with `tag` (chunks, results).
fn send_json(to: &impl Destination, value: &impl serde::Serialize, tag: i32) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Other(format!("mpi: cannot encode a message: {e}")))?;
    to.send_with_tag(&bytes[..], tag);
    Ok(())
}

/// A worker rank's loop: jobs, chunks, shutdown.
fn serve(world: &SimpleCommunicator) -> Result<()> {
    let root = world.process_at_rank(0);
    loop {
        let (bytes, status) = root.receive_vec::<u8>();
        match status.tag() {
            TAG_SHUTDOWN => return Ok(()),
            TAG_JOB => {
                let parsed: std::result::Result<(JobSpec, usize), _> = serde_json::from_slice(&bytes);
                match parsed.map_err(|e| Error::Other(format!("undecodable job: {e}"))).and_then(|(spec, threads)| {
                    let op = build_job_op(&spec)?;
                    Ok((spec, op, threads))
                }) {
                    Ok((spec, op, threads)) => serve_job(world, &spec, op.as_ref(), threads)?,
                    Err(e) => {
                        root.send_with_tag(e.to_string().as_bytes(), TAG_ERROR);
                        wait_end_job(world);
                    }
                }
            }
            other => return Err(Error::Other(format!("unexpected message tag {other} between jobs"))),
        }
    }
}

/// Rebuilds the job's op from the registry and checks the version matches.
fn build_job_op(spec: &JobSpec) -> Result<Box<dyn Operation>> {
    let op = build_op(&spec.op, spec.args.clone())?;
    if op.info().version != spec.op_version {
        return Err(Error::Other(format!(
            "op {} is version {} on this rank but {} on rank 0: run the same binary on every rank",
            spec.op,
            op.info().version,
            spec.op_version
        )));
    }
    Ok(op)
}

fn wait_end_job(world: &SimpleCommunicator) {
    loop {
        let (_, status) = world.process_at_rank(0).receive_vec::<u8>();
        if status.tag() == TAG_END_JOB || status.tag() == TAG_SHUTDOWN {
            return;
        }
    }
}

/// Runs one job's chunks on `threads` threads until rank 0 ends the job.
fn serve_job(world: &SimpleCommunicator, spec: &JobSpec, op: &dyn Operation, threads: usize) -> Result<()> {
    let rank = usize::try_from(world.rank()).unwrap_or(0);
    let root = world.process_at_rank(0);
    if threads == 1 {
        // One thread: block on MPI and compute in this thread, so nothing polls.
        let mut ctx = WorkerContext::new(rank, spec.seed, spec.op.clone());
        loop {
            let (bytes, status) = root.receive_vec::<u8>();
            match job_message(&bytes, status.tag())? {
                Some(task) => send_json(&root, &execute_chunk(op, &mut ctx, task), TAG_OUTCOME)?,
                None => return Ok(()),
            }
        }
    }
    let job = Job { spec, op, initializer: None, encoder: None };
    std::thread::scope(|scope| {
        let local = LocalWorkers::start(scope, &job, rank * threads, threads)?;
        // Only this thread talks MPI (Threading::Serialized).
        let result = loop {
            match local.next_event(&root, None) {
                Ok(Event::Local(outcome)) => send_json(&root, &outcome, TAG_OUTCOME)?,
                Ok(Event::Message(bytes, status)) => match job_message(&bytes, status.tag()) {
                    Ok(Some(task)) => local.push(task),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                },
                Err(e) => break Err(e),
            }
        };
        local.stop();
        result
    })
}

/// A message from rank 0 during a job: a chunk, or `None` when the job ends.
fn job_message(bytes: &[u8], tag: i32) -> Result<Option<ChunkTask>> {
    match tag {
        TAG_TASK => {
            serde_json::from_slice(bytes).map(Some).map_err(|e| Error::Other(format!("undecodable chunk: {e}")))
        }
        TAG_END_JOB => Ok(None),
        TAG_SHUTDOWN => Err(Error::Other("shut down in the middle of a job".into())),
        other => Err(Error::Other(format!("unexpected message tag {other} in a job"))),
    }
}
