//! The atomic configuration: [`Atoms`], and the typed values it carries in
//! `info` (per configuration) and `arrays` (per atom).
//!
//! Conventions are ASE's: the cell's rows are the lattice vectors, positions
//! are Cartesian in Å, and `info`/`arrays` keys are free-form strings.
//!
//! ```
//! use autopara_core::{Atoms, Value};
//! let mut at = Atoms::new(vec![29, 29], vec![[0.0; 3], [1.8, 1.8, 0.0]]);
//! at.cell = [[3.6, 0.0, 0.0], [0.0, 3.6, 0.0], [0.0, 0.0, 3.6]];
//! at.pbc = [true; 3];
//! at.info.insert("config_type".into(), Value::Str("bulk".into()));
//! assert_eq!(at.len(), 2);
//! assert!((at.volume() - 3.6f64.powi(3)).abs() < 1e-12);
//! ```

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Typed flat storage shared by info arrays and per-atom columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum ArrayData {
    /// Booleans (`L` in extxyz).
    Bool(Vec<bool>),
    /// Integers (`I`).
    Int(Vec<i64>),
    /// Reals (`R`).
    Float(Vec<f64>),
    /// Strings (`S`).
    Str(Vec<String>),
}

impl ArrayData {
    /// Number of scalar elements.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::Bool(v) => v.len(),
            ArrayData::Int(v) => v.len(),
            ArrayData::Float(v) => v.len(),
            ArrayData::Str(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The extxyz type letter of the elements (`L`, `I`, `R`, `S`).
    pub fn type_char(&self) -> char {
        match self {
            ArrayData::Bool(_) => 'L',
            ArrayData::Int(_) => 'I',
            ArrayData::Float(_) => 'R',
            ArrayData::Str(_) => 'S',
        }
    }

    /// The elements as floats (ints are converted), or `None` for bools and strings.
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        match self {
            ArrayData::Float(v) => Some(v.clone()),
            ArrayData::Int(v) => Some(v.iter().map(|&x| x as f64).collect()),
            _ => None,
        }
    }
}

/// A per-configuration value stored in [`Atoms::info`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Value {
    /// `T`/`F`/`True`/`False` in extxyz.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A real number.
    Float(f64),
    /// A string.
    Str(String),
    /// A 1-D array (`shape = [n]`) or a matrix (`shape = [rows, cols]`, row-major data).
    Array {
        /// `[n]` or `[rows, cols]`.
        shape: Vec<usize>,
        /// Row-major elements; `data.len()` is the product of `shape`.
        data: ArrayData,
    },
}

impl Value {
    /// A 1-D float array.
    pub fn floats(v: Vec<f64>) -> Value {
        Value::Array { shape: vec![v.len()], data: ArrayData::Float(v) }
    }

    /// A 3x3 float matrix from rows.
    pub fn matrix3(m: [[f64; 3]; 3]) -> Value {
        Value::Array { shape: vec![3, 3], data: ArrayData::Float(m.iter().flatten().copied().collect()) }
    }

    /// The value as a float when it is a number (ints convert).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(x) => Some(*x),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The value as an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as plain JSON (for cache keys and messages): scalars as JSON
    /// scalars, arrays as `{"shape": [...], "data": [...]}` with flat data.
    ///
    /// ```
    /// use autopara_core::Value;
    /// assert_eq!(Value::Int(3).to_json(), serde_json::json!(3));
    /// assert_eq!(Value::floats(vec![1.5]).to_json(), serde_json::json!({"shape": [1], "data": [1.5]}));
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Value::Bool(b) => json!(b),
            Value::Int(i) => json!(i),
            Value::Float(x) => json!(x),
            Value::Str(s) => json!(s),
            Value::Array { shape, data } => {
                let data = match data {
                    ArrayData::Bool(d) => json!(d),
                    ArrayData::Int(d) => json!(d),
                    ArrayData::Float(d) => json!(d),
                    ArrayData::Str(d) => json!(d),
                };
                json!({ "shape": shape, "data": data })
            }
        }
    }

    /// The elements of an array value as floats (any shape), or a scalar number as one element.
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        match self {
            Value::Array { data, .. } => data.to_f64_vec(),
            other => other.as_f64().map(|x| vec![x]),
        }
    }
}

/// A per-atom column stored in [`Atoms::arrays`]: `width` values per atom, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Values per atom (1 for scalars, 3 for vectors, 9 for per-atom 3x3 tensors).
    pub width: usize,
    /// `natoms * width` elements.
    pub data: ArrayData,
}

impl Column {
    /// A float column of 3-vectors.
    pub fn vec3(v: &[[f64; 3]]) -> Column {
        Column { width: 3, data: ArrayData::Float(v.iter().flatten().copied().collect()) }
    }

    /// A float column with one value per atom.
    pub fn scalars(v: Vec<f64>) -> Column {
        Column { width: 1, data: ArrayData::Float(v) }
    }

    /// Number of rows (atoms).
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.width).unwrap_or(0)
    }

    /// The column as 3-vectors, when it is a float (or int) column of width 3.
    pub fn as_vec3(&self) -> Option<Vec<[f64; 3]>> {
        if self.width != 3 {
            return None;
        }
        let f = self.data.to_f64_vec()?;
        Some(f.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
    }
}

/// One atomic configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Atoms {
    /// Atomic numbers, one per atom.
    pub numbers: Vec<u8>,
    /// Cartesian positions in Å.
    pub positions: Vec<[f64; 3]>,
    /// Lattice vectors as rows, Å. All zeros when the configuration has no cell.
    pub cell: [[f64; 3]; 3],
    /// Periodicity along each lattice vector.
    pub pbc: [bool; 3],
    /// Per-configuration key → value, in insertion order.
    pub info: IndexMap<String, Value>,
    /// Per-atom key → column, in insertion order. Never holds `numbers`/`positions`
    /// (extxyz's `species`/`Z` and `pos`), which are fields.
    pub arrays: IndexMap<String, Column>,
}

impl Atoms {
    /// Atoms without a cell, non-periodic, with empty `info` and `arrays`.
    pub fn new(numbers: Vec<u8>, positions: Vec<[f64; 3]>) -> Atoms {
        Atoms { numbers, positions, ..Default::default() }
    }

    /// Number of atoms.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// True when there are no atoms.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// Cell volume |a · (b × c)| in Å³, zero when the cell has none (no
    /// cell, or zero, parallel or coplanar vectors): [`autopara_geometry::cell::volume`],
    /// the test the calculators use for stress.
    pub fn volume(&self) -> f64 {
        autopara_geometry::cell::volume(&self.cell)
    }

    /// True when any direction is periodic.
    pub fn any_pbc(&self) -> bool {
        self.pbc.iter().any(|&p| p)
    }

    /// Masses in amu: from a `masses` column when present (ASE writes one when
    /// masses were set), else each element's standard mass (ASE's table).
    pub fn masses(&self) -> Vec<f64> {
        if let Some(col) = self.arrays.get("masses")
            && col.width == 1
            && col.rows() == self.len()
            && let Some(m) = col.data.to_f64_vec()
        {
            return m;
        }
        self.numbers.iter().map(|&z| crate::elements::atomic_mass(z)).collect()
    }

    /// A float info value by key.
    pub fn info_f64(&self, key: &str) -> Option<f64> {
        self.info.get(key).and_then(Value::as_f64)
    }

    /// A per-atom 3-vector column by key (e.g. `forces`, `momenta`).
    pub fn array_vec3(&self, key: &str) -> Option<Vec<[f64; 3]>> {
        self.arrays.get(key).and_then(Column::as_vec3)
    }

    /// Chemical symbols of the atoms.
    pub fn symbols(&self) -> Vec<&'static str> {
        self.numbers.iter().map(|&z| crate::elements::symbol(z)).collect()
    }

    /// Chemical formula in ASE's "hill"-free default order (by first appearance), e.g. `Cu4`, `CH4`.
    pub fn formula(&self) -> String {
        let mut counts: IndexMap<u8, usize> = IndexMap::new();
        for &z in &self.numbers {
            *counts.entry(z).or_default() += 1;
        }
        counts
            .iter()
            .map(|(&z, &n)| {
                if n == 1 {
                    crate::elements::symbol(z).to_string()
                } else {
                    format!("{}{}", crate::elements::symbol(z), n)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Atoms::volume` is the geometry crate's volume: positive exactly when
    /// the cell has a volume by the test the calculators use for stress, so
    /// minim's cell filter, md's pressure and the calculators decide alike
    /// (a cell coplanar to 1e-13 used to have a volume here and none there).
    #[test]
    fn volume_agrees_with_the_calculators_test_on_degenerate_cells() {
        let cells = [
            [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]],
            [[0.0; 3]; 3],
            [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]],
            [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 3e-13]],
            [[3.0, 0.0, 0.0], [6.0, 1e-12, 0.0], [0.0, 0.0, 3.0]],
            [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 3e-8]],
        ];
        for cell in cells {
            let atoms = Atoms { cell, ..Atoms::new(vec![29], vec![[0.0; 3]]) };
            let has = autopara_geometry::cell::has_volume(&cell);
            assert_eq!(atoms.volume() > 0.0, has, "{cell:?}");
            assert_eq!(atoms.volume(), if has { autopara_geometry::cell::determinant(&cell).abs() } else { 0.0 });
        }
        let flat = Atoms { cell: cells[3], ..Atoms::default() };
        assert_eq!(flat.volume(), 0.0);
    }
}
