//! The entry points: [`run`] an op over a [`ConfigSet`] into an
//! [`OutputSpec`], [`explain`] what a run would do, [`retry_failed`] items of
//! a complete output, and [`map`] a closure. All three start from one
//! [`PreparedRun`] (settings, output paths, input digest, cache key), and
//! every output, in memory or in files, receives its configurations through
//! the executor's [`ResultSink`], where the output's tags are added.
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

use crate::atoms::{Atoms, Value};
use crate::autopara_info::AutoparaInfo;
use crate::cache::lock::OutputLock;
use crate::cache::{self, FailureEntry, FileSink, InputDigest, Plan, RunKey, RunRecord};
use crate::configset::ConfigSet;
use crate::error::{Error, Result};
use crate::executor::ResolvedAutopara;
use crate::executor::{Encoder, FailureRecord, ResultSink, RunStats, add_tags, execute};
use crate::map::{IntoItemResult, Map};
use crate::operation::{InputKind, Item, Location, OpInfo, Operation};
use crate::outputspec::{OutputSpec, Outputs};
use crate::rng::ItemRng;
use indexmap::IndexMap;
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

/// Adds the output's tags to every configuration on its way to a sink, for
/// memory and file outputs alike: here, or in the workers through its
/// [`encoder`](ResultSink::encoder) (both with [`add_tags`]).
struct Tagged<'t, 's> {
    tags: &'t IndexMap<String, Value>,
    sink: &'s mut dyn ResultSink,
}

impl ResultSink for Tagged<'_, '_> {
    fn write_item(&mut self, index: u64, location: &Location, mut frames: Vec<Atoms>) -> Result<()> {
        add_tags(&mut frames, self.tags);
        self.sink.write_item(index, location, frames)
    }

    fn write_failure(&mut self, failure: &FailureRecord) -> Result<()> {
        if self.tags.is_empty() || failure.frames.is_empty() {
            return self.sink.write_failure(failure);
        }
        let mut failure = failure.clone();
        add_tags(&mut failure.frames, self.tags);
        self.sink.write_failure(&failure)
    }

    fn checkpoint(&mut self, next_index: u64, now: bool) -> Result<()> {
        self.sink.checkpoint(next_index, now)
    }

    /// The inner sink's encoder, tagging first.
    fn encoder(&self) -> Option<Encoder> {
        self.sink.encoder().map(|e| e.with_tags(self.tags))
    }

    /// Encoded by [`Tagged::encoder`]: tagged already.
    fn write_encoded(&mut self, index: u64, location: &Location, bytes: &[u8], frames: u64) -> Result<()> {
        self.sink.write_encoded(index, location, bytes, frames)
    }
}

/// Collects in-memory results in input order.
struct MemorySink {
    configs: Vec<Atoms>,
    failures: Vec<FailureRecord>,
}

impl ResultSink for MemorySink {
    fn write_item(&mut self, _index: u64, _location: &Location, frames: Vec<Atoms>) -> Result<()> {
        self.configs.extend(frames);
        Ok(())
    }

    fn write_failure(&mut self, failure: &FailureRecord) -> Result<()> {
        let mut failure = failure.clone();
        let frames = std::mem::take(&mut failure.frames);
        self.write_item(failure.index, &Location::default(), frames)?;
        self.failures.push(failure);
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
        .map(|(p, _)| crate::sidecar::failures_path(p).display().to_string())
        .collect();
    if !failed.is_empty() {
        line += &format!("; failure records in {}", failed.join(", "));
    }
    line
}

/// The cache side of a run on file outputs.
#[derive(Debug)]
struct FileRun {
    paths: Vec<PathBuf>,
    digest: InputDigest,
    key: RunKey,
}

/// A run with every choice made, before anything is written: the op, the
/// resolved settings and, for file outputs, the output paths, the inputs'
/// digest and the cache key. [`run`], [`explain`] and [`retry_failed`] are
/// [`PreparedRun::new`] followed by [`execute`](PreparedRun::execute),
/// [`explain`](PreparedRun::explain) or [`retry_failed`](PreparedRun::retry_failed).
///
/// ```
/// use autopara_core::{Atoms, AutoparaInfo, ConfigSet, OutputSpec, map::Map, runner::PreparedRun};
/// let dir = tempfile::tempdir().unwrap();
/// let inputs = ConfigSet::from_atoms(vec![Atoms::new(vec![29], vec![[0.0; 3]]); 3]);
/// let output = OutputSpec::file(dir.path().join("out.xyz"));
/// let info = AutoparaInfo { workers: Some(1), progress: Some(false), ..Default::default() };
/// let op = Map::new(|at: Atoms, _rng: &mut _| at);
/// let run = PreparedRun::new(&op, &inputs, &output, &info).unwrap();
/// assert_eq!(run.key().unwrap().op, "map");
/// assert!(run.explain().unwrap().starts_with("compute:"));
/// run.execute().unwrap();
/// let again = PreparedRun::new(&op, &inputs, &output, &info).unwrap();
/// assert!(again.explain().unwrap().starts_with("reuse:"));
/// ```
pub struct PreparedRun<'a> {
    op: &'a dyn Operation,
    inputs: &'a ConfigSet,
    outputs: &'a OutputSpec,
    settings: ResolvedAutopara,
    overwrite: bool,
    /// `None` for in-memory outputs.
    files: Option<FileRun>,
}

impl<'a> PreparedRun<'a> {
    /// Checks that `inputs` suit `op`, resolves `info` and the output paths
    /// and, for file outputs, digests the inputs and builds the cache key.
    pub fn new(
        op: &'a dyn Operation,
        inputs: &'a ConfigSet,
        outputs: &'a OutputSpec,
        info: &AutoparaInfo,
    ) -> Result<PreparedRun<'a>> {
        check_input_kind(op.info(), inputs)?;
        let settings = info.resolve(op.info())?;
        let paths = outputs.resolve(inputs)?;
        let files = if paths.is_empty() {
            None
        } else {
            // The pass over the input uses two of the run's threads when it has
            // them; it counts frames only for a progress bar's total.
            let pass = cache::DigestPass { threads: settings.workers, count_items: settings.progress };
            let digest = cache::input_digest(inputs, pass)?;
            let key = RunKey::of(op, settings.seed, &digest, &outputs.tags);
            Some(FileRun { paths, digest, key })
        };
        Ok(PreparedRun { op, inputs, outputs, settings, overwrite: outputs.overwrite, files })
    }

    /// The resolved settings.
    pub fn settings(&self) -> &ResolvedAutopara {
        &self.settings
    }

    /// The output files (empty for in-memory outputs).
    pub fn paths(&self) -> &[PathBuf] {
        self.files.as_ref().map_or(&[], |f| &f.paths)
    }

    /// The cache key (`None` for in-memory outputs, which are not cached).
    pub fn key(&self) -> Option<&RunKey> {
        self.files.as_ref().map(|f| &f.key)
    }

    /// Replaces the output specification's `overwrite` switch (the key does not depend on it).
    pub fn set_overwrite(&mut self, overwrite: bool) {
        self.overwrite = overwrite;
    }

    /// What the cache would do with the outputs now (see [`cache::plan`]):
    /// an error when they are stale or foreign and `overwrite` is off.
    /// In-memory outputs are always computed.
    pub fn plan(&self) -> Result<Plan> {
        match &self.files {
            None => Ok(Plan::Compute("in-memory outputs are not cached".into())),
            Some(f) => cache::plan(&f.paths, &f.key, self.overwrite),
        }
    }

    /// What [`execute`](Self::execute) would do, without doing it: `reuse: ...`,
    /// `resume: ...`, `compute: ...`, or `refuse: <why and how to recompute>`.
    pub fn explain(&self) -> Result<String> {
        if self.files.is_none() {
            return Ok("compute: in-memory outputs are not cached".into());
        }
        Ok(match self.plan() {
            Ok(plan) => plan.describe(self.paths()),
            Err(Error::Cache(why)) => format!("refuse: {why}"),
            Err(e) => return Err(e),
        })
    }

    /// Runs the op (see [`run`]).
    pub fn execute(self) -> Result<RunSummary> {
        let Some(files) = &self.files else { return self.execute_in_memory() };
        let (op, settings, paths, key) = (self.op, &self.settings, &files.paths, &files.key);
        let _locks = lock_all(paths)?;
        let plan = self.plan()?;
        let from = match &plan {
            Plan::Reuse(records) => {
                cache::remove_leftovers(paths)?;
                if settings.progress {
                    eprintln!(
                        "autopara: reusing {} (op {} version {}, same key: arguments, seed and inputs unchanged); \
                         nothing to run",
                        names(paths),
                        key.op,
                        key.op_version
                    );
                }
                return Ok(RunSummary {
                    action: Action::Reused,
                    stats: RunStats::default(),
                    outputs: Outputs::Files(paths.clone()),
                    failures: Vec::new(),
                    records: records.clone(),
                });
            }
            Plan::Resume(state) => state.next_index,
            Plan::Compute(_) => 0,
        };
        if settings.progress && from > 0 {
            eprintln!("autopara: {}", plan.describe(paths));
        }
        let resume = match &plan {
            Plan::Resume(state) => Some(state),
            _ => None,
        };
        let route = |loc: &Location| self.outputs.output_index(loc).unwrap_or(usize::MAX);
        let items = self.inputs.unparsed_items()?.filter(|it| it.as_ref().map_or(true, |i| i.index >= from));
        let mut sink = FileSink::start(paths, key, resume, &route, write_extxyz)?;
        let total = files.digest.items.map(|n| n.saturating_sub(from));
        let stats = match execute(op, items, &mut Tagged { tags: &self.outputs.tags, sink: &mut sink }, settings, total)
        {
            Ok(stats) => stats,
            Err(e) => {
                sink.abandon();
                return Err(e);
            }
        };
        let records = sink.finish(key)?;
        if settings.progress {
            eprintln!("{}", report(op, &stats, paths, &records));
        }
        let action = if from > 0 { Action::Resumed { from } } else { Action::Computed };
        Ok(RunSummary { action, stats, outputs: Outputs::Files(paths.clone()), failures: Vec::new(), records })
    }

    fn execute_in_memory(self) -> Result<RunSummary> {
        let (op, settings, inputs) = (self.op, &self.settings, self.inputs);
        // Most ops give one configuration per item: room for that up front
        // spares copying a growing list of configurations.
        let expected = inputs.len_hint().map_or(0, |n| n.min(MEMORY_RESERVE_MAX) as usize);
        let mut sink = MemorySink { configs: Vec::with_capacity(expected), failures: Vec::new() };
        let tagged = &mut Tagged { tags: &self.outputs.tags, sink: &mut sink };
        let stats = execute(op, inputs.unparsed_items()?, tagged, settings, inputs.len_hint())?;
        if sink.configs.len() < sink.configs.capacity() / 2 {
            sink.configs.shrink_to_fit();
        }
        if settings.progress && stats.failed > 0 {
            eprintln!("autopara: {}: {}", op.info().name, stats.summary());
        }
        Ok(RunSummary {
            action: Action::Computed,
            stats,
            outputs: Outputs::Memory(sink.configs),
            failures: sink.failures,
            records: Vec::new(),
        })
    }

    /// Reruns the failed items of complete outputs (see [`retry_failed`]).
    pub fn retry_failed(self) -> Result<RunSummary> {
        let Some(files) = &self.files else {
            return Err(Error::Output(
                "--retry-failed needs file outputs (in-memory outputs keep no failure records)".into(),
            ));
        };
        let (op, settings, paths, key) = (self.op, &self.settings, &files.paths, &files.key);
        let _locks = lock_all(paths)?;
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
                    "--retry-failed: {} was written by a different run ({}); only the op's arguments, version and \
                     seed may change",
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
                eprintln!("autopara: --retry-failed: {} has no failed items; nothing to run", names(paths));
            }
            return Ok(RunSummary {
                action: Action::RetriedFailed { retried: 0 },
                stats: RunStats::default(),
                outputs: Outputs::Files(paths.clone()),
                failures: Vec::new(),
                records: old_records,
            });
        }
        failures.sort_by_key(|(_, f)| f.index);
        if settings.progress {
            let with = if changes.is_empty() { String::new() } else { format!(" with {}", changes.join("; ")) };
            eprintln!("autopara: --retry-failed: rerunning {} failed items of {}{with}", failures.len(), names(paths));
        }
        let offsets: BTreeMap<u64, (usize, u64)> = failures.iter().map(|(o, f)| (f.index, (*o, f.offset))).collect();
        // Configurations written in failed items' places (a failed batch job's
        // flagged inputs) are replaced: skipped when copying, uncounted.
        let placeholders: BTreeMap<u64, u64> = failures.iter().map(|(_, f)| (f.index, f.bytes)).collect();
        let mut replaced_configs = vec![0u64; paths.len()];
        for (o, f) in &failures {
            replaced_configs[*o] += f.configs;
        }
        let route = |loc: &Location| self.outputs.output_index(loc).unwrap_or(usize::MAX);
        let mut old_files = Vec::new();
        for p in paths {
            old_files.push((BufReader::new(File::open(p).map_err(|e| Error::io(p, e))?), 0u64));
        }
        let items = self
            .inputs
            .unparsed_items()?
            .filter(|it: &Result<Item>| it.as_ref().map_or(true, |i| offsets.contains_key(&i.index)));
        let mut merge = MergeSink {
            inner: FileSink::start_merge(paths, key, &route, write_extxyz)?,
            offsets: &offsets,
            placeholders: &placeholders,
            old: old_files,
        };
        let tagged = &mut Tagged { tags: &self.outputs.tags, sink: &mut merge };
        let stats = execute(op, items, tagged, settings, Some(failures.len() as u64));
        let MergeSink { mut inner, old, .. } = merge;
        // The kept results after the last retried item, and the kept counts.
        let kept = stats.and_then(|stats| {
            for (i, ((mut reader, pos), record)) in old.into_iter().zip(&old_records).enumerate() {
                let configs = record.configs - replaced_configs[i];
                inner.append_kept(i, &mut reader, record.bytes - pos, record.items - record.failed, configs)?;
            }
            Ok(stats)
        });
        let stats = match kept {
            Ok(stats) => stats,
            Err(e) => {
                // A merge is never resumed: its partial files go.
                inner.abandon();
                return Err(e);
            }
        };
        let records = inner.finish(key)?;
        if settings.progress {
            eprintln!("{}", report(op, &stats, paths, &records));
        }
        Ok(RunSummary {
            action: Action::RetriedFailed { retried: failures.len() as u64 },
            stats,
            outputs: Outputs::Files(paths.clone()),
            failures: Vec::new(),
            records,
        })
    }
}

/// Writes one configuration of a file output as extxyz.
fn write_extxyz(w: &mut dyn Write, at: &Atoms) -> std::io::Result<()> {
    crate::extxyz::write_frame(w, at)
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
    PreparedRun::new(op, inputs, outputs, info)?.execute()
}

/// What [`run`] would do, without doing it: `reuse: ...`, `resume: ...`,
/// `compute: ...`, or `refuse: <why and how to recompute>`.
pub fn explain(op: &dyn Operation, inputs: &ConfigSet, outputs: &OutputSpec, info: &AutoparaInfo) -> Result<String> {
    PreparedRun::new(op, inputs, outputs, info)?.explain()
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
    PreparedRun::new(op, inputs, outputs, info)?.retry_failed()
}

/// Writes retried items between the kept bytes of the old outputs.
struct MergeSink<'a, 'b> {
    inner: FileSink<'b>,
    /// Item index → (output, byte offset of its place in the old output).
    offsets: &'a BTreeMap<u64, (usize, u64)>,
    /// Item index → bytes written in its place in the old output, skipped.
    placeholders: &'a BTreeMap<u64, u64>,
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
        let skip = self.placeholders.get(&index).copied().unwrap_or(0);
        let skipped = std::io::copy(&mut std::io::Read::take(&mut *reader, skip), &mut std::io::sink())
            .map_err(|e| Error::Cache(format!("reading the old output: {e}")))?;
        if skipped != skip {
            return Err(Error::Cache("the old output is shorter than its failure records say".into()));
        }
        *pos = offset + skip;
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

    fn encoder(&self) -> Option<Encoder> {
        self.inner.encoder()
    }

    fn write_encoded(&mut self, index: u64, location: &Location, bytes: &[u8], frames: u64) -> Result<()> {
        self.catch_up(index)?;
        self.inner.write_encoded(index, location, bytes, frames)
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
