//! Errors of the `minim` op.

use autopara_core::wfl_args::PressureError;
use autopara_core::{ArgError, CalcError};

/// Why arguments are refused, or why one optimization could not go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MinimError {
    /// An argument with a bad value.
    #[error("{field}: {message}")]
    InvalidArg {
        /// The argument's name.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A configuration the arguments cannot apply to (pressure without a cell, ...).
    #[error("{field}: {message}")]
    InvalidConfig {
        /// The argument that does not fit this configuration.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// A per-atom column with the wrong shape or type.
    #[error("arrays[{key}]: {message}")]
    BadColumn {
        /// The column's key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The calculator failed during the optimization.
    #[error("calculator failed after {evaluations} evaluations: {source}")]
    Calculator {
        /// Evaluations done before the failure.
        evaluations: usize,
        /// The calculator's error.
        #[source]
        source: CalcError,
    },
    /// The line search found no acceptable step, even after resetting the Hessian.
    #[error("line search failed after a reset of the Hessian: {reason}")]
    LineSearch {
        /// Why the last attempt failed.
        reason: String,
    },
    /// The volume per atom fell below `info["RSS_min_vol_per_atom"]` (wfl's guard).
    #[error("volume per atom {volume:.4} A^3 under minimum {minimum}")]
    VolumeTooSmall {
        /// Volume per atom now.
        volume: f64,
        /// The minimum from `info`.
        minimum: f64,
    },
    /// A cell that cannot be inverted or a matrix function that did not converge.
    #[error("cell degrees of freedom: {0}")]
    Cell(String),
    /// The preconditioner could not be built.
    #[error("preconditioner: {0}")]
    Precon(String),
}

/// A bad `pressure` spec is an argument error; a pressure that cannot be
/// resolved for one configuration (its `["info", key]`, a hopeless
/// `normal_positive`) is that configuration's error. Both name `pressure`.
impl From<PressureError> for MinimError {
    fn from(e: PressureError) -> MinimError {
        match e {
            PressureError::InvalidSpec { message, .. } => MinimError::InvalidArg { field: "pressure", message },
            PressureError::Config { field, message } if field != "pressure" => {
                MinimError::InvalidConfig { field: "pressure", message: format!("{field}: {message}") }
            }
            PressureError::Config { message, .. } => MinimError::InvalidConfig { field: "pressure", message },
        }
    }
}

/// Argument errors found by [`MinimArgs::validate`](crate::MinimArgs::validate), naming the field.
impl From<MinimError> for ArgError {
    fn from(e: MinimError) -> ArgError {
        match e {
            MinimError::InvalidArg { field, message } | MinimError::InvalidConfig { field, message } => {
                ArgError::new(field, message)
            }
            other => ArgError::whole(other.to_string()),
        }
    }
}
