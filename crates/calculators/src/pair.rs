//! The shared engine of pair potentials (Lennard-Jones, Morse): sums over a
//! half [`VerletList`], with ASE's conventions for per-atom energies (half of
//! each pair energy to each atom) and stress (`Σ f_ij ⊗ r_ij / V`, Voigt order
//! xx yy zz yz xz xy).

use crate::{check_finite, neighbour_error};
use autopara_core::{Atoms, CalcError, CalcResults, Calculator, Properties};
use autopara_geometry::cell;
use autopara_geometry::neighbours::{ListKind, VerletList, pair_vector};
use autopara_geometry::simd::{self, Kernel};
use autopara_geometry::vec3::norm2;

/// Verlet skin as a fraction of the cutoff (0.25 σ for LJ at 2.5 σ).
const SKIN_FRACTION: f64 = 0.1;

/// Outer-list margin as a fraction of the cutoff (1.5 σ for LJ at 2.5 σ): the
/// list is refreshed from the outer one every few steps and the outer list
/// rebuilt rarely. Both chosen by scanning on LAMMPS's LJ benchmark (64 x 108
/// atoms x 1000 steps: 2.6 CPU-s with one level and a 0.3 σ skin, 2.0 with
/// these; neighbouring values within 3 %).
const MARGIN_FRACTION: f64 = 0.6;

/// A pair energy `u(r)` inside its cutoff.
pub(crate) trait PairPotential: Send + 'static {
    /// `(u, (du/dr)/r)` at squared distance `r2` (at most the cutoff, above zero).
    fn eval(&self, r2: f64) -> (f64, f64);
}

/// A calculator summing a [`PairPotential`] over pairs within `cutoff`,
/// those exactly at it included: ASE's `LennardJones` zeroes only pairs with
/// `r² > rc²` (a shifted pair at `rc` has no energy but a force), and
/// `MorsePotential`'s terms vanish at its cutoff either way.
pub(crate) struct PairCalculator<P> {
    name: &'static str,
    potential: P,
    list: VerletList,
    scratch: Scratch,
}

impl<P: PairPotential> PairCalculator<P> {
    /// A calculator named `name` (ASE's class name) with pairs within `cutoff`.
    pub(crate) fn new(name: &'static str, potential: P, cutoff: f64) -> Result<PairCalculator<P>, CalcError> {
        let list = VerletList::new(cutoff, SKIN_FRACTION * cutoff, ListKind::Half)
            .map_err(neighbour_error)?
            .with_outer_margin(MARGIN_FRACTION * cutoff);
        Ok(PairCalculator { name, potential, list, scratch: Scratch::default() })
    }
}

impl<P: PairPotential> Calculator for PairCalculator<P> {
    fn name(&self) -> &str {
        self.name
    }

    fn calculate(&mut self, atoms: &Atoms, request: Properties, out: &mut CalcResults) -> Result<(), CalcError> {
        self.list.update(&atoms.positions, &atoms.cell, atoms.pbc).map_err(neighbour_error)?;
        let n = atoms.len();
        // Like ASE: no stress without a cell that has a volume (zero when it has none).
        let volume = cell::volume(&atoms.cell);
        let want_stress = request.stress && volume > 0.0;
        let want_energies = request.energies;
        out.forces.clear();
        out.forces.resize(n, [0.0; 3]);
        out.energies.clear();
        if want_energies {
            out.energies.resize(n, 0.0);
        }
        let sums = match (want_energies, want_stress) {
            (false, false) => self.sum::<false, false>(atoms, out),
            (true, false) => self.sum::<true, false>(atoms, out),
            (false, true) => self.sum::<false, true>(atoms, out),
            (true, true) => self.sum::<true, true>(atoms, out),
        };
        let (energy, virial) = sums?;
        out.energy = energy;
        out.stress = if want_stress { virial.map(|x| x / volume) } else { [0.0; 6] };
        out.computed = Properties { energy: true, forces: true, stress: want_stress, energies: want_energies };
        check_finite(self.name, out)
    }
}

impl<P: PairPotential> PairCalculator<P> {
    /// Energy and virial, adding forces (and per-atom energies with `E`) to
    /// `out`, through [`PairSum`] compiled for the widest vector unit.
    fn sum<const E: bool, const S: bool>(
        &mut self,
        atoms: &Atoms,
        out: &mut CalcResults,
    ) -> Result<(f64, [f64; 6]), CalcError> {
        let (energy, virial, overlap) = simd::run(PairSum::<P, E, S> {
            potential: &self.potential,
            list: &self.list,
            positions: &atoms.positions,
            forces: &mut out.forces,
            energies: &mut out.energies,
            scratch: &mut self.scratch,
        });
        if overlap {
            return Err(overlap_error(&self.list, &atoms.positions));
        }
        Ok((energy, virial))
    }
}

/// One centre's pairs as arrays: each pair's vector, force and energy.
#[derive(Debug, Default)]
struct Scratch {
    d: [Vec<f64>; 3],
    f: [Vec<f64>; 3],
    u: Vec<f64>,
}

impl Scratch {
    /// Room for `m` pairs in every array.
    fn reserve(&mut self, m: usize) {
        if self.u.len() < m {
            for v in self.d.iter_mut().chain(self.f.iter_mut()).chain([&mut self.u]) {
                v.resize(m, 0.0);
            }
        }
    }
}

/// The pair loop over the stored pairs, centre by centre, in two passes:
/// every pair's vector, energy and force in one loop without branches, which
/// the compiler vectorises (gathering the neighbours' positions and shifts;
/// the division and the powers of a pair are most of its cost), then the
/// sums, in the list's order. Pairs beyond the cutoff (in the skin;
/// `r² > rc²`) are evaluated and masked to zero rather than branched over
/// (a third of them, at random). Masked terms are signed zeros, so sums
/// equal those over the pairs within the cutoff except for the sign of an
/// exact zero, which the final `+ 0.0` makes positive. Returns the energy,
/// the virial and whether two atoms coincide.
struct PairSum<'a, P, const E: bool, const S: bool> {
    potential: &'a P,
    list: &'a VerletList,
    positions: &'a [[f64; 3]],
    forces: &'a mut [[f64; 3]],
    energies: &'a mut [f64],
    scratch: &'a mut Scratch,
}

impl<P: PairPotential, const E: bool, const S: bool> Kernel for PairSum<'_, P, E, S> {
    type Output = (f64, [f64; 6], bool);

    #[inline(always)]
    fn run(self) -> (f64, [f64; 6], bool) {
        let cut2 = self.list.cutoff() * self.list.cutoff();
        let (positions, forces, energies) = (self.positions, self.forces, self.energies);
        let shifts = self.list.shift_vectors();
        let mut energy = 0.0;
        let mut virial = [0.0; 6];
        let mut overlap = false;
        for (i, pi) in positions.iter().enumerate() {
            let pairs = self.list.centre_indices(i);
            let m = pairs.len();
            self.scratch.reserve(m);
            let Scratch { d: [dx, dy, dz], f: [fx, fy, fz], u: us } = &mut *self.scratch;
            let (dx, dy, dz) = (&mut dx[..m], &mut dy[..m], &mut dz[..m]);
            let (fx, fy, fz, us) = (&mut fx[..m], &mut fy[..m], &mut fz[..m], &mut us[..m]);
            for (k, &(j, s)) in pairs.iter().enumerate() {
                let d = pair_vector(pi, &positions[j as usize], &shifts[s as usize]);
                (dx[k], dy[k], dz[k]) = (d[0], d[1], d[2]);
            }
            for k in 0..m {
                let d = [dx[k], dy[k], dz[k]];
                let r2 = norm2(d);
                overlap |= r2 == 0.0;
                let (u, g) = self.potential.eval(r2);
                let inside = r2 <= cut2;
                let (u, g) = (if inside { u } else { 0.0 }, if inside { g } else { 0.0 });
                (fx[k], fy[k], fz[k], us[k]) = (g * d[0], g * d[1], g * d[2], u);
            }
            let mut fi = [0.0; 3];
            let mut ei = 0.0;
            for k in 0..m {
                let (j, u, f) = (pairs[k].0 as usize, us[k], [fx[k], fy[k], fz[k]]);
                energy += u;
                fi = [fi[0] + f[0], fi[1] + f[1], fi[2] + f[2]];
                let fj = &mut forces[j];
                *fj = [fj[0] - f[0], fj[1] - f[1], fj[2] - f[2]];
                if E {
                    ei += 0.5 * u;
                    energies[j] += 0.5 * u;
                }
                if S {
                    add_virial(&mut virial, f, [dx[k], dy[k], dz[k]]);
                }
            }
            let fa = &mut forces[i];
            *fa = [fa[0] + fi[0] + 0.0, fa[1] + fi[1] + 0.0, fa[2] + fi[2] + 0.0];
            if E {
                energies[i] += ei + 0.0;
            }
        }
        (energy + 0.0, virial.map(|x| x + 0.0), overlap)
    }
}

/// The error for coinciding atoms, naming the first such pair of `list` at
/// `positions` (rare: the pair loops only note that one exists).
pub(crate) fn overlap_error(list: &VerletList, positions: &[[f64; 3]]) -> CalcError {
    let mut pair = None;
    list.for_each_pair(positions, |i, j, _, r2| {
        if r2 == 0.0 {
            pair.get_or_insert((i, j));
        }
    });
    let (i, j) = pair.unwrap_or_default();
    CalcError::Overlap { i, j, distance: 0.0 }
}

/// Adds `f ⊗ d` of one pair to a Voigt virial (xx yy zz yz xz xy); `f ∥ d`, so it is symmetric.
#[inline]
pub(crate) fn add_virial(virial: &mut [f64; 6], f: [f64; 3], d: [f64; 3]) {
    virial[0] += f[0] * d[0];
    virial[1] += f[1] * d[1];
    virial[2] += f[2] * d[2];
    virial[3] += f[1] * d[2];
    virial[4] += f[0] * d[2];
    virial[5] += f[0] * d[1];
}

#[cfg(test)]
mod tests {
    use crate::LennardJones;
    use autopara_core::{Atoms, CalcResults, CalculatorSpec, Properties};
    use autopara_testkit::fixtures::fcc;

    /// Energy, forces, per-atom energies and virial by summing over every
    /// pair and image directly (shifted Lennard-Jones, σ = ε = 1).
    fn brute_force(at: &Atoms, rc: f64) -> (f64, Vec<[f64; 3]>, Vec<f64>, [f64; 6]) {
        let n = at.len();
        let shift = 4.0 * (rc.powi(-12) - rc.powi(-6));
        let (mut e, mut f, mut ea, mut w) = (0.0, vec![[0.0; 3]; n], vec![0.0; n], [0.0; 6]);
        let c = at.cell;
        for i in 0..n {
            for j in 0..n {
                for (a, b, k) in itertools_cube(3) {
                    if i == j && (a, b, k) == (0, 0, 0) {
                        continue;
                    }
                    let s = [a as f64, b as f64, k as f64];
                    let d: [f64; 3] = std::array::from_fn(|x| {
                        at.positions[j][x] - at.positions[i][x] + s[0] * c[0][x] + s[1] * c[1][x] + s[2] * c[2][x]
                    });
                    let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                    if r2 > rc * rc {
                        continue;
                    }
                    let (c6, c12) = (r2.powi(-3), r2.powi(-6));
                    let u = 4.0 * (c12 - c6) - shift;
                    let g = -24.0 * (2.0 * c12 - c6) / r2;
                    // Each ordered pair once: half of everything.
                    e += 0.5 * u;
                    ea[i] += 0.5 * u;
                    for x in 0..3 {
                        f[i][x] += 0.5 * g * d[x];
                        f[j][x] -= 0.5 * g * d[x];
                    }
                    let v = [d[0] * d[0], d[1] * d[1], d[2] * d[2], d[1] * d[2], d[0] * d[2], d[0] * d[1]];
                    for (w, v) in w.iter_mut().zip(v) {
                        *w += 0.5 * g * v;
                    }
                }
            }
        }
        (e, f, ea, w)
    }

    fn itertools_cube(r: i32) -> impl Iterator<Item = (i32, i32, i32)> {
        (-r..=r).flat_map(move |a| (-r..=r).flat_map(move |b| (-r..=r).map(move |c| (a, b, c))))
    }

    /// The vectorised pair loop (pair vectors, then masked energies and
    /// forces, then the sums through per-centre arrays reused between
    /// centres of different pair counts) gives the direct sum, through list
    /// builds and refreshes.
    #[test]
    fn pair_loop_equals_the_direct_sum() {
        let rc = 2.5;
        let spec = LennardJones { sigma: 1.0, epsilon: 1.0, rc, ro: 0.66 * rc, smooth: false };
        let mut calc = spec.build().unwrap();
        let mut at = fcc(18, 1.7, [2, 2, 3]);
        let mut out = CalcResults::default();
        for step in 0..6 {
            for (n, p) in at.positions.iter_mut().enumerate() {
                let jitter = |phase: f64| 0.05 * (n as f64 * 1.7 + step as f64 * 0.9 + phase).sin();
                *p = [p[0] + jitter(0.0), p[1] + jitter(1.0), p[2] + jitter(2.0)];
            }
            calc.calculate(&at, Properties::ALL, &mut out).unwrap();
            let (e, f, ea, w) = brute_force(&at, rc);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * (1.0 + b.abs());
            assert!(close(out.energy, e), "step {step}: energy {} vs {e}", out.energy);
            for i in 0..at.len() {
                assert!(close(out.energies[i], ea[i]), "step {step}, atom {i}: {} vs {}", out.energies[i], ea[i]);
                for x in 0..3 {
                    assert!(
                        close(out.forces[i][x], f[i][x]),
                        "step {step}, atom {i}: {:?} vs {:?}",
                        out.forces[i],
                        f[i]
                    );
                }
            }
            let volume = at.volume();
            for (x, (s, w)) in out.stress.iter().zip(w).enumerate() {
                assert!(close(s * volume, w), "step {step}: virial {x}: {} vs {w}", s * volume);
            }
        }
    }
}
