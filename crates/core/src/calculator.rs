//! The calculator seam: the [`Calculator`] trait, serializable constructor
//! specs ([`CalculatorSpec`], tagged by `"type"`), and a listable registry.
//!
//! A spec is plain data (`{"type": "lennard_jones", "sigma": 3.4}`), so it
//! travels in op arguments, pipeline files, MPI messages and queued job files,
//! and hashes into cache keys. Workers build the calculator from the spec once
//! and reuse it ([`crate::WorkerContext::calculator`]).
//!
//! Implementations live in op-side crates (`autopara-calculators`); a crate adds
//! one by implementing [`CalculatorSpec`] with `#[typetag::serde(name = "...")]`
//! and submitting a [`CalculatorInfo`] to the registry.

use crate::args::ArgError;
use crate::atoms::Atoms;
use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::fmt::Debug;

/// Which properties a caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Properties {
    /// Total energy (eV).
    pub energy: bool,
    /// Forces (eV/Å).
    pub forces: bool,
    /// Stress, Voigt order xx yy zz yz xz xy (eV/Å³), as ASE.
    pub stress: bool,
    /// Per-atom energies (eV).
    pub energies: bool,
}

impl Properties {
    /// Energy and forces.
    pub const ENERGY_FORCES: Properties = Properties { energy: true, forces: true, stress: false, energies: false };
    /// Energy, forces and stress.
    pub const ALL_BUT_ENERGIES: Properties = Properties { energy: true, forces: true, stress: true, energies: false };
    /// Everything.
    pub const ALL: Properties = Properties { energy: true, forces: true, stress: true, energies: true };
}

/// Results of one calculation. Buffers are reused between calls so hot loops
/// (md, minim) do not allocate per step; `computed` says which fields are valid.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CalcResults {
    /// Which of the fields below hold results of the last call.
    pub computed: Properties,
    /// Total energy (eV).
    pub energy: f64,
    /// Free energy (eV) when the calculator reports one that may differ from
    /// `energy` (electronic smearing); `None` means the same as `energy`.
    /// Valid with `computed.energy`.
    pub free_energy: Option<f64>,
    /// Forces (eV/Å), one per atom.
    pub forces: Vec<[f64; 3]>,
    /// Stress in Voigt order xx yy zz yz xz xy (eV/Å³), ASE's sign convention.
    pub stress: [f64; 6],
    /// Per-atom energies (eV).
    pub energies: Vec<f64>,
}

/// Why a calculation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    /// The calculator has no parameters for an element.
    #[error("{calculator} has no parameters for element {symbol} (Z={z})")]
    UnsupportedElement {
        /// Calculator name.
        calculator: String,
        /// Atomic number.
        z: u8,
        /// Its symbol.
        symbol: String,
    },
    /// Two atoms at the same position (r = 0).
    #[error("atoms {i} and {j} overlap (distance {distance:.3e} A)")]
    Overlap {
        /// First atom.
        i: usize,
        /// Second atom.
        j: usize,
        /// Their distance.
        distance: f64,
    },
    /// A result that is NaN or infinite.
    #[error("{calculator} produced a non-finite {property}")]
    NonFinite {
        /// Calculator name.
        calculator: String,
        /// Which property.
        property: &'static str,
    },
    /// A property the calculator cannot compute for this configuration.
    #[error("{calculator} cannot compute {property}: {reason}")]
    Unsupported {
        /// Calculator name.
        calculator: String,
        /// Which property.
        property: &'static str,
        /// Why.
        reason: String,
    },
    /// Invalid spec values (reported before any work when possible).
    #[error("invalid calculator spec: {field}: {message}")]
    InvalidSpec {
        /// Offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The calculator could not be constructed (a Python constructor that
    /// cannot be imported or raises). It would fail every configuration
    /// alike, so an op's own calculator failing this way stops the run with
    /// one error ([`crate::ItemFailure::fatal`]) instead of failing each item.
    #[error("{0}")]
    Construction(String),
    /// Anything else (external programs, I/O).
    #[error("{0}")]
    Other(String),
}

/// A calculator: energy, forces, stress and per-atom energies of an [`Atoms`].
///
/// `&mut self` lets implementations keep neighbour lists and buffers between calls.
pub trait Calculator: Send {
    /// ASE-style class name used for the `_auto_` output prefix (`EMT`, `LennardJones`).
    fn name(&self) -> &str;

    /// Computes the requested properties into `out` (reusing its buffers) and sets
    /// `out.computed`. A calculator may compute more than requested.
    fn calculate(&mut self, atoms: &Atoms, request: Properties, out: &mut CalcResults) -> Result<(), CalcError>;
}

/// A serializable calculator constructor, tagged by `"type"` in JSON/TOML.
#[typetag::serde(tag = "type")]
pub trait CalculatorSpec: Debug + Send + Sync {
    /// Checks the spec's values (cutoffs positive, ...), naming the field on error.
    fn validate(&self) -> Result<(), CalcError> {
        Ok(())
    }

    /// Builds the calculator. Called once per worker and spec.
    fn build(&self) -> Result<Box<dyn Calculator>, CalcError>;

    /// The program this calculator runs, for calculators that run one (a
    /// shell command, a Python constructor and interpreter); `None` for those
    /// that only compute. A spec read from an input file (a per-configuration
    /// override) may only name the program of the run's own calculator:
    /// nothing read from input files is executed.
    fn program(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Canonical JSON of a spec (keys sorted, defaults filled): the calculator's
/// identity for caches and per-worker reuse.
pub fn spec_to_json(spec: &dyn CalculatorSpec) -> serde_json::Value {
    // Serializing a typetag trait object into serde_json::Value cannot fail for
    // plain-data specs; fall back to the Debug text so identity is never lost.
    serde_json::to_value(spec).unwrap_or_else(|e| serde_json::Value::String(format!("{spec:?} ({e})")))
}

/// Replaces a `"type"` given as one of a registered calculator's aliases by
/// its tag (see [`CalculatorInfo::aliases`]).
fn resolve_alias(spec: &mut Json) {
    let Some(ty) = spec.get_mut("type") else { return };
    let Some(name) = ty.as_str() else { return };
    if let Some(info) = inventory::iter::<CalculatorInfo>.into_iter().find(|c| c.aliases.contains(&name)) {
        *ty = Json::String(info.name.to_string());
    }
}

/// Parses and validates a calculator spec, naming the offending field
/// (`sigma`, `type`) relative to the spec.
/// A `"type"` given as one of a registered calculator's aliases (ASE's class
/// name: `EMT`, `LennardJones`, `MorsePotential`) is read as its tag, so both
/// spellings parse to the same spec (and the same canonical JSON).
pub fn spec_from_json(mut value: Json) -> Result<Box<dyn CalculatorSpec>, ArgError> {
    resolve_alias(&mut value);
    // typetag reads an internally tagged value without buffering (and so with
    // field paths) only when the tag comes first; JSON objects are sorted.
    let spec: Box<dyn CalculatorSpec> = match value {
        Json::Object(map) => {
            let (tag, rest): (Vec<_>, Vec<_>) = map.into_iter().partition(|(k, _)| k == "type");
            let entries = tag.into_iter().chain(rest);
            let de = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(entries);
            crate::args::parse_from(de)?
        }
        other => crate::args::parse(other)?,
    };
    spec.validate()?;
    Ok(spec)
}

/// A `deserialize_with` function for calculator fields
/// (`#[serde(deserialize_with = "autopara_core::calculator::deserialize")]`): parses and validates
/// the spec, so errors read `calculator.sigma: ...` without re-parsing.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<dyn CalculatorSpec>, D::Error> {
    crate::args::nested(d, spec_from_json)
}

impl From<CalcError> for ArgError {
    /// A calculator spec's validation error, naming its field.
    fn from(e: CalcError) -> ArgError {
        match e {
            CalcError::InvalidSpec { field, message } => ArgError::new(field, message),
            other => ArgError::whole(other.to_string()),
        }
    }
}

/// A registered calculator type, for `autopara calculators` and error messages
/// (typetag itself cannot list its tags).
#[derive(Debug)]
pub struct CalculatorInfo {
    /// The `"type"` tag.
    pub name: &'static str,
    /// Other names accepted as the `"type"` (ASE's class name, so that a wfl
    /// script's `EMT()` translates as `{"type": "EMT"}`).
    pub aliases: &'static [&'static str],
    /// One line on what it is.
    pub summary: &'static str,
    /// Its fields: `(name, "type, default: meaning")`.
    pub fields: &'static [(&'static str, &'static str)],
}

inventory::collect!(CalculatorInfo);

/// All registered calculator types, sorted by name.
pub fn registered_calculators() -> Vec<&'static CalculatorInfo> {
    let mut v: Vec<_> = inventory::iter::<CalculatorInfo>.into_iter().collect();
    v.sort_by_key(|c| c.name);
    v
}
