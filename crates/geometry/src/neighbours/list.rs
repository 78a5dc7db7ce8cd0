//! [`NeighbourList`]: the pairs within a cutoff, in canonical order, and the
//! arithmetic every search shares (the exact pair vector, which pairs a list
//! keeps, the order key).

use super::bins::{Bins, CellScratch, ShiftGrid};
use super::images::NearImages;
use super::pair_search::pair_search;
use super::{CANDIDATES_PER_PAIR, ListKind, MARGIN, NeighbourError, max_pairs, pair_vector};
use crate::cell::{periodic_rows, shift_vector, volume};
use crate::vec3::norm2;
use std::collections::HashMap;
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
    /// One centre's candidates before sorting, in `scratch.found` (or
    /// their order keys in `scratch.keys`).
    scratch: CellScratch,
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
            pairs: Pairs::default(),
            bins: Bins::default(),
            scratch: CellScratch::default(),
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
        let limit = max_pairs(self.pairs.compact, n);
        let limits = (limit, CANDIDATES_PER_PAIR * limit as u64);
        let too_many = NeighbourError::TooManyPairs { cutoff: self.cutoff, limit };
        // Refuse before looping when the candidates alone would be far too many.
        let visits: f64 = bins.reach.iter().map(|&r| (2 * r + 1) as f64).product();
        let total = bins.count.iter().product::<usize>() as f64;
        if n as f64 * visits * (n as f64 / total).max(1.0) > limits.1 as f64 {
            return Err(too_many);
        }
        if pairs_lower_bound(cell, pbc, n, self.cutoff, self.kind) > limit as f64 {
            return Err(too_many);
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
        // A compact list with a grid of shift numbers takes each centre's
        // candidates as sort keys holding the shift's place in the grid.
        let keyed = if self.pairs.compact {
            self.pairs.start_compact(n, bins, cell);
            let grid = self.pairs.numbers.shape;
            // Grid indices within the 32 bits of a key.
            let cells = grid.span.iter().product::<usize>();
            (cells > 0 && u32::try_from(cells).is_ok()).then(|| {
                bins.wrap_offsets(&grid, &mut self.scratch);
                grid
            })
        } else {
            None
        };
        for i in 0..n {
            if by_pairs {
                // Candidates come in canonical order: no sorting.
                self.examined += match &near {
                    Some(near) => {
                        near.search(bins, self.kind, i, positions, cell, cut2, &mut self.candidates, &mut self.pairs)
                    }
                    None => {
                        let candidates = &mut self.candidates;
                        pair_search(bins, cell, self.kind, i, positions, cut2, limits, candidates, &mut self.pairs)
                    }
                };
                if self.pairs.len() > limits.0 || self.examined > limits.1 {
                    return Err(too_many);
                }
                self.first[i + 1] = self.pairs.len();
                continue;
            }
            let room = limit - self.pairs.len();
            let by_grid =
                keyed.and_then(|grid| bins.cell_keys(cell, self.kind, i, search2, room, &grid, &mut self.scratch));
            if let Some(examined) = by_grid {
                self.examined += examined;
                let keys = &mut self.scratch.keys;
                if self.pairs.len() + keys.len() > limit {
                    return Err(too_many);
                }
                keys.sort_unstable();
                self.pairs.extend_keyed(keys);
                self.first[i + 1] = self.pairs.len();
                continue;
            }
            self.examined += bins.cell_candidates(cell, self.kind, i, search2, room, &mut self.scratch);
            let found = &mut self.scratch.found;
            if self.pairs.len() + found.len() > limit {
                return Err(too_many);
            }
            // Canonical order: by neighbour, then shift; sorting 8-byte keys
            // when every candidate has one.
            let keys = &mut self.scratch.keys;
            keys.clear();
            keys.extend(found.iter().map(|&(j, s)| order_key(j, s)));
            let by_keys = keys.iter().all(|&k| k != u64::MAX);
            if by_keys {
                keys.sort_unstable();
            } else {
                found.sort_unstable();
            }
            let keys = &*keys;
            let in_order = |t: usize| if by_keys { from_order_key(keys[t]) } else { found[t] };
            if self.pairs.compact {
                // Kept as found, within the search radius (a hair beyond
                // the cutoff, from the wrapped positions): a Verlet list
                // tests each pair's exact distance when it refreshes.
                self.pairs.extend_compact((0..found.len()).map(in_order));
            } else {
                self.candidates.clear();
                self.candidates.extend((0..found.len()).map(|t| {
                    let (j, s) = in_order(t);
                    Candidate::exact(positions, cell, i, j, s)
                }));
                self.pairs.keep_within(&self.candidates, self.kind, i, cut2);
            }
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
        self.pairs.len() == 0
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

/// The pairs of a list, as flat arrays: every field (a [`NeighbourList`]),
/// or compact (the outer level of a [`super::VerletList`]): each pair as
/// (neighbour, shift number), the numbers indexing a table of the distinct
/// shifts' vectors, 4 or 8 bytes a pair instead of 60.
#[derive(Debug, Clone, Default)]
pub(super) struct Pairs {
    /// Whether the pairs are stored compact (only `indices`, `shift_table`).
    pub(super) compact: bool,
    i: Vec<usize>,
    j: Vec<usize>,
    shifts: Vec<[i32; 3]>,
    vectors: Vec<[f64; 3]>,
    distances: Vec<f64>,
    /// Compact: each pair's neighbour and shift number.
    pub(super) indices: CompactPairs,
    /// Compact: the Cartesian vector of each shift number.
    pub(super) shift_table: Vec<[f64; 3]>,
    /// Compact: the number given to each shift.
    numbers: ShiftNumbers,
}

impl Pairs {
    fn clear(&mut self) {
        self.i.clear();
        self.j.clear();
        self.shifts.clear();
        self.vectors.clear();
        self.distances.clear();
        self.indices.clear();
        self.shift_table.clear();
    }

    pub(super) fn len(&self) -> usize {
        if self.compact { self.indices.len() } else { self.j.len() }
    }

    /// Starts a compact list's build of `n` atoms over `bins` in cell `rows`.
    fn start_compact(&mut self, n: usize, bins: &Bins, rows: &[[f64; 3]; 3]) {
        self.numbers.start(bins, rows);
        self.indices.start(n, self.numbers.grid.len());
    }

    /// Appends centre `i`'s candidates that are within the cutoff and belong
    /// in a list of this kind, in their order, without branching on each:
    /// every one is written and the count advances only for those kept.
    pub(super) fn keep_within(&mut self, candidates: &[Candidate], kind: ListKind, i: usize, cut2: f64) {
        let base = self.len();
        let end = base + candidates.len();
        let kept = |c: &Candidate| {
            // `c.j != i` is almost always true (predictable); the self-image test is rare.
            let wanted = c.j != i || keep(kind, i, c.j, c.s);
            usize::from((c.r2 < cut2) & wanted)
        };
        let mut k = base;
        if self.compact {
            self.indices.resize(end);
            for c in candidates {
                let keep = kept(c);
                // j fits: a Verlet list checks the atom count before building.
                self.indices.set(k, c.j as u32, self.numbers.number(c.s, &mut self.shift_table, keep == 1));
                k += keep;
            }
            self.indices.truncate(k);
            return;
        }
        self.i.resize(end, i);
        self.j.resize(end, 0);
        self.shifts.resize(end, [0; 3]);
        self.vectors.resize(end, [0.0; 3]);
        self.distances.resize(end, 0.0);
        for c in candidates {
            self.j[k] = c.j;
            self.shifts[k] = c.s;
            self.vectors[k] = c.d;
            self.distances[k] = c.r2.sqrt();
            k += kept(c);
        }
        self.i.truncate(k);
        self.j.truncate(k);
        self.shifts.truncate(k);
        self.vectors.truncate(k);
        self.distances.truncate(k);
    }

    /// Appends pairs to a compact list from keys of [`Bins::cell_keys`], as
    /// they are: the neighbour above 32 bits, the shift's index in the grid
    /// of shift numbers below.
    fn extend_keyed(&mut self, keys: &[u64]) {
        let Pairs { indices, shift_table, numbers, .. } = self;
        for &key in keys {
            indices.push((key >> 32) as u32, numbers.number_at(key as u32 as usize, shift_table));
        }
    }

    /// Appends pairs (neighbour, shift) to a compact list as they are.
    fn extend_compact(&mut self, pairs: impl Iterator<Item = (usize, [i32; 3])>) {
        let Pairs { indices, shift_table, numbers, .. } = self;
        for (j, s) in pairs {
            // j fits: a Verlet list checks the atom count before building.
            indices.push(j as u32, numbers.number(s, shift_table, true));
        }
    }
}

/// Atoms from which a compact list is packed: below, its pairs stay in the
/// cache (in.lj's outer list holds about 135 a atom), where unpacking them
/// cost a 108-atom run's refreshes a sixth more than it saved.
const PACK_FROM_ATOMS: usize = 4096;

/// A compact list's pairs (neighbour, shift number): packed into 32 bits,
/// the neighbour above the bits of the shift number, when both fit (4 bytes
/// a pair, so a Verlet list's refresh reads half as much), else as pairs.
#[derive(Debug, Clone, Default)]
pub(super) struct CompactPairs {
    /// The bits of the shift number when packed.
    bits: Option<u32>,
    packed: Vec<u32>,
    wide: Vec<(u32, u32)>,
}

impl CompactPairs {
    /// Empties the list for `n` atoms and shift numbers likely under `shifts`
    /// (a larger one widens the list).
    fn start(&mut self, n: usize, shifts: usize) {
        self.packed.clear();
        self.wide.clear();
        let bits = usize::BITS - shifts.saturating_sub(1).leading_zeros();
        let fits = shifts > 0 && bits < 32 && n as u64 <= 1u64 << (32 - bits);
        self.bits = (fits && n >= PACK_FROM_ATOMS).then_some(bits);
    }

    /// Number of pairs.
    pub(super) fn len(&self) -> usize {
        if self.bits.is_some() { self.packed.len() } else { self.wide.len() }
    }

    fn clear(&mut self) {
        self.packed.clear();
        self.wide.clear();
    }

    fn resize(&mut self, len: usize) {
        if self.bits.is_some() { self.packed.resize(len, 0) } else { self.wide.resize(len, (0, 0)) }
    }

    fn truncate(&mut self, len: usize) {
        self.packed.truncate(len);
        self.wide.truncate(len);
    }

    /// Sets pair `k` (below the length).
    #[inline]
    fn set(&mut self, k: usize, j: u32, s: u32) {
        match self.bits {
            Some(bits) if s >> bits == 0 => self.packed[k] = (j << bits) | s,
            Some(_) => {
                self.widen();
                self.wide[k] = (j, s);
            }
            None => self.wide[k] = (j, s),
        }
    }

    /// Appends a pair.
    #[inline(always)]
    fn push(&mut self, j: u32, s: u32) {
        match self.bits {
            Some(bits) if s >> bits == 0 => self.packed.push((j << bits) | s),
            Some(_) => {
                self.widen();
                self.wide.push((j, s));
            }
            None => self.wide.push((j, s)),
        }
    }

    /// From packed to pairs (a shift number past the bits).
    #[cold]
    #[inline(never)]
    fn widen(&mut self) {
        if let Some(bits) = self.bits.take() {
            let mask = (1u32 << bits) - 1;
            self.wide.clear();
            self.wide.extend(self.packed.iter().map(|&p| (p >> bits, p & mask)));
            self.packed.clear();
        }
    }

    /// The packed pairs and the bits of their shift numbers, or `None` when
    /// they are stored as pairs ([`CompactPairs::wide`]).
    pub(super) fn packed(&self) -> Option<(&[u32], u32)> {
        self.bits.map(|bits| (&self.packed[..], bits))
    }

    /// The pairs, when not packed.
    pub(super) fn wide(&self) -> &[(u32, u32)] {
        &self.wide
    }
}

/// A number of pairs within `cutoff` that a list of `kind` of `n` atoms in
/// the cell `rows` (open rows zeroed) holds whatever the positions: the
/// images of each atom along one short periodic axis, and with every axis
/// periodic and the cutoff beyond the cell's longest diagonal `D`, the images
/// of every atom around every atom, at least V(cutoff − D) / V_cell each (the
/// cells of the lattice points within the cutoff of any point cover the ball
/// of radius cutoff − D around it). A cell so small or thin that this passes
/// the pair limit is refused before the search, which would test images by
/// the hundred million first.
pub(super) fn pairs_lower_bound(rows: &[[f64; 3]; 3], pbc: [bool; 3], n: usize, cutoff: f64, kind: ListKind) -> f64 {
    let n = n as f64;
    let mut full = 0.0f64;
    for (k, row) in rows.iter().enumerate() {
        let len = norm2(*row).sqrt();
        if pbc[k] && len > 0.0 {
            // m·len < cutoff for 0 < m < cutoff / len; one fewer against rounding.
            let m = ((cutoff / len).ceil() - 2.0).max(0.0);
            full = full.max(n * 2.0 * m);
        }
    }
    let v = volume(rows);
    if pbc == [true; 3] && v > 0.0 {
        let [a, b, c] = *rows;
        let diagonal = |sb: f64, sc: f64| norm2(std::array::from_fn(|k| a[k] + sb * b[k] + sc * c[k])).sqrt();
        let d = [(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)].map(|(sb, sc)| diagonal(sb, sc));
        let reach = cutoff - d.iter().fold(0.0f64, |m, &x| m.max(x));
        if reach > 0.0 {
            let per_pair = 4.0 / 3.0 * std::f64::consts::PI * reach.powi(3) / v;
            // Less one per atom: its own image at zero shift.
            full = full.max(n * n * per_pair - n);
        }
    }
    if kind == ListKind::Half { full / 2.0 } else { full }
}

/// The numbers of a compact list's shifts, in order of first appearance: a
/// dense grid over the box of shifts a build can give (a few dozen when the
/// atoms lie near the cell), or, when that box is large (atoms far outside
/// the cell, as in unwrapped trajectories), a map, whose size is the number
/// of distinct shifts whatever the distances. Shifts outside the box go to
/// the map too.
#[derive(Debug, Clone, Default)]
struct ShiftNumbers {
    /// The cell, open rows zeroed.
    rows: [[f64; 3]; 3],
    /// The grid's box of shifts (its slot for a shift is its index in it).
    shape: ShiftGrid,
    grid: Vec<u32>,
    map: HashMap<[i32; 3], u32>,
}

impl ShiftNumbers {
    /// Forgets the numbers, for a build over `bins` in cell `rows`.
    fn start(&mut self, bins: &Bins, rows: &[[f64; 3]; 3]) {
        self.rows = *rows;
        self.map.clear();
        // A pair's shift is an image shift of the search (within the
        // extent, or the bins' reach, of a cell) plus the difference of
        // the two atoms' wraps.
        let (mut lo, mut hi) = ([0i32; 3], [0i32; 3]);
        for w in &bins.wraps {
            for k in 0..3 {
                lo[k] = lo[k].min(w[k]);
                hi[k] = hi[k].max(w[k]);
            }
        }
        let shape = &mut self.shape;
        shape.wraps = (lo, hi);
        let span: [u64; 3] = std::array::from_fn(|k| {
            let image = if bins.periodic[k] {
                (bins.extent[k].min(1e6).ceil() as i64).max(bins.reach[k] / bins.count[k].max(1) as i64) + 1
            } else {
                0
            };
            shape.lo[k] = (-image - i64::from(hi[k]) + i64::from(lo[k])).clamp(i64::from(i32::MIN), 0) as i32;
            (2 * (image + i64::from(hi[k]) - i64::from(lo[k])) + 1) as u64
        });
        let cells =
            span.iter().try_fold(1u64, |a, &s| a.checked_mul(s)).filter(|&c| c <= 4096 + 8 * bins.wraps.len() as u64);
        shape.span = if cells.is_some() { span.map(|s| s as usize) } else { [0; 3] };
        shape.stride = [(shape.span[1] * shape.span[2]) as i64, shape.span[2] as i64, 1];
        self.grid.clear();
        self.grid.resize(shape.span.iter().product(), u32::MAX);
    }

    /// The number of shift `s`, appending its vector to `table` when new.
    /// A shift outside the grid is numbered only when `kept` (else 0, for a
    /// candidate about to be overwritten): a tiny cell's search tests up to
    /// hundreds of millions of images, each a distinct shift, and numbering
    /// them all filled the map and the table for minutes before the pair
    /// limit stopped it.
    #[inline]
    fn number(&mut self, s: [i32; 3], table: &mut Vec<[f64; 3]>, kept: bool) -> u32 {
        let (lo, span) = (self.shape.lo, self.shape.span);
        let at: [usize; 3] = std::array::from_fn(|k| (i64::from(s[k]) - i64::from(lo[k])) as usize);
        let slot = if (0..3).all(|k| at[k] < span[k]) {
            &mut self.grid[(at[0] * span[1] + at[1]) * span[2] + at[2]]
        } else if kept {
            self.map.entry(s).or_insert(u32::MAX)
        } else {
            return 0;
        };
        if *slot == u32::MAX {
            *slot = table.len() as u32;
            table.push(shift_vector(s, &self.rows));
        }
        *slot
    }

    /// The number of the shift at `index` in the grid (below its size),
    /// appending its vector to `table` when new.
    #[inline]
    fn number_at(&mut self, index: usize, table: &mut Vec<[f64; 3]>) -> u32 {
        let slot = &mut self.grid[index];
        if *slot == u32::MAX {
            *slot = table.len() as u32;
            let (lo, span) = (self.shape.lo, self.shape.span);
            let at = [index / (span[1] * span[2]), index / span[2] % span[1], index % span[2]];
            let s: [i32; 3] = std::array::from_fn(|k| lo[k] + at[k] as i32);
            table.push(shift_vector(s, &self.rows));
        }
        *slot
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

#[cfg(test)]
mod tests {
    use super::CompactPairs;

    #[test]
    fn compact_pairs_pack_while_numbers_fit_then_widen() {
        let mut c = CompactPairs::default();
        // Shift numbers under 4 for 5,000 atoms: 2 bits, packed.
        c.start(5000, 4);
        c.push(999, 3);
        c.push(4, 0);
        c.resize(3);
        c.set(2, 7, 2);
        assert_eq!(c.packed(), Some((&[999 << 2 | 3, 4 << 2, 7 << 2 | 2][..], 2)));
        // A number past the bits widens what is there.
        c.push(5, 4);
        assert_eq!(c.packed(), None);
        assert_eq!(c.wide(), &[(999, 3), (4, 0), (7, 2), (5, 4)]);
        c.truncate(2);
        assert_eq!(c.len(), 2);
        // Atoms past what the other bits hold, or no bound on the numbers: pairs.
        c.start(1 << 31, 4);
        assert_eq!(c.packed(), None);
        c.start(5000, 0);
        c.push(3, 9);
        assert_eq!((c.packed(), c.wide()), (None, &[(3, 9)][..]));
        // Few atoms (pairs that stay in the cache): pairs.
        c.start(4095, 4);
        assert_eq!(c.packed(), None);
        // One shift: no bits, the neighbour alone.
        c.start(5000, 1);
        c.push(9, 0);
        assert_eq!(c.packed(), Some((&[9u32][..], 0)));
    }
}
