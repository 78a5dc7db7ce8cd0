//! The `minim` op's arguments: wfl's `optimize` arguments plus the optimizer
//! choice, with serde defaults equal to wfl's and validation that names the
//! offending field.

use crate::error::MinimError;
use autopara_core::wfl_args::{self, ConfigTypeUpdate, Ignored, Pressure};
use autopara_core::{ArgError, CalculatorSpec};
use serde::{Deserialize, Serialize};

/// Arguments of the `minim` op (JSON/TOML object; unknown fields are rejected).
///
/// ```
/// use autopara_minim::MinimArgs;
/// # use autopara_calculators as _; // links the calculators' registrations
/// let args: MinimArgs = serde_json::from_value(serde_json::json!({
///     "calculator": {"type": "emt"}, "fmax": 0.01, "pressure": 0.5,
///     "optimizer": "FIRE"
/// })).unwrap();
/// assert_eq!(args.steps, 1000);
/// assert!(args.keep_symmetry);
/// ```
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinimArgs {
    /// The calculator spec (`{"type": "emt"}`).
    #[serde(deserialize_with = "autopara_core::calculator::deserialize")]
    pub calculator: Box<dyn CalculatorSpec>,
    /// Force tolerance (eV/Å): converged when the largest per-atom force norm is below it.
    #[serde(default = "default_fmax")]
    pub fmax: f64,
    /// Stress tolerance (eV/Å³) with a variable cell; defaults to `fmax` (as wfl).
    #[serde(default)]
    pub smax: Option<f64>,
    /// Maximum number of optimizer steps.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Scalar pressure (GPa), in wfl's `sample_pressure` forms (a number,
    /// `["info", key]`, `["exponential", scale]`, `["normal_positive", mean,
    /// sigma]`, `["uniform", lower, upper]`), resolved per configuration;
    /// when given, the cell relaxes too.
    #[serde(default)]
    pub pressure: Option<Pressure>,
    /// Which strain components relax with a variable cell: 6 Voigt entries
    /// (xx yy zz yz xz xy) or a 3x3 matrix, booleans or 0/1.
    #[serde(default)]
    pub stress_mask: Option<StressMask>,
    /// Symmetrise forces, stress and steps with the detected space group.
    #[serde(default = "yes")]
    pub keep_symmetry: bool,
    /// Save a frame every this many optimizer steps (step 0 included).
    #[serde(default = "one")]
    pub traj_step_interval: usize,
    /// Keep the whole trajectory (`null`), its last frame (`"last"`), or the
    /// last frame only when converged (`"last_converged"`).
    #[serde(default)]
    pub traj_subselect: Option<TrajSubselect>,
    /// An exception (calculator failure, failed line search) ends the item as
    /// `optimize_last_exception` when true, or as a failure record when false.
    #[serde(default = "yes")]
    pub skip_failures: bool,
    /// Prefix of the stored calculator results.
    #[serde(default = "default_prefix")]
    pub results_prefix: String,
    /// How `optimize_config_type` updates `config_type`: `"append"`, `"overwrite"` or `false`.
    #[serde(default)]
    pub update_config_type: ConfigTypeUpdate,
    /// `"PreconLBFGS"` (wfl's), `"LBFGS"` or `"FIRE"`.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// PreconLBFGS preconditioner: `"auto"` (ASE's default: `"Exp"` from 100
    /// degrees-of-freedom rows up, none below), `"Exp"`, or `null` for none.
    #[serde(default = "default_precon")]
    pub precon: Option<PreconKind>,
    /// Largest step (Å) of one atom; defaults to ASE's per optimizer (0.04 for
    /// PreconLBFGS, 0.2 for LBFGS and FIRE).
    #[serde(default)]
    pub maxstep: Option<f64>,
}

/// wfl's `optimize` arguments that have no effect here.
pub(crate) const IGNORED: [Ignored; 2] = [
    wfl_args::VERBOSE,
    ("logfile", "there is no ASE optimizer log; every saved frame has optimize_n_steps and the results"),
];

/// Largest `maxstep` (Å) accepted, for every optimizer: ASE's L-BFGS
/// optimizers refuse larger steps as "much too large".
const MAX_STEP: f64 = 1.0;

fn default_fmax() -> f64 {
    1e-3
}
fn default_steps() -> usize {
    1000
}
fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn default_prefix() -> String {
    "last_op__optimize_".to_string()
}
fn default_precon() -> Option<PreconKind> {
    Some(PreconKind::Auto)
}

/// The optimization algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// ASE's `PreconLBFGS` (Armijo line search), wfl's optimizer.
    #[default]
    #[serde(rename = "PreconLBFGS")]
    PreconLbfgs,
    /// ASE's `LBFGS` (no line search, step limited by `maxstep`).
    #[serde(rename = "LBFGS")]
    Lbfgs,
    /// ASE's `FIRE`.
    #[serde(rename = "FIRE")]
    Fire,
}

/// PreconLBFGS preconditioner choice (`null` means none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreconKind {
    /// `Exp` for 100 or more rows of degrees of freedom (atoms, plus 3 with a
    /// variable cell), none below: ASE's `precon="auto"`.
    #[serde(rename = "auto")]
    Auto,
    /// ASE's `Exp` preconditioner (A = 3, r_cut = 2 r_NN, mu estimated).
    Exp,
}

/// Sub-selection of the saved trajectory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrajSubselect {
    /// Only the last frame.
    Last,
    /// Only the last frame, and only if converged (nothing otherwise).
    LastConverged,
}

/// A stress mask as given: Voigt 6-vector or 3x3 matrix of booleans or numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StressMask {
    /// `[xx, yy, zz, yz, xz, xy]`, or any other flat list (rejected unless 6 long).
    Flat(Vec<MaskEntry>),
    /// Rows of a 3x3 matrix (rejected unless 3x3).
    Matrix(Vec<Vec<MaskEntry>>),
}

/// One stress-mask entry: a boolean or a number (ASE multiplies the virial by it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MaskEntry {
    /// `true` relaxes the component, `false` fixes it.
    Bool(bool),
    /// A weight (0 fixes, 1 relaxes).
    Number(f64),
}

impl MaskEntry {
    fn value(self) -> f64 {
        match self {
            MaskEntry::Bool(b) => f64::from(u8::from(b)),
            MaskEntry::Number(x) => x,
        }
    }
}

impl StressMask {
    /// The mask as a full 3x3 matrix (Voigt entries mirrored), or an error naming `stress_mask`.
    pub fn to_matrix(&self) -> Result<[[f64; 3]; 3], MinimError> {
        let bad = |message: String| MinimError::InvalidArg { field: "stress_mask", message };
        let m = match self {
            StressMask::Flat(v) => {
                let [xx, yy, zz, yz, xz, xy]: [MaskEntry; 6] = v
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad(format!("expected 6 Voigt entries or a 3x3 matrix, got {} entries", v.len())))?;
                let [xx, yy, zz, yz, xz, xy] = [xx, yy, zz, yz, xz, xy].map(MaskEntry::value);
                [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]]
            }
            StressMask::Matrix(rows) => {
                if rows.len() != 3 || rows.iter().any(|r| r.len() != 3) {
                    let shape: Vec<usize> = rows.iter().map(Vec::len).collect();
                    return Err(bad(format!("expected a 3x3 matrix, got rows of lengths {shape:?}")));
                }
                let mut m = [[0.0; 3]; 3];
                for (a, row) in rows.iter().enumerate() {
                    for (b, e) in row.iter().enumerate() {
                        m[a][b] = e.value();
                    }
                }
                m
            }
        };
        if m.iter().flatten().any(|x| !x.is_finite()) {
            return Err(bad("entries must be finite".into()));
        }
        Ok(m)
    }
}

impl MinimArgs {
    /// Checks values that serde cannot: positive tolerances and steps, a
    /// well-shaped mask, a sane `maxstep`, the calculator spec. Errors name the field.
    pub fn validate(&self) -> Result<(), ArgError> {
        self.check_values()?;
        self.calculator.validate().map_err(|e| ArgError::from(e).within("calculator"))
    }

    fn check_values(&self) -> Result<(), MinimError> {
        let positive = |field: &'static str, x: f64| {
            if x.is_finite() && x > 0.0 {
                Ok(())
            } else {
                Err(MinimError::InvalidArg { field, message: format!("must be positive and finite, got {x}") })
            }
        };
        positive("fmax", self.fmax)?;
        if let Some(smax) = self.smax {
            positive("smax", smax)?;
        }
        if let Some(p) = &self.pressure {
            p.validate("pressure")?;
        }
        if let Some(mask) = &self.stress_mask {
            mask.to_matrix()?;
            if self.pressure.is_none() {
                return Err(MinimError::InvalidArg {
                    field: "stress_mask",
                    message: "only used with a variable cell; set pressure too".into(),
                });
            }
        }
        if self.results_prefix.is_empty() {
            return Err(MinimError::InvalidArg {
                field: "results_prefix",
                message: "must not be empty (it would clash with ASE's own keys)".into(),
            });
        }
        autopara_core::results::check_prefix(&self.results_prefix)
            .map_err(|message| MinimError::InvalidArg { field: "results_prefix", message })?;
        if self.traj_step_interval == 0 {
            return Err(MinimError::InvalidArg { field: "traj_step_interval", message: "must be at least 1".into() });
        }
        if let Some(m) = self.maxstep {
            positive("maxstep", m)?;
            // ASE refuses larger steps for its L-BFGS optimizers; no atom
            // relaxes sensibly by more than 1 Å in one step with FIRE either.
            if m > MAX_STEP {
                return Err(MinimError::InvalidArg {
                    field: "maxstep",
                    message: format!("{m} Å is much too large a step (at most {MAX_STEP} Å)"),
                });
            }
        }
        if self.precon != default_precon() && self.optimizer != OptimizerKind::PreconLbfgs {
            return Err(MinimError::InvalidArg {
                field: "precon",
                message: format!("only PreconLBFGS takes a preconditioner, not {:?}", self.optimizer),
            });
        }
        Ok(())
    }

    /// The stress tolerance in use (`smax`, else `fmax`).
    pub fn stress_tolerance(&self) -> f64 {
        self.smax.unwrap_or(self.fmax)
    }

    /// The step limit in use (`maxstep`, else ASE's default for the optimizer).
    pub fn step_limit(&self) -> f64 {
        self.maxstep.unwrap_or(match self.optimizer {
            OptimizerKind::PreconLbfgs => 0.04,
            OptimizerKind::Lbfgs | OptimizerKind::Fire => 0.2,
        })
    }
}
