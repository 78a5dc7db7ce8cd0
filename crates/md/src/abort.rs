//! wfl's abort checks (`AbortOnCollision`, `AbortOnLowEnergy`), evaluated at
//! every saved frame: a trajectory stops when the last `n_failed_steps` checks
//! (or all of them, while fewer were made) failed.

use crate::args::AbortCheck;
use crate::dynamics::State;
use crate::error::MdError;
use autopara_geometry::neighbours::{ListKind, NeighbourList};

/// An abort check with its history.
pub struct AbortState {
    check: AbortCheck,
    history: Vec<bool>,
    initial_energy_per_atom: Option<f64>,
    list: Option<NeighbourList>,
}

impl AbortState {
    /// A fresh check (one per trajectory).
    pub fn new(check: AbortCheck) -> Result<AbortState, MdError> {
        let list = match check {
            AbortCheck::Collision { collision_radius, .. } => Some(
                NeighbourList::new(collision_radius, ListKind::Half)
                    .map_err(|e| MdError::arg("abort_check.collision_radius", e.to_string()))?,
            ),
            AbortCheck::LowEnergy { .. } => None,
        };
        Ok(AbortState { check, history: Vec::new(), initial_energy_per_atom: None, list })
    }

    /// The check's name.
    pub fn name(&self) -> &'static str {
        self.check.name()
    }

    /// Records whether this frame is acceptable and says whether to stop.
    pub fn stop(&mut self, state: &State) -> bool {
        let ok = self.frame_ok(state);
        self.history.push(ok);
        let n = match self.check {
            AbortCheck::Collision { n_failed_steps, .. } => n_failed_steps,
            AbortCheck::LowEnergy { .. } => 1,
        };
        self.history.iter().rev().take(n).all(|ok| !ok)
    }

    fn frame_ok(&mut self, state: &State) -> bool {
        match self.check {
            AbortCheck::Collision { .. } => {
                let Some(list) = self.list.as_mut() else { return true };
                let atoms = &state.atoms;
                // A list that cannot be built (a degenerate cell) counts as a collision.
                list.build(&atoms.positions, &atoms.cell, atoms.pbc).is_ok() && list.is_empty()
            }
            AbortCheck::LowEnergy { delta_e_per_atom } => {
                let e = state.results.energy / state.n_atoms() as f64;
                let e0 = *self.initial_energy_per_atom.get_or_insert(e);
                e - e0 >= -delta_e_per_atom.abs()
            }
        }
    }
}
