//! Effective medium theory, as ASE's `ase.calculators.emt.EMT` (3.28): its
//! parameter table (Al, Cu, Ag, Au, Ni, Pd, Pt, and the "just for fun" H, C,
//! N, O), its logistic cutoff and neighbour radius, the `asap_cutoff` option,
//! per-atom energies with E0 subtracted (ASAP's convention), forces and stress.
//!
//! Following Jacobsen, Stoltze and Nørskov, Surf. Sci. 366, 394 (1996): each
//! atom's neighbour density `σ₁ = Σ χ e^{−η₂(r − βs₀)} w(r)` gives its
//! Wigner-Seitz radius `s = −ln(σ₁/12γ₁)/(βη₂)`, the cohesive function
//! `E_c(s) = E₀(1 + λs)e^{−λs} + 6V₀e^{−κs}`, and the atomic-sphere correction
//! `−V₀/(2γ₂) Σ χ e^{−κ(r/β − s₀)} w(r)` (pairwise, split evenly).
//!
//! ```
//! use autopara_core::{Atoms, CalcResults, CalculatorSpec, Properties};
//! let spec: Box<dyn CalculatorSpec> = serde_json::from_str(r#"{"type": "emt"}"#).unwrap();
//! let mut calc = spec.build().unwrap();
//! let a = 3.6;
//! let mut cu = Atoms::new(vec![29; 4], vec![[0.0; 3], [0.0, a / 2.0, a / 2.0], [a / 2.0, 0.0, a / 2.0], [a / 2.0, a / 2.0, 0.0]]);
//! cu.cell = [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]];
//! cu.pbc = [true; 3];
//! let mut out = CalcResults::default();
//! calc.calculate(&cu, Properties::ALL, &mut out).unwrap();
//! assert!(out.energy.abs() < 0.1); // EMT energies are relative to the fcc metal
//! assert_eq!(calc.name(), "EMT");
//! ```

use crate::pair::{add_virial, overlap_error};
use crate::{check_finite, neighbour_error};
use autopara_core::elements::symbol;
use autopara_core::{Atoms, CalcError, CalcResults, Calculator, CalculatorInfo, CalculatorSpec, Properties};
use autopara_geometry::cell;
use autopara_geometry::neighbours::{ListKind, VerletList, pair_vector};
use autopara_geometry::simd::{self, Kernel};
use autopara_geometry::vec3::norm2;
use serde::{Deserialize, Serialize};

/// The `emt` calculator spec (ASE's `EMT`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Emt {
    /// Cutoff as ASAP: from the largest element present (not the whole table),
    /// neighbour radius 1.045 rc instead of rc + 0.5 Å. Default false.
    #[serde(default)]
    pub asap_cutoff: bool,
}

#[typetag::serde(name = "emt")]
impl CalculatorSpec for Emt {
    fn build(&self) -> Result<Box<dyn Calculator>, CalcError> {
        Ok(Box::new(EmtCalculator::new(self.asap_cutoff)))
    }
}

inventory::submit! {
    CalculatorInfo {
        name: "emt",
        aliases: &["EMT"],
        summary: "effective medium theory for Al Cu Ag Au Ni Pd Pt (and toy H C N O), as ASE's EMT",
        fields: &[("asap_cutoff", "bool, default false: cutoff from the elements present, as ASAP")],
    }
}

/// `ase.units.Bohr` in Å.
const BOHR: f64 = 0.5291772105638411;

/// Verlet skin as a fraction of the list cutoff (0.7 Å for the whole table's 5.9 Å).
const SKIN_FRACTION: f64 = 0.12;

/// ASE's β = (16π/3)^(1/3)/√2 with its historical rounding.
const BETA: f64 = 1.809;

/// ASE's table: symbol, E0 (eV), s0 (bohr), V0 (eV), η₂, κ, λ (1/bohr), n0 (1/bohr³).
const PARAMETERS: [(&str, u8, [f64; 7]); 11] = [
    ("Al", 13, [-3.28, 3.00, 1.493, 1.240, 2.000, 1.169, 0.00700]),
    ("Cu", 29, [-3.51, 2.67, 2.476, 1.652, 2.740, 1.906, 0.00910]),
    ("Ag", 47, [-2.96, 3.01, 2.132, 1.652, 2.790, 1.892, 0.00547]),
    ("Au", 79, [-3.80, 3.00, 2.321, 1.674, 2.873, 2.182, 0.00703]),
    ("Ni", 28, [-4.44, 2.60, 3.673, 1.669, 2.757, 1.948, 0.01030]),
    ("Pd", 46, [-3.90, 2.87, 2.773, 1.818, 3.107, 2.155, 0.00688]),
    ("Pt", 78, [-5.85, 2.90, 4.067, 1.812, 3.145, 2.192, 0.00802]),
    ("H", 1, [-3.21, 1.31, 0.132, 2.652, 2.790, 3.892, 0.00547]),
    ("C", 6, [-3.50, 1.81, 0.332, 1.652, 2.790, 1.892, 0.01322]),
    ("N", 7, [-5.10, 1.88, 0.132, 1.652, 2.790, 1.892, 0.01222]),
    ("O", 8, [-4.60, 1.95, 0.332, 1.652, 2.790, 1.892, 0.00850]),
];

/// Index into [`PARAMETERS`] by atomic number.
fn table_index(z: u8) -> Option<usize> {
    PARAMETERS.iter().position(|p| p.1 == z)
}

/// One element's parameters in eV and Å, with the γ-derived constants.
#[derive(Debug, Clone, Copy, Default)]
struct Element {
    e0: f64,
    s0: f64,
    v0: f64,
    eta2: f64,
    kappa: f64,
    lambda: f64,
    n0: f64,
    inv12gamma1: f64,
    neg_half_v0_over_gamma2: f64,
}

/// The cutoff: logistic midpoint `rc`, slope `acut` and neighbour radius.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cutoff {
    rc: f64,
    acut: f64,
    rc_list: f64,
}

impl Cutoff {
    /// ASE's `_calc_cutoff` from the largest s0 among `elements` (table indices).
    fn new(elements: impl Iterator<Item = usize>, asap: bool) -> Cutoff {
        let maxseq = elements.map(|k| PARAMETERS[k].2[1]).fold(f64::NEG_INFINITY, f64::max) * BOHR;
        let r1nn = BETA * maxseq;
        let rc = r1nn * 0.5 * (3f64.sqrt() + 2.0);
        let r4nn = r1nn * 2.0;
        let eps: f64 = 1e-4;
        let acut = (1.0 / eps - 1.0).ln() / (r4nn - rc);
        let rc_list = if asap { rc * 1.045 } else { rc + 0.5 };
        Cutoff { rc, acut, rc_list }
    }

    /// The logistic `w(r)` and `(dw/dr)/w`. Where `acut (r − rc) < −37`,
    /// `e^x < 2^-53` and `1 + e^x` rounds to 1, so `w` is exactly 1 and the
    /// derivative exactly 0 (the first two neighbour shells).
    #[inline(always)]
    fn theta(&self, r: f64) -> (f64, f64) {
        let w = 1.0 / (1.0 + simd::exp(self.acut * (r - self.rc)));
        (w, self.acut * (w - 1.0))
    }
}

impl Element {
    fn new(k: usize, cut: &Cutoff) -> Element {
        let [e0, s0, v0, eta2, kappa, lambda, n0] = PARAMETERS[k].2;
        let (s0, eta2, kappa) = (s0 * BOHR, eta2 / BOHR, kappa / BOHR);
        // γ₁, γ₂: sums over the first three fcc shells (12, 6, 24 sites).
        let (mut gamma1, mut gamma2) = (0.0, 0.0);
        for (count, shell) in [(12.0, 1.0f64), (6.0, 2.0), (24.0, 3.0)] {
            let r = BETA * s0 * shell.sqrt();
            let (w, _) = cut.theta(r);
            let x = count * w / 12.0;
            gamma1 += x * (-eta2 * (r - BETA * s0)).exp();
            gamma2 += x * (-kappa / BETA * (r - BETA * s0)).exp();
        }
        Element {
            e0,
            s0,
            v0,
            eta2,
            kappa,
            lambda: lambda / BOHR,
            n0: n0 / (BOHR * BOHR * BOHR),
            inv12gamma1: 1.0 / (12.0 * gamma1),
            neg_half_v0_over_gamma2: -0.5 * v0 / gamma2,
        }
    }
}

/// The pairs within the cutoff as arrays, filled from the Verlet list, and
/// the terms [`PairTerms`] derives from each for the later passes.
#[derive(Debug, Default)]
struct Pairs {
    /// Centre i's pairs are at `ends[i − 1]..ends[i]` (from 0 for the first).
    ends: Vec<usize>,
    i: Vec<u32>,
    j: Vec<u32>,
    d: Vec<[f64; 3]>,
    r2: Vec<f64>,
    inv_r: Vec<f64>,
    dwdroverw: Vec<f64>,
    /// Contribution of j to σ₁(i), and of i to σ₁(j).
    dsigma1_ij: Vec<f64>,
    dsigma1_ji: Vec<f64>,
    /// The atomic-sphere energy given to each of i and j.
    half_as: Vec<f64>,
    /// dE/dr of the atomic-sphere term.
    dedr_as: Vec<f64>,
}

impl Pairs {
    /// Room for `n` pairs in every array.
    fn resize(&mut self, n: usize) {
        self.i.resize(n, 0);
        self.j.resize(n, 0);
        self.d.resize(n, [0.0; 3]);
        for v in [
            &mut self.r2,
            &mut self.inv_r,
            &mut self.dwdroverw,
            &mut self.dsigma1_ij,
            &mut self.dsigma1_ji,
            &mut self.half_as,
            &mut self.dedr_as,
        ] {
            v.resize(n, 0.0);
        }
    }
}

/// The per-pair terms of the first `len` pairs: the exponentials of the
/// density, the atomic-sphere term and the cutoff, all pairs at once so that
/// the loop vectorises. `UNIFORM`: every atom is of species `uniform`.
struct PairTerms<'a, const UNIFORM: bool> {
    cut: Cutoff,
    params: &'a [Element; 11],
    chi: &'a [[f64; 11]; 11],
    species: &'a [usize],
    uniform: usize,
    pairs: &'a mut Pairs,
    len: usize,
}

impl<const UNIFORM: bool> Kernel for PairTerms<'_, UNIFORM> {
    /// Whether two atoms coincide (the terms are then meaningless).
    type Output = bool;

    #[inline(always)]
    fn run(self) -> bool {
        let (n, p) = (self.len, self.pairs);
        let (pi_, pj_, r2) = (&p.i[..n], &p.j[..n], &p.r2[..n]);
        let inv_r = &mut p.inv_r[..n];
        let dwdroverw = &mut p.dwdroverw[..n];
        let dsigma1_ij = &mut p.dsigma1_ij[..n];
        let dsigma1_ji = &mut p.dsigma1_ji[..n];
        let half_as = &mut p.half_as[..n];
        let dedr_as = &mut p.dedr_as[..n];
        let mut overlap = false;
        for k in 0..n {
            let (si, sj) = if UNIFORM {
                (self.uniform, self.uniform)
            } else {
                (self.species[pi_[k] as usize], self.species[pj_[k] as usize])
            };
            let (pi, pj) = (&self.params[si], &self.params[sj]);
            let r = r2[k].sqrt();
            let (w, dw) = self.cut.theta(r);
            // Decay of j's density seen by i (and of i's seen by j).
            let e1_j = simd::exp(-pj.eta2 * (r - BETA * pj.s0));
            let e2_j = simd::exp(-pj.kappa * (r / BETA - pj.s0));
            let (e1_i, e2_i) = if UNIFORM {
                (e1_j, e2_j)
            } else {
                (simd::exp(-pi.eta2 * (r - BETA * pi.s0)), simd::exp(-pi.kappa * (r / BETA - pi.s0)))
            };
            let (chi_ij, chi_ji) = if UNIFORM { (1.0, 1.0) } else { (self.chi[si][sj], self.chi[sj][si]) };
            dsigma1_ij[k] = e1_j * chi_ij * w;
            dsigma1_ji[k] = e1_i * chi_ji * w;
            let es = pi.neg_half_v0_over_gamma2 * e2_j * chi_ij * w;
            let eo = pj.neg_half_v0_over_gamma2 * e2_i * chi_ji * w;
            half_as[k] = 0.5 * (es + eo);
            dedr_as[k] = es * (dw - pj.kappa / BETA) + eo * (dw - pi.kappa / BETA);
            dwdroverw[k] = dw;
            inv_r[k] = 1.0 / r;
            overlap |= r2[k] == 0.0;
        }
        overlap
    }
}

/// The EMT calculator: the parameter tables for the current element set, a
/// Verlet list, and per-atom and per-pair buffers reused between calls.
struct EmtCalculator {
    asap: bool,
    /// Element set (bit k = table row k) the tables below were made for.
    elements: u16,
    cutoff: Cutoff,
    params: [Element; 11],
    /// `χ[a][b] = n0(b)/n0(a)`.
    chi: [[f64; 11]; 11],
    list: Option<VerletList>,
    species: Vec<usize>,
    sigma1: Vec<f64>,
    deds: Vec<f64>,
    pairs: Pairs,
}

impl EmtCalculator {
    fn new(asap: bool) -> EmtCalculator {
        let mut calc = EmtCalculator {
            asap,
            elements: 0,
            cutoff: Cutoff { rc: 0.0, acut: 0.0, rc_list: 0.0 },
            params: [Element::default(); 11],
            chi: [[0.0; 11]; 11],
            list: None,
            species: Vec::new(),
            sigma1: Vec::new(),
            deds: Vec::new(),
            pairs: Pairs::default(),
        };
        if !asap {
            // The whole table sets the cutoff: one set of tables for all configs.
            calc.set_elements((1u16 << PARAMETERS.len()) - 1);
        }
        calc
    }

    /// Rebuilds the tables (and the list, if the radius changes) for an element set.
    fn set_elements(&mut self, set: u16) {
        let members = (0..PARAMETERS.len()).filter(move |k| set & (1 << k) != 0);
        let cutoff = Cutoff::new(members.clone(), self.asap);
        for k in 0..PARAMETERS.len() {
            self.params[k] = Element::new(k, &cutoff);
        }
        for a in 0..PARAMETERS.len() {
            for b in 0..PARAMETERS.len() {
                self.chi[a][b] = self.params[b].n0 / self.params[a].n0;
            }
        }
        if cutoff != self.cutoff {
            self.list = None;
        }
        self.cutoff = cutoff;
        self.elements = set;
    }

    /// Maps atoms to table rows, rejecting elements without parameters;
    /// returns the set of rows present (bit k = row k).
    fn assign_species(&mut self, atoms: &Atoms) -> Result<u16, CalcError> {
        self.species.clear();
        let mut set = 0u16;
        for &z in &atoms.numbers {
            let k = table_index(z).ok_or_else(|| CalcError::UnsupportedElement {
                calculator: "EMT".into(),
                z,
                symbol: symbol(z).to_string(),
            })?;
            set |= 1 << k;
            self.species.push(k);
        }
        if self.asap && set != self.elements && set != 0 {
            self.set_elements(set);
        }
        Ok(set)
    }
}

impl Calculator for EmtCalculator {
    fn name(&self) -> &str {
        "EMT"
    }

    fn calculate(&mut self, atoms: &Atoms, request: Properties, out: &mut CalcResults) -> Result<(), CalcError> {
        // Zero when the cell has no volume.
        let volume = cell::volume(&atoms.cell);
        if request.stress && volume == 0.0 {
            return Err(CalcError::Unsupported {
                calculator: "EMT".into(),
                property: "stress",
                reason: "the cell has no volume".into(),
            });
        }
        let present = self.assign_species(atoms)?;
        let n = atoms.len();
        if n == 0 {
            *out =
                CalcResults { computed: Properties { stress: volume > 0.0, ..Properties::ALL }, ..Default::default() };
            return Ok(());
        }
        let cut = self.cutoff;
        let list = match &mut self.list {
            Some(list) => list,
            slot => slot.insert(
                VerletList::new(cut.rc_list, SKIN_FRACTION * cut.rc_list, ListKind::Half).map_err(neighbour_error)?,
            ),
        };
        list.update(&atoms.positions, &atoms.cell, atoms.pbc).map_err(neighbour_error)?;

        out.energies.clear();
        out.energies.resize(n, 0.0);
        out.forces.clear();
        out.forces.resize(n, [0.0; 3]);
        self.sigma1.clear();
        self.sigma1.resize(n, 0.0);
        self.deds.clear();
        self.deds.resize(n, 0.0);

        // Pass 1: the pairs within the cutoff into arrays, without branching
        // on the distance (a third of the stored pairs lie in the skin, at random).
        let pairs = &mut self.pairs;
        pairs.resize(list.stored_pairs());
        let cut2 = list.cutoff() * list.cutoff();
        let mut len = 0;
        pairs.ends.clear();
        let shifts = list.shift_vectors();
        let (pi_, pj_, pd, pr2) = (&mut pairs.i[..], &mut pairs.j[..], &mut pairs.d[..], &mut pairs.r2[..]);
        for (i, pi) in atoms.positions.iter().enumerate() {
            for &(j, s) in list.centre_indices(i) {
                let d = pair_vector(pi, &atoms.positions[j as usize], &shifts[s as usize]);
                let r2 = norm2(d);
                // Stored pairs bound those within the cutoff, and atom indices fit u32.
                (pi_[len], pj_[len], pd[len], pr2[len]) = (i as u32, j, d, r2);
                len += usize::from(r2 < cut2);
            }
            pairs.ends.push(len);
        }

        // Pass 2: the per-pair terms, vectorised.
        let species = &self.species;
        let uniform = (present.count_ones() == 1).then(|| present.trailing_zeros() as usize);
        let (cut, params, chi) = (self.cutoff, &self.params, &self.chi);
        let overlap = match uniform {
            Some(uniform) => simd::run(PairTerms::<true> { cut, params, chi, species, uniform, pairs, len }),
            None => simd::run(PairTerms::<false> { cut, params, chi, species, uniform: 0, pairs, len }),
        };
        if overlap {
            return Err(overlap_error(list, &atoms.positions));
        }

        // Pass 3: neighbour densities σ₁ and the atomic-sphere energies,
        // centre by centre (the centre's sums in registers).
        let (sigma1, energies) = (&mut self.sigma1[..], &mut out.energies[..]);
        let (pj_, ds_ij, ds_ji, half_as) =
            (&pairs.j[..], &pairs.dsigma1_ij[..], &pairs.dsigma1_ji[..], &pairs.half_as[..]);
        let mut start = 0;
        for (i, &end) in pairs.ends.iter().enumerate() {
            let (mut sigma_i, mut energy_i) = (0.0, 0.0);
            for k in start..end {
                let j = pj_[k] as usize;
                sigma_i += ds_ij[k];
                sigma1[j] += ds_ji[k];
                energy_i += half_as[k];
                energies[j] += half_as[k];
            }
            sigma1[i] += sigma_i;
            energies[i] += energy_i;
            start = end;
        }

        // Pass 4: cohesive energy E_c(s) of every atom with neighbours, and dE/dσ₁.
        for a in 0..n {
            let s1 = self.sigma1[a];
            if s1 <= 0.0 {
                continue; // no neighbours: ASE skips the atom
            }
            let p = &self.params[self.species[a]];
            let ds = -(s1 * p.inv12gamma1).ln() / (BETA * p.eta2);
            let lds = p.lambda * ds;
            let exp_lds = (-lds).exp();
            let six_v0 = 6.0 * p.v0 * (-p.kappa * ds).exp();
            out.energies[a] += p.e0 * (1.0 + lds) * exp_lds + six_v0;
            let deds = -p.e0 * p.lambda * lds * exp_lds - p.kappa * six_v0;
            self.deds[a] = deds / (-BETA * p.eta2 * s1);
        }

        // Pass 5: forces (and the virial) from dE/dr of each pair.
        let want_stress = request.stress && volume > 0.0;
        let virial = match (want_stress, uniform.is_some()) {
            (true, true) => self.forces::<true, true>(&mut out.forces),
            (true, false) => self.forces::<true, false>(&mut out.forces),
            (false, true) => self.forces::<false, true>(&mut out.forces),
            (false, false) => self.forces::<false, false>(&mut out.forces),
        };

        // Energies relative to the reference metal (ASAP's convention).
        for (e, &k) in out.energies.iter_mut().zip(&self.species) {
            *e -= self.params[k].e0;
        }
        out.energy = out.energies.iter().sum();
        out.stress = if want_stress { virial.map(|x| x / volume) } else { [0.0; 6] };
        out.computed = Properties { energy: true, forces: true, stress: want_stress, energies: true };
        check_finite("EMT", out)
    }
}

impl EmtCalculator {
    /// Adds each pair's force from its dE/dr, centre by centre (the centre's
    /// sum in registers), given dE/dσ₁ per atom; the virial with `S`;
    /// `UNIFORM`: every atom is of one species.
    fn forces<const S: bool, const UNIFORM: bool>(&self, forces: &mut [[f64; 3]]) -> [f64; 6] {
        let mut virial = [0.0; 6];
        let p = &self.pairs;
        let (species, params, deds) = (&self.species[..], &self.params, &self.deds[..]);
        let (pj_, dwdroverw, ds_ij, ds_ji) = (&p.j[..], &p.dwdroverw[..], &p.dsigma1_ij[..], &p.dsigma1_ji[..]);
        let (dedr_as, inv_r, pd) = (&p.dedr_as[..], &p.inv_r[..], &p.d[..]);
        let mut start = 0;
        for (i, &end) in p.ends.iter().enumerate() {
            let eta2_i = params[species[i]].eta2;
            let deds_i = deds[i];
            let mut f_i = [0.0; 3];
            for k in start..end {
                let j = pj_[k] as usize;
                let eta2_j = if UNIFORM { eta2_i } else { params[species[j]].eta2 };
                let dw = dwdroverw[k];
                let dedr = deds_i * ds_ij[k] * (dw - eta2_j) + deds[j] * ds_ji[k] * (dw - eta2_i) + dedr_as[k];
                let g = dedr * inv_r[k];
                let d = pd[k];
                let f = [g * d[0], g * d[1], g * d[2]];
                f_i = [f_i[0] + f[0], f_i[1] + f[1], f_i[2] + f[2]];
                let f_j = &mut forces[j];
                *f_j = [f_j[0] - f[0], f_j[1] - f[1], f_j[2] - f[2]];
                if S {
                    add_virial(&mut virial, f, d);
                }
            }
            let f = &mut forces[i];
            *f = [f[0] + f_i[0], f[1] + f_i[1], f[2] + f_i[2]];
            start = end;
        }
        virial
    }
}
