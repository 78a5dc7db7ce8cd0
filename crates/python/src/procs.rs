//! [`ProcessBackend`]: chunks of a Python function run in long-lived Python
//! worker processes (`python -m autopara._workerproc`), one per worker, each set up
//! once per run (the pickled function, its arguments and the optional
//! initializer) and then fed chunks over its own pipes ([`crate::codec`]).
//!
//! - **Faults.** A chunk whose function call raises is retried item by item
//!   inside the worker, so only the items that raise become failure records.
//!   A worker that dies (a crash, `os._exit`, a signal) is replaced; the chunk
//!   it was running is rerun item by item on the replacement, so only an item
//!   that kills its worker again fails, with the cause; queued chunks are resent.
//! - **Lifetime.** Workers ask the kernel to kill them when the thread that
//!   started them (the run's) ends, exit when their pipe closes, ignore
//!   Ctrl-C (the run stops them), and are reaped before the run returns: none
//!   outlives it. Pipes are private to each worker.

use crate::codec::{self, Dec, Enc};
use crate::guarded;
use crate::run::{items_to_py, results_from_py};
use autopara::executor::backend::{Backend, Job, Pool};
use autopara::executor::{ChunkOutcome, ChunkTask};
use autopara::{Error, Item, ItemFailure, ItemResult, Payload, Result};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// The environment variable through which a worker learns its parent's pid.
const PARENT_ENV: &str = "AUTOPARA_WORKER_PARENT";

/// How long workers get to exit after their pipes close before they are killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Runs chunks in Python worker processes. See the [module docs](self).
pub(crate) struct ProcessBackend {
    workers: usize,
    python: PathBuf,
    /// The pickled chunk runner sent to every worker at start.
    payload: Arc<Vec<u8>>,
    cancel: Arc<AtomicBool>,
}

impl ProcessBackend {
    /// `workers` processes of `python` running `payload`; `cancel` stops a run.
    pub(crate) fn new(workers: usize, python: PathBuf, payload: Vec<u8>, cancel: Arc<AtomicBool>) -> ProcessBackend {
        ProcessBackend { workers: workers.max(1), python, payload: Arc::new(payload), cancel }
    }
}

enum Event {
    /// A message from worker `slot` in its generation `gen`.
    Message { slot: usize, generation: u64, body: Vec<u8> },
    /// Worker `slot` closed its end (it exited or died).
    Closed { slot: usize, generation: u64 },
}

struct Worker {
    generation: u64,
    child: Child,
    /// Messages to write (a writer thread owns the pipe); dropping it closes the pipe.
    tx: Option<mpsc::Sender<Vec<u8>>>,
    /// Chunks sent and not answered, oldest (running) first.
    inflight: VecDeque<(u64, Vec<Item>)>,
}

struct ProcPool<'a> {
    backend: &'a ProcessBackend,
    events_tx: mpsc::Sender<Event>,
    events: mpsc::Receiver<Event>,
    workers: Vec<Worker>,
    ready: VecDeque<ChunkOutcome>,
    /// Events that arrived while waiting for a particular worker.
    stash: VecDeque<Event>,
    next_generation: u64,
}

/// Chunk id of the one-item chunks of a recovery (never a real chunk id).
const RECOVERY_CHUNK: u64 = u64::MAX;

fn write_message(w: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    w.write_all(&(body.len() as u64).to_le_bytes())?;
    w.write_all(body)?;
    w.flush()
}

fn read_message(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(std::io::Error::other)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

fn chunk_message(chunk: u64, items: &[Item]) -> Result<Vec<u8>> {
    let mut e = Enc::default();
    e.u8(codec::CHUNK);
    e.u64(chunk);
    e.u64(items.len() as u64);
    for item in items {
        e.u64(item.index);
        match &item.payload {
            Payload::Atoms(a) => {
                e.u8(0);
                e.atoms(a);
            }
            Payload::Counter(n) => {
                e.u8(1);
                e.u64(*n);
            }
            Payload::Frame(raw) => {
                e.u8(0);
                e.atoms(&raw.parse()?);
            }
        }
    }
    Ok(e.0)
}

/// `exited with status 3`, `killed by signal 9 (SIGKILL)`.
fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => {
                let name = match sig {
                    6 => " (SIGABRT)",
                    9 => " (SIGKILL, e.g. the out-of-memory killer)",
                    11 => " (SIGSEGV)",
                    15 => " (SIGTERM)",
                    _ => "",
                };
                format!("killed by signal {sig}{name}")
            }
            (None, None) => "ended".into(),
        },
        None => "closed its pipe".into(),
    }
}

impl<'a> ProcPool<'a> {
    fn start(backend: &'a ProcessBackend) -> Result<ProcPool<'a>> {
        let (events_tx, events) = mpsc::channel();
        let mut pool = ProcPool {
            backend,
            events_tx,
            events,
            workers: Vec::new(),
            ready: VecDeque::new(),
            stash: VecDeque::new(),
            next_generation: 0,
        };
        for slot in 0..backend.workers {
            let w = pool.spawn(slot)?;
            pool.workers.push(w);
        }
        for slot in 0..backend.workers {
            pool.await_ready(slot)?;
        }
        Ok(pool)
    }

    /// Starts worker `slot` and sends it the setup message.
    fn spawn(&mut self, slot: usize) -> Result<Worker> {
        let generation = self.next_generation;
        self.next_generation += 1;
        let mut child = Command::new(&self.backend.python)
            .args(["-m", "autopara._workerproc"])
            .env(PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                Error::Other(format!("cannot start Python worker {} ({}): {e}", slot, self.backend.python.display()))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Other("Python worker started without pipes".into()));
        };
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || writer(stdin, rx));
        let events = self.events_tx.clone();
        std::thread::spawn(move || reader(stdout, events, slot, generation));
        let mut setup = Enc::default();
        setup.u8(codec::SETUP);
        setup.u64(slot as u64);
        setup.bytes(&self.backend.payload);
        let _ = tx.send(setup.0);
        Ok(Worker { generation, child, tx: Some(tx), inflight: VecDeque::new() })
    }

    /// The next event from the channel (not the stash); fails when cancelled.
    fn wait_event(&mut self) -> Result<Event> {
        loop {
            if self.backend.cancel.load(Ordering::Relaxed) {
                return Err(Error::Other(crate::run::INTERRUPTED.into()));
            }
            match self.events.recv_timeout(Duration::from_millis(50)) {
                Ok(ev) => return Ok(ev),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Other("Python workers: event channel closed".into()));
                }
            }
        }
    }

    /// The next event of worker `slot` in its current generation (stashed or
    /// new); other workers' events are stashed for later.
    fn next_of(&mut self, slot: usize) -> Result<Event> {
        let generation = self.workers[slot].generation;
        let mine = |ev: &Event| match ev {
            Event::Message { slot: s, generation: g, .. } | Event::Closed { slot: s, generation: g } => {
                *s == slot && *g == generation
            }
        };
        if let Some(i) = self.stash.iter().position(mine)
            && let Some(ev) = self.stash.remove(i)
        {
            return Ok(ev);
        }
        loop {
            let ev = self.wait_event()?;
            if mine(&ev) {
                return Ok(ev);
            }
            self.stash.push_back(ev);
        }
    }

    /// Waits until worker `slot` reports that it is set up.
    fn await_ready(&mut self, slot: usize) -> Result<()> {
        match self.next_of(slot)? {
            Event::Message { body, .. } => {
                let mut d = Dec::new(&body);
                match d.u8().map_err(Error::Other)? {
                    codec::READY => Ok(()),
                    codec::SETUP_FAILED => Err(Error::Other(format!(
                        "Python worker {slot} could not set up: {}",
                        d.str().map_err(Error::Other)?
                    ))),
                    t => Err(Error::Other(format!("Python worker {slot}: unexpected message {t} at start"))),
                }
            }
            Event::Closed { .. } => {
                let status = self.workers[slot].child.wait().ok();
                Err(Error::Other(format!(
                    "Python worker {slot} {} while starting (its error is above)",
                    describe(status)
                )))
            }
        }
    }

    fn send(&mut self, slot: usize, chunk: u64, items: Vec<Item>) -> Result<()> {
        let body = chunk_message(chunk, &items)?;
        let w = &mut self.workers[slot];
        // A closed pipe shows up as the worker's `Closed` event, which resends.
        if let Some(tx) = &w.tx {
            let _ = tx.send(body);
        }
        w.inflight.push_back((chunk, items));
        Ok(())
    }

    fn decode_results(body: &[u8]) -> Result<(u64, Vec<ItemResult>)> {
        let mut d = Dec::new(body);
        let bad = |m: String| Error::Other(format!("Python worker sent a bad message: {m}"));
        if d.u8().map_err(bad)? != codec::RESULTS {
            return Err(bad("expected results".into()));
        }
        let chunk = d.u64().map_err(bad)?;
        let n = d.u64().map_err(bad)?;
        let results =
            (0..n).map(|_| codec::dec_result(&mut d)).collect::<std::result::Result<Vec<_>, _>>().map_err(bad)?;
        d.end().map_err(bad)?;
        Ok((chunk, results))
    }

    fn handle(&mut self, ev: Event) -> Result<()> {
        match ev {
            Event::Message { slot, generation, body } => {
                if self.workers[slot].generation != generation {
                    return Ok(());
                }
                let (chunk, results) = Self::decode_results(&body)?;
                let w = &mut self.workers[slot];
                match w.inflight.pop_front() {
                    Some((id, items)) if id == chunk && items.len() == results.len() => {
                        self.ready.push_back(ChunkOutcome::new(chunk, results));
                        Ok(())
                    }
                    _ => Err(Error::Other(format!("Python worker {slot} answered chunk {chunk} out of turn"))),
                }
            }
            Event::Closed { slot, generation } => {
                if self.workers[slot].generation != generation {
                    return Ok(());
                }
                self.recover(slot)
            }
        }
    }

    /// Reaps worker `slot`'s process and returns why it ended.
    fn reap(&mut self, slot: usize) -> String {
        let w = &mut self.workers[slot];
        w.tx = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match w.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = w.child.kill();
                    break w.child.wait().ok();
                }
            }
        };
        describe(status)
    }

    /// Replaces worker `slot` after it ended with chunks in flight.
    fn recover(&mut self, slot: usize) -> Result<()> {
        let reason = self.reap(slot);
        let mut inflight = std::mem::take(&mut self.workers[slot].inflight);
        self.respawn(slot)?;
        if let Some((chunk, items)) = inflight.pop_front() {
            let results = self.one_by_one(slot, items, &reason)?;
            self.ready.push_back(ChunkOutcome::new(chunk, results));
        }
        for (chunk, items) in inflight {
            self.send(slot, chunk, items)?;
        }
        Ok(())
    }

    fn respawn(&mut self, slot: usize) -> Result<()> {
        let w = self.spawn(slot)?;
        self.workers[slot] = w;
        self.await_ready(slot)
    }

    /// Runs `items` one at a time on worker `slot` (fresh), replacing it
    /// whenever an item kills it; such an item fails with the cause.
    fn one_by_one(&mut self, slot: usize, items: Vec<Item>, first_reason: &str) -> Result<Vec<ItemResult>> {
        let mut results = Vec::with_capacity(items.len());
        let n = items.len();
        for item in items {
            self.send(slot, RECOVERY_CHUNK, vec![item])?;
            let result = match self.next_of(slot)? {
                Event::Message { body, .. } => {
                    let (_, mut one) = Self::decode_results(&body)?;
                    one.pop().unwrap_or_else(|| Err(ItemFailure::new("no result")))
                }
                Event::Closed { .. } => {
                    let reason = self.reap(slot);
                    self.respawn(slot)?;
                    Err(ItemFailure::new(format!(
                        "the Python worker process {reason} while running this item (rerun alone after the worker \
                         running its chunk of {n} {first_reason})"
                    )))
                }
            };
            self.workers[slot].inflight.clear();
            results.push(result);
        }
        Ok(results)
    }

    /// Closes every worker's pipe, waits a little for them to exit, kills the rest.
    fn shutdown(&mut self, kill_now: bool) {
        for w in &mut self.workers {
            w.tx = None;
            if kill_now {
                let _ = w.child.kill();
            }
        }
        let deadline = Instant::now() + EXIT_GRACE;
        for w in &mut self.workers {
            loop {
                match w.child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                    _ => {
                        let _ = w.child.kill();
                        let _ = w.child.wait();
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for ProcPool<'_> {
    fn drop(&mut self) {
        let cancelled = self.backend.cancel.load(Ordering::Relaxed);
        self.shutdown(cancelled);
    }
}

impl Pool for ProcPool<'_> {
    fn capacity(&self) -> usize {
        // One chunk running and one queued per worker.
        self.workers.len() * 2
    }

    fn submit(&mut self, task: ChunkTask) -> Result<()> {
        let slot = (0..self.workers.len()).min_by_key(|&s| self.workers[s].inflight.len()).unwrap_or(0);
        self.send(slot, task.chunk, task.items)
    }

    fn recv(&mut self) -> Result<ChunkOutcome> {
        loop {
            if let Some(outcome) = self.ready.pop_front() {
                return Ok(outcome);
            }
            let ev = match self.stash.pop_front() {
                Some(ev) => ev,
                None => self.wait_event()?,
            };
            self.handle(ev)?;
        }
    }
}

impl Backend for ProcessBackend {
    fn name(&self) -> &str {
        "python-processes"
    }

    fn workers(&self) -> usize {
        self.workers
    }

    fn run(&self, _job: &Job<'_>, driver: &mut dyn FnMut(&mut dyn Pool) -> Result<()>) -> Result<()> {
        let mut pool = ProcPool::start(self)?;
        driver(&mut pool)
    }
}

fn writer(stdin: ChildStdin, rx: mpsc::Receiver<Vec<u8>>) {
    let mut w = BufWriter::with_capacity(1 << 16, stdin);
    while let Ok(body) = rx.recv() {
        if write_message(&mut w, &body).is_err() {
            return;
        }
    }
}

fn reader(stdout: ChildStdout, events: mpsc::Sender<Event>, slot: usize, generation: u64) {
    let mut r = BufReader::with_capacity(1 << 16, stdout);
    loop {
        match read_message(&mut r) {
            Ok(body) => {
                if events.send(Event::Message { slot, generation, body }).is_err() {
                    return;
                }
            }
            Err(_) => {
                let _ = events.send(Event::Closed { slot, generation });
                return;
            }
        }
    }
}

// ---- The worker's side (called from autopara/_workerproc.py) ----

/// Decodes a message to a worker: `(0, worker_index, payload)` for setup,
/// `(1, chunk_id, [(index, plain frame or counter)])` for a chunk.
#[pyfunction]
fn decode_message<'py>(py: Python<'py>, body: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
    guarded(|| {
        let bad = |m: String| crate::error("ArgsError", format!("bad message from the parent: {m}"));
        let mut d = Dec::new(body);
        match d.u8().map_err(bad)? {
            codec::SETUP => {
                let index = d.u64().map_err(bad)?;
                let payload = PyBytes::new(py, d.bytes().map_err(bad)?);
                (codec::SETUP, index, payload).into_pyobject(py)
            }
            codec::CHUNK => {
                let chunk = d.u64().map_err(bad)?;
                let n = d.u64().map_err(bad)?;
                let mut items = Vec::new();
                for _ in 0..n {
                    let index = d.u64().map_err(bad)?;
                    let payload = match d.u8().map_err(bad)? {
                        0 => Payload::Atoms(d.atoms().map_err(bad)?),
                        _ => Payload::Counter(d.u64().map_err(bad)?),
                    };
                    items.push(Item { index, location: Default::default(), payload });
                }
                d.end().map_err(bad)?;
                let list: Bound<'py, PyList> = items_to_py(py, &items)?;
                (codec::CHUNK, chunk, list).into_pyobject(py)
            }
            t => Err(bad(format!("unknown tag {t}"))),
        }
    })
}

/// The worker's answer to a chunk: its runner's results encoded.
#[pyfunction]
fn encode_results<'py>(py: Python<'py>, chunk: u64, results: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    guarded(|| {
        let n = results.len()?;
        let results = results_from_py(results, n)?;
        let mut e = Enc::default();
        e.u8(codec::RESULTS);
        e.u64(chunk);
        e.u64(results.len() as u64);
        results.iter().for_each(|r| codec::enc_result(&mut e, r));
        Ok(PyBytes::new(py, &e.0))
    })
}

/// The worker's answer to setup: ready (`None`) or the failure message.
#[pyfunction]
#[pyo3(signature = (failure = None))]
fn encode_setup_reply<'py>(py: Python<'py>, failure: Option<&str>) -> Bound<'py, PyBytes> {
    let mut e = Enc::default();
    match failure {
        None => e.u8(codec::READY),
        Some(m) => {
            e.u8(codec::SETUP_FAILED);
            e.str(m);
        }
    }
    PyBytes::new(py, &e.0)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode_message, m)?)?;
    m.add_function(wrap_pyfunction!(encode_results, m)?)?;
    m.add_function(wrap_pyfunction!(encode_setup_reply, m)?)?;
    Ok(())
}
