//! Frames between Rust and Python: [`Atoms`] as a "plain" tuple of bytes,
//! strings and lists that `autopara/_convert.py` turns into `ase.Atoms` (as
//! ASE reads the file our writer would write) and back (as ASE writes it and
//! our reader reads it).
//!
//! To Python: `(numbers, positions, cell, pbc, info, arrays)` with `numbers`
//! bytes (`u8` each), `positions` and `cell` little-endian `f64` bytes, `pbc` a
//! 3-tuple of bools, `info` a list of `(key, tag, value)` with tags `b`, `i`,
//! `f`, `s` for scalars and `a` for `(shape, dtype, payload)` arrays, and
//! `arrays` a list of `(name, dtype, width, payload)`. A payload is `f64`/`i64`
//! bytes (`f`/`i`), one byte per bool (`b`) or a list of str (`s`).
//!
//! From Python: the same, except that `info` is the comment-line text ASE
//! writes for the configuration's info (`key_val_dict_to_str`), which our
//! extxyz reader types exactly as it types a file's comment line.

use crate::{guarded, to_py};
use autopara::extxyz;
use autopara::{ArrayData, Atoms, Column, Value};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::fs::File;
use std::io::BufReader;

fn f64_bytes<'a>(it: impl IntoIterator<Item = &'a f64>) -> Vec<u8> {
    it.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `(dtype, payload)` of array data.
fn data_to_py<'py>(py: Python<'py>, d: &ArrayData) -> PyResult<(&'static str, Bound<'py, PyAny>)> {
    Ok(match d {
        ArrayData::Bool(v) => ("b", PyBytes::new(py, &v.iter().map(|&b| b as u8).collect::<Vec<_>>()).into_any()),
        ArrayData::Int(v) => {
            ("i", PyBytes::new(py, &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()).into_any())
        }
        ArrayData::Float(v) => ("f", PyBytes::new(py, &f64_bytes(v)).into_any()),
        ArrayData::Str(v) => ("s", PyList::new(py, v)?.into_any()),
    })
}

/// The plain tuple of `a` (see the module docs).
pub(crate) fn to_plain<'py>(py: Python<'py>, a: &Atoms) -> PyResult<Bound<'py, PyTuple>> {
    let info = PyList::empty(py);
    for (k, v) in &a.info {
        let entry = match v {
            Value::Bool(b) => (k, "b", b.into_pyobject(py)?.to_owned().into_any()),
            Value::Int(i) => (k, "i", i.into_pyobject(py)?.into_any()),
            Value::Float(x) => (k, "f", x.into_pyobject(py)?.into_any()),
            Value::Str(s) => (k, "s", s.into_pyobject(py)?.into_any()),
            Value::Array { shape, data } => {
                let (dtype, payload) = data_to_py(py, data)?;
                let shape = PyTuple::new(py, shape)?;
                (k, "a", (shape, dtype, payload).into_pyobject(py)?.into_any())
            }
        };
        info.append(entry)?;
    }
    let arrays = PyList::empty(py);
    for (k, c) in &a.arrays {
        let (dtype, payload) = data_to_py(py, &c.data)?;
        arrays.append((k, dtype, c.width, payload))?;
    }
    (
        PyBytes::new(py, &a.numbers),
        PyBytes::new(py, &f64_bytes(a.positions.iter().flatten())),
        PyBytes::new(py, &f64_bytes(a.cell.iter().flatten())),
        PyTuple::new(py, a.pbc)?,
        info,
        arrays,
    )
        .into_pyobject(py)
}

fn bad(message: String) -> PyErr {
    crate::error("InputError", message)
}

fn f64s(b: &[u8], what: &str) -> PyResult<Vec<f64>> {
    if !b.len().is_multiple_of(8) {
        return Err(bad(format!("{what}: {} bytes is not a whole number of floats", b.len())));
    }
    Ok(b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default())).collect())
}

/// Array data from `(dtype, payload)`.
fn data_from_py(dtype: &str, payload: &Bound<'_, PyAny>, what: &str) -> PyResult<ArrayData> {
    Ok(match dtype {
        "s" => ArrayData::Str(payload.extract()?),
        "b" => ArrayData::Bool(payload.cast::<PyBytes>()?.as_bytes().iter().map(|&b| b != 0).collect()),
        "f" => ArrayData::Float(f64s(payload.cast::<PyBytes>()?.as_bytes(), what)?),
        "i" => {
            let b = payload.cast::<PyBytes>()?.as_bytes();
            if !b.len().is_multiple_of(8) {
                return Err(bad(format!("{what}: {} bytes is not a whole number of integers", b.len())));
            }
            ArrayData::Int(b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default())).collect())
        }
        other => return Err(bad(format!("{what}: unknown dtype '{other}'"))),
    })
}

/// Info typed from comment-line text, exactly as the extxyz reader types a file's.
fn info_from_comment(comment: &str) -> PyResult<indexmap::IndexMap<String, Value>> {
    if comment.trim().is_empty() {
        return Ok(Default::default());
    }
    if comment.contains('\n') {
        return Err(bad("info: a value holds a line break, which an extxyz comment line cannot".into()));
    }
    let frames = extxyz::read_str(&format!("0\n{comment}\n")).map_err(|e| bad(format!("info: {e}")))?;
    Ok(frames.into_iter().next().map(|a| a.info).unwrap_or_default())
}

/// The [`Atoms`] of a plain tuple from Python (see the module docs).
pub(crate) fn from_plain(obj: &Bound<'_, PyAny>) -> PyResult<Atoms> {
    let t = obj.cast::<PyTuple>()?;
    if t.len() != 6 {
        return Err(bad(format!("a plain frame has 6 parts, got {}", t.len())));
    }
    let numbers = t.get_item(0)?.cast::<PyBytes>()?.as_bytes().to_vec();
    let flat = f64s(t.get_item(1)?.cast::<PyBytes>()?.as_bytes(), "positions")?;
    if flat.len() != 3 * numbers.len() {
        return Err(bad(format!("{} atoms but {} position coordinates", numbers.len(), flat.len())));
    }
    let positions = flat.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    let c = f64s(t.get_item(2)?.cast::<PyBytes>()?.as_bytes(), "cell")?;
    let cell: [f64; 9] = c.try_into().map_err(|_| bad("the cell needs 9 numbers".into()))?;
    let pbc: [bool; 3] = t.get_item(3)?.extract()?;
    let comment: String = t.get_item(4)?.extract()?;
    let mut atoms = Atoms {
        numbers,
        positions,
        cell: [[cell[0], cell[1], cell[2]], [cell[3], cell[4], cell[5]], [cell[6], cell[7], cell[8]]],
        pbc,
        info: info_from_comment(&comment)?,
        arrays: Default::default(),
    };
    for entry in t.get_item(5)?.try_iter()? {
        let (name, dtype, width, payload): (String, String, usize, Bound<'_, PyAny>) = entry?.extract()?;
        let data = data_from_py(&dtype, &payload, &format!("array '{name}'"))?;
        atoms.arrays.insert(name, Column { width, data });
    }
    Ok(atoms)
}

/// Reads an extxyz file frame by frame as plain tuples (the GIL is released while parsing).
#[pyclass(module = "autopara._native")]
struct FrameReader {
    reader: Option<extxyz::Reader<BufReader<File>>>,
}

#[pymethods]
impl FrameReader {
    #[new]
    fn new(path: std::path::PathBuf) -> PyResult<FrameReader> {
        guarded(|| Ok(FrameReader { reader: Some(extxyz::open(&path).map_err(to_py)?) }))
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        guarded(|| {
            let Some(reader) = self.reader.as_mut() else { return Ok(None) };
            match py.detach(|| reader.next()) {
                Some(Ok(a)) => to_plain(py, &a).map(Some),
                Some(Err(e)) => {
                    self.reader = None;
                    Err(to_py(e))
                }
                None => {
                    self.reader = None;
                    Ok(None)
                }
            }
        })
    }
}

/// Whether `path` is a complete autopara output holding no configurations
/// (it reads as zero frames instead of an error).
#[pyfunction]
fn is_empty_output(path: std::path::PathBuf) -> PyResult<bool> {
    guarded(|| autopara::sidecar::is_empty_output(&path).map_err(to_py))
}

/// A plain frame through our extxyz writer and reader (for tests of the conversion).
#[pyfunction]
fn roundtrip_plain<'py>(py: Python<'py>, plain: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    guarded(|| {
        let atoms = from_plain(plain)?;
        let text = extxyz::to_string(std::slice::from_ref(&atoms)).map_err(|e| bad(e.to_string()))?;
        let again = extxyz::read_str(&text).map_err(to_py)?;
        to_plain(py, again.first().ok_or_else(|| bad("no frame".into()))?)
    })
}

/// Writes plain frames to an extxyz file (not atomically; for tests and small files).
#[pyfunction]
fn write_plain_frames(py: Python<'_>, path: std::path::PathBuf, frames: &Bound<'_, PyAny>) -> PyResult<()> {
    guarded(|| {
        let atoms = frames.try_iter()?.map(|f| from_plain(&f?)).collect::<PyResult<Vec<_>>>()?;
        py.detach(|| extxyz::write_file(&path, &atoms)).map_err(to_py)
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FrameReader>()?;
    m.add_function(wrap_pyfunction!(is_empty_output, m)?)?;
    m.add_function(wrap_pyfunction!(roundtrip_plain, m)?)?;
    m.add_function(wrap_pyfunction!(write_plain_frames, m)?)?;
    Ok(())
}
