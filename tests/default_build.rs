//! The default binary (`cargo build`/`cargo install` without features): it
//! has the queue backend (`--remote-info`, pipeline `remote_info` and
//! `autopara worker` are there), and a launch that asks for MPI, which it
//! lacks, is an error before any work instead of every rank running the whole
//! job. Only built without the `mpi` feature (`cargo xtask test` runs it with
//! `cargo test -p autopara --test default_build`).
#![cfg(not(feature = "mpi"))]

use autopara::queue::testing::LocalCluster;
use autopara::{Atoms, extxyz};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_autopara");

/// Every variable that asks for MPI or shows an MPI launch.
const LAUNCH_VARS: &[&str] = &[
    "AUTOPARA_MPI",
    "WFL_MPIPOOL",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "PMI_SIZE",
    "PMI_RANK",
    "MV2_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "SLURM_STEP_ID",
    "SLURM_STEP_NUM_TASKS",
    "SLURM_NTASKS",
    "AUTOPARA_REMOTE_INFO",
];

fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    let frames: Vec<Atoms> =
        (0..3).map(|i| Atoms::new(vec![29, 29], vec![[0.0; 3], [2.5 + 0.1 * f64::from(i), 0.0, 0.0]])).collect();
    extxyz::write_file(&input, &frames).unwrap();
    (dir, input)
}

/// `autopara run calculate` (EMT) on `input` into `dir/out.xyz`, with no launch variables.
fn calculate(input: &Path, dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["run", "calculate", "-i", input.to_str().unwrap(), "-o", dir.join("out.xyz").to_str().unwrap()]);
    c.args(["--args", r#"{"calculator": {"type": "emt"}}"#, "-q"]);
    for v in LAUNCH_VARS {
        c.env_remove(v);
    }
    c
}

/// The directory's entries other than `in.xyz`: a refused run leaves none (no output, lock or journal).
fn written(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "in.xyz")
        .collect();
    names.sort();
    names
}

fn assert_refused(out: &Output, var: &str, dir: &Path) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run went ahead:\n{stderr}");
    assert!(stderr.contains("built without MPI") && stderr.contains("--features mpi"), "{stderr}");
    assert!(stderr.contains(var), "the message does not name {var}:\n{stderr}");
    assert_eq!(written(dir), Vec::<String>::new(), "work was done before the error");
}

#[test]
fn mpi_requests_and_multi_rank_launches_are_refused_before_any_work() {
    let (tmp, input) = workdir();
    let dir = tmp.path();
    let cases: &[&[(&str, &str)]] = &[
        &[("AUTOPARA_MPI", "1")],
        &[("WFL_MPIPOOL", "2")],
        &[("OMPI_COMM_WORLD_SIZE", "2"), ("OMPI_COMM_WORLD_RANK", "0")],
        &[("PMI_SIZE", "2"), ("PMI_RANK", "0")],
        &[("PMIX_RANK", "1")],
        &[("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_STEP_ID", "0"), ("SLURM_NTASKS", "2")],
    ];
    for env in cases {
        let out = calculate(&input, dir).envs(env.iter().copied()).output().unwrap();
        assert_refused(&out, env[0].0, dir);
    }
    // A single rank, or a batch script inside a many-task allocation, runs.
    for env in [&[("OMPI_COMM_WORLD_SIZE", "1")][..], &[("SLURM_NTASKS", "4"), ("SLURM_JOB_ID", "1")][..]] {
        let out = calculate(&input, dir).envs(env.iter().copied()).output().unwrap();
        assert!(out.status.success(), "{env:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(extxyz::read_file(dir.join("out.xyz")).unwrap().len(), 3);
        std::fs::remove_file(dir.join("out.xyz")).unwrap();
        std::fs::remove_file(dir.join("out.xyz.autopara.json")).unwrap();
    }
}

/// Under a real `mpirun -np 2` both ranks refuse (Open MPI sets
/// `OMPI_COMM_WORLD_SIZE=2`); without the check each would run the whole job.
#[test]
fn a_real_mpirun_is_refused() {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("mpirun")).find(|p| p.exists()));
    let Some(mpirun) = found else {
        assert!(
            std::env::var("AUTOPARA_REQUIRE_REFERENCES").map_or(true, |v| v != "1"),
            "mpirun missing; run `cargo xtask deps`"
        );
        eprintln!("SKIPPED a_real_mpirun_is_refused: no mpirun on PATH (run `cargo xtask deps`)");
        return;
    };
    let (tmp, input) = workdir();
    let dir = tmp.path();
    let inner = calculate(&input, dir);
    let mut c = Command::new(mpirun);
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", "2", BIN]).args(inner.get_args());
    for v in LAUNCH_VARS {
        c.env_remove(v);
    }
    let out = c.output().unwrap();
    assert_refused(&out, "OMPI_COMM_WORLD_SIZE=2", dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("built without MPI").count(), 2, "one refusal per rank:\n{stderr}");
}

/// Under a real Slurm: `srun -n 2` (a job step of two tasks) is refused by
/// both tasks; the batch script of a two-task allocation (no job step) is one
/// process and runs.
#[test]
fn a_real_srun_is_refused_and_a_batch_script_runs() {
    let Some(cluster) = LocalCluster::start_or_skip("a_real_srun_is_refused_and_a_batch_script_runs") else { return };
    let (tmp, input) = workdir();
    let dir = tmp.path();
    let inner = calculate(&input, dir);
    let mut srun = Command::new("srun");
    srun.args(["--ntasks=2", "--chdir"]).arg(dir).arg(BIN).args(inner.get_args()).envs(cluster.envs());
    for v in LAUNCH_VARS {
        srun.env_remove(v);
    }
    let out = srun.output().unwrap();
    assert_refused(&out, "SLURM_STEP_NUM_TASKS=2", dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("built without MPI").count(), 2, "one refusal per task:\n{stderr}");

    let args: Vec<String> = inner.get_args().map(|a| shell_word(&a.to_string_lossy())).collect::<Vec<_>>();
    let script = dir.join("batch.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{} {}\n", shell_word(BIN), args.join(" "))).unwrap();
    let mut sbatch = Command::new("sbatch");
    sbatch.args(["--wait", "--ntasks=2", "--output"]).arg(dir.join("batch.out")).arg(&script).envs(cluster.envs());
    let out = sbatch.output().unwrap();
    let log = std::fs::read_to_string(dir.join("batch.out")).unwrap_or_default();
    assert!(out.status.success(), "the batch script failed: {}\n{log}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(extxyz::read_file(dir.join("out.xyz")).unwrap().len(), 3, "{log}");
}

/// `s` single-quoted for a POSIX shell.
fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `--remote-info` and pipeline `remote_info` are part of the default binary:
/// the values are read (here: refused for naming no entry, or a bad field)
/// rather than rejected as unknown arguments.
#[test]
fn remote_info_is_accepted() {
    let (tmp, input) = workdir();
    let dir = tmp.path();
    let out = calculate(&input, dir).args(["--remote-info", r#"{"md": {"job_name": "m"}}"#]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("no entry for op label 'calculate'"), "{stderr}");
    let pipeline = dir.join("p.toml");
    std::fs::write(
        &pipeline,
        "[[step]]\nname = \"emt\"\nop = \"calculate\"\ninputs = [\"in.xyz\"]\noutput = \"out.xyz\"\n\
         args = { calculator = { type = \"emt\" } }\nremote_info = { job_name = \"e\", resources = { num_cores = 0 } }\n",
    )
    .unwrap();
    let out = Command::new(BIN).args(["pipeline", pipeline.to_str().unwrap(), "-q"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("resources.num_cores"), "{stderr}");
    // A step naming a system that is not in the systems file: refused before the first step runs.
    std::fs::write(dir.join("systems.toml"), "[systems.here]\nscheduler = \"slurm\"\n").unwrap();
    std::fs::write(
        &pipeline,
        "[[step]]\nname = \"a\"\nop = \"calculate\"\ninputs = [\"in.xyz\"]\noutput = \"a.xyz\"\n\
         args = { calculator = { type = \"emt\" } }\n\n\
         [[step]]\nname = \"b\"\nop = \"calculate\"\ninputs = [\"@a\"]\noutput = \"b.xyz\"\n\
         args = { calculator = { type = \"emt\" } }\nremote_info = { system = \"nowhere\" }\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["pipeline", pipeline.to_str().unwrap(), "-q"])
        .env("AUTOPARA_SYSTEMS", dir.join("systems.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("[systems.nowhere]"), "{stderr}");
    assert!(!dir.join("a.xyz").exists(), "the first step ran before the second's system was checked");
    let out = Command::new(BIN).args(["worker", "--help"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
