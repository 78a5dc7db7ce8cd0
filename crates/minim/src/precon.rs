//! ASE's `Exp` preconditioner for PreconLBFGS (Packwood et al., J. Chem.
//! Phys. 144, 164109 (2016)): `P = mu · L + mu · c_stab · I` where `L` is the
//! graph Laplacian with weights `exp(-A (r_ij / r_NN - 1))` over pairs closer
//! than `r_cut = 2 r_NN`, acting identically on x, y and z, plus `mu_c · I` on
//! the cell rows. `mu` (and `mu_c`) come from ASE's sine-perturbation
//! estimate on the first step; `r_NN` is the largest nearest-neighbour distance.
//!
//! ASE solves `P z = q` with a direct sparse solver (no pyamg in the reference
//! environment); here a dense Cholesky factor does it up to
//! [`DENSE_LIMIT`] atoms and Jacobi-preconditioned conjugate gradients to a
//! relative residual of 1e-13 above, where a dense factor would not fit.

use crate::error::MinimError;
use crate::linalg::long_sum;
use crate::system::System;
use autopara_geometry::neighbours::{ListKind, NeighbourList};
use autopara_geometry::vec3::norm;
use nalgebra::{Cholesky, DMatrix, Dyn};

/// Largest atom count solved with a dense Cholesky factor.
pub const DENSE_LIMIT: usize = 2000;

/// ASE's `Exp` defaults.
const A: f64 = 3.0;
const C_STAB: f64 = 0.1;

/// The preconditioner matrix on the atoms (one Cartesian component), in CSR form.
#[derive(Debug, Default)]
struct Sparse {
    row_start: Vec<usize>,
    cols: Vec<usize>,
    vals: Vec<f64>,
    diag: Vec<f64>,
}

impl Sparse {
    fn n(&self) -> usize {
        self.diag.len()
    }

    /// `y = P x` for one component (strided views of interlaced vectors).
    fn mul(&self, x: impl Fn(usize) -> f64, mut y: impl FnMut(usize, f64)) {
        for i in 0..self.n() {
            let mut s = self.diag[i] * x(i);
            for k in self.row_start[i]..self.row_start[i + 1] {
                s += self.vals[k] * x(self.cols[k]);
            }
            y(i, s);
        }
    }
}

/// The state of ASE's `Exp` preconditioner across steps of one optimization.
pub(crate) struct ExpPrecon {
    r_nn: Option<f64>,
    mu: Option<f64>,
    mu_c: f64,
    matrix: Sparse,
    cholesky: Option<Cholesky<f64, Dyn>>,
    built: bool,
    last_positions: Option<Vec<[f64; 3]>>,
    /// Right-hand sides (atoms x 3), reused.
    rhs: DMatrix<f64>,
    probe: Vec<f64>,
    /// The last list of `assemble`: `mu`'s estimate and the first step
    /// assemble at the same positions.
    list: Option<BuiltList>,
}

/// A neighbour list with the geometry it was built for.
#[derive(Debug)]
struct BuiltList {
    list: NeighbourList,
    positions: Vec<[f64; 3]>,
    cell: [[f64; 3]; 3],
    pbc: [bool; 3],
}

impl BuiltList {
    /// Whether it is the list to `cutoff` of `atoms`.
    fn is_for(&self, atoms: &autopara_core::Atoms, cutoff: f64) -> bool {
        self.list.cutoff() == cutoff
            && self.positions == atoms.positions
            && self.cell == atoms.cell
            && self.pbc == atoms.pbc
    }
}

impl ExpPrecon {
    /// A preconditioner with nothing estimated yet.
    pub(crate) fn new() -> ExpPrecon {
        ExpPrecon {
            r_nn: None,
            mu: None,
            mu_c: 1.0,
            matrix: Sparse::default(),
            cholesky: None,
            built: false,
            last_positions: None,
            rhs: DMatrix::zeros(0, 3),
            probe: Vec::new(),
            list: None,
        }
    }

    /// ASE's `make_precon`: estimates `r_NN` and `mu` on first use, then
    /// rebuilds the matrix only when one step moved an atom component by more
    /// than `r_NN / 2`.
    pub(crate) fn update(&mut self, sys: &mut System<'_>) -> Result<(), MinimError> {
        let r_nn = match self.r_nn {
            Some(r) => r,
            None => {
                let r = nearest_neighbour_distance(&sys.atoms)?;
                self.r_nn = Some(r);
                r
            }
        };
        if self.mu.is_none() {
            self.estimate_mu(sys, r_nn)?;
            self.built = false;
        }
        if self.built {
            // ASE compares with the positions at the previous call (the first
            // comparison sees no displacement).
            let moved = match &self.last_positions {
                None => 0.0,
                Some(old) => old
                    .iter()
                    .zip(&sys.atoms.positions)
                    .flat_map(|(a, b)| (0..3).map(move |d| (a[d] - b[d]).abs()))
                    .fold(0.0, f64::max),
            };
            let last = self.last_positions.get_or_insert_with(Vec::new);
            last.clear();
            last.extend_from_slice(&sys.atoms.positions);
            if moved < 0.5 * r_nn {
                return Ok(());
            }
        }
        self.assemble(sys, r_nn, false)?;
        self.factorize()
    }

    /// Assembles `P` with the current `mu`; `initial` skips the decoupling of
    /// fixed atoms (ASE's `initial_assembly`, used while estimating `mu`).
    fn assemble(&mut self, sys: &System<'_>, r_nn: f64, initial: bool) -> Result<(), MinimError> {
        let mu = self.mu.unwrap_or(1.0);
        let atoms = &sys.atoms;
        let n = atoms.len();
        let nl = match &mut self.list {
            Some(built) if built.is_for(atoms, 2.0 * r_nn) => &built.list,
            slot => {
                let mut list =
                    NeighbourList::new(2.0 * r_nn, ListKind::Full).map_err(|e| MinimError::Precon(e.to_string()))?;
                list.build(&atoms.positions, &atoms.cell, atoms.pbc).map_err(|e| MinimError::Precon(e.to_string()))?;
                let built = BuiltList { list, positions: atoms.positions.clone(), cell: atoms.cell, pbc: atoms.pbc };
                &slot.insert(built).list
            }
        };
        let fixed = &sys.constraints.fixed_atoms;
        let mut is_fixed = vec![false; n];
        for &i in fixed {
            if let Some(f) = is_fixed.get_mut(i) {
                *f = true;
            }
        }
        let m = &mut self.matrix;
        m.diag.clear();
        m.diag.resize(n, 0.0);
        m.row_start.clear();
        m.cols.clear();
        m.vals.clear();
        m.row_start.push(0);
        // The list is sorted by centre atom, then neighbour: images of the same
        // neighbour are adjacent and summed into one entry, as scipy sums duplicates.
        let (ci, cj, cd) = (nl.i(), nl.j(), nl.distances());
        let mut k = 0;
        for i in 0..n {
            while k < ci.len() && ci[k] == i {
                let (j, d) = (cj[k], cd[k]);
                k += 1;
                if j == i {
                    continue;
                }
                let coeff = -mu * (-A * (d / r_nn - 1.0)).exp();
                m.diag[i] -= coeff;
                let coeff = if !initial && (is_fixed[i] || is_fixed[j]) { 0.0 } else { coeff };
                if coeff == 0.0 {
                    continue;
                }
                if m.cols.len() > m.row_start[i] && m.cols.last() == Some(&j) {
                    if let Some(v) = m.vals.last_mut() {
                        *v += coeff;
                    }
                } else {
                    m.cols.push(j);
                    m.vals.push(coeff);
                }
            }
            m.row_start.push(m.cols.len());
        }
        if fixed.is_empty() {
            for d in &mut m.diag {
                *d += mu * C_STAB;
            }
        }
        if !initial {
            for (d, &f) in m.diag.iter_mut().zip(&is_fixed) {
                if f {
                    *d = 1.0;
                }
            }
        }
        self.built = true;
        Ok(())
    }

    fn factorize(&mut self) -> Result<(), MinimError> {
        let n = self.matrix.n();
        self.cholesky = None;
        if n <= DENSE_LIMIT {
            let m = &self.matrix;
            let mut dense = DMatrix::from_diagonal(&nalgebra::DVector::from_column_slice(&m.diag));
            for i in 0..n {
                for k in m.row_start[i]..m.row_start[i + 1] {
                    dense[(i, m.cols[k])] += m.vals[k];
                }
            }
            self.cholesky = Some(
                Cholesky::new(dense)
                    .ok_or_else(|| MinimError::Precon("the Exp preconditioner is not positive definite".into()))?,
            );
        }
        Ok(())
    }

    /// `z = P⁻¹ q` for interlaced vectors (atoms, then cell rows).
    pub(crate) fn solve(&mut self, q: &[f64], z: &mut [f64]) -> Result<(), MinimError> {
        let n = self.matrix.n();
        for (zc, qc) in z[3 * n..].iter_mut().zip(&q[3 * n..]) {
            *zc = qc / self.mu_c;
        }
        if self.rhs.nrows() != n {
            self.rhs = DMatrix::zeros(n, 3);
        }
        for i in 0..n {
            for d in 0..3 {
                self.rhs[(i, d)] = q[3 * i + d];
            }
        }
        match &self.cholesky {
            Some(c) => c.solve_mut(&mut self.rhs),
            None => {
                for d in 0..3 {
                    conjugate_gradients(&self.matrix, &mut self.rhs, d)?;
                }
            }
        }
        for i in 0..n {
            for d in 0..3 {
                z[3 * i + d] = self.rhs[(i, d)];
            }
        }
        Ok(())
    }

    /// ASE's `estimate_mu` (sine perturbation): `mu = Σ (∇E(x+v) − ∇E(x))·v / Σ (P₁ v)·v`
    /// over the atom rows (and `mu_c` over the cell rows), both at least 1.
    fn estimate_mu(&mut self, sys: &mut System<'_>, r_nn: f64) -> Result<(), MinimError> {
        sys.evaluate()?;
        let n = sys.natoms();
        let ndof = sys.ndof();
        let mut x = vec![0.0; ndof];
        sys.get_x(&mut x)?;
        let h = 1e-2 * r_nn;
        let mut v = vec![0.0; ndof];
        let mut h_diag = [0.0; 3];
        for (d, hd) in h_diag.iter_mut().enumerate() {
            let col = x.iter().skip(d).step_by(3);
            let (lo, hi) = col.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &c| (lo.min(c), hi.max(c)));
            let len = hi - lo;
            if len != 0.0 {
                *hd = h;
                for (vi, xi) in v.iter_mut().skip(d).step_by(3).zip(x.iter().skip(d).step_by(3)) {
                    *vi = h * (xi / len).sin();
                }
            }
        }
        if ndof > 3 * n {
            // The cell rows get eps = H / r_NN.
            for r in 0..3 {
                for c in 0..3 {
                    v[3 * n + 3 * r + c] = if r == c { h_diag[r] / r_nn } else { 0.0 };
                }
            }
        }
        let shifted: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + b).collect();
        self.probe.resize(ndof, 0.0);
        sys.probe_gradient(&shifted, &mut self.probe)?;
        let lhs: Vec<f64> = self.probe.iter().zip(sys.gradient()).zip(&v).map(|((gp, g), vi)| (gp - g) * vi).collect();
        self.mu = Some(1.0);
        self.mu_c = 1.0;
        self.assemble(sys, r_nn, true)?;
        let mut pv = vec![0.0; ndof];
        for d in 0..3 {
            self.matrix.mul(|i| v[3 * i + d], |i, y| pv[3 * i + d] = y);
        }
        pv[3 * n..].copy_from_slice(&v[3 * n..]);
        let rhs: Vec<f64> = pv.iter().zip(&v).map(|(a, b)| a * b).collect();
        let ratio = |range: std::ops::Range<usize>| {
            long_sum(lhs[range.clone()].iter().copied()) / long_sum(rhs[range].iter().copied())
        };
        let mu = ratio(0..3 * n);
        if !mu.is_finite() {
            return Err(MinimError::Precon(format!("estimated mu is {mu}")));
        }
        self.mu = Some(mu.max(1.0));
        if ndof > 3 * n {
            let mu_c = ratio(3 * n..ndof);
            if !mu_c.is_finite() {
                return Err(MinimError::Precon(format!("estimated mu_c is {mu_c}")));
            }
            self.mu_c = mu_c.max(1.0);
        }
        Ok(())
    }
}

/// Jacobi-preconditioned conjugate gradients on column `d` of `rhs`, in place.
fn conjugate_gradients(p: &Sparse, rhs: &mut DMatrix<f64>, d: usize) -> Result<(), MinimError> {
    let n = p.n();
    let b: Vec<f64> = (0..n).map(|i| rhs[(i, d)]).collect();
    let b_norm = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut x: Vec<f64> = b.iter().zip(&p.diag).map(|(bi, di)| bi / di).collect();
    let mut r = vec![0.0; n];
    p.mul(|i| x[i], |i, y| r[i] = b[i] - y);
    let mut z: Vec<f64> = r.iter().zip(&p.diag).map(|(ri, di)| ri / di).collect();
    let mut dir = z.clone();
    let mut rz: f64 = r.iter().zip(&z).map(|(a, b)| a * b).sum();
    let mut ap = vec![0.0; n];
    for _ in 0..10 * n + 100 {
        if r.iter().map(|x| x * x).sum::<f64>().sqrt() <= 1e-13 * b_norm {
            for (i, xi) in x.iter().enumerate() {
                rhs[(i, d)] = *xi;
            }
            return Ok(());
        }
        p.mul(|i| dir[i], |i, y| ap[i] = y);
        let alpha = rz / dir.iter().zip(&ap).map(|(a, b)| a * b).sum::<f64>();
        for i in 0..n {
            x[i] += alpha * dir[i];
            r[i] -= alpha * ap[i];
            z[i] = r[i] / p.diag[i];
        }
        let rz_new: f64 = r.iter().zip(&z).map(|(a, b)| a * b).sum();
        let beta = rz_new / rz;
        rz = rz_new;
        for i in 0..n {
            dir[i] = z[i] + beta * dir[i];
        }
    }
    Err(MinimError::Precon("conjugate gradients did not converge".into()))
}

/// ASE's `estimate_nearest_neighbour_distance`: grow a cutoff from 1 Å by the
/// golden ratio until every atom has a neighbour (periodic images of itself
/// count), then take the largest nearest-neighbour distance. ASE gives up at
/// twice the longest cell vector; without a cell the bounding box bounds it here.
fn nearest_neighbour_distance(atoms: &autopara_core::Atoms) -> Result<f64, MinimError> {
    let n = atoms.len();
    let longest_cell = atoms.cell.iter().map(|&v| norm(v)).fold(0.0, f64::max);
    let limit = if longest_cell > 0.0 {
        2.0 * longest_cell
    } else {
        let span = |d: usize| {
            let (lo, hi) = atoms
                .positions
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p[d]), hi.max(p[d])));
            (hi - lo).max(0.0)
        };
        2.0 * norm([span(0), span(1), span(2)])
    };
    let phi = (1.0 + 5f64.sqrt()) / 2.0;
    let mut r_cut = 1.0;
    // Skip the cutoffs too short to reach a neighbour of every atom in a
    // periodic cell of this density: each list costs a build, and any cutoff
    // at which every atom has a neighbour gives the same largest distance.
    let volume = atoms.volume();
    if atoms.pbc.iter().all(|&p| p) && volume.is_finite() && volume > 0.0 && n > 0 {
        let spacing = 1.2 * (volume / n as f64).cbrt();
        while r_cut * phi <= spacing {
            r_cut *= phi;
        }
    }
    let mut nearest = vec![f64::INFINITY; n];
    while r_cut < limit {
        let mut nl = NeighbourList::new(r_cut, ListKind::Full).map_err(|e| MinimError::Precon(e.to_string()))?;
        nl.build(&atoms.positions, &atoms.cell, atoms.pbc).map_err(|e| MinimError::Precon(e.to_string()))?;
        nearest.fill(f64::INFINITY);
        for ((&i, _), &d) in nl.i().iter().zip(nl.j()).zip(nl.distances()) {
            nearest[i] = nearest[i].min(d);
        }
        if nearest.iter().all(|d| d.is_finite()) {
            return Ok(nearest.iter().copied().fold(0.0, f64::max));
        }
        r_cut *= phi;
    }
    Err(MinimError::Precon(format!(
        "no neighbour within {limit:.3} A for some atom; the Exp preconditioner needs neighbours (use precon = null)"
    )))
}
