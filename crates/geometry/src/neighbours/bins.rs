//! Linked cells: atoms sorted into bins of a (possibly skewed) grid, and the
//! candidates of one centre from the bins around it.

use super::list::keep;
use super::{ListKind, MARGIN, MAX_CELLS, NeighbourError};
use crate::cell::{determinant, fractional, inverse, shift_vector, wrap};
use crate::vec3::{cross, norm, norm2, unit};

/// Linked cells: atoms sorted into bins of a (possibly skewed) grid.
///
/// The grid axes are the periodic lattice vectors, completed by unit vectors
/// normal to them for open directions (where the cell may be zero). Along
/// periodic axes the grid spans the cell and wraps; along open axes it spans
/// the atoms' extent. Bins are about half the search radius wide, and a pair
/// within the radius lies at most `reach` bins apart along each axis
/// (`reach` > 1 bin of the cell when the radius exceeds the cell: several images).
#[derive(Debug, Clone, Default)]
pub(super) struct Bins {
    pub(super) count: [usize; 3],
    pub(super) reach: [i64; 3],
    pub(super) periodic: [bool; 3],
    /// Each atom's bin coordinates.
    atom_bin: Vec<[usize; 3]>,
    /// Lattice vectors subtracted to bring each atom into the cell (periodic axes).
    pub(super) wraps: Vec<[i32; 3]>,
    /// Each atom's position with those lattice vectors subtracted.
    pub(super) wrapped: Vec<[f64; 3]>,
    /// Fractional coordinates of `wrapped` along the grid axes (in [0, 1) along periodic ones).
    pub(super) frac: Vec<[f64; 3]>,
    /// How far apart, in fractional units along each axis, two atoms within the radius can be.
    pub(super) extent: [f64; 3],
    /// `wrapped` in bin order (aligned with `atoms`), coordinate by
    /// coordinate, for cache-friendly and vectorised scans.
    xs: Vec<f64>,
    ys: Vec<f64>,
    zs: Vec<f64>,
    /// Each atom's coordinates in bin widths from the grid's corner (its bin
    /// is their floor, clamped to the grid).
    grid: Vec<[f64; 3]>,
    /// The bins' widths in Å when the grid axes are the Cartesian axes (a
    /// cell with only diagonal entries): then the bins that cannot hold an
    /// atom within the radius of a centre are skipped.
    diagonal: Option<[f64; 3]>,
    /// `wraps` in bin order (aligned with `atoms`).
    sorted_wraps: Vec<[i32; 3]>,
    /// Per axis, for `t = bin + offset + reach`: the wrapped bin and image shift.
    images: [Vec<Option<(usize, i32)>>; 3],
    /// Atoms sorted by bin; bin b holds `atoms[start[b]..start[b + 1]]`.
    start: Vec<usize>,
    atoms: Vec<usize>,
}

impl Bins {
    /// Sorts `positions` into bins for pairs within `radius` (Å); `cell` has
    /// the rows of open directions zeroed.
    pub(super) fn assign(
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
        let extent: [f64; 3] = std::array::from_fn(|k| radius * norm([inv[0][k], inv[1][k], inv[2][k]]));

        let mut lo = [0.0f64; 3];
        let mut span = [1.0f64; 3];
        for k in 0..3 {
            if !pbc[k] {
                let (mn, mx) = positions
                    .iter()
                    .map(|p| fractional(p, &inv)[k])
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
                let reach = (extent[k] / width[k] * (1.0 + MARGIN)).ceil().min(1e6) as i64;
                // Along an open axis every atom is within the grid: a reach
                // past its far edge visits nothing (and a near-flat
                // configuration, a few bins of 1e-7 Å, would reach millions).
                if pbc[k] { reach } else { reach.min(count[k] as i64 - 1) }
            } else {
                0
            }
        });
        self.count = count;
        self.periodic = pbc;
        self.tabulate_images();

        self.extent = extent;
        self.atom_bin.clear();
        self.grid.clear();
        let is_diagonal = (0..3).all(|a| (0..3).all(|b| a == b || basis[a][b] == 0.0));
        self.diagonal = is_diagonal.then(|| std::array::from_fn(|k| width[k] * basis[k][k].abs()));
        self.wraps.clear();
        self.wrapped.clear();
        self.frac.clear();
        for (atom, p) in positions.iter().enumerate() {
            let f = fractional(p, &inv);
            if let Some(k) = (0..3).find(|&k| pbc[k] && f[k].abs() >= MAX_CELLS) {
                return Err(NeighbourError::FarOutsideCell { atom, cells: f[k] });
            }
            let mut b = [0usize; 3];
            let mut w = [0i32; 3];
            let mut fw = [0.0; 3];
            let mut u = [0.0; 3];
            for k in 0..3 {
                let x = if pbc[k] {
                    (fw[k], w[k]) = wrap(f[k]);
                    fw[k]
                } else {
                    fw[k] = f[k];
                    f[k] - lo[k]
                };
                u[k] = if width[k] > 0.0 { x / width[k] } else { 0.0 };
                let idx = u[k].floor();
                // Rounding can put an atom at exactly 1.0 (or a hair below 0): clamp to the edge bin.
                b[k] = idx.clamp(0.0, (count[k] - 1) as f64) as usize;
            }
            self.atom_bin.push(b);
            self.grid.push(u);
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
        for (k, v) in [&mut self.xs, &mut self.ys, &mut self.zs].into_iter().enumerate() {
            v.clear();
            v.extend(self.atoms.iter().map(|&a| self.wrapped[a][k]));
        }
        self.sorted_wraps.clear();
        self.sorted_wraps.extend(self.atoms.iter().map(|&a| self.wraps[a]));
        Ok(())
    }

    /// Fills `scratch.found` with the candidates `(j, shift)` of centre `i`
    /// within `sqrt(search2)` of its wrapped position, from the bins within
    /// `reach` of its own, unsorted; returns how many distances were
    /// evaluated. `cell` has the rows of open directions zeroed. Stops early
    /// once it holds more than `limit` candidates (the caller refuses the list).
    pub(super) fn cell_candidates(
        &self,
        cell: &[[f64; 3]; 3],
        kind: ListKind,
        i: usize,
        search2: f64,
        limit: usize,
        scratch: &mut CellScratch,
    ) -> u64 {
        let CellScratch { found: out, run, .. } = scratch;
        out.clear();
        let ki = self.wraps[i];
        // This visit never gives up.
        self.scan(cell, kind, i, search2, limit, run, |[sx, sy, sz], lo, near| {
            for &k in near {
                let t = lo + k as usize;
                let (j, kj) = (self.atoms[t], self.sorted_wraps[t]);
                let s = [sx - kj[0] + ki[0], sy - kj[1] + ki[1], sz - kj[2] + ki[2]];
                // `j != i` is almost always true (predictable); the self-image test is rare.
                if j != i || keep(kind, i, j, s) {
                    out.push((j, s));
                }
            }
            Some(out.len())
        })
        .unwrap_or(0)
    }

    /// The candidates of [`Bins::cell_candidates`] as sort keys into
    /// `scratch.keys`: the neighbour above 32 bits, below them the index of
    /// the shift in `grid` (lexicographic in the shift, so the keys sort as
    /// the pairs `(j, shift)` do), computed per run of bins less a number per
    /// neighbour ([`Bins::wrap_offsets`] in `scratch`) instead of per pair.
    /// Returns how many distances were evaluated, or `None` when some shift
    /// falls outside the grid (then the caller takes the candidates as pairs).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cell_keys(
        &self,
        cell: &[[f64; 3]; 3],
        kind: ListKind,
        i: usize,
        search2: f64,
        limit: usize,
        grid: &ShiftGrid,
        scratch: &mut CellScratch,
    ) -> Option<u64> {
        let CellScratch { keys, run, offsets, .. } = scratch;
        keys.clear();
        let ki = self.wraps[i];
        self.scan(cell, kind, i, search2, limit, run, |image, lo, near| {
            // A pair's shift is image − (its wrap) + (the centre's): within
            // the grid along each axis for every wrap between the lowest and
            // the highest. The grid spans every image the search visits, so
            // this holds; it is checked per run all the same, since a wrong
            // index would silently number a wrong shift.
            let mut base = 0i64;
            for k in 0..3 {
                let at = i64::from(image[k]) + i64::from(ki[k]) - i64::from(grid.lo[k]);
                let (first, last) = (at - i64::from(grid.wraps.1[k]), at - i64::from(grid.wraps.0[k]));
                if first < 0 || last >= grid.span[k] as i64 {
                    return None;
                }
                base += at * grid.stride[k];
            }
            for &k in near {
                let t = lo + k as usize;
                let j = self.atoms[t];
                // In range: 0 <= base - offset < the grid's cells, which fit 32 bits.
                let key = ((j as u64) << 32) | (base - offsets[t]) as u64;
                // `j != i` is almost always true (predictable); the self-image test is rare.
                if j != i || {
                    let kj = self.sorted_wraps[t];
                    keep(kind, i, j, std::array::from_fn(|a| image[a] - kj[a] + ki[a]))
                } {
                    keys.push(key);
                }
            }
            Some(keys.len())
        })
    }

    /// Each atom's wrap (in bin order) as an offset into `grid`: subtracted
    /// from a run's base in [`Bins::cell_keys`].
    pub(super) fn wrap_offsets(&self, grid: &ShiftGrid, scratch: &mut CellScratch) {
        scratch.offsets.clear();
        scratch
            .offsets
            .extend(self.sorted_wraps.iter().map(|w| (0..3).map(|k| i64::from(w[k]) * grid.stride[k]).sum::<i64>()));
    }

    /// Visits the candidates of centre `i` within `sqrt(search2)`: for each
    /// run of bins, `visit(image shift, first atom of the run in bin order,
    /// offsets of the atoms within reach)`, which returns how many candidates
    /// are held (then the scan stops once past `limit`), or `None` to give
    /// up (then so does the scan). Returns how many distances were evaluated.
    ///
    /// The bins along the last axis that are adjacent in the grid and share
    /// an image are adjacent in the sorted atoms too, so each is scanned as
    /// one run (one image vector each, a few runs per centre rather than a
    /// visit per bin). In a cell with only diagonal entries each row of bins
    /// is cut to the bins its column has within the radius of the centre
    /// (rows entirely beyond it are skipped). A run's squared distances are
    /// computed in one vectorised loop, and the atoms within reach picked
    /// out without branching on them (about one in eight, at random).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn scan(
        &self,
        cell: &[[f64; 3]; 3],
        kind: ListKind,
        i: usize,
        search2: f64,
        limit: usize,
        scratch: &mut RunScratch,
        mut visit: impl FnMut([i32; 3], usize, &[u32]) -> Option<usize>,
    ) -> Option<u64> {
        let [_, nby, nbz] = self.count;
        let [rx, ry, rz] = self.reach;
        // Half lists keep j >= i (j == i only for a positive image shift).
        let first = if kind == ListKind::Half { i } else { 0 };
        let bi = self.atom_bin[i];
        let wi = self.wrapped[i];
        let RunScratch { r2: r2_scratch, near: near_scratch, gaps } = scratch;
        // In a diagonal cell, the squared gaps in Å from the centre to each
        // slab of bins within reach along each axis, a hair short against
        // rounding.
        if let Some(w) = self.diagonal {
            let u = self.grid[i];
            for (k, gaps) in gaps.iter_mut().enumerate() {
                let r = self.reach[k];
                gaps.clear();
                gaps.extend((-r..=r).map(|o| {
                    let b = (bi[k] as i64 + o) as f64;
                    let gap = (b - u[k]).max(u[k] - (b + 1.0)).max(0.0) * w[k] * (1.0 - MARGIN);
                    gap * gap
                }));
            }
        }
        let mut examined = 0;
        let mut held = 0;
        for ox in -rx..=rx {
            let Some((wx, sx)) = self.neighbour_bin(0, bi[0], ox) else { continue };
            for oy in -ry..=ry {
                let Some((wy, sy)) = self.neighbour_bin(1, bi[1], oy) else { continue };
                let row = (wx * nby + wy) * nbz;
                // The offsets along the last axis that can hold a neighbour:
                // all within reach, or for a diagonal cell those of the bins
                // this row's column has within the radius: the middle ones,
                // since the gaps grow away from the centre's bin (its
                // coordinate lies within it, or a rounding's hair outside).
                let (z_first, z_last) = match self.diagonal {
                    Some(_) => {
                        let h2 = search2 - gaps[0][(ox + rx) as usize] - gaps[1][(oy + ry) as usize];
                        if h2 < 0.0 {
                            continue;
                        }
                        let (below, above) = gaps[2].split_at(rz as usize);
                        let far = |g: &[f64]| g.iter().map(|&g| i64::from(g > h2)).sum::<i64>();
                        (-rz + far(below), rz - far(&above[1..]))
                    }
                    None => (-rz, rz),
                };
                let mut oz = z_first;
                while oz <= z_last {
                    // One run: adjacent bins with the same image shift.
                    let Some((z_lo, sz)) = self.neighbour_bin(2, bi[2], oz) else {
                        oz += 1;
                        continue;
                    };
                    let mut z_hi = z_lo + 1;
                    oz += 1;
                    while oz <= z_last && self.neighbour_bin(2, bi[2], oz) == Some((z_hi, sz)) {
                        z_hi += 1;
                        oz += 1;
                    }
                    if held > limit {
                        return Some(examined);
                    }
                    // A half list skips the bins at either end of the run
                    // whose atoms all come before the centre (atoms are in
                    // index order within a bin): about half of them when
                    // the atoms are numbered in spatial order, as lattices
                    // are built.
                    let before =
                        |b: usize| self.start[b] == self.start[b + 1] || self.atoms[self.start[b + 1] - 1] < first;
                    let (mut z_lo, mut z_hi) = (z_lo, z_hi);
                    while first > 0 && z_lo < z_hi && before(row + z_lo) {
                        z_lo += 1;
                    }
                    while first > 0 && z_lo < z_hi && before(row + z_hi - 1) {
                        z_hi -= 1;
                    }
                    if z_lo == z_hi {
                        continue;
                    }
                    let image = shift_vector([sx, sy, sz], cell);
                    let base = [image[0] - wi[0], image[1] - wi[1], image[2] - wi[2]];
                    let (lo, hi) = (self.start[row + z_lo], self.start[row + z_hi]);
                    examined += (hi - lo) as u64;
                    if r2_scratch.len() < hi - lo {
                        r2_scratch.resize(hi - lo, 0.0);
                        near_scratch.resize(hi - lo, 0);
                    }
                    // Squared distances first (a loop the compiler vectorises
                    // over the coordinate arrays), then the atoms within reach.
                    let r2 = &mut r2_scratch[..hi - lo];
                    for (((r2, x), y), z) in
                        r2.iter_mut().zip(&self.xs[lo..hi]).zip(&self.ys[lo..hi]).zip(&self.zs[lo..hi])
                    {
                        let d = [x + base[0], y + base[1], z + base[2]];
                        *r2 = norm2(d);
                    }
                    let near = &mut near_scratch[..hi - lo];
                    let mut n_near = 0;
                    for (k, (&j, &r2)) in self.atoms[lo..hi].iter().zip(r2.iter()).enumerate() {
                        near[n_near] = k as u32;
                        n_near += usize::from((r2 < search2) & (j >= first));
                    }
                    held = visit([sx, sy, sz], lo, &near[..n_near])?;
                }
            }
        }
        Some(examined)
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

/// Buffers of [`Bins::cell_candidates`] and [`Bins::cell_keys`], reused
/// between centres.
#[derive(Debug, Clone, Default)]
pub(super) struct CellScratch {
    /// The candidates found: (neighbour, shift).
    pub(super) found: Vec<(usize, [i32; 3])>,
    /// Or their sort keys.
    pub(super) keys: Vec<u64>,
    /// Each atom's wrap as an offset into the shift grid, in bin order.
    offsets: Vec<i64>,
    /// The scan's.
    run: RunScratch,
}

/// Buffers of [`Bins::scan`].
#[derive(Debug, Clone, Default)]
struct RunScratch {
    /// Squared distances of one run of bins.
    r2: Vec<f64>,
    /// Which atoms of the run are within reach (offsets into it).
    near: Vec<u32>,
    /// Per axis, the squared gaps from the centre to the slabs of bins
    /// within reach (diagonal cells).
    gaps: [Vec<f64>; 3],
}

/// A box of lattice shifts, each numbered by its index in the box
/// (lexicographic in the shift): the grid of a compact list's shift numbers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ShiftGrid {
    /// The lowest shift.
    pub(super) lo: [i32; 3],
    /// Shifts along each axis (0: no grid).
    pub(super) span: [usize; 3],
    /// Index steps along each axis.
    pub(super) stride: [i64; 3],
    /// The lowest and highest of the atoms' wraps.
    pub(super) wraps: ([i32; 3], [i32; 3]),
}

/// Number of bins of at least `width` across `span` (at least 1).
fn bins_along(span: f64, width: f64) -> usize {
    if width > 0.0 && span > 0.0 { ((span / width).floor() as usize).clamp(1, 1 << 20) } else { 1 }
}

/// Grid axes: periodic lattice vectors, plus unit vectors normal to them for
/// open directions.
pub(super) fn grid_basis(cell: &[[f64; 3]; 3], pbc: [bool; 3]) -> Result<[[f64; 3]; 3], NeighbourError> {
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
            let vol = determinant(cell).abs();
            if vol <= 1e-12 * norm(cell[0]) * norm(cell[1]) * norm(cell[2]) {
                return Err(degenerate("the lattice vectors are coplanar"));
            }
        }
    }
    Ok(basis)
}
