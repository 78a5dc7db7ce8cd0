//! The executor: runs an [`Operation`] over a stream of items, chunk by chunk,
//! on a [`Backend`](backend::Backend), and hands results to a [`ResultSink`]
//! in input order.
//!
//! - **Order and memory.** Items are read lazily and grouped into chunks of
//!   `chunk_size`. At most [`Pool::capacity`](backend::Pool::capacity) chunks
//!   are in flight or waiting in the reorder buffer at once; the driver reads
//!   more input only when the oldest chunk has been written. For threads that
//!   is 3 messages per worker, a message holding one chunk, or up to 64 when
//!   chunks take only microseconds (so that thread hand-offs stay cheap).
//!   Memory is about workers x chunk x 3 items (x 64 for trivial chunks),
//!   whatever the input's length.
//! - **Reproducibility.** Each item's random stream depends on (seed, op
//!   name, global index) only ([`crate::rng`]), so results are bit-identical
//!   for any backend, worker count or chunk size.
//! - **Failures.** An item whose op returns an error or panics becomes a
//!   [`FailureRecord`]; the other items' results are kept. A panic in a chunk
//!   reruns that chunk's items one at a time to find the culprit (results are
//!   deterministic, so the rerun changes nothing). With `skip_failed = false`
//!   the run stops at the first failure in input order with
//!   [`Error::ItemFailed`], after the sink has received every earlier item.
//!   A [fatal](ItemFailure::fatal) failure (the op's calculator cannot be
//!   constructed) stops the run the same way, whatever `skip_failed` says.
//! - **Remote backends** receive the serializable [`JobSpec`] and
//!   [`ChunkTask`]s, rebuild the op by name and call [`execute_chunk`].

pub mod backend;
pub mod progress;
mod settings;

use crate::atoms::Atoms;
use crate::error::{Error, Result};
use crate::operation::{Item, ItemFailure, ItemResult, Location, Operation, WorkerContext};
use backend::Job;
use progress::Progress;
use serde::{Deserialize, Serialize};
pub use settings::{Initializer, ResolvedAutopara};
use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Most items a chunk's buffer reserves before they are read.
const RESERVE_MAX: usize = 1 << 12;

/// Everything a worker anywhere needs to rebuild the op: serializable, sent
/// once per worker by remote backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Registered op name.
    pub op: String,
    /// The op's version (a remote worker with a different build refuses the job).
    pub op_version: u32,
    /// Canonical arguments, as [`Operation::args`] returns them.
    pub args: serde_json::Value,
    /// Seed of the per-item random streams.
    pub seed: u64,
}

impl JobSpec {
    /// The spec of `op` run with `seed`.
    pub fn of(op: &dyn Operation, seed: u64) -> JobSpec {
        let info = op.info();
        JobSpec { op: info.name.to_string(), op_version: info.version, args: op.args(), seed }
    }
}

/// One chunk of items to process: serializable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkTask {
    /// Chunk number within the run (0, 1, ...), used to restore order.
    pub chunk: u64,
    /// The items, in input order.
    pub items: Vec<Item>,
}

/// The results of one chunk: one per item, in the chunk's order. Serializable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkOutcome {
    /// The chunk number of the task.
    pub chunk: u64,
    /// One result per item.
    pub results: Vec<ItemResult>,
}

/// A failed item: which, where, in which op, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Global index of the item in the inputs.
    pub index: u64,
    /// Where the item came from.
    pub location: Location,
    /// The op's name.
    pub op: String,
    /// The error or panic message (panics start with `panicked: `).
    pub message: String,
    /// Configurations written in the item's place although it failed
    /// ([`ItemFailure::frames`]); usually none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Atoms>,
}

/// Receives results in input order. File sinks make `checkpoint` durable (the
/// resume journal); memory sinks collect.
pub trait ResultSink {
    /// The frames produced for the item (possibly none).
    fn write_item(&mut self, index: u64, location: &Location, frames: Vec<Atoms>) -> Result<()>;
    /// A failed item (only when failures are skipped), with the configurations
    /// to write in its place, if any ([`FailureRecord::frames`]).
    fn write_failure(&mut self, failure: &FailureRecord) -> Result<()>;
    /// Every item with a global index below `next_index` has been passed to the
    /// sink. A file sink may defer recording it (to bound journal traffic)
    /// unless `now` is set, as it is when the run is about to stop.
    fn checkpoint(&mut self, next_index: u64, now: bool) -> Result<()>;
}

/// How many failure records a [`RunStats`] keeps for the summary (all of them
/// go to the sink).
pub const FAILURES_KEPT: usize = 20;

/// Counts from one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// Items processed (succeeded or failed).
    pub items: u64,
    /// Output configurations produced.
    pub frames: u64,
    /// Items that failed.
    pub failed: u64,
    /// The first [`FAILURES_KEPT`] failures, in input order.
    pub failures: Vec<FailureRecord>,
}

impl RunStats {
    /// One line: `1000 items, 1000 configs, 2 failed`.
    pub fn summary(&self) -> String {
        format!("{} items, {} configs written, {} failed", self.items, self.frames, self.failed)
    }
}

/// The text of a caught panic.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Calls the op on `items`, turning a panic into `Err(message)` and a wrong
/// result count into failures of every item.
fn call_op(
    op: &dyn Operation,
    items: &[Item],
    ctx: &mut WorkerContext,
) -> std::result::Result<Vec<ItemResult>, String> {
    match catch_unwind(AssertUnwindSafe(|| op.run_chunk(items, ctx))) {
        Ok(results) if results.len() == items.len() => Ok(results),
        Ok(results) => {
            let message = format!(
                "op {} returned {} results for a chunk of {} items (an op bug)",
                op.info().name,
                results.len(),
                items.len()
            );
            Ok(items.iter().map(|_| Err(ItemFailure::new(message.clone()))).collect())
        }
        Err(payload) => {
            // A panicking calculator may have left its buffers inconsistent.
            ctx.clear_state();
            Err(format!("panicked: {}", panic_message(payload.as_ref())))
        }
    }
}

/// Runs one chunk in a worker, isolating failures per item: the function every
/// backend's workers call.
pub fn execute_chunk(op: &dyn Operation, ctx: &mut WorkerContext, task: ChunkTask) -> ChunkOutcome {
    ChunkOutcome { chunk: task.chunk, results: execute_items(op, ctx, &task.items) }
}

/// [`execute_chunk`] on borrowed items (in-process backends reuse the buffer).
fn execute_items(op: &dyn Operation, ctx: &mut WorkerContext, items: &[Item]) -> Vec<ItemResult> {
    match call_op(op, items, ctx) {
        Ok(results) => results,
        Err(panic) if items.len() == 1 => vec![Err(ItemFailure::new(panic))],
        Err(_) => items
            .iter()
            .map(|item| match call_op(op, std::slice::from_ref(item), ctx) {
                Ok(mut one) => one.pop().unwrap_or_else(|| Err(ItemFailure::new("op returned no result"))),
                Err(panic) => Err(ItemFailure::new(panic)),
            })
            .collect(),
    }
}

/// The start line: op, version, backend, workers and chunk size.
pub fn start_line(op: &dyn Operation, settings: &ResolvedAutopara) -> String {
    let info = op.info();
    format!(
        "autopara: running op {} (version {}) on the {} backend with {} worker{}, chunk size {}, seed {}",
        info.name,
        info.version,
        settings.backend.name(),
        settings.backend.workers(),
        if settings.backend.workers() == 1 { "" } else { "s" },
        settings.chunk_size,
        settings.seed
    )
}

/// Runs `op` over `items` (in input order, each with its global index) and
/// passes results to `sink` in that order. `total`, when known, sizes the
/// progress bar. Prints the start line and progress unless `settings.progress`
/// is off.
pub fn execute(
    op: &dyn Operation,
    items: impl IntoIterator<Item = Result<Item>>,
    sink: &mut dyn ResultSink,
    settings: &ResolvedAutopara,
    total: Option<u64>,
) -> Result<RunStats> {
    let spec = JobSpec::of(op, settings.seed);
    let job = Job { spec: &spec, op, initializer: settings.initializer.as_ref() };
    if settings.progress {
        eprintln!("{}", start_line(op, settings));
    }
    let mut progress = Progress::new(settings.progress, op.info().name, total);
    let mut stats = RunStats::default();
    let mut items = items.into_iter();
    let chunk_size = settings.chunk_size.max(1);
    let result = settings.backend.run(&job, &mut |pool| {
        // Index and location of each item of every chunk not yet written, oldest first,
        // and emptied ones for reuse (remembering an item then allocates nothing).
        let mut pending: VecDeque<ChunkMeta> = VecDeque::new();
        let mut spare: Vec<ChunkMeta> = Vec::new();
        // The reorder buffer: slot `k` holds chunk `next_write + k` once it has finished.
        let mut finished: VecDeque<Option<Vec<ItemResult>>> = VecDeque::new();
        // The location handed to the sink, refilled for every item.
        let mut location = Location::default();
        let (mut next_submit, mut next_write) = (0u64, 0u64);
        let mut input_done = false;
        loop {
            while !input_done && next_submit - next_write < pool.capacity().max(1) as u64 {
                let mut chunk = pool.spare_items().unwrap_or_default();
                // Room for a chunk of ordinary size up front; a larger one grows
                // as its items are read (a --chunk-size of 10^18 reserves nothing huge).
                chunk.reserve(chunk_size.min(RESERVE_MAX));
                while chunk.len() < chunk_size {
                    match items.next() {
                        Some(item) => chunk.push(item?),
                        None => {
                            input_done = true;
                            break;
                        }
                    }
                }
                if chunk.is_empty() {
                    break;
                }
                let mut meta = spare.pop().unwrap_or_default();
                meta.record(&chunk);
                pending.push_back(meta);
                pool.submit(ChunkTask { chunk: next_submit, items: chunk })?;
                next_submit += 1;
            }
            if next_write == next_submit {
                return Ok(());
            }
            let outcome = pool.recv()?;
            let slot = outcome
                .chunk
                .checked_sub(next_write)
                .filter(|_| outcome.chunk < next_submit)
                .and_then(|k| usize::try_from(k).ok())
                .ok_or_else(|| {
                    Error::Other(format!("executor: chunk {} finished but is not outstanding", outcome.chunk))
                })?;
            if finished.len() <= slot {
                finished.resize_with(slot + 1, || None);
            }
            if let Some(place) = finished.get_mut(slot) {
                *place = Some(outcome.results);
            }
            while let Some(Some(results)) = finished.front_mut().map(Option::take) {
                finished.pop_front();
                let mut meta = pending.pop_front().ok_or_else(|| {
                    Error::Other(format!("executor: chunk {next_write} finished but was never submitted"))
                })?;
                let n = meta.len() as u64;
                if results.len() != meta.len() {
                    return Err(Error::Other(format!(
                        "executor: chunk {next_write} came back with {} results for {n} items",
                        results.len()
                    )));
                }
                write_chunk(op, &meta, &mut location, results, sink, settings.skip_failed, &mut stats)?;
                progress.advance(n);
                next_write += 1;
                meta.clear();
                spare.push(meta);
            }
        }
    });
    progress.finish();
    result.map(|()| stats)
}

/// The index and location of every item of one chunk, kept by the driver
/// until the chunk is written. Paths are stored flat, one buffer per chunk,
/// and the buffers are reused, so remembering an item costs no allocation.
#[derive(Debug, Default)]
struct ChunkMeta {
    /// Per item: global index, input file, end of its path in `paths`.
    items: Vec<(u64, Option<usize>, usize)>,
    /// Every item's location path, one after the other.
    paths: Vec<usize>,
}

impl ChunkMeta {
    /// Remembers the indices and locations of `items`.
    fn record(&mut self, items: &[Item]) {
        for item in items {
            self.paths.extend_from_slice(&item.location.path);
            self.items.push((item.index, item.location.file, self.paths.len()));
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn clear(&mut self) {
        self.items.clear();
        self.paths.clear();
    }

    /// The index of item `k`, with its location written into `location`.
    fn locate(&self, k: usize, location: &mut Location) -> Option<u64> {
        let &(index, file, end) = self.items.get(k)?;
        let start = k.checked_sub(1).and_then(|j| self.items.get(j)).map_or(0, |p| p.2);
        location.file = file;
        location.path.clear();
        location.path.extend_from_slice(self.paths.get(start..end).unwrap_or_default());
        Some(index)
    }
}

/// Passes one chunk's results to the sink in order, then checkpoints.
fn write_chunk(
    op: &dyn Operation,
    meta: &ChunkMeta,
    location: &mut Location,
    results: Vec<ItemResult>,
    sink: &mut dyn ResultSink,
    skip_failed: bool,
    stats: &mut RunStats,
) -> Result<()> {
    let mut next_index = None;
    for (k, result) in results.into_iter().enumerate() {
        let Some(index) = meta.locate(k, location) else { break };
        let location = &*location;
        match result {
            Ok(frames) => {
                stats.frames += frames.len() as u64;
                sink.write_item(index, location, frames)?;
            }
            Err(failure) if failure.fatal => {
                // Every item would fail alike: one error, not a record per item.
                sink.checkpoint(index, true)?;
                return Err(Error::Other(format!("op {}: {}", op.info().name, failure.message)));
            }
            Err(failure) if !skip_failed => {
                // Everything before this item is written; a rerun starts here.
                sink.checkpoint(index, true)?;
                return Err(Error::ItemFailed {
                    index,
                    location: location.to_string(),
                    op: op.info().name.to_string(),
                    message: failure.message,
                });
            }
            Err(failure) => {
                stats.frames += failure.frames.len() as u64;
                let mut record = FailureRecord {
                    index,
                    location: location.clone(),
                    op: op.info().name.to_string(),
                    message: failure.message,
                    frames: failure.frames,
                };
                sink.write_failure(&record)?;
                stats.failed += 1;
                if stats.failures.len() < FAILURES_KEPT {
                    record.frames = Vec::new();
                    stats.failures.push(record);
                }
            }
        }
        stats.items += 1;
        next_index = Some(index + 1);
    }
    match next_index {
        Some(i) => sink.checkpoint(i, false),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
