//! `cargo xtask bench executor`: per-item overhead of the executor, side by
//! side with wfl's autoparallelize (`wfl.map.map`) on the same trivial op
//! (copy a configuration and set an info key), in memory and file to file,
//! for 1 and 2 workers and chunk sizes 1, 10 and 100; then the speed-up of 2
//! workers over 1 on a compute-bound op.
//!
//! Both sides are timed the same way, best of three: from the call until
//! every output is written (in memory: held in a list), without building the
//! inputs, and with the previous run's outputs released before the clock
//! starts. In memory, both run over the same 100,000 configurations (wfl's
//! process pools over 10,000, to keep the benchmark short). Per-item figures
//! are wall time; CPU time (of every thread and, for wfl's pool, child
//! process) is printed beside it, since it is robust to other load on the
//! machine.
//!
//! Always measured in release mode: a dev-profile xtask re-runs itself with
//! `--release`.

use crate::util::{self, Timing, best_of};
use autopara_core::{
    Atoms, AutoparaInfo, ConfigSet, InputKind, Item, ItemResult, OpInfo, Operation, OutputSpec, Value, WorkerContext,
    extxyz, runner,
};
use rand::Rng;
use std::collections::BTreeMap;
use std::path::Path;

/// Items of the in-memory and file runs of autopara.
const N: usize = 100_000;
/// Items of wfl's in-memory runs with a process pool (per-item figures; a
/// pool costs wfl 80-230 us per item, so fewer items keep the benchmark short;
/// in-process runs use the same `N` items as autopara).
const N_WFL_POOL: usize = 10_000;
/// Items of wfl's file runs.
const N_WFL_FILE: usize = 2_000;
/// Items and random draws per item of the compute-bound op.
const N_COMPUTE: usize = 2_000;
const DRAWS: u32 = 200_000;
/// Runs per autopara setting; the fastest counts.
const REPEATS: usize = 3;
/// The least ratio of wfl's per-item time to ours, in every setting.
const TARGET_RATIO: f64 = 30.0;

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

const WFL_SCRIPT: &str = r#"
import json, sys, time, os, resource
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

def cpu():
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime

def timed(n, f):
    """Best (by wall time) of p["repeats"] runs of f: per-item [wall, cpu] microseconds."""
    best, out = None, None
    for _ in range(p["repeats"]):
        out = None  # the previous run's outputs are released before the clock starts
        t, c = time.perf_counter(), cpu()
        out = f()
        run = [(time.perf_counter() - t) / n * 1e6, (cpu() - c) / n * 1e6]
        best = run if best is None or run[0] < best[0] else best
    return best, out

if __name__ == "__main__":
    p = json.load(sys.stdin)
    os.environ.pop("WFL_NUM_PYTHON_SUBPROCESSES", None)
    res = {"memory": {}, "file": {}}
    everything = [config(i) for i in range(p["n_memory"])]
    for nproc, chunk in [(0, 1), (0, 10), (0, 100), (1, 1), (2, 1), (2, 10), (2, 100)]:
        mem = everything if nproc == 0 else everything[: p["n_pool"]]
        ai = AutoparaInfo(num_python_subprocesses=nproc, num_inputs_per_python_subprocess=chunk)
        once = lambda: list(wfl.map.map(ConfigSet(mem), OutputSpec(), touch, autopara_info=ai))
        res["memory"][f"{nproc},{chunk}"], out = timed(len(mem), once)
        assert len(out) == len(mem) and out[-1].info["seen"]
        del out
    src = os.path.join(p["dir"], "wfl_in.xyz")
    write(src, [config(i) for i in range(p["n_file"])])
    for nproc in (0, 2):
        for chunk in (1, 10, 100):
            dst = os.path.join(p["dir"], f"wfl_out_{nproc}_{chunk}.xyz")
            ai = AutoparaInfo(num_python_subprocesses=nproc, num_inputs_per_python_subprocess=chunk)
            once = lambda: wfl.map.map(ConfigSet(src), OutputSpec(dst, overwrite=True), touch, autopara_info=ai)
            res["file"][f"{nproc},{chunk}"], _ = timed(p["n_file"], once)
    print(json.dumps(res))
"#;

/// wfl's per-item `[wall, cpu]` microseconds by kind (`memory`, `file`) and `"nproc,chunk"`.
#[derive(serde::Deserialize)]
struct WflTimes {
    memory: BTreeMap<String, [f64; 2]>,
    file: BTreeMap<String, [f64; 2]>,
}

/// wfl's per-item times, or why they are missing.
fn wfl_times(dir: &Path) -> Result<WflTimes, String> {
    let python = util::venv_python().ok_or("no .venv (run `cargo xtask deps --peers`)")?;
    let script = dir.join("wfl_bench.py");
    std::fs::write(&script, WFL_SCRIPT).map_err(|e| e.to_string())?;
    let input = serde_json::json!({ "n_memory": N, "n_pool": N_WFL_POOL, "n_file": N_WFL_FILE, "dir": dir, "repeats": REPEATS });
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

/// Per-item wall and CPU microseconds of a timing over `n` items.
fn per_item(t: Timing, n: usize) -> Timing {
    Timing { wall: t.wall / n as f64 * 1e6, cpu: t.cpu / n as f64 * 1e6 }
}

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    if super::rerun_in_release("executor")? {
        return Ok(());
    }
    util::print_load();
    util::in_temp_dir("executor", run_in)
}

fn run_in(dir: &Path) -> Result<(), String> {
    let memory = ConfigSet::from_atoms((0..N).map(config).collect());
    let input = dir.join("in.xyz");
    extxyz::write_file(&input, &(0..N).map(config).collect::<Vec<_>>()).map_err(|e| e.to_string())?;
    let files = ConfigSet::from_paths(&[input.to_string_lossy()]).map_err(|e| e.to_string())?;

    println!(
        "measuring wfl 0.3.5 (wfl.map.map over {N} configs in memory, {N_WFL_POOL} with a process pool, \
         {N_WFL_FILE} from a file)..."
    );
    let wfl = wfl_times(dir);
    if let Err(why) = &wfl {
        println!("wfl: not measured: {why}");
    }
    let wfl_us = |kind: &str, workers: usize, chunk: usize| -> Option<Timing> {
        let nproc = if workers == 1 { 0 } else { workers };
        let w = wfl.as_ref().ok()?;
        let table = if kind == "memory" { &w.memory } else { &w.file };
        let [wall, cpu] = *table.get(&format!("{nproc},{chunk}"))?;
        Some(Timing { wall, cpu })
    };

    println!(
        "\ntrivial op (copy + set info key) over {N} two-atom configs (wfl: {N_WFL_POOL} with a pool, {N_WFL_FILE} \
         from a file);\nper-item us, wall (best of {REPEATS}) and CPU of all threads and processes\n\
         wfl: in-process for 1 worker, multiprocessing.Pool(2) for 2\n"
    );
    println!(
        "{:<8} {:>7} {:>6} {:>10} {:>9} {:>10} {:>9} {:>7}  target >= {TARGET_RATIO:.0}x",
        "setting", "workers", "chunk", "autopara", "(cpu)", "wfl", "(cpu)", "ratio"
    );
    let mut worst_ratio = f64::INFINITY;
    let mut worst = BTreeMap::new();
    for (kind, target) in [("memory", 2.0), ("file", 10.0)] {
        for workers in [1, 2] {
            for chunk in [1, 10, 100] {
                let (t, summary) = best_of(REPEATS, || {
                    let (inputs, outputs) = match kind {
                        "memory" => (&memory, OutputSpec::memory()),
                        _ => (&files, OutputSpec::file(dir.join("out.xyz")).overwrite(true)),
                    };
                    runner::run(&Touch, inputs, &outputs, &info(workers, chunk)).map_err(|e| e.to_string())
                })?;
                if summary.action != runner::Action::Computed || summary.stats.frames != N as u64 {
                    return Err(format!(
                        "expected {N} outputs computed, got {:?}: {:?}",
                        summary.action, summary.stats
                    ));
                }
                drop(summary);
                let ours = per_item(t, N);
                let entry = worst.entry(kind).or_insert((0.0f64, target));
                entry.0 = entry.0.max(ours.wall);
                let (peer, peer_cpu, ratio, verdict) = match wfl_us(kind, workers, chunk) {
                    Some(w) => {
                        let ratio = w.wall / ours.wall;
                        worst_ratio = worst_ratio.min(ratio);
                        let verdict = if ratio >= TARGET_RATIO { "met" } else { "NOT met" };
                        (format!("{:.1}", w.wall), format!("({:.1})", w.cpu), format!("{ratio:.0}x"), verdict)
                    }
                    None => ("-".into(), String::new(), "-".into(), "-"),
                };
                println!(
                    "{kind:<8} {workers:>7} {chunk:>6} {:>10.3} {:>9} {peer:>10} {peer_cpu:>9} {ratio:>7}  {verdict}",
                    ours.wall,
                    format!("({:.3})", ours.cpu)
                );
            }
        }
    }
    if let Some(p1) = wfl.as_ref().ok().and_then(|w| w.memory.get("1,1")) {
        println!("(wfl Pool(1), chunk 1, in memory: {:.1} us/item)", p1[0]);
    }

    let compute = ConfigSet::from_atoms((0..N_COMPUTE).map(config).collect());
    let mut times = Vec::new();
    for workers in [1, 2] {
        let (t, _) = best_of(REPEATS, || {
            runner::run(&Spin, &compute, &OutputSpec::memory(), &info(workers, 10)).map_err(|e| e.to_string())
        })?;
        times.push(t.wall);
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
            "  lowest ratio to wfl: {worst_ratio:.0}x (target >= {TARGET_RATIO:.0}x in every setting): {}",
            if worst_ratio >= TARGET_RATIO { "met" } else { "NOT met" }
        );
    } else {
        println!("  ratio to wfl: not measured (wfl missing)");
    }
    let speedup = times[0] / times[1];
    println!("  2 workers vs 1: {speedup:.2}x (target >= 1.9x): {}", if speedup >= 1.9 { "met" } else { "NOT met" });
    Ok(())
}
