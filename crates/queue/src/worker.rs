//! The job side: `autopara worker --job-dir DIR` reads the task and items,
//! builds the op from the registry, runs its chunks and writes the results.

use crate::error::{QueueError, Result};
use crate::job::{JobDir, JobTask, read_json, write_json};
use autopara_core::{Item, ItemFailure, ItemResult, Operation, WorkerContext};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs the job in `dir` and writes `results.json`. The op must be registered in
/// the running binary with the version the driver recorded.
pub fn run_job_dir(dir: &Path) -> Result<()> {
    let job = JobDir::open(dir);
    let task: JobTask = read_json(&job.task())?;
    let items: Vec<Item> = read_json(&job.items())?;
    let bad = |message: String| QueueError::Worker { dir: dir.to_path_buf(), message };
    if items.iter().map(|i| i.index).ne(task.indices.iter().copied()) {
        return Err(bad("items.json does not hold the items task.json lists".into()));
    }
    let op = autopara_core::build_op(&task.op, task.args.clone())?;
    if op.info().version != task.op_version {
        return Err(bad(format!(
            "op {} is version {} in this binary but the job was made by version {}; use the same autopara build",
            task.op,
            op.info().version,
            task.op_version
        )));
    }
    let results = run_chunks(op.as_ref(), &task, &items);
    write_json(&job.results(), &results)
}

/// Runs `items` in chunks of `task.chunk_size` on `task.threads` threads, each
/// with its own [`WorkerContext`] seeded with the run's seed and label; the item
/// RNG depends only on (seed, label, global index), as in a local run. A panic
/// in an op fails the items of its chunk, not the job.
fn run_chunks(op: &dyn Operation, task: &JobTask, items: &[Item]) -> Vec<ItemResult> {
    let chunks: Vec<&[Item]> = items.chunks(task.chunk_size.max(1)).collect();
    let next = AtomicUsize::new(0);
    let threads = task.threads.clamp(1, chunks.len().max(1));
    let mut done: Vec<(usize, Vec<ItemResult>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|w| {
                let (chunks, next) = (&chunks, &next);
                s.spawn(move || {
                    let mut ctx = WorkerContext::new(w, task.seed, task.label.clone());
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(chunk) = chunks.get(k) else { break };
                        out.push((k, run_one_chunk(op, chunk, &mut ctx)));
                    }
                    out
                })
            })
            .collect();
        // run_one_chunk catches op panics, so a thread cannot panic.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    done.sort_by_key(|(k, _)| *k);
    done.into_iter().flat_map(|(_, r)| r).collect()
}

fn run_one_chunk(op: &dyn Operation, chunk: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult> {
    let fail_all = |why: String| chunk.iter().map(|_| Err(ItemFailure::new(why.clone()))).collect();
    match catch_unwind(AssertUnwindSafe(|| op.run_chunk(chunk, ctx))) {
        Ok(r) if r.len() == chunk.len() => r,
        Ok(r) => fail_all(format!("op {} returned {} results for {} items", op.info().name, r.len(), chunk.len())),
        Err(p) => {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
            fail_all(format!("op {} panicked: {}", op.info().name, msg.unwrap_or_default()))
        }
    }
}
