//! The `buildcell` op: one random structure per counter.

use crate::generate::{Generated, Generator};
use crate::input::BuildcellInput;
use crate::pyfmt::python_float_repr;
use autopara_core::prelude::*;
use indexmap::IndexMap;
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

fn default_true() -> bool {
    true
}
fn default_symprec() -> f64 {
    0.01
}
fn default_max_attempts() -> usize {
    200
}

/// Arguments, named as in wfl's `buildcell` (plus `buildcell_input_file` and `max_attempts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildcellArgs {
    /// The buildcell input text (as written by [`crate::create_input()`]).
    #[serde(default)]
    pub buildcell_input: Option<String>,
    /// A file holding the buildcell input text (instead of `buildcell_input`).
    #[serde(default)]
    pub buildcell_input_file: Option<PathBuf>,
    /// Standard deviation (Å) of a Gaussian displacement of every coordinate,
    /// drawn from the item's random generator (wfl: `Atoms.rattle`).
    #[serde(default)]
    pub perturbation: f64,
    /// Extra `info` entries; they override `##EXTRA_INFO` keys of the same name.
    #[serde(default)]
    pub extra_info: IndexMap<String, serde_json::Value>,
    /// wfl's flag. A structure that cannot be placed is always an item failure
    /// record here; the run's `skip_failed` decides whether the run goes on.
    #[serde(default = "default_true")]
    pub skip_failures: bool,
    /// Tolerance (Å) for the symmetry written to `buildcell_symmetry`.
    #[serde(default = "default_symprec")]
    pub symprec: f64,
    /// Attempts per structure before the item fails.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: usize,
}

/// The op, built and validated from its arguments.
#[derive(Debug)]
pub struct Buildcell {
    args: BuildcellArgs,
    generator: Generator,
    extra_info: Vec<(String, Value)>,
}

fn args_error(field: &str, message: impl Into<String>) -> ArgError {
    ArgError::new(field, message)
}

/// A JSON value as an info value: numbers, bools, strings, and flat arrays of them.
fn json_to_value(key: &str, v: &serde_json::Value) -> Result<Value, ArgError> {
    use serde_json::Value as J;
    let field = format!("extra_info.{key}");
    Ok(match v {
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().ok_or_else(|| args_error(&field, "number out of range"))?),
        },
        J::String(s) => Value::Str(s.clone()),
        J::Array(items) => {
            let data = if items.iter().all(|x| x.as_i64().is_some()) {
                ArrayData::Int(items.iter().filter_map(serde_json::Value::as_i64).collect())
            } else if items.iter().all(serde_json::Value::is_number) {
                ArrayData::Float(items.iter().filter_map(serde_json::Value::as_f64).collect())
            } else if items.iter().all(serde_json::Value::is_boolean) {
                ArrayData::Bool(items.iter().filter_map(serde_json::Value::as_bool).collect())
            } else if items.iter().all(serde_json::Value::is_string) {
                ArrayData::Str(items.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            } else {
                return Err(args_error(&field, "arrays must hold numbers, bools or strings, all of one kind"));
            };
            Value::Array { shape: vec![data.len()], data }
        }
        J::Null | J::Object(_) => return Err(args_error(&field, "expected a number, bool, string or flat array")),
    })
}

impl ItemOp for Buildcell {
    type Args = BuildcellArgs;
    const INFO: &'static OpInfo = &OpInfo {
        name: "buildcell",
        version: 1,
        default_chunk_size: 1,
        summary: "AIRSS-style random structures from buildcell input text (one per counter)",
        input_kind: InputKind::Counters,
    };

    const WFL_IGNORED: &'static [autopara_core::wfl_args::Ignored] = &[
        autopara_core::wfl_args::VERBOSE,
        ("buildcell_cmd", "structures are built natively, without AIRSS's buildcell program"),
    ];

    /// Reads and checks the input text (from `buildcell_input` or the file).
    fn new(mut args: BuildcellArgs) -> Result<Buildcell, ArgError> {
        let text = match (&args.buildcell_input, &args.buildcell_input_file) {
            (Some(t), None) => t.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| args_error("buildcell_input_file", format!("{}: {e}", path.display())))?,
            (Some(_), Some(_)) => {
                return Err(args_error(
                    "buildcell_input_file",
                    "give buildcell_input or buildcell_input_file, not both",
                ));
            }
            (None, None) => return Err(args_error("buildcell_input", "required (or buildcell_input_file)")),
        };
        let input = BuildcellInput::parse(&text).map_err(|e| {
            let field = if args.buildcell_input.is_some() { "buildcell_input" } else { "buildcell_input_file" };
            args_error(field, e.to_string())
        })?;
        if !(args.perturbation.is_finite() && args.perturbation >= 0.0) {
            return Err(args_error("perturbation", "must be a finite number ≥ 0"));
        }
        if !(args.symprec.is_finite() && args.symprec > 0.0) {
            return Err(args_error("symprec", "must be a finite number > 0"));
        }
        if args.max_attempts == 0 {
            return Err(args_error("max_attempts", "must be at least 1"));
        }
        let mut extra_info = input.extra_info.clone();
        for (k, v) in &args.extra_info {
            let v = json_to_value(k, v)?;
            autopara_core::extxyz::check_info_entry(k, &v).map_err(|m| args_error(&format!("extra_info.{k}"), m))?;
            extra_info.retain(|(key, _)| key != k);
            extra_info.push((k.clone(), v));
        }
        // The canonical arguments hold the text, not a file's path, so that
        // editing the file changes the cache key.
        args.buildcell_input = Some(text);
        args.buildcell_input_file = None;
        Ok(Buildcell { generator: Generator::new(input), extra_info, args })
    }

    fn args(&self) -> &BuildcellArgs {
        &self.args
    }

    fn run_item(&self, item: &Item, ctx: &mut WorkerContext) -> ItemResult {
        self.build_item(item, ctx).map(|g| vec![g.atoms])
    }
}

autopara_core::register_op!(Buildcell);

impl Buildcell {
    /// The structure for one item (generated, tagged, rattled, symmetry
    /// recorded) with how it was built; [`ItemOp::run_item`] returns its atoms.
    pub fn build_item(&self, item: &Item, ctx: &WorkerContext) -> Result<Generated, ItemFailure> {
        let mut rng = ctx.rng(item);
        let mut generated = self
            .generator
            .generate(&mut rng, self.args.max_attempts)
            .map_err(|e| ItemFailure::new(format!("buildcell counter {}: {e}", item.counter())))?;
        let atoms = &mut generated.atoms;
        atoms.info.insert("config_type".into(), Value::Str("buildcell".into()));
        let counter = i64::try_from(item.counter()).unwrap_or(i64::MAX);
        atoms.info.insert("buildcell_config_i".into(), Value::Int(counter));
        for (k, v) in &self.extra_info {
            atoms.info.insert(k.clone(), v.clone());
        }
        if self.args.perturbation > 0.0 {
            for p in &mut atoms.positions {
                for x in p.iter_mut() {
                    let n: f64 = rng.sample(StandardNormal);
                    *x += self.args.perturbation * n;
                }
            }
        }
        let sym = crate::detect_symmetry(atoms, self.args.symprec)
            .map_err(|e| ItemFailure::new(format!("buildcell counter {}: symmetry detection: {e}", item.counter())))?;
        atoms.info.insert(
            "buildcell_symmetry".into(),
            Value::Str(format!(
                "{} {} {} @ {}",
                sym.number,
                sym.international,
                sym.hall,
                python_float_repr(self.args.symprec)
            )),
        );
        Ok(generated)
    }
}
