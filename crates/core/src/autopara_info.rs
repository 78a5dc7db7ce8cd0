//! [`AutoparaInfo`]: how a run is parallelised (workers, chunk size, seed,
//! failure policy, per-worker initializer, backend).
//!
//! Every field is optional. [`AutoparaInfo::resolve`] fills the unset ones,
//! in this order of precedence: the value set explicitly on the object, then
//! the environment (`AUTOPARA_NUM_WORKERS`, or wfl's
//! `WFL_NUM_PYTHON_SUBPROCESSES`; `AUTOPARA_PROGRESS=0`), then the op's
//! default (chunk size) or the library default. Resolving never changes the
//! caller's object (wfl's `update_defaults` does, so a reused object leaks one
//! op's defaults into the next).
//!
//! ```
//! use autopara_core::autopara_info::AutoparaInfo;
//! use autopara_core::{InputKind, OpInfo};
//! static INFO: OpInfo = OpInfo {
//!     name: "demo", version: 1, default_chunk_size: 10, summary: "demo", input_kind: InputKind::Configs,
//! };
//! let info = AutoparaInfo { workers: Some(2), seed: Some(7), ..Default::default() };
//! let run = info.resolve(&INFO).unwrap();
//! assert_eq!((run.workers, run.chunk_size, run.seed), (2, 10, 7));
//! assert!(info.chunk_size.is_none()); // the caller's object is untouched
//! ```

use crate::error::{Error, Result};
use crate::executor::backend::{Backend, SerialBackend, ThreadsBackend};
use crate::executor::{Initializer, ResolvedAutopara};
use crate::operation::OpInfo;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Environment variable for the number of workers.
pub const ENV_NUM_WORKERS: &str = "AUTOPARA_NUM_WORKERS";
/// wfl's name for the number of workers, accepted as an alias.
pub const ENV_WFL_NUM_WORKERS: &str = "WFL_NUM_PYTHON_SUBPROCESSES";
/// `AUTOPARA_PROGRESS=0` turns progress output off.
pub const ENV_PROGRESS: &str = "AUTOPARA_PROGRESS";

/// Variables that ask for the MPI backend (`AUTOPARA_MPI`, or wfl's
/// `WFL_MPIPOOL`), set to anything but empty or `0`.
pub const ENV_MPI: [&str; 2] = ["AUTOPARA_MPI", "WFL_MPIPOOL"];

/// What in the environment asks for MPI: the first of [`ENV_MPI`] that is set
/// (anything but empty or `0`), as `NAME=value`.
pub fn mpi_requested(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    ENV_MPI.iter().find_map(|k| env(k).filter(|v| !v.is_empty() && v != "0").map(|v| format!("{k}={v}")))
}

/// How a launcher that started more than one rank of this program shows
/// itself, as `NAME=value`; `None` for a single process. Read from what
/// `mpirun`/`mpiexec`/`srun` put in every rank's environment: Open MPI's
/// `OMPI_COMM_WORLD_SIZE`, MPICH/Intel MPI's PMI `PMI_SIZE`, MVAPICH's
/// `MV2_COMM_WORLD_SIZE`, a Slurm job step's `SLURM_STEP_NUM_TASKS` (only
/// inside a step, where `SLURM_STEP_ID` is set: a batch script's
/// `SLURM_NTASKS` describes the allocation, not this process), and for
/// launchers that publish only ranks (PMIx, PMI), a rank above 0.
pub fn mpi_launch(env: impl Fn(&str) -> Option<String>) -> Option<String> {
    let number = |k: &str| env(k).and_then(|v| v.trim().parse::<u64>().ok().map(|n| (n, format!("{k}={}", v.trim()))));
    let sizes = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"];
    let step =
        env("SLURM_STEP_ID").is_some().then(|| number("SLURM_STEP_NUM_TASKS").or_else(|| number("SLURM_NTASKS")));
    let ranks = ["PMIX_RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK"];
    sizes
        .iter()
        .filter_map(|k| number(k))
        .chain(step.flatten())
        .find(|(n, _)| *n > 1)
        .or_else(|| ranks.iter().filter_map(|k| number(k)).find(|(n, _)| *n > 0))
        .map(|(_, what)| what)
}

/// How to run an op: every field optional; see the module docs for precedence.
#[derive(Clone, Default)]
pub struct AutoparaInfo {
    /// Number of workers. 0 and 1 both mean serial, in the calling thread.
    /// Default: the environment, else the number of available cores.
    pub workers: Option<usize>,
    /// Items per chunk (one call of the op). Default: the op's `default_chunk_size`.
    pub chunk_size: Option<usize>,
    /// Seed of the per-item random streams. Default: 0.
    pub seed: Option<u64>,
    /// Keep going after an item fails (recording it) instead of stopping. Default: true.
    pub skip_failed: Option<bool>,
    /// Run once per worker before its first chunk.
    pub initializer: Option<Initializer>,
    /// Where chunks run. Default: serial for one worker, threads otherwise.
    pub backend: Option<Arc<dyn Backend>>,
    /// Show progress (bar on a terminal, log lines otherwise) and the start line.
    /// Default: on unless `AUTOPARA_PROGRESS=0`.
    pub progress: Option<bool>,
}

impl fmt::Debug for AutoparaInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoparaInfo")
            .field("workers", &self.workers)
            .field("chunk_size", &self.chunk_size)
            .field("seed", &self.seed)
            .field("skip_failed", &self.skip_failed)
            .field("initializer", &self.initializer.as_ref().map(|_| "<fn>"))
            .field("backend", &self.backend.as_ref().map(|b| b.name().to_string()))
            .field("progress", &self.progress)
            .finish()
    }
}

/// The process-wide default backend, installed once by a backend crate's
/// initialisation (the MPI backend's `init()` when `AUTOPARA_MPI` is set).
static PROCESS_BACKEND: OnceLock<Arc<dyn Backend>> = OnceLock::new();

/// Installs the backend that every run uses unless its [`AutoparaInfo`] names
/// one. Returns false when a backend was already installed (the first stays).
pub fn set_process_backend(backend: Arc<dyn Backend>) -> bool {
    PROCESS_BACKEND.set(backend).is_ok()
}

/// The backend installed by [`set_process_backend`], if any.
pub fn process_backend() -> Option<Arc<dyn Backend>> {
    PROCESS_BACKEND.get().cloned()
}

impl AutoparaInfo {
    /// Fills unset fields from the process environment and `op`'s defaults.
    pub fn resolve(&self, op: &OpInfo) -> Result<ResolvedAutopara> {
        self.resolve_with_env(op, |k| std::env::var(k).ok())
    }

    /// [`AutoparaInfo::resolve`] with an explicit environment lookup (for tests and
    /// for backends that carry the submitting process's environment).
    pub fn resolve_with_env(&self, op: &OpInfo, env: impl Fn(&str) -> Option<String>) -> Result<ResolvedAutopara> {
        let env_workers = [ENV_NUM_WORKERS, ENV_WFL_NUM_WORKERS]
            .into_iter()
            .find_map(|k| env(k).map(|v| (k, v)))
            .map(|(k, v)| {
                v.trim().parse::<usize>().map_err(|e| Error::Args {
                    context: format!("environment variable {k}"),
                    field: k.to_string(),
                    message: format!("'{v}' is not a non-negative integer ({e})"),
                })
            })
            .transpose()?;
        let given_backend = self.backend.clone().or_else(process_backend);
        let workers = match given_backend.as_ref() {
            // A given backend decides its own worker count.
            Some(b) => b.workers(),
            None => self
                .workers
                .or(env_workers)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1),
        };
        let chunk_size = self.chunk_size.unwrap_or(op.default_chunk_size);
        if chunk_size == 0 {
            return Err(Error::Args {
                context: format!("op {}", op.name),
                field: "chunk_size".into(),
                message: "must be at least 1".into(),
            });
        }
        let backend: Arc<dyn Backend> = match given_backend {
            Some(b) => b,
            None if workers <= 1 => Arc::new(SerialBackend),
            None => Arc::new(ThreadsBackend::new(workers)),
        };
        let progress = self.progress.unwrap_or_else(|| env(ENV_PROGRESS).is_none_or(|v| v.trim() != "0"));
        Ok(ResolvedAutopara {
            workers,
            chunk_size,
            seed: self.seed.unwrap_or(0),
            skip_failed: self.skip_failed.unwrap_or(true),
            initializer: self.initializer.clone(),
            backend,
            progress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::InputKind;

    static OP: OpInfo =
        OpInfo { name: "t", version: 1, default_chunk_size: 5, summary: "test", input_kind: InputKind::Configs };

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn explicit_beats_environment_beats_default() {
        let env = env_of(&[(ENV_NUM_WORKERS, "3")]);
        let explicit = AutoparaInfo { workers: Some(2), chunk_size: Some(9), ..Default::default() };
        let r = explicit.resolve_with_env(&OP, &env).unwrap();
        assert_eq!((r.workers, r.chunk_size), (2, 9));
        assert_eq!(r.backend.name(), "threads");
        let r = AutoparaInfo::default().resolve_with_env(&OP, &env).unwrap();
        assert_eq!((r.workers, r.chunk_size, r.seed, r.skip_failed), (3, 5, 0, true));
        let r = AutoparaInfo::default().resolve_with_env(&OP, env_of(&[])).unwrap();
        assert_eq!(r.workers, std::thread::available_parallelism().map_or(1, |n| n.get()));
    }

    #[test]
    fn wfl_alias_and_serial() {
        let r = AutoparaInfo::default().resolve_with_env(&OP, env_of(&[(ENV_WFL_NUM_WORKERS, "0")])).unwrap();
        assert_eq!(r.workers, 1);
        assert_eq!(r.backend.name(), "serial");
        // autopara's own variable wins over wfl's.
        let env = env_of(&[(ENV_WFL_NUM_WORKERS, "4"), (ENV_NUM_WORKERS, "2")]);
        assert_eq!(AutoparaInfo::default().resolve_with_env(&OP, env).unwrap().workers, 2);
    }

    #[test]
    fn bad_values_are_named() {
        let e = AutoparaInfo::default().resolve_with_env(&OP, env_of(&[(ENV_NUM_WORKERS, "many")])).unwrap_err();
        assert!(e.to_string().contains("AUTOPARA_NUM_WORKERS") && e.to_string().contains("many"), "{e}");
        let e = AutoparaInfo { chunk_size: Some(0), ..Default::default() }.resolve_with_env(&OP, env_of(&[]));
        assert!(e.unwrap_err().to_string().contains("chunk_size"));
    }

    #[test]
    fn mpi_requests_and_launchers_are_recognised() {
        assert_eq!(mpi_requested(env_of(&[("AUTOPARA_MPI", "1")])).as_deref(), Some("AUTOPARA_MPI=1"));
        assert_eq!(mpi_requested(env_of(&[("WFL_MPIPOOL", "2")])).as_deref(), Some("WFL_MPIPOOL=2"));
        assert_eq!(mpi_requested(env_of(&[("AUTOPARA_MPI", "0"), ("WFL_MPIPOOL", "")])), None);
        for (env, want) in [
            (&[("OMPI_COMM_WORLD_SIZE", "2")][..], Some("OMPI_COMM_WORLD_SIZE=2")),
            (&[("PMI_SIZE", "4"), ("PMI_RANK", "0")][..], Some("PMI_SIZE=4")),
            (&[("MV2_COMM_WORLD_SIZE", "3")][..], Some("MV2_COMM_WORLD_SIZE=3")),
            (&[("PMIX_RANK", "1")][..], Some("PMIX_RANK=1")),
            (
                &[("SLURM_STEP_ID", "0"), ("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_NTASKS", "2")][..],
                Some("SLURM_STEP_NUM_TASKS=2"),
            ),
            (&[("SLURM_STEP_ID", "0"), ("SLURM_NTASKS", "8")][..], Some("SLURM_NTASKS=8")),
            // One rank, or a batch script of a many-task allocation (no step): a single process.
            (&[("OMPI_COMM_WORLD_SIZE", "1"), ("OMPI_COMM_WORLD_RANK", "0")][..], None),
            (&[("PMIX_RANK", "0")][..], None),
            (&[("SLURM_NTASKS", "8"), ("SLURM_JOB_ID", "5")][..], None),
            (&[("SLURM_STEP_ID", "0"), ("SLURM_STEP_NUM_TASKS", "1"), ("SLURM_NTASKS", "8")][..], None),
            (&[][..], None),
        ] {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(env.to_vec().into_boxed_slice());
            assert_eq!(mpi_launch(env_of(pairs)).as_deref(), want, "{env:?}");
        }
    }

    #[test]
    fn progress_env_and_caller_object_untouched() {
        let info = AutoparaInfo::default();
        let r = info.resolve_with_env(&OP, env_of(&[(ENV_PROGRESS, "0")])).unwrap();
        assert!(!r.progress);
        assert!(info.workers.is_none() && info.chunk_size.is_none() && info.seed.is_none());
        let r = AutoparaInfo { progress: Some(true), ..Default::default() }
            .resolve_with_env(&OP, env_of(&[(ENV_PROGRESS, "0")]))
            .unwrap();
        assert!(r.progress);
    }
}
