//! The Slurm backend for `autopara run` (`--remote-info JSON|TOML|FILE`) and
//! pipeline steps (`remote_info` table), else from `AUTOPARA_REMOTE_INFO`
//! (keyed by op label, as wfl's `WFL_EXPYRE_INFO`).

use autopara_core::executor::backend::Backend;
use autopara_core::{Error, Result};
use autopara_queue::{REMOTE_INFO_ENV, RemoteInfo, Slurm, SlurmBackend};
use std::sync::Arc;

/// The Slurm backend for `autopara run OP`: from `--remote-info` when given
/// (which must have an entry for the op), else from [`REMOTE_INFO_ENV`] (no
/// entry: `None`, the op runs locally).
pub fn backend(remote_info: Option<&str>, op: &str) -> Result<Option<Arc<dyn Backend>>> {
    let backend = match remote_info {
        Some(spec) => {
            let info = RemoteInfo::select(spec, "--remote-info", &[op])?.ok_or_else(|| Error::Args {
                context: "--remote-info".into(),
                field: op.into(),
                message: format!("no entry for op label '{op}' (nor '*')"),
            })?;
            Some(SlurmBackend::new(&info, Slurm::new())?)
        }
        None => SlurmBackend::from_env(&[op])?,
    };
    announce(backend, op)
}

/// The Slurm backend for a pipeline step: its `remote_info` table when given,
/// else the [`REMOTE_INFO_ENV`] entry for the step's name, then for its op.
pub fn step_backend(table: Option<&toml::Value>, step: &str, op: &str) -> Result<Option<Arc<dyn Backend>>> {
    let backend = match table {
        Some(t) => {
            let origin = format!("pipeline step '{step}', remote_info");
            let value = serde_json::to_value(t).map_err(|e| Error::Args {
                context: origin.clone(),
                field: "-".into(),
                message: e.to_string(),
            })?;
            Some(SlurmBackend::new(&RemoteInfo::from_value(value, &origin)?, Slurm::new())?)
        }
        None => SlurmBackend::from_env(&[step, op])?,
    };
    announce(backend, step)
}

/// Says where the call runs and boxes the backend.
fn announce(backend: Option<SlurmBackend>, label: &str) -> Result<Option<Arc<dyn Backend>>> {
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
