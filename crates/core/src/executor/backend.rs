//! The backend seam: where chunks run. [`SerialBackend`] runs them in the
//! calling thread, [`ThreadsBackend`] on a pool of worker threads; the MPI and
//! Slurm backends implement the same trait elsewhere, shipping the
//! serializable [`JobSpec`] once and [`ChunkTask`]s to remote workers, which
//! rebuild the op from the registry and call [`execute_chunk`](super::execute_chunk).
//!
//! The driver (in [`crate::executor`]) owns input order, output order and
//! memory bounds; a backend only moves tasks to workers and outcomes back.

use super::{ChunkOutcome, ChunkTask, Encoder, Initializer, JobSpec, run_items};
use crate::error::{Error, Result};
use crate::extxyz::RawFrame;
use crate::operation::{Item, Operation, WorkerContext};
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// What a backend needs to run one op: the serializable description (for
/// remote workers) and, for in-process backends, the op itself.
pub struct Job<'a> {
    /// Op name, version, canonical arguments and seed.
    pub spec: &'a JobSpec,
    /// The op, already built from `spec` (in-process backends use it directly).
    pub op: &'a dyn Operation,
    /// Run once per worker before its first chunk.
    pub initializer: Option<&'a Initializer>,
    /// How in-process workers encode results for the sink (file outputs),
    /// so that the driver only writes bytes; `None` returns configurations.
    pub encoder: Option<&'a Encoder>,
}

impl Job<'_> {
    /// A fresh worker context for worker `worker`, with the initializer applied.
    pub fn worker_context(&self, worker: usize) -> Result<WorkerContext> {
        let mut ctx = WorkerContext::new(worker, self.spec.seed, self.spec.op.clone());
        if let Some(init) = self.initializer {
            init(&mut ctx)
                .map_err(|message| Error::Other(format!("initializer failed on worker {worker}: {message}")))?;
        }
        Ok(ctx)
    }
}

/// The driver's handle on running workers: submit tasks, receive outcomes (in
/// any order). The driver never has more than [`Pool::capacity`] chunks
/// submitted and not yet written.
pub trait Pool {
    /// How many chunks may be outstanding at once (sets the memory bound).
    fn capacity(&self) -> usize;
    /// Hands a chunk to a worker.
    fn submit(&mut self, task: ChunkTask) -> Result<()>;
    /// Waits for the next finished chunk. Only called while tasks are outstanding.
    fn recv(&mut self) -> Result<ChunkOutcome>;
    /// An emptied item buffer of an earlier chunk, for the driver to fill with
    /// the next one (in-process pools hand them back so that a chunk costs no
    /// allocation); `None` when there is none.
    fn spare_items(&mut self) -> Option<Vec<Item>> {
        None
    }
    /// Whether workers parse unparsed frames ([`crate::operation::Payload::Frame`])
    /// themselves, as [`execute_chunk`](super::execute_chunk) does; when not
    /// (the default), the driver parses them before submitting.
    fn parses_frames(&self) -> bool {
        false
    }
    /// Takes back the buffer of a written chunk's encoded bytes
    /// ([`ChunkOutcome::encoded`](super::ChunkOutcome::encoded)), for a worker
    /// to encode a later chunk into. In-process pools reuse it: encoding then
    /// grows no new buffer per chunk, and the buffer is not freed by another
    /// thread than the one that made it (which, with glibc's allocator, makes
    /// threads wait on each other's arena locks). The default drops it.
    fn recycle_bytes(&mut self, bytes: Vec<u8>) {
        drop(bytes);
    }
}

/// Where chunks run.
pub trait Backend: Send + Sync {
    /// Short name for the start line (`serial`, `threads`, `mpi`, `slurm`).
    fn name(&self) -> &str;
    /// Number of workers.
    fn workers(&self) -> usize;
    /// Starts workers for `job`, lets `driver` submit and collect chunks, and
    /// stops the workers when it returns (also on error).
    fn run(&self, job: &Job<'_>, driver: &mut dyn FnMut(&mut dyn Pool) -> Result<()>) -> Result<()>;
}

/// Runs chunks one at a time in the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct SerialBackend;

struct SerialPool<'a> {
    job: &'a Job<'a>,
    ctx: WorkerContext,
    done: Option<ChunkOutcome>,
    /// The item buffer of the last chunk, emptied, for reuse.
    spare: Option<Vec<Item>>,
    /// The encoded-bytes buffer of the last chunk written, for reuse.
    spare_bytes: Option<Vec<u8>>,
}

impl Pool for SerialPool<'_> {
    fn capacity(&self) -> usize {
        1
    }

    fn submit(&mut self, task: ChunkTask) -> Result<()> {
        let ChunkTask { chunk, mut items } = task;
        let bytes = self.spare_bytes.take().unwrap_or_default();
        let mut texts = Vec::new();
        let outcome = run_items(self.job.op, self.job.encoder, &mut self.ctx, chunk, &mut items, bytes, &mut texts);
        if self.done.replace(outcome).is_some() {
            return Err(Error::Other("serial backend: a chunk was submitted before the last was received".into()));
        }
        items.clear();
        self.spare = Some(items);
        Ok(())
    }

    fn recv(&mut self) -> Result<ChunkOutcome> {
        self.done.take().ok_or_else(|| Error::Other("serial backend: no chunk outstanding".into()))
    }

    fn spare_items(&mut self) -> Option<Vec<Item>> {
        self.spare.take()
    }

    fn recycle_bytes(&mut self, bytes: Vec<u8>) {
        self.spare_bytes = Some(bytes);
    }

    fn parses_frames(&self) -> bool {
        true
    }
}

impl Backend for SerialBackend {
    fn name(&self) -> &str {
        "serial"
    }

    fn workers(&self) -> usize {
        1
    }

    fn run(&self, job: &Job<'_>, driver: &mut dyn FnMut(&mut dyn Pool) -> Result<()>) -> Result<()> {
        let ctx = job.worker_context(0)?;
        let mut pool = SerialPool { job, ctx, done: None, spare: None, spare_bytes: None };
        driver(&mut pool)
    }
}

/// Runs chunks on a dedicated pool of worker threads, each with its own
/// [`WorkerContext`] (so calculators are built once per worker and reused).
#[derive(Debug, Clone, Copy)]
pub struct ThreadsBackend {
    workers: usize,
}

impl ThreadsBackend {
    /// A pool of `workers` threads (at least one).
    pub fn new(workers: usize) -> ThreadsBackend {
        ThreadsBackend { workers: workers.max(1) }
    }
}

/// Messages kept outstanding per worker: one running and one queued, so a
/// worker never waits for the driver, plus slack for one slow message.
const MESSAGES_PER_WORKER: usize = 3;

/// Chunks that take less than this are sent to workers several per message,
/// so that handing work between threads costs little next to the work.
const MESSAGE_WORK: Duration = Duration::from_micros(50);

/// Most chunks per message (reached only by chunks of a few microseconds).
const MAX_CHUNKS_PER_MESSAGE: usize = 64;

/// A worker's reply to one message.
struct Done {
    outcomes: Vec<ChunkOutcome>,
    /// The time the chunks took.
    took: Duration,
    /// The chunks' item buffers, emptied, for reuse.
    spare: Vec<Vec<Item>>,
    /// The texts of the frames parsed, for the driver, which read them, to free.
    texts: Vec<RawFrame>,
}

/// A worker's reply, or why it could not start.
type Reply = Result<Done>;

struct ThreadPool {
    tasks: Option<mpsc::Sender<Vec<ChunkTask>>>,
    outcomes: mpsc::Receiver<Reply>,
    workers: usize,
    /// Chunks submitted but not yet sent (the message being filled).
    batch: Vec<ChunkTask>,
    /// Chunks per message, adapted to the measured cost of a chunk.
    per_message: usize,
    /// Outcomes received but not yet handed to the driver.
    ready: VecDeque<ChunkOutcome>,
    /// Emptied item buffers returned by workers.
    spare: Vec<Vec<Item>>,
    /// Written chunks' encoded-bytes buffers, for workers to take (at most
    /// one per outstanding chunk).
    spare_bytes: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ThreadPool {
    fn send_batch(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.tasks
            .as_ref()
            .and_then(|t| t.send(batch).ok())
            .ok_or_else(|| Error::Other("threads backend: every worker has stopped".into()))
    }
}

impl Pool for ThreadPool {
    fn capacity(&self) -> usize {
        self.workers * MESSAGES_PER_WORKER * self.per_message
    }

    fn submit(&mut self, task: ChunkTask) -> Result<()> {
        self.batch.push(task);
        if self.batch.len() >= self.per_message { self.send_batch() } else { Ok(()) }
    }

    fn recv(&mut self) -> Result<ChunkOutcome> {
        loop {
            if let Some(outcome) = self.ready.pop_front() {
                return Ok(outcome);
            }
            self.send_batch()?;
            let Done { outcomes, took, spare, texts } = self
                .outcomes
                .recv()
                .map_err(|_| Error::Other("threads backend: every worker has stopped".into()))??;
            self.spare.extend(spare);
            drop(texts);
            let per_chunk = took / outcomes.len().max(1) as u32;
            self.per_message = if per_chunk.is_zero() {
                MAX_CHUNKS_PER_MESSAGE
            } else {
                (MESSAGE_WORK.as_nanos() / per_chunk.as_nanos()).clamp(1, MAX_CHUNKS_PER_MESSAGE as u128) as usize
            };
            self.ready.extend(outcomes);
        }
    }

    fn spare_items(&mut self) -> Option<Vec<Item>> {
        self.spare.pop()
    }

    fn recycle_bytes(&mut self, bytes: Vec<u8>) {
        if let Ok(mut spare) = self.spare_bytes.lock() {
            spare.push(bytes);
        }
    }

    fn parses_frames(&self) -> bool {
        true
    }
}

impl Backend for ThreadsBackend {
    fn name(&self) -> &str {
        "threads"
    }

    fn workers(&self) -> usize {
        self.workers
    }

    fn run(&self, job: &Job<'_>, driver: &mut dyn FnMut(&mut dyn Pool) -> Result<()>) -> Result<()> {
        let (task_tx, task_rx) = mpsc::channel::<Vec<ChunkTask>>();
        let task_rx = Arc::new(Mutex::new(task_rx));
        let (out_tx, out_rx) = mpsc::channel::<Reply>();
        let spare_bytes: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        // Set when the driver stops early, so workers drop queued chunks.
        let cancelled = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for worker in 0..self.workers {
                let task_rx = Arc::clone(&task_rx);
                let out_tx = out_tx.clone();
                let spare_bytes = Arc::clone(&spare_bytes);
                let cancelled = &cancelled;
                let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                    let mut ctx = match job.worker_context(worker) {
                        Ok(ctx) => ctx,
                        Err(e) => {
                            let _ = out_tx.send(Err(e));
                            return;
                        }
                    };
                    loop {
                        // The lock is held only while taking one message.
                        let next = match task_rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(tasks) = next else { return };
                        if cancelled.load(Ordering::Relaxed) {
                            continue;
                        }
                        let start = Instant::now();
                        let mut outcomes = Vec::with_capacity(tasks.len());
                        let mut spare = Vec::with_capacity(tasks.len());
                        let mut texts = Vec::new();
                        for ChunkTask { chunk, mut items } in tasks {
                            let bytes = spare_bytes.lock().ok().and_then(|mut b| b.pop()).unwrap_or_default();
                            outcomes.push(run_items(
                                job.op,
                                job.encoder,
                                &mut ctx,
                                chunk,
                                &mut items,
                                bytes,
                                &mut texts,
                            ));
                            items.clear();
                            spare.push(items);
                        }
                        if out_tx.send(Ok(Done { outcomes, took: start.elapsed(), spare, texts })).is_err() {
                            return;
                        }
                    }
                });
                if let Err(e) = spawned {
                    // Closing the task channel lets the workers started so far exit.
                    drop(task_tx);
                    return Err(Error::Other(format!(
                        "could not start worker {} of {}: {e}; ask for fewer workers",
                        worker + 1,
                        self.workers
                    )));
                }
            }
            drop(out_tx);
            let mut pool = ThreadPool {
                tasks: Some(task_tx),
                outcomes: out_rx,
                workers: self.workers,
                batch: Vec::new(),
                per_message: 1,
                ready: VecDeque::new(),
                spare: Vec::new(),
                spare_bytes,
            };
            let result = driver(&mut pool);
            if result.is_err() {
                cancelled.store(true, Ordering::Relaxed);
            }
            // Closing the task channel lets every worker finish and exit.
            pool.tasks = None;
            result
        })
    }
}

impl fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} backend ({} workers)", self.name(), self.workers())
    }
}
