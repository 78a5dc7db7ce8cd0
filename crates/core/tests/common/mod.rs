//! Fixtures shared by the extxyz test suites.

use autopara_core::{ArrayData, Atoms, Column, Value};

/// A three-atom frame (skewed cell, mixed pbc, extreme floats) with the info
/// values and per-atom columns that every reader must get back exactly: a
/// float, int, bool and plain word, arrays of floats, ints, bools, strings and
/// a 2x3 matrix, and float, int, bool and string columns of widths 1 to 3.
/// Each suite adds the values it treats specially (quoted strings, stress,
/// virials, special floats).
pub fn varied_frame() -> Atoms {
    let mut a = Atoms::new(vec![29, 8, 1], vec![[0.1, -2.5e-7, 3.0], [1.0 / 3.0, 2.0, -0.0], [1e21, 5.5, 6.25]]);
    a.cell = [[5.0, 0.0, 0.0], [0.3, 4.0, 0.0], [0.1, 0.2, 7.123456789012345]];
    a.pbc = [true, false, true];
    a.info.insert("energy".into(), Value::Float(-12.345678901234567));
    a.info.insert("step".into(), Value::Int(-42));
    a.info.insert("converged".into(), Value::Bool(true));
    a.info.insert("label".into(), Value::Str("plain_word".into()));
    a.info.insert("dipole".into(), Value::floats(vec![0.1, 0.2, 1.0]));
    a.info.insert("ints".into(), Value::Array { shape: vec![3], data: ArrayData::Int(vec![1, -2, 3]) });
    a.info.insert("flags".into(), Value::Array { shape: vec![2], data: ArrayData::Bool(vec![true, false]) });
    a.info
        .insert("names".into(), Value::Array { shape: vec![2], data: ArrayData::Str(vec!["a b".into(), "c".into()]) });
    a.info.insert("matrix".into(), Value::Array { shape: vec![2, 3], data: ArrayData::Int(vec![1, 2, 3, 4, 5, 6]) });
    a.arrays.insert(
        "forces".into(),
        Column::vec3(&[[0.1, 0.2, 0.3], [-1.0, 0.0, 1e-12], [f64::MAX, f64::MIN_POSITIVE, 2.0]]),
    );
    a.arrays.insert("REF_forces".into(), Column::vec3(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]));
    a.arrays.insert("tags".into(), Column { width: 1, data: ArrayData::Int(vec![0, 1, -7]) });
    a.arrays.insert("move_mask".into(), Column { width: 1, data: ArrayData::Bool(vec![true, false, true]) });
    a.arrays.insert(
        "kind".into(),
        Column {
            width: 2,
            data: ArrayData::Str(vec!["x".into(), "y".into(), "C.sp3".into(), "T".into(), "1".into(), "z".into()]),
        },
    );
    a.arrays.insert("masses".into(), Column::scalars(vec![63.546, 15.999, 1.008]));
    a
}
