//! The Slurm backend for `autopara run`: `--remote-info JSON|TOML|FILE`, or
//! `AUTOPARA_REMOTE_INFO` (keyed by op label, as wfl's `WFL_EXPYRE_INFO`).

use autopara_core::executor::backend::Backend;
use autopara_core::{Error, Result};
use autopara_queue::{REMOTE_INFO_ENV, RemoteInfo, Slurm, SlurmBackend};
use std::sync::Arc;

/// The Slurm backend for op label `label`: from `--remote-info` when given
/// (which must have an entry for the label), else from [`REMOTE_INFO_ENV`]
/// (no entry: `None`, the op runs locally).
pub fn backend(remote_info: Option<&str>, label: &str) -> Result<Option<Arc<dyn Backend>>> {
    let backend = match remote_info {
        Some(spec) => {
            let info = RemoteInfo::select(spec, "--remote-info", label)?.ok_or_else(|| Error::Args {
                context: "--remote-info".into(),
                field: label.into(),
                message: format!("no entry for op label '{label}' (nor '*')"),
            })?;
            Some(SlurmBackend::new(&info, Slurm::new())?)
        }
        None => SlurmBackend::from_env(label)?,
    };
    match backend {
        Some(b) => {
            eprintln!("autopara: {label} runs on Slurm (jobs in {})", b.info().jobs_dir.display());
            Ok(Some(Arc::new(b)))
        }
        None => {
            if std::env::var_os(REMOTE_INFO_ENV).is_some() {
                eprintln!("autopara: {REMOTE_INFO_ENV} has no entry for op label '{label}'; running locally");
            }
            Ok(None)
        }
    }
}
