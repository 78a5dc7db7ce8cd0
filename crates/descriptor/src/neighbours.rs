//! Atomic environments for descriptors, from the geometry crate's linked-cell
//! neighbour list (explicit periodic images, any triclinic cell).
//!
//! dscribe replicates the cell `ceil(cutoff / layer height)` times in each
//! periodic direction and bins the copies; for atoms inside the cell that
//! finds exactly the images within the cutoff, which is what the list holds.
//! As in dscribe, periodicity is used only when the descriptor asks for it
//! (`periodic = true`) and then only along the configuration's periodic
//! directions.

use crate::error::DescriptorError;
use autopara_core::Atoms;
use autopara_geometry::neighbours::{ListKind, NeighbourError, NeighbourList};

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

/// Neighbour lists kept by a worker for reuse (one per cutoff in use), so
/// their buffers are not allocated (and page-faulted in) anew for every
/// configuration. The op keeps one per worker in its
/// [`WorkerContext`](autopara_core::WorkerContext); a list is rebuilt for
/// every configuration, so what it held before never changes a result.
#[derive(Default)]
pub struct Lists {
    kept: Vec<NeighbourList>,
}

/// Lists kept per worker (one per cutoff in use).
const KEPT_LISTS: usize = 4;

impl Neighbours {
    /// Calls `f` with the environments of all atoms of `atoms` within
    /// `cutoff` (Å), with periodic images when `periodic` and the
    /// configuration is periodic.
    pub(crate) fn with<R>(
        descriptor: &'static str,
        atoms: &Atoms,
        cutoff: f64,
        periodic: bool,
        lists: &mut Lists,
        f: impl FnOnce(&Neighbours) -> R,
    ) -> Result<R, DescriptorError> {
        let geometry = |e: NeighbourError| DescriptorError::Geometry { descriptor, message: e.to_string() };
        let pbc = if periodic { atoms.pbc } else { [false; 3] };
        let kept = lists.kept.iter().position(|l| l.cutoff() == cutoff).map(|i| lists.kept.swap_remove(i));
        let mut list = match kept {
            Some(list) => list,
            None => NeighbourList::new(cutoff, ListKind::Full).map_err(geometry)?,
        };
        list.build(&atoms.positions, &atoms.cell, pbc).map_err(geometry)?;
        let neighbours = Neighbours { list };
        let result = f(&neighbours);
        if lists.kept.len() < KEPT_LISTS {
            lists.kept.push(neighbours.list);
        }
        Ok(result)
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
