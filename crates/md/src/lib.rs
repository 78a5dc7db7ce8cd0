//! The `md` op: molecular dynamics over many configurations, with wfl's
//! arguments and semantics and ASE 3.28's integrators.
//!
//! Each input configuration becomes a trajectory of frames:
//! - integrators (wfl's selection): velocity Verlet without `temperature_tau`;
//!   with it `Berendsen` (ASE's NVTBerendsen, or NPTBerendsen with `pressure`),
//!   `Langevin` (ASE's Langevin) or `LangevinBAOAB` (ASE's, fixed cell);
//! - initial velocities: Maxwell-Boltzmann at the first stage's temperature
//!   from the item's random stream, scaled to exactly that temperature, zero
//!   total momentum; without `temperature` the config's own `momenta`;
//! - frames at step 0 and every `traj_step_interval` steps, plus the final
//!   configuration, each with `MD_time_fs`, `MD_step`, `MD_current_temperature`
//!   (and `MD_temperature_K`, `MD_pressure_GPa`), its `momenta`, the calculator
//!   results under `results_prefix`, and `config_type` with `:MD` appended;
//! - per-config overrides of any argument but `calculator`, `steps` and `dt`
//!   from a JSON object in `info["AUTOPARA_MD_ARGS"]` (or wfl's `WFL_MD_KWARGS`).
//!
//! Trajectories depend only on the seed, the op and the item's index, never on
//! workers or chunking. See `docs/ops/md.md` for the full reference.

mod abort;
mod args;
mod dynamics;
mod error;
mod run;
mod stages;

pub use args::{AbortCheck, Integrator, MdArgs, Temperature, TemperatureStage};
/// The shared wfl forms of `pressure` and `update_config_type` (defined in core).
pub use autopara_core::wfl_args::{ConfigTypeUpdate, Pressure};
pub use error::MdError;
pub use run::{KEY_PRESSURE, KEY_STOPPED, KEY_TEMPERATURE};
pub use stages::{Stage, frame_count, stages};

use autopara_core::args::parse;
use autopara_core::prelude::*;
use serde_json::Value as Json;

/// Info keys holding per-config argument overrides (a JSON object): ours, then wfl's.
pub const OVERRIDE_KEYS: [&str; 2] = ["AUTOPARA_MD_ARGS", "WFL_MD_KWARGS"];

/// Arguments that per-config overrides may not change (as in wfl).
const FIXED_ARGS: [&str; 3] = ["calculator", "steps", "dt"];

/// The `md` op: one trajectory per configuration.
#[derive(Debug)]
pub struct Md {
    args: MdArgs,
}

impl ItemOp for Md {
    type Args = MdArgs;

    /// Default chunk size 1, not wfl's 10: wfl chose 10 to amortise building the
    /// calculator per chunk, but autopara builds it once per worker; an MD item
    /// is long (milliseconds to minutes), so per-chunk overhead is negligible,
    /// while one item per chunk balances the load across workers best and keeps
    /// only one trajectory per worker in memory.
    const INFO: &'static OpInfo = &OpInfo {
        name: "md",
        version: 1,
        default_chunk_size: 1,
        summary: "molecular dynamics (velocity Verlet, Berendsen NVT/NPT, Langevin, BAOAB), one trajectory per config",
        input_kind: InputKind::Configs,
    };

    const WFL_IGNORED: &'static [autopara_core::wfl_args::Ignored] = &args::IGNORED;

    fn new(args: MdArgs) -> Result<Md, ArgError> {
        args.validate()?;
        Ok(Md { args })
    }

    fn args(&self) -> &MdArgs {
        &self.args
    }

    fn run_item(&self, item: &Item, ctx: &mut WorkerContext) -> ItemResult {
        let atoms = item.atoms()?;
        let overridden = self.overridden_args(atoms)?;
        let args = overridden.as_ref().unwrap_or(&self.args);
        let mut rng = ctx.rng(item);
        let calc = ctx.calculator(args.calculator.as_ref())?;
        run::trajectory(args, atoms, calc, &mut rng).map_err(ItemFailure::from)
    }
}

autopara_core::register_op!(Md);

impl Md {
    /// The arguments with one configuration's overrides applied (validated like
    /// the op's own), or `None` when it has none.
    fn overridden_args(&self, atoms: &Atoms) -> Result<Option<MdArgs>, MdError> {
        let present: Vec<&str> = OVERRIDE_KEYS.iter().copied().filter(|k| atoms.info.contains_key(*k)).collect();
        let key = match present.as_slice() {
            [] => return Ok(None),
            [key] => *key,
            _ => return Err(MdError::config(present.join(","), "give per-config overrides under one key only")),
        };
        let bad = |message: String| MdError::config(key, message);
        let text = match atoms.info.get(key) {
            Some(Value::Str(s)) => s,
            _ => return Err(bad("expected a string holding a JSON object".into())),
        };
        let overrides: serde_json::Map<String, Json> =
            serde_json::from_str(text).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let mut merged = serde_json::to_value(&self.args).map_err(|e| bad(e.to_string()))?;
        for (k, v) in overrides {
            if FIXED_ARGS.contains(&k.as_str()) {
                return Err(bad(format!("{k} cannot be overridden per config")));
            }
            if let Some(obj) = merged.as_object_mut() {
                obj.insert(k, v);
            }
        }
        // Through the op's own constructor, so overrides are validated exactly as its arguments.
        let md = parse::<MdArgs>(merged).and_then(Md::new).map_err(|e| bad(format!("md: {e}")))?;
        Ok(Some(md.args))
    }
}

#[cfg(test)]
mod testcalc;
#[cfg(test)]
mod tests;
