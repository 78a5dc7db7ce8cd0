//! The core error type.

use std::path::PathBuf;

/// Errors from core: I/O, parsing, argument validation and execution.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A malformed extxyz file.
    #[error("{path}: frame {frame}, line {line}: {message}")]
    Parse {
        /// The file (`<memory>` for strings).
        path: PathBuf,
        /// 0-based frame index.
        frame: usize,
        /// 1-based line number in the file.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Bad operation or calculator arguments; `field` is the path of the offending field.
    #[error("{context}: {field}: {message}")]
    Args {
        /// Which op or calculator.
        context: String,
        /// The field path (`calculator.sigma`, `temperature`), or `-` for the whole value.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A name that is not registered.
    #[error("unknown {kind} '{name}'; registered: {known}")]
    Unknown {
        /// `op`, `calculator`, `descriptor`.
        kind: &'static str,
        /// The requested name.
        name: String,
        /// Comma-separated registered names.
        known: String,
    },
    /// Input selection problems (missing files, empty globs).
    #[error("input: {0}")]
    Input(String),
    /// Output problems (existing files, templates).
    #[error("output: {0}")]
    Output(String),
    /// A cached output that does not match this run.
    #[error("{0}")]
    Cache(String),
    /// A failed item when `skip_failed` is false.
    #[error("item {index} ({location}) failed in op {op}: {message}")]
    ItemFailed {
        /// Global item index.
        index: u64,
        /// Where the item came from.
        location: String,
        /// The op.
        op: String,
        /// Why.
        message: String,
    },
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}
