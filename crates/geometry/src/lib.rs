//! autopara geometry: the cell (its volume, whether it has one, fractional
//! coordinates and wrapping), neighbour lists with explicit periodic images
//! (one-off and Verlet), the small 3-vector helpers the other crates
//! share, and loops compiled per vector unit (`simd`). It knows nothing of `Atoms`, ops or the executor: positions are
//! `[[f64; 3]]`, cells are rows of lattice vectors `[[f64; 3]; 3]` and
//! periodicity is `[bool; 3]`, as in ASE.
//!
//! ```
//! use autopara_geometry::cell;
//! use autopara_geometry::neighbours::{ListKind, NeighbourList};
//! let cubic = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
//! assert_eq!(cell::volume(&cubic), 8.0);
//! // A flat cell has no volume, and both functions say so.
//! let flat = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0]];
//! assert!(!cell::has_volume(&flat) && cell::volume(&flat) == 0.0);
//! // The six nearest images of one atom in the cubic cell.
//! let mut nl = NeighbourList::new(2.1, ListKind::Full).unwrap();
//! nl.build(&[[0.0; 3]], &cubic, [true; 3]).unwrap();
//! assert_eq!(nl.len(), 6);
//! ```

pub mod cell;
pub mod float;
pub mod neighbours;
pub mod simd;
pub mod vec3;
