//! autopara calculators: Lennard-Jones, Morse, EMT, external-command
//! calculators and any ASE calculator in a persistent Python worker
//! ([`ase`]), registered by name with serde specs, and the `calculate` op
//! (single points, wfl's `generic.calculate`).
//!
//! Calculators are chosen by a JSON/TOML spec tagged with `"type"`:
//!
//! ```
//! use autopara_core::CalculatorSpec;
//! use autopara_calculators as _; // registers the calculators
//! let spec: Box<dyn CalculatorSpec> =
//!     serde_json::from_str(r#"{"type": "lennard_jones", "sigma": 3.4, "epsilon": 0.0104}"#).unwrap();
//! assert!(spec.validate().is_ok());
//! ```

pub mod ase;
pub mod calculate;
pub mod emt;
pub mod external;
pub mod lennard_jones;
pub mod morse;
mod pair;

pub use ase::{Ase, AseCalculator, THREAD_VARIABLES};
pub use calculate::{Calculate, CalculateArgs};
pub use emt::Emt;
pub use external::{External, KeepFiles};
pub use lennard_jones::LennardJones;
pub use morse::Morse;

use autopara_core::{CalcError, CalcResults};
use autopara_geometry::neighbours::NeighbourError;

/// A neighbour-list error as a calculator error: a bad cutoff is the spec's
/// `cutoff` field, anything else is the configuration's.
pub(crate) fn neighbour_error(e: NeighbourError) -> CalcError {
    match e {
        NeighbourError::InvalidCutoff { cutoff } => {
            invalid("cutoff", format!("must be positive and finite, got {cutoff}"))
        }
        other => CalcError::Other(format!("neighbour list: {other}")),
    }
}

/// An [`CalcError::InvalidSpec`] for `field`.
pub(crate) fn invalid(field: &str, message: String) -> CalcError {
    CalcError::InvalidSpec { field: field.to_string(), message }
}

/// Checks that a length is positive and finite.
pub(crate) fn positive(field: &str, x: f64) -> Result<(), CalcError> {
    if x.is_finite() && x > 0.0 { Ok(()) } else { Err(invalid(field, format!("must be positive and finite, got {x}"))) }
}

/// Rejects results holding NaN or infinities, naming the property.
pub(crate) fn check_finite(calculator: &str, out: &CalcResults) -> Result<(), CalcError> {
    let bad = |property: &'static str| CalcError::NonFinite { calculator: calculator.to_string(), property };
    let c = out.computed;
    if c.energy && !out.energy.is_finite() {
        return Err(bad("energy"));
    }
    if c.forces && !out.forces.iter().flatten().all(|x| x.is_finite()) {
        return Err(bad("forces"));
    }
    if c.stress && !out.stress.iter().all(|x| x.is_finite()) {
        return Err(bad("stress"));
    }
    if c.energies && !out.energies.iter().all(|x| x.is_finite()) {
        return Err(bad("energies"));
    }
    Ok(())
}
