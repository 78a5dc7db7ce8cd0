//! Optimizations against wfl's optimize (ASE 3.28 PreconLBFGS) and ASE's
//! LBFGS and FIRE, run from the same starting points in the reference Python
//! at test time: final energy, status, step count, calculator calls, final
//! positions and cell, and ASE's convergence test (largest per-atom force
//! norm below fmax, plus the stress criterion of PreconLBFGS with a cell).

mod common;

use autopara_calculators as _; // links the calculators' registrations
use autopara_core::units::GPA;
use autopara_core::{ArrayData, Atoms, Column};
use autopara_minim::{MinimArgs, Minimization};
use autopara_testkit::fixtures::fcc;
use common::{args, config_json, final_energy, rattle, reference, run};
use nalgebra::Matrix3;
use serde_json::{Value as Json, json};

/// Final energies within this of the reference (eV), as issue 7 asks.
const ENERGY_TOL: f64 = 1e-4;

/// Final positions and cell within this of the reference (Å). Both sides run
/// the same algorithm step for step (the step counts are asserted equal), so
/// they differ only by floating-point rounding carried through the steps:
/// 1e-11 Å or less in these tests. Two optimizations merely converged to
/// fmax 1e-3 on the same minimum may differ by up to about fmax / (softest
/// curvature), a few 1e-3 Å for Cu EMT; 1e-6 Å sits far between, so it
/// tolerates rounding but not a different path to the minimum.
const GEOMETRY_TOL: f64 = 1e-6;

/// One optimization of ours next to the reference's.
struct Compared {
    /// Our input (with its `move_mask`).
    input: Atoms,
    ours: Minimization,
    theirs: Json,
}

/// Runs ours and the reference on `configs` (atoms and fixed-atom indices) and
/// checks, per config: the final energy within [`ENERGY_TOL`], the status and
/// the step count equal, no more calculator calls, the final positions (and
/// cell) within [`GEOMETRY_TOL`], and that ASE's convergence test held at
/// the end (and not one step before). Returns the runs for further checks;
/// none when the reference is unavailable.
fn compare(
    test: &str,
    calculator: Json,
    optimizer: &str,
    opt_args: Json,
    configs: &[(Atoms, Vec<usize>)],
) -> Vec<Compared> {
    let request = json!({
        "calculator": calculator,
        "optimizer": optimizer,
        "args": opt_args,
        "configs": configs.iter().map(|(a, f)| config_json(a, f)).collect::<Vec<_>>(),
    });
    let Some(reference) = reference(test, &request) else { return vec![] };
    let mut our_args = opt_args.clone();
    our_args["calculator"] = calculator;
    our_args["optimizer"] = json!(optimizer);
    let our_args = args(our_args);
    let mut compared = Vec::new();
    for (k, (at, fixed)) in configs.iter().enumerate() {
        let mut input = at.clone();
        if !fixed.is_empty() {
            let mask: Vec<bool> = (0..input.len()).map(|i| !fixed.contains(&i)).collect();
            input.arrays.insert("move_mask".into(), Column { width: 1, data: ArrayData::Bool(mask) });
        }
        let ours = run(&our_args, &input);
        let theirs = reference["results"][k].clone();
        let (e_ours, e_ref) = (final_energy(&ours), theirs["energy"].as_f64().unwrap());
        let calls_ref = theirs["calls"].as_u64().unwrap() as usize;
        let last = ours.frames.last().unwrap();
        let dx = max_diff(&last.positions, &rows3(&theirs["positions"]));
        let dcell = max_diff(&last.cell, &rows3(&theirs["cell"]));
        eprintln!(
            "{test} config {k}: energy {e_ours:.8} vs {e_ref:.8} (diff {:.2e}); steps {} vs {}; calls {} vs {calls_ref}; \
             positions differ by {dx:.1e} A, cell by {dcell:.1e} A",
            e_ours - e_ref,
            ours.steps,
            theirs["steps"],
            ours.evaluations
        );
        let at_k = format!("{test} config {k}");
        assert!((e_ours - e_ref).abs() < ENERGY_TOL, "{at_k}: energy {e_ours} vs reference {e_ref}");
        assert_eq!(last.info["optimize_config_type"].as_str(), theirs["status"].as_str(), "{at_k}");
        assert_eq!(Some(ours.steps as u64), theirs["steps"].as_u64(), "{at_k}: steps");
        assert!(ours.evaluations <= calls_ref, "{at_k}: {} calculator calls, ASE {calls_ref}", ours.evaluations);
        assert!(dx < GEOMETRY_TOL, "{at_k}: final positions differ from the reference by {dx} A");
        assert!(dcell < GEOMETRY_TOL, "{at_k}: final cell differs from the reference by {dcell} A");
        if theirs["status"] == "optimize_last_converged" {
            let test = ConvergenceTest::new(&our_args, optimizer, &input, last, fixed);
            assert!(test.passes(last), "{at_k}: converged, but ASE's test fails on the last frame");
            if let [.., before, _] = ours.frames.as_slice() {
                // With a cell, LBFGS and FIRE also test the cell gradient; only
                // PreconLBFGS's stress criterion is reproduced here.
                if test.pressure.is_none() || optimizer == "PreconLBFGS" {
                    assert!(!test.passes(before), "{at_k}: ASE's test already held one step earlier");
                }
            }
        }
        compared.push(Compared { input, ours, theirs });
    }
    compared
}

/// ASE's convergence test on a frame, recomputed from its stored raw results
/// (the configs here have no symmetry to impose, so the optimizer's forces
/// and stress are the raw ones up to the constraints and the cell filter):
/// the forces as the optimizer sees them (fixed atoms zeroed; with a cell
/// filter, times the deformation gradient from the starting cell) must have
/// every per-atom norm below fmax; with a cell, PreconLBFGS also needs every
/// component of the masked stress plus pressure below smax.
struct ConvergenceTest<'a> {
    fmax: f64,
    smax: f64,
    /// Scalar pressure (eV/Å³) when the cell varies.
    pressure: Option<f64>,
    mask: [[f64; 3]; 3],
    test_stress: bool,
    start_cell: Matrix3<f64>,
    fixed: &'a [usize],
}

impl<'a> ConvergenceTest<'a> {
    /// The test for `args` and `optimizer` on a run from `input`, whose
    /// `last` frame records the pressure used.
    fn new(args: &MinimArgs, optimizer: &str, input: &Atoms, last: &Atoms, fixed: &'a [usize]) -> Self {
        let pressure = last.info_f64("optimize_pressure_GPa").map(|p| p * GPA);
        let mask = args.stress_mask.as_ref().map_or([[1.0; 3]; 3], |m| m.to_matrix().unwrap());
        ConvergenceTest {
            fmax: args.fmax,
            smax: args.stress_tolerance(),
            pressure,
            mask,
            test_stress: optimizer == "PreconLBFGS",
            start_cell: Matrix3::from_fn(|r, c| input.cell[r][c]),
            fixed,
        }
    }

    /// The largest per-atom norm of the optimizer's forces on `frame`.
    fn max_force_norm(&self, frame: &Atoms) -> f64 {
        let forces = frame.array_vec3("last_op__optimize_forces").expect("frame has forces");
        let deform = match self.pressure {
            // Cell rows are lattice vectors: cell = start · Fᵀ.
            Some(_) => {
                let cell = Matrix3::from_fn(|r, c| frame.cell[r][c]);
                (self.start_cell.try_inverse().unwrap() * cell).transpose()
            }
            None => Matrix3::identity(),
        };
        let mut largest = 0.0f64;
        for (i, f) in forces.iter().enumerate() {
            if self.fixed.contains(&i) {
                continue;
            }
            let g: Vec<f64> = (0..3).map(|c| (0..3).map(|r| f[r] * deform[(r, c)]).sum()).collect();
            largest = largest.max(g.iter().map(|x| x * x).sum::<f64>().sqrt());
        }
        largest
    }

    /// ASE's test on `frame`.
    fn passes(&self, frame: &Atoms) -> bool {
        let forces_ok = self.max_force_norm(frame) < self.fmax;
        match self.pressure {
            Some(p) if self.test_stress => {
                let s = frame.info["last_op__optimize_stress"].to_f64_vec().expect("frame has a stress");
                let full = [[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]];
                let largest = (0..3)
                    .flat_map(|r| (0..3).map(move |c| (r, c)))
                    .map(|(r, c)| ((full[r][c] + if r == c { p } else { 0.0 }) * self.mask[r][c]).abs())
                    .fold(0.0, f64::max);
                forces_ok && largest < self.smax
            }
            _ => forces_ok,
        }
    }
}

/// A JSON list of 3-vectors.
fn rows3(v: &Json) -> Vec<[f64; 3]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r: Vec<f64> = r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            [r[0], r[1], r[2]]
        })
        .collect()
}

/// The largest component difference between two lists of 3-vectors.
fn max_diff(a: &[[f64; 3]], b: &[[f64; 3]]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn lj() -> Json {
    json!({"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5})
}

/// LAMMPS bench/in.lj's fcc lattice (a = 1.6796 sigma), 32 atoms, rattled.
fn lj_cell() -> Vec<(Atoms, Vec<usize>)> {
    let mut at = fcc(18, 1.6796, [2; 3]);
    rattle(&mut at, 0.05, 100);
    vec![(at, vec![])]
}

#[test]
fn lj_optimizers_match_ase() {
    let cells = lj_cell();
    compare("lj_lbfgs_matches_ase", lj(), "LBFGS", json!({"fmax": 1e-3}), &cells);
    compare("lj_fire_matches_ase", lj(), "FIRE", json!({"fmax": 1e-3}), &cells);
    compare("lj_precon_lbfgs_matches_wfl", lj(), "PreconLBFGS", json!({"fmax": 1e-3, "precon": "Exp"}), &cells);
}

/// ASE's test is on per-atom force norms, not components: an LJ dimer along
/// (1,1,1), stretched so that its force (1.5 fmax) has every component below
/// fmax (0.87 fmax) but its norm above, is not converged at the start; every
/// optimizer must step, as ASE's does.
#[test]
fn convergence_is_decided_by_the_largest_per_atom_force_norm() {
    let fmax = 0.01;
    // The LJ minimum is at 2^(1/6) = 1.12246 sigma, where the force constant
    // is about 57 epsilon/sigma^2: 2.7e-4 sigma further, the force is 0.0153.
    let r = 1.12273 / 3f64.sqrt();
    let dimer = Atoms::new(vec![18, 18], vec![[0.0; 3], [r; 3]]);
    let opt_args = json!({"fmax": fmax, "keep_symmetry": false});
    for optimizer in ["LBFGS", "FIRE", "PreconLBFGS"] {
        let test = format!("lj_dimer_{optimizer}_norm_not_component");
        for c in compare(&test, lj(), optimizer, opt_args.clone(), &[(dimer.clone(), vec![])]) {
            let start = c.ours.frames[0].array_vec3("last_op__optimize_forces").unwrap();
            let largest_component = start.iter().flatten().map(|f| f.abs()).fold(0.0, f64::max);
            let largest_norm = start.iter().map(|f| f.iter().map(|x| x * x).sum::<f64>().sqrt()).fold(0.0, f64::max);
            assert!(largest_component < fmax && largest_norm > fmax, "{test}: {largest_component} {largest_norm}");
            assert!(c.theirs["steps"].as_u64().unwrap() > 0, "{test}: ASE stepped");
            assert!(c.ours.steps > 0, "{test}: stopped on a component test");
        }
    }
}

/// A rattled (0.1 Å) Cu cell of `n`x`n`x`n` cubic cells (4 n³ atoms).
fn cu_cell(a: f64, n: usize) -> Vec<(Atoms, Vec<usize>)> {
    let mut at = fcc(29, a, [n; 3]);
    rattle(&mut at, 0.1, 7);
    vec![(at, vec![])]
}

#[test]
fn emt_cu_fixed_cell_matches_wfl() {
    compare(
        "emt_cu_fixed_cell_matches_wfl",
        json!({"type": "emt"}),
        "PreconLBFGS",
        json!({"fmax": 1e-3}),
        &cu_cell(3.61, 3),
    );
}

#[test]
fn emt_cu_variable_cell_at_pressure_matches_wfl() {
    compare(
        "emt_cu_variable_cell_at_pressure_matches_wfl",
        json!({"type": "emt"}),
        "PreconLBFGS",
        json!({"fmax": 1e-3, "pressure": 2.0, "precon": "Exp"}),
        &cu_cell(3.64, 2),
    );
}

#[test]
fn emt_cu_variable_cell_lbfgs_and_fire_match_ase() {
    let cells = cu_cell(3.64, 2);
    let opt_args = json!({"fmax": 1e-3, "pressure": 2.0});
    compare("emt_cu_variable_cell_lbfgs_matches_ase", json!({"type": "emt"}), "LBFGS", opt_args.clone(), &cells);
    compare("emt_cu_variable_cell_fire_matches_ase", json!({"type": "emt"}), "FIRE", opt_args, &cells);
}

/// With `stress_mask`, the masked strains stay as they started: from a
/// diagonal cell, the cell entries a zero of the mask freezes keep their
/// starting values (to 1e-10 Å), while the others relax; `compare` checks
/// the final cell against ASE's with the same mask.
fn assert_masked_cell_frozen(test: &str, runs: &[Compared], frozen: &[(usize, usize)]) {
    for c in runs {
        let (start, end) = (c.input.cell, c.ours.frames.last().unwrap().cell);
        for r in 0..3 {
            for col in 0..3 {
                let moved = (end[r][col] - start[r][col]).abs();
                if frozen.contains(&(r, col)) {
                    assert!(moved < 1e-10, "{test}: masked cell entry ({r}, {col}) moved {moved} A");
                } else if r == col {
                    assert!(moved > 1e-4, "{test}: free cell entry ({r}, {col}) did not relax");
                }
            }
        }
    }
}

#[test]
fn emt_cu_fixed_atoms_and_stress_mask_match_wfl() {
    // A 32-atom cell below ASE's "auto" threshold, so no preconditioner; the
    // bottom layer fixed; only the diagonal strains relax.
    let mut at = fcc(29, 3.6, [2; 3]);
    rattle(&mut at, 0.1, 3);
    let fixed: Vec<usize> = (0..at.len()).filter(|&i| at.positions[i][2] < 0.5).collect();
    let test = "emt_cu_fixed_atoms_and_stress_mask_match_wfl";
    let runs = compare(
        test,
        json!({"type": "emt"}),
        "PreconLBFGS",
        json!({"fmax": 1e-3, "pressure": 1.0, "stress_mask": [1, 1, 1, 0, 0, 0]}),
        &[(at, fixed)],
    );
    let shears = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)];
    assert_masked_cell_frozen(test, &runs, &shears);
}

#[test]
fn emt_cu_asymmetric_stress_masks_match_ase() {
    // Voigt order [xx, yy, zz, yz, xz, xy]. The first mask leaves only yz
    // among the shears free, the second only xy, and each freezes a different
    // diagonal strain: together they pin where every Voigt entry acts.
    let cells = cu_cell(3.64, 2);
    let cases = [
        ("PreconLBFGS", [1, 0, 1, 1, 0, 0], vec![(1, 1), (0, 2), (2, 0), (0, 1), (1, 0)]),
        ("LBFGS", [0, 1, 1, 0, 0, 1], vec![(0, 0), (1, 2), (2, 1), (0, 2), (2, 0)]),
    ];
    for (optimizer, mask, frozen) in cases {
        let test = format!("emt_cu_stress_mask_{mask:?}_{optimizer}");
        let opt_args = json!({"fmax": 1e-3, "pressure": 1.0, "stress_mask": mask});
        let runs = compare(&test, json!({"type": "emt"}), optimizer, opt_args, &cells);
        assert_masked_cell_frozen(&test, &runs, &frozen);
    }
}
