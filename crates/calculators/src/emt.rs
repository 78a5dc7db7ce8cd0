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

use crate::check_finite;
use crate::neighbours::{ListKind, VerletList, cell_volume};
use crate::pair::{add_pair_force, add_virial};
use autopara_core::elements::symbol;
use autopara_core::{Atoms, CalcError, CalcResults, Calculator, CalculatorInfo, CalculatorSpec, Properties};
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

    /// The logistic `w(r)` and `(dw/dr)/w`.
    #[inline]
    fn theta(&self, r: f64) -> (f64, f64) {
        let x = self.acut * (r - self.rc);
        // Below -37, e^x < 2^-53: 1 + e^x rounds to 1, so w is exactly 1 and
        // its derivative exactly 0 without the exponential (the first two
        // neighbour shells, a quarter of the pairs).
        if x < -37.0 {
            return (1.0, 0.0);
        }
        let w = 1.0 / (1.0 + x.exp());
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

/// Per-pair values kept between the density pass and the force pass.
#[derive(Debug, Clone, Copy)]
struct PairTerms {
    i: usize,
    j: usize,
    d: [f64; 3],
    inv_r: f64,
    dwdroverw: f64,
    /// Contribution of j to σ₁(i), and of i to σ₁(j).
    dsigma1_ij: f64,
    dsigma1_ji: f64,
    /// dE/dr of the atomic-sphere term.
    dedr_as: f64,
}

/// The EMT calculator: the parameter tables for the current element set, a
/// Verlet list, and per-atom and per-pair buffers reused between calls.
struct EmtCalculator {
    asap: bool,
    /// Element set (bit k = table row k) the tables below were made for.
    elements: u16,
    cutoff: Cutoff,
    params: [Element; 11],
    /// χ[a][b] = n0(b)/n0(a).
    chi: [[f64; 11]; 11],
    list: Option<VerletList>,
    species: Vec<usize>,
    sigma1: Vec<f64>,
    deds: Vec<f64>,
    pairs: Vec<PairTerms>,
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
            pairs: Vec::new(),
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

    /// Maps atoms to table rows, rejecting elements without parameters.
    fn assign_species(&mut self, atoms: &Atoms) -> Result<(), CalcError> {
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
        Ok(())
    }
}

impl Calculator for EmtCalculator {
    fn name(&self) -> &str {
        "EMT"
    }

    fn calculate(&mut self, atoms: &Atoms, request: Properties, out: &mut CalcResults) -> Result<(), CalcError> {
        let volume = cell_volume(&atoms.cell);
        if request.stress && volume.is_none() {
            return Err(CalcError::Unsupported {
                calculator: "EMT".into(),
                property: "stress",
                reason: "the cell has no volume".into(),
            });
        }
        self.assign_species(atoms)?;
        let n = atoms.len();
        if n == 0 {
            *out = CalcResults {
                computed: Properties { stress: volume.is_some(), ..Properties::ALL },
                ..Default::default()
            };
            return Ok(());
        }
        let cut = self.cutoff;
        let list = match &mut self.list {
            Some(list) => list,
            slot => slot.insert(VerletList::new(cut.rc_list, SKIN_FRACTION * cut.rc_list, ListKind::Half)?),
        };
        list.update(&atoms.positions, &atoms.cell, atoms.pbc)?;

        out.energies.clear();
        out.energies.resize(n, 0.0);
        out.forces.clear();
        out.forces.resize(n, [0.0; 3]);
        self.sigma1.clear();
        self.sigma1.resize(n, 0.0);
        self.deds.clear();
        self.deds.resize(n, 0.0);
        self.pairs.clear();

        // Pass 1: neighbour densities σ₁ and the atomic-sphere term, pair by pair.
        let (params, chi, species) = (&self.params, &self.chi, &self.species);
        let (sigma1, energies, pairs) = (&mut self.sigma1, &mut out.energies, &mut self.pairs);
        let mut overlap = None;
        list.for_each_pair(&atoms.positions, |i, j, d, r2| {
            if r2 == 0.0 {
                overlap.get_or_insert((i, j));
                return;
            }
            let r = r2.sqrt();
            let (si, sj) = (species[i], species[j]);
            let (pi, pj) = (&params[si], &params[sj]);
            let (w, dwdroverw) = cut.theta(r);
            // Decay of j's density seen by i (and of i's seen by j).
            let e1_j = (-pj.eta2 * (r - BETA * pj.s0)).exp();
            let e2_j = (-pj.kappa * (r / BETA - pj.s0)).exp();
            let (e1_i, e2_i) = if si == sj {
                (e1_j, e2_j)
            } else {
                ((-pi.eta2 * (r - BETA * pi.s0)).exp(), (-pi.kappa * (r / BETA - pi.s0)).exp())
            };
            let (chi_ij, chi_ji) = (chi[si][sj], chi[sj][si]);
            let dsigma1_ij = e1_j * chi_ij * w;
            let dsigma1_ji = e1_i * chi_ji * w;
            sigma1[i] += dsigma1_ij;
            sigma1[j] += dsigma1_ji;
            let es = pi.neg_half_v0_over_gamma2 * e2_j * chi_ij * w;
            let eo = pj.neg_half_v0_over_gamma2 * e2_i * chi_ji * w;
            let half = 0.5 * (es + eo);
            energies[i] += half;
            energies[j] += half;
            let dedr_as = es * (dwdroverw - pj.kappa / BETA) + eo * (dwdroverw - pi.kappa / BETA);
            pairs.push(PairTerms { i, j, d, inv_r: 1.0 / r, dwdroverw, dsigma1_ij, dsigma1_ji, dedr_as });
        });
        if let Some((i, j)) = overlap {
            return Err(CalcError::Overlap { i, j, distance: 0.0 });
        }

        // Pass 2: cohesive energy E_c(s) of every atom with neighbours, and dE/dσ₁.
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

        // Pass 3: forces and virial from dE/dr of each pair.
        let mut virial = [0.0; 6];
        for t in &self.pairs {
            let (pi, pj) = (&self.params[self.species[t.i]], &self.params[self.species[t.j]]);
            let dedr = self.deds[t.i] * t.dsigma1_ij * (t.dwdroverw - pj.eta2)
                + self.deds[t.j] * t.dsigma1_ji * (t.dwdroverw - pi.eta2)
                + t.dedr_as;
            let g = dedr * t.inv_r;
            let d = t.d;
            let f = [g * d[0], g * d[1], g * d[2]];
            add_pair_force(&mut out.forces, t.i, t.j, f);
            add_virial(&mut virial, f, d);
        }

        // Energies relative to the reference metal (ASAP's convention).
        for (e, &k) in out.energies.iter_mut().zip(&self.species) {
            *e -= self.params[k].e0;
        }
        out.energy = out.energies.iter().sum();
        out.stress = match volume {
            Some(v) => virial.map(|x| x / v),
            None => [0.0; 6],
        };
        out.computed = Properties { energy: true, forces: true, stress: volume.is_some(), energies: true };
        check_finite("EMT", out)
    }
}
