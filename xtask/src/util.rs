//! Small helpers shared by xtask commands.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap_or_else(|_| PathBuf::from(".."))
}

#[allow(dead_code)] // used by the benchmarks as they land
/// The reference virtualenv's interpreter (`.venv/bin/python`), if it exists.
pub fn venv_python() -> Option<PathBuf> {
    let p = root().join(".venv/bin/python");
    p.exists().then_some(p)
}

/// Runs a command, failing with its name when it fails.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed with {status}")) }
}

/// Runs `cargo ARGS` in `dir`.
pub fn cargo(dir: &Path, args: &[&str]) -> Result<(), String> {
    cargo_env(dir, args, &[])
}

/// Runs `cargo ARGS` in `dir` with extra environment variables.
pub fn cargo_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// Runs a command and returns (CPU seconds of the child, wall seconds).
pub fn timed(cmd: &mut Command) -> Result<(f64, f64), String> {
    let cpu0 = children_cpu()?;
    let t0 = Instant::now();
    run(cmd)?;
    let wall = t0.elapsed().as_secs_f64();
    Ok((children_cpu()? - cpu0, wall))
}

/// CPU seconds (user + system) of this process's finished children, from
/// `/proc/self/stat` (`cutime`, `cstime`, in the kernel's fixed 100 Hz ticks).
fn children_cpu() -> Result<f64, String> {
    let stat = std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("malformed /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command name start at field 3 (state); cutime is 16, cstime 17.
    let tick = |i: usize| fields.get(i).and_then(|s| s.parse::<f64>().ok()).ok_or("malformed /proc/self/stat");
    Ok((tick(13)? + tick(14)?) / 100.0)
}

/// Runs a command and returns its stdout, failing with its stderr.
pub fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

/// Whether the interpreter `py` can import `module`.
pub fn python_has(py: &Path, module: &str) -> bool {
    Command::new(py).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success())
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` or `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

/// Removes `out` and its autopara record if present, so that a timed run
/// writes a new output as a first run does (overwriting would add the
/// unlinking of the old file to the time, which is not the op's).
pub fn remove_output(out: &Path) -> Result<(), String> {
    let mut record = out.as_os_str().to_owned();
    record.push(".autopara.json");
    for stale in [out.to_path_buf(), PathBuf::from(record)] {
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| format!("{}: {e}", stale.display()))?;
        }
    }
    Ok(())
}

/// Prints the load average and core count; wall-clock figures only mean
/// something on an otherwise idle machine.
pub fn print_load() {
    print_load_as("before");
}

/// Prints the load average at the end of a benchmark (the machine may be shared).
pub fn print_load_after() {
    print_load_as("after");
}

fn print_load_as(when: &str) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average {when}: {} (cores: {})",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}

/// Builds the release `autopara` binary with the default features plus
/// `features` (comma-separated, may be empty) and returns its path.
pub fn release_autopara(root: &Path, features: &str) -> Result<PathBuf, String> {
    let mut args = vec!["build", "--release", "--quiet", "-p", "autopara", "--bin", "autopara"];
    if !features.is_empty() {
        args.extend(["--features", features]);
    }
    cargo(root, &args)?;
    Ok(target_dir(root).join("release/autopara"))
}

/// Runs `f` in a fresh temporary directory `autopara-bench-NAME-PID`, removed afterwards.
pub fn in_temp_dir(name: &str, f: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("autopara-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = f(&dir);
    // Best effort: the directory only holds benchmark inputs and outputs.
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Wall and CPU time of one run, in seconds.
#[derive(Clone, Copy)]
pub struct Timing {
    /// Wall-clock seconds.
    pub wall: f64,
    /// CPU seconds of this process (all threads).
    pub cpu: f64,
}

/// Work done in a measured run (configurations, atom-steps, ...), with its
/// CPU and wall seconds: throughput per CPU second and per wall second.
pub struct Throughput {
    /// Units of work done.
    pub amount: f64,
    /// CPU seconds.
    pub cpu: f64,
    /// Wall-clock seconds.
    pub wall: f64,
}

impl Throughput {
    /// Work per CPU second.
    pub fn per_cpu(&self) -> f64 {
        self.amount / self.cpu
    }

    /// Work per wall second.
    pub fn per_wall(&self) -> f64 {
        self.amount / self.wall
    }
}

/// CPU seconds used by this process (all threads, also those that have exited).
pub fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The fastest (by wall time) of `n` runs of `f`, and the last run's result,
/// which is dropped by the caller, outside the timed region.
pub fn best_of<T>(n: usize, mut f: impl FnMut() -> Result<T, String>) -> Result<(Timing, T), String> {
    let mut best = Timing { wall: f64::INFINITY, cpu: f64::INFINITY };
    let mut last = None;
    for _ in 0..n {
        // The previous run's result is dropped here, before the clock starts.
        drop(last.take());
        let (t, c) = (Instant::now(), cpu_seconds());
        let out = f()?;
        let run = Timing { wall: t.elapsed().as_secs_f64(), cpu: cpu_seconds() - c };
        if run.wall < best.wall {
            best = run;
        }
        last = Some(out);
    }
    last.map(|o| (best, o)).ok_or_else(|| "no runs".to_string())
}

/// Builds the Python package (`python/`, its extension with cargo profile
/// `profile`) with the venv's maturin and installs the wheel into `.venv`.
pub fn install_python_package(root: &Path, profile: &str) -> Result<(), String> {
    let venv = root.join(".venv/bin");
    let wheels = target_dir(root).join(format!("python-wheels-{profile}"));
    let _ = std::fs::remove_dir_all(&wheels);
    run(Command::new(venv.join("maturin"))
        .args(["build", "--profile", profile, "--quiet", "--interpreter"])
        .arg(venv.join("python"))
        .arg("--out")
        .arg(&wheels)
        .current_dir(root.join("python")))?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| format!("{}: {e}", wheels.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("maturin left no wheel in {}", wheels.display()))?;
    run(Command::new(venv.join("python"))
        .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "--force-reinstall", "--no-deps"])
        .arg(&wheel))
}
