//! `autopara run --remote-info` and a pipeline step with `remote_info` on a
//! real single-node Slurm (started by `LocalCluster`; skipped loudly without
//! Slurm): the output equals a local run with the same seed, and a driver
//! killed mid-run re-attaches to its jobs when rerun. Jobs run this build's
//! `autopara worker`.
//!
//! Run with `cargo test -p autopara --features slurm --test slurm`.

use autopara::queue::testing::LocalCluster;
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

/// Job directory → Slurm id, for directories with a recorded submission.
fn submissions(jobs_dir: &Path) -> BTreeMap<PathBuf, String> {
    std::fs::read_dir(jobs_dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let dir = e.ok()?.path();
                let sub: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(dir.join("submission.json")).ok()?).ok()?;
                Some((dir, sub["slurm_id"].as_str()?.to_string()))
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
    let mut driver = run_md(&cluster, dir, "killed.xyz", &["--remote-info", &slow], &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while submissions(&jobs).len() < 3 {
        assert!(start.elapsed() < Duration::from_secs(60), "the driver never submitted its 3 jobs");
        assert!(driver.try_wait().unwrap().is_none(), "the driver ended before it was killed");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver.kill().unwrap();
    driver.wait().unwrap();
    let before = submissions(&jobs);
    let queued = cluster.slurm().jobs().unwrap().len();
    // ... and rerun (remote info from the environment this time) re-attaches to the same jobs.
    let log = ok(run_md(&cluster, dir, "killed.xyz", &[], &[("AUTOPARA_REMOTE_INFO", &slow)]));
    assert!(log.contains("3 jobs in") && log.contains("0 submitted, 3 re-attached"), "{log}");
    assert_eq!(extxyz::read_file(dir.join("killed.xyz")).unwrap(), local);
    assert_eq!(submissions(&jobs), before, "a job was resubmitted");
    assert!(before.keys().all(|d| d.join("status").exists()), "the rerun did not wait for the jobs");
    assert_eq!(cluster.slurm().jobs().unwrap().len(), queued, "the rerun submitted jobs");

    // A pipeline step with a `remote_info` table runs on Slurm too.
    let jobs = dir.join("jobs-pipeline");
    let pipeline = format!(
        "[[step]]\nname = \"traj\"\nop = \"md\"\ninputs = [\"in.xyz\"]\noutput = \"pipe.xyz\"\n\
         args = {{ calculator = {{ type = \"emt\" }}, steps = 6, dt = 1.0, temperature = 500, traj_step_interval = 3 }}\n\
         settings = {{ seed = 7, chunk_size = 1 }}\n\
         remote_info = {{ job_name = \"pipe\", num_inputs_per_queued_job = -3, check_interval = 0.2, \
         autopara_bin = \"{BIN}\", jobs_dir = \"{}\" }}\n",
        jobs.display()
    );
    std::fs::write(dir.join("pipeline.toml"), pipeline).unwrap();
    let log = ok(autopara(&cluster, &["pipeline", dir.join("pipeline.toml").to_str().unwrap(), "-q"], &[]));
    assert!(log.contains("traj runs on Slurm"), "{log}");
    assert_eq!(extxyz::read_file(dir.join("pipe.xyz")).unwrap(), local);
    assert_eq!(submissions(&jobs).len(), 2);
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
