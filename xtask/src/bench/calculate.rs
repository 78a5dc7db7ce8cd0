//! `cargo xtask bench calculate`: the `calculate` op against wfl's generic
//! calculate with ASE's calculators, in the same run.
//!
//! (a) EMT energy, forces and stress on 1,000 rattled 108-atom Cu cells
//!     (a = 3.61 Å, each coordinate moved uniformly within ±0.1 Å);
//! (b) Lennard-Jones (σ = ε = 1, rc = 2.5) on 1,000 rattled 108-atom fcc
//!     cells at the LAMMPS `bench/in.lj` density (a = 1.6796 Å, ±0.05 Å).
//!
//! Our side runs the release `autopara run calculate` end to end (extxyz in
//! and out, 1 and 2 worker threads; the fastest of five runs each). wfl + ASE runs `generic.calculate` on an
//! in-memory subset (200 configs), in process and on a Pool of 2. Throughput
//! is configs per CPU second of the process on one worker (the 100x target is
//! per core) and per wall second on two.

use crate::util::{self, Throughput};
use autopara_core::{Atoms, extxyz};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::Command;

const CONFIGS: usize = 1000;
const WFL_CONFIGS: usize = 200;
/// Runs of ours per worker count, of which the fastest (by wall time) counts.
const RUNS: usize = 5;

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    let bin = util::release_autopara(&util::root(), "")?;
    util::in_temp_dir("calculate", |dir| run_in(&bin, dir))
}

fn run_in(bin: &Path, dir: &Path) -> Result<(), String> {
    util::print_load();
    println!("wall-clock figures need an idle machine, CPU-second figures less so");
    let python = util::venv_python();
    let wfl = python.as_ref().filter(|py| util::python_has(py, "wfl.calculators.generic"));
    if wfl.is_none() {
        println!("peer wfl+ASE: missing (run `cargo xtask deps --peers`); reported as absent");
    }
    let cases = [
        ("EMT Cu", "emt", 29u8, 3.61, 0.1, json!({"type": "emt"})),
        (
            "Lennard-Jones",
            "lj",
            18u8,
            1.6796,
            0.05,
            json!({"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5}),
        ),
    ];
    for (title, name, z, a, rattle, calculator) in cases {
        println!("-- {title}: energy, forces, stress of {CONFIGS} rattled 108-atom cells --");
        let input = dir.join(format!("{name}.xyz"));
        write_configs(&input, z, a, rattle)?;
        let args = json!({"calculator": calculator, "properties": ["energy", "forces", "stress"]});
        let [one, two] = measure_ours(bin, dir, name, &input, &args)?;
        println!(
            "autopara, 1 worker:  {:.0} configs per CPU-s ({:.2} s CPU, {:.2} s wall)",
            one.per_cpu(),
            one.cpu,
            one.wall
        );
        println!(
            "autopara, 2 workers: {:.0} configs per wall-s ({:.2} s wall); speed-up over 1 worker {:.2}x",
            two.per_wall(),
            two.wall,
            one.wall / two.wall
        );
        if let Some(py) = wfl {
            let [serial, pool] = measure_wfl(py, &input, name)?;
            println!(
                "wfl+ASE generic.calculate, in process: {:.1} configs per CPU-s; autopara / wfl = {:.0}x (target >= 100x)",
                serial.per_cpu(),
                one.per_cpu() / serial.per_cpu()
            );
            println!(
                "wfl+ASE generic.calculate, Pool of 2: {:.1} configs per wall-s; autopara / wfl on 2 = {:.0}x",
                pool.per_wall(),
                two.per_wall() / pool.per_wall()
            );
        }
    }
    Ok(())
}

/// `CONFIGS` 3x3x3 fcc cells of element `z`, every coordinate moved uniformly
/// within ±`rattle` (a fixed seed).
fn write_configs(path: &Path, z: u8, a: f64, rattle: f64) -> Result<(), String> {
    let basis = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut configs = Vec::with_capacity(CONFIGS);
    for _ in 0..CONFIGS {
        let mut positions = Vec::with_capacity(108);
        for i in 0..3 {
            for j in 0..3 {
                for k in 0..3 {
                    for b in &basis {
                        let p = [(i as f64 + b[0]) * a, (j as f64 + b[1]) * a, (k as f64 + b[2]) * a];
                        positions.push(p.map(|x| x + rng.random_range(-rattle..rattle)));
                    }
                }
            }
        }
        let mut at = Atoms::new(vec![z; 108], positions);
        at.cell = [[3.0 * a, 0.0, 0.0], [0.0, 3.0 * a, 0.0], [0.0, 0.0, 3.0 * a]];
        at.pbc = [true; 3];
        configs.push(at);
    }
    extxyz::write_file(path, &configs).map_err(|e| e.to_string())
}

fn measure_ours(bin: &Path, dir: &Path, name: &str, input: &Path, args: &Json) -> Result<[Throughput; 2], String> {
    let mut rates = Vec::new();
    for workers in [1, 2] {
        let out = dir.join(format!("{name}-out-{workers}.xyz"));
        let mut cmd = Command::new(bin);
        cmd.args(["run", "calculate", "-i"]).arg(input).arg("-o").arg(&out).arg("--args").arg(args.to_string()).args([
            "--workers",
            &workers.to_string(),
            "--quiet",
        ]);
        // A run takes a tenth of a second: the best of several, as the
        // other side's scheduling noise is a large part of one. Each writes
        // a new output, as a first run does.
        let (mut cpu, mut wall) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..RUNS {
            util::remove_output(&out)?;
            let (c, w) = util::timed(&mut cmd)?;
            if w < wall {
                (cpu, wall) = (c, w);
            }
        }
        let frames = extxyz::read_file(&out).map_err(|e| e.to_string())?;
        let with_results = frames.iter().filter(|f| f.info.keys().any(|k| k.ends_with("_stress"))).count();
        if with_results != CONFIGS {
            return Err(format!("{name}: {with_results} of {CONFIGS} outputs have results on {workers} workers"));
        }
        rates.push(Throughput { amount: CONFIGS as f64, cpu, wall });
    }
    let two = rates.pop().ok_or("missing timing")?;
    let one = rates.pop().ok_or("missing timing")?;
    Ok([one, two])
}

/// wfl's generic calculate on the first `WFL_CONFIGS` configs, in process and on 2 processes.
fn measure_wfl(py: &Path, input: &Path, calc: &str) -> Result<[Throughput; 2], String> {
    let mut rates = Vec::new();
    for procs in [0, 2] {
        let request = json!({"input": input, "calc": calc, "n": WFL_CONFIGS, "procs": procs});
        let text = util::output(Command::new(py).arg("-c").arg(WFL_SCRIPT).arg(request.to_string()))?;
        let v: Json = serde_json::from_str(text.trim()).map_err(|e| format!("wfl output {text:?}: {e}"))?;
        let num = |k: &str| v[k].as_f64().ok_or_else(|| format!("wfl output lacks {k}: {v}"));
        rates.push(Throughput { amount: WFL_CONFIGS as f64, cpu: num("cpu")?, wall: num("wall")? });
    }
    let pool = rates.pop().ok_or("missing wfl timing")?;
    let serial = rates.pop().ok_or("missing wfl timing")?;
    Ok([serial, pool])
}

/// CPU time is the parent's own (in process); with a Pool the parent mostly
/// waits, so only the wall time is reported for it.
const WFL_SCRIPT: &str = r#"
import json, sys, time, warnings
warnings.simplefilter("ignore")
from ase.io import read
from ase.calculators.lj import LennardJones
from ase.calculators.emt import EMT
from wfl.configset import ConfigSet, OutputSpec
from wfl.calculators.generic import calculate
from wfl.autoparallelize import AutoparaInfo
d = json.loads(sys.argv[1])
ats = read(d["input"], index=":%d" % d["n"])
if d["calc"] == "lj":
    calc = (LennardJones, [], dict(sigma=1.0, epsilon=1.0, rc=2.5))
else:
    calc = (EMT, [], {})
info = AutoparaInfo(num_python_subprocesses=d["procs"])
t0, c0 = time.perf_counter(), time.process_time()
res = calculate(ConfigSet(ats), OutputSpec(), calculator=calc, properties=["energy", "forces", "stress"],
                autopara_info=info)
n = sum(1 for at in res if "stress" in "".join(at.info.keys()))
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
assert n == d["n"], n
print(json.dumps({"wall": wall, "cpu": cpu}))
"#;
