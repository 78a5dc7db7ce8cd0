//! The resume journal of a file run (`.NAME.autopara-journal` beside the
//! first output): JSON lines, the first naming the run's key and outputs, then
//! one per checkpoint with the index of the next unwritten item and, for each
//! output touched since the previous checkpoint, its byte lengths and counts.
//!
//! A line is appended only after the output bytes it describes were written,
//! so after a crash (SIGKILL, power aside) every complete line describes bytes
//! that exist. Each line also records the blake3 digest of those bytes, so a
//! resume first checks that the partial files still hold them (see
//! [`super::plan`]), then truncates the partial files to the last line's
//! lengths and continues from its `next` index. A partial file that is
//! missing, shorter or different is never extended or trusted: the run
//! starts again.

use super::key::RunKey;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Format version of the journal (its header's `autopara_journal`); a
/// journal of another format is never resumed.
pub const JOURNAL_FORMAT: u32 = 2;

/// The state of one output file at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputState {
    /// Bytes of the partial output.
    pub bytes: u64,
    /// `blake3:<hex>` of those bytes.
    pub digest: String,
    /// Bytes of the partial failure records.
    pub failure_bytes: u64,
    /// `blake3:<hex>` of those bytes.
    pub failure_digest: String,
    /// Items routed to this output (succeeded or failed).
    pub items: u64,
    /// Configurations written.
    pub configs: u64,
    /// Failed items.
    pub failed: u64,
}

impl Default for OutputState {
    /// Nothing written yet.
    fn default() -> OutputState {
        let empty = digest_string(&blake3::Hasher::new());
        OutputState {
            bytes: 0,
            digest: empty.clone(),
            failure_bytes: 0,
            failure_digest: empty,
            items: 0,
            configs: 0,
            failed: 0,
        }
    }
}

/// `blake3:<hex>` of what `hasher` has seen so far.
pub fn digest_string(hasher: &blake3::Hasher) -> String {
    format!("blake3:{}", hasher.finalize().to_hex())
}

/// What kind of run a journal belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A run from the first item: resumable.
    Run,
    /// A `--retry-failed` merge: its partial files mix old and new results, so it is never resumed.
    Merge,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    autopara_journal: u32,
    mode: Mode,
    key: RunKey,
    outputs: Vec<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    next: u64,
    outputs: BTreeMap<usize, OutputState>,
}

/// What a journal says was finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumable {
    /// Index of the first item not yet written.
    pub next_index: u64,
    /// Per-output state, in output order.
    pub outputs: Vec<OutputState>,
    /// Byte length of the valid part of the journal.
    valid_len: u64,
}

impl Resumable {
    /// Items finished over all outputs.
    pub fn items_done(&self) -> u64 {
        self.outputs.iter().map(|o| o.items).sum()
    }
}

/// Why a journal cannot be resumed (for explanations), or what it holds.
#[derive(Debug)]
pub enum JournalState {
    /// No journal file.
    Absent,
    /// A journal of a run with a different key or outputs.
    Other(String),
    /// A journal of this run.
    Matches(Resumable),
}

/// Reads the journal at `path` and checks it belongs to (`key`, `outputs`).
pub fn read(path: &Path, key: &RunKey, outputs: &[PathBuf]) -> Result<JournalState> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(JournalState::Absent),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut reader = BufReader::new(file);
    let mut text = String::new();
    let mut valid_len = 0u64;
    let read_line = |reader: &mut BufReader<File>, text: &mut String| -> Result<Option<usize>> {
        text.clear();
        let n = reader.read_line(text).map_err(|e| Error::io(path, e))?;
        // A line without its newline was cut by the crash: not valid.
        Ok((n > 0 && text.ends_with('\n')).then_some(n))
    };
    let Some(n) = read_line(&mut reader, &mut text)? else {
        return Ok(JournalState::Other("its journal is empty".into()));
    };
    let header: Header = match serde_json::from_str(&text) {
        Ok(h) => h,
        Err(e) => return Ok(JournalState::Other(format!("its journal is unreadable ({e})"))),
    };
    if header.autopara_journal != JOURNAL_FORMAT {
        return Ok(JournalState::Other(format!(
            "its journal has format {}, not {JOURNAL_FORMAT} (written by another autopara version)",
            header.autopara_journal
        )));
    }
    if header.mode != Mode::Run {
        return Ok(JournalState::Other("it was an interrupted --retry-failed merge".into()));
    }
    if header.key != *key {
        return Ok(JournalState::Other(format!(
            "the interrupted run had a different key: {}",
            key.changes_from(&header.key).join("; ")
        )));
    }
    if header.outputs != outputs {
        return Ok(JournalState::Other("the interrupted run wrote different output files".into()));
    }
    valid_len += n as u64;
    let mut state = Resumable { next_index: 0, outputs: vec![OutputState::default(); outputs.len()], valid_len };
    while let Some(n) = read_line(&mut reader, &mut text)? {
        let Ok(line) = serde_json::from_str::<Line>(&text) else { break };
        for (i, s) in line.outputs {
            if let Some(slot) = state.outputs.get_mut(i) {
                *slot = s;
            }
        }
        state.next_index = line.next;
        valid_len += n as u64;
        state.valid_len = valid_len;
    }
    Ok(JournalState::Matches(state))
}

/// An open journal being appended to.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Starts a new journal for (`key`, `outputs`) in `mode`, replacing any old one.
    pub fn create(path: &Path, key: &RunKey, outputs: &[PathBuf], mode: Mode) -> Result<Journal> {
        let mut file = File::create(path).map_err(|e| Error::io(path, e))?;
        let header = Header { autopara_journal: JOURNAL_FORMAT, mode, key: key.clone(), outputs: outputs.to_vec() };
        let mut line = serde_json::to_string(&header).map_err(|e| Error::Other(e.to_string()))?;
        line.push('\n');
        if let Err(e) = file.write_all(line.as_bytes()) {
            // A journal without its header is no journal.
            let _ = std::fs::remove_file(path);
            return Err(Error::io(path, e));
        }
        Ok(Journal { file, path: path.to_path_buf() })
    }

    /// Reopens the journal of `state` for appending, dropping any cut-off last line.
    pub fn reopen(path: &Path, state: &Resumable) -> Result<Journal> {
        let file = OpenOptions::new().write(true).open(path).map_err(|e| Error::io(path, e))?;
        file.set_len(state.valid_len).map_err(|e| Error::io(path, e))?;
        drop(file);
        let file = OpenOptions::new().append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(Journal { file, path: path.to_path_buf() })
    }

    /// Records a checkpoint: items below `next` are written; `changed` outputs have these states.
    pub fn append(&mut self, next: u64, changed: BTreeMap<usize, OutputState>) -> Result<()> {
        let mut line =
            serde_json::to_string(&Line { next, outputs: changed }).map_err(|e| Error::Other(e.to_string()))?;
        line.push('\n');
        // One write call per line: a kill leaves either the whole line or a cut one.
        self.file.write_all(line.as_bytes()).map_err(|e| Error::io(&self.path, e))
    }
}
