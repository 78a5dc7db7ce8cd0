//! [`VerletList`]: a neighbour list with a skin (and optionally an outer
//! level), kept between calls and rebuilt only when atoms moved far enough.

use super::list::NeighbourList;
use super::{ListKind, MAX_PAIRS, NeighbourError, max_pairs, pair_vector};
use crate::cell::volume;
use crate::simd::{self, Kernel};
use crate::vec3::norm2;
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
/// pairs, and taken again at the next build; it is shrunk where the outer
/// list would hold more than half the pair limit (25 M pairs, or 200 per
/// atom when more, so memory stays in proportion to the atoms).
///
/// ```
/// use autopara_geometry::neighbours::{ListKind, VerletList};
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
    /// The outer list, compact: each pair as (neighbour, shift number), with
    /// the table of the distinct shifts' vectors for the cell of the last build.
    outer: NeighbourList,
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
        outer.pairs.compact = true;
        Ok(VerletList {
            cutoff,
            skin,
            margin: 0.0,
            active: (skin, 0.0),
            outer,
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
        let at_base = if self.built {
            self.stored_pairs() as f64
        } else if pbc == [true; 3] && volume(cell) > 0.0 {
            let n = positions.len() as f64;
            let per_atom = n / volume(cell) * 4.0 / 3.0 * std::f64::consts::PI * (self.cutoff + self.active.0).powi(3);
            n * per_atom * if self.outer.kind() == ListKind::Half { 0.5 } else { 1.0 }
        } else {
            0.0
        };
        let at = (self.cutoff + self.active.0, at_base);
        let margin = margin_within_limit(self.margin, self.skin, self.cutoff + self.skin, at, positions.len());
        self.active = (self.skin, if small_move { margin } else { 0.0 });
        self.built = false;
        if u32::try_from(positions.len()).is_err() {
            return Err(NeighbourError::TooManyPairs { cutoff: self.cutoff, limit: MAX_PAIRS });
        }
        self.outer.cutoff = self.cutoff + self.active.0 + self.active.1;
        let mut built = self.outer.build(positions, cell, pbc);
        if matches!(built, Err(NeighbourError::TooManyPairs { .. })) && self.active.1 > 0.0 {
            // Too many pairs with the margin (a large system's first
            // build): the skin alone.
            self.active = (self.skin, 0.0);
            self.outer.cutoff = self.cutoff + self.skin;
            built = self.outer.build(positions, cell, pbc);
        }
        if matches!(built, Err(NeighbourError::TooManyPairs { .. })) && self.outer.cutoff != self.cutoff {
            // Whether a configuration has too many pairs must not depend on
            // the skin or margin (that is, on what the list saw before): try
            // the cutoff alone, without a skin (the next update rebuilds).
            self.active = (0.0, 0.0);
            self.outer.cutoff = self.cutoff;
            built = self.outer.build(positions, cell, pbc);
        }
        built?;
        self.outer_reference.clear();
        self.outer_reference.extend_from_slice(positions);
        self.cell = *cell;
        self.pbc = pbc;
        self.refresh(positions);
        self.built = true;
        self.builds += 1;
        Ok(true)
    }

    /// The list proper from the outer list: its pairs within `cutoff + skin`
    /// at `positions` (all of them without a margin), kept in order without
    /// a branch on each (written, then counted or not).
    fn refresh(&mut self, positions: &[[f64; 3]]) {
        let reach2 = (self.cutoff + self.active.0).powi(2);
        let outer = &self.outer;
        let (first, pairs) = (&mut self.first, &mut self.pairs);
        match outer.pairs.indices.packed() {
            Some((packed, bits)) => {
                let mask = (1u32 << bits) - 1;
                filter(outer, positions, reach2, first, pairs, |i| {
                    packed[outer.range(i)].iter().map(move |&p| (p >> bits, p & mask))
                });
            }
            None => {
                let wide = outer.pairs.indices.wide();
                filter(outer, positions, reach2, first, pairs, |i| wide[outer.range(i)].iter().copied());
            }
        }
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
                let r2 = norm2(d);
                if r2 < cut2 {
                    f(i, j, d, r2);
                }
            }
        }
    }

    /// How many pairs are stored (within `cutoff + skin` at the last refresh):
    /// a bound on the pairs [`VerletList::for_each_pair`] visits.
    pub fn stored_pairs(&self) -> usize {
        self.first.last().copied().unwrap_or(0)
    }

    /// The stored pairs of centre `i`, within `cutoff + skin` when the list
    /// was refreshed: each neighbour's index and Cartesian shift vector, so
    /// that `r_ij = (r_j − r_i) + shift` (evaluated in that order, as
    /// [`VerletList::for_each_pair`] does). For kernels that loop themselves
    /// and filter to [`VerletList::cutoff`] (for instance without branches).
    /// Empty when `i` is out of range.
    #[inline]
    pub fn centre(&self, i: usize) -> impl Iterator<Item = (usize, &[f64; 3])> + '_ {
        // Shift numbers index the table by construction.
        self.centre_indices(i).iter().map(|&(j, s)| (j as usize, &self.outer.pairs.shift_table[s as usize]))
    }

    /// The pairs of [`VerletList::centre`] as a slice of (neighbour, shift
    /// number), the shift numbers indexing [`VerletList::shift_vectors`]: for
    /// kernels that index the positions and shifts themselves (a vectorised
    /// loop gathers them). Empty when `i` is out of range.
    #[inline]
    pub fn centre_indices(&self, i: usize) -> &[(u32, u32)] {
        match (self.first.get(i), self.first.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.pairs[a..b],
            _ => &[],
        }
    }

    /// The Cartesian shift vector of each shift number in
    /// [`VerletList::centre_indices`].
    #[inline]
    pub fn shift_vectors(&self) -> &[[f64; 3]] {
        &self.outer.pairs.shift_table
    }
}

/// The list proper from the outer pairs `of(i)` of each centre `i`: those
/// within `reach2` at `positions`, into `pairs` and `first`, kept in order
/// without a branch on each (written, then counted or not). `pairs` grows
/// centre by centre to hold every outer pair of the centre at hand (the
/// pairs past the last centre's end are stale) and is never shrunk: sized
/// from the list proper rather than the outer list, 2.8 times as long at
/// 256,000 atoms, it is written (and its memory faulted in) once instead of
/// zero-filled whole, and not zeroed again at each refresh.
fn filter<I: ExactSizeIterator<Item = (u32, u32)>>(
    outer: &NeighbourList,
    positions: &[[f64; 3]],
    reach2: f64,
    first: &mut Vec<usize>,
    pairs: &mut Vec<(u32, u32)>,
    of: impl Fn(usize) -> I,
) {
    let shifts = &outer.pairs.shift_table;
    first.clear();
    first.push(0);
    let mut k = 0;
    for (i, pi) in positions.iter().enumerate() {
        let centre = of(i);
        if pairs.len() < k + centre.len() {
            pairs.resize(k + centre.len(), (0, 0));
        }
        for (j, s) in centre {
            let d = pair_vector(pi, &positions[j as usize], &shifts[s as usize]);
            pairs[k] = (j, s);
            k += usize::from(norm2(d) < reach2);
        }
        first.push(k);
    }
}

/// The outer margin beyond `reach` (cutoff + skin) to use for `n` atoms:
/// `margin`, shrunk so that the outer list stays within half their pair
/// limit (a limit per atom for large systems), judged from `at = (r,
/// pairs)`, the pairs within some distance `r` (pairs grow as the cube of
/// the distance): those of the list proper, or before the first build their
/// estimate from the density. Zero when that leaves it under the skin,
/// where the outer list would outlast the list proper by little.
pub(super) fn margin_within_limit(margin: f64, skin: f64, reach: f64, at: (f64, f64), n: usize) -> f64 {
    let budget = (max_pairs(true, n) / 2) as f64;
    let (r, pairs) = at;
    let fit = if pairs > 0.0 { r * (budget / pairs).cbrt() - reach } else { f64::INFINITY };
    let margin = margin.min(fit);
    if margin >= skin { margin } else { 0.0 }
}

/// The largest displacement between two sets of positions, and the sum of
/// the two largest (infinite for NaN).
pub(super) fn two_largest_displacements(positions: &[[f64; 3]], reference: &[[f64; 3]]) -> (f64, f64) {
    simd::run(TwoLargest { positions, reference })
}

/// [`two_largest_displacements`]: each of eight lanes keeps the two largest
/// squared displacements of its share without branches (lanes independent,
/// so the loop vectorises), then the lanes' are merged; the two largest of
/// all are among them.
struct TwoLargest<'a> {
    positions: &'a [[f64; 3]],
    reference: &'a [[f64; 3]],
}

impl Kernel for TwoLargest<'_> {
    type Output = (f64, f64);

    #[inline(always)]
    fn run(self) -> (f64, f64) {
        const LANES: usize = 8;
        let squared = |p: &[f64; 3], q: &[f64; 3]| {
            let r2 = norm2([p[0] - q[0], p[1] - q[1], p[2] - q[2]]);
            if r2.is_nan() { f64::INFINITY } else { r2 }
        };
        // Squared, per lane: first >= second.
        let (mut first, mut second) = ([0.0f64; LANES], [0.0f64; LANES]);
        let (p, q) = (self.positions.chunks_exact(LANES), self.reference.chunks_exact(LANES));
        let (p_rest, q_rest) = (p.remainder(), q.remainder());
        for (p, q) in p.zip(q) {
            for l in 0..LANES {
                let r2 = squared(&p[l], &q[l]);
                let low = if r2 > first[l] { first[l] } else { r2 };
                first[l] = if r2 > first[l] { r2 } else { first[l] };
                second[l] = if low > second[l] { low } else { second[l] };
            }
        }
        let rest = p_rest.iter().zip(q_rest).map(|(p, q)| squared(p, q));
        let (a, b) = first
            .into_iter()
            .chain(second)
            .chain(rest)
            .fold((0.0f64, 0.0f64), |(a, b), r2| if r2 > a { (r2, a) } else { (a, b.max(r2)) });
        (a.sqrt(), a.sqrt() + b.sqrt())
    }
}
