//! Shared test helpers: crystals, rattling, and the ASE/wfl reference runner.
#![allow(dead_code)] // each test binary uses a subset

use autopara_core::rng::item_rng;
use autopara_core::{Atoms, CalculatorSpec};
use autopara_minim::{MinimArgs, Minimization, minimize};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde_json::{Value as Json, json};

/// The reference script (wfl's optimize for PreconLBFGS, ASE for LBFGS/FIRE).
pub const REFERENCE: &str = include_str!("../reference/ase_minim.py");

/// Adds normal displacements of standard deviation `stdev` (as ASE's `rattle`).
pub fn rattle(at: &mut Atoms, stdev: f64, seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, stdev).unwrap();
    for p in &mut at.positions {
        for x in p.iter_mut() {
            *x += normal.sample(&mut rng);
        }
    }
}

/// A config as the reference script reads it.
pub fn config_json(at: &Atoms, fixed: &[usize]) -> Json {
    json!({"numbers": at.numbers, "positions": at.positions, "cell": at.cell, "pbc": at.pbc, "fixed": fixed})
}

/// Runs the reference; `None` (after a loud skip notice) without the venv.
pub fn reference(test: &str, request: &Json) -> Option<Json> {
    let python = autopara_testkit::python_or_skip(test)?;
    Some(autopara_testkit::run_python_json(&python, REFERENCE, &request.to_string()))
}

/// Parses op arguments.
pub fn args(v: Json) -> MinimArgs {
    serde_json::from_value(v).expect("valid minim arguments")
}

/// Runs our minimization with the calculator of `args`.
pub fn run(args: &MinimArgs, at: &Atoms) -> Minimization {
    let spec: &dyn CalculatorSpec = args.calculator.as_ref();
    let mut calc = spec.build().expect("calculator builds");
    minimize(args, calc.as_mut(), at, &mut item_rng(0, "minim", 0)).expect("minimize runs")
}

/// The final energy stored in the last frame.
pub fn final_energy(m: &Minimization) -> f64 {
    m.frames.last().and_then(|f| f.info_f64("last_op__optimize_energy")).expect("last frame has an energy")
}
