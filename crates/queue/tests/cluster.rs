//! The Slurm backend against a real single-node Slurm started by
//! [`LocalCluster`] (skipped loudly when Slurm is not installed).
//!
//! This test binary has no libtest harness: it is also the job's worker. Jobs
//! run `<this binary> worker --job-dir DIR`, which calls the same
//! `run_job_dir` as `autopara worker`, with the test op below registered.
//! The scenarios share one cluster and run one after another.

use autopara_core::autopara_info::AutoparaInfo;
use autopara_core::executor::backend::Backend;
use autopara_core::executor::{FailureRecord, JobSpec, ResultSink, execute};
use autopara_core::{
    Atoms, InputKind, Item, ItemFailure, ItemResult, Location, OpInfo, OpRegistration, Operation, Payload, Value,
    WorkerContext,
};
use autopara_queue::testing::LocalCluster;
use autopara_queue::worker::ItemResults;
use autopara_queue::{JOB_FAILED_KEY, JobCounts, RemoteInfo, SlurmBackend};
use rand::Rng;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

static INFO: OpInfo = OpInfo {
    name: "queue_test",
    version: 1,
    default_chunk_size: 2,
    summary: "test op: random displacements from the item RNG; optional per-item failures and a sleep",
    input_kind: InputKind::Configs,
};

/// Moves every atom by a random vector from the item's RNG and records a random
/// number; fails the items listed in `fail`; sleeps `$QUEUE_TEST_SLEEP` seconds
/// per chunk (set through `env_vars`, which is not part of a job's content).
struct QueueTestOp {
    args: serde_json::Value,
    fail: Vec<u64>,
}

impl Operation for QueueTestOp {
    fn info(&self) -> &'static OpInfo {
        &INFO
    }
    fn args(&self) -> serde_json::Value {
        self.args.clone()
    }
    fn run_chunk(&self, items: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult> {
        if let Some(s) = std::env::var("QUEUE_TEST_SLEEP").ok().and_then(|s| s.parse::<f64>().ok()) {
            std::thread::sleep(Duration::from_secs_f64(s));
        }
        items
            .iter()
            .map(|item| {
                if self.fail.contains(&item.index) {
                    return Err(ItemFailure::new(format!("item {} fails on purpose", item.index)));
                }
                let mut rng = ctx.rng(item);
                let mut at = item.atoms()?.clone();
                for p in &mut at.positions {
                    for x in p.iter_mut() {
                        *x += rng.random::<f64>() - 0.5;
                    }
                }
                at.info.insert("queue_test_r".into(), Value::Float(rng.random()));
                Ok(vec![at])
            })
            .collect()
    }
}

fn build(args: serde_json::Value) -> autopara_core::Result<Box<dyn Operation>> {
    let fail = args.get("fail").and_then(|f| serde_json::from_value(f.clone()).ok()).unwrap_or_default();
    Ok(Box::new(QueueTestOp { args, fail }))
}

autopara_core::inventory::submit!(OpRegistration { info: &INFO, build });

const SEED: u64 = 20;
const CHUNK: usize = 2;

fn items(n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let mut at = Atoms::new(vec![13, 29], vec![[0.1 * i as f64, 0.0, 0.0], [1.3, 0.2, 1.0 / 3.0]]);
            at.info.insert("config_i".into(), Value::Int(i as i64));
            Item { index: i as u64, location: Location { file: None, path: vec![i] }, payload: Payload::Atoms(at) }
        })
        .collect()
}

/// Runs `op` over `items` through the executor on `backend` (serial when `None`).
fn run(
    op: &dyn Operation,
    items: &[Item],
    seed: u64,
    backend: Option<Arc<dyn Backend>>,
) -> autopara_core::Result<Vec<ItemResult>> {
    let settings = AutoparaInfo {
        workers: Some(1),
        chunk_size: Some(CHUNK),
        seed: Some(seed),
        skip_failed: Some(true),
        progress: Some(false),
        backend,
        ..AutoparaInfo::default()
    }
    .resolve(op.info())?;
    let mut sink = ItemResults::default();
    execute(op, items.iter().cloned().map(Ok), &mut sink, &settings, None)?;
    Ok(sink.results)
}

/// The local result, serial, one chunk for all items.
fn local(op: &dyn Operation, items: &[Item]) -> Vec<ItemResult> {
    op.run_chunk(items, &mut WorkerContext::new(0, SEED, op.info().name))
}

fn slurm(info: &RemoteInfo, cluster: &LocalCluster) -> Option<Arc<dyn Backend>> {
    Some(Arc::new(SlurmBackend::new(info, cluster.slurm()).unwrap()))
}

fn remote_info(jobs_dir: &Path) -> RemoteInfo {
    RemoteInfo {
        job_name: "qt+1".into(),
        num_inputs_per_queued_job: -1,
        check_interval: 0.2,
        timeout: 120.0,
        autopara_bin: std::env::current_exe().expect("test binary path"),
        jobs_dir: jobs_dir.to_path_buf(),
        ..RemoteInfo::default()
    }
}

/// (dir, Slurm id, attempt) of each job of a run.
fn submissions(info: &RemoteInfo, op: &dyn Operation, items: &[Item]) -> Vec<(PathBuf, String, u32)> {
    let backend = SlurmBackend::new(info, autopara_queue::Slurm::new()).unwrap();
    backend
        .job_dirs(&JobSpec::of(op, SEED), CHUNK, items)
        .unwrap()
        .into_iter()
        .map(|d| {
            let s = d.read_submission().unwrap().expect("a recorded submission");
            (d.dir, s.slurm_id, s.attempt)
        })
        .collect()
}

fn job_count(cluster: &LocalCluster) -> usize {
    cluster.slurm().jobs().unwrap().len()
}

/// Several jobs, one failing item: results equal a local run bit for bit; a
/// rerun reuses the finished jobs and submits nothing.
fn normal_run_equals_local_and_rerun_reuses(cluster: &LocalCluster, tmp: &Path) {
    let op = build(serde_json::json!({"fail": [3]})).unwrap();
    let inputs = items(7);
    let info = remote_info(&tmp.join("normal"));
    let got = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap();
    assert_eq!(got, local(op.as_ref(), &inputs));
    assert_eq!(got, run(op.as_ref(), &inputs, SEED, None).unwrap());
    assert!(got[3].is_err() && got[2].is_ok());
    let subs = submissions(&info, op.as_ref(), &inputs);
    assert_eq!(subs.len(), 4, "7 items in jobs of 2");
    assert!(subs.iter().all(|(dir, _, _)| dir.join("items.xyz").exists()), "items travel as extxyz");
    let before = job_count(cluster);
    let again = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap();
    assert_eq!(again, got);
    assert_eq!(submissions(&info, op.as_ref(), &inputs), subs);
    assert_eq!(job_count(cluster), before, "the rerun submitted jobs");
    // Another seed is other content: other jobs, other numbers.
    let other = run(op.as_ref(), &inputs[..2], SEED + 1, slurm(&info, cluster)).unwrap();
    assert_ne!(other, got[..2]);
    assert_eq!(job_count(cluster), before + 1);
}

/// A driver that stops while its jobs run (here: its timeout) leaves them
/// queued; the rerun re-attaches to the same Slurm jobs, also to one whose id
/// was never recorded.
fn stopped_driver_reattaches(cluster: &LocalCluster, tmp: &Path) {
    let op = build(serde_json::json!({})).unwrap();
    let inputs = items(4);
    let mut info = remote_info(&tmp.join("reattach"));
    info.env_vars.insert("QUEUE_TEST_SLEEP".into(), "3".into());
    info.timeout = 0.5;
    let err = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap_err().to_string();
    assert!(err.contains("timed out") && err.contains("2 Slurm job(s)"), "{err}");
    let subs = submissions(&info, op.as_ref(), &inputs);
    let before = job_count(cluster);
    // A driver killed between `sbatch` and recording the id: the job is adopted by name.
    std::fs::remove_file(subs[0].0.join("submission.json")).unwrap();
    info.timeout = 120.0;
    let got = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap();
    assert_eq!(got, local(op.as_ref(), &inputs));
    assert_eq!(submissions(&info, op.as_ref(), &inputs), subs, "jobs were resubmitted");
    assert_eq!(job_count(cluster), before);
}

/// A job cancelled with `scancel` is an error naming the job; with
/// `resubmit_killed_jobs` the rerun resubmits it (new `env_vars` apply, as
/// resources are not part of the content).
fn cancelled_job_reported_then_resubmitted(cluster: &LocalCluster, tmp: &Path) {
    let op = build(serde_json::json!({"tag": "cancel"})).unwrap();
    let inputs = items(2);
    let mut info = remote_info(&tmp.join("cancel"));
    info.env_vars.insert("QUEUE_TEST_SLEEP".into(), "60".into());
    let backend = SlurmBackend::new(&info, cluster.slurm()).unwrap();
    let dir = backend.job_dirs(&JobSpec::of(op.as_ref(), SEED), CHUNK, &inputs).unwrap().remove(0);
    let canceller = {
        let (slurm, dir) = (cluster.slurm(), dir.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(sub)) = dir.read_submission() {
                    slurm.cancel(&sub.slurm_id).unwrap();
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("the job was never submitted");
        })
    };
    let err = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap_err().to_string();
    canceller.join().unwrap();
    assert!(err.contains(&format!("job {} (Slurm id", dir.name)) && err.contains("died: CANCELLED"), "{err}");

    // Without resubmit_killed_jobs a rerun reports the dead job again.
    let err = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap_err().to_string();
    assert!(err.contains("died: CANCELLED"), "{err}");

    info.resubmit_killed_jobs = true;
    info.env_vars.insert("QUEUE_TEST_SLEEP".into(), "0".into());
    let backend = Arc::new(SlurmBackend::new(&info, cluster.slurm()).unwrap());
    let got = run(op.as_ref(), &inputs, SEED, Some(backend.clone())).unwrap();
    assert_eq!(got, local(op.as_ref(), &inputs));
    assert_eq!(dir.read_submission().unwrap().map(|s| s.attempt), Some(2));
    assert_eq!(backend.last_run(), JobCounts { resubmitted: 1, ..JobCounts::default() }, "counted as re-attached");
}

/// A job whose worker fails is an error naming the job with its stderr tail;
/// with `ignore_failed_jobs` its inputs come back flagged.
fn failed_job_reported_or_flagged(cluster: &LocalCluster, tmp: &Path) {
    let op = build(serde_json::json!({"tag": "fail"})).unwrap();
    let inputs = items(3);
    let broken = tmp.join("broken-autopara");
    std::fs::write(&broken, "#!/bin/sh\necho 'boom: this worker cannot start' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut info = remote_info(&tmp.join("failed"));
    info.autopara_bin = broken;
    info.num_inputs_per_queued_job = 2;
    let err = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap_err().to_string();
    assert!(err.contains("qt+1-") && err.contains("failed with exit code 3"), "{err}");
    assert!(err.contains("boom: this worker cannot start"), "{err}");

    info.ignore_failed_jobs = true;
    let got = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap();
    assert_eq!(got.len(), 3);
    for (r, item) in got.iter().zip(&inputs) {
        let failure = r.as_ref().unwrap_err();
        assert!(failure.message.contains("failed with exit code 3"), "{failure:?}");
        let out = &failure.frames[0];
        assert_eq!(out.info[JOB_FAILED_KEY], Value::Bool(true));
        assert_eq!(out.positions, item.atoms().unwrap().positions);
    }
}

/// A sink that fails after `n` items, as a driver killed after a job had
/// finished but before the output journal recorded all of its items.
struct StopAfter {
    n: usize,
    results: Vec<ItemResult>,
}

impl ResultSink for StopAfter {
    fn write_item(&mut self, _index: u64, _location: &Location, frames: Vec<Atoms>) -> autopara_core::Result<()> {
        if self.results.len() == self.n {
            return Err(autopara_core::Error::Other("the driver was killed".into()));
        }
        self.results.push(Ok(frames));
        Ok(())
    }
    fn write_failure(&mut self, failure: &FailureRecord) -> autopara_core::Result<()> {
        self.results.push(Err(ItemFailure::new(failure.message.clone())));
        Ok(())
    }
    fn checkpoint(&mut self, _next_index: u64, _now: bool) -> autopara_core::Result<()> {
        Ok(())
    }
}

/// A driver stopped after writing 3 of a finished job's 4 items: the rerun
/// from item 3 takes that item's result from the job's directory and submits
/// nothing, although no job holds exactly the items 3..6.
fn resumed_mid_job_takes_results_from_the_job_dirs(cluster: &LocalCluster, tmp: &Path) {
    let op = build(serde_json::json!({"tag": "resume"})).unwrap();
    let inputs = items(6);
    let mut info = remote_info(&tmp.join("resume"));
    info.num_inputs_per_queued_job = -2;
    let settings = AutoparaInfo {
        chunk_size: Some(CHUNK),
        seed: Some(SEED),
        progress: Some(false),
        backend: slurm(&info, cluster),
        ..AutoparaInfo::default()
    }
    .resolve(op.info())
    .unwrap();
    let mut sink = StopAfter { n: 3, results: Vec::new() };
    let err = execute(op.as_ref(), inputs.iter().cloned().map(Ok), &mut sink, &settings, None).unwrap_err();
    assert!(err.to_string().contains("killed"), "{err}");
    let before = job_count(cluster);
    let backend = Arc::new(SlurmBackend::new(&info, cluster.slurm()).unwrap());
    let got = run(op.as_ref(), &inputs[3..], SEED, Some(backend.clone())).unwrap();
    assert_eq!(got, local(op.as_ref(), &inputs)[3..]);
    assert_eq!(job_count(cluster), before, "a job was submitted for the rest of a finished job");
    let counts = backend.last_run();
    assert_eq!((counts.submitted, counts.resubmitted, counts.total()), (0, 0, 2), "{counts:?}");
}

/// One scenario run against the shared cluster, with a scratch directory.
type Scenario = fn(&LocalCluster, &Path);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let dir = match (args.get(2).map(String::as_str), args.get(3)) {
            (Some("--job-dir"), Some(d)) => PathBuf::from(d),
            _ => {
                eprintln!("usage: worker --job-dir DIR");
                std::process::exit(64);
            }
        };
        if let Err(e) = autopara_queue::worker::run_job_dir(&dir) {
            eprintln!("worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    // `cargo test` passes libtest flags (`--list` when listing): this binary has no listed tests.
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let Some(cluster) = LocalCluster::start_or_skip("autopara-queue cluster tests") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let scenarios: [(&str, Scenario); 5] = [
        ("normal_run_equals_local_and_rerun_reuses", normal_run_equals_local_and_rerun_reuses),
        ("stopped_driver_reattaches", stopped_driver_reattaches),
        ("resumed_mid_job_takes_results_from_the_job_dirs", resumed_mid_job_takes_results_from_the_job_dirs),
        ("cancelled_job_reported_then_resubmitted", cancelled_job_reported_then_resubmitted),
        ("failed_job_reported_or_flagged", failed_job_reported_or_flagged),
    ];
    let filter: Vec<&String> = args[1..].iter().filter(|a| !a.starts_with('-')).collect();
    for (name, scenario) in scenarios {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let start = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&cluster, tmp.path())));
        match result {
            Ok(()) => println!("test {name} ... ok ({:.1} s)", start.elapsed().as_secs_f64()),
            Err(_) => {
                eprintln!("test {name} ... FAILED\n{}", cluster.logs());
                drop(cluster);
                std::process::exit(101);
            }
        }
    }
    let pids = cluster.daemon_pids();
    drop(cluster);
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "daemon {pid} survived the cluster");
    }
}
