//! The job side: `autopara worker --job-dir DIR` reads the task and items,
//! builds the op from the registry, runs it with the executor on the job's
//! threads and writes the results.

use crate::error::{QueueError, Result};
use crate::job::{JobDir, JobTask, read_json, write_json};
use autopara_core::autopara_info::AutoparaInfo;
use autopara_core::executor::{FailureRecord, ResultSink, execute};
use autopara_core::{Atoms, ItemFailure, ItemResult, Location};
use std::path::Path;

/// Runs the job in `dir` and writes `results.json`. The op must be registered in
/// the running binary with the version the driver recorded.
pub fn run_job_dir(dir: &Path) -> Result<()> {
    let job = JobDir::open(dir);
    let task: JobTask = read_json(&job.task())?;
    let items = job.read_items(&task)?;
    let bad = |message: String| QueueError::Worker { dir: dir.to_path_buf(), message };
    if items.iter().map(|i| i.index).ne(task.items.iter().map(|h| h.index)) {
        return Err(bad("the job's item files do not match task.json".into()));
    }
    let spec = &task.spec;
    let op = autopara_core::build_op(&spec.op, spec.args.clone())?;
    if op.info().version != spec.op_version {
        return Err(bad(format!(
            "op {} is version {} in this binary but the job was made by version {}; use the same autopara build",
            spec.op,
            op.info().version,
            spec.op_version
        )));
    }
    let settings = AutoparaInfo {
        workers: Some(task.threads),
        chunk_size: Some(task.chunk_size),
        seed: Some(spec.seed),
        skip_failed: Some(true),
        progress: Some(false),
        ..AutoparaInfo::default()
    }
    .resolve(op.info())?;
    let mut sink = ItemResults::default();
    let total = items.len() as u64;
    execute(op.as_ref(), items.into_iter().map(Ok), &mut sink, &settings, Some(total))?;
    write_json(&job.results(), &sink.results)
}

/// A [`ResultSink`] that keeps every item's result in input order, as the
/// op's [`ItemResult`]s (frames or the failure message).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ItemResults {
    /// One result per item, in input order.
    pub results: Vec<ItemResult>,
}

impl ResultSink for ItemResults {
    fn write_item(&mut self, _index: u64, _location: &Location, frames: Vec<Atoms>) -> autopara_core::Result<()> {
        self.results.push(Ok(frames));
        Ok(())
    }

    fn write_failure(&mut self, failure: &FailureRecord) -> autopara_core::Result<()> {
        self.results.push(Err(ItemFailure::with_frames(failure.message.clone(), failure.frames.clone())));
        Ok(())
    }

    fn checkpoint(&mut self, _next_index: u64, _now: bool) -> autopara_core::Result<()> {
        Ok(())
    }
}
