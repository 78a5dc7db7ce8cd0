//! `cargo xtask bench executor`: per-item overhead of the executor, side by
//! side with wfl's autoparallelize (`wfl.map.map`) on the same trivial op
//! (copy a configuration and set an info key), in memory and file to file,
//! for 1 and 2 workers and chunk sizes 1, 10 and 100; then the speed-up of 2
//! workers over 1 on a compute-bound op.
//!
//! Always measured in release mode: a dev-profile xtask re-runs itself with
//! `--release`.

use crate::util;
use autopara_core::outputspec::Outputs;
use autopara_core::{
    Atoms, AutoparaInfo, ConfigSet, InputKind, Item, ItemResult, OpInfo, Operation, OutputSpec, Value, WorkerContext,
    extxyz, runner,
};
use rand::Rng;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Items of the in-memory and file runs of autopara.
const N: usize = 100_000;
/// Items of wfl's in-memory runs (per-item figures; wfl is ~100x slower).
const N_WFL_MEMORY: usize = 10_000;
/// Items of wfl's file runs.
const N_WFL_FILE: usize = 2_000;
/// Items and random draws per item of the compute-bound op.
const N_COMPUTE: usize = 2_000;
const DRAWS: u32 = 200_000;

static TOUCH: OpInfo = OpInfo {
    name: "bench_touch",
    version: 1,
    default_chunk_size: 1,
    summary: "copy + set an info key",
    input_kind: InputKind::Configs,
};

/// The trivial op: copy, set `info["seen"] = True`.
struct Touch;

impl Operation for Touch {
    fn info(&self) -> &'static OpInfo {
        &TOUCH
    }
    fn args(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn run_chunk(&self, items: &[Item], _ctx: &mut WorkerContext) -> Vec<ItemResult> {
        items
            .iter()
            .map(|item| {
                let mut at = item.atoms()?.clone();
                at.info.insert("seen".into(), Value::Bool(true));
                Ok(vec![at])
            })
            .collect()
    }
}

static SPIN: OpInfo = OpInfo {
    name: "bench_spin",
    version: 1,
    default_chunk_size: 10,
    summary: "sum of random numbers from the item RNG (compute-bound)",
    input_kind: InputKind::Configs,
};

/// The compute-bound op: sums `DRAWS` numbers from the item's RNG.
struct Spin;

impl Operation for Spin {
    fn info(&self) -> &'static OpInfo {
        &SPIN
    }
    fn args(&self) -> serde_json::Value {
        serde_json::json!({ "draws": DRAWS })
    }
    fn run_chunk(&self, items: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult> {
        items
            .iter()
            .map(|item| {
                let mut at = item.atoms()?.clone();
                let mut rng = ctx.rng(item);
                let sum: f64 = (0..DRAWS).map(|_| rng.random::<f64>()).sum();
                at.info.insert("sum".into(), Value::Float(sum));
                Ok(vec![at])
            })
            .collect()
    }
}

/// A small periodic two-atom configuration, as the wfl script builds it.
fn config(i: usize) -> Atoms {
    let mut at = Atoms::new(vec![29, 29], vec![[0.0; 3], [1.8, 1.8, 1.8 + 1e-6 * i as f64]]);
    at.cell = [[3.6, 0.0, 0.0], [0.0, 3.6, 0.0], [0.0, 0.0, 3.6]];
    at.pbc = [true; 3];
    at
}

fn info(workers: usize, chunk: usize) -> AutoparaInfo {
    AutoparaInfo { workers: Some(workers), chunk_size: Some(chunk), progress: Some(false), ..Default::default() }
}

/// Best of three wall times of `f`, in seconds.
fn best_of_3(mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

const WFL_SCRIPT: &str = r#"
import json, sys, time, os
from ase import Atoms
from ase.io import write
from wfl.configset import ConfigSet, OutputSpec
from wfl.autoparallelize import AutoparaInfo
import wfl.map

def touch(at):
    at = at.copy()
    at.info["seen"] = True
    return at

def config(i):
    return Atoms("Cu2", positions=[[0, 0, 0], [1.8, 1.8, 1.8 + 1e-6 * i]], cell=[3.6] * 3, pbc=True)

if __name__ == "__main__":
    p = json.load(sys.stdin)
    os.environ.pop("WFL_NUM_PYTHON_SUBPROCESSES", None)
    res = {"memory": {}, "file": {}}
    mem = [config(i) for i in range(p["n_memory"])]
    for nproc in (0, 1, 2):
        for chunk in (1, 10, 100):
            ai = AutoparaInfo(num_python_subprocesses=nproc, num_inputs_per_python_subprocess=chunk)
            t = time.perf_counter()
            out = wfl.map.map(ConfigSet(mem), OutputSpec(), touch, autopara_info=ai)
            n = len(list(out))
            res["memory"][f"{nproc},{chunk}"] = (time.perf_counter() - t) / n * 1e6
    src = os.path.join(p["dir"], "wfl_in.xyz")
    write(src, [config(i) for i in range(p["n_file"])])
    for nproc in (0, 2):
        for chunk in (1, 10, 100):
            dst = os.path.join(p["dir"], f"wfl_out_{nproc}_{chunk}.xyz")
            ai = AutoparaInfo(num_python_subprocesses=nproc, num_inputs_per_python_subprocess=chunk)
            t = time.perf_counter()
            wfl.map.map(ConfigSet(src), OutputSpec(dst, overwrite=True), touch, autopara_info=ai)
            res["file"][f"{nproc},{chunk}"] = (time.perf_counter() - t) / p["n_file"] * 1e6
    print(json.dumps(res))
"#;

type WflTimes = BTreeMap<String, BTreeMap<String, f64>>;

/// wfl's per-item times, or why they are missing.
fn wfl_times(dir: &Path) -> Result<WflTimes, String> {
    let python = util::venv_python().ok_or("no .venv (run `cargo xtask deps --peers`)")?;
    let script = dir.join("wfl_bench.py");
    std::fs::write(&script, WFL_SCRIPT).map_err(|e| e.to_string())?;
    let input = serde_json::json!({ "n_memory": N_WFL_MEMORY, "n_file": N_WFL_FILE, "dir": dir });
    let mut child = std::process::Command::new(python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start python: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(input.to_string().as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").to_string();
        return Err(format!("wfl benchmark failed (is wfl==0.3.5 installed? `cargo xtask deps --peers`): {last}"));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bad wfl output: {e}"))
}

fn us(t: f64, n: usize) -> f64 {
    t / n as f64 * 1e6
}

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    if cfg!(debug_assertions) {
        println!("(re-running optimised: cargo run --release -p xtask -- bench executor)");
        return util::cargo(&util::root(), &["run", "--release", "--quiet", "-p", "xtask", "--", "bench", "executor"]);
    }
    let dir = tempfile_dir()?;
    let memory = ConfigSet::from_atoms((0..N).map(config).collect());
    let input = dir.join("in.xyz");
    extxyz::write_file(&input, &(0..N).map(config).collect::<Vec<_>>()).map_err(|e| e.to_string())?;
    let files = ConfigSet::from_paths(&[input.to_string_lossy()]).map_err(|e| e.to_string())?;

    println!("measuring wfl 0.3.5 (wfl.map.map, {N_WFL_MEMORY} configs in memory, {N_WFL_FILE} from a file)...");
    let wfl = wfl_times(&dir);
    if let Err(why) = &wfl {
        println!("wfl: not measured: {why}");
    }
    let wfl_us = |kind: &str, workers: usize, chunk: usize| -> Option<f64> {
        let nproc = if workers == 1 { 0 } else { workers };
        wfl.as_ref().ok()?.get(kind)?.get(&format!("{nproc},{chunk}")).copied()
    };

    println!(
        "\ntrivial op (copy + set info key), {N} two-atom configs; per-item wall time in us (best of 3)\n\
         wfl: in-process for 1 worker, multiprocessing.Pool(2) for 2\n"
    );
    println!("{:<8} {:>7} {:>6} {:>14} {:>10} {:>9}", "setting", "workers", "chunk", "autopara us", "wfl us", "ratio");
    let mut worst_ratio = f64::INFINITY;
    let mut worst = BTreeMap::new();
    for (kind, target) in [("memory", 2.0), ("file", 10.0)] {
        for workers in [1, 2] {
            for chunk in [1, 10, 100] {
                let t = best_of_3(|| {
                    let (inputs, outputs) = match kind {
                        "memory" => (&memory, OutputSpec::memory()),
                        _ => (&files, OutputSpec::file(dir.join("out.xyz")).overwrite(true)),
                    };
                    let s = runner::run(&Touch, inputs, &outputs, &info(workers, chunk)).map_err(|e| e.to_string())?;
                    if let Outputs::Memory(v) = &s.outputs
                        && v.len() != N
                    {
                        return Err(format!("expected {N} outputs, got {}", v.len()));
                    }
                    Ok(())
                })?;
                let ours = us(t, N);
                let entry = worst.entry(kind).or_insert((0.0f64, target));
                entry.0 = entry.0.max(ours);
                let (peer, ratio) = match wfl_us(kind, workers, chunk) {
                    Some(w) => {
                        worst_ratio = worst_ratio.min(w / ours);
                        (format!("{w:.1}"), format!("{:.0}x", w / ours))
                    }
                    None => ("-".into(), "-".into()),
                };
                println!("{kind:<8} {workers:>7} {chunk:>6} {ours:>14.3} {peer:>10} {ratio:>9}");
            }
        }
    }
    if let Ok(w) = &wfl
        && let Some(p1) = w.get("memory").and_then(|m| m.get("1,1"))
    {
        println!("(wfl Pool(1), chunk 1, in memory: {p1:.1} us/item)");
    }

    let compute = ConfigSet::from_atoms((0..N_COMPUTE).map(config).collect());
    let mut times = Vec::new();
    for workers in [1, 2] {
        times.push(best_of_3(|| {
            runner::run(&Spin, &compute, &OutputSpec::memory(), &info(workers, 10))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?);
    }
    println!(
        "\ncompute-bound op ({N_COMPUTE} items x {DRAWS} RNG draws): 1 worker {:.3} s, 2 workers {:.3} s: {:.2}x",
        times[0],
        times[1],
        times[0] / times[1]
    );
    println!("\ntargets:");
    for (kind, (ours, target)) in &worst {
        println!(
            "  {kind}: worst {ours:.3} us/item (target < {target} us): {}",
            if ours < target { "met" } else { "NOT met" }
        );
    }
    if worst_ratio.is_finite() {
        println!(
            "  lowest ratio to wfl: {worst_ratio:.0}x (target >= 30x): {}",
            if worst_ratio >= 30.0 { "met" } else { "NOT met" }
        );
    } else {
        println!("  ratio to wfl: not measured (wfl missing)");
    }
    let speedup = times[0] / times[1];
    println!("  2 workers vs 1: {speedup:.2}x (target >= 1.9x): {}", if speedup >= 1.9 { "met" } else { "NOT met" });
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A scratch directory under the system temp dir.
fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("autopara-bench-executor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}
