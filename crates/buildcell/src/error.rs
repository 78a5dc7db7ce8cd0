//! Errors of the buildcell crate.

/// A problem in the buildcell input text, found before any structure is built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A line that breaks the syntax or the meaning of its key.
    #[error("buildcell input line {line}: `{text}`: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// The offending line, verbatim.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// A required key that never appears.
    #[error("buildcell input: missing `#{key}=` line")]
    Missing {
        /// The key (`TARGVOL`, `SPECIES`).
        key: &'static str,
    },
    /// Keys that are each valid but cannot be satisfied together.
    #[error("buildcell input: {message}\n  line {line_a}: `{text_a}`\n  line {line_b}: `{text_b}`")]
    Conflict {
        /// Why no structure can satisfy them.
        message: String,
        /// The first line involved.
        line_a: usize,
        /// Its text.
        text_a: String,
        /// The second line involved.
        line_b: usize,
        /// Its text.
        text_b: String,
    },
}

/// Invalid arguments to [`crate::create_input()`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CreateInputError {
    /// The per-species lists differ in length (wfl raises `ValueError`).
    #[error(
        "got mismatched lengths for Z {z} composition {composition} vol_per_atom {vol_per_atom} minsep {bond_lengths}"
    )]
    MismatchedLengths {
        /// Length of `z`.
        z: usize,
        /// Length of `composition`.
        composition: usize,
        /// Length of `vol_per_atom`.
        vol_per_atom: usize,
        /// Length of `bond_lengths`.
        bond_lengths: usize,
    },
    /// An atomic number with no element.
    #[error("unknown atomic number {0}")]
    UnknownAtomicNumber(u8),
    /// All composition entries are zero.
    #[error("composition has no atoms")]
    EmptyComposition,
}
