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
//! - **Parsing and formatting in the workers.** Items of files come as
//!   unparsed frames ([`crate::operation::Payload::Frame`]); in-process
//!   workers parse them, run the op and, for file outputs, encode the results
//!   with the sink's [`Encoder`] (tags and extxyz text), so the driver only
//!   cuts frames out of the input, and hashes and writes ready bytes in
//!   order. A frame that does not parse stops the run with its error where
//!   reading it in the driver would have. Pools that do not parse frames
//!   ([`Pool::parses_frames`](backend::Pool::parses_frames)) get them parsed
//!   by the driver.
//! - **Remote backends** receive the serializable [`JobSpec`] and
//!   [`ChunkTask`]s, rebuild the op by name and call [`execute_chunk`].

pub mod backend;
pub mod progress;
mod settings;

use crate::atoms::{Atoms, Value};
use crate::error::{Error, Result};
use crate::extxyz::RawFrame;
use crate::operation::{Item, ItemFailure, ItemResult, Location, Operation, WorkerContext};
use backend::Job;
use indexmap::IndexMap;
use progress::Progress;
use serde::{Deserialize, Serialize};
pub use settings::{Initializer, ResolvedAutopara};
use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

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
    /// One result per item (none when [`bad_frame`](Self::bad_frame) is set).
    pub results: Vec<ItemResult>,
    /// The items' configurations already encoded by the job's [`Encoder`]
    /// (in-process workers of runs into files); the results of encoded items
    /// are then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoded: Option<EncodedChunk>,
    /// The first item whose frame did not parse: the op did not run, and the
    /// run stops with this error when the chunk's turn to be written comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_frame: Option<FrameError>,
}

impl ChunkOutcome {
    /// The outcome of chunk `chunk`: one result per item, nothing encoded.
    pub fn new(chunk: u64, results: Vec<ItemResult>) -> ChunkOutcome {
        ChunkOutcome { chunk, results, encoded: None, bad_frame: None }
    }
}

/// A frame of the input that did not parse ([`Error::Parse`], serializable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameError {
    /// The input file.
    pub path: PathBuf,
    /// 0-based frame index in the file.
    pub frame: usize,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Error {
        Error::Parse { path: e.path, frame: e.frame, line: e.line, message: e.message }
    }
}

/// Serializes one configuration to an output (extxyz for runs).
pub type FrameWriter = fn(&mut dyn std::io::Write, &Atoms) -> std::io::Result<()>;

/// How a file sink wants configurations written, so that workers can do it
/// ([`ResultSink::encoder`]): the output's tags, then the frame writer.
#[derive(Clone)]
pub struct Encoder {
    tags: IndexMap<String, Value>,
    write_frame: FrameWriter,
}

impl Encoder {
    /// Configurations written with `write_frame`, untagged.
    pub fn new(write_frame: FrameWriter) -> Encoder {
        Encoder { tags: IndexMap::new(), write_frame }
    }

    /// The same encoder, adding `tags` to every configuration first.
    pub fn with_tags(mut self, tags: &IndexMap<String, Value>) -> Encoder {
        for (k, v) in tags {
            self.tags.insert(k.clone(), v.clone());
        }
        self
    }

    /// Tags `frames` and appends their encoding to `out`; on an error `out`
    /// is left as it was (the sink's own writer then reports the error).
    fn encode(&self, frames: &mut [Atoms], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        add_tags(frames, &self.tags);
        for at in frames.iter() {
            if (self.write_frame)(out, at).is_err() {
                out.truncate(start);
                return false;
            }
        }
        true
    }
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder").field("tags", &self.tags).finish_non_exhaustive()
    }
}

/// Adds `tags` to the info of every configuration of `frames` (replacing
/// entries of the same name): the one place where output tags are applied.
pub fn add_tags(frames: &mut [Atoms], tags: &IndexMap<String, Value>) {
    for at in frames {
        for (k, v) in tags {
            at.info.insert(k.clone(), v.clone());
        }
    }
}

/// A chunk's configurations encoded by a worker ([`ChunkOutcome::encoded`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EncodedChunk {
    /// The encoded items' bytes, one after the other.
    pub bytes: Vec<u8>,
    /// Per item: the end of its bytes and its number of configurations, or
    /// `None` when it was not encoded (a failure, or configurations the
    /// encoder refused: its result holds them).
    pub items: Vec<Option<(usize, u64)>>,
}

/// Encodes the successful results of a chunk with `encoder` into `bytes`
/// (emptied first: a buffer of an earlier chunk, so that its room is reused),
/// leaving the results empty.
fn encode_results(encoder: &Encoder, results: &mut [ItemResult], mut bytes: Vec<u8>) -> EncodedChunk {
    bytes.clear();
    let mut chunk = EncodedChunk { bytes, items: Vec::with_capacity(results.len()) };
    for result in results {
        let encoded = match result {
            Ok(frames) => encoder.encode(frames, &mut chunk.bytes).then(|| {
                let n = frames.len() as u64;
                // Freed here, by the thread that made them: the driver freeing
                // them would wait on this thread's allocator lock.
                *frames = Vec::new();
                (chunk.bytes.len(), n)
            }),
            Err(_) => None,
        };
        chunk.items.push(encoded);
    }
    chunk
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
    /// How workers may encode this sink's configurations ahead of
    /// [`write_encoded`](Self::write_encoded); `None` (the default) sends
    /// configurations to [`write_item`](Self::write_item).
    fn encoder(&self) -> Option<Encoder> {
        None
    }
    /// The configurations of an item, `frames` of them, as encoded by
    /// [`encoder`](Self::encoder)'s encoder (tags included).
    fn write_encoded(&mut self, index: u64, location: &Location, bytes: &[u8], frames: u64) -> Result<()> {
        let _ = (location, bytes, frames);
        Err(Error::Other(format!("executor: item {index} was encoded for a sink that takes configurations")))
    }
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
/// backend's workers call. Unparsed frames are parsed first.
pub fn execute_chunk(op: &dyn Operation, ctx: &mut WorkerContext, mut task: ChunkTask) -> ChunkOutcome {
    run_items(op, None, ctx, task.chunk, &mut task.items, Vec::new(), &mut Vec::new())
}

/// [`execute_chunk`] on a reused item buffer (in-process backends), encoding
/// the results with `encoder` when there is one, into `bytes` (a spent
/// buffer handed back by [`Pool::recycle_bytes`](backend::Pool::recycle_bytes), or a new one). The texts
/// of parsed frames go to `texts`, for the thread that read them to free.
fn run_items(
    op: &dyn Operation,
    encoder: Option<&Encoder>,
    ctx: &mut WorkerContext,
    chunk: u64,
    items: &mut [Item],
    bytes: Vec<u8>,
    texts: &mut Vec<RawFrame>,
) -> ChunkOutcome {
    for item in items.iter_mut() {
        match item.parse_frame_keeping_text() {
            Ok(text) => texts.extend(text),
            Err(e) => {
                return ChunkOutcome { bad_frame: Some(frame_error(e, item)), ..ChunkOutcome::new(chunk, Vec::new()) };
            }
        }
    }
    let mut results = execute_items(op, ctx, items);
    let encoded = encoder.map(|e| encode_results(e, &mut results, bytes));
    ChunkOutcome { chunk, results, encoded, bad_frame: None }
}

/// A parse error of `item`'s frame as a [`FrameError`].
fn frame_error(e: Error, item: &Item) -> FrameError {
    match e {
        Error::Parse { path, frame, line, message } => FrameError { path, frame, line, message },
        other => FrameError {
            path: PathBuf::new(),
            frame: item.location.path.first().copied().unwrap_or_default(),
            line: 0,
            message: other.to_string(),
        },
    }
}

/// Runs the op on parsed items, isolating failures per item.
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
    let encoder = sink.encoder();
    let job = Job { spec: &spec, op, initializer: settings.initializer.as_ref(), encoder: encoder.as_ref() };
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
        let mut finished: VecDeque<Option<ChunkOutcome>> = VecDeque::new();
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
                let parse_here = !pool.parses_frames();
                while chunk.len() < chunk_size {
                    match items.next() {
                        Some(item) => {
                            let mut item = item?;
                            if parse_here {
                                item.parse_frame()?;
                            }
                            chunk.push(item);
                        }
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
                *place = Some(outcome);
            }
            while let Some(Some(done)) = finished.front_mut().map(Option::take) {
                finished.pop_front();
                let mut meta = pending.pop_front().ok_or_else(|| {
                    Error::Other(format!("executor: chunk {next_write} finished but was never submitted"))
                })?;
                let n = meta.len() as u64;
                if let Some(e) = done.bad_frame {
                    // As if the driver had met it while reading: this chunk is not written.
                    return Err(e.into());
                }
                if done.results.len() != meta.len() {
                    return Err(Error::Other(format!(
                        "executor: chunk {next_write} came back with {} results for {n} items",
                        done.results.len()
                    )));
                }
                let spent = write_chunk(op, &meta, &mut location, done, sink, settings.skip_failed, &mut stats)?;
                if let Some(bytes) = spent {
                    pool.recycle_bytes(bytes);
                }
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
/// Returns the buffer of the chunk's encoded bytes, if it had one, for reuse.
fn write_chunk(
    op: &dyn Operation,
    meta: &ChunkMeta,
    location: &mut Location,
    outcome: ChunkOutcome,
    sink: &mut dyn ResultSink,
    skip_failed: bool,
    stats: &mut RunStats,
) -> Result<Option<Vec<u8>>> {
    let ChunkOutcome { results, encoded, .. } = outcome;
    let mut next_index = None;
    let had_bytes = encoded.is_some();
    let (bytes, encoded) = encoded.map(|e| (e.bytes, e.items)).unwrap_or_default();
    let mut start = 0;
    for (k, result) in results.into_iter().enumerate() {
        let Some(index) = meta.locate(k, location) else { break };
        let location = &*location;
        if let Some(&Some((end, frames))) = encoded.get(k) {
            let item_bytes = bytes.get(start..end).ok_or_else(|| {
                Error::Other(format!("executor: chunk came back with bad encoded bytes for item {index}"))
            })?;
            start = end;
            stats.frames += frames;
            sink.write_encoded(index, location, item_bytes, frames)?;
            stats.items += 1;
            next_index = Some(index + 1);
            continue;
        }
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
    if let Some(i) = next_index {
        sink.checkpoint(i, false)?;
    }
    Ok(had_bytes.then_some(bytes))
}

#[cfg(test)]
mod tests;
