//! `cargo xtask bench queue`: the queue backend's own cost. 1,000 small items
//! (EMT single points on Cu dimers, chunks of 10) go in jobs of 100 through a
//! private single-node Slurm (started here, as the tests start it): from this
//! machine, and through ssh to localhost (a private sshd on a loopback port,
//! the jobs copied to a separate directory and back). `check_interval` is
//! 0.2 s, so polling adds little waiting. For each the benchmark prints the
//! driver's wall time, the time from the first submission to the last result,
//! and the driver's CPU time (with its helper processes: sh, sbatch, squeue,
//! ssh, rsync; not the jobs, which Slurm runs) per job and per item. A local
//! run of the same work is timed for reference; every output must equal it
//! byte for byte.

use crate::util;
use autopara_core::{Atoms, extxyz};
use autopara_queue::testing::{LocalCluster, LocalSshd};
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

const ITEMS: usize = 1000;
const PER_JOB: usize = 100;

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    let bin = util::release_autopara(&util::root(), "")?;
    util::in_temp_dir("queue", |dir| run_in(&bin, dir))
}

fn run_in(bin: &Path, dir: &Path) -> Result<(), String> {
    util::print_load();
    let input = dir.join("in.xyz");
    let dimers: Vec<Atoms> =
        (0..ITEMS).map(|i| Atoms::new(vec![29, 29], vec![[0.0; 3], [2.3 + 0.001 * i as f64, 0.0, 0.0]])).collect();
    extxyz::write_file(&input, &dimers).map_err(|e| e.to_string())?;
    let cluster = LocalCluster::start().map_err(|e| format!("starting a local Slurm (cargo xtask deps): {e}"))?;
    let sshd = LocalSshd::start(&[("SLURM_CONF", cluster.conf())])
        .map_err(|e| format!("starting a local sshd (cargo xtask deps): {e}"))?;
    let systems = dir.join("systems.toml");
    std::fs::write(&systems, sshd.system_toml("loop", &dir.join("remote"), bin)).map_err(|e| e.to_string())?;
    let calculate = |out: &str| {
        let mut c = Command::new(bin);
        c.args(["run", "calculate", "-i"]).arg(&input).arg("-o").arg(dir.join(out));
        c.args(["--args", r#"{"calculator": {"type": "emt"}}"#, "--chunk-size", "10", "-q"]);
        c.env_remove("AUTOPARA_REMOTE_INFO").env("AUTOPARA_SYSTEMS", &systems).envs(cluster.envs());
        c
    };
    let (cpu, wall) = util::timed(calculate("local.xyz").args(["--workers", "1"]))?;
    println!("local run, 1 worker: {wall:.2} s wall, {cpu:.2} CPU-s for {ITEMS} items");
    let reference = std::fs::read(dir.join("local.xyz")).map_err(|e| e.to_string())?;
    let jobs = ITEMS / PER_JOB;
    for (label, system) in [("local Slurm", None), ("ssh to localhost", Some("loop"))] {
        let jobs_dir = dir.join(format!("jobs-{}", label.replace(' ', "-")));
        let mut info = serde_json::json!({
            "job_name": "bench", "num_inputs_per_queued_job": PER_JOB, "check_interval": 0.2,
            "timeout": 600, "autopara_bin": bin, "jobs_dir": jobs_dir,
        });
        if let Some(s) = system {
            info["system"] = s.into();
        }
        let out = format!("{}.xyz", label.replace(' ', "-"));
        let (cpu, wall) = util::timed(calculate(&out).args(["--remote-info", &info.to_string()]))?;
        let end = SystemTime::now();
        let first = first_submission(&jobs_dir)?;
        let span = end.duration_since(first).map_err(|e| e.to_string())?.as_secs_f64();
        println!(
            "{label}: {jobs} jobs of {PER_JOB}: {wall:.2} s wall, first submission to last result {span:.2} s; \
             driver {cpu:.3} CPU-s = {:.1} ms per job, {:.0} µs per item",
            cpu / jobs as f64 * 1e3,
            cpu / ITEMS as f64 * 1e6
        );
        if std::fs::read(dir.join(&out)).map_err(|e| e.to_string())? != reference {
            return Err(format!("{label}: the output differs from the local run's"));
        }
    }
    println!("outputs are byte-identical to the local run's");
    Ok(())
}

/// When the first job of `jobs_dir` was submitted (its `submission.json`).
fn first_submission(jobs_dir: &Path) -> Result<SystemTime, String> {
    std::fs::read_dir(jobs_dir)
        .map_err(|e| format!("{}: {e}", jobs_dir.display()))?
        .filter_map(|e| std::fs::metadata(e.ok()?.path().join("submission.json")).ok()?.modified().ok())
        .min()
        .ok_or_else(|| format!("{}: no submissions", jobs_dir.display()))
}
