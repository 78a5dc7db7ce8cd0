//! Atomic environments for descriptors, from the calculators' linked-cell
//! neighbour list (explicit periodic images, any triclinic cell).
//!
//! dscribe replicates the cell `ceil(cutoff / layer height)` times in each
//! periodic direction and bins the copies; for atoms inside the cell that
//! finds exactly the images within the cutoff, which is what the list holds.
//! As in dscribe, periodicity is used only when the descriptor asks for it
//! (`periodic = true`) and then only along the configuration's periodic
//! directions.

use crate::error::DescriptorError;
use autopara_calculators::neighbours::{ListKind, NeighbourError, NeighbourList};
use autopara_core::Atoms;

/// Every atom's neighbours within a cutoff (the atom itself at zero shift excluded).
pub(crate) struct Neighbours {
    list: NeighbourList,
}

/// One centre's neighbours: atom indices, vectors from the centre, distances.
#[derive(Clone, Copy)]
pub(crate) struct Environment<'a> {
    /// The centre atom.
    pub(crate) centre: usize,
    /// Neighbour atom indices (an atom appears once per periodic image).
    pub(crate) neighbours: &'a [usize],
    /// `r_j + shift − r_i` per neighbour (Å).
    pub(crate) vectors: &'a [[f64; 3]],
    /// Their lengths (Å).
    pub(crate) distances: &'a [f64],
}

impl Neighbours {
    /// The environments of all atoms of `atoms` within `cutoff` (Å), with
    /// periodic images when `periodic` and the configuration is periodic.
    pub(crate) fn build(
        descriptor: &'static str,
        atoms: &Atoms,
        cutoff: f64,
        periodic: bool,
    ) -> Result<Neighbours, DescriptorError> {
        let geometry = |e: NeighbourError| DescriptorError::Geometry { descriptor, message: e.to_string() };
        let pbc = if periodic { atoms.pbc } else { [false; 3] };
        let mut list = NeighbourList::new(cutoff, ListKind::Full).map_err(geometry)?;
        list.build(&atoms.positions, &atoms.cell, pbc).map_err(geometry)?;
        Ok(Neighbours { list })
    }

    /// The environment of atom `i`.
    pub(crate) fn of(&self, i: usize) -> Environment<'_> {
        let range = self.list.range(i);
        Environment {
            centre: i,
            neighbours: &self.list.j()[range.clone()],
            vectors: &self.list.vectors()[range.clone()],
            distances: &self.list.distances()[range],
        }
    }
}
