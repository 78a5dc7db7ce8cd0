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
//! ```
//! use autopara_calculators::neighbours::{ListKind, NeighbourList};
//! // Simple cubic, a = 2 Å, cutoff 2.1 Å: each atom sees its 6 images.
//! let cell = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
//! let mut nl = NeighbourList::new(2.1, ListKind::Full).unwrap();
//! nl.build(&[[0.0; 3]], &cell, [true; 3]).unwrap();
//! assert_eq!(nl.len(), 6);
//! assert!(nl.distances().iter().all(|&d| (d - 2.0).abs() < 1e-12));
//! ```

use crate::simd::ROUNDER;
use std::ops::Range;

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

/// Relative safety margin on bin reach, against rounding at bin edges.
const MARGIN: f64 = 1e-9;

/// The pairs within a cutoff, as flat arrays sorted by centre atom.
#[derive(Debug, Clone)]
pub struct NeighbourList {
    cutoff: f64,
    kind: ListKind,
    /// `first[i]..first[i + 1]` are atom i's pairs.
    first: Vec<usize>,
    pairs: Pairs,
    bins: Bins,
    /// One centre's candidates before sorting: (order key, j, shift).
    scratch: Vec<(u64, usize, [i32; 3])>,
    /// One centre's candidates in the pair search.
    candidates: Vec<Candidate>,
    /// Candidate pairs whose distance the last build evaluated.
    examined: u64,
    /// Forces one search (tests); `None` picks the cheaper.
    search: Option<Search>,
}

/// How candidates are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    /// Linked cells.
    Cells,
    /// Every pair, with the periodic images that can be within range.
    Pairs,
}

impl NeighbourList {
    /// An empty list for `cutoff` (Å), rejecting non-positive or non-finite cutoffs.
    pub fn new(cutoff: f64, kind: ListKind) -> Result<NeighbourList, NeighbourError> {
        if !(cutoff.is_finite() && cutoff > 0.0) {
            return Err(NeighbourError::InvalidCutoff { cutoff });
        }
        Ok(NeighbourList {
            cutoff,
            kind,
            first: vec![0],
            pairs: Pairs { geometry: true, ..Pairs::default() },
            bins: Bins::default(),
            scratch: Vec::new(),
            candidates: Vec::new(),
            examined: 0,
            search: None,
        })
    }

    /// The cutoff (Å).
    pub fn cutoff(&self) -> f64 {
        self.cutoff
    }

    /// How many candidate distances the last build evaluated: grows linearly
    /// with the number of atoms at fixed density (the linked cells' point).
    pub fn candidates_examined(&self) -> u64 {
        self.examined
    }

    /// Full or half.
    pub fn kind(&self) -> ListKind {
        self.kind
    }

    /// Builds the list for these positions (Å), cell (rows are lattice
    /// vectors; only periodic rows are used) and periodicity, reusing buffers.
    /// On error the list is left empty.
    pub fn build(
        &mut self,
        positions: &[[f64; 3]],
        cell: &[[f64; 3]; 3],
        pbc: [bool; 3],
    ) -> Result<(), NeighbourError> {
        self.clear(positions.len());
        let result = self.build_inner(positions, cell, pbc);
        if result.is_err() {
            self.clear(positions.len());
        }
        result
    }

    fn clear(&mut self, n: usize) {
        self.first.clear();
        self.first.resize(n + 1, 0);
        self.pairs.clear();
        self.examined = 0;
    }

    fn build_inner(
        &mut self,
        positions: &[[f64; 3]],
        cell: &[[f64; 3]; 3],
        pbc: [bool; 3],
    ) -> Result<(), NeighbourError> {
        let n = positions.len();
        let cell = &periodic_rows(cell, pbc);
        // Search slightly beyond the cutoff; the exact test is on the final vectors.
        self.bins.assign(positions, cell, pbc, self.cutoff * (1.0 + MARGIN))?;
        let cut2 = self.cutoff * self.cutoff;
        let bins = &self.bins;
        let [nbx, nby, nbz] = bins.count;
        let [rx, ry, rz] = bins.reach;
        // Refuse before looping when the candidates alone would be far too many.
        let visits: f64 = bins.reach.iter().map(|&r| (2 * r + 1) as f64).product();
        let total = (nbx * nby * nbz) as f64;
        if n as f64 * visits * (n as f64 / total).max(1.0) > 8.0 * MAX_PAIRS as f64 {
            return Err(NeighbourError::TooManyPairs { cutoff: self.cutoff, limit: MAX_PAIRS });
        }
        let search2 = (self.cutoff * (1.0 + MARGIN)).powi(2);
        let half = self.kind == ListKind::Half;
        // Small systems: testing every pair's few candidate images beats
        // visiting bins (in a 108-atom box a bin holds 4 atoms and each atom
        // visits 125 bins). Both searches give the same list.
        let by_pairs = self.search.unwrap_or_else(|| {
            let per_bin = n as f64 / total;
            let cells = n as f64 * visits * (per_bin + 2.0);
            let images: f64 = (0..3).map(|k| if pbc[k] { 2.0 * bins.extent[k] } else { 1.0 }).product();
            let pairs = n as f64 * n as f64 * if half { 0.5 } else { 1.0 } * (3.0 + images);
            if pairs < cells { Search::Pairs } else { Search::Cells }
        }) == Search::Pairs;
        // Within one cell width along every periodic axis, each neighbour has
        // at most three images per axis: a table of them beats ranges.
        let near = NearImages::new(bins, cell);
        for i in 0..n {
            if by_pairs {
                // Candidates come in canonical order: no sorting.
                self.examined += match &near {
                    Some(near) => {
                        near.search(bins, self.kind, i, positions, cell, cut2, &mut self.candidates, &mut self.pairs)
                    }
                    None => {
                        pair_search(bins, cell, self.kind, i, positions, cut2, &mut self.candidates, &mut self.pairs)
                    }
                };
                if self.pairs.len() > MAX_PAIRS {
                    return Err(NeighbourError::TooManyPairs { cutoff: self.cutoff, limit: MAX_PAIRS });
                }
                self.first[i + 1] = self.pairs.len();
                continue;
            }
            self.scratch.clear();
            {
                let bi = bins.atom_bin[i];
                let ki = bins.wraps[i];
                let wi = bins.wrapped[i];
                // Candidates from wrapped positions, one image vector per visited bin.
                for ox in -rx..=rx {
                    let Some((wx, sx)) = bins.neighbour_bin(0, bi[0], ox) else { continue };
                    for oy in -ry..=ry {
                        let Some((wy, sy)) = bins.neighbour_bin(1, bi[1], oy) else { continue };
                        for oz in -rz..=rz {
                            let Some((wz, sz)) = bins.neighbour_bin(2, bi[2], oz) else { continue };
                            let b = (wx * nby + wy) * nbz + wz;
                            let image = shift_vector([sx, sy, sz], cell);
                            let base = [image[0] - wi[0], image[1] - wi[1], image[2] - wi[2]];
                            let (lo, hi) = (bins.start[b], bins.start[b + 1]);
                            self.examined += (hi - lo) as u64;
                            for (&j, q) in bins.atoms[lo..hi].iter().zip(&bins.sorted[lo..hi]) {
                                let d = [q[0] + base[0], q[1] + base[1], q[2] + base[2]];
                                // One rarely-taken branch: the index test alone mispredicts half the time.
                                let near = d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < search2;
                                if near & (!half | (j >= i)) {
                                    let kj = bins.wraps[j];
                                    let s = [sx - kj[0] + ki[0], sy - kj[1] + ki[1], sz - kj[2] + ki[2]];
                                    if keep(self.kind, i, j, s) {
                                        self.scratch.push((order_key(j, s), j, s));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if self.pairs.len() + self.scratch.len() > MAX_PAIRS {
                return Err(NeighbourError::TooManyPairs { cutoff: self.cutoff, limit: MAX_PAIRS });
            }
            // Canonical order: by neighbour, then shift.
            if self.scratch.iter().all(|e| e.0 != u64::MAX) {
                self.scratch.sort_unstable_by_key(|e| e.0);
            } else {
                self.scratch.sort_unstable_by_key(|&(_, j, s)| (j, s));
            }
            self.candidates.clear();
            self.candidates.extend(self.scratch.iter().map(|&(_, j, s)| Candidate::exact(positions, cell, i, j, s)));
            self.pairs.keep_within(&self.candidates, self.kind, i, cut2);
            self.first[i + 1] = self.pairs.len();
        }
        Ok(())
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.j.is_empty()
    }

    /// Number of atoms the list was built for.
    pub fn n_atoms(&self) -> usize {
        self.first.len() - 1
    }

    /// Indices (into the flat arrays) of atom `i`'s pairs; empty when out of range.
    pub fn range(&self, i: usize) -> Range<usize> {
        match (self.first.get(i), self.first.get(i + 1)) {
            (Some(&a), Some(&b)) => a..b,
            _ => 0..0,
        }
    }

    /// Centre atom of each pair.
    pub fn i(&self) -> &[usize] {
        &self.pairs.i
    }

    /// Neighbour atom of each pair.
    pub fn j(&self) -> &[usize] {
        &self.pairs.j
    }

    /// Integer lattice shift `S` of each pair (zero along open directions).
    pub fn shifts(&self) -> &[[i32; 3]] {
        &self.pairs.shifts
    }

    /// `r_ij = r_j + S·cell − r_i` of each pair (Å).
    pub fn vectors(&self) -> &[[f64; 3]] {
        &self.pairs.vectors
    }

    /// `|r_ij|` of each pair (Å).
    pub fn distances(&self) -> &[f64] {
        &self.pairs.distances
    }
}

/// The pairs of one centre, as flat arrays.
#[derive(Debug, Clone, Default)]
struct Pairs {
    /// Whether `vectors` and `distances` are stored (a [`VerletList`] recomputes them).
    geometry: bool,
    i: Vec<usize>,
    j: Vec<usize>,
    shifts: Vec<[i32; 3]>,
    vectors: Vec<[f64; 3]>,
    distances: Vec<f64>,
}

impl Pairs {
    fn clear(&mut self) {
        self.i.clear();
        self.j.clear();
        self.shifts.clear();
        self.vectors.clear();
        self.distances.clear();
    }

    fn len(&self) -> usize {
        self.j.len()
    }

    /// Appends centre `i`'s candidates that are within the cutoff and belong
    /// in a list of this kind, in their order, without branching on each:
    /// every one is written and the count advances only for those kept.
    fn keep_within(&mut self, candidates: &[Candidate], kind: ListKind, i: usize, cut2: f64) {
        let base = self.len();
        let end = base + candidates.len();
        self.i.resize(end, i);
        self.j.resize(end, 0);
        self.shifts.resize(end, [0; 3]);
        if self.geometry {
            self.vectors.resize(end, [0.0; 3]);
            self.distances.resize(end, 0.0);
        }
        let mut k = base;
        for c in candidates {
            self.j[k] = c.j;
            self.shifts[k] = c.s;
            if self.geometry {
                self.vectors[k] = c.d;
                self.distances[k] = c.r2.sqrt();
            }
            // `c.j != i` is almost always true (predictable); the self-image test is rare.
            let wanted = c.j != i || keep(kind, i, c.j, c.s);
            k += usize::from((c.r2 < cut2) & wanted);
        }
        self.i.truncate(k);
        self.j.truncate(k);
        self.shifts.truncate(k);
        if self.geometry {
            self.vectors.truncate(k);
            self.distances.truncate(k);
        }
    }
}

/// One candidate image of the pair search: neighbour, shift, `r_ij`, `|r_ij|²`.
#[derive(Debug, Clone, Copy, Default)]
struct Candidate {
    j: usize,
    s: [i32; 3],
    d: [f64; 3],
    r2: f64,
}

impl Candidate {
    /// Image `s` of atom `j` seen from atom `i`, with its exact vector from
    /// the original positions (`rows`: the cell with open rows zeroed), the
    /// one arithmetic every search and use of the lists shares.
    #[inline]
    fn exact(positions: &[[f64; 3]], rows: &[[f64; 3]; 3], i: usize, j: usize, s: [i32; 3]) -> Candidate {
        let d = pair_vector(&positions[i], &positions[j], &shift_vector(s, rows));
        Candidate { j, s, d, r2: d[0] * d[0] + d[1] * d[1] + d[2] * d[2] }
    }
}

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
#[allow(clippy::too_many_arguments)]
fn pair_search(
    bins: &Bins,
    rows: &[[f64; 3]; 3],
    kind: ListKind,
    i: usize,
    positions: &[[f64; 3]],
    cut2: f64,
    candidates: &mut Vec<Candidate>,
    out: &mut Pairs,
) -> u64 {
    let (fi, ki) = (bins.frac[i], bins.wraps[i]);
    let e = bins.extent;
    let first = if kind == ListKind::Half { i } else { 0 };
    let mut m = 0;
    for (j, &fj) in bins.frac.iter().enumerate().skip(first) {
        // Range of image shifts along each axis: |Δf + s| <= extent.
        let mut lo = [0i32; 3];
        let mut hi = [0i32; 3];
        for k in 0..3 {
            let df = fj[k] - fi[k];
            if bins.periodic[k] {
                lo[k] = ceil_i32(-e[k] - df);
                hi[k] = floor_i32(e[k] - df);
            } else {
                hi[k] = i32::from(df.abs() <= e[k]) - 1;
            }
        }
        let count: [i32; 3] = std::array::from_fn(|k| (hi[k] - lo[k] + 1).max(0));
        let total = (count[0] * count[1] * count[2]) as usize;
        if total == 0 {
            continue;
        }
        if candidates.len() < m + total {
            candidates.resize(m + total, Candidate::default());
        }
        let kj = bins.wraps[j];
        // Exclusive ranges: inclusive ones iterate slowly.
        for sx in lo[0]..hi[0] + 1 {
            for sy in lo[1]..hi[1] + 1 {
                for sz in lo[2]..hi[2] + 1 {
                    let s = [sx - kj[0] + ki[0], sy - kj[1] + ki[1], sz - kj[2] + ki[2]];
                    candidates[m] = Candidate::exact(positions, rows, i, j, s);
                    m += 1;
                }
            }
        }
    }
    out.keep_within(&candidates[..m], kind, i, cut2);
    m as u64
}

/// The images `s ∈ {−1, 0, 1}³` of a neighbour that can be within the
/// search radius when the radius is under one cell width along every
/// periodic axis, by table: per axis a 3-bit mask of the shifts within the
/// extent, combined into a 27-bit mask whose set bits, lowest first, are the
/// candidate images in canonical (lexicographic) order.
struct NearImages {
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
    fn new(bins: &Bins, rows: &[[f64; 3]; 3]) -> Option<NearImages> {
        if (0..3).any(|k| bins.periodic[k] && bins.extent[k] >= 1.0) {
            return None;
        }
        let vectors = std::array::from_fn(|b| shift_vector(image_shift(b), rows));
        Some(NearImages { vectors })
    }

    /// As [`pair_search`], for centre `i`, with the table's images.
    #[allow(clippy::too_many_arguments)]
    fn search(
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
                let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
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

/// `floor(x)` as an integer without branches or a libm call (|x| < 2^30,
/// as here): rounds to nearest with [`ROUNDER`] (the low mantissa bits are
/// then the integer) and steps down when that rounded up.
#[inline]
fn floor_i32(x: f64) -> i32 {
    let t = x + ROUNDER;
    // Truncating the bits to 32 is the trick: the low word is the integer.
    let nearest = (t.to_bits() as u32) as i32;
    nearest - i32::from(t - ROUNDER > x)
}

/// `ceil(x)` as an integer.
#[inline]
fn ceil_i32(x: f64) -> i32 {
    -floor_i32(-x)
}

/// Whether pair `(i, j, s)` belongs in a list of this kind (never an atom with
/// itself at zero shift).
#[inline]
fn keep(kind: ListKind, i: usize, j: usize, s: [i32; 3]) -> bool {
    match kind {
        ListKind::Full => i != j || s != [0, 0, 0],
        ListKind::Half => j > i || (j == i && s > [0, 0, 0]),
    }
}

/// A sort key ordering pairs by neighbour then shift, or `u64::MAX` when the
/// values do not fit (then the caller sorts by the tuple itself).
#[inline]
fn order_key(j: usize, s: [i32; 3]) -> u64 {
    const BITS: u32 = 10;
    const HALF: i32 = 1 << (BITS - 1);
    if j >= 1 << (64 - 3 * BITS) || s.iter().any(|&x| !(-HALF..HALF).contains(&x)) {
        return u64::MAX;
    }
    let field = |x: i32| (x + HALF) as u64;
    ((j as u64) << (3 * BITS)) | (field(s[0]) << (2 * BITS)) | (field(s[1]) << BITS) | field(s[2])
}

/// `S·cell` for an integer shift, without branches: `rows` must be the cell
/// with its open directions' rows zeroed ([`periodic_rows`]), so that a zero
/// shift along them never multiplies whatever those rows hold.
#[inline]
fn shift_vector(s: [i32; 3], rows: &[[f64; 3]; 3]) -> [f64; 3] {
    let f = s.map(f64::from);
    std::array::from_fn(|x| f[0] * rows[0][x] + f[1] * rows[1][x] + f[2] * rows[2][x])
}

/// The cell with the rows of open directions zeroed (shifts along them are zero).
fn periodic_rows(cell: &[[f64; 3]; 3], pbc: [bool; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|k| if pbc[k] { cell[k] } else { [0.0; 3] })
}

/// `r_j + shift − r_i`, evaluated as `(r_j − r_i) + shift` everywhere so that
/// builds and Verlet filtering agree to the bit.
#[inline]
pub(crate) fn pair_vector(ri: &[f64; 3], rj: &[f64; 3], shift: &[f64; 3]) -> [f64; 3] {
    [(rj[0] - ri[0]) + shift[0], (rj[1] - ri[1]) + shift[1], (rj[2] - ri[2]) + shift[2]]
}

/// Linked cells: atoms sorted into bins of a (possibly skewed) grid.
///
/// The grid axes are the periodic lattice vectors, completed by unit vectors
/// normal to them for open directions (where the cell may be zero). Along
/// periodic axes the grid spans the cell and wraps; along open axes it spans
/// the atoms' extent. Bins are about half the search radius wide, and a pair
/// within the radius lies at most `reach` bins apart along each axis
/// (`reach` > 1 bin of the cell when the radius exceeds the cell: several images).
#[derive(Debug, Clone, Default)]
struct Bins {
    count: [usize; 3],
    reach: [i64; 3],
    periodic: [bool; 3],
    /// Each atom's bin coordinates.
    atom_bin: Vec<[usize; 3]>,
    /// Lattice vectors subtracted to bring each atom into the cell (periodic axes).
    wraps: Vec<[i32; 3]>,
    /// Each atom's position with those lattice vectors subtracted.
    wrapped: Vec<[f64; 3]>,
    /// Fractional coordinates of `wrapped` along the grid axes (in [0, 1) along periodic ones).
    frac: Vec<[f64; 3]>,
    /// How far apart, in fractional units along each axis, two atoms within the radius can be.
    extent: [f64; 3],
    /// `wrapped` in bin order (aligned with `atoms`), for cache-friendly scans.
    sorted: Vec<[f64; 3]>,
    /// Per axis, for `t = bin + offset + reach`: the wrapped bin and image shift.
    images: [Vec<Option<(usize, i32)>>; 3],
    /// Atoms sorted by bin; bin b holds `atoms[start[b]..start[b + 1]]`.
    start: Vec<usize>,
    atoms: Vec<usize>,
}

impl Bins {
    fn assign(
        &mut self,
        positions: &[[f64; 3]],
        cell: &[[f64; 3]; 3],
        pbc: [bool; 3],
        radius: f64,
    ) -> Result<(), NeighbourError> {
        let n = positions.len();
        if let Some(atom) = positions.iter().position(|p| !p.iter().all(|x| x.is_finite())) {
            return Err(NeighbourError::NonFinitePosition { atom, position: positions[atom] });
        }
        let basis = grid_basis(cell, pbc)?;
        let inv = inverse(&basis).ok_or_else(|| NeighbourError::DegenerateCell {
            pbc,
            reason: "the lattice vectors are linearly dependent".into(),
        })?;
        // Fractional coordinate along axis k is p · inv[.][k]; a pair within
        // `radius` differs by at most radius·|inv[.][k]| along it.
        let extent: [f64; 3] = std::array::from_fn(|k| {
            radius * (inv[0][k] * inv[0][k] + inv[1][k] * inv[1][k] + inv[2][k] * inv[2][k]).sqrt()
        });
        let frac = |p: &[f64; 3], k: usize| p[0] * inv[0][k] + p[1] * inv[1][k] + p[2] * inv[2][k];

        let mut lo = [0.0f64; 3];
        let mut span = [1.0f64; 3];
        for k in 0..3 {
            if !pbc[k] {
                let (mn, mx) = positions
                    .iter()
                    .map(|p| frac(p, k))
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
                (lo[k], span[k]) = if n == 0 { (0.0, 0.0) } else { (mn, mx - mn) };
            }
        }
        // Bins about half the radius wide, at most a few per atom.
        let mut count: [usize; 3] = std::array::from_fn(|k| bins_along(span[k], extent[k] / 2.0));
        let cap = 4 * n.max(1);
        while count.iter().product::<usize>() > cap {
            let k = (0..3).max_by_key(|&k| count[k]).unwrap_or(0);
            count[k] = count[k].div_ceil(2);
        }
        let width: [f64; 3] = std::array::from_fn(|k| span[k] / count[k] as f64);
        self.reach = std::array::from_fn(|k| {
            if width[k] > 0.0 {
                // Bounded: extent/width is at most a few thousand unless the
                // cutoff is absurd, and then the pair limit stops the build.
                (extent[k] / width[k] * (1.0 + MARGIN)).ceil().min(1e6) as i64
            } else {
                0
            }
        });
        self.count = count;
        self.periodic = pbc;
        self.tabulate_images();

        self.extent = extent;
        self.atom_bin.clear();
        self.wraps.clear();
        self.wrapped.clear();
        self.frac.clear();
        for p in positions {
            let mut b = [0usize; 3];
            let mut w = [0i32; 3];
            let mut fw = [0.0; 3];
            for k in 0..3 {
                let f = frac(p, k);
                let x = if pbc[k] {
                    let fl = f.floor();
                    w[k] = fl.clamp(i32::MIN as f64, i32::MAX as f64) as i32;
                    fw[k] = f - fl;
                    f - fl
                } else {
                    fw[k] = f;
                    f - lo[k]
                };
                let idx = if width[k] > 0.0 { (x / width[k]).floor() } else { 0.0 };
                // Rounding can put an atom at exactly 1.0 (or a hair below 0): clamp to the edge bin.
                b[k] = idx.clamp(0.0, (count[k] - 1) as f64) as usize;
            }
            self.atom_bin.push(b);
            self.wraps.push(w);
            self.frac.push(fw);
            let wv = shift_vector(w, cell);
            self.wrapped.push([p[0] - wv[0], p[1] - wv[1], p[2] - wv[2]]);
        }
        // Counting sort by bin, stable so atoms stay in index order within a bin.
        let total: usize = count.iter().product();
        self.start.clear();
        self.start.resize(total + 1, 0);
        for b in &self.atom_bin {
            self.start[(b[0] * count[1] + b[1]) * count[2] + b[2] + 1] += 1;
        }
        for k in 0..total {
            self.start[k + 1] += self.start[k];
        }
        self.atoms.clear();
        self.atoms.resize(n, 0);
        let mut fill = self.start.clone();
        for (a, b) in self.atom_bin.iter().enumerate() {
            let flat = (b[0] * count[1] + b[1]) * count[2] + b[2];
            self.atoms[fill[flat]] = a;
            fill[flat] += 1;
        }
        self.sorted.clear();
        self.sorted.extend(self.atoms.iter().map(|&a| self.wrapped[a]));
        Ok(())
    }

    /// The bin `offset` away from bin `b` along `axis`, and the lattice shift
    /// of that image; `None` past the edge of an open axis.
    #[inline]
    fn neighbour_bin(&self, axis: usize, b: usize, offset: i64) -> Option<(usize, i32)> {
        // `images[axis]` is indexed by b + offset + reach, always in range.
        let t = b as i64 + offset + self.reach[axis];
        self.images[axis].get(usize::try_from(t).ok()?).copied().flatten()
    }

    /// Tabulates [`Bins::neighbour_bin`] (integer division is slow in the inner loop).
    fn tabulate_images(&mut self) {
        for axis in 0..3 {
            let (nb, r) = (self.count[axis] as i64, self.reach[axis]);
            self.images[axis].clear();
            self.images[axis].extend((-r..nb + r).map(|t| {
                if self.periodic[axis] {
                    Some((t.rem_euclid(nb) as usize, t.div_euclid(nb) as i32))
                } else if (0..nb).contains(&t) {
                    Some((t as usize, 0))
                } else {
                    None
                }
            }));
        }
    }
}

/// Number of bins of at least `width` across `span` (at least 1).
fn bins_along(span: f64, width: f64) -> usize {
    if width > 0.0 && span > 0.0 { ((span / width).floor() as usize).clamp(1, 1 << 20) } else { 1 }
}

/// Grid axes: periodic lattice vectors, plus unit vectors normal to them for
/// open directions.
fn grid_basis(cell: &[[f64; 3]; 3], pbc: [bool; 3]) -> Result<[[f64; 3]; 3], NeighbourError> {
    let degenerate = |reason: &str| NeighbourError::DegenerateCell { pbc, reason: reason.into() };
    let periodic: Vec<usize> = (0..3).filter(|&k| pbc[k]).collect();
    let open: Vec<usize> = (0..3).filter(|&k| !pbc[k]).collect();
    for &k in &periodic {
        if norm(cell[k]) == 0.0 || !cell[k].iter().all(|x| x.is_finite()) {
            return Err(degenerate(&format!("lattice vector {k} is zero or not finite")));
        }
    }
    let mut basis = *cell;
    match periodic.as_slice() {
        [] => basis = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        &[k] => {
            let a = unit(cell[k]);
            // Any vector not parallel to a, made orthogonal to it.
            let trial = if a[0].abs() < 0.9 { [1.0, 0.0, 0.0] } else { [0.0, 1.0, 0.0] };
            let u = unit(cross(a, trial));
            let v = cross(a, u);
            basis[open[0]] = u;
            basis[open[1]] = v;
        }
        &[k1, k2] => {
            let c = cross(cell[k1], cell[k2]);
            if norm(c) <= 1e-12 * norm(cell[k1]) * norm(cell[k2]) {
                return Err(degenerate("the periodic lattice vectors are parallel"));
            }
            basis[open[0]] = unit(c);
        }
        _ => {
            let vol = dot(cell[0], cross(cell[1], cell[2])).abs();
            if vol <= 1e-12 * norm(cell[0]) * norm(cell[1]) * norm(cell[2]) {
                return Err(degenerate("the lattice vectors are coplanar"));
            }
        }
    }
    Ok(basis)
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

fn unit(a: [f64; 3]) -> [f64; 3] {
    let n = norm(a);
    [a[0] / n, a[1] / n, a[2] / n]
}

/// Inverse of a 3x3 matrix, `None` when singular.
fn inverse(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
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

/// The determinant-based rank test ASE uses for "has a volume": true when
/// the three cell vectors span space. Calculators give stress only then.
pub fn cell_volume(cell: &[[f64; 3]; 3]) -> Option<f64> {
    let v = dot(cell[0], cross(cell[1], cell[2])).abs();
    let scale = norm(cell[0]) * norm(cell[1]) * norm(cell[2]);
    (v > 1e-10 * scale && v.is_finite()).then_some(v)
}

/// A [`NeighbourList`] with a skin, kept between calls: rebuilt only when the
/// two largest displacements since the last build sum to more than the skin
/// (so some pair may have closed in by that much), or the cell,
/// periodicity or number of atoms changed. Pairs are filtered to the cutoff
/// at every use, in the list's canonical order, so results are exactly those
/// of a fresh list for any skin.
///
/// The skin pays when consecutive calls see nearby positions (md,
/// minimization, where it saves the second build of every configuration);
/// for unrelated configurations it only adds pairs, a few tens of per cent.
///
/// With an outer margin ([`VerletList::with_outer_margin`]) the list is two
/// levels: an outer list to `cutoff + skin + margin`, built rarely, from
/// which the list proper is refreshed by filtering (a distance per outer
/// pair, far cheaper than a build) while the two largest displacements since
/// the outer build sum to less than the margin. In a liquid the atoms diffuse: the outer
/// list lasts many times longer than the skin does. The margin is left out
/// after a large move (an unrelated configuration), where it would only add
/// pairs, and taken again at the next build.
///
/// ```
/// use autopara_calculators::neighbours::{ListKind, VerletList};
/// let cell = [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]];
/// let mut vl = VerletList::new(2.0, 0.5, ListKind::Half).unwrap();
/// let mut pos = vec![[0.0; 3], [1.5, 0.0, 0.0]];
/// assert!(vl.update(&pos, &cell, [true; 3]).unwrap()); // first build
/// pos[1][0] += 0.1;
/// assert!(!vl.update(&pos, &cell, [true; 3]).unwrap()); // moved 0.1 Å: pairs closed in by less than the skin
/// let mut n = 0;
/// vl.for_each_pair(&pos, |_i, _j, _d, r2| { assert!(r2 < 4.0); n += 1 });
/// assert_eq!(n, 2); // the neighbour at 1.6 Å and its image at 1.4 Å
/// ```
#[derive(Debug, Clone)]
pub struct VerletList {
    cutoff: f64,
    /// The skin used when positions change a little between calls.
    skin: f64,
    /// The outer list's reach beyond `cutoff + skin` (0: one level).
    margin: f64,
    /// The skin and margin of the current lists (no margin after a large move).
    active: (f64, f64),
    outer: NeighbourList,
    /// Each outer pair as (neighbour, index into `shift_table`).
    outer_pairs: Vec<(u32, u32)>,
    /// The distinct Cartesian shifts of the outer pairs, for the cell of the last build.
    shift_table: Vec<[f64; 3]>,
    /// Positions at the outer build.
    outer_reference: Vec<[f64; 3]>,
    /// The list proper: outer pairs within `cutoff + skin` at `reference`,
    /// centre `i`'s at `first[i]..first[i + 1]`, as (neighbour, shift index).
    first: Vec<usize>,
    pairs: Vec<(u32, u32)>,
    /// Positions at the last refresh.
    reference: Vec<[f64; 3]>,
    cell: [[f64; 3]; 3],
    pbc: [bool; 3],
    built: bool,
    builds: u64,
    refreshes: u64,
}

impl VerletList {
    /// A list for pairs within `cutoff`, stored to `cutoff + skin` (Å).
    pub fn new(cutoff: f64, skin: f64, kind: ListKind) -> Result<VerletList, NeighbourError> {
        if !(cutoff.is_finite() && cutoff > 0.0) {
            return Err(NeighbourError::InvalidCutoff { cutoff });
        }
        let skin = if skin.is_finite() && skin > 0.0 { skin } else { 0.0 };
        let mut outer = NeighbourList::new(cutoff + skin, kind)?;
        outer.pairs.geometry = false;
        Ok(VerletList {
            cutoff,
            skin,
            margin: 0.0,
            active: (skin, 0.0),
            outer,
            outer_pairs: Vec::new(),
            shift_table: Vec::new(),
            outer_reference: Vec::new(),
            first: vec![0],
            pairs: Vec::new(),
            reference: Vec::new(),
            cell: [[0.0; 3]; 3],
            pbc: [false; 3],
            built: false,
            builds: 0,
            refreshes: 0,
        })
    }

    /// The same list with an outer level reaching `margin` (Å) beyond
    /// `cutoff + skin` (non-positive or non-finite: one level).
    pub fn with_outer_margin(mut self, margin: f64) -> VerletList {
        self.margin = if margin.is_finite() && margin > 0.0 { margin } else { 0.0 };
        self.active = (self.skin, self.margin);
        self.built = false;
        self
    }

    /// The cutoff (Å).
    pub fn cutoff(&self) -> f64 {
        self.cutoff
    }

    /// Number of builds so far (for tests and diagnostics).
    pub fn builds(&self) -> u64 {
        self.builds
    }

    /// Number of times the list was refreshed from the outer list without a build.
    pub fn refreshes(&self) -> u64 {
        self.refreshes
    }

    /// Brings the list up to date for these positions; returns whether it changed.
    pub fn update(
        &mut self,
        positions: &[[f64; 3]],
        cell: &[[f64; 3]; 3],
        pbc: [bool; 3],
    ) -> Result<bool, NeighbourError> {
        let same_frame = self.built && positions.len() == self.reference.len() && pbc == self.pbc && *cell == self.cell;
        let (skin, margin) = self.active;
        // A pair's separation changes by at most the sum of its two atoms'
        // displacements, so by at most the two largest: the list stays valid
        // while they sum to less than the skin (the outer list, the margin).
        // Limits slightly under, so rounding never lets a pair slip past.
        let under = |x: f64| x * (1.0 - 1e-6);
        if same_frame && two_largest_displacements(positions, &self.reference).1 <= under(skin) {
            return Ok(false);
        }
        let (largest, two) = if same_frame {
            two_largest_displacements(positions, &self.outer_reference)
        } else {
            (f64::INFINITY, f64::INFINITY)
        };
        if same_frame && two <= under(margin) {
            self.refresh(positions);
            self.refreshes += 1;
            return Ok(true);
        }
        let small_move = !self.built || largest <= self.skin + self.margin;
        self.active = (self.skin, if small_move { self.margin } else { 0.0 });
        self.built = false;
        self.outer.cutoff = self.cutoff + self.active.0 + self.active.1;
        if u32::try_from(positions.len()).is_err() {
            return Err(NeighbourError::TooManyPairs { cutoff: self.outer.cutoff, limit: MAX_PAIRS });
        }
        self.outer.build(positions, cell, pbc)?;
        self.index_shifts(cell, pbc);
        self.outer_reference.clear();
        self.outer_reference.extend_from_slice(positions);
        self.cell = *cell;
        self.pbc = pbc;
        self.refresh(positions);
        self.built = true;
        self.builds += 1;
        Ok(true)
    }

    /// Numbers the distinct shifts of the outer pairs (a few dozen at most,
    /// unless the cutoff spans many cells) and stores each pair as
    /// (neighbour, shift number): the refreshes and the pair loops then move
    /// 8 bytes a pair instead of 32.
    fn index_shifts(&mut self, cell: &[[f64; 3]; 3], pbc: [bool; 3]) {
        let rows = periodic_rows(cell, pbc);
        let shifts = self.outer.shifts();
        // A dense grid over the shifts' bounding box numbers them in one pass.
        let (mut lo, mut hi) = ([0i32; 3], [0i32; 3]);
        for s in shifts {
            for k in 0..3 {
                lo[k] = lo[k].min(s[k]);
                hi[k] = hi[k].max(s[k]);
            }
        }
        let span: [usize; 3] = std::array::from_fn(|k| (hi[k] - lo[k]) as usize + 1);
        let cell_of = |s: &[i32; 3]| {
            ((s[0] - lo[0]) as usize * span[1] + (s[1] - lo[1]) as usize) * span[2] + (s[2] - lo[2]) as usize
        };
        // The box spans the images within the cutoff along each axis: a few
        // cells unless the cutoff is many cell widths (then the pair limit
        // stopped the build before).
        let mut number = vec![u32::MAX; span[0] * span[1] * span[2]];
        self.shift_table.clear();
        self.outer_pairs.clear();
        for (&j, s) in self.outer.j().iter().zip(shifts) {
            let slot = &mut number[cell_of(s)];
            if *slot == u32::MAX {
                *slot = self.shift_table.len() as u32;
                self.shift_table.push(shift_vector(*s, &rows));
            }
            // j fits: checked before the build.
            self.outer_pairs.push((j as u32, *slot));
        }
    }

    /// The list proper from the outer list: its pairs within `cutoff + skin`
    /// at `positions` (all of them without a margin), kept in order without
    /// a branch on each (written, then counted or not).
    fn refresh(&mut self, positions: &[[f64; 3]]) {
        let reach2 = (self.cutoff + self.active.0).powi(2);
        self.pairs.resize(self.outer_pairs.len(), (0, 0));
        self.first.clear();
        self.first.push(0);
        let mut k = 0;
        for (i, pi) in positions.iter().enumerate() {
            for &(j, s) in &self.outer_pairs[self.outer.range(i)] {
                let d = pair_vector(pi, &positions[j as usize], &self.shift_table[s as usize]);
                self.pairs[k] = (j, s);
                k += usize::from(d[0] * d[0] + d[1] * d[1] + d[2] * d[2] < reach2);
            }
            self.first.push(k);
        }
        self.pairs.truncate(k);
        self.reference.clear();
        self.reference.extend_from_slice(positions);
    }

    /// Calls `f(i, j, r_ij, r²)` for every stored pair within the cutoff at
    /// `positions` (which must be those of the last [`VerletList::update`];
    /// otherwise nothing is called), in canonical order.
    #[inline]
    pub fn for_each_pair(&self, positions: &[[f64; 3]], mut f: impl FnMut(usize, usize, [f64; 3], f64)) {
        let cut2 = self.cutoff * self.cutoff;
        if positions.len() != self.reference.len() {
            return;
        }
        for (i, pi) in positions.iter().enumerate() {
            for (j, s) in self.centre(i) {
                let d = pair_vector(pi, &positions[j], s);
                let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
                if r2 < cut2 {
                    f(i, j, d, r2);
                }
            }
        }
    }

    /// How many pairs are stored (within `cutoff + skin` at the last refresh):
    /// a bound on the pairs [`VerletList::for_each_pair`] visits.
    pub fn stored_pairs(&self) -> usize {
        self.pairs.len()
    }

    /// The stored pairs of centre `i`, within `cutoff + skin` when the list
    /// was refreshed: each neighbour's index and Cartesian shift vector, so
    /// that `r_ij = (r_j − r_i) + shift` (evaluated in that order, as
    /// [`VerletList::for_each_pair`] does). For kernels that loop themselves
    /// and filter to [`VerletList::cutoff`] (for instance without branches).
    /// Empty when `i` is out of range.
    #[inline]
    pub fn centre(&self, i: usize) -> impl Iterator<Item = (usize, &[f64; 3])> + '_ {
        let pairs = match (self.first.get(i), self.first.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.pairs[a..b],
            _ => &[],
        };
        // Shift numbers index the table by construction.
        pairs.iter().map(|&(j, s)| (j as usize, &self.shift_table[s as usize]))
    }
}

/// The largest displacement between two sets of positions, and the sum of
/// the two largest (infinite for NaN).
fn two_largest_displacements(positions: &[[f64; 3]], reference: &[[f64; 3]]) -> (f64, f64) {
    // Squared, sorted: first >= second.
    let (first, second) = positions.iter().zip(reference).fold((0.0f64, 0.0f64), |(a, b), (p, q)| {
        let d = [p[0] - q[0], p[1] - q[1], p[2] - q[2]];
        let r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        let r2 = if r2.is_nan() { f64::INFINITY } else { r2 };
        if r2 > a { (r2, a) } else { (a, b.max(r2)) }
    });
    (first.sqrt(), first.sqrt() + second.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    type PairSet = BTreeMap<(usize, usize, [i32; 3]), f64>;

    /// All images within range, by brute force.
    fn brute(positions: &[[f64; 3]], cell: &[[f64; 3]; 3], pbc: [bool; 3], cutoff: f64, kind: ListKind) -> PairSet {
        let inv = inverse(&grid_basis(cell, pbc).unwrap()).unwrap();
        let m: [i32; 3] = std::array::from_fn(|k| {
            if pbc[k] {
                // Positions may lie outside the cell by up to a few cells.
                let e = cutoff * (inv[0][k].powi(2) + inv[1][k].powi(2) + inv[2][k].powi(2)).sqrt();
                e.ceil() as i32 + 4
            } else {
                0
            }
        });
        let mut out = PairSet::new();
        for i in 0..positions.len() {
            for j in 0..positions.len() {
                for a in -m[0]..=m[0] {
                    for b in -m[1]..=m[1] {
                        for c in -m[2]..=m[2] {
                            let s = [a, b, c];
                            if !keep(kind, i, j, s) {
                                continue;
                            }
                            let d = pair_vector(&positions[i], &positions[j], &shift_vector(s, cell));
                            let r = norm(d);
                            if r < cutoff {
                                out.insert((i, j, s), r);
                            }
                        }
                    }
                }
            }
        }
        out
    }

    fn listed(nl: &NeighbourList) -> PairSet {
        let mut out = PairSet::new();
        for p in 0..nl.len() {
            let key = (nl.i()[p], nl.j()[p], nl.shifts()[p]);
            assert!(out.insert(key, nl.distances()[p]).is_none(), "duplicate pair {key:?}");
        }
        out
    }

    fn random_cell(rng: &mut StdRng, scale: f64) -> [[f64; 3]; 3] {
        // A skewed cell: diagonal plus off-diagonal tilts up to half a vector.
        let mut c = [[0.0; 3]; 3];
        for (k, row) in c.iter_mut().enumerate() {
            for (l, x) in row.iter_mut().enumerate() {
                *x = if k == l { scale * rng.random_range(0.6..1.4) } else { scale * rng.random_range(-0.5..0.5) };
            }
        }
        c
    }

    fn random_positions(rng: &mut StdRng, n: usize, cell: &[[f64; 3]; 3], spread: f64) -> Vec<[f64; 3]> {
        (0..n)
            .map(|_| {
                let f: [f64; 3] = std::array::from_fn(|_| rng.random_range(-spread..1.0 + spread));
                std::array::from_fn(|x| f[0] * cell[0][x] + f[1] * cell[1][x] + f[2] * cell[2][x])
            })
            .collect()
    }

    fn check(positions: &[[f64; 3]], cell: &[[f64; 3]; 3], pbc: [bool; 3], cutoff: f64) {
        let searches = [None, Some(Search::Cells), Some(Search::Pairs)];
        for (kind, search) in [ListKind::Full, ListKind::Half].into_iter().flat_map(|k| searches.map(|s| (k, s))) {
            let mut nl = NeighbourList::new(cutoff, kind).unwrap();
            nl.search = search;
            nl.build(positions, cell, pbc).unwrap();
            let got = listed(&nl);
            let want = brute(positions, cell, pbc, cutoff, kind);
            assert_eq!(got.len(), want.len(), "pbc {pbc:?} cutoff {cutoff} kind {kind:?} search {search:?}");
            for (k, r) in &want {
                let g = got.get(k).unwrap_or_else(|| panic!("missing pair {k:?}"));
                assert!((g - r).abs() < 1e-12);
            }
            // Vectors are r_j + S·cell − r_i, and ranges match centres.
            for i in 0..positions.len() {
                for p in nl.range(i) {
                    assert_eq!(nl.i()[p], i);
                    let d = nl.vectors()[p];
                    assert!((norm(d) - nl.distances()[p]).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn random_triclinic_cells_match_brute_force() {
        let mut rng = StdRng::seed_from_u64(7);
        for trial in 0..30 {
            let cell = random_cell(&mut rng, 4.0);
            let n = rng.random_range(1..30);
            let pos = random_positions(&mut rng, n, &cell, 0.3);
            // From a fraction of the cell to several cells.
            let cutoff = [0.7, 1.5, 2.9, 4.5, 9.0][trial % 5];
            let pbc =
                [[true; 3], [true, true, false], [false, true, false], [false; 3], [true, false, true]][trial % 5];
            check(&pos, &cell, pbc, cutoff);
        }
    }

    #[test]
    fn cutoff_larger_than_cell_sees_self_images() {
        // One atom in a 1 Å cubic cell, cutoff 2.5: all lattice points within 2.5.
        let cell = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let mut nl = NeighbourList::new(2.5, ListKind::Full).unwrap();
        nl.build(&[[0.3, 0.2, 0.1]], &cell, [true; 3]).unwrap();
        let expected = (-3i32..=3)
            .flat_map(|a| (-3i32..=3).flat_map(move |b| (-3i32..=3).map(move |c| a * a + b * b + c * c)))
            .filter(|&r2| r2 > 0 && (r2 as f64) < 6.25)
            .count();
        assert_eq!(nl.len(), expected);
        check(&[[0.3, 0.2, 0.1]], &cell, [true; 3], 2.5);
    }

    #[test]
    fn no_cell_and_open_directions_with_zero_vectors() {
        let mut rng = StdRng::seed_from_u64(3);
        let pos: Vec<[f64; 3]> = (0..60).map(|_| std::array::from_fn(|_| rng.random_range(-5.0..5.0))).collect();
        check(&pos, &[[0.0; 3]; 3], [false; 3], 2.0);
        // A slab: periodic in x, y, zero c vector.
        let cell = [[4.0, 0.0, 0.0], [1.0, 3.5, 0.0], [0.0, 0.0, 0.0]];
        check(&pos, &cell, [true, true, false], 3.0);
        // A wire along a skewed vector.
        let cell = [[2.0, 1.0, 0.5], [0.0; 3], [0.0; 3]];
        check(&pos, &cell, [true, false, false], 3.0);
    }

    #[test]
    fn large_random_system_matches_brute_force() {
        // Enough atoms that the grid has many bins along each axis.
        let mut rng = StdRng::seed_from_u64(11);
        let cell = random_cell(&mut rng, 12.0);
        let pos = random_positions(&mut rng, 300, &cell, 0.0);
        check(&pos, &cell, [true; 3], 3.0);
    }

    #[test]
    fn build_work_is_linear_in_atom_count() {
        // Same density, 8x the atoms: about 8x the distance evaluations (not 64x).
        let mut rng = StdRng::seed_from_u64(2);
        let mut work = Vec::new();
        for scale in [10.0, 20.0] {
            let cell = [[scale, 0.0, 0.0], [0.0, scale, 0.0], [0.0, 0.0, scale]];
            let n = (scale * scale * scale * 0.08) as usize;
            let pos = random_positions(&mut rng, n, &cell, 0.0);
            let mut nl = NeighbourList::new(3.0, ListKind::Full).unwrap();
            nl.search = Some(Search::Cells);
            nl.build(&pos, &cell, [true; 3]).unwrap();
            work.push(nl.candidates_examined() as f64);
        }
        let ratio = work[1] / work[0];
        assert!(ratio > 6.0 && ratio < 11.0, "work ratio {ratio}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(matches!(NeighbourList::new(0.0, ListKind::Full), Err(NeighbourError::InvalidCutoff { .. })));
        assert!(matches!(NeighbourList::new(-1.0, ListKind::Full), Err(NeighbourError::InvalidCutoff { .. })));
        assert!(matches!(NeighbourList::new(f64::NAN, ListKind::Half), Err(NeighbourError::InvalidCutoff { .. })));
        let mut nl = NeighbourList::new(2.0, ListKind::Full).unwrap();
        let flat = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]];
        assert!(matches!(nl.build(&[[0.0; 3]], &flat, [true; 3]), Err(NeighbourError::DegenerateCell { .. })));
        assert!(matches!(nl.build(&[[0.0; 3]], &[[0.0; 3]; 3], [true; 3]), Err(NeighbourError::DegenerateCell { .. })));
        let cell = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
        assert!(matches!(
            nl.build(&[[0.0, f64::NAN, 0.0]], &cell, [true; 3]),
            Err(NeighbourError::NonFinitePosition { atom: 0, .. })
        ));
        let mut huge = NeighbourList::new(1e4, ListKind::Full).unwrap();
        assert!(matches!(huge.build(&[[0.0; 3]], &cell, [true; 3]), Err(NeighbourError::TooManyPairs { .. })));
        assert!(huge.is_empty());
    }

    #[test]
    fn verlet_list_equals_fresh_lists_along_a_random_walk() {
        for margin in [0.0, 1.0] {
            verlet_walk(margin);
        }
    }

    fn verlet_walk(margin: f64) {
        let mut rng = StdRng::seed_from_u64(5);
        let cell = random_cell(&mut rng, 5.0);
        let mut pos = random_positions(&mut rng, 40, &cell, 0.0);
        let cutoff = 3.2; // above half the cell width: explicit images needed
        let mut vl = VerletList::new(cutoff, 0.6, ListKind::Half).unwrap().with_outer_margin(margin);
        let mut fresh = NeighbourList::new(cutoff, ListKind::Half).unwrap();
        for _step in 0..60 {
            for p in pos.iter_mut() {
                for x in p.iter_mut() {
                    *x += rng.random_range(-0.05..0.05);
                }
            }
            vl.update(&pos, &cell, [true; 3]).unwrap();
            fresh.build(&pos, &cell, [true; 3]).unwrap();
            let mut got = Vec::new();
            vl.for_each_pair(&pos, |i, j, d, r2| got.push((i, j, d, r2)));
            assert_eq!(got.len(), fresh.len());
            for (p, &(i, j, d, r2)) in got.iter().enumerate() {
                assert_eq!((i, j), (fresh.i()[p], fresh.j()[p]));
                // Same arithmetic: bit-identical vectors.
                assert_eq!(d, fresh.vectors()[p]);
                assert_eq!(r2.sqrt(), fresh.distances()[p]);
            }
        }
        assert!(vl.builds() > 1 && vl.builds() < 60, "builds: {}", vl.builds());
        // The outer level saves builds: refreshes replace some of them.
        assert_eq!(vl.refreshes() > 0, margin > 0.0, "refreshes: {}", vl.refreshes());
        // Unrelated configurations (no skin then) and back to small moves.
        for step in 0..10 {
            if step < 5 {
                pos = random_positions(&mut rng, 40, &cell, 0.0);
            } else {
                pos[step][0] += 0.01;
            }
            vl.update(&pos, &cell, [true; 3]).unwrap();
            fresh.build(&pos, &cell, [true; 3]).unwrap();
            let mut got = Vec::new();
            vl.for_each_pair(&pos, |i, j, d, _| got.push((i, j, d)));
            let want: Vec<_> = (0..fresh.len()).map(|p| (fresh.i()[p], fresh.j()[p], fresh.vectors()[p])).collect();
            assert_eq!(got, want);
        }
        // A changed cell forces a rebuild.
        let mut cell2 = cell;
        cell2[0][0] += 0.01;
        assert!(vl.update(&pos, &cell2, [true; 3]).unwrap());
    }
}
