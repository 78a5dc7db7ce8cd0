//! Final energies and calculator-call counts against wfl's optimize (ASE 3.28
//! PreconLBFGS) and ASE's LBFGS and FIRE, run from the same starting points
//! in the reference Python at test time.

mod common;

use autopara_core::Atoms;
use common::{args, config_json, fcc, final_energy, rattle, reference, run};
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
        assert!(ours.evaluations <= calls_ref, "{test} config {k}: {} calculator calls, ASE {calls_ref}", ours.evaluations);
    }
}

fn lj() -> Json {
    json!({"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5})
}

/// LAMMPS bench/in.lj's fcc lattice (a = 1.6796 sigma), 108 atoms, rattled.
fn lj_cells(n: usize, a: f64, stdev: f64) -> Vec<(Atoms, Vec<usize>)> {
    (0..n)
        .map(|s| {
            let mut at = fcc(18, a, 3);
            rattle(&mut at, stdev, 100 + s as u64);
            (at, vec![])
        })
        .collect()
}

#[test]
fn lj_precon_lbfgs_fixed_cell_matches_wfl() {
    compare("lj_precon_lbfgs_fixed_cell_matches_wfl", lj(), "PreconLBFGS", json!({"fmax": 1e-3}), &lj_cells(2, 1.6796, 0.05), 1e-4);
}

#[test]
fn lj_precon_lbfgs_variable_cell_matches_wfl() {
    compare(
        "lj_precon_lbfgs_variable_cell_matches_wfl",
        lj(),
        "PreconLBFGS",
        json!({"fmax": 1e-3, "pressure": 20.0}),
        &lj_cells(1, 1.56, 0.03),
        1e-4,
    );
}

#[test]
fn lj_lbfgs_and_fire_match_ase() {
    let cells = lj_cells(1, 1.6796, 0.05);
    compare("lj_lbfgs_matches_ase", lj(), "LBFGS", json!({"fmax": 1e-3}), &cells, 1e-4);
    compare("lj_fire_matches_ase", lj(), "FIRE", json!({"fmax": 1e-3}), &cells, 1e-4);
}
