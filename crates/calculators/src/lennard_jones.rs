//! Lennard-Jones, as ASE's `ase.calculators.lj.LennardJones` (3.28).
//!
//! `u(r) = 4ε((σ/r)¹² − (σ/r)⁶)` for `r < rc`. With `smooth = false` (the
//! default) each pair energy is shifted by `−u(rc)`, so energies go to zero
//! at the cutoff and forces jump. With `smooth = true` the pair energy is
//! multiplied by ASE's (Jax-MD's) cutoff function of `r²`,
//! `fc = (rc² − r²)² (rc² + 2r² − 3ro²) / (rc² − ro²)³` between `ro` and `rc`
//! (1 below `ro`), and not shifted.
//!
//! ```
//! use autopara_calculators::LennardJones;
//! use autopara_core::{Atoms, CalcResults, CalculatorSpec, Properties};
//! let spec: Box<dyn CalculatorSpec> = serde_json::from_str(r#"{"type": "lennard_jones", "sigma": 1.0}"#).unwrap();
//! let mut calc = spec.build().unwrap();
//! let r = 2f64.powf(1.0 / 6.0); // the minimum
//! let dimer = Atoms::new(vec![18, 18], vec![[0.0; 3], [r, 0.0, 0.0]]);
//! let mut out = CalcResults::default();
//! calc.calculate(&dimer, Properties::ENERGY_FORCES, &mut out).unwrap();
//! let shift = 4.0 * (3f64.powi(-12) - 3f64.powi(-6)); // u(rc), rc = 3 sigma
//! assert!((out.energy - (-1.0 - shift)).abs() < 1e-12);
//! assert!(out.forces[0][0].abs() < 1e-12);
//! assert_eq!(calc.name(), "LennardJones");
//! ```

use crate::pair::{PairCalculator, PairPotential};
use crate::{invalid, positive};
use autopara_core::{CalcError, Calculator, CalculatorInfo, CalculatorSpec};
use serde::{Deserialize, Serialize};

/// The `lennard_jones` calculator spec (ASE's `LennardJones` parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "LennardJonesArgs")]
pub struct LennardJones {
    /// Length scale σ (Å); the minimum is at 2^(1/6) σ. Default 1.
    pub sigma: f64,
    /// Well depth ε (eV). Default 1.
    pub epsilon: f64,
    /// Cutoff (Å). Default 3 σ.
    pub rc: f64,
    /// Onset of the smooth cutoff (Å), used when `smooth`. Default 0.66 rc.
    pub ro: f64,
    /// Smooth cutoff function instead of the energy shift. Default false.
    pub smooth: bool,
}

/// The user-facing fields, with ASE's optional `rc`/`ro`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LennardJonesArgs {
    #[serde(default = "one")]
    sigma: f64,
    #[serde(default = "one")]
    epsilon: f64,
    #[serde(default)]
    rc: Option<f64>,
    #[serde(default)]
    ro: Option<f64>,
    #[serde(default)]
    smooth: bool,
}

fn one() -> f64 {
    1.0
}

impl From<LennardJonesArgs> for LennardJones {
    fn from(a: LennardJonesArgs) -> LennardJones {
        let rc = a.rc.unwrap_or(3.0 * a.sigma);
        LennardJones { sigma: a.sigma, epsilon: a.epsilon, rc, ro: a.ro.unwrap_or(0.66 * rc), smooth: a.smooth }
    }
}

impl Default for LennardJones {
    fn default() -> LennardJones {
        LennardJones::from(LennardJonesArgs { sigma: 1.0, epsilon: 1.0, rc: None, ro: None, smooth: false })
    }
}

#[typetag::serde(name = "lennard_jones")]
impl CalculatorSpec for LennardJones {
    fn validate(&self) -> Result<(), CalcError> {
        positive("sigma", self.sigma)?;
        positive("rc", self.rc)?;
        if !self.epsilon.is_finite() {
            return Err(invalid("epsilon", format!("must be finite, got {}", self.epsilon)));
        }
        if self.smooth && !(self.ro.is_finite() && self.ro >= 0.0 && self.ro < self.rc) {
            return Err(invalid(
                "ro",
                format!("must satisfy 0 <= ro < rc = {} with smooth=true, got {}", self.rc, self.ro),
            ));
        }
        Ok(())
    }

    fn build(&self) -> Result<Box<dyn Calculator>, CalcError> {
        self.validate()?;
        let (rc2, ro2) = (self.rc * self.rc, self.ro * self.ro);
        let sr6 = (self.sigma / self.rc).powi(6);
        let lj = Lj { sigma2: self.sigma * self.sigma, four_eps: 4.0 * self.epsilon };
        Ok(if self.smooth {
            let pot = LjSmooth { lj, rc2, ro2, inv: 1.0 / (rc2 - ro2).powi(3) };
            Box::new(PairCalculator::new("LennardJones", pot, self.rc)?)
        } else {
            let pot = LjShifted { lj, shift: 4.0 * self.epsilon * (sr6 * sr6 - sr6) };
            Box::new(PairCalculator::new("LennardJones", pot, self.rc)?)
        })
    }
}

inventory::submit! {
    CalculatorInfo {
        name: "lennard_jones",
        aliases: &["LennardJones"],
        summary: "Lennard-Jones pair potential, as ASE's LennardJones (energy shift or smooth cutoff)",
        fields: &[
            ("sigma", "float, default 1.0: length scale (A); minimum at 2^(1/6) sigma"),
            ("epsilon", "float, default 1.0: well depth (eV)"),
            ("rc", "float, default 3*sigma: cutoff (A)"),
            ("ro", "float, default 0.66*rc: onset of the smooth cutoff (A), with smooth=true"),
            ("smooth", "bool, default false: smooth cutoff function instead of shifting energies to 0 at rc"),
        ],
    }
}

/// The bare Lennard-Jones function with its constants folded.
struct Lj {
    sigma2: f64,
    four_eps: f64,
}

impl Lj {
    /// `(u, (du/dr)/r)` at `r2`.
    #[inline]
    fn eval(&self, r2: f64) -> (f64, f64) {
        // One division: it dominates the cost of a pair.
        let inv_r2 = 1.0 / r2;
        let c6 = {
            let s = self.sigma2 * inv_r2;
            s * s * s
        };
        let c12 = c6 * c6;
        let u = self.four_eps * (c12 - c6);
        let g = -6.0 * self.four_eps * (2.0 * c12 - c6) * inv_r2;
        (u, g)
    }
}

/// Lennard-Jones shifted by `u(rc)` (ASE's default).
struct LjShifted {
    lj: Lj,
    /// `u(rc)`, subtracted from every pair.
    shift: f64,
}

impl PairPotential for LjShifted {
    #[inline]
    fn eval(&self, r2: f64) -> (f64, f64) {
        let (u, g) = self.lj.eval(r2);
        (u - self.shift, g)
    }
}

/// Lennard-Jones times ASE's smooth cutoff function between `ro` and `rc`.
struct LjSmooth {
    lj: Lj,
    rc2: f64,
    ro2: f64,
    /// `1/(rc² − ro²)³`.
    inv: f64,
}

impl PairPotential for LjSmooth {
    #[inline]
    fn eval(&self, r2: f64) -> (f64, f64) {
        let (u, g) = self.lj.eval(r2);
        let (rc2, ro2, inv) = (self.rc2, self.ro2, self.inv);
        if r2 < ro2 {
            (u, g)
        } else {
            let fc = (rc2 - r2) * (rc2 - r2) * (rc2 + 2.0 * r2 - 3.0 * ro2) * inv;
            let dfc = 6.0 * (rc2 - r2) * (ro2 - r2) * inv;
            (fc * u, fc * g + 2.0 * dfc * u)
        }
    }
}
