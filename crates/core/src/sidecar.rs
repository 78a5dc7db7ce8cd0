//! The files autopara keeps beside an output `DIR/NAME`: their names, and
//! the one fact about a complete output that reading inputs needs (whether an
//! empty file is a complete output without configurations). The cache
//! ([`crate::cache`]) writes and reads them; see its module docs for the table
//! of files and the rules.

use crate::error::{Error, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// `DIR/.NAME.suffix` for `DIR/NAME`.
pub(crate) fn hidden_sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{suffix}"))
}

/// `DIR/NAME.suffix` for `DIR/NAME`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{name}.{suffix}"))
}

/// The run record of `output` (`NAME.autopara.json`).
pub fn record_path(output: &Path) -> PathBuf {
    sibling(output, "autopara.json")
}

/// The failure records of `output` (`NAME.failures.jsonl`).
pub fn failures_path(output: &Path) -> PathBuf {
    sibling(output, "failures.jsonl")
}

pub(crate) fn partial_path(output: &Path) -> PathBuf {
    hidden_sibling(output, "autopara-partial")
}

pub(crate) fn partial_failures_path(output: &Path) -> PathBuf {
    hidden_sibling(output, "autopara-failures-partial")
}

/// The run record of `output` while it is being written.
pub(crate) fn record_tmp_path(output: &Path) -> PathBuf {
    hidden_sibling(output, "autopara-record")
}

/// The resume journal of a run whose first output is `output`.
pub fn journal_path(output: &Path) -> PathBuf {
    hidden_sibling(output, "autopara-journal")
}

/// Reads the JSON file at `path` (`what` names it in errors), `None` when
/// there is none.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Cache(format!("{}: unreadable {what}: {e}", path.display())))
}

/// The sizes a run record gives (the rest of it is [`crate::cache::RunRecord`]).
#[derive(Deserialize)]
struct Sizes {
    bytes: u64,
    configs: u64,
}

/// Whether `path` is a complete autopara output that holds no configurations:
/// an empty file whose run record says it is complete and empty (every item
/// failed, or the op produced nothing). Such a file is the one extxyz file
/// that reads as zero frames (see [`crate::configset`]); any other empty file
/// is an error, never silently nothing.
pub fn is_empty_output(path: &Path) -> Result<bool> {
    if std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len() != 0 {
        return Ok(false);
    }
    // An unreadable record proves nothing: the reader's error names the file.
    let sizes = read_json::<Sizes>(&record_path(path), "autopara record");
    Ok(sizes.ok().flatten().is_some_and(|r| r.bytes == 0 && r.configs == 0))
}
