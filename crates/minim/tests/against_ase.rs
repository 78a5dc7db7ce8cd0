//! Final energies and calculator-call counts against wfl's optimize (ASE 3.28
//! PreconLBFGS) and ASE's LBFGS and FIRE, run from the same starting points
//! in the reference Python at test time.

mod common;

use autopara_core::Atoms;
use autopara_testkit::fixtures::fcc;
use common::{args, config_json, final_energy, rattle, reference, run};
use serde_json::{Value as Json, json};

/// Runs ours and the reference on `configs`; final energies must agree within
/// `tol` eV, statuses must match, and we may not use more calculator calls.
fn compare(test: &str, calculator: Json, optimizer: &str, opt_args: Json, configs: &[(Atoms, Vec<usize>)], tol: f64) {
    let request = json!({
        "calculator": calculator,
        "optimizer": optimizer,
        "args": opt_args,
        "configs": configs.iter().map(|(a, f)| config_json(a, f)).collect::<Vec<_>>(),
    });
    let Some(reference) = reference(test, &request) else { return };
    let mut our_args = opt_args.clone();
    our_args["calculator"] = calculator;
    our_args["optimizer"] = json!(optimizer);
    let our_args = args(our_args);
    for (k, (at, fixed)) in configs.iter().enumerate() {
        let mut at = at.clone();
        if !fixed.is_empty() {
            let mask: Vec<bool> = (0..at.len()).map(|i| !fixed.contains(&i)).collect();
            at.arrays.insert(
                "move_mask".into(),
                autopara_core::Column { width: 1, data: autopara_core::ArrayData::Bool(mask) },
            );
        }
        let ours = run(&our_args, &at);
        let theirs = &reference["results"][k];
        let (e_ours, e_ref) = (final_energy(&ours), theirs["energy"].as_f64().unwrap());
        let calls_ref = theirs["calls"].as_u64().unwrap() as usize;
        eprintln!(
            "{test} config {k}: energy {e_ours:.8} vs {e_ref:.8} (diff {:.2e}); steps {} vs {}; calls {} vs {calls_ref}",
            e_ours - e_ref,
            ours.steps,
            theirs["steps"],
            ours.evaluations
        );
        assert!((e_ours - e_ref).abs() < tol, "{test} config {k}: energy {e_ours} vs reference {e_ref}");
        let last = ours.frames.last().unwrap();
        assert_eq!(last.info["optimize_config_type"].as_str(), theirs["status"].as_str(), "{test} config {k}");
        assert!(
            ours.evaluations <= calls_ref,
            "{test} config {k}: {} calculator calls, ASE {calls_ref}",
            ours.evaluations
        );
    }
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
    compare("lj_lbfgs_matches_ase", lj(), "LBFGS", json!({"fmax": 1e-3}), &cells, 1e-4);
    compare("lj_fire_matches_ase", lj(), "FIRE", json!({"fmax": 1e-3}), &cells, 1e-4);
    compare("lj_precon_lbfgs_matches_wfl", lj(), "PreconLBFGS", json!({"fmax": 1e-3, "precon": "Exp"}), &cells, 1e-4);
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
        1e-4,
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
        1e-4,
    );
}

#[test]
fn emt_cu_fixed_atoms_and_stress_mask_match_wfl() {
    // A 32-atom cell below ASE's "auto" threshold, so no preconditioner; the
    // bottom layer fixed; only the diagonal strains relax.
    let mut at = fcc(29, 3.6, [2; 3]);
    rattle(&mut at, 0.1, 3);
    let fixed: Vec<usize> = (0..at.len()).filter(|&i| at.positions[i][2] < 0.5).collect();
    compare(
        "emt_cu_fixed_atoms_and_stress_mask_match_wfl",
        json!({"type": "emt"}),
        "PreconLBFGS",
        json!({"fmax": 1e-3, "pressure": 1.0, "stress_mask": [1, 1, 1, 0, 0, 0]}),
        &[(at, fixed)],
        1e-4,
    );
}
