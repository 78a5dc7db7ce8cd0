//! Runs from Python: native ops by name (`run_op`) and the user's Python
//! function (`run_function`), through the core runner, so that outputs, cache
//! records, locks and resume are those of `autopara run`.
//!
//! Inputs arrive as `("files", [paths])`, `("memory", nested lists of plain
//! frames)` or `("counters", n)`; outputs as `("memory",)`, `("file", path)`
//! or `("per_input", template)` with `overwrite` and the tags' comment-line
//! text. The run itself happens on a helper thread while the calling thread
//! waits without the GIL and checks for signals: Ctrl-C stops the run at the
//! next chunk boundary (file outputs then resume on the next call) and raises
//! `KeyboardInterrupt`.

use crate::frames::{from_plain, to_plain};
use crate::procs::ProcessBackend;
use crate::{guarded, panic_error, to_py};
use autopara::autopara_info::AutoparaInfo;
use autopara::configset::Nested;
use autopara::executor::ResolvedAutopara;
use autopara::executor::backend::{Backend, Job, Pool, SerialBackend, ThreadsBackend};
use autopara::executor::{ChunkOutcome, ChunkTask, FailureRecord, ResultSink, execute};
use autopara::outputspec::Outputs;
use autopara::runner::{self, Action, RunSummary};
use autopara::{Atoms, ConfigSet, Error, Item, ItemFailure, ItemResult, Location, OpInfo, Operation, OutputSpec};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// The message of a run stopped by Ctrl-C.
pub(crate) const INTERRUPTED: &str = "interrupted";

/// Converts nested Python lists of plain frames.
fn nested_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Nested> {
    if let Ok(list) = obj.cast::<PyList>() {
        return list.iter().map(|x| nested_from_py(&x)).collect::<PyResult<_>>().map(Nested::List);
    }
    from_plain(obj).map(Nested::Atoms)
}

/// The [`ConfigSet`] described by `("files", paths)`, `("memory", nested)` or `("counters", n)`.
fn inputs_from_py(obj: &Bound<'_, PyAny>) -> PyResult<ConfigSet> {
    let t = obj.cast::<PyTuple>()?;
    let kind: String = t.get_item(0)?.extract()?;
    match kind.as_str() {
        "files" => {
            let files: Vec<String> = t.get_item(1)?.extract()?;
            ConfigSet::from_paths(&files).map_err(to_py)
        }
        "memory" => Ok(ConfigSet::from_nested(nested_from_py(&t.get_item(1)?)?)),
        "counters" => Ok(ConfigSet::counters(t.get_item(1)?.extract()?)),
        other => Err(crate::error("ArgsError", format!("unknown input kind '{other}'"))),
    }
}

/// The [`OutputSpec`] described by `(kind, target, overwrite, tags_text)`.
fn outputs_from_py(obj: &Bound<'_, PyAny>) -> PyResult<OutputSpec> {
    let (kind, target, overwrite, tags): (String, String, bool, String) = obj.extract()?;
    let mut spec = match kind.as_str() {
        "memory" => OutputSpec::memory(),
        "file" => OutputSpec::file(target),
        "per_input" => OutputSpec::per_input(target),
        other => return Err(crate::error("ArgsError", format!("unknown output kind '{other}'"))),
    };
    if !tags.trim().is_empty() {
        let frame = autopara::extxyz::read_str(&format!("0\n{tags}\n"))
            .map_err(|e| crate::error("ArgsError", format!("OutputSpec tags: {e}")))?;
        for (k, v) in frame.into_iter().next().map(|a| a.info).unwrap_or_default() {
            spec = spec.with_tag(k, v);
        }
    }
    Ok(spec.overwrite(overwrite))
}

/// The settings given from Python (`workers`, `chunk_size`, `seed`,
/// `skip_failed`, `progress`, each optional).
fn info_from_py(d: &Bound<'_, PyDict>) -> PyResult<AutoparaInfo> {
    let get = |k: &str| -> PyResult<Option<Bound<'_, PyAny>>> { Ok(d.get_item(k)?.filter(|v| !v.is_none())) };
    Ok(AutoparaInfo {
        workers: get("workers")?.map(|v| v.extract()).transpose()?,
        chunk_size: get("chunk_size")?.map(|v| v.extract()).transpose()?,
        seed: get("seed")?.map(|v| v.extract()).transpose()?,
        skip_failed: get("skip_failed")?.map(|v| v.extract()).transpose()?,
        progress: get("progress")?.map(|v| v.extract()).transpose()?,
        ..Default::default()
    })
}

/// Wraps a backend so that a cancelled run stops at the next chunk it waits for.
struct Cancellable {
    inner: Arc<dyn Backend>,
    cancel: Arc<AtomicBool>,
}

struct CancelPool<'a> {
    inner: &'a mut dyn Pool,
    cancel: &'a AtomicBool,
}

impl Pool for CancelPool<'_> {
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    fn submit(&mut self, task: ChunkTask) -> autopara::Result<()> {
        self.inner.submit(task)
    }

    fn recv(&mut self) -> autopara::Result<ChunkOutcome> {
        let outcome = self.inner.recv()?;
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::Other(INTERRUPTED.into()));
        }
        Ok(outcome)
    }

    fn spare_items(&mut self) -> Option<Vec<Item>> {
        self.inner.spare_items()
    }

    fn parses_frames(&self) -> bool {
        self.inner.parses_frames()
    }

    fn recycle_bytes(&mut self, bytes: Vec<u8>) {
        self.inner.recycle_bytes(bytes);
    }
}

impl Backend for Cancellable {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn workers(&self) -> usize {
        self.inner.workers()
    }

    fn run(
        &self,
        job: &Job<'_>,
        driver: &mut dyn FnMut(&mut dyn Pool) -> autopara::Result<()>,
    ) -> autopara::Result<()> {
        let cancel = &*self.cancel;
        self.inner.run(job, &mut |pool| driver(&mut CancelPool { inner: pool, cancel }))
    }
}

/// The backend the core would choose for `info` (explicit workers, else the
/// environment, else all cores), made cancellable.
fn cancellable(info: &AutoparaInfo, op: &OpInfo, cancel: &Arc<AtomicBool>) -> autopara::Result<Arc<dyn Backend>> {
    let inner = match info.backend.clone() {
        Some(b) => b,
        None => {
            let settings: ResolvedAutopara = info.resolve(op)?;
            if settings.workers <= 1 {
                Arc::new(SerialBackend) as Arc<dyn Backend>
            } else {
                Arc::new(ThreadsBackend::new(settings.workers))
            }
        }
    };
    Ok(Arc::new(Cancellable { inner, cancel: Arc::clone(cancel) }))
}

/// Runs `f` on a helper thread while this thread waits without the GIL,
/// checking for signals every 50 ms; on Ctrl-C sets `cancel`, waits for the
/// run to stop and raises `KeyboardInterrupt`.
fn interruptible<T: Send>(
    py: Python<'_>,
    cancel: &AtomicBool,
    f: impl FnOnce() -> autopara::Result<T> + Send,
) -> PyResult<T> {
    let done = (Mutex::new(false), Condvar::new());
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            *done.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
            done.1.notify_all();
            out
        });
        let mut interrupt = None;
        loop {
            let finished = py.detach(|| {
                let guard = done.0.lock().unwrap_or_else(|p| p.into_inner());
                let (guard, _) = done
                    .1
                    .wait_timeout_while(guard, Duration::from_millis(50), |d| !*d)
                    .unwrap_or_else(|p| p.into_inner());
                *guard
            });
            if finished {
                break;
            }
            if interrupt.is_none()
                && let Err(e) = py.check_signals()
            {
                cancel.store(true, Ordering::Relaxed);
                interrupt = Some(e);
            }
        }
        let out = py.detach(|| handle.join());
        match out {
            Ok(Ok(result)) => match (result, interrupt) {
                (_, Some(e)) => Err(e),
                (Ok(v), None) => Ok(v),
                (Err(e), None) => Err(to_py(e)),
            },
            Ok(Err(payload)) | Err(payload) => Err(panic_error(payload.as_ref())),
        }
    })
}

/// Per item of an in-memory run: its location and frames, or its failure.
type MemoryItems = Vec<(Location, Result<Vec<Atoms>, String>)>;

/// Collects in-memory results per item (with their locations, so that Python
/// can rebuild the input's nesting).
#[derive(Default)]
struct ItemsSink {
    items: MemoryItems,
}

impl ResultSink for ItemsSink {
    fn write_item(&mut self, _index: u64, location: &Location, frames: Vec<Atoms>) -> autopara::Result<()> {
        self.items.push((location.clone(), Ok(frames)));
        Ok(())
    }

    fn write_failure(&mut self, failure: &FailureRecord) -> autopara::Result<()> {
        self.items.push((failure.location.clone(), Err(failure.message.clone())));
        Ok(())
    }

    fn checkpoint(&mut self, _next_index: u64, _now: bool) -> autopara::Result<()> {
        Ok(())
    }
}

/// What a run returns to Python before conversion.
enum Done {
    Summary(RunSummary),
    Memory { items: MemoryItems, stats: autopara::executor::RunStats },
    Explained(String),
}

/// Runs `op` as `mode` says (`run`, `explain`, `retry_failed`).
fn execute_mode(
    op: &dyn Operation,
    inputs: &ConfigSet,
    outputs: &OutputSpec,
    info: &AutoparaInfo,
    mode: &str,
) -> autopara::Result<Done> {
    match mode {
        "explain" => runner::explain(op, inputs, outputs, info).map(Done::Explained),
        "retry_failed" => runner::retry_failed(op, inputs, outputs, info).map(Done::Summary),
        "run" if matches!(outputs.target, autopara::outputspec::Target::Memory) => {
            runner::check_input_kind(op.info(), inputs)?;
            let settings = info.resolve(op.info())?;
            let mut sink = ItemsSink::default();
            let stats = execute(op, inputs.items()?, &mut sink, &settings, inputs.len_hint())?;
            if settings.progress && stats.failed > 0 {
                eprintln!("autopara: {}: {}", op.info().name, stats.summary());
            }
            Ok(Done::Memory { items: sink.items, stats })
        }
        "run" => runner::run(op, inputs, outputs, info).map(Done::Summary),
        other => {
            Err(Error::Args { context: "run".into(), field: "mode".into(), message: format!("unknown '{other}'") })
        }
    }
}

fn stats_dict<'py>(py: Python<'py>, stats: &autopara::executor::RunStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("items", stats.items)?;
    d.set_item("frames", stats.frames)?;
    d.set_item("failed", stats.failed)?;
    Ok(d)
}

/// The Python result: a dict with `action`, counts, and `files` or `items`.
fn done_to_py<'py>(py: Python<'py>, done: Done) -> PyResult<Bound<'py, PyDict>> {
    match done {
        Done::Explained(text) => {
            let d = PyDict::new(py);
            d.set_item("action", "explain")?;
            d.set_item("explanation", text)?;
            Ok(d)
        }
        Done::Memory { items, stats } => {
            let d = stats_dict(py, &stats)?;
            d.set_item("action", "computed")?;
            let out = PyList::empty(py);
            for (loc, result) in items {
                let path: Vec<usize> = loc.file.into_iter().chain(loc.path.iter().copied()).collect();
                let path = PyTuple::new(py, path)?;
                match result {
                    Ok(frames) => {
                        let frames = frames.iter().map(|a| to_plain(py, a)).collect::<PyResult<Vec<_>>>()?;
                        out.append((path, true, PyList::new(py, frames)?))?;
                    }
                    Err(message) => out.append((path, false, message))?,
                }
            }
            d.set_item("items", out)?;
            Ok(d)
        }
        Done::Summary(summary) => {
            let d = stats_dict(py, &summary.stats)?;
            let action = match summary.action {
                Action::Reused => "reused".to_string(),
                Action::Resumed { from } => format!("resumed from item {from}"),
                Action::Computed => "computed".to_string(),
                Action::RetriedFailed { retried } => format!("retried {retried} failed items"),
            };
            d.set_item("action", action)?;
            let files: Vec<String> = match summary.outputs {
                Outputs::Files(f) => f.iter().map(|p| p.display().to_string()).collect(),
                Outputs::Memory(_) => Vec::new(),
            };
            d.set_item("files", files)?;
            let failed: u64 = summary.records.iter().map(|r| r.failed).sum();
            d.set_item("failed_total", failed)?;
            Ok(d)
        }
    }
}

/// Runs the native op `op` with JSON arguments `args` (as `autopara run OP
/// --args ARGS`) over `inputs` into `outputs`.
#[pyfunction]
#[pyo3(signature = (op, args, inputs, outputs, info, mode = "run"))]
fn run_op<'py>(
    py: Python<'py>,
    op: &str,
    args: &str,
    inputs: &Bound<'py, PyAny>,
    outputs: &Bound<'py, PyAny>,
    info: &Bound<'py, PyDict>,
    mode: &str,
) -> PyResult<Bound<'py, PyDict>> {
    guarded(|| {
        let registration = autopara::find_op(op).map_err(to_py)?;
        let inputs = inputs_from_py(inputs)?;
        runner::check_input_kind(registration.info, &inputs).map_err(to_py)?;
        let args: serde_json::Value = serde_json::from_str(args)
            .map_err(|e| crate::error("ArgsError", format!("{op}: arguments are not JSON: {e}")))?;
        let op = (registration.build)(args).map_err(to_py)?;
        let outputs = outputs_from_py(outputs)?;
        let remote: Option<String> = match info.get_item("remote_info")? {
            Some(v) if !v.is_none() => Some(v.extract()?),
            _ => None,
        };
        let mut info = info_from_py(info)?;
        // As `autopara run --remote-info`: the given info, else AUTOPARA_REMOTE_INFO's entry for the op.
        info.backend =
            autopara::cli::remote::backend(remote.as_deref(), op.info().name, mode == "retry_failed").map_err(to_py)?;
        let cancel = Arc::new(AtomicBool::new(false));
        info.backend = Some(cancellable(&info, op.info(), &cancel).map_err(to_py)?);
        let done = interruptible(py, &cancel, || execute_mode(op.as_ref(), &inputs, &outputs, &info, mode))?;
        done_to_py(py, done)
    })
}

/// The static facts of a Python function's runs: leaked once per distinct
/// (name, version, chunk size, input kind), so a long session leaks a few bytes per function.
fn function_info(name: &str, version: u32, chunk: usize, counters: bool) -> &'static OpInfo {
    type Infos = HashMap<(String, u32, usize, bool), &'static OpInfo>;
    static INFOS: OnceLock<Mutex<Infos>> = OnceLock::new();
    let mut map = INFOS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    map.entry((name.to_string(), version, chunk, counters)).or_insert_with(|| {
        Box::leak(Box::new(OpInfo {
            name: Box::leak(name.to_string().into_boxed_str()),
            version,
            default_chunk_size: chunk.max(1),
            summary: "a Python function run by autoparallelize",
            input_kind: if counters { autopara::InputKind::Counters } else { autopara::InputKind::Configs },
        }))
    })
}

/// A Python function as an op: its cache identity (`args`) is computed in
/// Python (module, qualified name, source, arguments); chunks run in worker
/// processes ([`ProcessBackend`]) or, with zero workers, in this process
/// through `runner` (the `_worker.ChunkRunner` of the call).
struct PyFunctionOp {
    info: &'static OpInfo,
    args: serde_json::Value,
    runner: Py<PyAny>,
}

impl Operation for PyFunctionOp {
    fn info(&self) -> &'static OpInfo {
        self.info
    }

    fn args(&self) -> serde_json::Value {
        self.args.clone()
    }

    fn run_chunk(&self, items: &[Item], _ctx: &mut autopara::WorkerContext) -> Vec<ItemResult> {
        let fail_all = |message: String| items.iter().map(|_| Err(ItemFailure::new(message.clone()))).collect();
        Python::attach(|py| {
            let plain = match items_to_py(py, items) {
                Ok(p) => p,
                Err(e) => return fail_all(e.to_string()),
            };
            match self.runner.bind(py).call1((plain,)) {
                Ok(results) => results_from_py(&results, items.len()).unwrap_or_else(|e| fail_all(e.to_string())),
                Err(e) => fail_all(e.to_string()),
            }
        })
    }
}

/// `[(index, plain frame or counter)]` for the Python chunk runner.
pub(crate) fn items_to_py<'py>(py: Python<'py>, items: &[Item]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for item in items {
        match &item.payload {
            autopara::Payload::Atoms(a) => out.append((item.index, to_plain(py, a)?))?,
            autopara::Payload::Counter(n) => out.append((item.index, *n))?,
            autopara::Payload::Frame(raw) => out.append((item.index, to_plain(py, &raw.parse().map_err(to_py)?)?))?,
        }
    }
    Ok(out)
}

/// The chunk runner's results: per item `(True, [plain frames])` or `(False, message)`.
pub(crate) fn results_from_py(results: &Bound<'_, PyAny>, n: usize) -> PyResult<Vec<ItemResult>> {
    let mut out = Vec::with_capacity(n);
    for r in results.try_iter()? {
        let (ok, value): (bool, Bound<'_, PyAny>) = r?.extract()?;
        out.push(if ok {
            Ok(value.try_iter()?.map(|f| from_plain(&f?)).collect::<PyResult<Vec<_>>>()?)
        } else {
            Err(ItemFailure::new(value.extract::<String>()?))
        });
    }
    if out.len() != n {
        return Err(crate::error(
            "ArgsError",
            format!("the chunk runner returned {} results for {n} items", out.len()),
        ));
    }
    Ok(out)
}

/// Runs a Python function over `inputs` into `outputs`: `name` and `version`
/// name it in the cache key and messages, `key_args` (JSON) is the rest of its
/// cache identity, `runner` runs chunks in this process (zero workers) and
/// `payload` (its pickle) in `workers` processes of `python`.
#[pyfunction]
#[pyo3(signature = (name, version, default_chunk_size, key_args, runner, payload, python, inputs, outputs, info, in_process, mode = "run"))]
#[allow(clippy::too_many_arguments)] // one call from autopara/autoparallelize.py
fn run_function<'py>(
    py: Python<'py>,
    name: &str,
    version: u32,
    default_chunk_size: usize,
    key_args: &str,
    runner: Py<PyAny>,
    payload: Vec<u8>,
    python: std::path::PathBuf,
    inputs: &Bound<'py, PyAny>,
    outputs: &Bound<'py, PyAny>,
    info: &Bound<'py, PyDict>,
    in_process: bool,
    mode: &str,
) -> PyResult<Bound<'py, PyDict>> {
    guarded(|| {
        let args: serde_json::Value = serde_json::from_str(key_args)
            .map_err(|e| crate::error("ArgsError", format!("{name}: cache identity is not JSON: {e}")))?;
        let inputs = inputs_from_py(inputs)?;
        let info_static = function_info(name, version, default_chunk_size, inputs.is_counters());
        let op = PyFunctionOp { info: info_static, args, runner };
        let outputs = outputs_from_py(outputs)?;
        let mut info = info_from_py(info)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let settings = info.resolve(op.info()).map_err(to_py)?;
        if !in_process && mode != "explain" {
            let procs = ProcessBackend::new(settings.workers, python, payload, Arc::clone(&cancel));
            info.backend = Some(Arc::new(procs));
        }
        info.backend = Some(cancellable(&info, op.info(), &cancel).map_err(to_py)?);
        let done = interruptible(py, &cancel, || execute_mode(&op, &inputs, &outputs, &info, mode))?;
        done_to_py(py, done)
    })
}

/// `autopara buildcell-input`: wfl's `create_input`, returning the text.
#[pyfunction]
#[pyo3(signature = (z, vol_per_atom, bond_lengths, composition, rss_min_vol_factor, vol_range, min_sep_factor, symmops, natom, odd))]
#[allow(clippy::too_many_arguments)] // wfl's signature
fn create_input(
    z: Vec<u8>,
    vol_per_atom: Vec<f64>,
    bond_lengths: Vec<f64>,
    composition: Option<Vec<u32>>,
    rss_min_vol_factor: f64,
    vol_range: (f64, f64),
    min_sep_factor: f64,
    symmops: &str,
    natom: (u32, u32),
    odd: Option<&str>,
) -> PyResult<String> {
    use autopara::buildcell::{Odd, create_input};
    guarded(|| {
        let odd = match odd {
            None => Odd::No,
            Some("only") => Odd::Only,
            Some("also") => Odd::Also,
            Some(other) => {
                return Err(crate::error(
                    "ArgsError",
                    format!("create_input: odd: expected None, 'only' or 'also', got '{other}'"),
                ));
            }
        };
        create_input(
            &z,
            &vol_per_atom,
            &bond_lengths,
            composition.as_deref(),
            rss_min_vol_factor,
            vol_range,
            min_sep_factor,
            symmops,
            natom,
            odd,
        )
        .map_err(|e| crate::error("ArgsError", format!("create_input: {e}")))
    })
}

/// The 32-byte seed of item `index`'s random stream in a run labelled
/// `label` with `seed`, as an integer (for `numpy.random.default_rng`).
#[pyfunction]
fn item_seed(py: Python<'_>, seed: u64, label: &str, index: u64) -> PyResult<Py<PyAny>> {
    use autopara::rng::item_rng;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    item_rng(seed, label, index).fill_bytes(&mut bytes);
    let int = py.get_type::<pyo3::types::PyInt>().call_method1("from_bytes", (bytes.as_slice(), "little"))?;
    Ok(int.unbind())
}

/// The files that `autopara run -i PATTERNS...` reads: literal files, and
/// the sorted matches of each glob; a missing file or an empty glob is an error.
#[pyfunction]
fn expand_paths(patterns: Vec<String>) -> PyResult<Vec<String>> {
    guarded(|| {
        let set = ConfigSet::from_paths(&patterns).map_err(to_py)?;
        Ok(set.files().iter().map(|p| p.display().to_string()).collect())
    })
}

/// The names of the registered calculator types (`autopara calculators`).
#[pyfunction]
fn calculator_names() -> Vec<&'static str> {
    autopara::calculator::registered_calculators().iter().map(|c| c.name).collect()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(calculator_names, m)?)?;
    m.add_function(wrap_pyfunction!(expand_paths, m)?)?;
    m.add_function(wrap_pyfunction!(run_op, m)?)?;
    m.add_function(wrap_pyfunction!(run_function, m)?)?;
    m.add_function(wrap_pyfunction!(create_input, m)?)?;
    m.add_function(wrap_pyfunction!(item_seed, m)?)?;
    Ok(())
}
