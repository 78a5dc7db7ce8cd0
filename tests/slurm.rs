//! `autopara run --remote-info` and pipelines with `remote_info` on a real
//! single-node Slurm (started by `LocalCluster`; skipped loudly without
//! Slurm), on this machine and through a real sshd (`LocalSshd`), and on a
//! real single-node Grid Engine (`LocalGridEngine`): the output
//! equals a local run with the same seed, a driver killed mid-run re-attaches
//! to its jobs when rerun, and a failed job's items,
//! written flagged under `ignore_failed_jobs`, count as failed until
//! `--retry-failed` runs them again. An `ase` calculator is built in each job,
//! whose `pre_cmds` choose the interpreter. Jobs run this build's `autopara worker`.
//!
//! Run with `cargo test -p autopara --test slurm`.

use autopara::queue::testing::{LocalCluster, LocalGridEngine, LocalSshd};
use autopara::{Atoms, extxyz};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_autopara");
const MD_ARGS: &str =
    r#"{"calculator": {"type": "emt"}, "steps": 6, "dt": 1.0, "temperature": 500, "traj_step_interval": 3}"#;

/// Six small Cu clusters, each slightly different.
fn write_inputs(path: &Path) {
    let frames: Vec<Atoms> = (0..6)
        .map(|i| {
            let d = 0.05 * i as f64;
            Atoms::new(
                vec![29; 4],
                vec![[0.0, 0.0, 0.0], [1.8 + d, 1.8, 0.0], [1.8, 0.0, 1.8 - d], [0.0, 1.8, 1.8 + d]],
            )
        })
        .collect();
    extxyz::write_file(path, &frames).unwrap();
}

fn autopara(cluster: &LocalCluster, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("AUTOPARA_REMOTE_INFO").envs(cluster.envs()).envs(env.iter().copied());
    c
}

fn run_md(cluster: &LocalCluster, dir: &Path, out: &str, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let input = dir.join("in.xyz");
    let output = dir.join(out);
    let mut args = vec!["run", "md", "-i", input.to_str().unwrap(), "-o", output.to_str().unwrap()];
    args.extend(["--args", MD_ARGS, "--seed", "7", "--chunk-size", "1", "-q"]);
    args.extend(extra);
    autopara(cluster, &args, env)
}

/// Runs `c`, checks it succeeded, returns its stderr.
fn ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{c:?} failed:\n{stderr}");
    stderr
}

fn remote_info(jobs_dir: &Path, pre_cmds: &[&str]) -> String {
    serde_json::json!({
        "md": {
            "job_name": "md",
            "num_inputs_per_queued_job": -2,
            "check_interval": 0.2,
            "timeout": 120,
            "pre_cmds": pre_cmds,
            "autopara_bin": BIN,
            "jobs_dir": jobs_dir,
        }
    })
    .to_string()
}

/// Starts the driver `c`, kills it (SIGKILL) once it has recorded `n` jobs'
/// submissions in `jobs`, and returns them.
fn kill_after_submitting(mut c: Command, jobs: &Path, n: usize) -> BTreeMap<PathBuf, String> {
    // What a killed driver leaves in its temporary directory (an ssh control
    // directory) goes with the test's.
    let tmp = jobs.parent().unwrap();
    let mut driver = c.env("TMPDIR", tmp).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while submissions(jobs).len() < n {
        assert!(start.elapsed() < Duration::from_secs(60), "the driver never submitted its {n} jobs");
        assert!(driver.try_wait().unwrap().is_none(), "the driver ended before it was killed");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver.kill().unwrap();
    driver.wait().unwrap();
    submissions(jobs)
}

/// Fails unless the two files hold the same bytes (without printing them).
fn assert_same_bytes(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert!(x == y, "{} ({} bytes) differs from {} ({} bytes)", a.display(), x.len(), b.display(), y.len());
}

/// Job directory → Slurm id, for directories with a recorded submission.
fn submissions(jobs_dir: &Path) -> BTreeMap<PathBuf, String> {
    std::fs::read_dir(jobs_dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let dir = e.ok()?.path();
                let sub: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(dir.join("submission.json")).ok()?).ok()?;
                Some((dir, sub["id"].as_str()?.to_string()))
            })
            .collect()
        })
        .unwrap_or_default()
}

#[test]
fn slurm_run_equals_local_and_killed_driver_reattaches() {
    let Some(cluster) = LocalCluster::start_or_skip("slurm_run_equals_local_and_killed_driver_reattaches") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_inputs(&dir.join("in.xyz"));
    let log = ok(run_md(&cluster, dir, "local.xyz", &["--workers", "1"], &[]));
    assert!(!log.contains("slurm"), "the local run used Slurm:\n{log}");
    let local = extxyz::read_file(dir.join("local.xyz")).unwrap();
    assert_eq!(local.len(), 6 * 3, "frames at steps 0, 3, 6 per config");

    // --remote-info: 3 jobs of 2 configs; the same trajectories, bit for bit.
    let jobs = dir.join("jobs");
    ok(run_md(&cluster, dir, "remote.xyz", &["--remote-info", &remote_info(&jobs, &[])], &[]));
    assert_eq!(extxyz::read_file(dir.join("remote.xyz")).unwrap(), local);
    assert_eq!(submissions(&jobs).len(), 3);

    // A driver killed (SIGKILL) while its jobs are queued or running...
    let jobs = dir.join("jobs-killed");
    let slow = remote_info(&jobs, &["sleep 3"]);
    let before = kill_after_submitting(run_md(&cluster, dir, "killed.xyz", &["--remote-info", &slow], &[]), &jobs, 3);
    let queued = cluster.jobs().unwrap().len();
    // ... and rerun (remote info from the environment this time) re-attaches to the same jobs.
    let log = ok(run_md(&cluster, dir, "killed.xyz", &[], &[("AUTOPARA_REMOTE_INFO", &slow)]));
    // Followed (or, on a slow machine, already finished): none submitted again.
    assert!(log.contains("3 jobs: 0 submitted, ") && !log.contains("resubmitted"), "{log}");
    assert_eq!(extxyz::read_file(dir.join("killed.xyz")).unwrap(), local);
    assert_eq!(submissions(&jobs), before, "a job was resubmitted");
    assert!(before.keys().all(|d| d.join("status").exists()), "the rerun did not wait for the jobs");
    assert_eq!(cluster.jobs().unwrap().len(), queued, "the rerun submitted jobs");

    // A pipeline step with a `remote_info` table runs on Slurm too, and so
    // does a step named in the file's top-level `remote_info` (by its op).
    let jobs = dir.join("jobs-pipeline");
    let calc_jobs = dir.join("jobs-pipeline-calc");
    let pipeline = format!(
        "[remote_info.calculate]\njob_name = \"calc\"\ncheck_interval = 0.2\nautopara_bin = \"{BIN}\"\n\
         jobs_dir = \"{}\"\n\n\
         [[step]]\nname = \"traj\"\nop = \"md\"\ninputs = [\"in.xyz\"]\noutput = \"pipe.xyz\"\n\
         args = {{ calculator = {{ type = \"emt\" }}, steps = 6, dt = 1.0, temperature = 500, traj_step_interval = 3 }}\n\
         settings = {{ seed = 7, chunk_size = 1 }}\n\
         remote_info = {{ job_name = \"pipe\", num_inputs_per_queued_job = -3, check_interval = 0.2, \
         autopara_bin = \"{BIN}\", jobs_dir = \"{}\" }}\n\n\
         [[step]]\nname = \"energies\"\nop = \"calculate\"\ninputs = [\"@traj\"]\noutput = \"pipe-calc.xyz\"\n\
         args = {{ calculator = {{ type = \"emt\" }} }}\n",
        calc_jobs.display(),
        jobs.display()
    );
    std::fs::write(dir.join("pipeline.toml"), pipeline).unwrap();
    let log = ok(autopara(&cluster, &["pipeline", dir.join("pipeline.toml").to_str().unwrap(), "-q"], &[]));
    assert!(log.contains("traj runs on slurm") && log.contains("energies runs on slurm"), "{log}");
    assert_eq!(extxyz::read_file(dir.join("pipe.xyz")).unwrap(), local);
    assert_eq!(submissions(&jobs).len(), 2);
    assert_eq!(submissions(&calc_jobs).len(), 1);
    let calc =
        ["run", "calculate", "-i", "local.xyz", "-o", "local-calc.xyz", "--args", r#"{"calculator": {"type": "emt"}}"#];
    let mut local_calc = autopara(&cluster, &calc, &[]);
    local_calc.current_dir(dir);
    ok(local_calc);
    assert_same_bytes(&dir.join("pipe-calc.xyz"), &dir.join("local-calc.xyz"));
}

/// `autopara run` on a system reached over ssh (a real sshd on a loopback
/// port in front of the test's Slurm; the jobs run in a "remote" directory
/// apart from the driver's): a driver killed (SIGKILL) while its jobs run is
/// rerun, re-attaches to the same jobs over ssh, and writes the local run's
/// trajectories, byte for byte.
#[test]
fn over_ssh_a_killed_driver_reattaches_and_equals_local() {
    let Some(cluster) = LocalCluster::start_or_skip("over_ssh_a_killed_driver_reattaches_and_equals_local") else {
        return;
    };
    let Some(sshd) = LocalSshd::start_or_skip("over_ssh", &[("SLURM_CONF", cluster.conf())]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_inputs(&dir.join("in.xyz"));
    ok(run_md(&cluster, dir, "local.xyz", &["--workers", "1"], &[]));
    let systems = dir.join("systems.toml");
    let remote = dir.join("remote");
    std::fs::write(&systems, sshd.system_toml("loop", &remote, Path::new(BIN))).unwrap();
    let jobs = dir.join("jobs-ssh");
    let info = serde_json::json!({"md": {
        "system": "loop", "job_name": "md", "num_inputs_per_queued_job": -2, "check_interval": 0.2,
        "timeout": 120, "pre_cmds": ["sleep 2"], "jobs_dir": jobs,
    }})
    .to_string();
    let env = [("AUTOPARA_SYSTEMS", systems.to_str().unwrap())];
    let before = kill_after_submitting(run_md(&cluster, dir, "ssh.xyz", &["--remote-info", &info], &env), &jobs, 3);
    let log = ok(run_md(&cluster, dir, "ssh.xyz", &["--remote-info", &info], &env));
    assert!(log.contains("md runs on slurm on ") && log.contains("@127.0.0.1"), "{log}");
    // Followed (or, on a slow machine, already finished): none submitted again.
    assert!(log.contains("3 jobs: 0 submitted, ") && !log.contains("resubmitted"), "{log}");
    assert_same_bytes(&dir.join("ssh.xyz"), &dir.join("local.xyz"));
    assert_eq!(submissions(&jobs), before, "a job was resubmitted");
    for job in before.keys() {
        let there = remote.join(job.file_name().unwrap());
        assert!(there.join("status").exists() && job.join("results.json").exists(), "{}", there.display());
    }
}

/// `autopara run` on a real single-node Grid Engine (a system with
/// `scheduler = "sge"`): a driver killed (SIGKILL) while its jobs run is
/// rerun, re-attaches to the same jobs, and writes the local run's
/// trajectories, byte for byte.
#[test]
fn on_grid_engine_a_killed_driver_reattaches_and_equals_local() {
    let Some(sge) = LocalGridEngine::start_or_skip("on_grid_engine_a_killed_driver_reattaches_and_equals_local") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_inputs(&dir.join("in.xyz"));
    let systems = dir.join("systems.toml");
    std::fs::write(&systems, format!("[systems.sge]\nscheduler = \"sge\"\nautopara_bin = \"{BIN}\"\n")).unwrap();
    let jobs = dir.join("jobs-sge");
    let info = serde_json::json!({"md": {
        "system": "sge", "job_name": "md", "num_inputs_per_queued_job": -2, "check_interval": 0.3,
        "timeout": 120, "pre_cmds": ["sleep 3"], "jobs_dir": jobs,
    }})
    .to_string();
    let md = |out: &str, extra: &[&str]| {
        let (input, output) = (dir.join("in.xyz"), dir.join(out));
        let mut c = Command::new(BIN);
        c.args(["run", "md", "-i", input.to_str().unwrap(), "-o", output.to_str().unwrap()]);
        c.args(["--args", MD_ARGS, "--seed", "7", "--chunk-size", "1", "-q"]).args(extra);
        c.env_remove("AUTOPARA_REMOTE_INFO").env("AUTOPARA_SYSTEMS", &systems).envs(sge.envs());
        c
    };
    ok(md("local.xyz", &["--workers", "1"]));
    let before = kill_after_submitting(md("sge.xyz", &["--remote-info", &info]), &jobs, 3);
    let log = ok(md("sge.xyz", &["--remote-info", &info]));
    assert!(log.contains("md runs on sge on this machine"), "{log}");
    // Followed (or, on a slow machine, already finished): none submitted again.
    assert!(log.contains("3 jobs: 0 submitted, ") && !log.contains("resubmitted"), "{log}");
    assert_same_bytes(&dir.join("sge.xyz"), &dir.join("local.xyz"));
    assert_eq!(submissions(&jobs), before, "a job was resubmitted");
}

/// A job that fails under `ignore_failed_jobs`: its inputs are written flagged
/// with `EXPYRE_REMOTE_JOB_FAILED` and count as failed items in the summary,
/// the record and the failure records; `--retry-failed` resubmits that job
/// and the output becomes the local run's, byte for byte.
#[test]
fn an_ignored_failed_job_counts_as_failed_and_retry_resubmits_it() {
    let Some(cluster) = LocalCluster::start_or_skip("an_ignored_failed_job_counts_as_failed_and_retry_resubmits_it")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_inputs(&dir.join("in.xyz"));
    ok(run_md(&cluster, dir, "local.xyz", &["--workers", "1"], &[]));
    // A worker that fails in the first job to start (mkdir is atomic), then works.
    let flaky = dir.join("flaky-autopara");
    let script = format!(
        "#!/bin/sh\nif mkdir '{}' 2>/dev/null; then echo 'boom: flaky worker' >&2; exit 3; fi\nexec '{BIN}' \"$@\"\n",
        dir.join("failed-once").display()
    );
    std::fs::write(&flaky, script).unwrap();
    std::fs::set_permissions(&flaky, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let info = serde_json::json!({"md": {
        "job_name": "flaky", "num_inputs_per_queued_job": -2, "check_interval": 0.2, "timeout": 120,
        "autopara_bin": flaky, "jobs_dir": dir.join("jobs"), "ignore_failed_jobs": true,
    }})
    .to_string();
    let (input, output) = (dir.join("in.xyz"), dir.join("out.xyz"));
    let md = |extra: &[&str]| {
        let mut args = vec!["run", "md", "-i", input.to_str().unwrap(), "-o", output.to_str().unwrap()];
        args.extend(["--args", MD_ARGS, "--seed", "7", "--chunk-size", "1", "--remote-info", &info]);
        args.extend(extra);
        autopara(&cluster, &args, &[("AUTOPARA_PROGRESS", "1")])
    };
    let log = ok(md(&[]));
    assert!(log.contains("ignoring failed job") && log.contains("boom: flaky worker"), "{log}");
    assert!(log.contains("6 items, 14 configs written, 2 failed"), "{log}");
    let frames = extxyz::read_file(&output).unwrap();
    let flagged: Vec<&Atoms> = frames.iter().filter(|a| a.info.contains_key("EXPYRE_REMOTE_JOB_FAILED")).collect();
    assert_eq!(flagged.len(), 2, "the failed job's two inputs, flagged");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out.xyz.autopara.json")).unwrap()).unwrap();
    assert_eq!((record["items"].as_u64(), record["failed"].as_u64()), (Some(6), Some(2)), "{record}");
    let failures = std::fs::read_to_string(dir.join("out.xyz.failures.jsonl")).unwrap();
    assert_eq!(failures.lines().count(), 2, "{failures}");

    let log = ok(md(&["--retry-failed"]));
    assert!(log.contains("rerunning 2 failed items") && log.contains("resubmitting"), "{log}");
    assert_same_bytes(&output, &dir.join("local.xyz"));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out.xyz.autopara.json")).unwrap()).unwrap();
    assert_eq!((record["failed"].as_u64(), record["configs"].as_u64()), (Some(0), Some(18)), "{record}");
    assert!(!dir.join("out.xyz.failures.jsonl").exists());
}

/// Remote info without an entry for the op: an error from `--remote-info`, a
/// local run (with a notice) from `AUTOPARA_REMOTE_INFO`. No cluster needed.
#[test]
fn remote_info_without_an_entry_for_the_op() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_inputs(&dir.join("in.xyz"));
    let input = dir.join("in.xyz");
    let other_op = r#"{"calculate": {"job_name": "c"}}"#;
    let run = |out: &str| {
        let mut c = Command::new(BIN);
        c.args(["run", "md", "-i", input.to_str().unwrap(), "-o", dir.join(out).to_str().unwrap()]);
        c.args(["--args", MD_ARGS, "-q"]).env_remove("AUTOPARA_REMOTE_INFO");
        c
    };
    let out = run("a.xyz").args(["--remote-info", other_op]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("no entry for op label 'md'"), "{stderr}");
    let out = run("b.xyz").env("AUTOPARA_REMOTE_INFO", other_op).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("no entry for op label 'md'; running locally"), "{stderr}");
    assert_eq!(extxyz::read_file(dir.join("b.xyz")).unwrap().len(), 18);
}

#[test]
fn an_ase_calculator_in_slurm_jobs_is_built_in_each_job_with_its_pre_cmds() {
    let Some(python) = autopara_testkit::python_or_skip("slurm ase calculator") else { return };
    let Some(cluster) = LocalCluster::start_or_skip("an_ase_calculator_in_slurm_jobs") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_inputs(&dir.join("in.xyz"));
    // No `python` in the spec: the interpreter comes from AUTOPARA_PYTHON,
    // which the jobs' pre_cmds set (the driver's own points nowhere).
    let args = |log: &str| {
        serde_json::json!({
            "calculator": {
                "type": "ase", "constructor": "bridge_test_calculators.RecordingEMT",
                "kwargs": {"log": dir.join(log)}, "pythonpath": [autopara_testkit::bridge::modules()],
            },
            "steps": 6, "dt": 1.0, "temperature": 500, "traj_step_interval": 3,
        })
        .to_string()
    };
    let run = |out: &str, log: &str, extra: &[&str], env: &[(&str, &str)]| {
        let (input, output) = (dir.join("in.xyz"), dir.join(out));
        let mut a = vec!["run", "md", "-i", input.to_str().unwrap(), "-o", output.to_str().unwrap()];
        let args = args(log);
        a.extend(["--args", &args, "--seed", "7", "--chunk-size", "1", "-q"]);
        a.extend(extra);
        ok(autopara(&cluster, &a, env))
    };
    let py = python.to_str().unwrap();
    run("local.xyz", "local.log", &["--workers", "1"], &[("AUTOPARA_PYTHON", py)]);
    let jobs = dir.join("jobs");
    let export = format!("export AUTOPARA_PYTHON={py}");
    // One autopara worker per job, so one Python worker per job.
    let info = remote_info(&jobs, &[&export, "export AUTOPARA_NUM_WORKERS=1"]);
    run("remote.xyz", "remote.log", &["--remote-info", &info], &[("AUTOPARA_PYTHON", "/nonexistent/python3")]);
    assert_same_bytes(&dir.join("local.xyz"), &dir.join("remote.xyz"));
    assert_eq!(submissions(&jobs).len(), 3);
    // Each of the 3 jobs (2 configs each) started its own Python worker, built once.
    let recorded = autopara_testkit::bridge::Recorded::read(&dir.join("remote.log"));
    recorded.assert_once_per_worker("slurm", 3, 6 * 7);
    assert_eq!(recorded.constructed.len(), 3, "{recorded:?}");
}
