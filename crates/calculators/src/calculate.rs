//! The `calculate` op: single-point energies, forces and stress of every
//! configuration, with the semantics of wfl's `generic.calculate`.
//!
//! Arguments (JSON/TOML, fields as in wfl):
//! - `calculator`: the calculator spec, e.g. `{"type": "emt"}`;
//! - `properties`: any of `energy`, `free_energy` (stored with `energy`),
//!   `forces`, `stress`, `energies` (per-atom); default `["energy", "forces",
//!   "stress"]`. `stress` is dropped for configurations periodic in no direction;
//! - `output_prefix`: default `"_auto_"`, which means the calculator's ASE class
//!   name and `_` (`EMT_`, `LennardJones_`, `MorsePotential_`); `null` stores
//!   the results under ASE's own names (`energy`, `forces`, `stress`), as wfl's
//!   `output_prefix=None` does through a SinglePointCalculator; `""` is
//!   rejected, as in wfl;
//! - `raise_calc_exceptions`: default false;
//! - `verbose` (wfl's): accepted and ignored, with a notice.
//!
//! Results go to `info["<prefix>energy"]` (and `<prefix>free_energy`),
//! `arrays["<prefix>forces"]`, `info["<prefix>stress"]` (Voigt 6, ASE order) and
//! `arrays["<prefix>energies"]`, replacing older keys with the prefix. When the
//! calculator fails on a configuration, the configuration is still output,
//! without results and with `info["<prefix>calculation_failed"] = True` and the
//! reason in `info["<prefix>calculation_error"]`; with
//! `raise_calc_exceptions = true` the failure instead becomes the item's failure
//! record (the run goes on unless `skip_failed` is false).
//!
//! Per-configuration calculators (wfl's `WFL_CALCULATOR_INITIALIZER` / `_ARGS` /
//! `_KWARGS`, which hold Python objects) are given by two info keys holding JSON text:
//! - [`CALCULATOR_KEY`] (`AUTOPARA_CALCULATOR`): a whole spec that replaces the
//!   op's calculator for this configuration, e.g. `{"type": "lennard_jones", "sigma": 2.3}`;
//! - [`CALCULATOR_KWARGS_KEY`] (`AUTOPARA_CALCULATOR_KWARGS`): an object of fields
//!   merged into the calculator spec (the op's, or the replacement), e.g. `{"rc": 6.0}`.
//!
//! The output prefix follows the op's calculator, as in wfl. A malformed
//! override is a failure record naming the key, and so is one whose
//! calculator runs a program (`external`'s command, `ase`'s constructor and
//! interpreter) other than the op's own calculator's: nothing read from an
//! input file is executed, so configurations may change a program's
//! arguments (an `ase` calculator's `kwargs`) but not choose the program.
//!
//! When the op's calculator cannot be constructed (an `ase` constructor that
//! cannot be imported or raises), the run stops with that one error.

use autopara_core::calculator::{spec_from_json, spec_to_json};
use autopara_core::prelude::*;
use autopara_core::results::{clear_results, store_results};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::OnceLock;

/// Info key of a per-configuration calculator spec (JSON) replacing the op's.
pub const CALCULATOR_KEY: &str = "AUTOPARA_CALCULATOR";
/// Info key of per-configuration calculator fields (a JSON object) merged into the spec.
pub const CALCULATOR_KWARGS_KEY: &str = "AUTOPARA_CALCULATOR_KWARGS";
/// wfl's per-configuration keys, which hold Python objects we cannot run.
const WFL_KEYS: [&str; 3] = ["WFL_CALCULATOR_INITIALIZER", "WFL_CALCULATOR_ARGS", "WFL_CALCULATOR_KWARGS"];

/// The prefix value that means "the calculator's name and `_`".
pub const AUTO_PREFIX: &str = "_auto_";

/// A property the `calculate` op can store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Property {
    /// Total energy (also stored as `free_energy`).
    Energy,
    /// The same as `energy` for these calculators.
    FreeEnergy,
    /// Forces.
    Forces,
    /// Stress (Voigt 6, ASE's order and sign).
    Stress,
    /// Per-atom energies.
    Energies,
}

fn default_properties() -> Vec<Property> {
    vec![Property::Energy, Property::Forces, Property::Stress]
}

fn default_prefix() -> Option<String> {
    Some(AUTO_PREFIX.to_string())
}

/// The `calculate` op's arguments.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalculateArgs {
    /// The calculator spec.
    #[serde(deserialize_with = "autopara_core::calculator::deserialize")]
    pub calculator: Box<dyn CalculatorSpec>,
    /// Properties to compute and store.
    #[serde(default = "default_properties")]
    pub properties: Vec<Property>,
    /// Prefix of the result keys; `_auto_` means `<CalculatorName>_`, `None`
    /// (JSON `null`) ASE's own names without a prefix.
    #[serde(default = "default_prefix")]
    pub output_prefix: Option<String>,
    /// Turn calculator errors into failure records instead of `calculation_failed` outputs.
    #[serde(default)]
    pub raise_calc_exceptions: bool,
}

/// The `calculate` op.
#[derive(Debug)]
pub struct Calculate {
    args: CalculateArgs,
    request: Properties,
    /// The result keys' prefix once known (`_auto_` needs the built calculator's name).
    prefix: OnceLock<String>,
}

impl ItemOp for Calculate {
    type Args = CalculateArgs;
    /// Chunks of 10, as wfl's generic calculate.
    const INFO: &'static OpInfo = &OpInfo {
        name: "calculate",
        version: 1,
        default_chunk_size: 10,
        summary: "single-point energy, forces, stress (and per-atom energies) with any registered calculator",
        input_kind: InputKind::Configs,
    };

    const WFL_IGNORED: &'static [autopara_core::wfl_args::Ignored] = &[autopara_core::wfl_args::VERBOSE];

    fn new(mut args: CalculateArgs) -> Result<Calculate, ArgError> {
        match args.output_prefix.as_deref() {
            Some("") => {
                return Err(ArgError::new(
                    "output_prefix",
                    "must not be empty (too easily confused with ASE's own extxyz keys); the default is _auto_, \
                     and null stores ASE's own keys",
                ));
            }
            Some(prefix) if prefix != AUTO_PREFIX => {
                autopara_core::results::check_prefix(prefix).map_err(|m| ArgError::new("output_prefix", m))?;
            }
            _ => {}
        }
        if args.properties.is_empty() {
            return Err(ArgError::new("properties", "at least one property is needed"));
        }
        args.properties.sort();
        args.properties.dedup();
        let has = |p: Property| args.properties.contains(&p);
        let request = Properties {
            energy: has(Property::Energy) || has(Property::FreeEnergy),
            forces: has(Property::Forces),
            stress: has(Property::Stress),
            energies: has(Property::Energies),
        };
        Ok(Calculate { args, request, prefix: OnceLock::new() })
    }

    fn args(&self) -> &CalculateArgs {
        &self.args
    }

    fn run_item(&self, item: &Item, ctx: &mut WorkerContext) -> ItemResult {
        // The results buffer is the worker's, reused from item to item.
        let mut out = std::mem::take(ctx.state::<CalcResults>());
        let result = self.compute(item, ctx, &mut out);
        *ctx.state::<CalcResults>() = out;
        result
    }
}

autopara_core::register_op!(Calculate);

impl Calculate {
    /// The per-configuration calculator spec from the override keys, if any.
    fn override_spec(&self, atoms: &Atoms) -> Result<Option<Box<dyn CalculatorSpec>>, ItemFailure> {
        if let Some(key) = WFL_KEYS.iter().find(|k| atoms.info.contains_key(**k)) {
            return Err(ItemFailure::new(format!(
                "info key {key} holds a Python calculator constructor; give a spec in {CALCULATOR_KEY} \
                 and fields in {CALCULATOR_KWARGS_KEY} instead"
            )));
        }
        let replace = atoms.info.get(CALCULATOR_KEY);
        let merge = atoms.info.get(CALCULATOR_KWARGS_KEY);
        if replace.is_none() && merge.is_none() {
            return Ok(None);
        }
        let json_of = |key: &str, v: &Value| -> Result<Json, ItemFailure> {
            let text = v
                .as_str()
                .ok_or_else(|| ItemFailure::new(format!("info key {key}: expected a string holding JSON")))?;
            serde_json::from_str(text).map_err(|e| ItemFailure::new(format!("info key {key}: invalid JSON: {e}")))
        };
        let mut spec = match replace {
            Some(v) => json_of(CALCULATOR_KEY, v)?,
            None => spec_to_json(self.args.calculator.as_ref()),
        };
        if let Some(v) = merge {
            let Json::Object(fields) = json_of(CALCULATOR_KWARGS_KEY, v)? else {
                return Err(ItemFailure::new(format!("info key {CALCULATOR_KWARGS_KEY}: expected a JSON object")));
            };
            let Some(obj) = spec.as_object_mut() else {
                return Err(ItemFailure::new(format!("info key {CALCULATOR_KEY}: expected a JSON object")));
            };
            obj.extend(fields);
        }
        let key = if replace.is_some() { CALCULATOR_KEY } else { CALCULATOR_KWARGS_KEY };
        let spec = spec_from_json(spec).map_err(|e| {
            ItemFailure::new(format!("per-config calculator from info key {key}: {}", e.in_context("calculator")))
        })?;
        // Nothing read from an input file is executed: an override may change
        // a program's arguments, not name a program the run's calculator does not run.
        if let Some(program) = spec.program()
            && Some(&program) != self.args.calculator.program().as_ref()
        {
            return Err(ItemFailure::new(format!(
                "info key {key}: the calculator it gives would run {program}, which the run's own calculator \
                 does not; a configuration may only change the arguments of the run's program"
            )));
        }
        Ok(Some(spec))
    }

    fn compute(&self, item: &Item, ctx: &mut WorkerContext, out: &mut CalcResults) -> ItemResult {
        // The op's calculator, built once per worker: it names the `_auto_`
        // prefix (as in wfl), and one that cannot be constructed stops the run.
        let calc = match ctx.calculator(self.args.calculator.as_ref()) {
            Ok(calc) => calc,
            Err(e) => {
                let message = format!("cannot build the calculator: {e}");
                return Err(match e {
                    CalcError::Construction(_) => ItemFailure::stop_run(message),
                    _ => ItemFailure::new(message),
                });
            }
        };
        // `None`: ASE's own names, as a SinglePointCalculator writes them.
        let prefix = self.prefix.get_or_init(|| match self.args.output_prefix.as_deref() {
            Some(AUTO_PREFIX) => format!("{}_", calc.name()),
            given => given.unwrap_or_default().to_string(),
        });
        let atoms = item.atoms()?;
        let own = self.override_spec(atoms)?;
        let mut request = self.request;
        if !atoms.any_pbc() {
            request.stress = false; // as wfl: no stress without periodicity
        }
        // The op's calculator is at hand; only a per-config spec is looked up again.
        let calc = match own.as_deref() {
            Some(spec) => ctx.calculator(spec),
            None => Ok(calc),
        };
        let result = calc.and_then(|calc| calc.calculate(atoms, request, out));
        let mut at = atoms.clone();
        match result {
            Ok(()) => {
                // Store what was asked for (a calculator may compute more).
                let mut stored = out.computed;
                stored.energy &= request.energy;
                stored.forces &= request.forces;
                stored.stress &= request.stress;
                stored.energies &= request.energies;
                let computed = std::mem::replace(&mut out.computed, stored);
                store_results(&mut at, prefix, out);
                out.computed = computed;
                Ok(vec![at])
            }
            Err(e) if self.args.raise_calc_exceptions => Err(failure(item, &e)),
            Err(e) => {
                clear_results(&mut at, prefix);
                at.info.insert(format!("{prefix}calculation_failed"), Value::Bool(true));
                at.info.insert(format!("{prefix}calculation_error"), Value::Str(e.to_string()));
                Ok(vec![at])
            }
        }
    }
}

/// A failure record for a calculator error.
fn failure(item: &Item, e: &CalcError) -> ItemFailure {
    ItemFailure::new(format!("calculator failed on config {} ({}): {e}", item.index, item.location))
}
