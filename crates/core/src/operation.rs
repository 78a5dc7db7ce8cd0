//! The [`Operation`] trait: what every op crate implements, and the items and
//! per-worker context it works with.

use crate::atoms::Atoms;
use crate::calculator::{CalcError, Calculator, CalculatorSpec, spec_to_json};
use crate::extxyz::RawFrame;
use crate::rng::{ItemRng, item_rng};
use serde::{Deserialize, Serialize};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;

/// What kind of inputs an op consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputKind {
    /// Atomic configurations from a ConfigSet.
    Configs,
    /// Counters 0..N (`--count N`), for generators such as buildcell.
    Counters,
}

/// Static facts about an op, shared by its registration and its instances.
#[derive(Debug)]
pub struct OpInfo {
    /// Stable name (`md`, `calculate`).
    pub name: &'static str,
    /// Bumped whenever results change for the same arguments; part of the cache key.
    pub version: u32,
    /// Items per chunk when the user does not say.
    pub default_chunk_size: usize,
    /// One line on what it does.
    pub summary: &'static str,
    /// Configs or counters.
    pub input_kind: InputKind,
}

/// Where an item came from: input file index (if from files) and the position
/// path inside it (frame index, or nested list indices for in-memory inputs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Location {
    /// Index of the input file in the ConfigSet, `None` for in-memory inputs and counters.
    pub file: Option<usize>,
    /// Indices: `[frame]` for files, `[i, j, ...]` for nested lists, `[n]` for counters.
    pub path: Vec<usize>,
}

impl fmt::Display for Location {
    /// wfl's `_ConfigSet_loc` style: ` / 0 / 3` (file index first when from files).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = self.file {
            write!(f, " / {file}")?;
        }
        for p in &self.path {
            write!(f, " / {p}")?;
        }
        Ok(())
    }
}

/// The payload of an item.
#[allow(clippy::large_enum_variant)] // items are moved, rarely copied; boxing would cost an allocation per item
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    /// A configuration.
    Atoms(Atoms),
    /// A counter (generator ops).
    Counter(u64),
    /// A configuration still as the text of its input file: the executor
    /// parses it where the op runs, before the op sees it
    /// ([`ConfigSet::unparsed_items`](crate::ConfigSet::unparsed_items)).
    Frame(RawFrame),
}

/// One unit of work: a configuration or counter with its global index and location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// 0-based index over the whole input, independent of chunking and workers.
    pub index: u64,
    /// Where it came from.
    pub location: Location,
    /// The configuration or counter.
    pub payload: Payload,
}

impl Item {
    /// The configuration, or an error for counter items.
    pub fn atoms(&self) -> Result<&Atoms, ItemFailure> {
        match &self.payload {
            Payload::Atoms(a) => Ok(a),
            Payload::Counter(_) => Err(ItemFailure::new("this op needs configurations, got a counter")),
            Payload::Frame(_) => Err(ItemFailure::new("internal: a frame reached the op unparsed")),
        }
    }

    /// The counter value (for counters) or the global index (for configs).
    pub fn counter(&self) -> u64 {
        match &self.payload {
            Payload::Counter(n) => *n,
            Payload::Atoms(_) | Payload::Frame(_) => self.index,
        }
    }

    /// Parses the item's configuration if it is still a [`Payload::Frame`];
    /// the error is the one reading its file gives.
    pub fn parse_frame(&mut self) -> crate::error::Result<()> {
        self.parse_frame_keeping_text().map(drop)
    }

    /// [`parse_frame`](Self::parse_frame), handing back the text the
    /// configuration was parsed from (`None` when there was none), so that
    /// the thread that read it can free it: a worker freeing the reader's
    /// buffers would wait on the reader's allocator lock.
    pub fn parse_frame_keeping_text(&mut self) -> crate::error::Result<Option<RawFrame>> {
        let Payload::Frame(raw) = &self.payload else { return Ok(None) };
        let atoms = Payload::Atoms(raw.parse()?);
        Ok(match std::mem::replace(&mut self.payload, atoms) {
            Payload::Frame(raw) => Some(raw),
            _ => None,
        })
    }
}

/// Why one item failed. Becomes a failure record; other items go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ItemFailure {
    /// What went wrong.
    pub message: String,
    /// Configurations written in the item's place although it failed; usually
    /// none. The queue backend's `ignore_failed_jobs` writes a failed job's
    /// inputs here, flagged, as wfl does; the item still counts as failed and
    /// `--retry-failed` replaces them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Atoms>,
    /// The failure would repeat for every item (the op's calculator cannot be
    /// constructed): the executor stops the run with it, whatever
    /// `skip_failed` says, instead of writing one failure record per item.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fatal: bool,
}

impl ItemFailure {
    /// A failure with a message.
    pub fn new(message: impl Into<String>) -> ItemFailure {
        ItemFailure { message: message.into(), frames: Vec::new(), fatal: false }
    }

    /// A failure that still writes `frames` in the item's place.
    pub fn with_frames(message: impl Into<String>, frames: Vec<Atoms>) -> ItemFailure {
        ItemFailure { message: message.into(), frames, fatal: false }
    }

    /// A [fatal](ItemFailure::fatal) failure: it stops the run.
    pub fn stop_run(message: impl Into<String>) -> ItemFailure {
        ItemFailure { fatal: true, ..ItemFailure::new(message) }
    }
}

impl From<CalcError> for ItemFailure {
    /// The error's message; fatal for [`CalcError::Construction`].
    fn from(e: CalcError) -> ItemFailure {
        let fatal = matches!(e, CalcError::Construction(_));
        ItemFailure { fatal, ..ItemFailure::new(e.to_string()) }
    }
}

/// The result for one item: zero, one or many configurations (a trajectory), or a failure.
pub type ItemResult = Result<Vec<Atoms>, ItemFailure>;

/// An operation applied to chunks of items.
///
/// Implementations are built from their arguments by the registry
/// ([`crate::registry::OpRegistration`]) and shared by all workers (`Sync`);
/// per-worker state such as calculators lives in the [`WorkerContext`].
pub trait Operation: Send + Sync {
    /// Name, version, default chunk size, input kind.
    fn info(&self) -> &'static OpInfo;

    /// The canonical arguments (defaults filled in) as JSON: part of the cache key.
    fn args(&self) -> serde_json::Value;

    /// Processes one chunk; returns exactly one result per item, in order.
    fn run_chunk(&self, items: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult>;
}

/// Per-worker state handed to [`Operation::run_chunk`]: the worker's id, the
/// run's seed, and state of any type built once per worker and reused across
/// chunks (calculators are one use of it).
///
/// ```
/// use autopara_core::WorkerContext;
/// #[derive(Default)]
/// struct Scratch(Vec<f64>);
/// let mut ctx = WorkerContext::new(0, 7, "doc");
/// ctx.state::<Scratch>().0.push(1.0);
/// assert_eq!(ctx.state::<Scratch>().0, [1.0]); // the same value, kept
/// ```
pub struct WorkerContext {
    worker: usize,
    seed: u64,
    label: String,
    state: HashMap<TypeId, Box<dyn Any + Send>>,
}

/// The calculators a worker has built, by canonical spec.
#[derive(Default)]
struct Calculators(HashMap<String, Box<dyn Calculator>>);

impl WorkerContext {
    /// A context for worker `worker` of a run with `seed`; `label` (usually the op
    /// name) separates the random streams of different ops with the same seed.
    pub fn new(worker: usize, seed: u64, label: impl Into<String>) -> WorkerContext {
        WorkerContext { worker, seed, label: label.into(), state: HashMap::new() }
    }

    /// This worker's index.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The item's random generator: a function of (seed, label, item index) only,
    /// so results do not depend on workers or chunking.
    pub fn rng(&self, item: &Item) -> ItemRng {
        item_rng(self.seed, &self.label, item.index)
    }

    /// This worker's value of type `T`, made with `T::default()` on first use
    /// and kept for every later chunk the worker runs.
    ///
    /// Keep in it only what does not change results (buffers, caches keyed by
    /// everything they depend on): a result must depend on its item alone.
    pub fn state<T: Default + Send + 'static>(&mut self) -> &mut T {
        let slot = self.state.entry(TypeId::of::<T>()).or_insert_with(|| Box::new(T::default()));
        match slot.downcast_mut::<T>() {
            Some(value) => value,
            None => unreachable!("per-worker state is keyed by its own type"),
        }
    }

    /// Drops all per-worker state, calculators included (the executor calls this
    /// after a panic, whose unwinding may have left buffers inconsistent).
    pub fn clear_state(&mut self) {
        self.state.clear();
    }

    /// The calculator for `spec`, built on first use in this worker and reused after.
    pub fn calculator(&mut self, spec: &dyn CalculatorSpec) -> Result<&mut dyn Calculator, CalcError> {
        let key = spec_to_json(spec).to_string();
        let calculators = &mut self.state::<Calculators>().0;
        if !calculators.contains_key(&key) {
            let calc = spec.build()?;
            calculators.insert(key.clone(), calc);
        }
        match calculators.get_mut(&key) {
            Some(c) => Ok(c.as_mut()),
            None => Err(CalcError::Other("calculator cache lost an entry".into())),
        }
    }
}
