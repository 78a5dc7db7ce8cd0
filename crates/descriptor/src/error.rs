//! The descriptor crate's error type.

/// Why a descriptor could not be built or computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DescriptorError {
    /// A spec value out of range (`r_cut <= 0`, `n_max = 0`, an unsupported `rbf`).
    #[error("{descriptor}: {field}: {message}")]
    InvalidSpec {
        /// The descriptor type (`soap`, `acsf`).
        descriptor: &'static str,
        /// The offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A configuration holds an element the spec's `species` does not list.
    #[error("{descriptor}: the configuration contains {symbol} (Z={z}), which is not in its species [{species}]")]
    UnknownSpecies {
        /// The descriptor type.
        descriptor: &'static str,
        /// The unlisted atomic number.
        z: u8,
        /// Its chemical symbol.
        symbol: &'static str,
        /// The listed species, comma-separated symbols.
        species: String,
    },
    /// The configuration's geometry cannot be used (degenerate periodic cell, non-finite positions).
    #[error("{descriptor}: {message}")]
    Geometry {
        /// The descriptor type.
        descriptor: &'static str,
        /// What is wrong.
        message: String,
    },
}
