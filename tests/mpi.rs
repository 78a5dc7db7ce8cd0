//! The MPI backend under a real `mpirun -np 2` (OpenMPI): byte-identical to
//! serial runs, every rank busy, hybrid threads, the example program, and a
//! worker rank killed mid-run failing the run (no hang) with finished chunks
//! kept for resume, and an `ase` calculator built once on each rank.
#![cfg(feature = "mpi")]

use autopara::{Value, extxyz};
use autopara_testkit::fixtures::fcc;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_autopara");

/// `mpirun`, or `None` after a loud skip (a failure when references are required).
fn mpirun() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("mpirun")).find(|p| p.exists()));
    if found.is_none() {
        assert!(
            std::env::var("AUTOPARA_REQUIRE_REFERENCES").map_or(true, |v| v != "1"),
            "mpirun missing; run `cargo xtask deps`"
        );
        eprintln!("SKIPPED mpi tests: no mpirun on PATH (run `cargo xtask deps`)");
    }
    found
}

fn mpi_command(mpirun: &Path, np: usize, program: &str) -> Command {
    let mut cmd = Command::new(mpirun);
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-np", &np.to_string(), program])
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("AUTOPARA_MPI", "1");
    cmd
}

fn check(out: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed: {}\n{stderr}", out.status);
    stderr
}

/// 16 rattled 32-atom fcc Cu cells, written with our own extxyz writer.
fn write_inputs(dir: &Path) -> PathBuf {
    let mut configs = Vec::new();
    for c in 0..16u32 {
        let mut at = fcc(29, 3.61, [2, 2, 2]);
        for (n, p) in at.positions.iter_mut().enumerate() {
            let jitter = 0.03 * ((n as f64 * 1.7 + f64::from(c) * 0.37).sin());
            *p = [p[0] + jitter, p[1] - jitter, p[2] + 0.5 * jitter];
        }
        at.info.insert("config_i".into(), Value::Int(i64::from(c)));
        configs.push(at);
    }
    let path = dir.join("in.xyz");
    std::fs::write(&path, extxyz::to_string(&configs).expect("encode inputs")).expect("write inputs");
    path
}

const MD_ARGS: &str = r#"{"calculator":{"type":"emt"},"steps":60,"dt":1.0,"temperature":300,"temperature_tau":50,"integrator":"Langevin","traj_step_interval":20}"#;

fn serial_run(op: &str, args: &str, input: &Path, output: &Path) {
    let out = Command::new(BIN)
        .args(["run", op, "-i"])
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(["--args", args, "--workers", "1", "--seed", "5", "-q"])
        .output()
        .expect("run autopara");
    check(out, "serial run");
}

/// Chunks each rank finished, from the backend's summary line.
fn chunks_per_rank(stderr: &str) -> Vec<u64> {
    let line = stderr.lines().find(|l| l.contains("mpi: chunks per rank:")).unwrap_or_else(|| panic!("{stderr}"));
    line.rsplit("rank:")
        .next()
        .unwrap_or("")
        .split(',')
        .filter_map(|p| p.split(':').nth(1)?.trim().parse().ok())
        .collect()
}

#[test]
fn mpirun_cli_is_byte_identical_to_serial_and_uses_every_rank() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_inputs(dir.path());
    for (op, args) in [("md", MD_ARGS), ("calculate", r#"{"calculator":{"type":"emt"}}"#)] {
        let serial = dir.path().join(format!("{op}-serial.xyz"));
        serial_run(op, args, &input, &serial);
        for threads in ["1", "2"] {
            let out_path = dir.path().join(format!("{op}-mpi-{threads}.xyz"));
            let out = mpi_command(&mpirun, 2, BIN)
                .env("AUTOPARA_NUM_WORKERS", threads)
                .args(["run", op, "-i"])
                .arg(&input)
                .arg("-o")
                .arg(&out_path)
                .args(["--args", args, "--seed", "5", "--chunk-size", "1"])
                .output()
                .expect("mpirun");
            let stderr = check(out, &format!("mpirun {op} with {threads} threads per rank"));
            assert!(stderr.contains("on the mpi backend"), "{stderr}");
            let per_rank = chunks_per_rank(&stderr);
            assert_eq!(per_rank.len(), 2, "{stderr}");
            // An md chunk takes milliseconds, so chunks queue on rank 0 and
            // rank 1 must get some. A calculate chunk (one 32-atom EMT single
            // point, tens of microseconds) is done by rank 0's threads about as
            // fast as they are submitted, and rank 0 may rightly keep them all.
            if op == "md" {
                assert!(per_rank.iter().all(|&n| n > 0), "a rank was idle: {stderr}");
            }
            assert_eq!(per_rank.iter().sum::<u64>(), 16);
            let a = std::fs::read(&serial).expect("serial output");
            let b = std::fs::read(&out_path).expect("mpi output");
            assert!(a == b, "{op}: mpi output ({threads} threads per rank) differs from serial");
        }
    }
}

#[test]
fn example_program_under_mpirun_equals_singleton() {
    let Some(mpirun) = mpirun() else { return };
    let example = PathBuf::from(BIN).parent().map(|d| d.join("examples/mpi_md")).expect("target dir");
    assert!(
        example.exists(),
        "{} not built: run the tests with --features mpi (cargo xtask test does)",
        example.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_inputs(dir.path());
    let single = dir.path().join("single.xyz");
    let out = Command::new(&example).arg(&input).arg(&single).output().expect("run example");
    check(out, "example as a singleton");
    let par = dir.path().join("par.xyz");
    let out =
        mpi_command(&mpirun, 2, &example.to_string_lossy()).arg(&input).arg(&par).output().expect("mpirun example");
    let stderr = check(out, "example under mpirun");
    assert!(chunks_per_rank(&stderr).iter().all(|&n| n > 0), "{stderr}");
    assert!(std::fs::read(&single).ok() == std::fs::read(&par).ok(), "example output differs under mpirun");
}

/// The pid of the rank-1 process started with our marker in its environment.
fn rank1_pid(marker: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(env) = std::fs::read(entry.path().join("environ")) else { continue };
        let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
        let has = |s: &str| vars.contains(&s.as_bytes());
        if has(&format!("AUTOPARA_TEST_MARKER={marker}")) && has("OMPI_COMM_WORLD_RANK=1") {
            return Some(pid);
        }
    }
    None
}

#[test]
fn killed_worker_rank_fails_the_run_and_keeps_finished_chunks() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_inputs(dir.path());
    let long_args = MD_ARGS
        .replace("\"steps\":60", "\"steps\":12000")
        .replace("\"traj_step_interval\":20", "\"traj_step_interval\":4000");
    let output = dir.path().join("killed.xyz");
    let marker = format!("{}-{:?}", std::process::id(), Instant::now());
    let mut child = mpi_command(&mpirun, 2, BIN)
        .env("AUTOPARA_TEST_MARKER", &marker)
        .args(["run", "md", "-i"])
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .args(["--args", &long_args, "--seed", "5", "--chunk-size", "1", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun");
    // Wait until some chunks are journaled (a checkpoint line after the
    // journal's header), then kill rank 1.
    let journal = autopara::sidecar::journal_path(&output);
    let start = Instant::now();
    while std::fs::read_to_string(&journal).map_or(0, |j| j.lines().count()) < 2 {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress journaled");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = rank1_pid(&marker).expect("rank 1 process");
    Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "mpirun hangs after a rank died");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "a dead rank must fail the run");
    assert!(!output.exists(), "an incomplete output must not appear under its final name");
    // The rerun resumes from the journal and ends byte-identical to an uninterrupted run.
    let out = Command::new(BIN)
        .args(["run", "md", "-i"])
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .args(["--args", &long_args, "--seed", "5", "--workers", "2", "--chunk-size", "1"])
        .output()
        .expect("rerun");
    let stderr = check(out, "resume after the dead rank");
    assert!(stderr.contains("resum"), "expected a resume: {stderr}");
    let fresh = dir.path().join("fresh.xyz");
    serial_run("md", &long_args, &input, &fresh);
    assert!(std::fs::read(&fresh).ok() == std::fs::read(&output).ok(), "resumed output differs");
}

#[test]
fn failed_item_stops_the_run_without_hanging_on_busy_ranks() {
    let Some(mpirun) = mpirun() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_inputs(dir.path());
    // Config 2 has an element EMT does not know: with --skip-failed false the
    // run stops there while rank 1 is still computing a chunk, whose answer
    // rank 0 must take before the job ends (else rank 1 never finishes).
    let mut configs = extxyz::read_file(&input).expect("read inputs");
    configs[2].numbers.iter_mut().for_each(|z| *z = 92);
    std::fs::write(&input, extxyz::to_string(&configs).expect("encode inputs")).expect("write inputs");
    let long_args = MD_ARGS.replace("\"steps\":60", "\"steps\":3000");
    let mut child = mpi_command(&mpirun, 2, BIN)
        .args(["run", "md", "-i"])
        .arg(&input)
        .arg("-o")
        .arg(dir.path().join("out.xyz"))
        .args(["--args", &long_args, "--seed", "5", "--chunk-size", "1", "--skip-failed", "false"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("mpirun hangs after a failed item");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
    assert!(!status.success(), "a failed item with --skip-failed false must fail the run: {stderr}");
    assert!(stderr.contains("item 2"), "the error names the failed item: {stderr}");
}

#[test]
fn ase_calculator_each_rank_builds_its_own_once() {
    let Some(mpirun) = mpirun() else { return };
    let Some(python) = autopara_testkit::python_or_skip("mpi ase calculator") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_inputs(dir.path());
    let args = |log: &str| {
        serde_json::json!({
            "calculator": {
                "type": "ase", "constructor": "bridge_test_calculators.RecordingEMT",
                "kwargs": {"log": dir.path().join(log)},
                "python": python, "pythonpath": [autopara_testkit::bridge::modules()],
            },
            "steps": 10, "dt": 1.0, "temperature": 300, "temperature_tau": 50, "integrator": "Langevin",
            "traj_step_interval": 5,
        })
        .to_string()
    };
    let serial = dir.path().join("serial.xyz");
    serial_run("md", &args("serial.log"), &input, &serial);
    let par = dir.path().join("mpi.xyz");
    let out = mpi_command(&mpirun, 2, BIN)
        .env("AUTOPARA_NUM_WORKERS", "1")
        .args(["run", "md", "-i"])
        .arg(&input)
        .arg("-o")
        .arg(&par)
        .args(["--args", &args("mpi.log"), "--seed", "5", "--chunk-size", "1"])
        .output()
        .expect("mpirun");
    let stderr = check(out, "mpirun md with an ase calculator");
    assert!(chunks_per_rank(&stderr).iter().all(|&n| n > 0), "a rank was idle: {stderr}");
    // One Python worker per rank (one autopara worker each), each built once.
    let recorded = autopara_testkit::bridge::Recorded::read(&dir.path().join("mpi.log"));
    recorded.assert_once_per_worker("mpi", 2, 16 * 11);
    assert_eq!(recorded.constructed.len(), 2, "{recorded:?}");
    assert!(std::fs::read(&serial).ok() == std::fs::read(&par).ok(), "mpi output differs from serial");
}
