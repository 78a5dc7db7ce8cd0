//! The md crate's error type.

use autopara_core::wfl_args::PressureError;
use autopara_core::{CalcError, ItemFailure};

/// Errors of the `md` op: bad arguments (found before any work), bad per-config
/// data, and failures of one trajectory.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MdError {
    /// An argument that does not parse or is out of range; `field` is its path.
    #[error("md: {field}: {message}")]
    InvalidArgument {
        /// The argument path (`temperature`, `temperature[1].traj_frac`, `calculator.sigma`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A configuration whose data the op cannot use (a `masses` or `momenta`
    /// column of the wrong shape, a per-config override that does not parse).
    #[error("{key}: {message}")]
    InvalidConfig {
        /// The info or arrays key (or `numbers` for an empty configuration).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The calculator failed.
    #[error("calculator failed at MD step {step}: {source}")]
    Calculator {
        /// The MD step (0 is the initial configuration).
        step: u64,
        /// The calculator's error.
        source: CalcError,
    },
    /// Positions, momenta or energies became NaN or infinite.
    #[error("trajectory blew up at MD step {step}: non-finite {quantity}")]
    BlowUp {
        /// The first step found non-finite.
        step: u64,
        /// Which quantity.
        quantity: &'static str,
    },
    /// The atoms' kinetic temperature left any sensible range (the
    /// integration has blown up, though every number is still finite).
    #[error(
        "trajectory blew up at MD step {step}: kinetic temperature {temperature:.3e} K is above any sensible range (at most {limit:e} K)"
    )]
    OutOfRange {
        /// The first step found out of range.
        step: u64,
        /// The instantaneous temperature (K).
        temperature: f64,
        /// The bound (K).
        limit: f64,
    },
    /// The saved frames would take more memory than one trajectory may.
    #[error(
        "the trajectory would keep {frames} frames of {atoms} atoms in memory (about {:.1} GB, more than {:.1} GB); save fewer frames (a larger traj_step_interval) or run fewer steps",
        *bytes as f64 / 1e9,
        *limit as f64 / 1e9
    )]
    TooManyFrames {
        /// Frames the trajectory would save.
        frames: u64,
        /// Atoms per frame.
        atoms: usize,
        /// Their estimated size (bytes).
        bytes: u64,
        /// The bound (bytes).
        limit: u64,
    },
    /// An abort check stopped the trajectory (and `skip_failures` is false).
    #[error("MD stopped by abort check {check} at step {step}")]
    Aborted {
        /// Which check (`collision`, `low_energy`).
        check: &'static str,
        /// The sampled step at which it fired.
        step: u64,
    },
}

impl MdError {
    /// An [`MdError::InvalidArgument`].
    pub(crate) fn arg(field: impl Into<String>, message: impl Into<String>) -> MdError {
        MdError::InvalidArgument { field: field.into(), message: message.into() }
    }

    /// An [`MdError::InvalidConfig`].
    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> MdError {
        MdError::InvalidConfig { key: key.into(), message: message.into() }
    }
}

impl From<MdError> for ItemFailure {
    fn from(e: MdError) -> ItemFailure {
        ItemFailure::new(e.to_string())
    }
}

/// Argument errors found by [`MdArgs::validate`](crate::MdArgs::validate), naming the field.
impl From<MdError> for autopara_core::ArgError {
    fn from(e: MdError) -> autopara_core::ArgError {
        match e {
            MdError::InvalidArgument { field, message } => autopara_core::ArgError::new(field, message),
            other => autopara_core::ArgError::whole(other.to_string()),
        }
    }
}

impl From<PressureError> for MdError {
    fn from(e: PressureError) -> MdError {
        match e {
            PressureError::InvalidSpec { field, message } => MdError::arg(field, message),
            PressureError::Config { field, message } => MdError::config(field, message),
        }
    }
}
