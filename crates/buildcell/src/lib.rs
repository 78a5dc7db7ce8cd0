//! autopara buildcell: AIRSS-style random structure generation, natively,
//! from the buildcell input text that wfl's `create_input` writes.
//!
//! wfl pipes that text into AIRSS's external `buildcell` program; this crate
//! reads the same keys (`#TARGVOL`, `#SPECIES`, `#NFORM`, `#SYMMOPS`, `#SLACK`,
//! `#OVERLAP`, `#COMPACT`, `#MINSEP`, `##EXTRA_INFO`) and builds the structures
//! itself, reproducibly from each item's random generator. See
//! `docs/ops/buildcell.md` for which AIRSS behaviours are reproduced.
//!
//! ```
//! use autopara_buildcell::{BuildcellInput, Generator, Odd, create_input};
//! use rand::SeedableRng;
//!
//! let text = create_input(&[3], &[20.0], &[3.0], None, 0.5, (0.95, 1.05), 0.9, "1-8", (6, 8), Odd::No).unwrap();
//! let generator = Generator::new(BuildcellInput::parse(&text).unwrap());
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let s = generator.generate(&mut rng, 100).unwrap();
//! assert!(s.atoms.len() == 6 || s.atoms.len() == 8);
//! ```
//!
//! The op (`autopara run buildcell --count N --args '{"buildcell_input": "..."}'`)
//! is [`op::Buildcell`]; its arguments are [`op::BuildcellArgs`].

pub mod create_input;
pub mod error;
pub mod generate;
pub mod input;
pub mod op;
pub mod pyfmt;
pub mod symmetry;

pub use create_input::{Odd, create_input};
pub use error::{CreateInputError, InputError};
pub use generate::{Generated, Generator, PlacementFailure};
pub use input::BuildcellInput;
pub use op::{Buildcell, BuildcellArgs};

use autopara_core::Atoms;
use nalgebra::{Matrix3, Vector3};

/// Symmetry found by moyo, in the terms wfl records with spglib.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectedSymmetry {
    /// International space-group number.
    pub number: i32,
    /// Short Hermann–Mauguin symbol without spaces, as spglib's `international` (`P2_1/c`).
    pub international: String,
    /// Hall symbol (`-P 2ybc`).
    pub hall: String,
    /// Operations `(W, t)` found in the given cell (fractional coordinates).
    pub operations: Vec<([[i32; 3]; 3], [f64; 3])>,
}

/// The space group of a periodic structure at tolerance `symprec` (Å), via
/// moyo in spglib's setting.
pub fn detect_symmetry(atoms: &Atoms, symprec: f64) -> Result<DetectedSymmetry, moyo::Error> {
    let basis = Matrix3::from_fn(|i, j| atoms.cell[j][i]);
    let inv = basis.try_inverse().unwrap_or_else(Matrix3::zeros);
    let positions = atoms.positions.iter().map(|p| inv * Vector3::from(*p)).collect();
    let numbers = atoms.numbers.iter().map(|&z| i32::from(z)).collect();
    let cell = moyo::base::Cell::new(moyo::base::Lattice::new(basis.transpose()), positions, numbers);
    // spglib's setting (smallest Hall number), so `hall` matches what wfl records.
    let ds = moyo::MoyoDataset::new(
        &cell,
        symprec,
        moyo::base::AngleTolerance::default(),
        moyo::data::Setting::Spglib,
        true,
    )?;
    let entry = moyo::data::hall_symbol_entry(ds.hall_number);
    Ok(DetectedSymmetry {
        number: ds.number,
        international: entry.as_ref().map_or_else(|| ds.hm_symbol.clone(), |e| e.hm_short.replace(' ', "")),
        // moyo writes the Hall axis symbols `'` and `"` as `^` and `=`; spglib does not.
        hall: entry.map_or_else(String::new, |e| e.hall_symbol.replace('^', "'").replace('=', "\"")),
        operations: ds.operations.iter().map(|op| (op.rotation_as_array(), op.translation_as_array())).collect(),
    })
}
