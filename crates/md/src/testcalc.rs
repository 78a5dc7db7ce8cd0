//! A test-only calculator: independent harmonic traps, `E = Σ k/2 |x_i|²`,
//! with switches that make it fail, return NaN or return enormous forces past
//! a coordinate, to drive the op's failure paths.

use autopara_core::Atoms;
use autopara_core::calculator::{CalcError, CalcResults, Calculator, CalculatorSpec, Properties};
use serde::{Deserialize, Serialize};

/// Spec of the trap calculator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrapSpec {
    /// Spring constant (eV/Å²).
    pub k: f64,
    /// Return a NaN energy when any x coordinate exceeds this.
    #[serde(default)]
    pub nan_above: Option<f64>,
    /// Return an error when any x coordinate exceeds this.
    #[serde(default)]
    pub fail_above: Option<f64>,
    /// Add a finite but enormous force, [`HUGE_FORCE`] along +x, on each atom
    /// whose x coordinate exceeds this (the energy stays the trap's).
    #[serde(default)]
    pub huge_force_above: Option<f64>,
}

/// The force (eV/Å) `huge_force_above` adds.
pub const HUGE_FORCE: f64 = 1e300;

#[typetag::serde(name = "test_trap")]
impl CalculatorSpec for TrapSpec {
    fn build(&self) -> Result<Box<dyn Calculator>, CalcError> {
        Ok(Box::new(self.clone()))
    }
}

impl Calculator for TrapSpec {
    fn name(&self) -> &str {
        "Trap"
    }

    fn calculate(&mut self, atoms: &Atoms, request: Properties, out: &mut CalcResults) -> Result<(), CalcError> {
        let xmax = atoms.positions.iter().map(|p| p[0]).fold(f64::NEG_INFINITY, f64::max);
        if self.fail_above.is_some_and(|x| xmax > x) {
            return Err(CalcError::Other(format!("trap: x = {xmax} out of range")));
        }
        out.forces.clear();
        out.energies.clear();
        out.energy = 0.0;
        for p in &atoms.positions {
            let e = 0.5 * self.k * (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]);
            out.energy += e;
            out.energies.push(e);
            out.forces.push(p.map(|x| -self.k * x));
        }
        if let Some(threshold) = self.huge_force_above {
            for (f, p) in out.forces.iter_mut().zip(&atoms.positions) {
                if p[0] > threshold {
                    f[0] += HUGE_FORCE;
                }
            }
        }
        if self.nan_above.is_some_and(|x| xmax > x) {
            out.energy = f64::NAN;
        }
        out.stress = [0.0; 6];
        out.computed = Properties { energy: true, forces: true, stress: request.stress, energies: true };
        Ok(())
    }
}
