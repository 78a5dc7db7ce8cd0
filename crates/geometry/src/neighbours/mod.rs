//! Neighbour lists: every pair of atoms closer than a cutoff, with explicit
//! periodic images, for any triclinic cell, any cutoff relative to the cell
//! and any mix of periodic and open directions.
//!
//! Two types:
//! - [`NeighbourList`]: the pairs `(i, j, shift)` with `r_ij = r_j + shift·cell − r_i`
//!   and `|r_ij| < cutoff`, as flat arrays sorted by centre atom (so the
//!   neighbours of one atom are a contiguous range), built in O(N) with linked
//!   cells. Full lists hold both `(i, j, S)` and `(j, i, −S)`; half lists one of them.
//! - [`VerletList`]: a [`NeighbourList`] built at `cutoff + skin` and kept
//!   between calls, rebuilt only when the two largest displacements since
//!   the last build sum to more than `skin` (or the cell, periodicity or atom
//!   count changed). Its pairs are filtered
//!   to the cutoff at every use, so results do not depend on the skin.
//!
//! Explicit images matter: in a 108-atom box the cutoff plus skin exceeds half
//! the box, where minimum image misses pairs, and a cutoff longer than the cell
//! sees several images of the same neighbour (and of the atom itself).
//!
//! Pairs are always in a canonical order (centre, then neighbour index, then
//! shift), so sums over them are bit-for-bit the same whenever and from
//! whichever positions the list was built.
//!
//! The code is split by concern: the list and its canonical order (`list`),
//! linked cells (`bins`), the search over every pair's candidate images
//! (`pair_search`), the table of the 27 nearest images (`images`) and the
//! Verlet list (`verlet`).
//!
//! ```
//! use autopara_geometry::neighbours::{ListKind, NeighbourList};
//! // Simple cubic, a = 2 Å, cutoff 2.1 Å: each atom sees its 6 images.
//! let cell = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
//! let mut nl = NeighbourList::new(2.1, ListKind::Full).unwrap();
//! nl.build(&[[0.0; 3]], &cell, [true; 3]).unwrap();
//! assert_eq!(nl.len(), 6);
//! assert!(nl.distances().iter().all(|&d| (d - 2.0).abs() < 1e-12));
//! ```

mod bins;
mod images;
mod list;
mod pair_search;
mod verlet;

#[cfg(test)]
mod tests;

pub use list::NeighbourList;
pub use verlet::VerletList;

/// Which pairs a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Both `(i, j, S)` and `(j, i, −S)`: every atom sees all its neighbours.
    Full,
    /// One of each pair: `j > i`, or `j == i` (a periodic image of itself) with
    /// the shift lexicographically positive.
    Half,
}

/// Why a neighbour list cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NeighbourError {
    /// The cutoff is zero, negative or not finite.
    #[error("neighbour list cutoff must be positive and finite, got {cutoff}")]
    InvalidCutoff {
        /// The rejected cutoff (Å).
        cutoff: f64,
    },
    /// An atom with a NaN or infinite coordinate.
    #[error("atom {atom} has a non-finite position {position:?}")]
    NonFinitePosition {
        /// The atom's index.
        atom: usize,
        /// Its position.
        position: [f64; 3],
    },
    /// An atom so many cells outside the cell along a periodic direction
    /// (2^29 or more) that its position has no significant digits left for
    /// distances of a few Å.
    #[error(
        "atom {atom} lies {cells:e} cell widths outside the cell along a periodic direction; its position is too imprecise for neighbour distances"
    )]
    FarOutsideCell {
        /// The atom's index.
        atom: usize,
        /// Its fractional coordinate along that direction.
        cells: f64,
    },
    /// The periodic lattice vectors are zero, parallel or coplanar.
    #[error("degenerate cell for periodic directions {pbc:?}: {reason}")]
    DegenerateCell {
        /// The periodicity.
        pbc: [bool; 3],
        /// What is wrong.
        reason: String,
    },
    /// The list would hold more pairs than is sensible to store (the cutoff is
    /// far larger than the cell).
    #[error("more than {limit} neighbour pairs within {cutoff} Å; is the cutoff much larger than the cell?")]
    TooManyPairs {
        /// The cutoff (Å).
        cutoff: f64,
        /// The limit on the number of pairs.
        limit: usize,
    },
}

/// Upper limit on stored pairs (about 1.5 GB of list).
const MAX_PAIRS: usize = 25_000_000;

/// Pairs per atom a compact list (a Verlet list's outer level, 8 bytes a
/// pair) may hold when that is more than [`MAX_PAIRS`].
const COMPACT_PAIRS_PER_ATOM: usize = 200;

/// The most pairs a list of `n` atoms may hold: [`MAX_PAIRS`], or for a
/// compact list [`COMPACT_PAIRS_PER_ATOM`] per atom when more, so that
/// large systems keep their Verlet lists with memory in proportion.
fn max_pairs(compact: bool, n: usize) -> usize {
    if compact { MAX_PAIRS.max(COMPACT_PAIRS_PER_ATOM.saturating_mul(n)) } else { MAX_PAIRS }
}

/// Upper limit on candidate images tested in one build, per pair allowed:
/// far more than a list within its limit needs, so a build past it is
/// refused as too many pairs.
const CANDIDATES_PER_PAIR: u64 = 8;

/// How many cells outside the cell (along a periodic direction) an atom may
/// lie: lattice shifts then fit `i32` with room for the search's offsets.
const MAX_CELLS: f64 = (1 << 29) as f64;

/// Relative safety margin on bin reach, against rounding at bin edges.
const MARGIN: f64 = 1e-9;

/// `r_j + shift − r_i`, evaluated as `(r_j − r_i) + shift` everywhere so that
/// builds, Verlet filtering and the calculators' pair loops agree to the bit.
#[inline]
pub fn pair_vector(ri: &[f64; 3], rj: &[f64; 3], shift: &[f64; 3]) -> [f64; 3] {
    [(rj[0] - ri[0]) + shift[0], (rj[1] - ri[1]) + shift[1], (rj[2] - ri[2]) + shift[2]]
}
