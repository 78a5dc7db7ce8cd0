//! [`NeighbourList`]: the pairs within a cutoff, in canonical order, and the
//! arithmetic every search shares (the exact pair vector, which pairs a list
//! keeps, the order key).

use super::bins::{Bins, CellScratch};
use super::images::NearImages;
use super::pair_search::pair_search;
use super::{ListKind, MARGIN, MAX_CANDIDATES, MAX_PAIRS, NeighbourError, pair_vector};
use crate::cell::{periodic_rows, shift_vector};
use crate::vec3::norm2;
use std::ops::Range;

/// The pairs within a cutoff, as flat arrays sorted by centre atom.
#[derive(Debug, Clone)]
pub struct NeighbourList {
    pub(super) cutoff: f64,
    kind: ListKind,
    /// `first[i]..first[i + 1]` are atom i's pairs.
    first: Vec<usize>,
    pub(super) pairs: Pairs,
    bins: Bins,
    /// One centre's candidates before sorting, in `scratch.found`.
    scratch: CellScratch,
    /// Their order keys.
    keys: Vec<u64>,
    /// One centre's candidates in the pair search.
    candidates: Vec<Candidate>,
    /// Candidate pairs whose distance the last build evaluated.
    examined: u64,
    /// Forces one search (tests); `None` picks the cheaper.
    pub(super) search: Option<Search>,
}

/// How candidates are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Search {
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
            scratch: CellScratch::default(),
            keys: Vec::new(),
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
        // Refuse before looping when the candidates alone would be far too many.
        let visits: f64 = bins.reach.iter().map(|&r| (2 * r + 1) as f64).product();
        let total = bins.count.iter().product::<usize>() as f64;
        if n as f64 * visits * (n as f64 / total).max(1.0) > MAX_CANDIDATES as f64 {
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
                if self.pairs.len() > MAX_PAIRS || self.examined > MAX_CANDIDATES {
                    return Err(NeighbourError::TooManyPairs { cutoff: self.cutoff, limit: MAX_PAIRS });
                }
                self.first[i + 1] = self.pairs.len();
                continue;
            }
            let limit = MAX_PAIRS - self.pairs.len();
            self.examined += bins.cell_candidates(cell, self.kind, i, search2, limit, &mut self.scratch);
            let found = &mut self.scratch.found;
            if self.pairs.len() + found.len() > MAX_PAIRS {
                return Err(NeighbourError::TooManyPairs { cutoff: self.cutoff, limit: MAX_PAIRS });
            }
            // Canonical order: by neighbour, then shift; sorting 8-byte keys
            // when every candidate has one.
            self.keys.clear();
            self.keys.extend(found.iter().map(|&(j, s)| order_key(j, s)));
            self.candidates.clear();
            let exact = |(j, s)| Candidate::exact(positions, cell, i, j, s);
            if self.keys.iter().all(|&k| k != u64::MAX) {
                self.keys.sort_unstable();
                self.candidates.extend(self.keys.iter().map(|&k| exact(from_order_key(k))));
            } else {
                found.sort_unstable();
                self.candidates.extend(found.iter().map(|&f| exact(f)));
            }
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
pub(super) struct Pairs {
    /// Whether `vectors` and `distances` are stored (a [`super::VerletList`] recomputes them).
    pub(super) geometry: bool,
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

    pub(super) fn len(&self) -> usize {
        self.j.len()
    }

    /// Appends centre `i`'s candidates that are within the cutoff and belong
    /// in a list of this kind, in their order, without branching on each:
    /// every one is written and the count advances only for those kept.
    pub(super) fn keep_within(&mut self, candidates: &[Candidate], kind: ListKind, i: usize, cut2: f64) {
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
pub(super) struct Candidate {
    pub(super) j: usize,
    pub(super) s: [i32; 3],
    pub(super) d: [f64; 3],
    pub(super) r2: f64,
}

impl Candidate {
    /// Image `s` of atom `j` seen from atom `i`, with its exact vector from
    /// the original positions (`rows`: the cell with open rows zeroed), the
    /// one arithmetic every search and use of the lists shares.
    #[inline]
    pub(super) fn exact(positions: &[[f64; 3]], rows: &[[f64; 3]; 3], i: usize, j: usize, s: [i32; 3]) -> Candidate {
        let d = pair_vector(&positions[i], &positions[j], &shift_vector(s, rows));
        Candidate { j, s, d, r2: norm2(d) }
    }
}

/// Whether pair `(i, j, s)` belongs in a list of this kind (never an atom with
/// itself at zero shift).
#[inline]
pub(super) fn keep(kind: ListKind, i: usize, j: usize, s: [i32; 3]) -> bool {
    match kind {
        ListKind::Full => i != j || s != [0, 0, 0],
        ListKind::Half => j > i || (j == i && s > [0, 0, 0]),
    }
}

/// Bits of each shift component in an [`order_key`].
const BITS: u32 = 10;
/// The offset making a shift component non-negative in an [`order_key`].
const HALF: i32 = 1 << (BITS - 1);

/// A sort key ordering pairs by neighbour then shift, or `u64::MAX` when the
/// values do not fit (then the caller sorts by the tuple itself).
#[inline]
fn order_key(j: usize, s: [i32; 3]) -> u64 {
    if j >= 1 << (64 - 3 * BITS) || s.iter().any(|&x| !(-HALF..HALF).contains(&x)) {
        return u64::MAX;
    }
    let field = |x: i32| (x + HALF) as u64;
    ((j as u64) << (3 * BITS)) | (field(s[0]) << (2 * BITS)) | (field(s[1]) << BITS) | field(s[2])
}

/// The neighbour and shift of an [`order_key`] other than `u64::MAX`.
#[inline]
fn from_order_key(key: u64) -> (usize, [i32; 3]) {
    let field = |shift: u32| ((key >> shift) & ((1 << BITS) - 1)) as i32 - HALF;
    ((key >> (3 * BITS)) as usize, [field(2 * BITS), field(BITS), field(0)])
}
