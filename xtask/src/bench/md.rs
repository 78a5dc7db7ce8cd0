//! `cargo xtask bench md`: the `md` op against LAMMPS, ASAP3 and wfl + ASE.
//!
//! (a) 64 Lennard-Jones fcc systems of 108 atoms with LAMMPS's `bench/in.lj`
//!     settings in ASE units (σ = 1 Å, ε = 1 eV, mass 1 amu via a `masses`
//!     column, a = 1.6796 Å, rc = 2.5 Å, velocities at T* = 1.44, NVE,
//!     dt = 0.005 τ = 0.0509 fs, 1000 steps), against Debian's `lmp` running
//!     the same 64 systems in one process (a `clear`/`jump` loop over seeds)
//!     and wfl + ASE `LennardJones` (fewer systems and steps, scaled).
//! (b) LAMMPS's own `bench/in.lj` system: one fcc box of 20 x 20 x 20 unit
//!     cells (32,000 atoms) and of 40 x 40 x 40 (256,000), 100 steps NVE,
//!     against `lmp` running `bench/in.lj` itself (its neighbour settings:
//!     skin 0.3 σ, binned, rebuilt every 20 steps without checking).
//! (c) 64 EMT Cu fcc systems of 108 atoms, 1000 steps of 1 fs, Langevin at
//!     300 K (τ = 100 fs) and NVE (velocity Verlet, started at 300 K), against
//!     ASAP3's `EMT` with its own C++ `Langevin` and `VelocityVerlet` (16 of
//!     the systems, timed in process around the dynamics) and wfl + ASE `EMT`
//!     (fewer, scaled).
//!
//! Our side runs the release `autopara run md` end to end (extxyz in and out,
//! frames every 100 steps); LAMMPS and ASAP3 write no frames. Throughput is
//! atom-steps per CPU second of the process (one worker, or one peer process)
//! and per wall second on 2 workers, with the 2-worker speed-up.

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
/// Systems ASAP3 runs (of the 64; its throughput is per CPU second).
const ASAP_SYSTEMS: usize = 16;
/// Steps of LAMMPS's `bench/in.lj`.
const LARGE_STEPS: u64 = 100;

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
    let ours = measure_ours(bin, dir, "lj", &lj_input, &lj_args, &[1, 2])?;
    let lammps = measure_lammps(dir)?;
    let wfl_lj = match wfl {
        Some(py) => Some(measure_wfl(py, &lj_input, "lj", 4, 200)?),
        None => None,
    };
    report(&ours, lammps.as_ref().map(|t| ("LAMMPS (one lmp, clear/jump loop)", t)), wfl_lj.as_ref(), 1.5);

    for cells in [20, 40] {
        let atoms = 4 * cells * cells * cells;
        println!(
            "-- (b) Lennard-Jones, LAMMPS bench/in.lj: {atoms} atoms ({cells}^3 fcc cells) x {LARGE_STEPS} steps --"
        );
        let input = dir.join(format!("lj-{cells}.xyz"));
        let system = fcc_system(18, 1.6796, Some(1.0), cells);
        extxyz::write_file(&input, &[system]).map_err(|e| e.to_string())?;
        let args = json!({
            "calculator": {"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5},
            "steps": LARGE_STEPS, "dt": 0.0509, "temperature": 1.44 / KB, "traj_step_interval": LARGE_STEPS,
        });
        let shape = Shape { systems: 1, atoms, steps: LARGE_STEPS, interval: LARGE_STEPS };
        let ours = run_ours(bin, dir, &format!("lj-{cells}"), &input, &args, 1, &shape)?;
        println!(
            "autopara, 1 worker:  {:.3} M atom-steps per CPU-s ({:.2} s CPU, {:.2} s wall)",
            ours.per_cpu() / 1e6,
            ours.cpu,
            ours.wall
        );
        if let Some(t) = measure_lammps_in_lj(dir, cells)? {
            println!(
                "LAMMPS bench/in.lj: {:.3} M atom-steps per CPU-s ({:.2} s CPU); autopara / LAMMPS = {:.2} (target >= 1)",
                t.per_cpu() / 1e6,
                t.cpu,
                ours.per_cpu() / t.per_cpu()
            );
        }
    }

    let asap = python.as_ref().filter(|py| util::python_has(py, "asap3"));
    if asap.is_none() {
        println!("peer ASAP3: missing (run `cargo xtask deps --peers`); reported as absent");
    }
    let emt_input = dir.join("emt.xyz");
    write_systems(&emt_input, 29, 3.61, None)?;
    for (integrator, title) in [("Langevin", "Langevin 300 K"), ("NVE", "NVE (velocity Verlet) from 300 K")] {
        println!("-- (c) EMT Cu, {SYSTEMS} x {ATOMS} atoms x {STEPS} steps of 1 fs, {title} --");
        let mut emt_args = json!({
            "calculator": {"type": "emt"}, "steps": STEPS, "dt": 1.0,
            "temperature": 300.0, "traj_step_interval": INTERVAL,
        });
        if integrator == "Langevin" {
            emt_args["integrator"] = json!("Langevin");
            emt_args["temperature_tau"] = json!(100.0);
        }
        let workers: &[usize] = if integrator == "Langevin" { &[1, 2] } else { &[1] };
        let name = format!("emt-{integrator}");
        let ours = measure_ours(bin, dir, &name, &emt_input, &emt_args, workers)?;
        let wfl_emt = match wfl {
            Some(py) if integrator == "Langevin" => Some(measure_wfl(py, &emt_input, "emt", 4, 100)?),
            _ => None,
        };
        let asap = match asap {
            Some(py) => Some(measure_asap(py, &emt_input, integrator)?),
            None => None,
        };
        report(&ours, asap.as_ref().map(|t| ("ASAP3 (EMT, its C++ integrator)", t)), wfl_emt.as_ref(), 3.0);
    }
    util::print_load_after();
    Ok(())
}

/// Our runs on 1 worker and, if measured, 2.
struct Ours {
    one: Throughput,
    two: Option<Throughput>,
}

/// Prints our throughput, the 2-worker speed-up, and the ratios to a compiled
/// peer (`target`: the ratio aimed for) and to wfl + ASE.
fn report(ours: &Ours, peer: Option<(&str, &Throughput)>, wfl: Option<&(Throughput, Throughput)>, target: f64) {
    let m = |x: f64| x / 1e6;
    println!(
        "autopara, 1 worker:  {:.3} M atom-steps per CPU-s ({:.2} s CPU, {:.2} s wall)",
        m(ours.one.per_cpu()),
        ours.one.cpu,
        ours.one.wall
    );
    if let Some(two) = &ours.two {
        println!(
            "autopara, 2 workers: {:.3} M atom-steps per wall-s ({:.2} s wall, {:.2} s CPU); speed-up over 1 worker {:.2}x (target >= 1.8x)",
            m(two.per_wall()),
            two.wall,
            two.cpu,
            ours.one.wall / two.wall
        );
    }
    if let Some((name, t)) = peer {
        println!(
            "{name}: {:.3} M atom-steps per CPU-s ({:.2} s CPU); autopara / peer = {:.2} (target >= {target})",
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
        if let Some(two) = &ours.two {
            println!(
                "wfl+ASE, 2 processes: {:.4} M atom-steps per wall-s; autopara / wfl on 2 = {:.0}x",
                m(pool.per_wall()),
                two.per_wall() / pool.per_wall()
            );
        }
    }
}

/// `SYSTEMS` copies of [`fcc_system`] with 3 x 3 x 3 cells (108 atoms).
pub(super) fn write_systems(path: &Path, z: u8, a: f64, mass: Option<f64>) -> Result<(), String> {
    extxyz::write_file(path, &vec![fcc_system(z, a, mass, 3); SYSTEMS]).map_err(|e| e.to_string())
}

/// A box of `cells` x `cells` x `cells` fcc unit cells of element `z`
/// (lattice constant `a`, `4 cells³` atoms), with a `masses` column when
/// `mass` is given.
pub(super) fn fcc_system(z: u8, a: f64, mass: Option<f64>, cells: usize) -> Atoms {
    let basis = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]];
    let n = 4 * cells * cells * cells;
    let mut positions = Vec::with_capacity(n);
    for i in 0..cells {
        for j in 0..cells {
            for k in 0..cells {
                for b in &basis {
                    positions.push([(i as f64 + b[0]) * a, (j as f64 + b[1]) * a, (k as f64 + b[2]) * a]);
                }
            }
        }
    }
    let mut at = Atoms::new(vec![z; n], positions);
    let l = cells as f64 * a;
    at.cell = [[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]];
    at.pbc = [true; 3];
    if let Some(m) = mass {
        at.arrays.insert("masses".into(), Column::scalars(vec![m; n]));
    }
    at
}

/// The size of one benchmark run: its systems, atoms each, steps and frame interval.
struct Shape {
    systems: usize,
    atoms: usize,
    steps: u64,
    interval: u64,
}

/// Our runs of the 64 108-atom systems on each of `workers` (1, then maybe 2).
fn measure_ours(
    bin: &Path,
    dir: &Path,
    name: &str,
    input: &Path,
    args: &Json,
    workers: &[usize],
) -> Result<Ours, String> {
    let shape = Shape { systems: SYSTEMS, atoms: ATOMS, steps: STEPS, interval: INTERVAL };
    let mut timings = Vec::new();
    for &w in workers {
        timings.push(run_ours(bin, dir, name, input, args, w, &shape)?);
    }
    let mut timings = timings.into_iter();
    let one = timings.next().ok_or("missing timing")?;
    Ok(Ours { one, two: timings.next() })
}

/// One release `autopara run md` on `workers` workers, checking the frames it wrote.
fn run_ours(
    bin: &Path,
    dir: &Path,
    name: &str,
    input: &Path,
    args: &Json,
    workers: usize,
    shape: &Shape,
) -> Result<Throughput, String> {
    let args_file = dir.join(format!("{name}.json"));
    std::fs::write(&args_file, args.to_string()).map_err(|e| format!("{}: {e}", args_file.display()))?;
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
    let expected = shape.systems * (1 + (shape.steps / shape.interval) as usize);
    if frames.len() != expected {
        return Err(format!("{name}: expected {expected} frames on {workers} workers, got {}", frames.len()));
    }
    Ok(Throughput { amount: (shape.systems * shape.atoms) as f64 * shape.steps as f64, cpu, wall })
}

/// Whether Debian's `lmp` runs; says so when it does not.
pub(super) fn have_lammps() -> bool {
    let present = Command::new("lmp").arg("-h").output().is_ok();
    if !present {
        println!("peer LAMMPS: `lmp` missing (run `cargo xtask deps --peers`); reported as absent");
    }
    present
}

/// LAMMPS's `bench/in.lj` up to its integrator, on `cells`³ fcc unit cells,
/// velocities drawn with `seed` (a number or a LAMMPS variable).
fn in_lj(cells: usize, seed: &str) -> String {
    format!(
        "units lj\natom_style atomic\nlattice fcc 0.8442\nregion box block 0 {cells} 0 {cells} 0 {cells}\n\
         create_box 1 box\ncreate_atoms 1 box\nmass 1 1.0\nvelocity all create 1.44 {seed} loop geom\n\
         pair_style lj/cut 2.5\npair_coeff 1 1 1.0 1.0 2.5\nneighbor 0.3 bin\n\
         neigh_modify delay 0 every 20 check no\nfix 1 all nve\n"
    )
}

/// Runs `lmp` on `script` (written to `dir/name`) with no log or screen
/// output: (CPU seconds, wall seconds).
fn run_lmp(dir: &Path, name: &str, script: &str) -> Result<(f64, f64), String> {
    let input = dir.join(name);
    std::fs::write(&input, script).map_err(|e| format!("{}: {e}", input.display()))?;
    let mut cmd = Command::new("lmp");
    cmd.arg("-in").arg(&input).args(["-log", "none", "-screen", "none"]).current_dir(dir);
    util::timed(&mut cmd)
}

/// LAMMPS's `bench/in.lj` on `cells`³ fcc unit cells, or `None` (reported) without `lmp`.
fn measure_lammps_in_lj(dir: &Path, cells: usize) -> Result<Option<Throughput>, String> {
    if !have_lammps() {
        return Ok(None);
    }
    let script = format!("{}run {LARGE_STEPS}\n", in_lj(cells, "87287"));
    let (cpu, wall) = run_lmp(dir, &format!("in.lj-{cells}"), &script)?;
    Ok(Some(Throughput { amount: (4 * cells * cells * cells) as f64 * LARGE_STEPS as f64, cpu, wall }))
}

/// LAMMPS `bench/in.lj` over 64 seeds in one `lmp` process, or `None` (reported) without `lmp`.
fn measure_lammps(dir: &Path) -> Result<Option<Throughput>, String> {
    if !have_lammps() {
        return Ok(None);
    }
    let script = format!(
        "variable i loop {SYSTEMS}\nlabel loop\nclear\nvariable seed equal 87287+${{i}}\n{}\
         thermo {STEPS}\nrun {STEPS}\nnext i\njump SELF loop\n",
        in_lj(3, "${seed}")
    );
    let (cpu, wall) = run_lmp(dir, "in.lj-loop", &script)?;
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

/// ASAP3's `EMT` on [`ASAP_SYSTEMS`] of the systems with its C++ `Langevin`
/// or `VelocityVerlet` (`integrator` "Langevin" or "NVE"), CPU time of the
/// dynamics in process.
fn measure_asap(py: &Path, input: &Path, integrator: &str) -> Result<Throughput, String> {
    let request = json!({"input": input, "n": ASAP_SYSTEMS, "steps": STEPS, "integrator": integrator});
    let text = util::output(Command::new(py).arg("-c").arg(ASAP_SCRIPT).arg(request.to_string()))?;
    let v: Json = serde_json::from_str(text.trim()).map_err(|e| format!("ASAP3 output {text:?}: {e}"))?;
    let num = |k: &str| v[k].as_f64().ok_or_else(|| format!("ASAP3 output lacks {k}: {v}"));
    Ok(Throughput { amount: (ASAP_SYSTEMS * ATOMS) as f64 * STEPS as f64, cpu: num("cpu")?, wall: num("wall")? })
}

const ASAP_SCRIPT: &str = r#"
import json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
from ase import units
from ase.io import read
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from asap3 import EMT
from asap3.md.langevin import Langevin
from asap3.md.verlet import VelocityVerlet
d = json.loads(sys.argv[1])
ats = read(d["input"], index=":%d" % d["n"])
rng = np.random.default_rng(1)
t0, c0 = time.perf_counter(), time.process_time()
for at in ats:
    at.calc = EMT()
    MaxwellBoltzmannDistribution(at, temperature_K=300, rng=rng)
    if d["integrator"] == "Langevin":
        dyn = Langevin(at, 1 * units.fs, temperature_K=300, friction=1 / (100 * units.fs), seed=1)
    else:
        dyn = VelocityVerlet(at, 1 * units.fs)
    dyn.run(d["steps"])
    assert np.isfinite(at.get_potential_energy())
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"wall": wall, "cpu": cpu}))
"#;

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
