//! The md op against ASE 3.28 (and wfl 0.3.5's helpers), computed at test time
//! in the reference Python: deterministic integrators must reproduce ASE's
//! trajectories from the same positions and momenta, thermostats must reach
//! and hold their target temperature, the barostat must scale the cell
//! isotropically towards the target pressure, and NVE must conserve energy.

use autopara_calculators as _; // links the calculators' registrations
use autopara_core::units::KB;
use autopara_core::{Atoms, Column, ItemOp, Operation, WorkerContext};
use autopara_md::Md;
use autopara_testkit::fixtures::{fcc, item};
use serde_json::{Value as Json, json};

/// The LAMMPS `bench/in.lj` system in ASE units (σ = 1 Å, ε = 1 eV, m = 1 amu).
fn lj_bench_system() -> Atoms {
    let mut at = fcc(18, 1.6796, [3; 3]);
    at.arrays.insert("masses".into(), Column::scalars(vec![1.0; at.len()]));
    at
}

const LJ_BENCH_CALC: &str = r#"{"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5}"#;

/// An argon-like LJ solid: σ 3.405 Å, ε 0.0104 eV (120 K), standard Ar masses.
fn argon() -> (Atoms, Json) {
    (fcc(18, 5.3, [3; 3]), json!({"type": "lennard_jones", "sigma": 3.405, "epsilon": 0.0104, "rc": 8.5}))
}

fn run(args: Json, at: Atoms, seed: u64) -> Vec<Atoms> {
    let op = Md::from_json(args).expect("valid md args");
    let mut ctx = WorkerContext::new(0, seed, "md");
    op.run_chunk(&[item(0, at)], &mut ctx).remove(0).expect("trajectory")
}

fn info(at: &Atoms, key: &str) -> f64 {
    at.info_f64(key).unwrap_or_else(|| panic!("missing {key}"))
}

/// The JSON the reference script reads: one configuration with masses and momenta.
fn config_json(at: &Atoms) -> Json {
    json!({
        "numbers": at.numbers,
        "positions": at.positions,
        "cell": at.cell,
        "pbc": at.pbc,
        "masses": at.masses(),
        "momenta": at.array_vec3("momenta").unwrap_or_else(|| vec![[0.0; 3]; at.len()]),
    })
}

/// Runs ASE dynamics for each request (a configuration and an integrator) and
/// returns the final positions, momenta, cell and energy of each.
const ASE_DYNAMICS: &str = r#"
import json, sys, warnings
import numpy as np
from ase import Atoms, units
from ase.calculators.lj import LennardJones
from ase.md.verlet import VelocityVerlet
from ase.md.nvtberendsen import NVTBerendsen
from ase.md.nptberendsen import NPTBerendsen
from ase.md.langevin import Langevin
from ase.md.langevinbaoab import LangevinBAOAB
warnings.simplefilter("ignore")
def run(d):
    c = d["config"]
    # No "masses": ASE's default masses.
    at = Atoms(numbers=c["numbers"], positions=c["positions"], cell=c["cell"], pbc=c["pbc"], masses=c.get("masses"))
    at.set_momenta(np.array(c["momenta"]))
    at.calc = LennardJones(**d["calc"])
    dt = d["dt_fs"] * units.fs
    kind = d["integrator"]
    if kind == "vv":
        dyn = VelocityVerlet(at, dt)
    elif kind == "nvt":
        dyn = NVTBerendsen(at, dt, temperature_K=d["T"], taut=d["tau_fs"] * units.fs)
    elif kind == "langevin":
        dyn = Langevin(at, dt, temperature_K=d["T"], friction=1 / (d["tau_fs"] * units.fs),
                       rng=np.random.default_rng(0))
    elif kind == "baoab":
        dyn = LangevinBAOAB(at, dt, temperature_K=d["T"], T_tau=d["tau_fs"] * units.fs, rng=0)
    else:
        dyn = NPTBerendsen(at, dt, temperature_K=d["T"], taut=d["tau_fs"] * units.fs,
                           pressure_au=d["P_GPa"] * units.GPa, taup=d["taup_fs"] * units.fs,
                           compressibility_au=d["compressibility_au"])
    dyn.run(d["steps"])
    return {"positions": at.positions.tolist(), "momenta": at.get_momenta().tolist(),
            "cell": at.cell.tolist(), "energy": at.get_potential_energy()}
print(json.dumps([run(d) for d in json.load(sys.stdin)]))
"#;

fn max_abs_diff(a: &[[f64; 3]], b: &Json) -> f64 {
    let b: Vec<[f64; 3]> = serde_json::from_value(b.clone()).expect("3-vectors");
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).flat_map(|(x, y)| (0..3).map(move |k| (x[k] - y[k]).abs())).fold(0.0, f64::max)
}

/// Asserts that the last frame of `traj` has ASE's positions and momenta `r`
/// to 1e-8, and that the atoms moved more than `min_moved` Å from the first
/// frame (so that the agreement is not trivial); `what` names the case.
fn assert_trajectory_matches(what: &str, traj: &[Atoms], r: &Json, min_moved: f64) {
    let last = traj.last().expect("frames");
    let dx = max_abs_diff(&last.positions, &r["positions"]);
    assert!(dx < 1e-8, "{what}: positions differ from ASE by {dx} A");
    let dp = max_abs_diff(&last.array_vec3("momenta").unwrap(), &r["momenta"]);
    assert!(dp < 1e-8, "{what}: momenta differ from ASE by {dp}");
    let moved = max_abs_diff(&traj[0].positions, &r["positions"]);
    assert!(moved > min_moved, "{what}: moved only {moved} A");
}

/// ASE's results for several requests, in one Python run.
fn reference(py: &std::path::PathBuf, requests: Vec<Json>) -> Vec<Json> {
    let out = autopara_testkit::run_python_json(py, ASE_DYNAMICS, &Json::Array(requests).to_string());
    serde_json::from_value(out).expect("a list of results")
}

#[test]
fn velocity_verlet_matches_ase_after_100_steps() {
    let Some(py) = autopara_testkit::python_or_skip("velocity_verlet_matches_ase_after_100_steps") else { return };
    // 100 steps of dt = 0.005 tau from Maxwell-Boltzmann velocities at T* = 1.44.
    let args = json!({
        "calculator": serde_json::from_str::<Json>(LJ_BENCH_CALC).unwrap(),
        "steps": 100, "dt": 0.0509, "temperature": 1.44 / KB, "traj_step_interval": 100,
    });
    let traj = run(args, lj_bench_system(), 11);
    assert_eq!(traj.len(), 2);
    let r = reference(
        &py,
        vec![json!({"config": config_json(&traj[0]), "calc": {"sigma": 1.0, "epsilon": 1.0, "rc": 2.5},
                    "integrator": "vv", "dt_fs": 0.0509, "steps": 100})],
    )
    .remove(0);
    assert_trajectory_matches("velocity Verlet", &traj, &r, 1e-2);
    let de = (info(&traj[1], "last_op__md_energy") - r["energy"].as_f64().unwrap()).abs();
    assert!(de < 1e-8, "energy differs from ASE by {de} eV");
}

#[test]
fn standard_masses_are_ases() {
    let Some(py) = autopara_testkit::python_or_skip("standard_masses_are_ases") else { return };
    // The table itself, element by element, against ase.data.
    let script = "import json, ase.data\n\
                  print(json.dumps({'masses': ase.data.atomic_masses.tolist(), 'symbols': ase.data.chemical_symbols}))";
    let r = autopara_testkit::run_python_json(&py, script, "");
    let ase_masses: Vec<f64> = serde_json::from_value(r["masses"].clone()).unwrap();
    let ase_symbols: Vec<String> = serde_json::from_value(r["symbols"].clone()).unwrap();
    assert_eq!(ase_masses.len(), autopara_core::elements::MASSES.len());
    assert_eq!(ase_symbols, autopara_core::elements::SYMBOLS);
    for (z, (&ours, &ase)) in autopara_core::elements::MASSES.iter().zip(&ase_masses).enumerate() {
        assert_eq!(ours, ase, "mass of Z = {z} ({})", ase_symbols[z]);
    }

    // The dynamics: a configuration without a `masses` column moves with the
    // standard masses, as ASE's VelocityVerlet with its default masses does.
    let mut at = lj_bench_system();
    at.arrays.shift_remove("masses");
    let species = [1, 6, 29, 79, 92];
    for (i, z) in at.numbers.iter_mut().enumerate() {
        *z = species[i % species.len()];
    }
    let args = json!({
        "calculator": serde_json::from_str::<Json>(LJ_BENCH_CALC).unwrap(),
        "steps": 100, "dt": 0.0509, "temperature": 1.44 / KB, "traj_step_interval": 100,
    });
    let traj = run(args, at, 13);
    let mut config = config_json(&traj[0]);
    config.as_object_mut().unwrap().remove("masses");
    let r = reference(
        &py,
        vec![json!({"config": config, "calc": {"sigma": 1.0, "epsilon": 1.0, "rc": 2.5},
                    "integrator": "vv", "dt_fs": 0.0509, "steps": 100})],
    )
    .remove(0);
    assert_trajectory_matches("default masses", &traj, &r, 1e-2);
}

#[test]
fn berendsen_nvt_and_npt_match_ase() {
    let Some(py) = autopara_testkit::python_or_skip("berendsen_nvt_and_npt_match_ase") else { return };
    let calc = serde_json::from_str::<Json>(LJ_BENCH_CALC).unwrap();
    let t = 1.0 / KB;
    let nvt = json!({"calculator": calc, "steps": 100, "dt": 0.0509, "temperature": t,
                     "temperature_tau": 1.0, "traj_step_interval": 100});
    let nvt_traj = run(nvt, lj_bench_system(), 12);
    // NPT: the cell must change isotropically towards the target pressure, as ASE's.
    let (p_gpa, kappa) = (100.0, 0.05);
    let npt = json!({"calculator": calc, "steps": 100, "dt": 0.0509, "temperature": t,
                     "temperature_tau": 1.0, "pressure": p_gpa, "pressure_tau": 2.0,
                     "compressibility_au": kappa, "traj_step_interval": 100});
    let traj = run(npt, lj_bench_system(), 12);
    let mut refs = reference(
        &py,
        vec![
            json!({"config": config_json(&nvt_traj[0]), "calc": {"sigma": 1.0, "epsilon": 1.0, "rc": 2.5},
                   "integrator": "nvt", "dt_fs": 0.0509, "steps": 100, "T": t, "tau_fs": 1.0}),
            json!({"config": config_json(&traj[0]), "calc": {"sigma": 1.0, "epsilon": 1.0, "rc": 2.5},
                   "integrator": "npt", "dt_fs": 0.0509, "steps": 100, "T": t, "tau_fs": 1.0,
                   "P_GPa": p_gpa, "taup_fs": 2.0, "compressibility_au": kappa}),
        ],
    );
    let r = refs.remove(1);
    let dx = max_abs_diff(&nvt_traj[1].positions, &refs[0]["positions"]);
    assert!(dx < 1e-8, "NVT positions differ from ASE by {dx} A");

    let last = &traj[1];
    assert_eq!(info(last, "MD_pressure_GPa"), p_gpa);
    let dx = max_abs_diff(&last.positions, &r["positions"]);
    assert!(dx < 1e-8, "NPT positions differ from ASE by {dx} A");
    let dc = max_abs_diff(&last.cell, &r["cell"]);
    assert!(dc < 1e-10, "NPT cell differs from ASE by {dc} A");
    // The initial pressure, with the ideal-gas term, as the barostat sees it.
    let first = &traj[0];
    let stress = first.info["last_op__md_stress"].to_f64_vec().unwrap();
    let volume = first.volume();
    let p0 = (-(stress[0] + stress[1] + stress[2]) / 3.0
        + 3.0 * first.len() as f64 * KB * info(first, "MD_current_temperature") / (3.0 * volume))
        / autopara_core::units::GPA;
    let l0 = first.cell[0][0];
    let grow = last.cell[0][0] / l0;
    assert!((p0 - p_gpa).abs() > 100.0, "initial pressure {p0} GPa too close to the target");
    assert!((grow - 1.0).abs() > 1e-3, "the cell hardly changed: factor {grow}");
    assert_eq!(grow < 1.0, p0 < p_gpa, "P0 {p0} GPa, target {p_gpa} GPa, cell factor {grow}");
    for (i, row) in last.cell.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            let expect = if i == j { grow * l0 } else { 0.0 };
            assert!((x - expect).abs() < 1e-12, "cell not isotropic: {:?}", last.cell);
        }
    }
}

#[test]
fn langevin_and_baoab_friction_match_ase_at_zero_kelvin() {
    let Some(py) = autopara_testkit::python_or_skip("langevin_and_baoab_friction_match_ase_at_zero_kelvin") else {
        return;
    };
    // At 0 K the noise vanishes and both propagators are deterministic: this checks
    // their friction and force terms (ASE's formulas) from a rattled crystal at rest.
    let mut at = lj_bench_system();
    let mut rng = autopara_core::rng::item_rng(3, "rattle", 0);
    for p in &mut at.positions {
        for x in p.iter_mut() {
            *x += 0.05 * (rand::Rng::random::<f64>(&mut rng) - 0.5);
        }
    }
    let calc = serde_json::from_str::<Json>(LJ_BENCH_CALC).unwrap();
    let cases = [("Langevin", "langevin"), ("LangevinBAOAB", "baoab")];
    let trajs: Vec<Vec<Atoms>> = cases
        .iter()
        .map(|(integrator, _)| {
            let args = json!({"calculator": calc, "steps": 100, "dt": 0.0509, "integrator": integrator,
                              "temperature": 0.0, "temperature_tau": 1.0, "traj_step_interval": 100});
            run(args, at.clone(), 4)
        })
        .collect();
    let requests = cases
        .iter()
        .zip(&trajs)
        .map(|((_, kind), traj)| {
            json!({"config": config_json(&traj[0]), "calc": {"sigma": 1.0, "epsilon": 1.0, "rc": 2.5},
                   "integrator": kind, "dt_fs": 0.0509, "steps": 100, "T": 0.0, "tau_fs": 1.0})
        })
        .collect();
    for (((integrator, _), traj), r) in cases.iter().zip(&trajs).zip(reference(&py, requests)) {
        assert_trajectory_matches(integrator, traj, &r, 1e-3);
    }
}

#[test]
fn compressibility_estimate_matches_wfl() {
    let Some(py) = autopara_testkit::python_or_skip("compressibility_estimate_matches_wfl") else { return };
    // The estimate sets the first step's barostat scaling; compare it through
    // ASE's NPTBerendsen run with wfl's own estimate.
    let script = r#"
import json, sys, warnings
import numpy as np
from ase import Atoms
from ase.calculators.lj import LennardJones
from wfl.generate.md.utils import _get_pressure
warnings.simplefilter("ignore")
c = json.load(sys.stdin)
at = Atoms(numbers=c["numbers"], positions=c["positions"], cell=c["cell"], pbc=c["pbc"], masses=c["masses"])
at.calc = LennardJones(sigma=1.0, epsilon=1.0, rc=2.5)
p, kappa = _get_pressure(100.0, None, 0.01, at, None)
print(json.dumps({"kappa": kappa}))
"#;
    let at = lj_bench_system();
    let kappa =
        autopara_testkit::run_python_json(&py, script, &config_json(&at).to_string())["kappa"].as_f64().unwrap();
    let base = json!({"calculator": serde_json::from_str::<Json>(LJ_BENCH_CALC).unwrap(), "steps": 1,
                      "dt": 0.0509, "temperature": 1.0 / KB, "temperature_tau": 1.0, "pressure": 100.0,
                      "pressure_tau": 2.0});
    let estimated = run(base.clone(), at.clone(), 5);
    let mut given = base;
    given["compressibility_au"] = json!(kappa);
    let explicit = run(given, at, 5);
    let (a, b) = (estimated[1].cell[0][0], explicit[1].cell[0][0]);
    assert!((a - b).abs() < 1e-12 * a, "cell after one step: estimated {a}, with wfl's kappa {b}");
    assert_ne!(estimated[1].cell, estimated[0].cell);
}

/// Mean of `MD_current_temperature` over the second half of a trajectory.
fn second_half_mean_temperature(traj: &[Atoms]) -> f64 {
    let half = &traj[traj.len() / 2..];
    half.iter().map(|f| info(f, "MD_current_temperature")).sum::<f64>() / half.len() as f64
}

#[test]
fn thermostats_reach_and_hold_the_target_temperature() {
    let (at, calc) = argon();
    // MD starts at 10 K (the first, zero-length stage) and thermostats to 60 K.
    let temperature = json!([
        {"T_i": 10.0, "T_f": 10.0, "traj_frac": 0.0},
        {"T_i": 60.0, "T_f": 60.0, "traj_frac": 1.0},
    ]);
    for integrator in ["Berendsen", "Langevin", "LangevinBAOAB"] {
        let args = json!({"calculator": calc, "steps": 2000, "dt": 5.0, "integrator": integrator,
                          "temperature": temperature, "temperature_tau": 100.0, "traj_step_interval": 10});
        let traj = run(args, at.clone(), 21);
        assert_eq!(traj.len(), 201);
        assert!((info(&traj[0], "MD_current_temperature") - 10.0).abs() < 1e-9);
        let mean = second_half_mean_temperature(&traj);
        assert!((mean - 60.0).abs() < 0.05 * 60.0, "{integrator}: mean T over the second half {mean} K");
        assert_eq!(info(&traj[200], "MD_temperature_K"), 60.0);
    }
}

#[test]
fn thermostats_hold_emt_copper_at_300_k() {
    // 108 Cu atoms (EMT) from 50 K to 300 K.
    let temperature = json!([
        {"T_i": 50.0, "T_f": 50.0, "traj_frac": 0.0},
        {"T_i": 300.0, "T_f": 300.0, "traj_frac": 1.0},
    ]);
    for integrator in ["Berendsen", "Langevin"] {
        let args = json!({"calculator": {"type": "emt"}, "steps": 1500, "dt": 2.0, "integrator": integrator,
                          "temperature": temperature, "temperature_tau": 100.0, "traj_step_interval": 10});
        let traj = run(args, fcc(29, 3.61, [3; 3]), 22);
        let mean = second_half_mean_temperature(&traj);
        assert!((mean - 300.0).abs() < 0.05 * 300.0, "{integrator}: mean T over the second half {mean} K");
    }
}

#[test]
fn nve_conserves_energy() {
    let (at, calc) = argon();
    let args = json!({"calculator": calc, "steps": 1000, "dt": 2.0, "temperature": 60.0,
                      "traj_step_interval": 10});
    let traj = run(args, at, 31);
    let n = traj[0].len() as f64;
    let total = |f: &Atoms| info(f, "last_op__md_energy") + 1.5 * n * KB * info(f, "MD_current_temperature");
    let e0 = total(&traj[0]);
    let worst = traj.iter().map(|f| (total(f) - e0).abs()).fold(0.0, f64::max);
    let ps = 1000.0 * 2.0 / 1000.0;
    // Bound: 5e-6 eV/atom/ps, 0.1 % of kT at 60 K per ps (about 20x what velocity
    // Verlet at 2 fs gives here; a first-order integrator drifts far more).
    let drift = worst / n / ps;
    assert!(drift < 5e-6, "energy drift {drift} eV/atom/ps");
}
