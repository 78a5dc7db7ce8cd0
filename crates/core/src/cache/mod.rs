//! Content-keyed outputs: never stale, never lost.
//!
//! # Files beside an output `DIR/NAME`
//!
//! | file | when | what |
//! |---|---|---|
//! | `NAME` | complete runs | the extxyz output, untouched by the cache (ASE reads it) |
//! | `NAME.autopara.json` | complete runs | the run record: the [`RunKey`], the output's size and blake3, counts ([`RunRecord`]) |
//! | `NAME.failures.jsonl` | complete runs with failures | one [`FailureEntry`] per failed item, JSON lines |
//! | `.NAME.autopara-partial`, `.NAME.autopara-failures-partial` | during a run | the output and failures being written |
//! | `.NAME.autopara-record` | while a run completes | its record, before it is synced and renamed |
//! | `.NAME.autopara-journal` (first output only) | during a run | checkpoints for resume ([`journal`]) |
//! | `.NAME.autopara-lock` | during a run | the writer's lock ([`lock`]) |
//!
//! # Rules
//!
//! - A complete output is **reused** when its record's key equals this run's
//!   key and the file still has the recorded size and digest.
//! - It is **refused** when the key differs (the error lists each change:
//!   `args.steps: 1000 -> 2000`, `input digest differs`, `op md version 2 ->
//!   3`), when the file was modified, or when it has no record; `overwrite`
//!   recomputes instead.
//! - Otherwise the run **resumes** from the journal of an interrupted run
//!   with the same key, when its partial files still hold exactly what the
//!   journal records (length and blake3 digest of every partial file), or
//!   **computes** from the start. `overwrite` always computes from the start.
//!   Resuming never extends a partial file: what is missing is recomputed.
//! - On completion the partial output is synced, the record is written
//!   (synced, renamed into place) and the output renamed into place last, so
//!   a file under its final name is always complete; the journal goes after.
//!   A journal (or partial file) left beside complete outputs, by a kill
//!   between the last rename and its removal, is removed when they are
//!   reused ([`remove_leftovers`]).
//! - A run that fails before journaling any item leaves no journal or
//!   partial file behind ([`FileSink::abandon`]).

pub mod journal;
pub mod key;
pub mod lock;

use crate::atoms::Atoms;
use crate::error::{Error, Result};
use crate::executor::{Encoder, FailureRecord, FrameWriter, ResultSink};
use crate::operation::Location;
use crate::sidecar::{
    failures_path, journal_path, partial_failures_path, partial_path, read_json, record_path, record_tmp_path,
};
use journal::{Journal, JournalState, OutputState, Resumable};
pub use key::{AUTOPARA_VERSION, DigestPass, InputDigest, RunKey, canonical_json, input_digest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Format version of [`RunRecord`].
pub const RECORD_FORMAT: u32 = 1;

/// `NAME.autopara.json`: what produced a complete output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Record format version ([`RECORD_FORMAT`]).
    pub autopara_record: u32,
    /// The run's key.
    pub key: RunKey,
    /// Size of the output in bytes.
    pub bytes: u64,
    /// `blake3:<hex>` of the output.
    pub digest: String,
    /// Input items that map to this output (succeeded or failed).
    pub items: u64,
    /// Configurations in the output.
    pub configs: u64,
    /// Failed items, listed in `NAME.failures.jsonl`.
    pub failed: u64,
}

/// One line of `NAME.failures.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureEntry {
    /// Global index of the item in the inputs.
    pub index: u64,
    /// Where the item came from, as text (` / 0 / 3`).
    pub location: String,
    /// The same, structured.
    pub loc: Location,
    /// The op.
    pub op: String,
    /// Why it failed.
    pub message: String,
    /// Byte offset in the output where the item's configurations would be
    /// (used by `--retry-failed` to merge them in input order).
    pub offset: u64,
    /// Bytes of configurations written in the item's place although it failed
    /// ([`FailureRecord::frames`]: a failed batch job's flagged inputs), which
    /// `--retry-failed` replaces; 0 for most failures.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bytes: u64,
    /// How many configurations those bytes hold.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub configs: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// `blake3:<hex>` of a file's content.
pub fn file_digest(path: &Path) -> Result<String> {
    let mut h = blake3::Hasher::new();
    let mut f = File::open(path).map_err(io_err(path))?;
    h.update_reader(&mut f).map_err(io_err(path))?;
    Ok(format!("blake3:{}", h.finalize().to_hex()))
}

/// Reads the record of `output`, `None` when there is none.
pub fn read_record(output: &Path) -> Result<Option<RunRecord>> {
    read_json(&record_path(output), "autopara record")
}

/// Reads the failure records of a complete `output` (none when the file is absent).
pub fn read_failures(output: &Path) -> Result<Vec<FailureEntry>> {
    let path = failures_path(output);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::Cache(format!("{}: line {}: bad failure record: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// What a run on file outputs will do.
#[derive(Debug)]
pub enum Plan {
    /// Every output is complete with this key: nothing to run.
    Reuse(Vec<RunRecord>),
    /// An interrupted run with this key left a journal: continue it.
    Resume(Resumable),
    /// Start from the first item; the text says why.
    Compute(String),
}

impl Plan {
    /// One line for `--dry-run` and logs.
    pub fn describe(&self, outputs: &[PathBuf]) -> String {
        let names = outputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        match self {
            Plan::Reuse(records) => {
                let items: u64 = records.iter().map(|r| r.items).sum();
                let failed: u64 = records.iter().map(|r| r.failed).sum();
                format!("reuse: {names} complete with the same key ({items} items, {failed} failed); nothing to run")
            }
            Plan::Resume(state) => format!(
                "resume: {names}: an interrupted run with the same key finished {} items; continuing from item {}",
                state.items_done(),
                state.next_index
            ),
            Plan::Compute(why) => format!("compute: {names}: {why}"),
        }
    }
}

/// Decides between reuse, resume and compute for `outputs` under `key`, or
/// refuses (stale or foreign outputs without `overwrite`).
pub fn plan(outputs: &[PathBuf], key: &RunKey, overwrite: bool) -> Result<Plan> {
    let mut records = Vec::new();
    let mut missing = None;
    for out in outputs {
        if !out.exists() {
            missing.get_or_insert_with(|| format!("{} does not exist", out.display()));
            continue;
        }
        let problem = match read_record(out)? {
            None => Some(format!(
                "{} exists but has no autopara record ({}), so it was not written by autopara or its record was \
                 removed",
                out.display(),
                record_path(out).display()
            )),
            Some(record) => {
                let changes = key.changes_from(&record.key);
                let size = std::fs::metadata(out).map_err(io_err(out))?.len();
                // Under overwrite the output is recomputed whatever it holds:
                // reading all of it for its digest would only change a message.
                let modified = || -> Result<bool> {
                    Ok(size != record.bytes || (!overwrite && file_digest(out)? != record.digest))
                };
                if !changes.is_empty() {
                    Some(format!("{} holds results of a different run: {}", out.display(), changes.join("; ")))
                } else if modified()? {
                    Some(format!(
                        "{} was modified after autopara wrote it (its digest differs from the record)",
                        out.display()
                    ))
                } else {
                    records.push(record);
                    None
                }
            }
        };
        if let Some(problem) = problem {
            if !overwrite {
                return Err(Error::Cache(format!(
                    "{problem}. Rerun with --overwrite (overwrite = true) to recompute it."
                )));
            }
            missing.get_or_insert(format!("{problem}; recomputing (overwrite)"));
        }
    }
    if missing.is_none() {
        if !overwrite {
            return Ok(Plan::Reuse(records));
        }
        missing = Some("recomputing complete outputs (overwrite)".into());
    }
    let why = missing.unwrap_or_default();
    let Some(first) = outputs.first() else { return Ok(Plan::Compute(why)) };
    let journal = journal_path(first);
    if overwrite {
        // Overwriting starts from nothing, whatever an interrupted run left.
        return Ok(Plan::Compute(if journal.exists() {
            format!("{why}; discarding an interrupted run (overwrite)")
        } else {
            why
        }));
    }
    match journal::read(&journal, key, outputs)? {
        JournalState::Matches(state) => match partials_differ(outputs, &state)? {
            None => Ok(Plan::Resume(state)),
            Some(reason) => Ok(Plan::Compute(format!("{why}; discarding an interrupted run: {reason}"))),
        },
        JournalState::Absent => Ok(Plan::Compute(why)),
        JournalState::Other(reason) => Ok(Plan::Compute(format!("{why}; discarding an interrupted run: {reason}"))),
    }
}

/// The first `len` bytes of `path` hashed, or why they cannot be: the file
/// is missing or shorter (a missing file holds 0 bytes).
fn hash_prefix(path: &Path, len: u64) -> Result<std::result::Result<blake3::Hasher, String>> {
    let mut hasher = blake3::Hasher::new();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(if len == 0 { Ok(hasher) } else { Err(format!("{} is missing", path.display())) });
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let have = hasher.update_reader(file.take(len)).map_err(io_err(path))?.count();
    if have < len {
        return Ok(Err(format!("{} holds {have} bytes, fewer than the {len} its journal records", path.display())));
    }
    Ok(Ok(hasher))
}

/// The hasher of the first `len` bytes of `path` when they have `digest`,
/// else why not.
fn verified_prefix(path: &Path, len: u64, digest: &str) -> Result<std::result::Result<blake3::Hasher, String>> {
    Ok(hash_prefix(path, len)?.and_then(|h| {
        if journal::digest_string(&h) == digest {
            Ok(h)
        } else {
            Err(format!("{} does not hold what its journal records (its digest differs)", path.display()))
        }
    }))
}

/// Why the partial files of `outputs` do not hold exactly what `state`
/// journaled (length and digest of the journaled part), or `None` when they do.
fn partials_differ(outputs: &[PathBuf], state: &Resumable) -> Result<Option<String>> {
    for (out, s) in outputs.iter().zip(&state.outputs) {
        let partials =
            [(partial_path(out), s.bytes, &s.digest), (partial_failures_path(out), s.failure_bytes, &s.failure_digest)];
        for (path, len, digest) in partials {
            if let Err(why) = verified_prefix(&path, len, digest)? {
                return Ok(Some(why));
            }
        }
    }
    Ok(None)
}

/// The files a run writes beside `output` before it completes.
fn run_files(output: &Path) -> [PathBuf; 3] {
    [partial_path(output), partial_failures_path(output), record_tmp_path(output)]
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Removes what interrupted runs left beside complete `outputs` (their
/// journal and partial files): called when the outputs are reused, under
/// their locks. Such a journal is stale (a kill between the last rename and
/// the journal's removal leaves one) and is never resumed.
pub fn remove_leftovers(outputs: &[PathBuf]) -> Result<()> {
    for out in outputs {
        for path in run_files(out) {
            remove_if_present(&path)?;
        }
    }
    match outputs.first() {
        Some(first) => remove_if_present(&journal_path(first)),
        None => Ok(()),
    }
}

/// A writer that counts and hashes the bytes through it. It sits under the
/// output's buffer, so that it hashes large blocks (blake3 is fastest on
/// many 1 KiB chunks at once). Every [`WRITEBACK_EVERY`] bytes it asks the
/// kernel to start writing them to disk, so that the `fsync` completing the
/// run finds most of the file written instead of all of it to write.
struct Counting {
    inner: File,
    bytes: u64,
    hash: blake3::Hasher,
    /// The bytes before this offset have been handed to the kernel's write-back.
    queued: u64,
}

/// How many bytes of a partial file accumulate before their write-back is started.
const WRITEBACK_EVERY: u64 = 1 << 20;

impl Counting {
    fn new(inner: File, bytes: u64, hash: blake3::Hasher) -> Counting {
        Counting { inner, bytes, hash, queued: bytes }
    }
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or_default());
        self.bytes += n as u64;
        if self.bytes - self.queued >= WRITEBACK_EVERY {
            start_writeback(&self.inner, self.queued, self.bytes - self.queued);
            self.queued = self.bytes;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to
/// disk, without waiting for it (Linux's `sync_file_range` with
/// `SYNC_FILE_RANGE_WRITE`; elsewhere nothing). It is advice: durability
/// still comes from the `fsync` in [`FileSink::finish`], which reports any
/// error, so an error here is ignored.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
    // SAFETY: sync_file_range takes integers only and touches no memory of
    // ours; the descriptor stays open while `file` is borrowed.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// A partial file being written: buffered, then counted and hashed.
type Hashed = BufWriter<Counting>;

/// Bytes written to `w` so far, buffered ones included.
fn written(w: &Hashed) -> u64 {
    w.get_ref().bytes + w.buffer().len() as u64
}

/// The open partial files of the output currently being written.
struct Open {
    index: usize,
    out_path: PathBuf,
    failures_path: PathBuf,
    out: Hashed,
    failures: Hashed,
}

/// Writes a run's results into partial files beside its outputs, journaling
/// each checkpoint (with the length and digest of every partial file);
/// [`FileSink::finish`] turns them into complete outputs.
pub struct FileSink<'a> {
    outputs: Vec<PathBuf>,
    states: Vec<OutputState>,
    open: Option<Open>,
    dirty: BTreeSet<usize>,
    journal: Journal,
    mode: journal::Mode,
    route: &'a dyn Fn(&Location) -> usize,
    write_frame: FrameWriter,
    /// When the journal was last appended to, and the minimum time between lines.
    last_journal: Instant,
    journal_every: Duration,
}

/// Default minimum time between journal lines: a kill loses at most this much work.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);

/// Environment variable overriding [`CHECKPOINT_INTERVAL`], in seconds (0: every chunk).
pub const ENV_CHECKPOINT_INTERVAL: &str = "AUTOPARA_CHECKPOINT_INTERVAL";

fn checkpoint_interval() -> Duration {
    std::env::var(ENV_CHECKPOINT_INTERVAL)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(CHECKPOINT_INTERVAL)
}

/// Cuts `path` to `len` bytes (creating it when `len` is 0). Never extends
/// it: a file shorter than `len` is an error, since the bytes it lacks would
/// read back as zeros.
fn cut_to(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new().create(len == 0).truncate(false).write(true).open(path).map_err(io_err(path))?;
    let have = file.metadata().map_err(io_err(path))?.len();
    if have < len {
        return Err(Error::Cache(format!(
            "{} holds {have} bytes, fewer than the {len} its journal records; rerun to recompute",
            path.display()
        )));
    }
    file.set_len(len).map_err(io_err(path))
}

/// Opens `path`, whose first `len` bytes must have `digest`, for appending
/// after them.
fn open_at(path: &Path, len: u64, digest: &str) -> Result<Hashed> {
    cut_to(path, len)?;
    let hash = verified_prefix(path, len, digest)?.map_err(|why| Error::Cache(format!("{why}; rerun to recompute")))?;
    let file = OpenOptions::new().append(true).open(path).map_err(io_err(path))?;
    Ok(BufWriter::with_capacity(1 << 16, Counting::new(file, len, hash)))
}

/// Writes `text` to `path` durably: into `tmp`, synced, renamed.
fn write_durably(path: &Path, tmp: &Path, text: &str) -> Result<()> {
    let written = File::create(tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .map_err(io_err(tmp))
        .and_then(|()| std::fs::rename(tmp, path).map_err(io_err(path)));
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

/// Makes renames in `dir` durable where the platform allows it (best effort:
/// a crash can then lose the renames, never a file's content).
fn sync_dir(path: &Path) {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

impl<'a> FileSink<'a> {
    /// Starts (or, given `resume`, continues) writing `outputs` for `key`.
    /// `route` maps an item's location to its output index, `write_frame`
    /// serializes one configuration. `resume` must come from [`plan`], which
    /// checked that the partial files hold what its journal records.
    pub fn start(
        outputs: &[PathBuf],
        key: &RunKey,
        resume: Option<&Resumable>,
        route: &'a dyn Fn(&Location) -> usize,
        write_frame: FrameWriter,
    ) -> Result<FileSink<'a>> {
        FileSink::open(outputs, key, resume, journal::Mode::Run, route, write_frame)
    }

    /// Starts writing `outputs` as a merge of kept old results and retried items
    /// (`--retry-failed`); its journal is never resumed.
    pub fn start_merge(
        outputs: &[PathBuf],
        key: &RunKey,
        route: &'a dyn Fn(&Location) -> usize,
        write_frame: FrameWriter,
    ) -> Result<FileSink<'a>> {
        FileSink::open(outputs, key, None, journal::Mode::Merge, route, write_frame)
    }

    fn open(
        outputs: &[PathBuf],
        key: &RunKey,
        resume: Option<&Resumable>,
        mode: journal::Mode,
        route: &'a dyn Fn(&Location) -> usize,
        write_frame: FrameWriter,
    ) -> Result<FileSink<'a>> {
        let first = outputs.first().ok_or_else(|| Error::Output("no output files".into()))?;
        for out in outputs {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            }
        }
        let jpath = journal_path(first);
        let (states, journal) = match resume {
            Some(state) => (state.outputs.clone(), Journal::reopen(&jpath, state)?),
            None => (vec![OutputState::default(); outputs.len()], Journal::create(&jpath, key, outputs, mode)?),
        };
        let sink = FileSink {
            outputs: outputs.to_vec(),
            states,
            open: None,
            dirty: BTreeSet::new(),
            journal,
            mode,
            route,
            write_frame,
            last_journal: Instant::now(),
            journal_every: checkpoint_interval(),
        };
        // Bring every partial file to its journaled length (0 for a fresh run).
        let cut = sink.outputs.iter().zip(&sink.states).try_for_each(|(out, s)| {
            cut_to(&partial_path(out), s.bytes)?;
            cut_to(&partial_failures_path(out), s.failure_bytes)
        });
        match cut {
            Ok(()) => Ok(sink),
            Err(e) => {
                sink.abandon();
                Err(e)
            }
        }
    }

    /// Gives up a run that failed: removes its journal and partial files when
    /// they hold nothing worth resuming (no item journaled or written, or a
    /// `--retry-failed` merge, which is never resumed); otherwise keeps them
    /// for a rerun to resume.
    pub fn abandon(mut self) {
        let _ = self.flush_open();
        self.open = None;
        let nothing = self.states.iter().all(|s| s.items == 0 && s.bytes == 0 && s.failure_bytes == 0);
        if !nothing && self.mode == journal::Mode::Run {
            return;
        }
        for out in &self.outputs {
            for path in run_files(out) {
                let _ = remove_if_present(&path);
            }
        }
        if let Some(first) = self.outputs.first() {
            let _ = remove_if_present(&journal_path(first));
        }
    }

    /// Copies `len` bytes of kept results from `src` to the end of output
    /// `index`, counting `items` and `configs` for its record (merges).
    pub fn append_kept(&mut self, index: usize, src: &mut dyn Read, len: u64, items: u64, configs: u64) -> Result<()> {
        let open = self.select_index(index)?;
        let copied = std::io::copy(&mut src.take(len), &mut open.out).map_err(io_err(&open.out_path))?;
        if copied != len {
            return Err(Error::Cache(format!(
                "{}: shorter than its record says (copied {copied} of {len} bytes)",
                self.outputs[index].display()
            )));
        }
        let s = &mut self.states[index];
        s.items += items;
        s.configs += configs;
        Ok(())
    }

    /// Flushes the open output and records its lengths and digests in `states`.
    fn flush_open(&mut self) -> Result<()> {
        if let Some(open) = &mut self.open {
            open.out.flush().map_err(io_err(&open.out_path))?;
            open.failures.flush().map_err(io_err(&open.failures_path))?;
            let s = &mut self.states[open.index];
            let (out, failures) = (open.out.get_ref(), open.failures.get_ref());
            s.bytes = out.bytes;
            s.digest = journal::digest_string(&out.hash);
            s.failure_bytes = failures.bytes;
            s.failure_digest = journal::digest_string(&failures.hash);
        }
        Ok(())
    }

    /// The open files of the output for `location`.
    fn select(&mut self, location: &Location) -> Result<&mut Open> {
        let index = (self.route)(location);
        if index >= self.outputs.len() {
            return Err(Error::Output(format!(
                "item at{location} maps to output {index}, but there are {}",
                self.outputs.len()
            )));
        }
        self.select_index(index)
    }

    /// The open files of output `index`, switching outputs when needed.
    fn select_index(&mut self, index: usize) -> Result<&mut Open> {
        if self.open.as_ref().is_none_or(|o| o.index != index) {
            self.flush_open()?;
            self.open = None;
            let out = &self.outputs[index];
            let s = &self.states[index];
            let (out_path, failures_path) = (partial_path(out), partial_failures_path(out));
            self.open = Some(Open {
                index,
                out: open_at(&out_path, s.bytes, &s.digest)?,
                failures: open_at(&failures_path, s.failure_bytes, &s.failure_digest)?,
                out_path,
                failures_path,
            });
        }
        self.dirty.insert(index);
        self.open.as_mut().ok_or_else(|| Error::Other("output switch failed".into()))
    }

    /// Completes the run: per output, syncs the partial file, moves the
    /// failure records into place, writes the record (with `key`) and renames
    /// the partial file to its final name last; then removes the journal.
    /// Returns the records.
    pub fn finish(mut self, key: &RunKey) -> Result<Vec<RunRecord>> {
        self.flush_open()?;
        self.open = None;
        let mut records = Vec::new();
        for (out, s) in self.outputs.iter().zip(&self.states) {
            let partial = partial_path(out);
            File::open(&partial).and_then(|f| f.sync_all()).map_err(io_err(&partial))?;
            let record = RunRecord {
                autopara_record: RECORD_FORMAT,
                key: key.clone(),
                bytes: s.bytes,
                digest: s.digest.clone(),
                items: s.items,
                configs: s.configs,
                failed: s.failed,
            };
            let pf = partial_failures_path(out);
            let ff = failures_path(out);
            if s.failed > 0 {
                File::open(&pf).and_then(|f| f.sync_all()).map_err(io_err(&pf))?;
                std::fs::rename(&pf, &ff).map_err(io_err(&ff))?;
            } else {
                remove_if_present(&pf)?;
                remove_if_present(&ff)?;
            }
            let text = serde_json::to_string_pretty(&record).map_err(|e| Error::Other(e.to_string()))?;
            write_durably(&record_path(out), &record_tmp_path(out), &(text + "\n"))?;
            std::fs::rename(&partial, out).map_err(io_err(out))?;
            sync_dir(out);
            records.push(record);
        }
        if let Some(first) = self.outputs.first() {
            let j = journal_path(first);
            std::fs::remove_file(&j).map_err(|e| {
                Error::Cache(format!(
                    "the outputs are complete, but their journal {} could not be removed ({e}); the next run \
                     removes it",
                    j.display()
                ))
            })?;
        }
        Ok(records)
    }
}

impl ResultSink for FileSink<'_> {
    fn write_item(&mut self, _index: u64, location: &Location, frames: Vec<Atoms>) -> Result<()> {
        let write_frame = self.write_frame;
        let open = self.select(location)?;
        let index = open.index;
        let n = frames.len() as u64;
        for at in frames {
            write_frame(&mut open.out, &at).map_err(io_err(&open.out_path))?;
        }
        let s = &mut self.states[index];
        s.items += 1;
        s.configs += n;
        Ok(())
    }

    fn encoder(&self) -> Option<Encoder> {
        Some(Encoder::new(self.write_frame))
    }

    fn write_encoded(&mut self, _index: u64, location: &Location, bytes: &[u8], frames: u64) -> Result<()> {
        let open = self.select(location)?;
        let index = open.index;
        open.out.write_all(bytes).map_err(io_err(&open.out_path))?;
        let s = &mut self.states[index];
        s.items += 1;
        s.configs += frames;
        Ok(())
    }

    fn write_failure(&mut self, failure: &FailureRecord) -> Result<()> {
        let write_frame = self.write_frame;
        let open = self.select(&failure.location)?;
        let index = open.index;
        let offset = written(&open.out);
        for at in &failure.frames {
            write_frame(&mut open.out, at).map_err(io_err(&open.out_path))?;
        }
        let configs = failure.frames.len() as u64;
        let entry = FailureEntry {
            index: failure.index,
            location: failure.location.to_string(),
            loc: failure.location.clone(),
            op: failure.op.clone(),
            message: failure.message.clone(),
            offset,
            bytes: written(&open.out) - offset,
            configs,
        };
        let mut line = serde_json::to_string(&entry).map_err(|e| Error::Other(e.to_string()))?;
        line.push('\n');
        open.failures.write_all(line.as_bytes()).map_err(io_err(&open.failures_path))?;
        let s = &mut self.states[index];
        s.items += 1;
        s.failed += 1;
        s.configs += configs;
        Ok(())
    }

    fn checkpoint(&mut self, next_index: u64, now: bool) -> Result<()> {
        if !now && self.last_journal.elapsed() < self.journal_every {
            return Ok(());
        }
        self.last_journal = Instant::now();
        self.flush_open()?;
        let changed: BTreeMap<usize, OutputState> =
            std::mem::take(&mut self.dirty).into_iter().map(|i| (i, self.states[i].clone())).collect();
        self.journal.append(next_index, changed)
    }
}

#[cfg(test)]
mod tests;
