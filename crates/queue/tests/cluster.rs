//! The queue backend against a real single-node Slurm started by
//! [`LocalCluster`] (skipped loudly when Slurm is not installed), directly
//! and through a real sshd on a loopback port ([`LocalSshd`]) with the jobs in
//! a separate "remote" working directory.
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
use autopara_queue::testing::{LocalGridEngine, LocalSshd};
use autopara_queue::worker::ItemResults;
use autopara_queue::{JOB_FAILED_KEY, JobCounts, QueueBackend, RemoteInfo, Systems};
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

/// The backend for `info` on the test cluster (this machine).
fn backend(info: &RemoteInfo, cluster: &LocalCluster) -> QueueBackend {
    QueueBackend::with_systems(info, &Systems::default()).unwrap().with_env("SLURM_CONF", cluster.conf())
}

fn slurm(info: &RemoteInfo, cluster: &LocalCluster) -> Option<Arc<dyn Backend>> {
    Some(Arc::new(backend(info, cluster)))
}

/// This test binary, which is also the jobs' worker.
fn test_binary() -> PathBuf {
    std::env::current_exe().expect("test binary path")
}

fn remote_info(jobs_dir: &Path) -> RemoteInfo {
    RemoteInfo {
        job_name: "qt+1".into(),
        num_inputs_per_queued_job: -1,
        check_interval: 0.2,
        timeout: 120.0,
        autopara_bin: Some(test_binary().display().to_string()),
        jobs_dir: jobs_dir.to_path_buf(),
        ..RemoteInfo::default()
    }
}

/// (dir, scheduler id, attempt) of each job of a run.
fn submissions(info: &RemoteInfo, op: &dyn Operation, items: &[Item]) -> Vec<(PathBuf, String, u32)> {
    submissions_of(&QueueBackend::with_systems(info, &Systems::default()).unwrap(), op, items)
}

/// (dir, scheduler id, attempt) of each job of a run on `backend`.
fn submissions_of(backend: &QueueBackend, op: &dyn Operation, items: &[Item]) -> Vec<(PathBuf, String, u32)> {
    backend
        .job_dirs(&JobSpec::of(op, SEED), CHUNK, items)
        .unwrap()
        .into_iter()
        .map(|d| {
            let s = d.read_submission().unwrap().expect("a recorded submission");
            (d.dir, s.id, s.attempt)
        })
        .collect()
}

fn job_count(cluster: &LocalCluster) -> usize {
    cluster.jobs().unwrap().len()
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
    info.env_vars.0.insert("QUEUE_TEST_SLEEP".into(), "3".into());
    info.timeout = 0.5;
    let err = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap_err().to_string();
    assert!(err.contains("timed out") && err.contains("2 batch job(s)"), "{err}");
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
    info.env_vars.0.insert("QUEUE_TEST_SLEEP".into(), "60".into());
    let canceller_backend = backend(&info, cluster);
    let dir = canceller_backend.job_dirs(&JobSpec::of(op.as_ref(), SEED), CHUNK, &inputs).unwrap().remove(0);
    let canceller = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(sub)) = dir.read_submission() {
                    canceller_backend.cancel(&[&sub.id]).unwrap();
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("the job was never submitted");
        })
    };
    let err = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap_err().to_string();
    canceller.join().unwrap();
    assert!(err.contains(&format!("job {} (slurm job", dir.name)) && err.contains("died: CANCELLED"), "{err}");

    // Without resubmit_killed_jobs a rerun reports the dead job again.
    let err = run(op.as_ref(), &inputs, SEED, slurm(&info, cluster)).unwrap_err().to_string();
    assert!(err.contains("died: CANCELLED"), "{err}");

    info.resubmit_killed_jobs = true;
    info.env_vars.0.insert("QUEUE_TEST_SLEEP".into(), "0".into());
    let backend = Arc::new(backend(&info, cluster));
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
    info.autopara_bin = Some(broken.display().to_string());
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
    let backend = Arc::new(backend(&info, cluster));
    let got = run(op.as_ref(), &inputs[3..], SEED, Some(backend.clone())).unwrap();
    assert_eq!(got, local(op.as_ref(), &inputs)[3..]);
    assert_eq!(job_count(cluster), before, "a job was submitted for the rest of a finished job");
    let counts = backend.last_run();
    assert_eq!((counts.submitted, counts.resubmitted, counts.total()), (0, 0, 2), "{counts:?}");
}

/// The cluster reached over ssh: an sshd on a loopback port whose sessions
/// see the cluster's `SLURM_CONF`, and a system `loop` for it whose jobs run in
/// `tmp/<name>-remote`, away from the driver's job directories.
fn ssh_system(cluster: &LocalCluster, tmp: &Path, name: &str) -> Option<(LocalSshd, Systems, PathBuf)> {
    let sshd = LocalSshd::start_or_skip(name, &[("SLURM_CONF", cluster.conf())])?;
    let rundir = tmp.join(format!("{name}-remote"));
    let systems = Systems::from_toml_str(&sshd.system_toml("loop", &rundir, &test_binary()), "test").unwrap();
    Some((sshd, systems, rundir))
}

fn ssh_info(tmp: &Path, name: &str) -> RemoteInfo {
    RemoteInfo { system: Some("loop".into()), autopara_bin: None, ..remote_info(&tmp.join(format!("{name}-local"))) }
}

/// Through ssh: the job directories are copied to the remote working
/// directory, run there, their results copied back, equal to a local run bit
/// for bit; a driver that stopped while the jobs ran re-attaches to the same
/// jobs; a rerun after they finished reuses the copies and submits nothing;
/// a host whose key is not known is refused.
fn over_ssh_staged_equal_and_reattached(cluster: &LocalCluster, tmp: &Path) {
    let Some((_sshd, systems, rundir)) = ssh_system(cluster, tmp, "ssh") else { return };
    let op = build(serde_json::json!({"tag": "ssh"})).unwrap();
    let inputs = items(5);
    let mut info = ssh_info(tmp, "ssh");
    info.env_vars.0.insert("QUEUE_TEST_SLEEP".into(), "2".into());
    info.timeout = 0.5;
    let backend = |info: &RemoteInfo| Arc::new(QueueBackend::with_systems(info, &systems).unwrap());
    let err = run(op.as_ref(), &inputs, SEED, Some(backend(&info))).unwrap_err().to_string();
    assert!(err.contains("timed out") && err.contains("3 batch job(s)"), "{err}");
    let first = backend(&info);
    let subs = submissions_of(&first, op.as_ref(), &inputs);
    let before = job_count(cluster);
    info.timeout = 120.0;
    let again = backend(&info);
    let got = run(op.as_ref(), &inputs, SEED, Some(again.clone())).unwrap();
    assert_eq!(got, local(op.as_ref(), &inputs));
    // Followed (or, on a slow machine, already finished): none submitted again.
    let counts = again.last_run();
    assert_eq!((counts.reattached + counts.finished, counts.total()), (3, 3), "{counts:?}");
    assert_eq!(submissions_of(&again, op.as_ref(), &inputs), subs, "jobs were resubmitted");
    assert_eq!(job_count(cluster), before);
    for (dir, _, _) in &subs {
        let hash = dir.file_name().unwrap();
        let remote = rundir.join(hash);
        assert_ne!(&remote, dir);
        let script = std::fs::read_to_string(dir.join("job.sh")).unwrap();
        assert!(script.contains(&format!("--chdir={}", remote.display())), "the job did not run remotely:\n{script}");
        let fetched = std::fs::read(dir.join("results.json")).unwrap();
        assert!(fetched == std::fs::read(remote.join("results.json")).unwrap(), "results differ from the remote's");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&remote).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o700, "{}", remote.display());
    }
    let rerun = backend(&info);
    assert_eq!(run(op.as_ref(), &inputs, SEED, Some(rerun.clone())).unwrap(), got);
    assert_eq!(rerun.last_run(), JobCounts { finished: 3, ..JobCounts::default() });
    // Host-key checking is on: a host whose key is not in known_hosts is refused, at once.
    let empty = tmp.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let mut stranger = systems.clone();
    let system = stranger.systems.get_mut("loop").unwrap();
    system.ssh_options.retain(|o| !o.starts_with("UserKnownHostsFile="));
    system.ssh_options.push(format!("UserKnownHostsFile={}", empty.display()));
    let other = items(1);
    let err = run(op.as_ref(), &other, SEED, Some(Arc::new(QueueBackend::with_systems(&info, &stranger).unwrap())));
    let err = err.unwrap_err().to_string();
    assert!(err.contains("Host key verification failed"), "{err}");
}

/// A system on this machine with its own `rundir` (say a filesystem the
/// compute nodes see): jobs are copied there, run there, and their results
/// copied back, equal to a local run.
fn local_system_with_rundir_stages(cluster: &LocalCluster, tmp: &Path) {
    let rundir = tmp.join("here-run");
    let text =
        format!("[systems.here]\nrundir = \"{}\"\nautopara_bin = \"{}\"\n", rundir.display(), test_binary().display());
    let systems = Systems::from_toml_str(&text, "test").unwrap();
    let op = build(serde_json::json!({"tag": "here"})).unwrap();
    let inputs = items(3);
    let info = RemoteInfo { system: Some("here".into()), autopara_bin: None, ..remote_info(&tmp.join("here-local")) };
    let backend = QueueBackend::with_systems(&info, &systems).unwrap().with_env("SLURM_CONF", cluster.conf());
    let got = run(op.as_ref(), &inputs, SEED, Some(Arc::new(backend))).unwrap();
    assert_eq!(got, local(op.as_ref(), &inputs));
    for (dir, _, _) in submissions(&RemoteInfo { system: None, ..info.clone() }, op.as_ref(), &inputs) {
        let there = rundir.join(dir.file_name().unwrap());
        assert!(std::fs::read_to_string(dir.join("job.sh")).unwrap().contains(&format!("--chdir={}", there.display())));
        assert!(std::fs::read(dir.join("results.json")).unwrap() == std::fs::read(there.join("results.json")).unwrap());
    }
}

/// The network goes down (sshd and its sessions killed) while the driver
/// polls, stays down while the jobs finish, and comes back: the driver
/// retries and finishes with the results.
fn network_cut_while_polling_is_retried(cluster: &LocalCluster, tmp: &Path) {
    let Some((mut sshd, systems, rundir)) = ssh_system(cluster, tmp, "cut") else { return };
    let op: Arc<dyn Operation> = Arc::from(build(serde_json::json!({"tag": "cut"})).unwrap());
    let inputs = items(4);
    let mut info = ssh_info(tmp, "cut");
    info.env_vars.0.insert("QUEUE_TEST_SLEEP".into(), "3".into());
    let backend = Arc::new(QueueBackend::with_systems(&info, &systems).unwrap());
    let dirs = backend.job_dirs(&JobSpec::of(op.as_ref(), SEED), CHUNK, &inputs).unwrap();
    let driver = {
        let (op, inputs, backend) = (op.clone(), inputs.clone(), backend.clone());
        std::thread::spawn(move || run(op.as_ref(), &inputs, SEED, Some(backend)))
    };
    let start = Instant::now();
    while !dirs.iter().all(|d| d.read_submission().is_ok_and(|s| s.is_some())) {
        assert!(start.elapsed() < Duration::from_secs(60), "the jobs were never submitted");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Down until the jobs have finished on the host (the driver polls in vain
    // all along), and a few polls more.
    sshd.stop();
    while !dirs.iter().all(|d| rundir.join(d.hash()).join("status").exists()) {
        assert!(start.elapsed() < Duration::from_secs(60), "the jobs never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    sshd.restart().unwrap();
    let got = driver.join().unwrap().unwrap();
    assert_eq!(got, local(op.as_ref(), &inputs));
}

/// The same backend on a real single-node Grid Engine (its own cluster,
/// started here): results equal a local run bit for bit and a rerun reuses
/// them; a driver that stopped while jobs ran re-attaches, adopting by name a
/// job whose id was never recorded; a failing worker is reported with its
/// stderr, then flagged with `ignore_failed_jobs`; a job deleted with `qdel`
/// died (`qacct` says how), and `resubmit_killed_jobs` resubmits it.
fn grid_engine(_slurm: &LocalCluster, tmp: &Path) {
    let Some(sge) = LocalGridEngine::start_or_skip("grid_engine") else { return };
    let systems = Systems::from_toml_str("[systems.sge]\nscheduler = \"sge\"\n", "test").unwrap();
    let backend = |info: &RemoteInfo| {
        let b = QueueBackend::with_systems(info, &systems).unwrap();
        Arc::new(sge.envs().into_iter().fold(b, |b, (k, v)| b.with_env(k, v)))
    };
    let sge_info = |name: &str| RemoteInfo { system: Some("sge".into()), ..remote_info(&tmp.join(name)) };
    let jobs = || sge.jobs().unwrap_or_else(|e| panic!("{e}\n{}", sge.logs()));

    // Equal to a local run; a rerun submits nothing.
    let op = build(serde_json::json!({"fail": [3], "sge": 1})).unwrap();
    let inputs = items(5);
    let info = sge_info("sge-normal");
    let got = run(op.as_ref(), &inputs, SEED, Some(backend(&info))).unwrap_or_else(|e| panic!("{e}\n{}", sge.logs()));
    assert_eq!(got, local(op.as_ref(), &inputs));
    let b = backend(&info);
    assert_eq!(run(op.as_ref(), &inputs, SEED, Some(b.clone())).unwrap(), got);
    assert_eq!(b.last_run(), JobCounts { finished: 3, ..JobCounts::default() });
    let script = std::fs::read_to_string(submissions_of(&b, op.as_ref(), &inputs)[0].0.join("job.sh")).unwrap();
    assert!(script.contains("#$ -N qt+1-") && script.contains("#$ -o "), "{script}");

    // A driver that stops while its jobs run; the rerun re-attaches, also to a job whose id was lost.
    let op = build(serde_json::json!({"sge": 2})).unwrap();
    let inputs = items(4);
    let mut info = sge_info("sge-reattach");
    info.env_vars.0.insert("QUEUE_TEST_SLEEP".into(), "4".into());
    info.timeout = 0.5;
    let err = run(op.as_ref(), &inputs, SEED, Some(backend(&info))).unwrap_err().to_string();
    assert!(err.contains("timed out") && err.contains("2 batch job(s)"), "{err}");
    let subs = submissions_of(&backend(&info), op.as_ref(), &inputs);
    std::fs::remove_file(subs[0].0.join("submission.json")).unwrap();
    let queued = jobs().len();
    info.timeout = 120.0;
    let b = backend(&info);
    let got = run(op.as_ref(), &inputs, SEED, Some(b.clone())).unwrap();
    assert_eq!(got, local(op.as_ref(), &inputs));
    assert_eq!(submissions_of(&b, op.as_ref(), &inputs), subs, "jobs were resubmitted");
    assert_eq!(b.last_run().reattached + b.last_run().finished, 2, "{:?}", b.last_run());
    assert!(jobs().len() <= queued, "the rerun submitted jobs");

    // A failing worker: an error with its stderr, then flagged items.
    let broken = tmp.join("sge-broken-autopara");
    std::fs::write(&broken, "#!/bin/sh\necho 'boom: this worker cannot start' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let op = build(serde_json::json!({"sge": 3})).unwrap();
    let inputs = items(2);
    let mut info = sge_info("sge-failed");
    info.autopara_bin = Some(broken.display().to_string());
    let err = run(op.as_ref(), &inputs, SEED, Some(backend(&info))).unwrap_err().to_string();
    assert!(err.contains("(sge job ") && err.contains("failed with exit code 3") && err.contains("boom"), "{err}");
    info.ignore_failed_jobs = true;
    let got = run(op.as_ref(), &inputs, SEED, Some(backend(&info))).unwrap();
    for (r, item) in got.iter().zip(&inputs) {
        let out = &r.as_ref().unwrap_err().frames[0];
        assert_eq!((&out.info[JOB_FAILED_KEY], &out.positions), (&Value::Bool(true), &item.atoms().unwrap().positions));
    }

    // A job deleted with qdel died; with resubmit_killed_jobs it runs again.
    let op = build(serde_json::json!({"sge": 4})).unwrap();
    let mut info = sge_info("sge-cancel");
    info.env_vars.0.insert("QUEUE_TEST_SLEEP".into(), "60".into());
    let b = backend(&info);
    let dir = b.job_dirs(&JobSpec::of(op.as_ref(), SEED), CHUNK, &inputs).unwrap().remove(0);
    let canceller = {
        let (dir, b) = (dir.clone(), b.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if let Ok(Some(sub)) = dir.read_submission() {
                    return b.cancel(&[&sub.id]).unwrap();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("the job was never submitted");
        })
    };
    let err = run(op.as_ref(), &inputs, SEED, Some(b)).unwrap_err().to_string();
    canceller.join().unwrap();
    assert!(err.contains(&format!("job {} (sge job", dir.name)) && err.contains("died: "), "{err}");
    info.resubmit_killed_jobs = true;
    info.env_vars.0.insert("QUEUE_TEST_SLEEP".into(), "0".into());
    let b = backend(&info);
    let got = run(op.as_ref(), &inputs, SEED, Some(b.clone())).unwrap();
    assert_eq!(got, local(op.as_ref(), &inputs));
    assert_eq!(dir.read_submission().unwrap().map(|s| s.attempt), Some(2));
    assert_eq!(b.last_run(), JobCounts { resubmitted: 1, ..JobCounts::default() });
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
    let scenarios: [(&str, Scenario); 9] = [
        ("grid_engine", grid_engine),
        ("local_system_with_rundir_stages", local_system_with_rundir_stages),
        ("over_ssh_staged_equal_and_reattached", over_ssh_staged_equal_and_reattached),
        ("network_cut_while_polling_is_retried", network_cut_while_polling_is_retried),
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
