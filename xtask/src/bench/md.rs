//! `cargo xtask bench md`: the `md` op against LAMMPS and wfl + ASE.
//!
//! (a) 64 Lennard-Jones fcc systems of 108 atoms with LAMMPS's `bench/in.lj`
//!     settings in ASE units (σ = 1 Å, ε = 1 eV, mass 1 amu via a `masses`
//!     column, a = 1.6796 Å, rc = 2.5 Å, velocities at T* = 1.44, NVE,
//!     dt = 0.005 τ = 0.0509 fs, 1000 steps), against Debian's `lmp` running
//!     the same 64 systems in one process (a `clear`/`jump` loop over seeds)
//!     and wfl + ASE `LennardJones` (fewer systems and steps, scaled).
//! (b) 64 EMT Cu fcc systems of 108 atoms, 1000 steps of 1 fs, Langevin at
//!     300 K (τ = 100 fs), against wfl + ASE `EMT` (fewer, scaled).
//!
//! Our side runs the release `autopara run md` end to end (extxyz in and out,
//! frames every 100 steps); LAMMPS writes no frames. Throughput is atom-steps
//! per CPU second of the process (one worker, or one peer process) and per wall
//! second on 2 workers, with the 2-worker speed-up.

use crate::util::{self, Throughput};
use autopara_core::units::KB;
use autopara_core::{Atoms, Column, extxyz};
use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::Command;

const SYSTEMS: usize = 64;
const STEPS: u64 = 1000;
const ATOMS: usize = 108;
const INTERVAL: u64 = 100;

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    let bin = util::release_autopara(&util::root(), "")?;
    util::in_temp_dir("md", |dir| run_in(&bin, dir))
}

fn run_in(bin: &Path, dir: &Path) -> Result<(), String> {
    util::print_load();
    let python = util::venv_python();
    let wfl = python.as_ref().filter(|py| util::python_has(py, "wfl.generate.md"));
    if wfl.is_none() {
        println!("peer wfl+ASE: missing (run `cargo xtask deps --peers`); reported as absent");
    }

    println!("-- (a) Lennard-Jones, {SYSTEMS} x {ATOMS} atoms x {STEPS} steps (LAMMPS bench/in.lj settings) --");
    let lj_input = dir.join("lj.xyz");
    write_systems(&lj_input, 18, 1.6796, Some(1.0))?;
    let lj_args = json!({
        "calculator": {"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5},
        "steps": STEPS, "dt": 0.0509, "temperature": 1.44 / KB, "traj_step_interval": INTERVAL,
    });
    let ours = measure_ours(bin, dir, "lj", &lj_input, &lj_args)?;
    let lammps = measure_lammps(dir)?;
    let wfl_lj = match wfl {
        Some(py) => Some(measure_wfl(py, &lj_input, "lj", 4, 200)?),
        None => None,
    };
    report(&ours, lammps.as_ref().map(|t| ("LAMMPS (one lmp, clear/jump loop)", t)), wfl_lj.as_ref());

    println!("-- (b) EMT Cu, {SYSTEMS} x {ATOMS} atoms x {STEPS} steps of 1 fs, Langevin 300 K --");
    let emt_input = dir.join("emt.xyz");
    write_systems(&emt_input, 29, 3.61, None)?;
    let emt_args = json!({
        "calculator": {"type": "emt"}, "steps": STEPS, "dt": 1.0, "integrator": "Langevin",
        "temperature": 300.0, "temperature_tau": 100.0, "traj_step_interval": INTERVAL,
    });
    let ours = measure_ours(bin, dir, "emt", &emt_input, &emt_args)?;
    let wfl_emt = match wfl {
        Some(py) => Some(measure_wfl(py, &emt_input, "emt", 4, 100)?),
        None => None,
    };
    report(&ours, None, wfl_emt.as_ref());
    Ok(())
}

/// Our runs on 1 and 2 workers.
struct Ours {
    one: Throughput,
    two: Throughput,
}

fn report(ours: &Ours, lammps: Option<(&str, &Throughput)>, wfl: Option<&(Throughput, Throughput)>) {
    let m = |x: f64| x / 1e6;
    println!(
        "autopara, 1 worker:  {:.3} M atom-steps per CPU-s ({:.2} s CPU, {:.2} s wall)",
        m(ours.one.per_cpu()),
        ours.one.cpu,
        ours.one.wall
    );
    println!(
        "autopara, 2 workers: {:.3} M atom-steps per wall-s ({:.2} s wall, {:.2} s CPU); speed-up over 1 worker {:.2}x (target >= 1.8x)",
        m(ours.two.per_wall()),
        ours.two.wall,
        ours.two.cpu,
        ours.one.wall / ours.two.wall
    );
    if let Some((name, t)) = lammps {
        println!(
            "{name}: {:.3} M atom-steps per CPU-s ({:.2} s CPU); autopara / LAMMPS = {:.2} (target >= 1)",
            m(t.per_cpu()),
            t.cpu,
            ours.one.per_cpu() / t.per_cpu()
        );
    }
    if let Some((serial, pool)) = wfl {
        println!(
            "wfl+ASE, in-process: {:.4} M atom-steps per CPU-s ({:.0} atom-steps, scaled); autopara / wfl = {:.0}x (target >= 100x)",
            m(serial.per_cpu()),
            serial.amount,
            ours.one.per_cpu() / serial.per_cpu()
        );
        println!(
            "wfl+ASE, 2 processes: {:.4} M atom-steps per wall-s; autopara / wfl on 2 = {:.0}x",
            m(pool.per_wall()),
            ours.two.per_wall() / pool.per_wall()
        );
    }
}

/// `SYSTEMS` copies of [`fcc_system`].
pub(super) fn write_systems(path: &Path, z: u8, a: f64, mass: Option<f64>) -> Result<(), String> {
    extxyz::write_file(path, &vec![fcc_system(z, a, mass); SYSTEMS]).map_err(|e| e.to_string())
}

/// A 3x3x3 fcc cell of element `z` (lattice constant `a`, 108 atoms), with a
/// `masses` column when `mass` is given.
pub(super) fn fcc_system(z: u8, a: f64, mass: Option<f64>) -> Atoms {
    let basis = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]];
    let mut positions = Vec::with_capacity(ATOMS);
    for i in 0..3 {
        for j in 0..3 {
            for k in 0..3 {
                for b in &basis {
                    positions.push([(i as f64 + b[0]) * a, (j as f64 + b[1]) * a, (k as f64 + b[2]) * a]);
                }
            }
        }
    }
    let mut at = Atoms::new(vec![z; ATOMS], positions);
    at.cell = [[3.0 * a, 0.0, 0.0], [0.0, 3.0 * a, 0.0], [0.0, 0.0, 3.0 * a]];
    at.pbc = [true; 3];
    if let Some(m) = mass {
        at.arrays.insert("masses".into(), Column::scalars(vec![m; ATOMS]));
    }
    at
}

fn measure_ours(bin: &Path, dir: &Path, name: &str, input: &Path, args: &Json) -> Result<Ours, String> {
    let args_file = dir.join(format!("{name}.json"));
    std::fs::write(&args_file, args.to_string()).map_err(|e| format!("{}: {e}", args_file.display()))?;
    let atom_steps = (SYSTEMS * ATOMS) as f64 * STEPS as f64;
    let mut timings = Vec::new();
    for workers in [1, 2] {
        let out = dir.join(format!("{name}-out-{workers}.xyz"));
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .arg("md")
            .arg("-i")
            .arg(input)
            .arg("-o")
            .arg(&out)
            .arg("--args")
            .arg(format!("@{}", args_file.display()))
            .args(["--workers", &workers.to_string(), "--seed", "1", "--overwrite", "--quiet"]);
        let (cpu, wall) = util::timed(&mut cmd)?;
        let frames = extxyz::read_file(&out).map_err(|e| e.to_string())?;
        let expected = SYSTEMS * (1 + (STEPS / INTERVAL) as usize);
        if frames.len() != expected {
            return Err(format!("{name}: expected {expected} frames on {workers} workers, got {}", frames.len()));
        }
        timings.push(Throughput { amount: atom_steps, cpu, wall });
    }
    let two = timings.pop().ok_or("missing timing")?;
    let one = timings.pop().ok_or("missing timing")?;
    Ok(Ours { one, two })
}

/// LAMMPS `bench/in.lj` over 64 seeds in one `lmp` process, or `None` (reported) without `lmp`.
fn measure_lammps(dir: &Path) -> Result<Option<Throughput>, String> {
    if Command::new("lmp").arg("-h").output().is_err() {
        println!("peer LAMMPS: `lmp` missing (run `cargo xtask deps --peers`); reported as absent");
        return Ok(None);
    }
    let input = dir.join("in.lj-loop");
    let script = format!(
        "variable i loop {SYSTEMS}\nlabel loop\nclear\nunits lj\natom_style atomic\nlattice fcc 0.8442\n\
         region box block 0 3 0 3 0 3\ncreate_box 1 box\ncreate_atoms 1 box\nmass 1 1.0\n\
         variable seed equal 87287+${{i}}\nvelocity all create 1.44 ${{seed}} loop geom\n\
         pair_style lj/cut 2.5\npair_coeff 1 1 1.0 1.0 2.5\nneighbor 0.3 bin\n\
         neigh_modify delay 0 every 20 check no\nfix 1 all nve\nthermo {STEPS}\nrun {STEPS}\nnext i\njump SELF loop\n"
    );
    std::fs::write(&input, script).map_err(|e| format!("{}: {e}", input.display()))?;
    let mut cmd = Command::new("lmp");
    cmd.arg("-in").arg(&input).args(["-log", "none", "-screen", "none"]).current_dir(dir);
    let (cpu, wall) = util::timed(&mut cmd)?;
    Ok(Some(Throughput { amount: (SYSTEMS * ATOMS) as f64 * STEPS as f64, cpu, wall }))
}

/// wfl's `md` with ASE's calculator on `n` of the systems for `steps` steps, in
/// process (CPU time) and on 2 pool processes (wall time).
fn measure_wfl(py: &Path, input: &Path, calc: &str, n: usize, steps: u64) -> Result<(Throughput, Throughput), String> {
    let mut out = Vec::new();
    for procs in [0, 2] {
        let request =
            json!({"input": input, "calc": calc, "n": n, "steps": steps, "interval": INTERVAL, "procs": procs});
        let text = util::output(Command::new(py).arg("-c").arg(WFL_SCRIPT).arg(request.to_string()))?;
        let v: Json = serde_json::from_str(text.trim()).map_err(|e| format!("wfl output {text:?}: {e}"))?;
        let num = |k: &str| v[k].as_f64().ok_or_else(|| format!("wfl output lacks {k}: {v}"));
        out.push(Throughput { amount: (n * ATOMS) as f64 * steps as f64, cpu: num("cpu")?, wall: num("wall")? });
    }
    let pool = out.pop().ok_or("missing wfl timing")?;
    let serial = out.pop().ok_or("missing wfl timing")?;
    Ok((serial, pool))
}

const WFL_SCRIPT: &str = r#"
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
from ase.io import read
from ase.units import kB
from ase.calculators.lj import LennardJones
from ase.calculators.emt import EMT
from wfl.configset import ConfigSet, OutputSpec
from wfl.generate.md import md
from wfl.autoparallelize import AutoparaInfo
d = json.loads(sys.argv[1])
ats = read(d["input"], index=":%d" % d["n"])
if d["calc"] == "lj":
    kw = dict(calculator=(LennardJones, [], dict(sigma=1.0, epsilon=1.0, rc=2.5)), dt=0.0509, temperature=1.44 / kB)
else:
    kw = dict(calculator=(EMT, [], {}), dt=1.0, integrator="Langevin", temperature=300.0, temperature_tau=100.0)
info = AutoparaInfo(num_python_subprocesses=d["procs"], num_inputs_per_python_subprocess=1)
t0, c0 = time.perf_counter(), time.process_time()
res = md(ConfigSet(ats), OutputSpec(), steps=d["steps"], traj_step_interval=d["interval"],
         rng=np.random.default_rng(1), autopara_info=info, **kw)
n = sum(1 for _ in res)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
assert n == d["n"] * (1 + d["steps"] // d["interval"]), n
print(json.dumps({"wall": wall, "cpu": cpu}))
"#;
