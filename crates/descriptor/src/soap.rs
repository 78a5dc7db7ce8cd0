//! SOAP (smooth overlap of atomic positions) power spectrum with dscribe's
//! GTO radial basis, equal to dscribe 2.1.2's `SOAP(rbf="gto")`.
//!
//! The definitions, as dscribe computes them (`soap.py` builds the basis,
//! `ext/soapGTO.cpp` the coefficients and power spectrum):
//!
//! - Basis: for each `l`, `n_max` Gaussians `r^l exp(-α_ln r²)` that decay to
//!   1e-3 at `a_n = linspace(1, r_cut, n_max)`, so `α_ln = (ln 1000 + l ln a_n) / a_n²`,
//!   Löwdin-orthonormalised with `β_l = S_l^{-1/2}`, where
//!   `S_l,nn' = ½ Γ(l + 3/2) (α_ln + α_ln')^{-(l+3/2)}`.
//! - Density: a Gaussian of width `sigma` (`η = 1/2σ²`) on every atom within
//!   `r_cut + σ √(2 ln 1000)` of the centre, the centre included.
//! - Coefficients, the Gaussian–GTO overlap integrals in closed form:
//!   `c_t,nlm = π^{3/2} Σ_k b_lnk Σ_{j∈t} exp(-α_lk A_lk r_j²) r_j^l Y_lm(r̂_j)`
//!   with `A_lk = 1/(1 + α_lk/η)` and `b_lnk = η^{-3/2} β_l,nk A_lk^{l+3/2}`.
//! - Power spectrum: `p = π √(8/(2l+1)) Σ_m c_t,nlm c_t',n'lm`, laid out as
//!   species pairs `t <= t'` (ascending atomic numbers), then `l`, then `n`,
//!   `n'` (`n' >= n` when `t == t'`).
//! - `average`: `inner` averages the coefficients over the centres before the
//!   power spectrum, `outer` averages the power spectra.
//!
//! The radial functions `R_ln(r) = π^{3/2} Σ_k b_lnk exp(-α_lk A_lk r²) r^l`
//! are tabulated once per spec as quintic Hermite pieces (value, first and
//! second derivative exact at the knots), which replaces `l_max × n_max`
//! exponentials per neighbour by as many polynomial evaluations; its spacing is
//! refined until it is within 1e-8 of each function's scale (see the tests).

use crate::error::DescriptorError;
use crate::harmonics::{HarmonicScratch, RealHarmonics};
use crate::neighbours::{Environment, Lists, Neighbours};
use crate::spec::{
    Descriptor, DescriptorInfo, DescriptorSpec, Species, index_atoms, parse_spec, require_positive, use_periodic,
};
use autopara_core::Atoms;
use autopara_geometry::simd::{self, Kernel};
use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

const NAME: &str = "soap";

/// dscribe's decay threshold of the GTO basis functions and of the atomic
/// Gaussians at the cutoff padding.
const THRESHOLD: f64 = 1e-3;

/// Radial functions accumulated together (one vector register of AVX-512,
/// two of AVX2); `n` is padded to a multiple of it.
const LANES: usize = 8;

/// dscribe's largest supported `l_max`.
const MAX_L: usize = 20;

/// Largest `n_max`: the basis and its tables grow as its square, and beyond
/// a few dozen functions the GTO basis cannot be orthonormalised anyway.
const MAX_N: usize = 100;

/// Largest reach of the density, `r_cut` plus the Gaussians' padding (Å):
/// the radial table grows with it (a local descriptor reaching 100 Å is
/// already far beyond any use).
const MAX_CUTOFF: f64 = 100.0;

/// Initial knot spacing of the radial table (Å), halved until the table is
/// accurate to [`TABLE_TOLERANCE`].
const TABLE_SPACING: f64 = 0.05;

/// Finest knot spacing tried (Å).
const TABLE_MIN_SPACING: f64 = 0.002;

/// Largest interpolation error of the radial table, relative to each radial
/// function's largest value. The quintic Hermite error peaks mid-interval,
/// where the table is checked against the closed form.
const TABLE_TOLERANCE: f64 = 1e-8;

/// How centres are averaged (dscribe's `average`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Average {
    /// One row per centre.
    #[default]
    Off,
    /// Average the expansion coefficients over centres, then take the power spectrum.
    Inner,
    /// Average the power spectra of the centres.
    Outer,
}

/// `{"type": "soap", ...}`: dscribe's `SOAP` with the GTO radial basis, no
/// weighting and no compression.
///
/// ```
/// use autopara_descriptor::{DescriptorSpec, SoapSpec};
/// let spec: Box<dyn DescriptorSpec> = serde_json::from_value(serde_json::json!({
///     "type": "soap", "species": ["Cu"], "r_cut": 5.0, "n_max": 8, "l_max": 6, "sigma": 0.5
/// })).unwrap();
/// let soap = spec.build().unwrap();
/// assert_eq!(soap.n_features(), 8 * 9 / 2 * 7);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapSpec {
    /// Elements the descriptor covers (atomic numbers or symbols).
    pub species: Species,
    /// Radial cutoff (Å); must exceed 1 Å for the GTO basis.
    pub r_cut: f64,
    /// Number of radial basis functions (>= 1).
    pub n_max: usize,
    /// Maximum degree of the spherical harmonics (0..=20).
    pub l_max: usize,
    /// Width of the atomic Gaussians (Å), default 1.0 as dscribe.
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    /// Radial basis; only `"gto"` is supported.
    #[serde(default = "default_rbf")]
    pub rbf: String,
    /// Use periodic images along the configuration's periodic directions:
    /// `None` (absent or `null`, the default) follows each configuration's own
    /// `pbc`; `true` on a configuration with no periodic direction is an error.
    #[serde(default)]
    pub periodic: Option<bool>,
    /// Averaging over centres: `off`, `inner` or `outer`.
    #[serde(default)]
    pub average: Average,
}

fn default_sigma() -> f64 {
    1.0
}

fn default_rbf() -> String {
    "gto".into()
}

inventory::submit! {
    DescriptorInfo {
        name: NAME,
        summary: "SOAP power spectrum, GTO radial basis, equal to dscribe's SOAP(rbf=\"gto\")",
        fields: &[
            ("species", "list of symbols or atomic numbers, required: elements covered"),
            ("r_cut", "float > 1, required: radial cutoff (Å); r_cut + 3.72 sigma at most 100"),
            ("n_max", "int 1..=100, required: radial basis functions"),
            ("l_max", "int 0..=20, required: maximum spherical harmonic degree"),
            ("sigma", "float > 0, default 1.0: atomic Gaussian width (Å)"),
            ("rbf", "\"gto\" (only), default \"gto\": radial basis"),
            ("periodic", "bool, default: each configuration's pbc: use periodic images"),
            ("average", "\"off\" | \"inner\" | \"outer\", default \"off\": averaging over centres"),
        ],
        parse: parse_spec::<SoapSpec>,
    }
}

#[typetag::serde(name = "soap")]
impl DescriptorSpec for SoapSpec {
    fn build(&self) -> Result<Box<dyn Descriptor>, DescriptorError> {
        Ok(Box::new(Soap::new(self)?))
    }
}

/// A built SOAP descriptor: the radial table and harmonics for one spec.
#[derive(Debug, Clone)]
pub struct Soap {
    species: Vec<u8>,
    n_max: usize,
    l_max: usize,
    periodic: Option<bool>,
    average: Average,
    /// `r_cut` plus dscribe's Gaussian padding: atoms this close contribute.
    cutoff: f64,
    radial: RadialTable,
    harmonics: RealHarmonics,
    /// `π √(8/(2l+1))` per l.
    prefactor: Vec<f64>,
    n_features: usize,
}

impl Soap {
    /// Validates `spec` and precomputes the basis and tables.
    pub fn new(spec: &SoapSpec) -> Result<Soap, DescriptorError> {
        let invalid = |field: &str, message: String| DescriptorError::InvalidSpec {
            descriptor: NAME,
            field: field.into(),
            message,
        };
        spec.species.require_nonempty(NAME)?;
        if spec.rbf != "gto" {
            return Err(invalid("rbf", format!("only \"gto\" is supported, got \"{}\"", spec.rbf)));
        }
        require_positive(NAME, "r_cut", spec.r_cut)?;
        if spec.r_cut <= 1.0 {
            return Err(invalid("r_cut", format!("must exceed 1 Å for the gto basis, got {}", spec.r_cut)));
        }
        require_positive(NAME, "sigma", spec.sigma)?;
        if spec.n_max == 0 {
            return Err(invalid("n_max", "must be >= 1, got 0".into()));
        }
        if spec.n_max > MAX_N {
            return Err(invalid("n_max", format!("must be <= {MAX_N}, got {}", spec.n_max)));
        }
        if spec.l_max > MAX_L {
            return Err(invalid("l_max", format!("must be <= {MAX_L}, got {}", spec.l_max)));
        }
        let (n_max, l_max) = (spec.n_max, spec.l_max);
        let eta = 1.0 / (2.0 * spec.sigma * spec.sigma);
        let padding = spec.sigma * (-2.0 * THRESHOLD.ln()).sqrt();
        let cutoff = spec.r_cut + padding;
        if cutoff > MAX_CUTOFF {
            let field = if spec.r_cut >= padding { "r_cut" } else { "sigma" };
            return Err(invalid(
                field,
                format!(
                    "r_cut + 3.72 sigma (how far the density reaches, {cutoff:e} Å) must be at most {MAX_CUTOFF} Å; \
                     got r_cut = {}, sigma = {}",
                    spec.r_cut, spec.sigma
                ),
            ));
        }
        let basis = GtoBasis::new(spec.r_cut, n_max, l_max).map_err(|(l, message)| {
            invalid(
                "n_max",
                format!("cannot orthonormalise the radial basis at l={l} ({message}); lower n_max or raise r_cut"),
            )
        })?;
        let radial = RadialTable::new(&basis, eta, cutoff);
        let n_species = spec.species.numbers().len();
        let n_radial = n_species * n_max;
        Ok(Soap {
            species: spec.species.numbers().to_vec(),
            n_max,
            l_max,
            periodic: spec.periodic,
            average: spec.average,
            cutoff,
            radial,
            harmonics: RealHarmonics::new(l_max),
            prefactor: (0..=l_max).map(|l| PI * (8.0 / (2 * l + 1) as f64).sqrt()).collect(),
            n_features: n_radial * (n_radial + 1) / 2 * (l_max + 1),
        })
    }

    /// Adds the density of one centre's environment to the coefficients `c`,
    /// laid out `[species][l² + l + m][n]`.
    ///
    /// Neighbours (the centre itself included, at r = 0 where only l = 0
    /// survives because `R_ln(0) = 0` for l > 0) are grouped by species;
    /// the harmonics of all of them are computed together (one neighbour per
    /// vector lane), the radial functions stored `[l][neighbour][n]`, and
    /// each coefficient is a sum over the neighbours of its species kept in
    /// registers, [`LANES`] values of `n` at a time.
    #[inline(always)]
    fn add_coefficients(&self, env: Environment<'_>, species: &[usize], c: &mut [f64], ws: &mut Workspace) {
        let (n_max, n_lm, n_pad) = (self.n_max, self.harmonics.len(), self.n_max.div_ceil(LANES) * LANES);
        // Group by species with a counting sort: slot ranges per species,
        // the centre (r = 0) first in its group.
        ws.counts.fill(0);
        ws.counts[species[env.centre]] += 1;
        for (&j, &r) in env.neighbours.iter().zip(env.distances) {
            if r <= self.cutoff {
                ws.counts[species[j]] += 1;
            }
        }
        let mut total = 0;
        for (st, &count) in ws.starts.iter_mut().zip(&ws.counts) {
            *st = total;
            total += count;
        }
        ws.next.clone_from(&ws.starts);
        for v in [&mut ws.ux, &mut ws.uy, &mut ws.uz, &mut ws.r] {
            v.resize(total, 0.0);
        }
        let mut place = |t: usize, u: [f64; 3], r: f64| {
            let k = ws.next[t];
            (ws.ux[k], ws.uy[k], ws.uz[k], ws.r[k]) = (u[0], u[1], u[2], r);
            ws.next[t] += 1;
        };
        place(species[env.centre], [0.0, 0.0, 1.0], 0.0);
        for (&j, (&v, &r)) in env.neighbours.iter().zip(env.vectors.iter().zip(env.distances)) {
            if r <= self.cutoff {
                // An atom on top of the centre has no direction; like the centre, only l = 0 counts.
                let u = if r > 0.0 { [v[0] / r, v[1] / r, v[2] / r] } else { [0.0, 0.0, 1.0] };
                place(species[j], u, r);
            }
        }
        ws.y.resize(n_lm * total, 0.0);
        self.harmonics.eval_many([&ws.ux, &ws.uy, &ws.uz], &mut ws.y, &mut ws.harmonic_scratch);
        ws.radial.resize((self.l_max + 1) * total * n_pad, 0.0);
        for (k, &r) in ws.r.iter().enumerate() {
            self.radial.eval(r, &mut ws.row);
            for l in 0..=self.l_max {
                let dst = &mut ws.radial[(l * total + k) * n_pad..][..n_pad];
                dst[..n_max].copy_from_slice(&ws.row[l * n_max..][..n_max]);
                dst[n_max..].fill(0.0);
            }
        }
        for (t, (&start, &count)) in ws.starts.iter().zip(&ws.counts).enumerate() {
            if count == 0 {
                continue;
            }
            let block = &mut c[t * n_lm * n_max..][..n_lm * n_max];
            for l in 0..=self.l_max {
                let radial = &ws.radial[(l * total + start) * n_pad..][..count * n_pad];
                for lm in l * l..(l + 1) * (l + 1) {
                    let y = &ws.y[lm * total + start..][..count];
                    let out = &mut block[lm * n_max..][..n_max];
                    for (b, out) in out.chunks_mut(LANES).enumerate() {
                        let mut acc = [0.0; LANES];
                        for (&yj, rj) in y.iter().zip(radial.chunks_exact(n_pad)) {
                            let rj: &[f64; LANES] = rj[b * LANES..][..LANES].try_into().expect("LANES values");
                            for (a, &rn) in acc.iter_mut().zip(rj) {
                                *a += yj * rn;
                            }
                        }
                        for (o, a) in out.iter_mut().zip(acc) {
                            *o += a;
                        }
                    }
                }
            }
        }
    }

    /// The power spectrum of coefficients `c` into `out` (`n_features` values),
    /// in dscribe's order, adding `scale ×` the values to what is there.
    #[inline(always)]
    fn add_power_spectrum(&self, c: &[f64], scale: f64, out: &mut [f64], pair: &mut [f64]) {
        let (n_max, n_lm, n_species) = (self.n_max, self.harmonics.len(), self.species.len());
        let mut k = 0;
        for t in 0..n_species {
            for u in t..n_species {
                for l in 0..=self.l_max {
                    pair.fill(0.0);
                    for lm in l * l..(l + 1) * (l + 1) {
                        let a = &c[(t * n_lm + lm) * n_max..][..n_max];
                        let b = &c[(u * n_lm + lm) * n_max..][..n_max];
                        for (n, &an) in a.iter().enumerate() {
                            for (p, &bn) in pair[n * n_max..][..n_max].iter_mut().zip(b) {
                                *p += an * bn;
                            }
                        }
                    }
                    let f = scale * self.prefactor[l];
                    for n in 0..n_max {
                        let start = if t == u { n } else { 0 };
                        for &p in &pair[n * n_max + start..(n + 1) * n_max] {
                            out[k] += f * p;
                            k += 1;
                        }
                    }
                }
            }
        }
    }
}

impl Descriptor for Soap {
    fn name(&self) -> &'static str {
        NAME
    }

    fn species(&self) -> &[u8] {
        &self.species
    }

    fn n_features(&self) -> usize {
        self.n_features
    }

    fn averaged(&self) -> bool {
        self.average != Average::Off
    }

    fn compute(
        &self,
        atoms: &Atoms,
        centers: &[usize],
        out: &mut [f64],
        lists: &mut Lists,
    ) -> Result<(), DescriptorError> {
        let species = index_atoms(NAME, &self.species, atoms)?;
        let periodic = use_periodic(NAME, self.periodic, atoms)?;
        out.fill(0.0);
        if centers.is_empty() {
            return Ok(());
        }
        // Neighbours at exactly the cutoff count, as in dscribe: the list
        // keeps distances below its cutoff, so give it the next double.
        Neighbours::with(NAME, atoms, self.cutoff.next_up(), periodic, lists, |neighbours| {
            self.compute_with(neighbours, &species, centers, out)
        })
    }
}

impl Soap {
    /// [`Descriptor::compute`] once the neighbours are known (`centers` not
    /// empty), compiled for the widest vector unit the CPU has (the results
    /// are the same bits on every unit).
    fn compute_with(&self, neighbours: &Neighbours, species: &[usize], centers: &[usize], out: &mut [f64]) {
        simd::run(SoapKernel { soap: self, neighbours, species, centers, out });
    }
}

/// One configuration's SOAP rows, as a loop for [`simd::run`]: everything
/// it calls is inlined into it, so each vector unit gets its own copy.
struct SoapKernel<'a> {
    soap: &'a Soap,
    neighbours: &'a Neighbours,
    species: &'a [usize],
    centers: &'a [usize],
    out: &'a mut [f64],
}

impl Kernel for SoapKernel<'_> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        let SoapKernel { soap, neighbours, species, centers, out } = self;
        let n_coeff = soap.species.len() * soap.harmonics.len() * soap.n_max;
        let mut c = vec![0.0; n_coeff];
        let mut ws = Workspace {
            counts: vec![0; soap.species.len()],
            starts: vec![0; soap.species.len()],
            next: vec![0; soap.species.len()],
            ux: Vec::new(),
            uy: Vec::new(),
            uz: Vec::new(),
            r: Vec::new(),
            y: Vec::new(),
            harmonic_scratch: Default::default(),
            row: vec![0.0; soap.radial.n_funcs],
            radial: Vec::new(),
        };
        let mut pair = vec![0.0; soap.n_max * soap.n_max];
        let inv_n = 1.0 / centers.len() as f64;
        match soap.average {
            Average::Off => {
                for (&i, row) in centers.iter().zip(out.chunks_exact_mut(soap.n_features)) {
                    c.fill(0.0);
                    soap.add_coefficients(neighbours.of(i), species, &mut c, &mut ws);
                    soap.add_power_spectrum(&c, 1.0, row, &mut pair);
                }
            }
            Average::Inner => {
                for &i in centers {
                    soap.add_coefficients(neighbours.of(i), species, &mut c, &mut ws);
                }
                c.iter_mut().for_each(|x| *x *= inv_n);
                soap.add_power_spectrum(&c, 1.0, out, &mut pair);
            }
            Average::Outer => {
                for &i in centers {
                    c.fill(0.0);
                    soap.add_coefficients(neighbours.of(i), species, &mut c, &mut ws);
                    soap.add_power_spectrum(&c, inv_n, out, &mut pair);
                }
            }
        }
    }
}

/// Per-call scratch, allocated once per configuration.
struct Workspace {
    /// Neighbours per species (the centre included in its own).
    counts: Vec<usize>,
    /// First slot of each species.
    starts: Vec<usize>,
    /// Fill positions per species while grouping.
    next: Vec<usize>,
    /// The current centre's neighbours within the cutoff, grouped by
    /// species: unit vectors (x, y, z) and distances.
    ux: Vec<f64>,
    uy: Vec<f64>,
    uz: Vec<f64>,
    r: Vec<f64>,
    /// `Y_lm` of every neighbour, `[(l_max+1)²][neighbour]`.
    y: Vec<f64>,
    harmonic_scratch: HarmonicScratch,
    /// `R_ln` of one neighbour, `[l][n]`.
    row: Vec<f64>,
    /// `R_ln` of every neighbour, `[l][neighbour][n_pad]`, `n_pad` being
    /// `n_max` rounded up to a multiple of [`LANES`] (the rest is zeros).
    radial: Vec<f64>,
}

/// dscribe's GTO basis: exponents `alpha[l][n]` and orthonormalising `beta[l][n][k]`.
#[derive(Debug, Clone)]
struct GtoBasis {
    n_max: usize,
    l_max: usize,
    /// `(l_max+1) × n_max`.
    alpha: Vec<f64>,
    /// `(l_max+1) × n_max × n_max`, row-major in (n, k).
    beta: Vec<f64>,
}

impl GtoBasis {
    /// The basis, or the `l` whose overlap matrix is not positive definite.
    fn new(r_cut: f64, n_max: usize, l_max: usize) -> Result<GtoBasis, (usize, String)> {
        // numpy.linspace(1, r_cut, n_max): the last point is exactly r_cut.
        let a: Vec<f64> = if n_max == 1 {
            vec![1.0]
        } else {
            let step = (r_cut - 1.0) / (n_max - 1) as f64;
            (0..n_max).map(|i| if i + 1 == n_max { r_cut } else { 1.0 + i as f64 * step }).collect()
        };
        let mut alpha = Vec::with_capacity((l_max + 1) * n_max);
        let mut beta = Vec::with_capacity((l_max + 1) * n_max * n_max);
        for l in 0..=l_max {
            let al: Vec<f64> = a.iter().map(|&an| -(THRESHOLD / an.powi(l as i32)).ln() / (an * an)).collect();
            let p = l as f64 + 1.5;
            let g = gamma_half_integer(l);
            let s = DMatrix::from_fn(n_max, n_max, |i, j| 0.5 * g * (al[i] + al[j]).powf(-p));
            // S^{-1/2} = V Λ^{-1/2} Vᵀ (dscribe: scipy sqrtm(inv(S)), the same matrix).
            let eig = SymmetricEigen::new(s);
            if let Some(bad) = eig.eigenvalues.iter().find(|&&x| x.is_nan() || x <= 0.0) {
                return Err((l, format!("overlap eigenvalue {bad:e}")));
            }
            let v = &eig.eigenvectors;
            for n in 0..n_max {
                for k in 0..n_max {
                    let b: f64 = (0..n_max).map(|q| v[(n, q)] * v[(k, q)] / eig.eigenvalues[q].sqrt()).sum();
                    beta.push(b);
                }
            }
            alpha.extend(al);
        }
        Ok(GtoBasis { n_max, l_max, alpha, beta })
    }

    /// `R_ln(r)` and its first two derivatives for all (l, n), from the closed form.
    fn radial_exact(&self, eta: f64, r: f64, value: &mut [f64], d1: &mut [f64], d2: &mut [f64]) {
        let (n_max, pi32) = (self.n_max, PI.powf(1.5));
        value.fill(0.0);
        d1.fill(0.0);
        d2.fill(0.0);
        for l in 0..=self.l_max {
            let lf = l as f64;
            // r^l, r^(l-1), r^(l-2) with the l = 0, 1 terms that vanish dropped.
            let rl = r.powi(l as i32);
            let rl1 = if l >= 1 { r.powi(l as i32 - 1) } else { 0.0 };
            let rl2 = if l >= 2 { r.powi(l as i32 - 2) } else { 0.0 };
            for k in 0..n_max {
                let alpha = self.alpha[l * n_max + k];
                let big_a = 1.0 / (1.0 + alpha / eta);
                let a = -alpha * big_a;
                let e = (a * r * r).exp();
                let g0 = e * rl;
                let g1 = e * (lf * rl1 + 2.0 * a * r * rl);
                let g2 = e * (lf * (lf - 1.0) * rl2 + 2.0 * a * (2.0 * lf + 1.0) * rl + 4.0 * a * a * r * r * rl);
                let bk = pi32 * eta.powf(-1.5) * big_a.powf(lf + 1.5);
                for n in 0..n_max {
                    let b = bk * self.beta[(l * n_max + n) * n_max + k];
                    let idx = l * n_max + n;
                    value[idx] += b * g0;
                    d1[idx] += b * g1;
                    d2[idx] += b * g2;
                }
            }
        }
    }
}

/// `Γ(l + 3/2) = (2l+1)!! √π / 2^(l+1)`.
fn gamma_half_integer(l: usize) -> f64 {
    let mut g = PI.sqrt() / 2.0;
    for k in 1..=l {
        g *= k as f64 + 0.5;
    }
    g
}

/// `R_ln(r)` on `[0, cutoff]` as quintic polynomials per knot interval, laid
/// out `[interval][degree][l][n]` so one neighbour reads one contiguous block.
#[derive(Debug, Clone)]
struct RadialTable {
    n_funcs: usize,
    inv_h: f64,
    n_intervals: usize,
    coeffs: Vec<f64>,
}

impl RadialTable {
    /// The table on `[0, cutoff]`, with the knot spacing halved until every
    /// function is within [`TABLE_TOLERANCE`] of the closed form at all interval midpoints.
    fn new(basis: &GtoBasis, eta: f64, cutoff: f64) -> RadialTable {
        let mut spacing = TABLE_SPACING;
        loop {
            let table = RadialTable::with_spacing(basis, eta, cutoff, spacing);
            if spacing <= TABLE_MIN_SPACING || table.midpoint_error(basis, eta) <= TABLE_TOLERANCE {
                return table;
            }
            spacing /= 2.0;
        }
    }

    fn with_spacing(basis: &GtoBasis, eta: f64, cutoff: f64, spacing: f64) -> RadialTable {
        let n_funcs = (basis.l_max + 1) * basis.n_max;
        let n_intervals = (cutoff / spacing).ceil().max(1.0) as usize;
        let h = cutoff / n_intervals as f64;
        let knot = |i: usize| {
            let (mut f, mut d1, mut d2) = (vec![0.0; n_funcs], vec![0.0; n_funcs], vec![0.0; n_funcs]);
            basis.radial_exact(eta, i as f64 * h, &mut f, &mut d1, &mut d2);
            (f, d1, d2)
        };
        let mut coeffs = vec![0.0; n_intervals * 6 * n_funcs];
        let mut left = knot(0);
        for (i, block) in coeffs.chunks_exact_mut(6 * n_funcs).enumerate() {
            let right = knot(i + 1);
            for q in 0..n_funcs {
                let (f0, f1) = (left.0[q], right.0[q]);
                let (d0, d1) = (h * left.1[q], h * right.1[q]);
                let (s0, s1) = (h * h * left.2[q], h * h * right.2[q]);
                let df = f1 - f0;
                let c = [
                    f0,
                    d0,
                    0.5 * s0,
                    10.0 * df - 6.0 * d0 - 4.0 * d1 - 0.5 * (3.0 * s0 - s1),
                    -15.0 * df + 8.0 * d0 + 7.0 * d1 + 0.5 * (3.0 * s0 - 2.0 * s1),
                    6.0 * df - 3.0 * (d0 + d1) - 0.5 * (s0 - s1),
                ];
                for (d, cd) in c.into_iter().enumerate() {
                    block[d * n_funcs + q] = cd;
                }
            }
            left = right;
        }
        RadialTable { n_funcs, inv_h: 1.0 / h, n_intervals, coeffs }
    }

    /// The largest error at interval midpoints, relative to each function's
    /// largest value there.
    fn midpoint_error(&self, basis: &GtoBasis, eta: f64) -> f64 {
        let n = self.n_funcs;
        let (mut f, mut d1, mut d2, mut t) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let (mut scale, mut worst) = (vec![0.0f64; n], vec![0.0f64; n]);
        for i in 0..self.n_intervals {
            let r = (i as f64 + 0.5) / self.inv_h;
            basis.radial_exact(eta, r, &mut f, &mut d1, &mut d2);
            self.eval(r, &mut t);
            for q in 0..n {
                scale[q] = scale[q].max(f[q].abs());
                worst[q] = worst[q].max((f[q] - t[q]).abs());
            }
        }
        worst.iter().zip(&scale).map(|(w, s)| if *s > 0.0 { w / s } else { *w }).fold(0.0, f64::max)
    }

    /// All `R_ln(r)` into `out[l * n_max + n]`, for `0 <= r <= cutoff`.
    #[inline(always)]
    fn eval(&self, r: f64, out: &mut [f64]) {
        let n = self.n_funcs;
        let x = r * self.inv_h;
        let i = (x as usize).min(self.n_intervals - 1);
        let t = x - i as f64;
        // Coefficients of one degree are contiguous over the functions, so
        // Horner's rule runs over whole vectors.
        let block = &self.coeffs[i * 6 * n..][..6 * n];
        let (c0, rest) = block.split_at(n);
        let (c1, rest) = rest.split_at(n);
        let (c2, rest) = rest.split_at(n);
        let (c3, rest) = rest.split_at(n);
        let (c4, c5) = rest.split_at(n);
        for q in 0..n.min(out.len()) {
            out[q] = c0[q] + t * (c1[q] + t * (c2[q] + t * (c3[q] + t * (c4[q] + t * c5[q]))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table reproduces the closed form between knots to 1e-8 of each
    /// function's largest value, for soft and sharp Gaussians, small and large l.
    #[test]
    fn radial_table_matches_closed_form() {
        for (r_cut, n_max, l_max, sigma) in [
            (5.0, 8, 6, 0.5),
            (3.0, 4, 9, 0.1),
            (6.0, 10, 4, 1.0),
            (2.0, 1, 0, 0.3),
            (5.0, 12, 9, 0.5),
            (4.0, 8, 20, 0.2),
        ] {
            let basis = GtoBasis::new(r_cut, n_max, l_max).unwrap();
            let eta = 1.0 / (2.0 * sigma * sigma);
            let cutoff = r_cut + sigma * (-2.0 * THRESHOLD.ln()).sqrt();
            let table = RadialTable::new(&basis, eta, cutoff);
            let nf = (l_max + 1) * n_max;
            let (mut f, mut d1, mut d2, mut t) = (vec![0.0; nf], vec![0.0; nf], vec![0.0; nf], vec![0.0; nf]);
            let samples: Vec<f64> = (0..=2000).map(|i| cutoff * i as f64 / 2000.0 * 0.999_71).collect();
            let mut scale = vec![0.0f64; nf];
            let mut worst = vec![0.0f64; nf];
            for &r in &samples {
                basis.radial_exact(eta, r, &mut f, &mut d1, &mut d2);
                table.eval(r, &mut t);
                for q in 0..nf {
                    scale[q] = scale[q].max(f[q].abs());
                    worst[q] = worst[q].max((f[q] - t[q]).abs());
                }
            }
            for q in 0..nf {
                assert!(
                    worst[q] <= 1e-8 * scale[q],
                    "{r_cut} {n_max} {l_max} {sigma}: function {q}: {} vs {}",
                    worst[q],
                    scale[q]
                );
            }
        }
    }

    /// The orthonormalised basis is orthonormal: βᵀ S β = 1.
    #[test]
    fn basis_is_orthonormal() {
        let basis = GtoBasis::new(5.0, 8, 3).unwrap();
        for l in 0..=3 {
            let al = &basis.alpha[l * 8..][..8];
            let g = gamma_half_integer(l);
            let s = DMatrix::from_fn(8, 8, |i, j| 0.5 * g * (al[i] + al[j]).powf(-(l as f64 + 1.5)));
            let b = DMatrix::from_row_slice(8, 8, &basis.beta[l * 64..][..64]);
            let id = b.transpose() * s * b;
            assert!((id - DMatrix::identity(8, 8)).abs().max() < 1e-6);
        }
    }

    #[test]
    fn gamma_values() {
        assert!((gamma_half_integer(0) - PI.sqrt() / 2.0).abs() < 1e-15);
        assert!((gamma_half_integer(2) - 15.0 * PI.sqrt() / 8.0).abs() < 1e-14);
    }
}
