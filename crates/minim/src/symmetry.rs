//! `keep_symmetry`: the space group detected by moyo, and the symmetrisation
//! of forces, stress and position steps with it, as ASE's `FixSymmetry` does
//! (rank-1 and rank-2 tensors averaged over the operations in the input
//! cell's fractional basis).

use crate::linalg::{inverse, mat, matrix_to_voigt, rows, vec_mat, voigt_to_matrix};
use autopara_core::Atoms;
use autopara_geometry::neighbours::{ListKind, NeighbourList};
use moyo::MoyoDataset;
use moyo::base::{Cell, Lattice};
use nalgebra::{Matrix3, Vector3};

/// Symmetry precision (Å), as wfl's `FixSymmetry` and its reports.
pub const SYMPREC: f64 = 0.01;

/// A detected space group and its action on the atoms.
#[derive(Debug, Clone)]
pub(crate) struct Symmetry {
    /// Rotations in the fractional basis of the cell (acting on column vectors).
    rotations: Vec<Matrix3<f64>>,
    /// Fractional translations.
    translations: Vec<[f64; 3]>,
    /// `maps[op][i]`: the atom that atom `i` goes to under the operation.
    maps: Vec<Vec<usize>>,
}

/// Space group of a configuration with a full-rank cell (`None` without one,
/// or when moyo finds no consistent group).
pub(crate) fn detect(atoms: &Atoms) -> Option<MoyoDataset> {
    let cell = mat(&atoms.cell);
    if cell.determinant().abs() < 1e-12 {
        return None;
    }
    let inv = cell.try_inverse()?;
    let positions = atoms.positions.iter().map(|p| Vector3::from(vec_mat(p, &inv))).collect();
    let numbers = atoms.numbers.iter().map(|&z| i32::from(z)).collect();
    let moyo_cell = Cell::new(Lattice::from_basis(atoms.cell), positions, numbers);
    MoyoDataset::with_default(&moyo_cell, SYMPREC).ok()
}

/// Nearest distances compared between atoms by [`only_identity`].
const SIGNATURE: usize = 12;

/// Whether no operation but the identity can map the atoms onto themselves
/// within [`SYMPREC`], proved cheaply; then the group is P1 and moyo's search
/// (a quarter of the time of relaxing a rattled 108-atom cell) is skipped.
/// `false` means "not proved", and moyo decides.
///
/// An operation moving every atom by at most `SYMPREC` onto an atom of the
/// same element changes each interatomic distance by at most `2 SYMPREC`. So
/// atom 0 can only go to an atom whose sorted nearest distances all match its
/// own within that; when none does, every operation fixes atom 0, and then it
/// also fixes (within `2 SYMPREC`) each neighbour of atom 0 whose distance no
/// other neighbour shares within that. Three such neighbours spanning space
/// leave only the identity: any other rotation or improper rotation of a
/// lattice moves one of them by far more.
pub(crate) fn only_identity(atoms: &Atoms) -> bool {
    let n = atoms.len();
    let volume = atoms.volume();
    if n < 4 || !volume.is_finite() || volume <= 0.0 {
        return false;
    }
    let tol = 2.0 * SYMPREC + 1e-9;
    // Every atom needs its SIGNATURE nearest neighbours in the list, and atom
    // 0 all neighbours within its chosen distances plus `tol`.
    let mut cutoff = 2.0 * (volume / n as f64).cbrt();
    for _ in 0..3 {
        let Ok(mut nl) = NeighbourList::new(cutoff, ListKind::Half) else { return false };
        if nl.build(&atoms.positions, &atoms.cell, [true; 3]).is_err() {
            return false;
        }
        match prove_identity(atoms, &nl, cutoff, tol) {
            Some(proved) => return proved,
            None => cutoff *= 1.3,
        }
    }
    false
}

/// [`only_identity`] with a list to `cutoff`; `None` when the list is too short to tell.
fn prove_identity(atoms: &Atoms, nl: &NeighbourList, cutoff: f64, tol: f64) -> Option<bool> {
    let n = atoms.len();
    // Each atom's distances, and atom 0's neighbours, from the half list.
    let mut distances = vec![Vec::new(); n];
    let mut near: Vec<(f64, [f64; 3])> = Vec::new();
    for (((&i, &j), &d), v) in nl.i().iter().zip(nl.j()).zip(nl.distances()).zip(nl.vectors()) {
        distances[i].push(d);
        distances[j].push(d);
        if i == 0 {
            near.push((d, *v));
        }
        if j == 0 {
            near.push((d, [-v[0], -v[1], -v[2]]));
        }
    }
    let mut signatures = Vec::with_capacity(n);
    for mut d in distances {
        if d.len() < SIGNATURE {
            return None;
        }
        d.select_nth_unstable_by(SIGNATURE - 1, f64::total_cmp);
        d.truncate(SIGNATURE);
        d.sort_unstable_by(f64::total_cmp);
        // Neighbours just past the list could displace the last ones.
        if d[SIGNATURE - 1] + tol >= cutoff {
            return None;
        }
        signatures.push(d);
    }
    let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol);
    if (1..n).any(|b| atoms.numbers[b] == atoms.numbers[0] && same(&signatures[0], &signatures[b])) {
        return Some(false);
    }
    // Atom 0's neighbours by distance; the unique ones, nearest first.
    near.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut unique: Vec<[f64; 3]> = Vec::new();
    for (k, &(d, v)) in near.iter().enumerate() {
        if d + tol >= cutoff {
            break;
        }
        let shared = near.iter().enumerate().any(|(m, &(e, _))| m != k && (e - d).abs() <= tol);
        if !shared {
            unique.push(v);
        }
    }
    // Three that span space well: any lattice rotation but the identity
    // moves one of them by a sizeable fraction of its length.
    for (a, va) in unique.iter().enumerate() {
        for (b, vb) in unique.iter().enumerate().skip(a + 1) {
            for vc in unique.iter().skip(b + 1) {
                let (ua, ub, uc) = (Vector3::from(*va), Vector3::from(*vb), Vector3::from(*vc));
                if ua.cross(&ub).dot(&uc).abs() >= 0.3 * ua.norm() * ub.norm() * uc.norm() {
                    return Some(true);
                }
            }
        }
    }
    // Not among these neighbours: a longer list may have them.
    None
}

/// The `info` text of the group [`only_identity`] proves, as [`describe`] gives it.
pub(crate) fn p1() -> String {
    with_symprec("1 P1")
}

/// `"GROUP @ 0.01"`: a group's text for `info`, with the precision it was found at.
fn with_symprec(group: &str) -> String {
    format!("{group} @ {SYMPREC}")
}

/// Text of a dataset for `info`: `"225 Fm-3m @ 0.01"` (number and spglib's
/// compact international symbol, as wfl prints them), or
/// `"none @ 0.01"` when there is no cell or no group.
pub(crate) fn describe(dataset: Option<&MoyoDataset>) -> String {
    match dataset {
        Some(d) => {
            let symbol: String = d.hm_symbol.split_whitespace().collect();
            with_symprec(&format!("{} {symbol}", d.number))
        }
        None => with_symprec("none"),
    }
}

impl Symmetry {
    /// The operations of `dataset` on `atoms`, with ASE's atom maps (nearest
    /// image in fractional coordinates).
    pub(crate) fn new(atoms: &Atoms, dataset: &MoyoDataset) -> Option<Symmetry> {
        let inv = mat(&atoms.cell).try_inverse()?;
        let frac: Vec<[f64; 3]> = atoms.positions.iter().map(|p| vec_mat(p, &inv)).collect();
        let mut rotations = Vec::with_capacity(dataset.operations.len());
        let mut translations = Vec::with_capacity(dataset.operations.len());
        let mut maps = Vec::with_capacity(dataset.operations.len());
        for op in &dataset.operations {
            let r = op.rotation.map(f64::from);
            let t = [op.translation[0], op.translation[1], op.translation[2]];
            let map = frac
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let img = apply(&r, &t, s);
                    nearest_image(&frac, &atoms.numbers, atoms.numbers[i], &img)
                })
                .collect();
            rotations.push(r);
            translations.push(t);
            maps.push(map);
        }
        Some(Symmetry { rotations, translations, maps })
    }

    /// Number of operations.
    pub(crate) fn len(&self) -> usize {
        self.rotations.len()
    }

    /// Symmetrises per-atom vectors (forces, steps) in place, as ASE's
    /// `symmetrize_rank1`; `scratch` is reused between calls.
    pub(crate) fn symmetrize_vectors(
        &self,
        cell: &[[f64; 3]; 3],
        v: &mut [[f64; 3]],
        scratch: &mut Vec<[f64; 3]>,
    ) -> Option<()> {
        let lattice = mat(cell);
        let inv = lattice.try_inverse()?;
        scratch.clear();
        scratch.resize(v.len(), [0.0; 3]);
        for (r, map) in self.rotations.iter().zip(&self.maps) {
            for (i, vi) in v.iter().enumerate() {
                let f = vec_mat(vi, &inv);
                let rf = r * Vector3::from(f);
                let out = &mut scratch[map[i]];
                for d in 0..3 {
                    out[d] += rf[d];
                }
            }
        }
        let n = self.len() as f64;
        for (vi, s) in v.iter_mut().zip(scratch.iter()) {
            *vi = vec_mat(&s.map(|x| x / n), &lattice);
        }
        Some(())
    }

    /// Symmetrises a Voigt stress in place, as ASE's `symmetrize_rank2`.
    pub(crate) fn symmetrize_stress(&self, cell: &[[f64; 3]; 3], stress: &mut [f64; 6]) -> Option<()> {
        let lattice = mat(cell);
        let inv = lattice.try_inverse()?;
        let scaled = lattice * voigt_to_matrix(stress) * lattice.transpose();
        let mut sum = Matrix3::zeros();
        for r in &self.rotations {
            sum += r.transpose() * scaled * r;
        }
        sum /= self.len() as f64;
        *stress = matrix_to_voigt(&(inv * sum * inv.transpose()));
        Some(())
    }

    /// Makes a nearly symmetric configuration exactly symmetric (ASE's
    /// `refine_symmetry` at FixSymmetry's start): the cell metric and the
    /// fractional positions are averaged over the operations, and the cell
    /// keeps its orientation.
    pub(crate) fn refine(&self, atoms: &mut Atoms) -> Option<()> {
        let lattice = mat(&atoms.cell);
        let inv = lattice.try_inverse()?;
        let metric = lattice * lattice.transpose();
        let mut sym_metric = Matrix3::zeros();
        for r in &self.rotations {
            sym_metric += r.transpose() * metric * r;
        }
        sym_metric /= self.len() as f64;
        // L' = G'^(1/2) G^(-1/2) L has metric G' and stays close to L.
        let new_lattice = spd_sqrt(&sym_metric)? * inverse(&spd_sqrt(&metric)?, "metric").ok()? * lattice;
        let frac: Vec<[f64; 3]> = atoms.positions.iter().map(|p| vec_mat(p, &inv)).collect();
        let mut sums = vec![[0.0; 3]; frac.len()];
        let mut counts = vec![0usize; frac.len()];
        for ((r, t), map) in self.rotations.iter().zip(&self.translations).zip(&self.maps) {
            for (j, s) in frac.iter().enumerate() {
                let i = map[j];
                let img = apply(r, t, s);
                for d in 0..3 {
                    sums[i][d] += img[d] - (img[d] - frac[i][d]).round();
                }
                counts[i] += 1;
            }
        }
        for ((p, s), c) in atoms.positions.iter_mut().zip(&sums).zip(&counts) {
            if *c > 0 {
                *p = vec_mat(&s.map(|x| x / *c as f64), &new_lattice);
            }
        }
        atoms.cell = rows(&new_lattice);
        Some(())
    }
}

/// `R s + t`.
fn apply(r: &Matrix3<f64>, t: &[f64; 3], s: &[f64; 3]) -> [f64; 3] {
    let rs = r * Vector3::from(*s);
    [rs[0] + t[0], rs[1] + t[1], rs[2] + t[2]]
}

/// The atom of species `z` nearest to fractional point `p` (modulo lattice
/// translations), by fractional distance as ASE's `prep_symmetry`.
fn nearest_image(frac: &[[f64; 3]], numbers: &[u8], z: u8, p: &[f64; 3]) -> usize {
    let mut best = (f64::INFINITY, 0);
    for (j, s) in frac.iter().enumerate() {
        if numbers[j] != z {
            continue;
        }
        let d2: f64 = (0..3).map(|d| (s[d] - p[d] - (s[d] - p[d]).round()).powi(2)).sum();
        if d2 < best.0 {
            best = (d2, j);
            if d2 < 1e-20 {
                break;
            }
        }
    }
    best.1
}

/// Square root of a symmetric positive-definite 3x3 matrix.
fn spd_sqrt(m: &Matrix3<f64>) -> Option<Matrix3<f64>> {
    let eig = m.symmetric_eigen();
    if eig.eigenvalues.iter().any(|&l| l <= 0.0) {
        return None;
    }
    let d = Matrix3::from_diagonal(&eig.eigenvalues.map(f64::sqrt));
    Some(eig.eigenvectors * d * eig.eigenvectors.transpose())
}

#[cfg(test)]
mod tests {
    use super::*;
    use autopara_testkit::fixtures::fcc;

    #[test]
    fn fcc_is_fm3m_and_symmetrised_forces_respect_it() {
        let mut at = fcc(29, 3.6, [1; 3]);
        // Break the symmetry below symprec: refinement must restore it.
        at.positions[1][0] += 0.002;
        let ds = detect(&at).unwrap();
        assert_eq!(ds.number, 225);
        assert_eq!(describe(Some(&ds)), "225 Fm-3m @ 0.01");
        let sym = Symmetry::new(&at, &ds).unwrap();
        sym.refine(&mut at).unwrap();
        // Exactly fcc again, up to a rigid shift of the whole crystal.
        let ideal = fcc(29, 3.6, [1; 3]);
        for (p, q) in at.positions.iter().zip(&ideal.positions) {
            for d in 0..3 {
                let shift = at.positions[0][d] - ideal.positions[0][d];
                assert!((p[d] - q[d] - shift).abs() < 1e-12, "{:?}", at.positions);
            }
        }
        // Any force field averaged over Fm-3m on the fcc sites is zero.
        let mut f = vec![[0.3, -0.1, 0.2], [0.0, 1.0, 0.0], [0.5, 0.5, 0.5], [-1.0, 0.0, 2.0]];
        sym.symmetrize_vectors(&at.cell, &mut f, &mut Vec::new()).unwrap();
        assert!(f.iter().flatten().all(|x| x.abs() < 1e-12), "{f:?}");
        // A cubic stress keeps only its isotropic part.
        let mut s = [1.0, 2.0, 3.0, 0.5, 0.1, -0.2];
        sym.symmetrize_stress(&at.cell, &mut s).unwrap();
        for (got, want) in s.iter().zip([2.0, 2.0, 2.0, 0.0, 0.0, 0.0]) {
            assert!((got - want).abs() < 1e-12, "{s:?}");
        }
    }

    #[test]
    fn the_identity_is_proved_only_where_moyo_finds_p1() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(3);
        let ideal = fcc(29, 3.61, [3; 3]);
        // Rattled well beyond symprec: proved, and moyo agrees.
        for _ in 0..5 {
            let mut at = ideal.clone();
            for p in &mut at.positions {
                for x in p.iter_mut() {
                    *x += rng.random_range(-0.15..0.15);
                }
            }
            assert!(only_identity(&at));
            assert_eq!(detect(&at).map(|d| d.number), Some(1));
            assert_eq!(describe(detect(&at).as_ref()), p1());
        }
        // Perfect, or rattled within symprec: not proved (moyo finds Fm-3m).
        let mut at = ideal.clone();
        assert!(!only_identity(&at));
        at.positions[5][1] += 0.003;
        assert!(!only_identity(&at));
        assert_eq!(detect(&at).map(|d| d.number), Some(225));
        // Random points and their inversions through the origin: every atom
        // has a partner with its distances, so not proved (moyo: P-1).
        let l = 10.0;
        let half: Vec<[f64; 3]> = (0..20).map(|_| std::array::from_fn(|_| rng.random_range(0.05..0.45) * l)).collect();
        let mut positions = half.clone();
        positions.extend(half.iter().map(|p| [l - p[0], l - p[1], l - p[2]]));
        let mut at = Atoms::new(vec![29; 40], positions);
        at.cell = [[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]];
        at.pbc = [true; 3];
        assert!(!only_identity(&at));
        assert_eq!(detect(&at).map(|d| d.number), Some(2));
        // The same points without their partners: proved, and moyo says P1.
        let mut at = Atoms::new(vec![29; 20], half);
        at.cell = [[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]];
        at.pbc = [true; 3];
        assert!(only_identity(&at));
        assert_eq!(detect(&at).map(|d| d.number), Some(1));
    }

    #[test]
    fn no_cell_means_no_symmetry() {
        let at = Atoms::new(vec![1, 1], vec![[0.0; 3], [0.7, 0.0, 0.0]]);
        assert!(detect(&at).is_none());
        assert_eq!(describe(None), "none @ 0.01");
    }
}
