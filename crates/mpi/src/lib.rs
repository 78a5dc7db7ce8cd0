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
use mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use mpi::topology::{Communicator, SimpleCommunicator};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::Duration;

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
    ["AUTOPARA_MPI", "WFL_MPIPOOL"].iter().any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0"))
}

/// Initializes MPI. On rank 0 returns the guard (hold it until the end of
/// `main`) and, when [`requested`], installs the MPI backend as the process
/// default for every executor call. On other ranks serves work until rank 0
/// is done, then exits the process with status 0 (or 1 if serving failed).
pub fn init() -> MpiGuard {
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
            let local = LocalWorkers::start(scope, job, self.threads)?;
            let mut pool = MpiPool {
                world: &world,
                local,
                credits: (1..world.size()).flat_map(|r| std::iter::repeat_n(r, self.threads)).collect(),
                capacity: world_size() * self.threads * 2,
                per_rank: vec![0; world_size()],
            };
            let r = driver(&mut pool);
            pool.local.stop();
            if std::env::var("AUTOPARA_PROGRESS").map_or(true, |v| v.trim() != "0") {
                let counts: Vec<String> = pool.per_rank.iter().enumerate().map(|(r, n)| format!("{r}: {n}")).collect();
                eprintln!("autopara: mpi: chunks per rank: {}", counts.join(", "));
            }
            r
        });
        for rank in 1..world.size() {
            world.process_at_rank(rank).send_with_tag(&[0u8][..], TAG_END_JOB);
        }
        result
    }
}

/// Rank 0's own worker threads, fed from a shared queue.
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
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        job: &'scope Job<'_>,
        threads: usize,
    ) -> Result<Self> {
        let queue = Arc::new((Mutex::new(LocalQueue::default()), Condvar::new()));
        let (tx, outcomes) = mpsc::channel();
        for t in 0..threads {
            let mut ctx = job.worker_context(t)?;
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

    fn idle(&self) -> bool {
        self.queue.0.lock().is_ok_and(|q| q.busy + q.tasks.len() < self.threads)
    }

    fn push(&self, task: ChunkTask) {
        if let Ok(mut q) = self.queue.0.lock() {
            q.tasks.push_back(task);
        }
        self.queue.1.notify_one();
    }

    fn stop(&self) {
        if let Ok(mut q) = self.queue.0.lock() {
            q.stop = true;
        }
        self.queue.1.notify_all();
    }
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

/// Rank 0's pool: remote ranks get chunks while they have a free thread
/// ("credits"), the rest queue for rank 0's own threads.
struct MpiPool<'a> {
    world: &'a SimpleCommunicator,
    local: LocalWorkers,
    /// One entry per free remote thread: the rank it belongs to.
    credits: VecDeque<i32>,
    capacity: usize,
    /// Chunks finished by each rank in this job.
    per_rank: Vec<u64>,
}

impl Pool for MpiPool<'_> {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn submit(&mut self, task: ChunkTask) -> Result<()> {
        // Prefer a free local thread, then a free remote one; else queue locally.
        if !self.local.idle()
            && let Some(rank) = self.credits.pop_front()
        {
            send_json(&self.world.process_at_rank(rank), &task, TAG_TASK)?;
            return Ok(());
        }
        self.local.push(task);
        Ok(())
    }

    fn recv(&mut self) -> Result<ChunkOutcome> {
        let mut idle_polls = 0u64;
        loop {
            if let Ok(outcome) = self.local.outcomes.try_recv() {
                self.per_rank[0] += 1;
                return Ok(outcome);
            }
            if let Some(probe) = self.world.any_process().immediate_matched_probe() {
                let (bytes, status) = probe.matched_receive_vec::<u8>();
                let rank = status.source_rank();
                if status.tag() == TAG_ERROR {
                    return Err(Error::Other(format!("mpi rank {rank}: {}", String::from_utf8_lossy(&bytes))));
                }
                let outcome: ChunkOutcome = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Other(format!("mpi rank {rank}: undecodable result: {e}")))?;
                if let Some(n) = usize::try_from(rank).ok().and_then(|r| self.per_rank.get_mut(r)) {
                    *n += 1;
                }
                self.credits.push_back(rank);
                self.feed_remote()?;
                return Ok(outcome);
            }
            // Back off (up to 1 ms) while nothing arrives, so polling does not
            // take a core from the workers.
            idle_polls += 1;
            std::thread::sleep(Duration::from_micros(50 * idle_polls.min(20)));
        }
    }
}

impl MpiPool<'_> {
    /// Moves locally queued chunks that no local thread has started to free remote threads.
    fn feed_remote(&mut self) -> Result<()> {
        while !self.credits.is_empty() {
            let task = match self.local.queue.0.lock() {
                Ok(mut q) if !q.tasks.is_empty() && q.busy == self.local.threads => q.tasks.pop_back(),
                _ => None,
            };
            let Some(task) = task else { return Ok(()) };
            let Some(rank) = self.credits.pop_front() else { return Ok(()) };
            send_json(&self.world.process_at_rank(rank), &task, TAG_TASK)?;
        }
        Ok(())
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
            match status.tag() {
                TAG_TASK => {
                    let task: ChunkTask =
                        serde_json::from_slice(&bytes).map_err(|e| Error::Other(format!("undecodable chunk: {e}")))?;
                    let outcome = execute_chunk(op, &mut ctx, task);
                    send_json(&root, &outcome, TAG_OUTCOME)?;
                }
                TAG_END_JOB => return Ok(()),
                TAG_SHUTDOWN => return Err(Error::Other("shut down in the middle of a job".into())),
                other => return Err(Error::Other(format!("unexpected message tag {other} in a job"))),
            }
        }
    }
    std::thread::scope(|scope| {
        let (task_tx, task_rx) = mpsc::channel::<ChunkTask>();
        let task_rx = Arc::new(Mutex::new(task_rx));
        let (out_tx, out_rx) = mpsc::channel::<ChunkOutcome>();
        for t in 0..threads {
            let (task_rx, out_tx) = (Arc::clone(&task_rx), out_tx.clone());
            let mut ctx = WorkerContext::new(rank * threads + t, spec.seed, spec.op.clone());
            scope.spawn(move || {
                loop {
                    let task = match task_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(task) = task else { return };
                    if out_tx.send(execute_chunk(op, &mut ctx, task)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(out_tx);
        // Only this thread talks MPI (Threading::Serialized).
        loop {
            while let Ok(outcome) = out_rx.try_recv() {
                send_json(&root, &outcome, TAG_OUTCOME)?;
            }
            if let Some(probe) = root.immediate_matched_probe() {
                let (bytes, status) = probe.matched_receive_vec::<u8>();
                match status.tag() {
                    TAG_TASK => {
                        let task: ChunkTask = serde_json::from_slice(&bytes)
                            .map_err(|e| Error::Other(format!("undecodable chunk: {e}")))?;
                        task_tx.send(task).map_err(|_| Error::Other("worker threads stopped".into()))?;
                    }
                    TAG_END_JOB => return Ok(()),
                    TAG_SHUTDOWN => return Err(Error::Other("shut down in the middle of a job".into())),
                    other => return Err(Error::Other(format!("unexpected message tag {other} in a job"))),
                }
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    })
}
