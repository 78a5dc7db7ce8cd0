//! Test structures and the dscribe reference runner shared by the integration tests.
#![allow(dead_code)] // each test binary uses a subset

use autopara_core::Atoms;
use autopara_geometry::cell::cartesian;
use autopara_geometry::vec3::norm;
use serde_json::{Value as Json, json};
use std::path::PathBuf;

/// A small deterministic generator (xorshift64*), so structures are the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [-a, a).
    pub fn sym(&mut self, a: f64) -> f64 {
        a * (2.0 * self.uniform() - 1.0)
    }
}

/// An fcc `n × n × n` supercell of the conventional cell (4 n³ atoms), every
/// atom displaced by up to `shake` Å in each direction, kept inside the cell.
pub fn fcc(z: u8, a: f64, n: usize, shake: f64, seed: u64) -> Atoms {
    let mut rng = Rng::new(seed);
    let mut at = autopara_testkit::fixtures::fcc(z, a, [n; 3]);
    let l = a * n as f64;
    for p in &mut at.positions {
        *p = p.map(|x| (x + rng.sym(shake)).rem_euclid(l));
    }
    at
}

/// `n_atoms` atoms of random elements from `elements` at random fractional
/// positions in a triclinic cell, rejecting pairs closer than `min_dist` Å.
pub fn random_cell(elements: &[u8], cell: [[f64; 3]; 3], n_atoms: usize, min_dist: f64, seed: u64) -> Atoms {
    let mut rng = Rng::new(seed);
    let mut numbers = Vec::new();
    let mut positions: Vec<[f64; 3]> = Vec::new();
    let mut fracs: Vec<[f64; 3]> = Vec::new();
    let mut tries = 0;
    while positions.len() < n_atoms && tries < 100_000 {
        tries += 1;
        let f = [rng.uniform(), rng.uniform(), rng.uniform()];
        let ok = fracs.iter().all(|g| {
            // Minimum image in fractional space is good enough for these well-shaped cells.
            let d = [0, 1, 2].map(|k| {
                let x = f[k] - g[k];
                x - x.round()
            });
            norm(cartesian(d, &cell)) >= min_dist
        });
        if ok {
            fracs.push(f);
            positions.push(cartesian(f, &cell));
            numbers.push(elements[(rng.uniform() * elements.len() as f64) as usize % elements.len()]);
        }
    }
    let mut at = Atoms::new(numbers, positions);
    at.cell = cell;
    at.pbc = [true; 3];
    at
}

/// A non-periodic cluster: `n_atoms` random elements in a sphere of `radius` Å.
pub fn cluster(elements: &[u8], n_atoms: usize, radius: f64, min_dist: f64, seed: u64) -> Atoms {
    let mut rng = Rng::new(seed);
    let mut numbers = Vec::new();
    let mut positions: Vec<[f64; 3]> = Vec::new();
    while positions.len() < n_atoms {
        let p = [rng.sym(radius), rng.sym(radius), rng.sym(radius)];
        if p.iter().map(|x| x * x).sum::<f64>() > radius * radius {
            continue;
        }
        if positions.iter().all(|q| (0..3).map(|k| (p[k] - q[k]).powi(2)).sum::<f64>().sqrt() >= min_dist) {
            positions.push(p);
            numbers.push(elements[(rng.uniform() * elements.len() as f64) as usize % elements.len()]);
        }
    }
    Atoms::new(numbers, positions)
}

/// JSON for the reference script.
pub fn atoms_json(at: &Atoms) -> Json {
    json!({"numbers": at.numbers, "positions": at.positions, "cell": at.cell, "pbc": at.pbc})
}

/// Python that builds `ase.Atoms` from [`atoms_json`] as `atoms(d)`.
pub const PY_ATOMS: &str = r#"
import json, sys
import numpy as np
from ase import Atoms
def atoms(d):
    return Atoms(numbers=d["numbers"], positions=d["positions"], cell=d["cell"], pbc=d["pbc"])
"#;

/// The reference interpreter, or `None` (after a loud skip notice).
pub fn python(test: &str) -> Option<PathBuf> {
    autopara_testkit::python_or_skip(test)
}

/// Rows of a JSON matrix (or one row for a vector).
pub fn rows(v: &Json) -> Vec<Vec<f64>> {
    let as_row =
        |r: &Json| r.as_array().expect("row").iter().map(|x| x.as_f64().expect("number")).collect::<Vec<f64>>();
    match v.as_array().and_then(|a| a.first()) {
        Some(Json::Array(_)) => v.as_array().expect("matrix").iter().map(as_row).collect(),
        _ => vec![as_row(v)],
    }
}

/// Asserts that each row of `ours` equals the reference row to `rel` of the
/// row's largest magnitude (the features span many orders of magnitude, and a
/// feature that cancels to ~0 has no meaningful relative error of its own).
pub fn assert_rows_close(what: &str, ours: &[Vec<f64>], reference: &[Vec<f64>], rel: f64) {
    assert_eq!(ours.len(), reference.len(), "{what}: row count");
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert_eq!(a.len(), b.len(), "{what}: row {i} length");
        let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= rel * scale,
                "{what}: row {i} feature {k}: ours {x:e} vs dscribe {y:e} (row scale {scale:e})"
            );
        }
    }
}
