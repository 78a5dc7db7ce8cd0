//! autopara minim: the `minim` op, geometry optimization with wfl's
//! `optimize` arguments and outputs, and ASE 3.28's optimizers step for step
//! (PreconLBFGS with the Exp preconditioner, wfl's default; LBFGS; FIRE).
//!
//! - Variable cell with a `pressure` (GPa): ASE's `FrechetCellFilter`
//!   (log-deformation cell degrees of freedom) with `stress_mask`.
//! - Fixed atoms from ASE's extxyz `move_mask` column (width 1 or 3) stay put
//!   and the column is written back.
//! - `keep_symmetry`: forces, stress and steps symmetrised with the space
//!   group moyo detects (symprec 0.01), reported in `optimize_symmetry_initial`.
//! - Frames and keys as wfl: `optimize_config_type` (`optimize_initial`,
//!   `optimize_mid`, `optimize_last_{converged,unconverged,exception}`),
//!   `optimize_n_steps`, `optimize_pressure_GPa` (the pressure, sampled per
//!   item from its RNG for wfl's random forms), `config_type` appended,
//!   results under `last_op__optimize_`.
//!
//! ```
//! # use autopara_calculators as _; // links the calculators' registrations
//! let op = autopara_core::build_op("minim", serde_json::json!({
//!     "calculator": {"type": "emt"}, "fmax": 0.01, "pressure": 0.0
//! })).unwrap();
//! assert_eq!(op.info().default_chunk_size, 10);
//! assert_eq!(op.args()["optimizer"], "PreconLBFGS");
//! ```

mod args;
mod error;
mod linalg;
mod optimizers;
mod precon;
mod run;
mod symmetry;
mod system;

pub use args::{MaskEntry, MinimArgs, OptimizerKind, PreconKind, StressMask, TrajSubselect};
/// The shared wfl forms of `pressure` and `update_config_type` (defined in core).
pub use autopara_core::wfl_args::{ConfigTypeUpdate, Pressure};
pub use error::MinimError;
pub use run::{Minimization, Status, minimize};
pub use symmetry::SYMPREC;
pub use system::MOVE_MASK;

use autopara_core::prelude::*;

/// The `minim` op: geometry optimization of each configuration.
#[derive(Debug)]
pub struct Minim {
    args: MinimArgs,
}

impl ItemOp for Minim {
    type Args = MinimArgs;
    const INFO: &'static OpInfo = &OpInfo {
        name: "minim",
        version: 1,
        default_chunk_size: 10,
        summary: "geometry optimization (PreconLBFGS, LBFGS, FIRE; fixed or variable cell) with wfl's optimize outputs",
        input_kind: InputKind::Configs,
    };

    const WFL_IGNORED: &'static [autopara_core::wfl_args::Ignored] = &args::IGNORED;

    fn new(args: MinimArgs) -> Result<Minim, ArgError> {
        args.validate()?;
        Ok(Minim { args })
    }

    fn args(&self) -> &MinimArgs {
        &self.args
    }

    fn run_item(&self, item: &Item, ctx: &mut WorkerContext) -> ItemResult {
        let atoms = item.atoms()?;
        let mut rng = ctx.rng(item);
        let calc = ctx.calculator(self.args.calculator.as_ref())?;
        let m = minimize(&self.args, calc, atoms, &mut rng).map_err(|e| ItemFailure::new(e.to_string()))?;
        match &m.status {
            Status::Exception(message) if !self.args.skip_failures => {
                Err(ItemFailure::new(format!("optimization failed after {} steps: {message}", m.steps)))
            }
            _ => Ok(m.frames),
        }
    }
}

autopara_core::register_op!(Minim);
