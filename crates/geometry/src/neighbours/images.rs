//! The 27 nearest images `s ∈ {−1, 0, 1}³` of a neighbour, by table, for a
//! search radius under one cell width along every periodic axis.

use super::bins::Bins;
use super::list::{Candidate, Pairs};
use super::{ListKind, MARGIN};
use crate::cell::shift_vector;
use crate::vec3::norm2;

/// The images `s ∈ {−1, 0, 1}³` of a neighbour that can be within the
/// search radius when the radius is under one cell width along every
/// periodic axis, by table: per axis a 3-bit mask of the shifts within the
/// extent, combined into a 27-bit mask whose set bits, lowest first, are the
/// candidate images in canonical (lexicographic) order.
pub(super) struct NearImages {
    /// `s·cell` of image `b = 9(sx+1) + 3(sy+1) + (sz+1)`.
    vectors: [[f64; 3]; 27],
}

/// The 27-bit mask of images allowed by per-axis 3-bit masks `(x, y, z)`, at `64x + 8y + z`.
const IMAGE_MASKS: [u32; 512] = {
    let mut table = [0u32; 512];
    let mut t = 0;
    while t < 512 {
        let (mx, my, mz) = (t >> 6, (t >> 3) & 7, t & 7);
        let mut b = 0;
        while b < 27 {
            let on = (mx >> (b / 9)) & (my >> ((b / 3) % 3)) & (mz >> (b % 3)) & 1;
            table[t] |= (on as u32) << b;
            b += 1;
        }
        t += 1;
    }
    table
};

/// The shift `s ∈ {−1, 0, 1}³` of image `b = 9(sx+1) + 3(sy+1) + (sz+1)`.
#[inline]
fn image_shift(b: usize) -> [i32; 3] {
    let b = b as i32;
    [b / 9 - 1, (b / 3) % 3 - 1, b % 3 - 1]
}

impl NearImages {
    /// The table, or `None` when some periodic axis's extent reaches a cell width.
    pub(super) fn new(bins: &Bins, rows: &[[f64; 3]; 3]) -> Option<NearImages> {
        if (0..3).any(|k| bins.periodic[k] && bins.extent[k] >= 1.0) {
            return None;
        }
        let vectors = std::array::from_fn(|b| shift_vector(image_shift(b), rows));
        Some(NearImages { vectors })
    }

    /// As [`super::pair_search::pair_search`], for centre `i`, with the table's images.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn search(
        &self,
        bins: &Bins,
        kind: ListKind,
        i: usize,
        positions: &[[f64; 3]],
        rows: &[[f64; 3]; 3],
        cut2: f64,
        candidates: &mut Vec<Candidate>,
        out: &mut Pairs,
    ) -> u64 {
        let (fi, wi, ki) = (bins.frac[i], bins.wrapped[i], bins.wraps[i]);
        let e = bins.extent;
        // Candidates within the search radius (with margin) of the wrapped positions.
        let search2 = (cut2.sqrt() * (1.0 + MARGIN)).powi(2);
        let first = if kind == ListKind::Half { i } else { 0 };
        let n = bins.frac.len();
        if candidates.len() < 27 * (n - first) {
            candidates.resize(27 * (n - first), Candidate::default());
        }
        let mut m = 0;
        let mut examined = 0;
        for j in first..n {
            let fj = bins.frac[j];
            let mut t = 0;
            for k in 0..3 {
                let df = fj[k] - fi[k];
                let bits = if bins.periodic[k] {
                    u32::from((df - 1.0).abs() <= e[k])
                        | (u32::from(df.abs() <= e[k]) << 1)
                        | (u32::from((df + 1.0).abs() <= e[k]) << 2)
                } else {
                    u32::from(df.abs() <= e[k]) << 1
                };
                t = (t << 3) | bits as usize;
            }
            let mut mask = IMAGE_MASKS[t];
            examined += u64::from(mask.count_ones());
            let wj = bins.wrapped[j];
            let dw = [wj[0] - wi[0], wj[1] - wi[1], wj[2] - wi[2]];
            while mask != 0 {
                let b = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let v = self.vectors[b];
                let d = [dw[0] + v[0], dw[1] + v[1], dw[2] + v[2]];
                let r2 = norm2(d);
                candidates[m] = Candidate { j, s: image_shift(b), d, r2 };
                m += 1;
            }
        }
        // Keep those within the search radius: counting them while computing
        // would chain each candidate to the previous one's distance.
        let mut kept = 0;
        for c in 0..m {
            candidates[kept] = candidates[c];
            kept += usize::from(candidates[c].r2 < search2);
        }
        // The exact vectors of the survivors, from the original positions.
        for c in &mut candidates[..kept] {
            let kj = bins.wraps[c.j];
            *c = Candidate::exact(
                positions,
                rows,
                i,
                c.j,
                [c.s[0] - kj[0] + ki[0], c.s[1] - kj[1] + ki[1], c.s[2] - kj[2] + ki[2]],
            );
        }
        out.keep_within(&candidates[..kept], kind, i, cut2);
        examined
    }
}
