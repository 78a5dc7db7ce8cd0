//! The bridge's wire format (protocol version 1, documented for other
//! implementers in `docs/ase-bridge.md`): framed messages of a 4-byte ASCII
//! tag and a little-endian u64 payload length, then the payload, all numbers
//! little-endian.
//!
//! autopara → worker: `INIT` (JSON: constructor, args, kwargs, pythonpath,
//! protocol), `NUMS` (atomic numbers, when they change), `META` (the
//! configuration's info and arrays, when they change), `CALC` (wanted
//! properties, pbc, cell, positions). Only `INIT` and `CALC` are answered:
//! `REDY` (JSON) or `FAIL` (JSON) to `INIT`, `RSLT` or `FAIL` to `CALC`.

use autopara_core::{ArrayData, Atoms, CalcResults, Column, Properties, Value};

/// Protocol version, sent in `INIT` and checked by the worker.
pub(super) const PROTOCOL: u32 = 1;
/// Bytes of a message header: tag and payload length.
pub(super) const HEADER: usize = 12;

pub(super) const INIT: [u8; 4] = *b"INIT";
pub(super) const NUMS: [u8; 4] = *b"NUMS";
pub(super) const META: [u8; 4] = *b"META";
pub(super) const CALC: [u8; 4] = *b"CALC";
pub(super) const REDY: [u8; 4] = *b"REDY";
pub(super) const RSLT: [u8; 4] = *b"RSLT";
pub(super) const FAIL: [u8; 4] = *b"FAIL";

const WANT_ENERGY: u32 = 1;
const WANT_FORCES: u32 = 2;
const WANT_STRESS: u32 = 4;
const WANT_ENERGIES: u32 = 8;

const HAS_ENERGY: u32 = 1;
const HAS_FREE_ENERGY: u32 = 2;
const HAS_FORCES: u32 = 4;
const HAS_STRESS: u32 = 8;
const HAS_ENERGIES: u32 = 16;

/// Bytes before the positions in a `CALC` payload: flags, count, pbc, padding, cell.
const CALC_HEAD: usize = 88;

/// Value type codes in `META` entries.
const BOOL: u8 = 0;
const INT: u8 = 1;
const FLOAT: u8 = 2;
const STR: u8 = 3;

/// Starts a message with `tag` in `buf`; returns where its length goes.
fn begin(buf: &mut Vec<u8>, tag: [u8; 4]) -> usize {
    buf.extend_from_slice(&tag);
    let at = buf.len();
    buf.extend_from_slice(&0u64.to_le_bytes());
    at
}

/// Writes the payload length of the message begun at `at`.
fn finish(buf: &mut [u8], at: usize) {
    let len = (buf.len() - at - 8) as u64;
    buf[at..at + 8].copy_from_slice(&len.to_le_bytes());
}

fn put_u32(buf: &mut Vec<u8>, x: u32) {
    buf.extend_from_slice(&x.to_le_bytes());
}

fn put_f64s(buf: &mut Vec<u8>, xs: impl IntoIterator<Item = f64>) {
    for x in xs {
        buf.extend_from_slice(&x.to_le_bytes());
    }
}

fn put_len(buf: &mut Vec<u8>, n: usize) {
    put_u32(buf, u32::try_from(n).unwrap_or(u32::MAX));
}

/// Appends a message with a byte payload (`INIT`'s JSON).
pub(super) fn message(buf: &mut Vec<u8>, tag: [u8; 4], payload: &[u8]) {
    let at = begin(buf, tag);
    buf.extend_from_slice(payload);
    finish(buf, at);
}

/// Appends `NUMS`: u32 count, then one i32 per atom.
pub(super) fn numbers(buf: &mut Vec<u8>, numbers: &[u8]) {
    let at = begin(buf, NUMS);
    put_len(buf, numbers.len());
    for &z in numbers {
        buf.extend_from_slice(&i32::from(z).to_le_bytes());
    }
    finish(buf, at);
}

/// Appends `META`: the info entries, then the per-atom arrays, each as a
/// u32 count of entries of (u32 key length, UTF-8 key, value).
pub(super) fn meta(buf: &mut Vec<u8>, atoms: &Atoms) {
    let at = begin(buf, META);
    put_len(buf, atoms.info.len());
    for (key, value) in &atoms.info {
        put_str(buf, key);
        match value {
            Value::Bool(b) => put_value(buf, &[], &ArrayData::Bool(vec![*b])),
            Value::Int(i) => put_value(buf, &[], &ArrayData::Int(vec![*i])),
            Value::Float(x) => put_value(buf, &[], &ArrayData::Float(vec![*x])),
            Value::Str(s) => put_value(buf, &[], &ArrayData::Str(vec![s.clone()])),
            Value::Array { shape, data } => put_value(buf, shape, data),
        }
    }
    put_len(buf, atoms.arrays.len());
    for (key, Column { width, data }) in &atoms.arrays {
        put_str(buf, key);
        let rows = data.len().checked_div(*width).unwrap_or(0);
        let shape: &[usize] = if *width == 1 { &[rows] } else { &[rows, *width] };
        put_value(buf, shape, data);
    }
    finish(buf, at);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_len(buf, s.len());
    buf.extend_from_slice(s.as_bytes());
}

/// A value: u8 type, u8 number of dimensions, u64 per dimension, then the
/// elements row-major (bool as u8, int as i64, float as f64, string as u32
/// length and UTF-8).
fn put_value(buf: &mut Vec<u8>, shape: &[usize], data: &ArrayData) {
    let kind = match data {
        ArrayData::Bool(_) => BOOL,
        ArrayData::Int(_) => INT,
        ArrayData::Float(_) => FLOAT,
        ArrayData::Str(_) => STR,
    };
    buf.push(kind);
    buf.push(shape.len() as u8);
    for &d in shape {
        buf.extend_from_slice(&(d as u64).to_le_bytes());
    }
    match data {
        ArrayData::Bool(v) => buf.extend(v.iter().map(|&b| u8::from(b))),
        ArrayData::Int(v) => v.iter().for_each(|i| buf.extend_from_slice(&i.to_le_bytes())),
        ArrayData::Float(v) => put_f64s(buf, v.iter().copied()),
        ArrayData::Str(v) => v.iter().for_each(|s| put_str(buf, s)),
    }
}

/// Appends `CALC`: u32 wanted properties, u32 atom count, 3 pbc bytes, 5
/// padding bytes, the cell's rows (9 f64) and the positions (3 f64 per atom).
pub(super) fn calc(buf: &mut Vec<u8>, atoms: &Atoms, request: Properties) {
    let at = begin(buf, CALC);
    let want = [
        (request.energy, WANT_ENERGY),
        (request.forces, WANT_FORCES),
        (request.stress, WANT_STRESS),
        (request.energies, WANT_ENERGIES),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |acc, (_, bit)| acc | bit);
    put_u32(buf, want);
    put_len(buf, atoms.len());
    buf.extend(atoms.pbc.iter().map(|&p| u8::from(p)));
    buf.extend_from_slice(&[0; 5]);
    put_f64s(buf, atoms.cell.iter().flatten().copied());
    put_f64s(buf, atoms.positions.iter().flatten().copied());
    debug_assert_eq!(buf.len() - at - 8, CALC_HEAD + 24 * atoms.len());
    finish(buf, at);
}

/// Reads the `RSLT` payload for `n` atoms into `out`. Energy and forces must be
/// there when requested, stress too; per-atom energies only when the
/// calculator provides them. The free energy is kept when given.
pub(super) fn results(payload: &[u8], n: usize, request: Properties, out: &mut CalcResults) -> Result<(), String> {
    let u32_at = |i: usize| payload.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let (Some(flags), Some(count)) = (u32_at(0), u32_at(4)) else {
        return Err(format!("RSLT of {} bytes is too short", payload.len()));
    };
    if count as usize != n {
        return Err(format!("RSLT for {count} atoms, sent {n}"));
    }
    let mut rest = payload.get(8..).unwrap_or_default();
    let mut take = |k: usize, into: &mut dyn FnMut(f64)| -> Result<(), String> {
        if rest.len() < 8 * k {
            return Err(format!("RSLT of {} bytes is too short for its flags {flags:#x}", payload.len()));
        }
        let (head, tail) = rest.split_at(8 * k);
        head.chunks_exact(8).for_each(|b| into(f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])));
        rest = tail;
        Ok(())
    };
    let mut scalars = Vec::with_capacity(2);
    take(2, &mut |x| scalars.push(x))?;
    let has = |bit: u32| flags & bit != 0;
    out.computed = Properties::default();
    out.free_energy = None;
    if has(HAS_ENERGY) {
        out.energy = scalars[0];
        out.computed.energy = true;
        if has(HAS_FREE_ENERGY) {
            out.free_energy = Some(scalars[1]);
        }
    }
    if has(HAS_FORCES) {
        out.forces.clear();
        let mut row = [0.0; 3];
        let mut k = 0;
        take(3 * n, &mut |x| {
            row[k] = x;
            k += 1;
            if k == 3 {
                out.forces.push(row);
                k = 0;
            }
        })?;
        out.computed.forces = true;
    }
    if has(HAS_STRESS) {
        let mut k = 0;
        take(6, &mut |x| {
            out.stress[k] = x;
            k += 1;
        })?;
        out.computed.stress = true;
    }
    if has(HAS_ENERGIES) {
        out.energies.clear();
        take(n, &mut |x| out.energies.push(x))?;
        out.computed.energies = true;
    }
    if !rest.is_empty() {
        return Err(format!("RSLT has {} bytes past its flags {flags:#x}", rest.len()));
    }
    let missing = [
        (request.energy && !out.computed.energy, "energy"),
        (request.forces && !out.computed.forces, "forces"),
        (request.stress && !out.computed.stress, "stress"),
    ];
    match missing.iter().find(|(m, _)| *m) {
        Some((_, name)) => Err(format!("the worker sent no {name}")),
        None => Ok(()),
    }
}

/// A message header: tag and payload length, once `buf` holds 12 bytes.
pub(super) fn header(buf: &[u8]) -> Option<([u8; 4], u64)> {
    let h = buf.get(..HEADER)?;
    let tag = [h[0], h[1], h[2], h[3]];
    let len = u64::from_le_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]);
    Some((tag, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calc_layout_and_results_roundtrip() {
        let mut at = Atoms::new(vec![29, 1], vec![[0.5, 1.0, 1.5], [2.0, 2.5, 3.0]]);
        at.cell = [[4.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 6.0]];
        at.pbc = [true, false, true];
        let mut buf = Vec::new();
        calc(&mut buf, &at, Properties::ALL);
        let (tag, len) = header(&buf).unwrap();
        assert_eq!((tag, len as usize), (CALC, CALC_HEAD + 48));
        let p = &buf[HEADER..];
        assert_eq!(u32::from_le_bytes(p[0..4].try_into().unwrap()), 15);
        assert_eq!(u32::from_le_bytes(p[4..8].try_into().unwrap()), 2);
        assert_eq!(&p[8..16], &[1, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(f64::from_le_bytes(p[16..24].try_into().unwrap()), 4.0);
        assert_eq!(f64::from_le_bytes(p[88..96].try_into().unwrap()), 0.5);

        // A reply with energy, forces and stress but no per-atom energies.
        let mut reply = Vec::new();
        put_u32(&mut reply, HAS_ENERGY | HAS_FREE_ENERGY | HAS_FORCES | HAS_STRESS);
        put_u32(&mut reply, 2);
        put_f64s(&mut reply, [-1.5, -1.25]);
        put_f64s(&mut reply, (0..6).map(f64::from));
        put_f64s(&mut reply, [1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3]);
        let mut out = CalcResults::default();
        results(&reply, 2, Properties::ALL, &mut out).unwrap();
        assert_eq!((out.energy, out.free_energy), (-1.5, Some(-1.25)));
        assert_eq!(out.forces, vec![[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]);
        assert_eq!(out.stress[5], 6e-3);
        assert!(!out.computed.energies);
        // Stress asked for but missing; a count that does not match; trailing bytes.
        let no_stress = [&reply[..8], &reply[8..24 + 48]].concat();
        let mut bad = no_stress.clone();
        bad[0] &= !(HAS_STRESS as u8);
        assert!(results(&bad, 2, Properties::ALL, &mut out).unwrap_err().contains("no stress"));
        assert!(results(&reply, 3, Properties::ALL, &mut out).unwrap_err().contains("3"));
        let long = [&reply[..], &[0; 8]].concat();
        assert!(results(&long, 2, Properties::ALL, &mut out).unwrap_err().contains("past"));
    }

    #[test]
    fn meta_encodes_typed_entries() {
        let mut at = Atoms::new(vec![8], vec![[0.0; 3]]);
        at.info.insert("charge".into(), Value::Int(-1));
        at.info.insert("label".into(), Value::Str("ab".into()));
        at.arrays.insert("initial_magmoms".into(), Column::scalars(vec![0.5]));
        let mut buf = Vec::new();
        meta(&mut buf, &at);
        let p = &buf[HEADER..];
        let expected: Vec<u8> = [
            &2u32.to_le_bytes()[..],
            &6u32.to_le_bytes(),
            b"charge",
            &[INT, 0],
            &(-1i64).to_le_bytes(),
            &5u32.to_le_bytes(),
            b"label",
            &[STR, 0],
            &2u32.to_le_bytes(),
            b"ab",
            &1u32.to_le_bytes(),
            &15u32.to_le_bytes(),
            b"initial_magmoms",
            &[FLOAT, 1],
            &1u64.to_le_bytes(),
            &0.5f64.to_le_bytes(),
        ]
        .concat();
        assert_eq!(p, expected.as_slice());
    }
}
