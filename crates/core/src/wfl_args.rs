//! Argument forms that several ops share with wfl: the pressure of wfl's
//! `sample_pressure` (used by `md` and `optimize`), `update_config_type`
//! (wfl's `save_config_type`), and wfl arguments that have no effect here
//! ([`drop_ignored`]).
//!
//! ```
//! use autopara_core::wfl_args::{ConfigTypeUpdate, Pressure};
//! use autopara_core::{Atoms, rng::item_rng};
//!
//! let p: Pressure = serde_json::from_value(serde_json::json!(["uniform", 1.0, 2.0])).unwrap();
//! p.validate("pressure").unwrap();
//! let at = Atoms::new(vec![29], vec![[0.0; 3]]);
//! let gpa = p.sample("pressure", &at, &mut item_rng(7, "minim", 0)).unwrap();
//! assert!((1.0..2.0).contains(&gpa));
//!
//! let mut at = at;
//! let update: ConfigTypeUpdate = serde_json::from_value(serde_json::json!("append")).unwrap();
//! update.apply(&mut at, "MD");
//! assert_eq!(at.info["config_type"].as_str(), Some("MD"));
//! ```

use crate::atoms::{Atoms, Value};
use crate::results::append_config_type;
use rand::Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

/// A wfl argument that an op accepts and ignores: its name and why it has no
/// effect here (shown in the notice).
pub type Ignored = (&'static str, &'static str);

/// `verbose`, which every wfl op takes: autopara reports progress itself.
pub const VERBOSE: Ignored = ("verbose", "autopara reports progress and failures itself");

/// Removes the wfl arguments in `ignored` from an op's JSON arguments, so that
/// a wfl call translates line by line, and prints a one-line notice for each
/// on standard error (once per process, op and argument). The op then parses
/// and keys the rest: giving or leaving out an ignored argument changes
/// neither the outputs nor the cache key.
///
/// ```
/// use autopara_core::wfl_args::{VERBOSE, drop_ignored};
/// let mut args = serde_json::json!({"steps": 10, "verbose": true});
/// drop_ignored("md", &mut args, &[VERBOSE]);
/// assert_eq!(args, serde_json::json!({"steps": 10}));
/// ```
pub fn drop_ignored(op: &str, args: &mut Json, ignored: &[Ignored]) {
    static SHOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Some(obj) = args.as_object_mut() else { return };
    for (name, why) in ignored {
        if obj.remove(*name).is_none() {
            continue;
        }
        let id = format!("{op}.{name}");
        let mut shown = SHOWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !shown.contains(&id) {
            eprintln!("autopara: {op}: ignoring wfl's `{name}`: {why}");
            shown.push(id);
        }
    }
}

/// Largest pressure magnitude (GPa) a spec may hold: 100 TPa, beyond the
/// centre of Jupiter and any static or shock experiment (LJ in reduced units
/// with epsilon = 1 eV and sigma = 1 Å has 160 GPa per unit of P*).
pub const MAX_PRESSURE_GPA: f64 = 1e5;

/// Draws of `normal_positive` before giving up (wfl's limit).
const NORMAL_POSITIVE_TRIES: usize = 1000;

/// Why a pressure spec is refused or cannot be resolved for a configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PressureError {
    /// A spec's value is out of range (found before any work); `field` names
    /// the argument (`pressure`).
    #[error("{field}: {message}")]
    InvalidSpec {
        /// The argument holding the spec.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No pressure for this configuration: `info[key]` of `["info", key]` is
    /// missing or unusable, or `normal_positive` drew only negative values.
    #[error("{field}: {message}")]
    Config {
        /// The info key, or the argument holding a sampled spec.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// A pressure (GPa) in wfl's `sample_pressure` forms; JSON `1.5`,
/// `["info", key]`, `["exponential", scale]`, `["normal_positive", mean, sigma]`
/// or `["uniform", lower, upper]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Json", into = "Json")]
pub enum Pressure {
    /// A fixed pressure.
    Value(f64),
    /// `["info", key]`: the pressure (a number, or a JSON string of another form) in `info[key]`.
    Info(String),
    /// `["exponential", scale]`: scale × an Exp(1) draw.
    Exponential(f64),
    /// `["normal_positive", mean, sigma]`: a normal draw, redrawn while negative (at most 1000 tries).
    NormalPositive {
        /// Mean (GPa).
        mean: f64,
        /// Standard deviation (GPa).
        sigma: f64,
    },
    /// `["uniform", lower, upper]`.
    Uniform {
        /// Lower bound (GPa).
        lower: f64,
        /// Upper bound (GPa).
        upper: f64,
    },
}

const PRESSURE_FORMS: &str = "expected a number, [\"info\", key], [\"exponential\", scale], \
     [\"normal_positive\", mean, sigma] or [\"uniform\", lower, upper]";

impl TryFrom<Json> for Pressure {
    type Error = String;

    fn try_from(v: Json) -> Result<Pressure, String> {
        if let Some(p) = v.as_f64() {
            return Ok(Pressure::Value(p));
        }
        let bad = || format!("{PRESSURE_FORMS}, got {v}");
        let list = v.as_array().ok_or_else(bad)?;
        let num = |i: usize| list.get(i).and_then(Json::as_f64).ok_or_else(bad);
        let kind = list.first().and_then(Json::as_str).ok_or_else(bad)?;
        match (kind, list.len()) {
            ("info", 2) => Ok(Pressure::Info(list.get(1).and_then(Json::as_str).ok_or_else(bad)?.to_string())),
            ("exponential", 2) => Ok(Pressure::Exponential(num(1)?)),
            ("normal_positive", 3) => Ok(Pressure::NormalPositive { mean: num(1)?, sigma: num(2)? }),
            ("uniform", 3) => Ok(Pressure::Uniform { lower: num(1)?, upper: num(2)? }),
            _ => Err(bad()),
        }
    }
}

impl From<Pressure> for Json {
    fn from(p: Pressure) -> Json {
        match p {
            Pressure::Value(p) => json!(p),
            Pressure::Info(k) => json!(["info", k]),
            Pressure::Exponential(s) => json!(["exponential", s]),
            Pressure::NormalPositive { mean, sigma } => json!(["normal_positive", mean, sigma]),
            Pressure::Uniform { lower, upper } => json!(["uniform", lower, upper]),
        }
    }
}

impl Pressure {
    /// Checks the values of a spec (finite numbers, a usable normal, ordered
    /// uniform bounds); `field` names it in errors.
    pub fn validate(&self, field: &str) -> Result<(), PressureError> {
        let invalid = |message: String| PressureError::InvalidSpec { field: field.to_string(), message };
        let finite = |x: f64, what: &str| {
            if !x.is_finite() {
                Err(invalid(format!("{what} must be finite, got {x}")))
            } else if x.abs() > MAX_PRESSURE_GPA {
                Err(invalid(format!(
                    "{what} {x} GPa is beyond any sensible pressure (at most {MAX_PRESSURE_GPA:e} GPa)"
                )))
            } else {
                Ok(())
            }
        };
        match *self {
            Pressure::Value(p) => finite(p, "pressure"),
            Pressure::Info(_) => Ok(()),
            Pressure::Exponential(s) => finite(s, "scale"),
            Pressure::NormalPositive { mean, sigma } => {
                finite(mean, "mean")?;
                finite(sigma, "sigma")?;
                if sigma > 0.0 || mean > 0.0 {
                    Ok(())
                } else {
                    Err(invalid("normal_positive needs sigma > 0 or mean > 0".into()))
                }
            }
            Pressure::Uniform { lower, upper } => {
                finite(lower, "lower")?;
                finite(upper, "upper")?;
                if lower <= upper {
                    Ok(())
                } else {
                    Err(invalid(format!("uniform needs lower <= upper, got {lower} > {upper}")))
                }
            }
        }
    }

    /// The pressure (GPa) for one configuration, as wfl's `sample_pressure`:
    /// a number as is, `["info", key]` resolved from `atoms.info[key]` (a
    /// number, or a JSON string of any other form, validated and sampled in
    /// turn), the random forms drawn from `rng` (one draw, or several for
    /// `normal_positive`). `field` names the spec in errors.
    pub fn sample<R: Rng + ?Sized>(&self, field: &str, atoms: &Atoms, rng: &mut R) -> Result<f64, PressureError> {
        match self {
            Pressure::Value(p) => Ok(*p),
            Pressure::Info(key) => {
                let bad = |what: String| PressureError::Config {
                    field: key.clone(),
                    message: format!("pressure from info: {what}"),
                };
                let spec = match atoms.info.get(key) {
                    None => return Err(bad("missing".into())),
                    Some(Value::Str(s)) => {
                        let json: Json = serde_json::from_str(s).map_err(|e| bad(e.to_string()))?;
                        Pressure::try_from(json).map_err(bad)?
                    }
                    Some(v) => Pressure::Value(v.as_f64().ok_or_else(|| bad(format!("not a number: {v:?}")))?),
                };
                if matches!(spec, Pressure::Info(_)) {
                    return Err(bad("refers to another info key".into()));
                }
                spec.validate(key).map_err(|e| match e {
                    PressureError::InvalidSpec { message, .. } => bad(message),
                    other => other,
                })?;
                spec.sample(key, atoms, rng)
            }
            Pressure::Exponential(scale) => {
                let e: f64 = Exp1.sample(rng);
                Ok(scale * e)
            }
            Pressure::NormalPositive { mean, sigma } => {
                for _ in 0..NORMAL_POSITIVE_TRIES {
                    let n: f64 = StandardNormal.sample(rng);
                    let p = mean + sigma * n;
                    if p >= 0.0 {
                        return Ok(p);
                    }
                }
                Err(PressureError::Config {
                    field: field.to_string(),
                    message: format!(
                        "no positive normal_positive draw in {NORMAL_POSITIVE_TRIES} tries (mean {mean}, sigma {sigma})"
                    ),
                })
            }
            Pressure::Uniform { lower, upper } => Ok(lower + (upper - lower) * rng.random::<f64>()),
        }
    }
}

/// wfl's `update_config_type`: how an op's label is added to
/// `info["config_type"]`. JSON `"append"` (default), `"overwrite"`, or
/// `false` (`null` too, as wfl treats any false value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "Json", into = "Json")]
pub enum ConfigTypeUpdate {
    /// `config_type` becomes `<old>:<label>` (or `<label>` when absent).
    #[default]
    Append,
    /// `config_type` becomes `<label>`.
    Overwrite,
    /// `config_type` is left alone.
    Keep,
}

impl TryFrom<Json> for ConfigTypeUpdate {
    type Error = String;

    fn try_from(v: Json) -> Result<ConfigTypeUpdate, String> {
        match &v {
            Json::String(s) if s == "append" => Ok(ConfigTypeUpdate::Append),
            Json::String(s) if s == "overwrite" => Ok(ConfigTypeUpdate::Overwrite),
            Json::Bool(false) | Json::Null => Ok(ConfigTypeUpdate::Keep),
            _ => Err(format!("expected \"append\", \"overwrite\" or false, got {v}")),
        }
    }
}

impl From<ConfigTypeUpdate> for Json {
    fn from(u: ConfigTypeUpdate) -> Json {
        match u {
            ConfigTypeUpdate::Append => json!("append"),
            ConfigTypeUpdate::Overwrite => json!("overwrite"),
            ConfigTypeUpdate::Keep => json!(false),
        }
    }
}

impl ConfigTypeUpdate {
    /// Adds `label` to `atoms.info["config_type"]` as wfl's `save_config_type`.
    pub fn apply(self, atoms: &mut Atoms, label: &str) {
        match self {
            ConfigTypeUpdate::Append => append_config_type(atoms, label),
            ConfigTypeUpdate::Overwrite => {
                atoms.info.insert("config_type".into(), Value::Str(label.to_string()));
            }
            ConfigTypeUpdate::Keep => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::item_rng;

    fn parse(v: Json) -> Result<Pressure, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    fn atoms() -> Atoms {
        Atoms::new(vec![29], vec![[0.0; 3]])
    }

    /// Mean, min and max of `n` draws, each from its own item RNG (as items get them).
    fn draws(spec: &Pressure, seed: u64, n: u64) -> (f64, f64, f64) {
        let at = atoms();
        let xs: Vec<f64> =
            (0..n).map(|i| spec.sample("pressure", &at, &mut item_rng(seed, "test", i)).unwrap()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (mean, min, max)
    }

    #[test]
    fn forms_round_trip_through_json() {
        for v in [
            json!(1.5),
            json!(["info", "p"]),
            json!(["exponential", 2.0]),
            json!(["normal_positive", 1.0, 0.5]),
            json!(["uniform", 1.0, 3.0]),
        ] {
            let p = parse(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&p).unwrap(), v);
        }
        assert_eq!(parse(json!(2)).unwrap(), Pressure::Value(2.0));
    }

    #[test]
    fn malformed_forms_are_refused() {
        for v in [
            json!("1.0"),
            json!(["gaussian", 1.0]),
            json!(["exponential"]),
            json!(["exponential", 1.0, 2.0]),
            json!(["uniform", 1.0]),
            json!(["uniform", "a", 2.0]),
            json!(["info", 3]),
            json!([]),
        ] {
            let err = parse(v.clone()).unwrap_err();
            assert!(err.contains("expected a number, [\"info\", key]"), "{v}: {err}");
        }
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (Pressure::Value(f64::NAN), "pressure must be finite"),
            (Pressure::Exponential(f64::INFINITY), "scale must be finite"),
            (Pressure::NormalPositive { mean: -1.0, sigma: 0.0 }, "needs sigma > 0 or mean > 0"),
            (Pressure::Uniform { lower: 2.0, upper: 1.0 }, "lower <= upper"),
        ];
        for (p, what) in cases {
            let err = p.validate("pressure").unwrap_err();
            assert!(matches!(&err, PressureError::InvalidSpec { field, .. } if field == "pressure"), "{err:?}");
            assert!(err.to_string().starts_with("pressure: ") && err.to_string().contains(what), "{err}");
        }
        Pressure::Info("p".into()).validate("pressure").unwrap();
    }

    #[test]
    fn sampled_forms_follow_their_distributions() {
        let n = 4000;
        // Exp(1) × 2: mean 2 (standard error 0.03), all positive.
        let (mean, min, _) = draws(&Pressure::Exponential(2.0), 1, n);
        assert!((mean - 2.0).abs() < 0.15 && min > 0.0, "exponential mean {mean}, min {min}");
        // U(1, 3): mean 2 (standard error 0.01), inside the bounds, spanning them.
        let (mean, min, max) = draws(&Pressure::Uniform { lower: 1.0, upper: 3.0 }, 2, n);
        assert!((mean - 2.0).abs() < 0.05, "uniform mean {mean}");
        assert!(min >= 1.0 && max < 3.0 && min < 1.05 && max > 2.95, "uniform range {min}..{max}");
        // N(5, 0.5) is practically never negative: mean 5 (standard error 0.008).
        let (mean, min, _) = draws(&Pressure::NormalPositive { mean: 5.0, sigma: 0.5 }, 3, n);
        assert!((mean - 5.0).abs() < 0.05 && min > 2.0, "normal mean {mean}, min {min}");
        // N(0, 1) redrawn while negative: the half-normal, mean sqrt(2/pi).
        let (mean, min, _) = draws(&Pressure::NormalPositive { mean: 0.0, sigma: 1.0 }, 4, n);
        let half_normal = (2.0 / std::f64::consts::PI).sqrt();
        assert!((mean - half_normal).abs() < 0.05 && min >= 0.0, "half-normal mean {mean}, min {min}");
    }

    #[test]
    fn draws_are_deterministic_per_seed() {
        let p = Pressure::Uniform { lower: 0.0, upper: 10.0 };
        let at = atoms();
        let draw = |seed, index| p.sample("pressure", &at, &mut item_rng(seed, "test", index)).unwrap();
        assert_eq!(draw(1, 0), draw(1, 0));
        assert_ne!(draw(1, 0), draw(1, 1));
        assert_ne!(draw(1, 0), draw(2, 0));
        assert_eq!(Pressure::Value(1.25).sample("pressure", &at, &mut item_rng(1, "test", 0)), Ok(1.25));
    }

    #[test]
    fn info_form_is_resolved_per_config() {
        let spec = Pressure::Info("target_P".into());
        let mut rng = item_rng(0, "test", 0);
        let mut a = atoms();
        a.info.insert("target_P".into(), Value::Float(3.5));
        let mut b = atoms();
        b.info.insert("target_P".into(), Value::Int(7));
        let mut c = atoms();
        c.info.insert("target_P".into(), Value::Str("[\"uniform\", 10.0, 11.0]".into()));
        assert_eq!(spec.sample("pressure", &a, &mut rng), Ok(3.5));
        assert_eq!(spec.sample("pressure", &b, &mut rng), Ok(7.0));
        let p = spec.sample("pressure", &c, &mut rng).unwrap();
        assert!((10.0..11.0).contains(&p), "{p}");

        let mut error = |value: Option<Value>| {
            let mut at = atoms();
            if let Some(v) = value {
                at.info.insert("target_P".into(), v);
            }
            match spec.sample("pressure", &at, &mut rng) {
                Err(PressureError::Config { field, message }) => {
                    assert_eq!(field, "target_P");
                    message.strip_prefix("pressure from info: ").unwrap_or_else(|| panic!("{message}")).to_string()
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(error(None), "missing");
        assert!(error(Some(Value::Bool(true))).starts_with("not a number"));
        assert!(error(Some(Value::Str("nonsense".into()))).contains("expected"));
        assert!(error(Some(Value::Str("[\"gaussian\", 1]".into()))).contains("expected a number"));
        assert_eq!(error(Some(Value::Str("[\"info\", \"target_P\"]".into()))), "refers to another info key");
        assert!(error(Some(Value::Str("[\"uniform\", 2, 1]".into()))).contains("lower <= upper"));
    }

    #[test]
    fn hopeless_normal_positive_fails_naming_the_field() {
        let p = Pressure::NormalPositive { mean: -100.0, sigma: 1.0 };
        let err = p.sample("pressure", &atoms(), &mut item_rng(0, "test", 0)).unwrap_err();
        assert!(matches!(&err, PressureError::Config { field, .. } if field == "pressure"), "{err:?}");
        assert!(err.to_string().starts_with("pressure: no positive normal_positive draw"), "{err}");
    }

    #[test]
    fn config_type_updates_as_wfl() {
        let parse = |v: Json| serde_json::from_value::<ConfigTypeUpdate>(v).map_err(|e| e.to_string());
        assert_eq!(parse(json!("append")), Ok(ConfigTypeUpdate::Append));
        assert_eq!(parse(json!("overwrite")), Ok(ConfigTypeUpdate::Overwrite));
        assert_eq!(parse(json!(false)), Ok(ConfigTypeUpdate::Keep));
        assert_eq!(parse(json!(null)), Ok(ConfigTypeUpdate::Keep));
        for bad in [json!(true), json!("prepend"), json!(1)] {
            assert!(parse(bad.clone()).unwrap_err().contains("expected \"append\", \"overwrite\" or false"), "{bad}");
        }
        let mut at = atoms();
        at.info.insert("config_type".into(), Value::Str("bulk".into()));
        ConfigTypeUpdate::Append.apply(&mut at, "MD");
        assert_eq!(at.info["config_type"].as_str(), Some("bulk:MD"));
        ConfigTypeUpdate::Keep.apply(&mut at, "MD");
        assert_eq!(at.info["config_type"].as_str(), Some("bulk:MD"));
        ConfigTypeUpdate::Overwrite.apply(&mut at, "optimize_initial");
        assert_eq!(at.info["config_type"].as_str(), Some("optimize_initial"));
        assert_eq!(serde_json::to_value(ConfigTypeUpdate::Keep).unwrap(), json!(false));
    }
}
