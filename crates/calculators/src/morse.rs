//! The Morse pair potential, as ASE's `ase.calculators.morse.MorsePotential` (3.28).
//!
//! `V(r) = ε (e^{−2ρ₀(r/r₀ − 1)} − 2 e^{−ρ₀(r/r₀ − 1)})`, multiplied by ASE's
//! quintic smooth step (JuLIP's C² cutoff) from 1 at `rcut1·r₀` to 0 at `rcut2·r₀`.
//!
//! ```
//! use autopara_core::{Atoms, CalcResults, CalculatorSpec, Properties};
//! let spec: Box<dyn CalculatorSpec> = serde_json::from_str(r#"{"type": "morse", "r0": 1.5}"#).unwrap();
//! let mut calc = spec.build().unwrap();
//! let dimer = Atoms::new(vec![1, 1], vec![[0.0; 3], [1.5, 0.0, 0.0]]);
//! let mut out = CalcResults::default();
//! calc.calculate(&dimer, Properties::ENERGY_FORCES, &mut out).unwrap();
//! assert!((out.energy + 1.0).abs() < 1e-12); // -epsilon at r0
//! assert_eq!(calc.name(), "MorsePotential");
//! ```

use crate::pair::{PairCalculator, PairPotential};
use crate::{invalid, positive};
use autopara_core::{CalcError, Calculator, CalculatorInfo, CalculatorSpec};
use serde::{Deserialize, Serialize};

/// The `morse` calculator spec (ASE's `MorsePotential` parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Morse {
    /// Well depth ε (eV). Default 1.
    #[serde(default = "defaults::epsilon")]
    pub epsilon: f64,
    /// Exponential prefactor ρ₀. Default 6.
    #[serde(default = "defaults::rho0")]
    pub rho0: f64,
    /// Equilibrium distance r₀ (Å). Default 1.
    #[serde(default = "defaults::r0")]
    pub r0: f64,
    /// Start of the smooth cutoff, in units of r₀. Default 1.9.
    #[serde(default = "defaults::rcut1")]
    pub rcut1: f64,
    /// End of the smooth cutoff, in units of r₀. Default 2.7.
    #[serde(default = "defaults::rcut2")]
    pub rcut2: f64,
}

mod defaults {
    pub(super) fn epsilon() -> f64 {
        1.0
    }
    pub(super) fn rho0() -> f64 {
        6.0
    }
    pub(super) fn r0() -> f64 {
        1.0
    }
    pub(super) fn rcut1() -> f64 {
        1.9
    }
    pub(super) fn rcut2() -> f64 {
        2.7
    }
}

impl Default for Morse {
    fn default() -> Morse {
        Morse {
            epsilon: defaults::epsilon(),
            rho0: defaults::rho0(),
            r0: defaults::r0(),
            rcut1: defaults::rcut1(),
            rcut2: defaults::rcut2(),
        }
    }
}

#[typetag::serde(name = "morse")]
impl CalculatorSpec for Morse {
    fn validate(&self) -> Result<(), CalcError> {
        positive("r0", self.r0)?;
        positive("rcut2", self.rcut2)?;
        for (field, x) in [("epsilon", self.epsilon), ("rho0", self.rho0)] {
            if !x.is_finite() {
                return Err(invalid(field, format!("must be finite, got {x}")));
            }
        }
        if !(self.rcut1.is_finite() && self.rcut1 >= 0.0 && self.rcut1 < self.rcut2) {
            return Err(invalid(
                "rcut1",
                format!("must satisfy 0 <= rcut1 < rcut2 = {}, got {}", self.rcut2, self.rcut1),
            ));
        }
        Ok(())
    }

    fn build(&self) -> Result<Box<dyn Calculator>, CalcError> {
        self.validate()?;
        let (r1, r2) = (self.rcut1 * self.r0, self.rcut2 * self.r0);
        let pot = MorsePair { epsilon: self.epsilon, rho0: self.rho0, r0: self.r0, r1, width: r2 - r1 };
        Ok(Box::new(PairCalculator::new("MorsePotential", pot, r2)?))
    }
}

inventory::submit! {
    CalculatorInfo {
        name: "morse",
        aliases: &["MorsePotential"],
        summary: "Morse pair potential with a smooth cutoff, as ASE's MorsePotential",
        fields: &[
            ("epsilon", "float, default 1.0: well depth (eV)"),
            ("rho0", "float, default 6.0: exponential prefactor"),
            ("r0", "float, default 1.0: equilibrium distance (A)"),
            ("rcut1", "float, default 1.9: start of the smooth cutoff, in units of r0"),
            ("rcut2", "float, default 2.7: end of the smooth cutoff, in units of r0"),
        ],
    }
}

struct MorsePair {
    epsilon: f64,
    rho0: f64,
    r0: f64,
    /// Cutoff onset (Å).
    r1: f64,
    /// Cutoff width (Å).
    width: f64,
}

impl PairPotential for MorsePair {
    #[inline]
    fn eval(&self, r2: f64) -> (f64, f64) {
        let r = r2.sqrt();
        let e = (self.rho0 * (1.0 - r / self.r0)).exp();
        let u = self.epsilon * e * (e - 2.0);
        let du = (-2.0 * self.epsilon * self.rho0 / self.r0) * e * (e - 1.0);
        // ASE's fcut/fcut_d with s = 1 − (r − r1)/(r2 − r1).
        let s = 1.0 - (r - self.r1) / self.width;
        let (fc, dfc) = if s >= 1.0 {
            (1.0, 0.0)
        } else if s > 0.0 {
            let s2 = s * s;
            (s2 * s * (6.0 * s2 - 15.0 * s + 10.0), -(30.0 * s2 * (s2 - 2.0 * s + 1.0)) / self.width)
        } else {
            (0.0, 0.0)
        };
        (u * fc, (du * fc + u * dfc) / r)
    }
}
