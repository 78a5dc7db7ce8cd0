//! The settings of one run with every choice made ([`ResolvedAutopara`]),
//! which [`crate::autopara_info::AutoparaInfo::resolve`] produces from the
//! caller's partial ones.

use super::backend::Backend;
use crate::operation::WorkerContext;
use std::fmt;
use std::sync::Arc;

/// A function run once per worker before its first chunk (in serial runs too),
/// for example to build calculators ahead of time with [`WorkerContext::calculator`].
/// An error stops the run, naming the worker.
pub type Initializer = Arc<dyn Fn(&mut WorkerContext) -> std::result::Result<(), String> + Send + Sync>;

/// Settings with every choice made, for one run of one op.
#[derive(Clone)]
pub struct ResolvedAutopara {
    /// Number of workers (at least 1).
    pub workers: usize,
    /// Items per chunk (at least 1).
    pub chunk_size: usize,
    /// Seed of the per-item random streams.
    pub seed: u64,
    /// Keep going after failures.
    pub skip_failed: bool,
    /// Per-worker initializer.
    pub initializer: Option<Initializer>,
    /// The backend that runs chunks.
    pub backend: Arc<dyn Backend>,
    /// Show progress and the start line.
    pub progress: bool,
}

impl fmt::Debug for ResolvedAutopara {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedAutopara")
            .field("workers", &self.workers)
            .field("chunk_size", &self.chunk_size)
            .field("seed", &self.seed)
            .field("skip_failed", &self.skip_failed)
            .field("backend", &self.backend.name())
            .field("progress", &self.progress)
            .finish()
    }
}
