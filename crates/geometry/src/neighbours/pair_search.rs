//! The pair search: every other atom's periodic images within the bins'
//! fractional extent, for small systems where that beats visiting bins.

use super::bins::Bins;
use super::list::{Candidate, Pairs};
use super::{ListKind, MAX_CELLS};
use crate::float::{ceil_i32, floor_i32};

/// The pairs of atom `i`, by testing every other atom's images whose
/// fractional separation along each axis is within the bins' extent, appended
/// in canonical order (neighbour, then shift: the loops run in that order);
/// returns the number of distances evaluated. `rows` is the cell with open
/// rows zeroed; `candidates` is scratch space.
///
/// Two passes without data-dependent branches: every candidate's exact
/// vector (from the original positions, as everywhere) first, then the ones
/// within the cutoff are kept by writing each and counting it or not. About
/// half pass, so a branch would mispredict often, and counting while
/// computing would chain every candidate to the previous one.
///
/// Candidates are filtered in batches of [`CANDIDATE_BATCH`], and the
/// search stops once `out` holds more pairs than `limits.0` or it has
/// tested more images than `limits.1` (the caller refuses the list),
/// so neither memory nor time grows with the number of images a tiny cell
/// has within the cutoff.
#[allow(clippy::too_many_arguments)]
pub(super) fn pair_search(
    bins: &Bins,
    rows: &[[f64; 3]; 3],
    kind: ListKind,
    i: usize,
    positions: &[[f64; 3]],
    cut2: f64,
    limits: (usize, u64),
    candidates: &mut Vec<Candidate>,
    out: &mut Pairs,
) -> u64 {
    let (fi, ki) = (bins.frac[i], bins.wraps[i]);
    let e = bins.extent;
    let first = if kind == ListKind::Half { i } else { 0 };
    let (mut m, mut examined) = (0, 0);
    for (j, &fj) in bins.frac.iter().enumerate().skip(first) {
        // Range of image shifts along each axis: |Δf + s| <= extent.
        let mut lo = [0i32; 3];
        let mut hi = [0i32; 3];
        for k in 0..3 {
            let df = fj[k] - fi[k];
            if bins.periodic[k] {
                // Clamped so that the range and its shifts fit i32: a range
                // that wide (a cell 1e-8 Å thin) passes the pair limit first.
                lo[k] = ceil_i32((-e[k] - df).max(-MAX_CELLS));
                hi[k] = floor_i32((e[k] - df).min(MAX_CELLS));
            } else {
                hi[k] = i32::from(df.abs() <= e[k]) - 1;
            }
        }
        let count: [i32; 3] = std::array::from_fn(|k| (hi[k] - lo[k] + 1).max(0));
        if count.contains(&0) {
            continue;
        }
        let kj = bins.wraps[j];
        // Exclusive ranges: inclusive ones iterate slowly.
        for sx in lo[0]..hi[0] + 1 {
            for sy in lo[1]..hi[1] + 1 {
                for sz in lo[2]..hi[2] + 1 {
                    // Rarely taken: the buffer is full (grow it, or keep a batch).
                    if m == candidates.len() {
                        if m >= CANDIDATE_BATCH {
                            out.keep_within(&candidates[..m], kind, i, cut2);
                            examined += m as u64;
                            m = 0;
                            if out.len() > limits.0 || examined > limits.1 {
                                return examined;
                            }
                        } else {
                            candidates.resize((2 * m).clamp(1024, CANDIDATE_BATCH), Candidate::default());
                        }
                    }
                    let s = [sx - kj[0] + ki[0], sy - kj[1] + ki[1], sz - kj[2] + ki[2]];
                    candidates[m] = Candidate::exact(positions, rows, i, j, s);
                    m += 1;
                }
            }
        }
    }
    out.keep_within(&candidates[..m], kind, i, cut2);
    examined + m as u64
}

/// Candidates held before those within the cutoff are kept (3 MB).
const CANDIDATE_BATCH: usize = 1 << 16;
