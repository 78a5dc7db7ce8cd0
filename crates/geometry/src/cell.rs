//! The cell: rows are lattice vectors (Å), as in ASE. One volume and one
//! "has a volume" test for every crate, so that whether a configuration gets
//! a stress, a pressure or a cell filter is decided the same way everywhere;
//! fractional coordinates and wrapping into the cell.
//!
//! ```
//! use autopara_geometry::cell::{cartesian, fractional, inverse, volume, wrap};
//! let cell = [[4.0, 0.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 5.0]];
//! assert_eq!(volume(&cell), 80.0);
//! let inv = inverse(&cell).unwrap();
//! let f = fractional(&[7.0, 6.0, -1.0], &inv);
//! assert_eq!(f, [1.0, 1.5, -0.2]);
//! assert_eq!(cartesian(f, &cell), [7.0, 6.0, -1.0]);
//! assert_eq!(wrap(-0.25), (0.75, -1));
//! ```

use crate::vec3::{cross, dot, norm};

/// Relative size below which `|a · (b × c)|` counts as no volume: against
/// `|a| |b| |c|`, the volume of a cube with the same edges.
const FLAT: f64 = 1e-10;

/// `a · (b × c)`, the signed volume.
#[inline]
pub fn determinant(cell: &[[f64; 3]; 3]) -> f64 {
    dot(cell[0], cross(cell[1], cell[2]))
}

/// The cell's volume `|a · (b × c)|` in Å³, or 0 when the cell has no
/// volume: a zero vector, parallel or coplanar vectors (the volume under
/// 1e-10 of `|a| |b| |c|`) or a non-finite entry. [`has_volume`] is exactly
/// `volume > 0`.
pub fn volume(cell: &[[f64; 3]; 3]) -> f64 {
    let v = determinant(cell).abs();
    let scale = norm(cell[0]) * norm(cell[1]) * norm(cell[2]);
    if v > FLAT * scale && v.is_finite() { v } else { 0.0 }
}

/// Whether the three lattice vectors span space (see [`volume`]): the test
/// for stress, pressure and cell filters.
pub fn has_volume(cell: &[[f64; 3]; 3]) -> bool {
    volume(cell) > 0.0
}

/// The inverse of a 3x3 matrix, `None` when singular or not finite.
pub fn inverse(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let c0 = cross(m[1], m[2]);
    let det = dot(m[0], c0);
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    let c1 = cross(m[2], m[0]);
    let c2 = cross(m[0], m[1]);
    // Columns of the inverse are the rows' reciprocal vectors.
    Some(std::array::from_fn(|r| [c0[r] / det, c1[r] / det, c2[r] / det]))
}

/// Fractional coordinates `f` of position `p`, with `p = f · cell`, given the
/// cell's [`inverse`].
#[inline]
pub fn fractional(p: &[f64; 3], inverse: &[[f64; 3]; 3]) -> [f64; 3] {
    std::array::from_fn(|k| p[0] * inverse[0][k] + p[1] * inverse[1][k] + p[2] * inverse[2][k])
}

/// The position `f · cell` of fractional coordinates `f`.
#[inline]
pub fn cartesian(f: [f64; 3], cell: &[[f64; 3]; 3]) -> [f64; 3] {
    std::array::from_fn(|x| f[0] * cell[0][x] + f[1] * cell[1][x] + f[2] * cell[2][x])
}

/// A fractional coordinate wrapped into `[0, 1)`, and the whole number of
/// cells taken off (`f = wrapped + cells`); the count saturates at the `i32`
/// range (never reached for a position within 2^31 cells of the origin).
/// Rounding can leave `wrapped` at exactly 1.0 for a tiny negative `f`.
#[inline]
pub fn wrap(f: f64) -> (f64, i32) {
    let fl = f.floor();
    (f - fl, fl.clamp(i32::MIN as f64, i32::MAX as f64) as i32)
}

/// The cell with the rows of open directions zeroed, so that a lattice
/// shift along them is zero whatever those rows hold.
pub fn periodic_rows(cell: &[[f64; 3]; 3], pbc: [bool; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|k| if pbc[k] { cell[k] } else { [0.0; 3] })
}

/// `S · rows` for an integer lattice shift `S`, without branches (use
/// [`periodic_rows`] for cells with open directions).
#[inline]
pub fn shift_vector(s: [i32; 3], rows: &[[f64; 3]; 3]) -> [f64; 3] {
    cartesian(s.map(f64::from), rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_and_has_volume_agree_on_degenerate_cells() {
        let cubic = [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]];
        let cells = [
            (cubic, true),
            ([[0.0; 3]; 3], false),
            ([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]], false),
            // Coplanar to 1e-13 relative: a determinant, but no volume.
            ([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 3e-13]], false),
            ([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 3e-8]], true),
            ([[3.0, 0.0, 0.0], [0.0, f64::NAN, 0.0], [0.0, 0.0, 3.0]], false),
            ([[3.0, 0.0, 0.0], [0.0, f64::INFINITY, 0.0], [0.0, 0.0, 3.0]], false),
        ];
        for (c, has) in cells {
            assert_eq!(has_volume(&c), has, "{c:?}");
            assert_eq!(volume(&c) > 0.0, has, "{c:?}");
            if has {
                assert_eq!(volume(&c), determinant(&c).abs());
            }
        }
    }

    #[test]
    fn fractional_round_trip_and_wrap() {
        let cell = [[4.0, 0.1, 0.0], [1.0, 3.0, 0.2], [0.3, -0.5, 5.0]];
        let inv = inverse(&cell).unwrap();
        let p = [12.3, -7.1, 40.2];
        let back = cartesian(fractional(&p, &inv), &cell);
        for k in 0..3 {
            assert!((back[k] - p[k]).abs() < 1e-12);
        }
        assert_eq!(wrap(2.5), (0.5, 2));
        assert_eq!(wrap(-3.0), (0.0, -3));
        assert_eq!(wrap(1e300).1, i32::MAX);
        assert!(inverse(&[[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).is_none());
    }
}
