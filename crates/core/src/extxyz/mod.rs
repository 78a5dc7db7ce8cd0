//! Extended XYZ (extxyz) reading and writing.
//!
//! The format is the one ASE and the libAtoms `extxyz` package read and
//! write: a count line, a comment line of `key=value` pairs (`Lattice`,
//! `Properties`, `pbc`, then anything else), and one line per atom whose
//! columns `Properties` describes (`name:type:width`, types `S`, `I`, `R`, `L`).
//!
//! Mapping to [`Atoms`]: the `species` (or `Z`) and `pos` columns become
//! `numbers` and `positions`; `Lattice` becomes `cell` (rows are lattice
//! vectors; absent means zeros and, unless `pbc` says otherwise, no
//! periodicity; present without `pbc` means periodic in all directions);
//! every other column goes to `arrays` and every other key to `info`, in file
//! order. A 9-element `stress` or `virial` is a 3x3 matrix in Fortran order.
//! A comment line without any `=` is a plain xyz title, kept as
//! `info["comment"]`. See `docs/extxyz.md` for the full grammar and the choices
//! where ASE and the libAtoms parser differ.
//!
//! ```
//! use autopara_core::extxyz;
//! let text = "2\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3:forces:R:3 energy=-3.5\n\
//!             Cu 0 0 0 0.1 0 0\nCu 2 2 0 -0.1 0 0\n";
//! let frames = extxyz::read_str(text).unwrap();
//! assert_eq!(frames[0].pbc, [true; 3]);
//! assert_eq!(frames[0].array_vec3("forces").unwrap()[1], [-0.1, 0.0, 0.0]);
//! let again = extxyz::read_str(&extxyz::to_string(&frames).unwrap()).unwrap();
//! assert_eq!(again, frames);
//! ```

mod kv;
mod parallel;
mod reader;
mod writer;

pub use kv::{parse_key_values, parse_value};
pub use parallel::read_file_par;
pub use reader::{Frame, MAX_UNPARSED_ATOMS, RawFrame, Reader};
pub use writer::{check_column_name, check_info_entry, check_info_key, write_frame};

use crate::atoms::Atoms;
use crate::error::{Error, Result};
use std::io::BufReader;
use std::path::Path;

/// Opens `path` for streaming frame by frame.
pub fn open(path: impl AsRef<Path>) -> Result<Reader<BufReader<std::fs::File>>> {
    let path = path.as_ref();
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(Reader::new(BufReader::with_capacity(1 << 16, f), path))
}

/// Reads every frame of a file.
pub fn read_file(path: impl AsRef<Path>) -> Result<Vec<Atoms>> {
    open(path)?.collect()
}

/// Reads every frame of a string (errors name the source `<string>`).
pub fn read_str(text: &str) -> Result<Vec<Atoms>> {
    Reader::new(text.as_bytes(), "<string>").collect()
}

/// Writes frames to a string.
pub fn to_string(frames: &[Atoms]) -> std::io::Result<String> {
    let mut out = Vec::new();
    for a in frames {
        write_frame(&mut out, a)?;
    }
    String::from_utf8(out).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Writes frames to a file (created or truncated; not atomic: run outputs
/// are written through the cache's [`crate::cache::FileSink`] for that).
pub fn write_file(path: impl AsRef<Path>, frames: &[Atoms]) -> Result<()> {
    let path = path.as_ref();
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::new(f);
    for a in frames {
        write_frame(&mut w, a).map_err(|e| Error::io(path, e))?;
    }
    std::io::Write::flush(&mut w).map_err(|e| Error::io(path, e))
}
