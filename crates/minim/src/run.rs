//! One optimization as wfl's `optimize` runs it: frames every
//! `traj_step_interval` steps (step 0 included, consecutive duplicates
//! skipped, the final geometry appended), `optimize_*` info keys, results
//! under `results_prefix`, `config_type` updated, then `traj_subselect`.

use crate::args::{MinimArgs, PreconKind, TrajSubselect};
use crate::error::MinimError;
use crate::optimizers::Optimizer;
use crate::symmetry::{self, Symmetry};
use crate::system::{CellFilter, Constraints, System};
use autopara_core::results::{clear_results, store_results};
use autopara_core::rng::ItemRng;
use autopara_core::units::GPA;
use autopara_core::{Atoms, Calculator, Value};

/// How an optimization ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// The convergence test passed.
    Converged,
    /// `steps` ran out first.
    Unconverged,
    /// The calculator or the line search failed; the message says why.
    Exception(String),
}

impl Status {
    /// wfl's suffix: `converged`, `unconverged` or `exception`.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Converged => "converged",
            Status::Unconverged => "unconverged",
            Status::Exception(_) => "exception",
        }
    }
}

/// The outcome of one optimization.
#[derive(Debug, Clone)]
pub struct Minimization {
    /// The saved frames after `traj_subselect` (possibly none).
    pub frames: Vec<Atoms>,
    /// How it ended.
    pub status: Status,
    /// Optimizer steps taken (`optimize_n_steps`).
    pub steps: usize,
    /// Calculator evaluations, line-search trials and the preconditioner's probe included.
    pub evaluations: usize,
}

/// Relaxes `input` with `calc` as the `minim` op does, returning its frames;
/// a random `pressure` form is drawn from `rng` (the item's generator in the op).
/// Errors are about the configuration (a malformed `move_mask`, a pressure
/// without a periodic cell); failures during the run end as
/// [`Status::Exception`] with the frames so far.
///
/// ```
/// use autopara_core::{Atoms, CalcError, CalcResults, Calculator, Properties};
/// use autopara_minim::{MinimArgs, Status, minimize};
/// # use autopara_calculators as _; // links the calculators' registrations
///
/// /// A spring between two atoms, rest length 1 Å.
/// struct Spring;
/// impl Calculator for Spring {
///     fn name(&self) -> &str { "Spring" }
///     fn calculate(&mut self, at: &Atoms, _: Properties, out: &mut CalcResults) -> Result<(), CalcError> {
///         let d: Vec<f64> = (0..3).map(|k| at.positions[1][k] - at.positions[0][k]).collect();
///         let r = d.iter().map(|x| x * x).sum::<f64>().sqrt();
///         out.energy = (r - 1.0).powi(2);
///         let f: Vec<f64> = d.iter().map(|x| 2.0 * (r - 1.0) * x / r).collect();
///         out.forces = vec![[f[0], f[1], f[2]], [-f[0], -f[1], -f[2]]];
///         out.computed = Properties::ENERGY_FORCES;
///         Ok(())
///     }
/// }
///
/// let args: MinimArgs = serde_json::from_value(serde_json::json!({
///     "calculator": {"type": "lennard_jones"}, "optimizer": "FIRE", "fmax": 1e-4
/// })).unwrap();
/// let at = Atoms::new(vec![1, 1], vec![[0.0; 3], [1.3, 0.0, 0.0]]);
/// let m = minimize(&args, &mut Spring, &at, &mut autopara_core::rng::item_rng(0, "minim", 0)).unwrap();
/// assert_eq!(m.status, Status::Converged);
/// let last = m.frames.last().unwrap();
/// assert!((last.positions[1][0] - last.positions[0][0] - 1.0).abs() < 1e-4);
/// assert_eq!(last.info["optimize_config_type"].as_str(), Some("optimize_last_converged"));
/// ```
pub fn minimize(
    args: &MinimArgs,
    calc: &mut dyn Calculator,
    input: &Atoms,
    rng: &mut ItemRng,
) -> Result<Minimization, MinimError> {
    let mut atoms = input.clone();
    let mut constraints = Constraints::from_move_mask(&atoms)?;
    let filter_mask = match &args.stress_mask {
        Some(m) => m.to_matrix()?,
        None => [[1.0; 3]; 3],
    };
    if args.pressure.is_some() && !(atoms.any_pbc() && atoms.volume() > 0.0) {
        return Err(MinimError::InvalidConfig {
            field: "pressure",
            message: format!(
                "a variable cell needs a periodic configuration with a full-rank cell (pbc {:?}, volume {:.3e} A^3)",
                atoms.pbc,
                atoms.volume()
            ),
        });
    }
    if args.keep_symmetry && symmetry::only_identity(&atoms) {
        // P1 (the identity alone) constrains nothing.
        atoms.info.insert("optimize_symmetry_initial".into(), Value::Str(symmetry::p1()));
    } else if args.keep_symmetry {
        let dataset = symmetry::detect(&atoms);
        atoms.info.insert("optimize_symmetry_initial".into(), Value::Str(symmetry::describe(dataset.as_ref())));
        // P1 (the identity alone) constrains nothing.
        if let Some(sym) = dataset.as_ref().and_then(|d| Symmetry::new(&atoms, d)).filter(|s| s.len() > 1) {
            sym.refine(&mut atoms);
            constraints.symmetry = Some(sym);
        }
    }
    let pressure = match &args.pressure {
        Some(spec) => {
            let p = spec.sample("pressure", &atoms, rng)?;
            atoms.info.insert("optimize_pressure_GPa".into(), Value::Float(p));
            Some(p)
        }
        None => None,
    };
    atoms.info.insert("optimize_config_type".into(), Value::Str("optimize_mid".into()));
    let filter = match pressure {
        Some(p) => Some(CellFilter::new(&atoms.cell, filter_mask, p * GPA, atoms.len())?),
        None => None,
    };
    let mut sys = System::new(calc, atoms, constraints, filter);
    let use_precon = match args.precon {
        None => false,
        Some(PreconKind::Exp) => true,
        Some(PreconKind::Auto) => sys.rows() >= 100,
    };
    let mut opt = Optimizer::new(args.optimizer, use_precon, args.step_limit(), &sys);
    let mut frames = Vec::new();
    let mut steps = 0;
    let status = match drive(args, &mut sys, &mut opt, &mut frames, &mut steps) {
        Ok(true) => Status::Converged,
        Ok(false) => Status::Unconverged,
        Err(e) => Status::Exception(e.to_string()),
    };
    if frames.last().is_none_or(|last: &Atoms| !same_geometry(last, &sys.atoms)) {
        let mut frame = sys.atoms.clone();
        if sys.is_evaluated() {
            store_results(&mut frame, &args.results_prefix, &sys.raw);
        } else {
            clear_results(&mut frame, &args.results_prefix);
        }
        frames.push(frame);
    }
    finish_frames(args, &mut frames, &status, steps, sys.evaluations);
    let frames = match args.traj_subselect {
        None => frames,
        Some(TrajSubselect::Last) => frames.pop().into_iter().collect(),
        Some(TrajSubselect::LastConverged) => {
            frames.pop().into_iter().filter(|_| status == Status::Converged).collect()
        }
    };
    Ok(Minimization { frames, status, steps, evaluations: sys.evaluations })
}

/// ASE's `Dynamics.irun` with wfl's observer: returns whether it converged.
fn drive(
    args: &MinimArgs,
    sys: &mut System<'_>,
    opt: &mut Optimizer,
    frames: &mut Vec<Atoms>,
    steps: &mut usize,
) -> Result<bool, MinimError> {
    let (fmax, smax) = (args.fmax, args.stress_tolerance());
    sys.evaluate()?;
    observe(args, sys, frames)?;
    let mut converged = opt.converged(sys, fmax, smax);
    while !converged && *steps < args.steps {
        opt.step(sys)?;
        *steps += 1;
        sys.evaluate()?;
        if steps.is_multiple_of(args.traj_step_interval) {
            observe(args, sys, frames)?;
        }
        converged = opt.converged(sys, fmax, smax);
    }
    Ok(converged)
}

/// wfl's `process_step`: the volume guard, then a frame unless the geometry repeats.
fn observe(args: &MinimArgs, sys: &System<'_>, frames: &mut Vec<Atoms>) -> Result<(), MinimError> {
    let atoms = &sys.atoms;
    if let Some(minimum) = atoms.info_f64("RSS_min_vol_per_atom") {
        let volume = atoms.volume() / atoms.len().max(1) as f64;
        if volume < minimum {
            return Err(MinimError::VolumeTooSmall { volume, minimum });
        }
    }
    // With a sub-selection only the final geometry survives, and it is
    // appended at the end anyway: keep no intermediate frames.
    if args.traj_subselect.is_some() || frames.last().is_some_and(|last| same_geometry(last, atoms)) {
        return Ok(());
    }
    let mut frame = atoms.clone();
    store_results(&mut frame, &args.results_prefix, &sys.raw);
    frames.push(frame);
    Ok(())
}

/// ASE's `Atoms.__eq__`: same numbers, positions, cell and periodicity.
fn same_geometry(a: &Atoms, b: &Atoms) -> bool {
    a.positions == b.positions && a.cell == b.cell && a.numbers == b.numbers && a.pbc == b.pbc
}

/// The `optimize_*` keys of the first and last frames (the last also gets
/// `optimize_n_evaluations`, the calculator calls, which wfl does not
/// record) and `config_type`. The final symmetry is not detected again: with
/// `keep_symmetry` the initial group is kept by construction, and a second
/// search would cost more than a relaxation with a cheap potential.
fn finish_frames(args: &MinimArgs, frames: &mut [Atoms], status: &Status, steps: usize, evaluations: usize) {
    if let Some(first) = frames.first_mut() {
        first.info.insert("optimize_config_type".into(), Value::Str("optimize_initial".into()));
    }
    if let Some(last) = frames.last_mut() {
        last.info.insert("optimize_config_type".into(), Value::Str(format!("optimize_last_{}", status.label())));
        last.info.insert("optimize_n_steps".into(), Value::Int(steps as i64));
        last.info.insert("optimize_n_evaluations".into(), Value::Int(evaluations as i64));
        if let Status::Exception(message) = status {
            last.info.insert("optimize_exception".into(), Value::Str(message.clone()));
        }
    }
    for frame in frames.iter_mut() {
        let Some(kind) = frame.info.get("optimize_config_type").and_then(Value::as_str).map(str::to_string) else {
            continue;
        };
        args.update_config_type.apply(frame, &kind);
    }
}
