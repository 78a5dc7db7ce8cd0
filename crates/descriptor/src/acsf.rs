//! Atom-centred symmetry functions (Behler), equal to dscribe 2.1.2's `ACSF`.
//!
//! With `fc(r) = ½ (cos(π r / r_cut) + 1)` and sums over the neighbours
//! `j`, `k` of centre `i` within `r_cut` (periodic images included when
//! `periodic`), per neighbour species (G1–G3) or unordered species pair
//! (G4, G5), as dscribe's `ext/acsf.cpp`:
//!
//! - G1 = Σ_j fc(r_ij)
//! - G2(η, R_s) = Σ_j exp(−η (r_ij − R_s)²) fc(r_ij)
//! - G3(κ) = Σ_j cos(κ r_ij) fc(r_ij)
//! - G4(η, ζ, λ) = Σ_{j<k} 2^{1−ζ} (1 + λ cos θ_ijk)^ζ exp(−η (r_ij² + r_ik² + r_jk²)) fc(r_ij) fc(r_ik) fc(r_jk),
//!   over pairs with `r_jk <= r_cut`
//! - G5(η, ζ, λ) = the same without the `r_jk` terms, over all pairs.
//!
//! Layout per centre: for each neighbour species (ascending Z) the block
//! `[G1, G2 × len(g2_params), G3 × len(g3_params)]`; then for each species
//! pair `(a, b)`, `a >= b`, in the order (0,0), (1,0), (1,1), (2,0), ... the
//! block `[G4 × len(g4_params), G5 × len(g5_params)]`.

use crate::error::DescriptorError;
use crate::neighbours::{Lists, Neighbours};
use crate::spec::{
    Descriptor, DescriptorInfo, DescriptorSpec, Species, index_atoms, parse_spec, require_positive, use_periodic,
};
use autopara_core::Atoms;
use autopara_geometry::vec3::{norm2, sub};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

const NAME: &str = "acsf";

/// `{"type": "acsf", ...}`: dscribe's `ACSF`.
///
/// ```
/// use autopara_descriptor::DescriptorSpec;
/// let spec: Box<dyn DescriptorSpec> = serde_json::from_value(serde_json::json!({
///     "type": "acsf", "species": ["H", "O"], "r_cut": 6.0,
///     "g2_params": [[1.0, 1.0], [0.5, 2.0]], "g4_params": [[0.01, 1.0, -1.0]]
/// })).unwrap();
/// // (G1 + 2 G2) per species + 1 G4 per species pair.
/// assert_eq!(spec.build().unwrap().n_features(), 3 * 2 + 3);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcsfSpec {
    /// Elements the descriptor covers (atomic numbers or symbols).
    pub species: Species,
    /// Smooth cutoff (Å).
    pub r_cut: f64,
    /// G2 parameters `[eta, R_s]`.
    #[serde(default)]
    pub g2_params: Vec<[f64; 2]>,
    /// G3 parameters `kappa`.
    #[serde(default)]
    pub g3_params: Vec<f64>,
    /// G4 parameters `[eta, zeta, lambda]`.
    #[serde(default)]
    pub g4_params: Vec<[f64; 3]>,
    /// G5 parameters `[eta, zeta, lambda]`.
    #[serde(default)]
    pub g5_params: Vec<[f64; 3]>,
    /// Use periodic images along the configuration's periodic directions:
    /// `None` (absent or `null`, the default) follows each configuration's own
    /// `pbc`; `true` on a configuration with no periodic direction is an error.
    #[serde(default)]
    pub periodic: Option<bool>,
}

inventory::submit! {
    DescriptorInfo {
        name: NAME,
        summary: "atom-centred symmetry functions G1-G5, equal to dscribe's ACSF",
        fields: &[
            ("species", "list of symbols or atomic numbers, required: elements covered"),
            ("r_cut", "float > 0, required: smooth cutoff (Å)"),
            ("g2_params", "list of [eta, R_s], default []: G2 functions"),
            ("g3_params", "list of kappa, default []: G3 functions"),
            ("g4_params", "list of [eta, zeta, lambda], default []: G4 functions"),
            ("g5_params", "list of [eta, zeta, lambda], default []: G5 functions"),
            ("periodic", "bool, default: each configuration's pbc: use periodic images"),
        ],
        parse: parse_spec::<AcsfSpec>,
    }
}

#[typetag::serde(name = "acsf")]
impl DescriptorSpec for AcsfSpec {
    fn build(&self) -> Result<Box<dyn Descriptor>, DescriptorError> {
        self.species.require_nonempty(NAME)?;
        require_positive(NAME, "r_cut", self.r_cut)?;
        let finite = |field: String, values: &[f64]| {
            if values.iter().all(|v| v.is_finite()) {
                Ok(())
            } else {
                Err(DescriptorError::InvalidSpec { descriptor: NAME, field, message: "values must be finite".into() })
            }
        };
        for (i, p) in self.g2_params.iter().enumerate() {
            finite(format!("g2_params[{i}]"), p)?;
        }
        for (i, p) in self.g3_params.iter().enumerate() {
            finite(format!("g3_params[{i}]"), &[*p])?;
        }
        for (name, params) in [("g4_params", &self.g4_params), ("g5_params", &self.g5_params)] {
            for (i, p) in params.iter().enumerate() {
                finite(format!("{name}[{i}]"), p)?;
                if p[2].abs() > 1.0 {
                    return Err(DescriptorError::InvalidSpec {
                        descriptor: NAME,
                        field: format!("{name}[{i}]"),
                        message: format!("lambda must be in [-1, 1], got {}", p[2]),
                    });
                }
            }
        }
        let n_species = self.species.numbers().len();
        let per_species = 1 + self.g2_params.len() + self.g3_params.len();
        let per_pair = self.g4_params.len() + self.g5_params.len();
        Ok(Box::new(Acsf {
            spec: self.clone(),
            per_species,
            per_pair,
            n_features: per_species * n_species + per_pair * n_species * (n_species + 1) / 2,
        }))
    }
}

/// A built ACSF descriptor.
#[derive(Debug, Clone)]
pub struct Acsf {
    spec: AcsfSpec,
    per_species: usize,
    per_pair: usize,
    n_features: usize,
}

impl Acsf {
    fn cutoff_function(&self, r: f64) -> f64 {
        0.5 * ((r * PI / self.spec.r_cut).cos() + 1.0)
    }
}

impl Descriptor for Acsf {
    fn name(&self) -> &'static str {
        NAME
    }

    fn species(&self) -> &[u8] {
        self.spec.species.numbers()
    }

    fn n_features(&self) -> usize {
        self.n_features
    }

    fn averaged(&self) -> bool {
        false
    }

    fn compute(
        &self,
        atoms: &Atoms,
        centers: &[usize],
        out: &mut [f64],
        lists: &mut Lists,
    ) -> Result<(), DescriptorError> {
        let species = index_atoms(NAME, self.species(), atoms)?;
        let periodic = use_periodic(NAME, self.spec.periodic, atoms)?;
        out.fill(0.0);
        Neighbours::with(NAME, atoms, self.spec.r_cut, periodic, lists, |neighbours| {
            self.compute_with(neighbours, &species, centers, out)
        })
    }
}

impl Acsf {
    /// [`Descriptor::compute`] once the neighbours are known.
    fn compute_with(&self, neighbours: &Neighbours, species: &[usize], centers: &[usize], out: &mut [f64]) {
        let r_cut = self.spec.r_cut;
        let pair_start = self.per_species * self.spec.species.numbers().len();
        let n_g4 = self.spec.g4_params.len();
        let mut fc = Vec::new();
        for (&i, row) in centers.iter().zip(out.chunks_exact_mut(self.n_features)) {
            let env = neighbours.of(i);
            fc.clear();
            fc.extend(env.distances.iter().map(|&r| self.cutoff_function(r)));
            for (q, (&j, &r)) in env.neighbours.iter().zip(env.distances).enumerate() {
                if r > r_cut {
                    continue;
                }
                let block = &mut row[species[j] * self.per_species..][..self.per_species];
                block[0] += fc[q];
                for (g, &[eta, rs]) in block[1..].iter_mut().zip(&self.spec.g2_params) {
                    *g += (-eta * (r - rs) * (r - rs)).exp() * fc[q];
                }
                for (g, &kappa) in block[1 + self.spec.g2_params.len()..].iter_mut().zip(&self.spec.g3_params) {
                    *g += (r * kappa).cos() * fc[q];
                }
            }
            if self.per_pair == 0 {
                continue;
            }
            for a in 0..env.neighbours.len() {
                let (ra, va) = (env.distances[a], env.vectors[a]);
                if ra > r_cut {
                    continue;
                }
                let ta = species[env.neighbours[a]];
                for b in 0..a {
                    let (rb, vb) = (env.distances[b], env.vectors[b]);
                    if rb > r_cut {
                        continue;
                    }
                    let tb = species[env.neighbours[b]];
                    let r_ab2 = norm2(sub(va, vb));
                    let r_ab = r_ab2.sqrt();
                    let (ra2, rb2) = (ra * ra, rb * rb);
                    // Clamped so rounding can never push (1 ± cos θ) below zero.
                    let cos = (0.5 / (ra * rb) * (ra2 + rb2 - r_ab2)).clamp(-1.0, 1.0);
                    let (hi, lo) = if ta >= tb { (ta, tb) } else { (tb, ta) };
                    let pair = hi * (hi + 1) / 2 + lo;
                    let block = &mut row[pair_start + pair * self.per_pair..][..self.per_pair];
                    let fc_ab = fc[a] * fc[b];
                    if r_ab <= r_cut {
                        let fc3 = fc_ab * self.cutoff_function(r_ab);
                        for (g, &[eta, zeta, lambda]) in block.iter_mut().zip(&self.spec.g4_params) {
                            let gauss = (-eta * (ra2 + rb2 + r_ab2)).exp() * fc3;
                            *g += 2.0 * (0.5 * (1.0 + lambda * cos)).powf(zeta) * gauss;
                        }
                    }
                    for (g, &[eta, zeta, lambda]) in block[n_g4..].iter_mut().zip(&self.spec.g5_params) {
                        let gauss = (-eta * (ra2 + rb2)).exp() * fc_ab;
                        *g += 2.0 * (0.5 * (1.0 + lambda * cos)).powf(zeta) * gauss;
                    }
                }
            }
        }
    }
}
