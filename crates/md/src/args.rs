//! The `md` op's arguments, named and defaulted as wfl's `md()`, and their
//! validation (every error names its field, before any work starts).

use crate::error::MdError;
use autopara_core::ArgError;
use autopara_core::calculator::CalculatorSpec;
use autopara_core::wfl_args::{self, ConfigTypeUpdate, Ignored, Pressure};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

/// Arguments of the `md` op (wfl's `md()` keyword arguments).
///
/// ```
/// use autopara_core::ItemOp;
/// use autopara_md::Md;
/// # use autopara_calculators as _; // links the calculators' registrations
/// let op = Md::from_json(serde_json::json!({
///     "calculator": {"type": "lennard_jones", "sigma": 3.4, "epsilon": 0.0104},
///     "steps": 1000, "dt": 2.0, "temperature": [100.0, 300.0], "temperature_tau": 100.0,
/// }))
/// .unwrap();
/// assert_eq!(op.inner().args().results_prefix, "last_op__md_");
/// // Errors name the field, before any work.
/// let err = Md::from_json(serde_json::json!({
///     "calculator": {"type": "lennard_jones"}, "steps": 10, "dt": 1.0, "integrator": "NoseHoover",
/// }))
/// .unwrap_err();
/// assert!(err.to_string().starts_with("md: integrator: unknown variant `NoseHoover`"), "{err}");
/// ```
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdArgs {
    /// The calculator spec (`{"type": "emt"}`).
    #[serde(deserialize_with = "autopara_core::calculator::deserialize")]
    pub calculator: Box<dyn CalculatorSpec>,
    /// Number of MD steps (at least 1).
    pub steps: u64,
    /// Time step in fs.
    pub dt: f64,
    /// `Berendsen` (default), `Langevin` or `LangevinBAOAB`.
    #[serde(default)]
    pub integrator: Integrator,
    /// Temperature profile in K; sets the initial velocities (Maxwell-Boltzmann)
    /// and, with `temperature_tau`, the thermostat's target.
    #[serde(default)]
    pub temperature: Option<Temperature>,
    /// Thermostat time scale in fs (Berendsen `taut`, 1/friction for Langevin,
    /// `T_tau` for LangevinBAOAB). Absent: no thermostat (NVE).
    #[serde(default)]
    pub temperature_tau: Option<f64>,
    /// Pressure in GPa (Berendsen NPT): a number or one of wfl's sampled forms.
    #[serde(default)]
    pub pressure: Option<Pressure>,
    /// Only hydrostatic (isotropic) cell changes; must be true with Berendsen.
    #[serde(default = "default_true")]
    pub hydrostatic: bool,
    /// Barostat time scale in fs; defaults to 3 × `temperature_tau`.
    #[serde(default)]
    pub pressure_tau: Option<f64>,
    /// Compressibility in Å³/eV for Berendsen NPT; estimated by finite
    /// differences of the energy when absent.
    #[serde(default)]
    pub compressibility_au: Option<f64>,
    /// Strain of the finite-difference compressibility estimate.
    #[serde(default = "default_fd_displ")]
    pub compressibility_fd_displ: f64,
    /// Save a frame every this many steps (step 0 included).
    #[serde(default = "default_one")]
    pub traj_step_interval: u64,
    /// Keep the frames so far when a trajectory fails or is aborted (else the item fails).
    #[serde(default = "default_true")]
    pub skip_failures: bool,
    /// Prefix of the stored calculator results; other `last_op__*` keys are removed.
    #[serde(default = "default_prefix")]
    pub results_prefix: String,
    /// How `MD` is added to `config_type`: `"append"` (default), `"overwrite"` or `false`.
    #[serde(default)]
    pub update_config_type: ConfigTypeUpdate,
    /// Stop a trajectory early on a condition checked at every saved frame.
    #[serde(default)]
    pub abort_check: Option<AbortCheck>,
}

/// Largest time step (fs) accepted: no atomistic potential is integrated
/// stably with longer steps (vibrational periods are 10 to 100 fs, and
/// velocity Verlet needs several steps per period); typical steps are 0.1 to 5 fs.
pub(crate) const MAX_DT_FS: f64 = 100.0;

/// Highest temperature (K) accepted anywhere in `temperature`: kT = 86 eV,
/// far above the range of any interatomic potential (LJ in reduced units with
/// epsilon = 1 eV at T* = 10 is 1.2e5 K).
pub(crate) const MAX_TEMPERATURE_K: f64 = 1e6;

/// Most constant-temperature sub-stages a run may have (each is built up
/// front and gets a fresh integrator; wfl's ramps use a few to a few hundred).
pub(crate) const MAX_STAGES: u64 = 1_000_000;

/// wfl's `md` arguments that have no effect here.
pub(crate) const IGNORED: [Ignored; 3] = [
    wfl_args::VERBOSE,
    (
        "logger_interval",
        "there is no ASE MD logger; every saved frame has MD_time_fs, MD_step and MD_current_temperature",
    ),
    (
        "logger_kwargs",
        "there is no ASE MD logger; every saved frame has MD_time_fs, MD_step and MD_current_temperature",
    ),
];

fn default_true() -> bool {
    true
}
fn default_one() -> u64 {
    1
}
fn default_fd_displ() -> f64 {
    0.01
}
fn default_prefix() -> String {
    "last_op__md_".into()
}

/// The integrator family (wfl's `integrator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Integrator {
    /// Velocity Verlet without `temperature_tau`; ASE's NVTBerendsen, or
    /// NPTBerendsen with `pressure`.
    #[default]
    Berendsen,
    /// Velocity Verlet without `temperature_tau`; else ASE's `Langevin`.
    Langevin,
    /// ASE's `LangevinBAOAB` (NVE without `temperature_tau`).
    #[serde(rename = "LangevinBAOAB")]
    LangevinBaoab,
}

/// One temperature stage: a ramp from `T_i` to `T_f` over `traj_frac` of the
/// steps in `n_stages` constant-temperature sub-stages (constant when `T_i == T_f`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureStage {
    /// Initial temperature (K).
    #[serde(rename = "T_i")]
    pub t_i: f64,
    /// Final temperature (K).
    #[serde(rename = "T_f")]
    pub t_f: f64,
    /// Fraction of `steps` this stage takes.
    pub traj_frac: f64,
    /// Number of sub-stages of a ramp.
    #[serde(default = "default_n_stages")]
    pub n_stages: u64,
}

fn default_n_stages() -> u64 {
    10
}

/// The temperature argument in wfl's forms: a number, `[T_i, T_f]` or
/// `[T_i, T_f, n_stages]`, or a list of [`TemperatureStage`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Json", into = "Json")]
pub enum Temperature {
    /// A constant temperature (K).
    Constant(f64),
    /// A ramp over the whole run: `[T_i, T_f, n_stages]`.
    Ramp {
        /// Initial temperature (K).
        t_i: f64,
        /// Final temperature (K).
        t_f: f64,
        /// Number of sub-stages.
        n_stages: u64,
    },
    /// A list of stages.
    Stages(Vec<TemperatureStage>),
}

const TEMPERATURE_FORMS: &str =
    "expected a number, [T_i, T_f], [T_i, T_f, n_stages] or a list of {T_i, T_f, traj_frac, n_stages}";

impl TryFrom<Json> for Temperature {
    type Error = String;

    fn try_from(v: Json) -> Result<Temperature, String> {
        if let Some(t) = v.as_f64() {
            return Ok(Temperature::Constant(t));
        }
        let Some(list) = v.as_array() else {
            return Err(format!("{TEMPERATURE_FORMS}, got {v}"));
        };
        if list.first().is_some_and(Json::is_object) {
            let stages = list
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    serde_json::from_value::<TemperatureStage>(s.clone()).map_err(|e| format!("stage {i}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Temperature::Stages(stages));
        }
        let num = |i: usize| list.get(i).and_then(Json::as_f64);
        match (list.len(), num(0), num(1)) {
            (1, Some(t), _) => Ok(Temperature::Constant(t)),
            (2 | 3, Some(t_i), Some(t_f)) => {
                let n_stages = match list.get(2) {
                    None => default_n_stages(),
                    Some(n) => n.as_u64().ok_or_else(|| format!("n_stages must be a positive integer, got {n}"))?,
                };
                Ok(Temperature::Ramp { t_i, t_f, n_stages })
            }
            _ => Err(format!("{TEMPERATURE_FORMS}, got {v}")),
        }
    }
}

impl From<Temperature> for Json {
    fn from(t: Temperature) -> Json {
        match t {
            Temperature::Constant(t) => json!(t),
            Temperature::Ramp { t_i, t_f, n_stages } => json!([t_i, t_f, n_stages]),
            Temperature::Stages(s) => serde_json::to_value(s).unwrap_or(Json::Null),
        }
    }
}

impl Temperature {
    /// The profile as a list of stages (a number is one constant stage, a ramp one ramp stage).
    pub fn stages(&self) -> Vec<TemperatureStage> {
        match self {
            Temperature::Constant(t) => {
                vec![TemperatureStage { t_i: *t, t_f: *t, traj_frac: 1.0, n_stages: default_n_stages() }]
            }
            Temperature::Ramp { t_i, t_f, n_stages } => {
                vec![TemperatureStage { t_i: *t_i, t_f: *t_f, traj_frac: 1.0, n_stages: *n_stages }]
            }
            Temperature::Stages(s) => s.clone(),
        }
    }

    /// The first stage's initial temperature: the initial velocities' temperature.
    pub fn initial(&self) -> Option<f64> {
        match self {
            Temperature::Constant(t) => Some(*t),
            Temperature::Ramp { t_i, .. } => Some(*t_i),
            Temperature::Stages(s) => s.first().map(|s| s.t_i),
        }
    }
}

/// wfl's abort checks, evaluated at every saved frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AbortCheck {
    /// wfl's `AbortOnCollision`: stop when two atoms are closer than
    /// `collision_radius` (Å) at `n_failed_steps` saved frames in a row.
    Collision {
        /// Distance (Å) below which two atoms collide.
        collision_radius: f64,
        /// Consecutive failing frames that stop the run.
        #[serde(default = "default_collision_steps")]
        n_failed_steps: usize,
    },
    /// wfl's `AbortOnLowEnergy`: stop when the energy per atom drops more than
    /// `delta_E_per_atom` (eV) below that of the first saved frame.
    LowEnergy {
        /// Allowed drop in energy per atom (eV); its absolute value is used.
        #[serde(rename = "delta_E_per_atom")]
        delta_e_per_atom: f64,
    },
}

fn default_collision_steps() -> usize {
    3
}

impl AbortCheck {
    /// The check's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            AbortCheck::Collision { .. } => "collision",
            AbortCheck::LowEnergy { .. } => "low_energy",
        }
    }
}

impl MdArgs {
    /// True when a thermostat acts (`temperature_tau` given).
    pub fn thermostatted(&self) -> bool {
        self.temperature_tau.is_some()
    }

    /// Checks every argument and wfl's integrator/pressure rules.
    pub fn validate(&self) -> Result<(), ArgError> {
        self.calculator.validate().map_err(|e| ArgError::from(e).within("calculator"))?;
        Ok(self.check_values()?)
    }

    fn check_values(&self) -> Result<(), MdError> {
        if self.steps == 0 {
            return Err(MdError::arg("steps", "must be at least 1"));
        }
        positive("dt", Some(self.dt))?;
        if self.dt > MAX_DT_FS {
            return Err(MdError::arg(
                "dt",
                format!(
                    "{} fs is beyond any stable time step (at most {MAX_DT_FS} fs; typical steps are 0.1 to 5 fs)",
                    self.dt
                ),
            ));
        }
        positive("temperature_tau", self.temperature_tau)?;
        if let Some(tau) = self.temperature_tau
            && self.integrator == Integrator::Berendsen
            && tau < self.dt
        {
            // ASE's velocity scale sqrt(1 + dt/tau (T0/T - 1)) is not real for dt/tau > 1.
            return Err(MdError::arg(
                "temperature_tau",
                format!("{tau} fs is shorter than the time step dt = {} fs, which Berendsen cannot follow", self.dt),
            ));
        }
        positive("pressure_tau", self.pressure_tau)?;
        positive("compressibility_au", self.compressibility_au)?;
        if !(self.compressibility_fd_displ > 0.0 && self.compressibility_fd_displ < 1.0) {
            return Err(MdError::arg(
                "compressibility_fd_displ",
                format!("must be in (0, 1), got {}", self.compressibility_fd_displ),
            ));
        }
        if self.traj_step_interval == 0 {
            return Err(MdError::arg("traj_step_interval", "must be at least 1"));
        }
        if self.results_prefix.is_empty() {
            return Err(MdError::arg("results_prefix", "must not be empty (it would clash with ASE's own keys)"));
        }
        autopara_core::results::check_prefix(&self.results_prefix).map_err(|m| MdError::arg("results_prefix", m))?;
        self.validate_temperature()?;
        self.validate_pressure()?;
        match self.abort_check {
            Some(AbortCheck::Collision { collision_radius, n_failed_steps }) => {
                positive("abort_check.collision_radius", Some(collision_radius))?;
                if n_failed_steps == 0 {
                    return Err(MdError::arg("abort_check.n_failed_steps", "must be at least 1"));
                }
            }
            Some(AbortCheck::LowEnergy { delta_e_per_atom }) if !delta_e_per_atom.is_finite() => {
                return Err(MdError::arg("abort_check.delta_E_per_atom", "must be finite"));
            }
            _ => {}
        }
        Ok(())
    }

    fn validate_temperature(&self) -> Result<(), MdError> {
        let Some(t) = &self.temperature else {
            if self.thermostatted() {
                return Err(MdError::arg("temperature_tau", "a thermostat needs a temperature"));
            }
            return Ok(());
        };
        if !self.thermostatted() && !matches!(t, Temperature::Constant(_)) {
            return Err(MdError::arg(
                "temperature",
                "without temperature_tau (NVE) only a number (the initial temperature) is allowed",
            ));
        }
        let stages = t.stages();
        if stages.is_empty() {
            return Err(MdError::arg("temperature", "the list of stages is empty"));
        }
        for (i, s) in stages.iter().enumerate() {
            let field = |name: &str| match t {
                Temperature::Stages(_) => format!("temperature[{i}].{name}"),
                _ => "temperature".to_string(),
            };
            for (name, v) in [("T_i", s.t_i), ("T_f", s.t_f)] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(MdError::arg(field(name), format!("must be a finite temperature >= 0 K, got {v}")));
                }
                if v > MAX_TEMPERATURE_K {
                    return Err(MdError::arg(
                        field(name),
                        format!(
                            "{v} K is above any sensible temperature for atomistic MD (at most {MAX_TEMPERATURE_K:e} K)"
                        ),
                    ));
                }
            }
            if !(s.traj_frac.is_finite() && s.traj_frac >= 0.0) {
                return Err(MdError::arg(field("traj_frac"), format!("must be >= 0, got {}", s.traj_frac)));
            }
            if s.n_stages == 0 {
                return Err(MdError::arg(field("n_stages"), "must be at least 1"));
            }
        }
        let total = stages.iter().fold(0u64, |n, s| n.saturating_add(s.n_stages));
        if total > MAX_STAGES {
            let field = if matches!(t, Temperature::Stages(_)) { "temperature[].n_stages" } else { "temperature" };
            return Err(MdError::arg(field, format!("{total} sub-stages in all; at most {MAX_STAGES} are allowed")));
        }
        Ok(())
    }

    fn validate_pressure(&self) -> Result<(), MdError> {
        let Some(p) = &self.pressure else { return Ok(()) };
        p.validate("pressure").map_err(MdError::from)?;
        match self.integrator {
            Integrator::Langevin => Err(MdError::arg(
                "pressure",
                "only the Berendsen integrator supports pressure (Langevin cannot use it)",
            )),
            Integrator::LangevinBaoab => Err(MdError::arg(
                "pressure",
                "LangevinBAOAB's barostat is not implemented; use integrator Berendsen for NPT",
            )),
            Integrator::Berendsen if !self.thermostatted() => {
                Err(MdError::arg("pressure", "integrator Berendsen got pressure but no temperature_tau"))
            }
            Integrator::Berendsen if !self.hydrostatic => {
                Err(MdError::arg("hydrostatic", "integrator Berendsen supports only hydrostatic=true"))
            }
            Integrator::Berendsen => Ok(()),
        }
    }
}

/// Checks that an optional value is finite and positive.
fn positive(field: &str, v: Option<f64>) -> Result<(), MdError> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(MdError::arg(field, format!("must be positive, got {x}"))),
        _ => Ok(()),
    }
}
