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

use autopara_core::{
    InputKind, Item, ItemFailure, ItemResult, OpInfo, OpRegistration, Operation, Value, WorkerContext,
};
use serde_json::Value as Json;

/// Info keys holding per-config argument overrides (a JSON object): ours, then wfl's.
pub const OVERRIDE_KEYS: [&str; 2] = ["AUTOPARA_MD_ARGS", "WFL_MD_KWARGS"];

/// Arguments that per-config overrides may not change (as in wfl).
const FIXED_ARGS: [&str; 3] = ["calculator", "steps", "dt"];

/// The `md` op's static facts.
///
/// Default chunk size 1, not wfl's 10: wfl chose 10 to amortise building the
/// calculator per chunk, but autopara builds it once per worker; an MD item
/// is long (milliseconds to minutes), so per-chunk overhead is negligible,
/// while one item per chunk balances the load across workers best and keeps
/// only one trajectory per worker in memory.
pub static MD_INFO: OpInfo = OpInfo {
    name: "md",
    version: 1,
    default_chunk_size: 1,
    summary: "molecular dynamics (velocity Verlet, Berendsen NVT/NPT, Langevin, BAOAB), one trajectory per config",
    input_kind: InputKind::Configs,
};

/// The `md` op.
#[derive(Debug)]
pub struct Md {
    args: MdArgs,
    canonical: Json,
}

impl Md {
    /// The op with validated arguments.
    pub fn new(args: MdArgs) -> Md {
        let canonical = args.to_json();
        Md { args, canonical }
    }

    /// Parses and validates arguments from JSON; errors name the offending field.
    pub fn from_json(value: Json) -> Result<Md, MdError> {
        MdArgs::from_json(value).map(Md::new)
    }

    /// The typed arguments.
    pub fn md_args(&self) -> &MdArgs {
        &self.args
    }

    /// The arguments with one configuration's overrides applied (validated like
    /// the op's own), or `None` when it has none.
    fn overridden_args(&self, atoms: &autopara_core::Atoms) -> Result<Option<MdArgs>, MdError> {
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
        let mut merged = self.canonical.clone();
        for (k, v) in overrides {
            if FIXED_ARGS.contains(&k.as_str()) {
                return Err(bad(format!("{k} cannot be overridden per config")));
            }
            if let Some(obj) = merged.as_object_mut() {
                obj.insert(k, v);
            }
        }
        MdArgs::from_json(merged).map(Some).map_err(|e| bad(e.to_string()))
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

impl Operation for Md {
    fn info(&self) -> &'static OpInfo {
        &MD_INFO
    }

    fn args(&self) -> Json {
        self.canonical.clone()
    }

    fn run_chunk(&self, items: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult> {
        items.iter().map(|item| self.run_item(item, ctx)).collect()
    }
}

fn build(args: Json) -> autopara_core::Result<Box<dyn Operation>> {
    Ok(Box::new(Md::from_json(args)?))
}

inventory::submit! {
    OpRegistration { info: &MD_INFO, build }
}

#[cfg(test)]
mod testcalc;
#[cfg(test)]
mod tests;
