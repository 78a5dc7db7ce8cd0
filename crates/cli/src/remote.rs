//! The queue backend for `autopara run` (`--remote-info JSON|TOML|FILE`) and
//! pipelines (a step's `remote_info` table, or the file's top-level
//! `remote_info` keyed by step or op), else from `AUTOPARA_REMOTE_INFO`
//! (keyed by op label, as wfl's `WFL_EXPYRE_INFO`).

use autopara_core::executor::backend::Backend;
use autopara_core::{Error, Result};
use autopara_queue::{QueueBackend, REMOTE_INFO_ENV, RemoteInfo};
use std::sync::Arc;

/// The queue backend for `autopara run OP`: from `--remote-info` when given
/// (which must have an entry for the op), else from [`REMOTE_INFO_ENV`] (no
/// entry: `None`, the op runs locally). With `retry` (`--retry-failed`) every
/// job runs again, even one that finished.
pub fn backend(remote_info: Option<&str>, op: &str, retry: bool) -> Result<Option<Arc<dyn Backend>>> {
    let backend = match remote_info {
        Some(spec) => {
            let info = RemoteInfo::select(spec, "--remote-info", &[op])?.ok_or_else(|| Error::Args {
                context: "--remote-info".into(),
                field: op.into(),
                message: format!("no entry for op label '{op}' (nor '*')"),
            })?;
            Some(QueueBackend::new(&info)?)
        }
        None => QueueBackend::from_env(&[op])?,
    };
    announce(backend.map(|b| if retry { b.for_retry() } else { b }), op)
}

/// The remote info of a pipeline step: its own `remote_info` table when
/// given, else the pipeline's top-level `remote_info` entry for the step's
/// name, then its op (or the bare table), else the same from
/// [`REMOTE_INFO_ENV`]; `None`: the step runs locally.
pub fn step_info(
    step_table: Option<&toml::Value>,
    pipeline_table: Option<&toml::Value>,
    step: &str,
    op: &str,
) -> Result<Option<RemoteInfo>> {
    let json = |t: &toml::Value, origin: &str| {
        serde_json::to_value(t).map_err(|e| Error::Args {
            context: origin.to_string(),
            field: "-".into(),
            message: e.to_string(),
        })
    };
    let info = match (step_table, pipeline_table) {
        (Some(t), _) => {
            let origin = format!("pipeline step '{step}', remote_info");
            Some(RemoteInfo::from_value(json(t, &origin)?, &origin)?)
        }
        (None, Some(t)) => {
            RemoteInfo::select_value(json(t, "pipeline remote_info")?, "pipeline remote_info", &[step, op])?
        }
        (None, None) => RemoteInfo::from_env(&[step, op])?,
    };
    Ok(info)
}

/// The queue backend for a pipeline step with remote info `info` (see [`step_info`]).
pub fn step_backend(info: Option<&RemoteInfo>, step: &str) -> Result<Option<Arc<dyn Backend>>> {
    announce(info.map(QueueBackend::new).transpose()?, step)
}

/// Says where the call runs and boxes the backend.
fn announce(backend: Option<QueueBackend>, label: &str) -> Result<Option<Arc<dyn Backend>>> {
    match backend {
        Some(b) => {
            eprintln!(
                "autopara: {label} runs on {} (job directories in {})",
                b.describe(),
                b.info().jobs_dir.display()
            );
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
