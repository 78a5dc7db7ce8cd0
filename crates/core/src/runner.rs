//! The entry points: [`run`] an op over a [`ConfigSet`] into an
//! [`OutputSpec`], [`explain`] what a run would do, [`retry_failed`] items of
//! a complete output, and [`map`] a closure.
//!
//! ```
//! use autopara_core::{Atoms, AutoparaInfo, ConfigSet, OutputSpec, Value, runner};
//! use autopara_core::outputspec::Outputs;
//! let inputs = ConfigSet::from_atoms(vec![Atoms::new(vec![29], vec![[0.0; 3]]); 5]);
//! let info = AutoparaInfo { workers: Some(2), progress: Some(false), ..Default::default() };
//! let done = runner::map(&inputs, &OutputSpec::memory(), &info, |mut at: Atoms, _rng: &mut _| {
//!     at.info.insert("seen".into(), Value::Bool(true));
//!     at
//! })
//! .unwrap();
//! let Outputs::Memory(configs) = done.outputs else { unreachable!() };
//! assert_eq!(configs.len(), 5);
//! assert_eq!(done.stats.failed, 0);
//! ```

use crate::atoms::{ArrayData, Atoms, Value};
use crate::autopara_info::{AutoparaInfo, ResolvedAutopara};
use crate::cache::lock::OutputLock;
use crate::cache::{self, FailureEntry, FileSink, Plan, RunKey, RunRecord};
use crate::configset::ConfigSet;
use crate::error::{Error, Result};
use crate::executor::{FailureRecord, ResultSink, RunStats, execute};
use crate::map::{IntoItemResult, Map};
use crate::operation::{InputKind, Item, Location, OpInfo, Operation};
use crate::outputspec::{OutputSpec, Outputs};
use crate::rng::ItemRng;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The outputs were complete with the same key; nothing ran.
    Reused,
    /// An interrupted run was continued from this item index.
    Resumed {
        /// The first item computed by this run.
        from: u64,
    },
    /// Computed from the first item.
    Computed,
    /// Only the items recorded as failed were rerun and merged in.
    RetriedFailed {
        /// How many items were retried.
        retried: u64,
    },
}

/// The result of [`run`], [`retry_failed`] or [`map`].
#[derive(Debug)]
pub struct RunSummary {
    /// What happened.
    pub action: Action,
    /// Counts of this invocation (zero when reused).
    pub stats: RunStats,
    /// The configurations (memory) or files written.
    pub outputs: Outputs,
    /// For in-memory outputs: every failure. For files: see `records` and the
    /// `NAME.failures.jsonl` files; `stats.failures` has the first few.
    pub failures: Vec<FailureRecord>,
    /// The run records of file outputs (empty for memory).
    pub records: Vec<RunRecord>,
}

/// The inputs' content digest and, when it can be told, their number of items.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDigest {
    /// `blake3:<hex>`.
    pub digest: String,
    /// Items (frames of all files, in-memory configurations or counters);
    /// `None` when a file's frame headers are not plain counts.
    pub items: Option<u64>,
}

/// Counts extxyz frames from their atom-count lines while bytes stream by.
#[derive(Default)]
struct FrameCounter {
    frames: u64,
    /// Lines left in the current frame (comment and atoms).
    lines_left: u64,
    /// The atom-count line read so far.
    count_line: Vec<u8>,
    unreadable: bool,
}

impl FrameCounter {
    fn end_count_line(&mut self) {
        let text = String::from_utf8_lossy(&self.count_line);
        match text.trim().parse::<u64>() {
            Ok(n) => {
                self.frames += 1;
                self.lines_left = n.saturating_add(1);
            }
            Err(_) if text.trim().is_empty() => {}
            Err(_) => self.unreadable = true,
        }
        self.count_line.clear();
    }

    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                if self.lines_left > 0 {
                    self.lines_left -= 1;
                } else {
                    self.end_count_line();
                }
            } else if self.lines_left == 0 && self.count_line.len() < 64 {
                self.count_line.push(b);
            }
        }
    }

    fn finish(mut self) -> Option<u64> {
        if !self.count_line.is_empty() {
            self.end_count_line();
        }
        (!self.unreadable).then_some(self.frames)
    }
}

/// The digest of the inputs' content: the bytes of every input file (with
/// its length, so file boundaries count), the JSON of every in-memory item
/// (with its location), or the counter range. Chunking and workers play no
/// part. The pass over the files also counts their frames (for progress).
pub fn input_digest(inputs: &ConfigSet) -> Result<InputDigest> {
    use std::io::Read;
    let mut h = blake3::Hasher::new();
    let mut items = inputs.len_hint();
    if inputs.is_files() {
        h.update(b"files\0");
        let mut total = Some(0u64);
        let mut buf = vec![0u8; 1 << 20];
        for path in inputs.files() {
            let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
            let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
            h.update(&len.to_le_bytes());
            let mut counter = FrameCounter::default();
            loop {
                let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
                let Some(bytes) = buf.get(..n).filter(|b| !b.is_empty()) else { break };
                h.update(bytes);
                counter.feed(bytes);
            }
            total = total.zip(counter.finish()).map(|(a, b)| a + b);
        }
        items = total;
    } else if inputs.is_counters() {
        h.update(b"counters\0");
        h.update(&inputs.len_hint().unwrap_or(0).to_le_bytes());
    } else {
        h.update(b"memory\0");
        for item in inputs.items()? {
            let item = item?;
            let text = serde_json::to_vec(&(&item.location, &item.payload)).map_err(|e| Error::Other(e.to_string()))?;
            h.update(&(text.len() as u64).to_le_bytes());
            h.update(&text);
        }
    }
    Ok(InputDigest { digest: format!("blake3:{}", h.finalize().to_hex()), items })
}

/// An info value as plain JSON, for keys and messages.
fn value_json(v: &Value) -> serde_json::Value {
    use serde_json::json;
    match v {
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(x) => json!(x),
        Value::Str(s) => json!(s),
        Value::Array { shape, data } => {
            let data = match data {
                ArrayData::Bool(d) => json!(d),
                ArrayData::Int(d) => json!(d),
                ArrayData::Float(d) => json!(d),
                ArrayData::Str(d) => json!(d),
            };
            json!({ "shape": shape, "data": data })
        }
    }
}

/// The cache key of running `op` with `settings` on inputs with `digest` into `outputs`.
pub fn run_key(op: &dyn Operation, settings: &ResolvedAutopara, digest: &InputDigest, outputs: &OutputSpec) -> RunKey {
    let info = op.info();
    RunKey {
        op: info.name.to_string(),
        op_version: info.version,
        args: cache::canonical_json(&op.args()),
        seed: settings.seed,
        inputs: digest.digest.clone(),
        tags: outputs.tags.iter().map(|(k, v)| (k.clone(), value_json(v))).collect(),
        autopara_version: cache::AUTOPARA_VERSION.to_string(),
    }
}

/// Fails when the inputs are not the kind the op consumes (configurations or counters).
pub fn check_input_kind(info: &OpInfo, inputs: &ConfigSet) -> Result<()> {
    match (info.input_kind, inputs.is_counters()) {
        (InputKind::Configs, true) => {
            Err(Error::Input(format!("op {} works on configurations; give inputs, not a count", info.name)))
        }
        (InputKind::Counters, false) => Err(Error::Input(format!(
            "op {} generates configurations from counters; give a count (--count N)",
            info.name
        ))),
        _ => Ok(()),
    }
}

/// The most configurations an in-memory run reserves room for before it starts.
const MEMORY_RESERVE_MAX: u64 = 1 << 20;

/// Collects in-memory results in input order, with tags.
struct MemorySink<'a> {
    tags: &'a indexmap::IndexMap<String, Value>,
    configs: Vec<Atoms>,
    failures: Vec<FailureRecord>,
}

impl ResultSink for MemorySink<'_> {
    fn write_item(&mut self, _index: u64, _location: &Location, frames: Vec<Atoms>) -> Result<()> {
        for mut at in frames {
            for (k, v) in self.tags {
                at.info.insert(k.clone(), v.clone());
            }
            self.configs.push(at);
        }
        Ok(())
    }

    fn write_failure(&mut self, failure: &FailureRecord) -> Result<()> {
        self.failures.push(failure.clone());
        Ok(())
    }

    fn checkpoint(&mut self, _next_index: u64, _now: bool) -> Result<()> {
        Ok(())
    }
}

/// Locks every output (sorted, so two runs cannot deadlock).
fn lock_all(paths: &[PathBuf]) -> Result<Vec<OutputLock>> {
    let mut sorted: Vec<&PathBuf> = paths.iter().collect();
    sorted.sort();
    sorted.into_iter().map(|p| OutputLock::acquire(p)).collect()
}

fn names(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// One line after a file run: counts and where failures are.
fn report(op: &dyn Operation, stats: &RunStats, paths: &[PathBuf], records: &[RunRecord]) -> String {
    let mut line = format!("autopara: {}: {} into {}", op.info().name, stats.summary(), names(paths));
    let failed: Vec<String> = paths
        .iter()
        .zip(records)
        .filter(|(_, r)| r.failed > 0)
        .map(|(p, _)| cache::failures_path(p).display().to_string())
        .collect();
    if !failed.is_empty() {
        line += &format!("; failure records in {}", failed.join(", "));
    }
    line
}

/// Runs `op` over `inputs` into `outputs` as `info` says.
///
/// File outputs go through the cache (see [`crate::cache`]): a complete output
/// with the same key is reused ("reusing ..."), a stale or foreign one is
/// refused unless `outputs.overwrite`, an interrupted run resumes. In-memory
/// outputs are always computed. Failed items are recorded and summarised; with
/// `skip_failed = false` the first one stops the run with an error naming it,
/// and a rerun resumes from it.
pub fn run(op: &dyn Operation, inputs: &ConfigSet, outputs: &OutputSpec, info: &AutoparaInfo) -> Result<RunSummary> {
    check_input_kind(op.info(), inputs)?;
    let settings = info.resolve(op.info())?;
    let paths = outputs.resolve(inputs)?;
    if paths.is_empty() {
        // Most ops give one configuration per item: room for that up front
        // spares copying a growing list of configurations.
        let expected = inputs.len_hint().map_or(0, |n| n.min(MEMORY_RESERVE_MAX) as usize);
        let mut sink = MemorySink { tags: &outputs.tags, configs: Vec::with_capacity(expected), failures: Vec::new() };
        let stats = execute(op, inputs.items()?, &mut sink, &settings, inputs.len_hint())?;
        if sink.configs.len() < sink.configs.capacity() / 2 {
            sink.configs.shrink_to_fit();
        }
        if settings.progress && stats.failed > 0 {
            eprintln!("autopara: {}: {}", op.info().name, stats.summary());
        }
        return Ok(RunSummary {
            action: Action::Computed,
            stats,
            outputs: Outputs::Memory(sink.configs),
            failures: sink.failures,
            records: Vec::new(),
        });
    }
    let digest = input_digest(inputs)?;
    let key = run_key(op, &settings, &digest, outputs);
    let _locks = lock_all(&paths)?;
    let plan = cache::plan(&paths, &key, outputs.overwrite)?;
    let from = match &plan {
        Plan::Reuse(records) => {
            if settings.progress {
                eprintln!(
                    "autopara: reusing {} (op {} version {}, same key: arguments, seed and inputs unchanged); nothing \
                     to run",
                    names(&paths),
                    key.op,
                    key.op_version
                );
            }
            return Ok(RunSummary {
                action: Action::Reused,
                stats: RunStats::default(),
                outputs: Outputs::Files(paths),
                failures: Vec::new(),
                records: records.clone(),
            });
        }
        Plan::Resume(state) => state.next_index,
        Plan::Compute(_) => 0,
    };
    if settings.progress && from > 0 {
        eprintln!("autopara: {}", plan.describe(&paths));
    }
    let resume = match &plan {
        Plan::Resume(state) => Some(state),
        _ => None,
    };
    let route = |loc: &Location| outputs.output_index(loc).unwrap_or(usize::MAX);
    let write = |w: &mut dyn Write, at: &Atoms| crate::extxyz::write_frame_with(w, at, &outputs.tags);
    let mut sink = FileSink::start(&paths, &key, resume, &route, &write)?;
    let items = inputs.items()?.filter(|it| it.as_ref().map_or(true, |i| i.index >= from));
    let total = digest.items.map(|n| n.saturating_sub(from));
    let stats = execute(op, items, &mut sink, &settings, total)?;
    let records = sink.finish(&key)?;
    if settings.progress {
        eprintln!("{}", report(op, &stats, &paths, &records));
    }
    let action = if from > 0 { Action::Resumed { from } } else { Action::Computed };
    Ok(RunSummary { action, stats, outputs: Outputs::Files(paths), failures: Vec::new(), records })
}

/// What [`run`] would do, without doing it: `reuse: ...`, `resume: ...`,
/// `compute: ...`, or `refuse: <why and how to recompute>`.
pub fn explain(op: &dyn Operation, inputs: &ConfigSet, outputs: &OutputSpec, info: &AutoparaInfo) -> Result<String> {
    check_input_kind(op.info(), inputs)?;
    let settings = info.resolve(op.info())?;
    let paths = outputs.resolve(inputs)?;
    if paths.is_empty() {
        return Ok("compute: in-memory outputs are not cached".into());
    }
    let digest = input_digest(inputs)?;
    let key = run_key(op, &settings, &digest, outputs);
    Ok(match cache::plan(&paths, &key, outputs.overwrite) {
        Ok(plan) => plan.describe(&paths),
        Err(Error::Cache(why)) => format!("refuse: {why}"),
        Err(e) => return Err(e),
    })
}

/// Reruns only the items recorded as failed in the complete file outputs of
/// an earlier run of `op` on the same inputs, and merges their results in
/// input order, keeping every other item's result. The op's arguments or
/// version may differ (that is usually the fix); the record's key becomes this
/// run's key and the failure records list what still fails.
pub fn retry_failed(
    op: &dyn Operation,
    inputs: &ConfigSet,
    outputs: &OutputSpec,
    info: &AutoparaInfo,
) -> Result<RunSummary> {
    check_input_kind(op.info(), inputs)?;
    let settings = info.resolve(op.info())?;
    let paths = outputs.resolve(inputs)?;
    if paths.is_empty() {
        return Err(Error::Output(
            "--retry-failed needs file outputs (in-memory outputs keep no failure records)".into(),
        ));
    }
    let digest = input_digest(inputs)?;
    let key = run_key(op, &settings, &digest, outputs);
    let _locks = lock_all(&paths)?;
    let mut old_records = Vec::new();
    let mut failures: Vec<(usize, FailureEntry)> = Vec::new();
    let mut changes = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let record = cache::read_record(path)?.filter(|_| path.exists()).ok_or_else(|| {
            Error::Cache(format!(
                "--retry-failed: {} is not a complete autopara output; run without it first",
                path.display()
            ))
        })?;
        let mut same_run = record.key.clone();
        (same_run.args, same_run.op_version, same_run.seed, same_run.autopara_version) =
            (key.args.clone(), key.op_version, key.seed, key.autopara_version.clone());
        let fixed = key.changes_from(&same_run);
        if !fixed.is_empty() {
            return Err(Error::Cache(format!(
                "--retry-failed: {} was written by a different run ({}); only the op's arguments, version and seed \
                 may change",
                path.display(),
                fixed.join("; ")
            )));
        }
        if std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len() != record.bytes
            || cache::file_digest(path)? != record.digest
        {
            return Err(Error::Cache(format!(
                "--retry-failed: {} was modified after autopara wrote it; rerun with --overwrite",
                path.display()
            )));
        }
        changes.extend(key.changes_from(&record.key));
        failures.extend(cache::read_failures(path)?.into_iter().map(|f| (i, f)));
        old_records.push(record);
    }
    if failures.is_empty() {
        if settings.progress {
            eprintln!("autopara: --retry-failed: {} has no failed items; nothing to run", names(&paths));
        }
        return Ok(RunSummary {
            action: Action::RetriedFailed { retried: 0 },
            stats: RunStats::default(),
            outputs: Outputs::Files(paths),
            failures: Vec::new(),
            records: old_records,
        });
    }
    failures.sort_by_key(|(_, f)| f.index);
    if settings.progress {
        let with = if changes.is_empty() { String::new() } else { format!(" with {}", changes.join("; ")) };
        eprintln!("autopara: --retry-failed: rerunning {} failed items of {}{with}", failures.len(), names(&paths));
    }
    let offsets: BTreeMap<u64, (usize, u64)> = failures.iter().map(|(o, f)| (f.index, (*o, f.offset))).collect();
    let route = |loc: &Location| outputs.output_index(loc).unwrap_or(usize::MAX);
    let write = |w: &mut dyn Write, at: &Atoms| crate::extxyz::write_frame_with(w, at, &outputs.tags);
    let mut old_files = Vec::new();
    for p in &paths {
        old_files.push((BufReader::new(File::open(p).map_err(|e| Error::io(p, e))?), 0u64));
    }
    let mut merge =
        MergeSink { inner: FileSink::start_merge(&paths, &key, &route, &write)?, offsets: &offsets, old: old_files };
    let items =
        inputs.items()?.filter(|it: &Result<Item>| it.as_ref().map_or(true, |i| offsets.contains_key(&i.index)));
    let stats = execute(op, items, &mut merge, &settings, Some(failures.len() as u64))?;
    let MergeSink { mut inner, old, .. } = merge;
    // The kept results after the last retried item, and the kept counts.
    for (i, ((mut reader, pos), record)) in old.into_iter().zip(&old_records).enumerate() {
        inner.append_kept(i, &mut reader, record.bytes - pos, record.items - record.failed, record.configs)?;
    }
    let records = inner.finish(&key)?;
    if settings.progress {
        eprintln!("{}", report(op, &stats, &paths, &records));
    }
    Ok(RunSummary {
        action: Action::RetriedFailed { retried: failures.len() as u64 },
        stats,
        outputs: Outputs::Files(paths),
        failures: Vec::new(),
        records,
    })
}

/// Writes retried items between the kept bytes of the old outputs.
struct MergeSink<'a, 'b> {
    inner: FileSink<'b>,
    /// Item index → (output, byte offset of its place in the old output).
    offsets: &'a BTreeMap<u64, (usize, u64)>,
    /// Per output: the old file and how far it has been copied.
    old: Vec<(BufReader<File>, u64)>,
}

impl MergeSink<'_, '_> {
    /// Copies the old output up to the place of item `index`.
    fn catch_up(&mut self, index: u64) -> Result<()> {
        let (out, offset) = *self
            .offsets
            .get(&index)
            .ok_or_else(|| Error::Cache(format!("item {index} was retried but is not in the failure records")))?;
        let (reader, pos) =
            self.old.get_mut(out).ok_or_else(|| Error::Cache(format!("failure record names output {out}")))?;
        let len = offset.checked_sub(*pos).ok_or_else(|| Error::Cache("failure records out of order".into()))?;
        self.inner.append_kept(out, reader, len, 0, 0)?;
        *pos = offset;
        Ok(())
    }
}

impl ResultSink for MergeSink<'_, '_> {
    fn write_item(&mut self, index: u64, location: &Location, frames: Vec<Atoms>) -> Result<()> {
        self.catch_up(index)?;
        self.inner.write_item(index, location, frames)
    }

    fn write_failure(&mut self, failure: &FailureRecord) -> Result<()> {
        self.catch_up(failure.index)?;
        self.inner.write_failure(failure)
    }

    fn checkpoint(&mut self, next_index: u64, now: bool) -> Result<()> {
        self.inner.checkpoint(next_index, now)
    }
}

/// Applies `f` to every configuration of `inputs` (see [`crate::map`]): on
/// threads per `info`, results into `outputs` in input order. File outputs are
/// cached under the closure's type name; use [`run`] with
/// [`Map::key`](crate::map::Map::key) to add a version you bump when the closure changes.
pub fn map<F, R>(inputs: &ConfigSet, outputs: &OutputSpec, info: &AutoparaInfo, f: F) -> Result<RunSummary>
where
    F: Fn(Atoms, &mut ItemRng) -> R + Send + Sync,
    R: IntoItemResult,
{
    run(&Map::new(f), inputs, outputs, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_digest_counts_frames_and_ignores_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<Atoms> = (1..=4).map(|n| Atoms::new(vec![1; n], vec![[0.0; 3]; n])).collect();
        let (a, b) = (dir.path().join("a.xyz"), dir.path().join("b.xyz"));
        crate::extxyz::write_file(&a, &frames).unwrap();
        crate::extxyz::write_file(&b, &frames[..1]).unwrap();
        let both = input_digest(&ConfigSet::from_files(vec![a.clone(), b.clone()])).unwrap();
        assert_eq!(both.items, Some(5));
        let moved = dir.path().join("moved.xyz");
        std::fs::copy(&a, &moved).unwrap();
        let one = input_digest(&ConfigSet::from_files(vec![a.clone()])).unwrap();
        assert_eq!(one, input_digest(&ConfigSet::from_files(vec![moved])).unwrap());
        assert_ne!(one.digest, both.digest);
        std::fs::write(&b, "not a count\nx\n").unwrap();
        assert_eq!(input_digest(&ConfigSet::from_files(vec![b])).unwrap().items, None);
        let mem = input_digest(&ConfigSet::from_atoms(frames.clone())).unwrap();
        assert_eq!(mem.items, Some(4));
        assert_ne!(mem.digest, input_digest(&ConfigSet::from_atoms(frames[..3].to_vec())).unwrap().digest);
        assert_eq!(input_digest(&ConfigSet::counters(7)).unwrap().items, Some(7));
    }
}
