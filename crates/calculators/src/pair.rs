//! The shared engine of pair potentials (Lennard-Jones, Morse): sums over a
//! half [`VerletList`], with ASE's conventions for per-atom energies (half of
//! each pair energy to each atom) and stress (`Σ f_ij ⊗ r_ij / V`, Voigt order
//! xx yy zz yz xz xy).

use crate::{check_finite, neighbour_error};
use autopara_core::{Atoms, CalcError, CalcResults, Calculator, Properties};
use autopara_geometry::cell;
use autopara_geometry::neighbours::{ListKind, VerletList, pair_vector};
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
}

impl<P: PairPotential> PairCalculator<P> {
    /// A calculator named `name` (ASE's class name) with pairs within `cutoff`.
    pub(crate) fn new(name: &'static str, potential: P, cutoff: f64) -> Result<PairCalculator<P>, CalcError> {
        let list = VerletList::new(cutoff, SKIN_FRACTION * cutoff, ListKind::Half)
            .map_err(neighbour_error)?
            .with_outer_margin(MARGIN_FRACTION * cutoff);
        Ok(PairCalculator { name, potential, list })
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
    /// `out`: one pass over the stored pairs, centre by centre. Pairs beyond
    /// the cutoff (in the skin; `r² > rc²`) are evaluated and masked to zero rather than
    /// branched over (a third of them, at random: mispredictions cost more).
    /// Masked terms are signed zeros, so sums equal those over the pairs
    /// within the cutoff except for the sign of an exact zero, which the
    /// final `+ 0.0` makes positive.
    fn sum<const E: bool, const S: bool>(
        &self,
        atoms: &Atoms,
        out: &mut CalcResults,
    ) -> Result<(f64, [f64; 6]), CalcError> {
        let cut2 = self.list.cutoff() * self.list.cutoff();
        let positions = &atoms.positions;
        let (forces, energies) = (&mut out.forces, &mut out.energies);
        let mut energy = 0.0;
        let mut virial = [0.0; 6];
        let mut overlap = false;
        for (i, pi) in positions.iter().enumerate() {
            let mut fi = [0.0; 3];
            let mut ei = 0.0;
            for (j, s) in self.list.centre(i) {
                let d = pair_vector(pi, &positions[j], s);
                let r2 = norm2(d);
                overlap |= r2 == 0.0;
                let (u, g) = self.potential.eval(r2);
                let inside = inside_mask(r2 <= cut2);
                let (u, g) = (f64::from_bits(u.to_bits() & inside), f64::from_bits(g.to_bits() & inside));
                let f = [g * d[0], g * d[1], g * d[2]];
                energy += u;
                fi = [fi[0] + f[0], fi[1] + f[1], fi[2] + f[2]];
                let fj = &mut forces[j];
                *fj = [fj[0] - f[0], fj[1] - f[1], fj[2] - f[2]];
                if E {
                    ei += 0.5 * u;
                    energies[j] += 0.5 * u;
                }
                if S {
                    add_virial(&mut virial, f, d);
                }
            }
            let fa = &mut forces[i];
            *fa = [fa[0] + fi[0] + 0.0, fa[1] + fi[1] + 0.0, fa[2] + fi[2] + 0.0];
            if E {
                energies[i] += ei + 0.0;
            }
        }
        if overlap {
            return Err(overlap_error(&self.list, positions));
        }
        Ok((energy + 0.0, virial.map(|x| x + 0.0)))
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

/// All ones when `inside`, else zero: a mask that keeps a pair's terms or
/// makes them `+0.0`. The compiler turns a select into a branch, which
/// mispredicts on pairs at random distances; one mask for all of a pair's
/// terms keeps the cost of hiding it from the optimizer to one.
#[inline]
fn inside_mask(inside: bool) -> u64 {
    // Opaque to the optimizer, which would otherwise see through the mask
    // and branch around the arithmetic it zeroes.
    std::hint::black_box(u64::from(inside).wrapping_neg())
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
