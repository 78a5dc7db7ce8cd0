//! Random structure generation from a [`BuildcellInput`].
//!
//! One attempt: choose the formula units (`NFORM`), the number of symmetry
//! operations (`SYMMOPS`) and a space group with that many operations (AIRSS's
//! table), distribute each element's atoms over the group's Wyckoff orbits,
//! draw a cell whose metric has the group's symmetry and whose volume is in the
//! target range, draw the orbits' free parameters, then push overlapping atoms
//! apart (steepest descent on a soft-sphere overlap energy over the free
//! parameters, so the symmetry is kept exactly) until every separation is at
//! least its `MINSEP`. An attempt that fails at any stage is abandoned and a new
//! one drawn, up to a limit.
//!
//! `MINSEP` is the target the atoms are pushed towards. When the push cannot
//! reach it (the target volume is too small for hard spheres of diameter
//! `MINSEP`, as in wfl's own test inputs), an attempt whose separations are all
//! at least `(1 - SLACK) × MINSEP` is kept as a candidate: after
//! [`HARD_ATTEMPTS`] attempts without one meeting `MINSEP` in full, the best
//! candidate (largest smallest separation relative to `MINSEP`) is the structure,
//! and when the densest sphere packing proves that `MINSEP` cannot be met the
//! first candidate is.

use crate::input::BuildcellInput;
use crate::symmetry::{Affine, SpaceGroupModel, space_groups_with_ops, wrap};
use autopara_core::Atoms;
use nalgebra::{Matrix3, Vector3};
use rand::Rng;
use rand::seq::IndexedRandom;

/// Separations are pushed to `MINSEP × (1 + SEPARATION_MARGIN)`, so that the
/// final strict check `d ≥ MINSEP` holds with room for rounding.
pub const SEPARATION_MARGIN: f64 = 0.005;

/// A cell is non-degenerate when each of its heights (distance between opposite
/// faces of the reduced cell) is at least this fraction of `V^(1/3)`.
pub const MIN_HEIGHT_FRACTION: f64 = 0.2;

/// Energy evaluations allowed for pushing the atoms of one attempt apart.
const MAX_RELAX_EVALUATIONS: usize = 600;

/// FIRE's initial and largest time steps and initial mixing (Bitzek et al. 2006).
const FIRE_DT_START: f64 = 0.1;
const FIRE_DT_MAX: f64 = 1.0;
const FIRE_ALPHA_START: f64 = 0.1;

/// Relaxation steps between shakes while overlaps remain, and the shake's size
/// as a fraction of the smallest separation.
const SHAKE_INTERVAL: usize = 150;
const SHAKE_AMPLITUDE: f64 = 0.3;

/// Largest lattice-translation index searched for periodic images.
const MAX_IMAGE_RANGE: f64 = 50.0;

/// Attempts that look for a structure meeting `MINSEP` in full before the best
/// one within `SLACK` of it is taken.
pub const HARD_ATTEMPTS: usize = 40;

/// Random Wyckoff decompositions tried per attempt before drawing a new group.
const DECOMPOSITION_TRIES: usize = 8;

/// A generated structure and how it was built.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Atoms (periodic), cell and positions in ASE's standard orientation.
    pub atoms: Atoms,
    /// Formula units used.
    pub nform: u32,
    /// International number of the space group the structure was built in.
    pub space_group: i32,
    /// The group's operations `(W, t)` on the output cell's fractional coordinates.
    pub operations: Vec<([[i32; 3]; 3], [f64; 3])>,
}

/// No structure could be placed within the attempt limit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("could not place a structure in {attempts} attempts (last: {last_reason})")]
pub struct PlacementFailure {
    /// Attempts made.
    pub attempts: usize,
    /// Why the last attempt failed.
    pub last_reason: String,
}

/// Builds structures for one input; shared read-only by all workers.
#[derive(Debug, Clone)]
pub struct Generator {
    input: BuildcellInput,
    /// `(nops, groups)` for each allowed number of operations.
    groups: Vec<(usize, Vec<SpaceGroupModel>)>,
    /// `sigma[a][b]`: pushed-apart separation for species indices `a`, `b`.
    sigma: Vec<Vec<f64>>,
    /// Whether `MINSEP` can be met at all ([`BuildcellInput::minsep_can_fit`]).
    minsep_fits: bool,
}

/// One atom during placement: which orbit it belongs to and the map from the
/// orbit's free parameters to its Cartesian position.
struct PlacedAtom {
    species: usize,
    orbit: usize,
    jacobian: Matrix3<f64>,
    offset: Vector3<f64>,
}

/// A neighbour-list entry: atoms `i < j` closer than the list cutoff through `shift`.
struct Pair {
    i: usize,
    j: usize,
    shift: Vector3<f64>,
    sigma: f64,
}

/// The ASE-standard Cartesian basis (columns a, b, c; a along x, b in the xy
/// plane) with metric `g`.
fn basis_from_metric(g: &Matrix3<f64>) -> Option<Matrix3<f64>> {
    let (a, b, c) = (g[(0, 0)].sqrt(), g[(1, 1)].sqrt(), g[(2, 2)].sqrt());
    let (cos_alpha, cos_beta, cos_gamma) = (g[(1, 2)] / (b * c), g[(0, 2)] / (a * c), g[(0, 1)] / (a * b));
    let sin_gamma = (1.0 - cos_gamma * cos_gamma).sqrt();
    let cx = c * cos_beta;
    let cy = c * (cos_alpha - cos_beta * cos_gamma) / sin_gamma;
    let cz2 = c * c - cx * cx - cy * cy;
    if cz2.is_nan() || cz2 <= 0.0 || sin_gamma.is_nan() || sin_gamma <= 0.0 {
        return None;
    }
    Some(Matrix3::new(a, b * cos_gamma, cx, 0.0, b * sin_gamma, cy, 0.0, 0.0, cz2.sqrt()))
}

/// Distances between opposite faces of the cell with basis columns `basis`.
fn heights(basis: &Matrix3<f64>) -> [f64; 3] {
    let v = basis.determinant().abs();
    let col = |i: usize| basis.column(i).into_owned();
    [v / col(1).cross(&col(2)).norm(), v / col(2).cross(&col(0)).norm(), v / col(0).cross(&col(1)).norm()]
}

/// Cartesian lattice translations that can bring two points of a cell with basis
/// `basis` within `cutoff` once their fractional difference is wrapped to [-½, ½).
fn image_shifts(basis: &Matrix3<f64>, cutoff: f64) -> Vec<Vector3<f64>> {
    let half_diagonal = 0.5 * (basis.column(0).norm() + basis.column(1).norm() + basis.column(2).norm());
    let reach = cutoff + half_diagonal;
    let h = heights(basis);
    // Callers pass non-degenerate cells; the cap only keeps a degenerate one finite.
    let k: [i32; 3] = std::array::from_fn(|i| (reach / h[i]).ceil().min(MAX_IMAGE_RANGE) as i32);
    let mut out = Vec::new();
    for n0 in -k[0]..=k[0] {
        for n1 in -k[1]..=k[1] {
            for n2 in -k[2]..=k[2] {
                let s = basis * Vector3::new(f64::from(n0), f64::from(n1), f64::from(n2));
                if s.norm() <= reach {
                    out.push(s);
                }
            }
        }
    }
    out
}

impl Generator {
    /// Prepares the space groups the input's `SYMMOPS` may choose from.
    pub fn new(input: BuildcellInput) -> Generator {
        let groups = input
            .symmops
            .iter()
            .map(|&n| (n, space_groups_with_ops(n).into_iter().filter_map(SpaceGroupModel::new).collect()))
            .collect();
        let sigma = input
            .species
            .iter()
            .map(|a| input.species.iter().map(|b| input.minsep(a.z, b.z) * (1.0 + SEPARATION_MARGIN)).collect())
            .collect();
        Generator { minsep_fits: input.minsep_can_fit(), input, groups, sigma }
    }

    /// The parsed input.
    pub fn input(&self) -> &BuildcellInput {
        &self.input
    }

    /// Builds one structure from `rng`, trying up to `max_attempts` times: the
    /// first meeting `MINSEP` in full, else (from attempt [`HARD_ATTEMPTS`] on)
    /// the best one within `SLACK` of it.
    pub fn generate<R: Rng>(&self, rng: &mut R, max_attempts: usize) -> Result<Generated, PlacementFailure> {
        let mut last_reason = String::from("no attempt made");
        let mut best: Option<(f64, Generated)> = None;
        for n in 1..=max_attempts {
            match self.attempt(rng) {
                Ok((g, None)) => return Ok(g),
                Ok((g, Some(ratio))) => {
                    if best.as_ref().is_none_or(|(r, _)| ratio > *r) {
                        best = Some((ratio, g));
                    }
                }
                Err(reason) => last_reason = reason,
            }
            if (n >= HARD_ATTEMPTS || !self.minsep_fits)
                && let Some((_, g)) = best.take()
            {
                return Ok(g);
            }
        }
        Err(PlacementFailure { attempts: max_attempts, last_reason })
    }

    /// Splits each species' atoms over Wyckoff orbits: repeatedly a random
    /// multiplicity that still fits, then a random position with it (a point
    /// position at most once). Returns `(species, site)` per orbit.
    fn decompose<R: Rng>(rng: &mut R, group: &SpaceGroupModel, counts: &[u32]) -> Option<Vec<(usize, usize)>> {
        'tries: for _ in 0..DECOMPOSITION_TRIES {
            let mut orbits = Vec::new();
            let mut used_points: Vec<usize> = Vec::new();
            for (species, &count) in counts.iter().enumerate() {
                let mut remaining = count as usize;
                while remaining > 0 {
                    let fits = |s: &usize| {
                        let site = &group.sites[*s];
                        site.multiplicity <= remaining && !(site.fixed && used_points.contains(s))
                    };
                    let candidates: Vec<usize> = (0..group.sites.len()).filter(fits).collect();
                    let mut mults: Vec<usize> = candidates.iter().map(|&s| group.sites[s].multiplicity).collect();
                    mults.sort_unstable();
                    mults.dedup();
                    let Some(&m) = mults.choose(rng) else { continue 'tries };
                    let with_m: Vec<usize> =
                        candidates.into_iter().filter(|&s| group.sites[s].multiplicity == m).collect();
                    let Some(&site) = with_m.choose(rng) else { continue 'tries };
                    if group.sites[site].fixed {
                        used_points.push(site);
                    }
                    orbits.push((species, site));
                    remaining -= m;
                }
            }
            return Some(orbits);
        }
        None
    }

    /// One attempt, with `None` when every separation meets `MINSEP` and else
    /// the smallest separation relative to its `MINSEP` (at least `1 - SLACK`);
    /// the error says which stage failed.
    fn attempt<R: Rng>(&self, rng: &mut R) -> Result<(Generated, Option<f64>), String> {
        let input = &self.input;
        let nform = *input.nform.choose(rng).ok_or("empty NFORM")?;
        let counts: Vec<u32> = input.species.iter().map(|s| s.num * nform).collect();
        let (_, groups) = self.groups.choose(rng).ok_or("empty SYMMOPS")?;
        let group = groups.choose(rng).ok_or("no space group for SYMMOPS")?;
        let orbits = Self::decompose(rng, group, &counts).ok_or_else(|| {
            format!("{} atoms do not fit the orbits of space group {}", counts.iter().sum::<u32>(), group.number)
        })?;

        // Cell: symmetric metric, scaled to a volume drawn from the target range.
        let (v_lo, v_hi) = input.volume_range(nform);
        let volume = if v_hi > v_lo { rng.random_range(v_lo..=v_hi) } else { v_lo };
        let metric = group.random_metric(rng).ok_or("random cell metric not positive definite")?;
        let scale = (volume / metric.determinant().sqrt()).cbrt();
        let basis = basis_from_metric(&(metric * scale * scale)).ok_or("degenerate cell")?;
        let lattice = moyo::base::Lattice::new(basis.transpose());
        let reduced = match lattice.niggli_reduce() {
            Ok((l, _)) => l,
            Err(_) => lattice.unchecked_niggli_reduce().0,
        };
        let reduced_basis = reduced.basis;
        // Integer change of basis: reduced = basis · T.
        let t = basis.try_inverse().ok_or("singular cell")? * reduced_basis;
        let t_int = t.map(f64::round);
        if (t - t_int).amax() > 1e-6 {
            return Err("cell reduction is not a change of basis".into());
        }
        let t_inv = t_int.try_inverse().ok_or("singular reduction")?;
        let h = heights(&reduced_basis);
        if h.iter().any(|&x| x < MIN_HEIGHT_FRACTION * volume.cbrt()) {
            return Err("cell too thin".into());
        }
        let present: Vec<usize> = (0..counts.len()).filter(|&s| counts[s] > 0).collect();
        let shortest = image_shifts(&reduced_basis, 0.0)
            .iter()
            .map(|s| s.norm())
            .filter(|&d| d > 1e-9)
            .fold(f64::INFINITY, f64::min);
        if present.iter().any(|&s| shortest < input.minsep(input.species[s].z, input.species[s].z)) {
            return Err("a lattice vector is shorter than MINSEP".into());
        }

        // Atoms: species order, then orbit order.
        let mut ordered = orbits.clone();
        ordered.sort_by_key(|&(species, _)| species);
        let mut atoms: Vec<PlacedAtom> = Vec::new();
        let mut params: Vec<Vector3<f64>> = Vec::new();
        for (orbit, &(species, site)) in ordered.iter().enumerate() {
            params.push(Vector3::from_fn(|_, _| rng.random::<f64>()));
            for Affine { a, b } in &group.sites[site].images {
                atoms.push(PlacedAtom { species, orbit, jacobian: basis * a, offset: basis * b });
            }
        }
        let (params, ratio) = self.relax(rng, &atoms, params, &reduced_basis)?;

        // Output: fractional coordinates of the reduced cell, ASE orientation.
        let out_basis =
            basis_from_metric(&(reduced_basis.transpose() * reduced_basis)).ok_or("degenerate reduced cell")?;
        let reduced_inv = reduced_basis.try_inverse().ok_or("singular reduced cell")?;
        let mut numbers = Vec::with_capacity(atoms.len());
        let mut positions = Vec::with_capacity(atoms.len());
        for atom in &atoms {
            let r = atom.jacobian * params[atom.orbit] + atom.offset;
            let frac = wrap(&(reduced_inv * r));
            let p = out_basis * frac;
            numbers.push(input.species[atom.species].z);
            positions.push([p.x, p.y, p.z]);
        }
        let mut out = Atoms::new(numbers, positions);
        let cols = out_basis.transpose();
        out.cell = std::array::from_fn(|i| [cols[(i, 0)], cols[(i, 1)], cols[(i, 2)]]);
        out.pbc = [true; 3];
        let slack = if ratio.is_some() { 1.0 - input.slack } else { 1.0 };
        if let Some(reason) = first_violation(&out, |za, zb| slack * input.minsep(za, zb)) {
            return Err(reason);
        }
        let operations = group
            .operations
            .iter()
            .map(|(w, tr)| {
                let w_red = (t_inv * w.map(f64::from) * t_int).map(|x| x.round() as i32);
                let t_red = wrap(&(t_inv * tr));
                (std::array::from_fn(|i| std::array::from_fn(|j| w_red[(i, j)])), [t_red.x, t_red.y, t_red.z])
            })
            .collect();
        Ok((Generated { atoms: out, nform, space_group: group.number, operations }, ratio))
    }

    /// Pushes atoms apart by steepest descent on `Σ (σ − d)²` over pairs closer
    /// than σ, in the orbits' free parameters. Succeeds with `None` when no pair
    /// overlaps, or with the smallest separation relative to `MINSEP` when
    /// overlaps remain but no pair is closer than `(1 - SLACK) × MINSEP`.
    fn relax<R: Rng>(
        &self,
        rng: &mut R,
        atoms: &[PlacedAtom],
        mut params: Vec<Vector3<f64>>,
        reduced_basis: &Matrix3<f64>,
    ) -> Result<(Vec<Vector3<f64>>, Option<f64>), String> {
        let sigma_max = self.sigma.iter().flatten().copied().fold(0.0, f64::max);
        let sigma_min = self.sigma.iter().flatten().copied().fold(f64::INFINITY, f64::min);
        if sigma_max <= 0.0 {
            return Ok((params, None));
        }
        let skin = 0.3 * sigma_max;
        let cutoff = sigma_max + skin;
        let shifts = image_shifts(reduced_basis, cutoff);
        let reduced_inv = reduced_basis.try_inverse().ok_or("singular reduced cell")?;
        let positions = |params: &[Vector3<f64>]| -> Vec<Vector3<f64>> {
            atoms.iter().map(|a| a.jacobian * params[a.orbit] + a.offset).collect()
        };
        let build = |pos: &[Vector3<f64>]| -> Vec<Pair> {
            let mut list = Vec::new();
            for i in 0..pos.len() {
                for j in i + 1..pos.len() {
                    let d0 = pos[j] - pos[i];
                    let base = reduced_basis * (reduced_inv * d0).map(|x| -x.round());
                    let sigma = self.sigma[atoms[i].species][atoms[j].species];
                    for s in &shifts {
                        let shift = base + s;
                        if (d0 + shift).norm_squared() < cutoff * cutoff {
                            list.push(Pair { i, j, shift, sigma });
                        }
                    }
                }
            }
            list
        };
        let energy = |pos: &[Vector3<f64>], list: &[Pair], grad: &mut Vec<Vector3<f64>>| -> f64 {
            grad.clear();
            grad.resize(pos.len(), Vector3::zeros());
            let mut e = 0.0;
            for p in list {
                let d = pos[p.j] + p.shift - pos[p.i];
                let r2 = d.norm_squared();
                if r2 < p.sigma * p.sigma {
                    let r = r2.sqrt();
                    let overlap = p.sigma - r;
                    e += overlap * overlap;
                    let dir = if r > 1e-12 { d / r } else { Vector3::x() };
                    let g = dir * (-2.0 * overlap);
                    grad[p.j] += g;
                    grad[p.i] -= g;
                }
            }
            e
        };

        // Preconditioner per orbit: the pseudo-inverse of Σ Jᵀ J over its atoms, so that
        // steps in the free parameters are steps in Å whatever the cell's shape.
        let mut metric = vec![Matrix3::<f64>::zeros(); params.len()];
        for a in atoms {
            metric[a.orbit] += a.jacobian.transpose() * a.jacobian;
        }
        let precond: Vec<Matrix3<f64>> = metric
            .iter()
            .map(|m| {
                let eig = m.symmetric_eigen();
                let top = eig.eigenvalues.amax();
                let inv = eig.eigenvalues.map(|l| if l > 1e-9 * top { 1.0 / l } else { 0.0 });
                eig.eigenvectors * Matrix3::from_diagonal(&inv) * eig.eigenvectors.transpose()
            })
            .collect();
        let max_move =
            |du: &[Vector3<f64>]| atoms.iter().map(|a| (a.jacobian * du[a.orbit]).norm()).fold(0.0, f64::max);

        let mut pos = positions(&params);
        let mut built_at = pos.clone();
        let mut list = build(&pos);
        let mut grad_r = Vec::new();
        let mut e = energy(&pos, &list, &mut grad_r);
        let mut velocity = vec![Vector3::zeros(); params.len()];
        let (mut dt, mut alpha, mut n_positive) = (FIRE_DT_START, FIRE_ALPHA_START, 0usize);
        let mut since_shake = 0usize;
        let max_step = 0.2 * sigma_min;
        for _ in 0..MAX_RELAX_EVALUATIONS {
            if e == 0.0 {
                return Ok((params, None));
            }
            // Preconditioned force on the free parameters.
            let mut force = vec![Vector3::zeros(); params.len()];
            for (a, g) in atoms.iter().zip(&grad_r) {
                force[a.orbit] -= a.jacobian.transpose() * g;
            }
            for (f, p) in force.iter_mut().zip(&precond) {
                *f = p * *f;
            }
            let force_size = max_move(&force);
            since_shake += 1;
            if force_size < 1e-8 || since_shake > SHAKE_INTERVAL {
                // Stuck with overlaps left: shake (AIRSS's PUSH: "put and shake").
                let kicks: Vec<Vector3<f64>> = precond
                    .iter()
                    .zip(&metric)
                    .map(|(p, m)| p * m * Vector3::from_fn(|_, _| rng.random_range(-1.0..1.0)))
                    .collect();
                let mut longest = vec![0.0f64; params.len()];
                for a in atoms {
                    longest[a.orbit] = longest[a.orbit].max((a.jacobian * kicks[a.orbit]).norm());
                }
                for ((u, k), l) in params.iter_mut().zip(&kicks).zip(&longest) {
                    if *l > 0.0 {
                        *u += k * (SHAKE_AMPLITUDE * sigma_min / l);
                    }
                }
                velocity.iter_mut().for_each(|v| *v = Vector3::zeros());
                (dt, alpha, n_positive, since_shake) = (FIRE_DT_START, FIRE_ALPHA_START, 0, 0);
            } else {
                // FIRE (Bitzek et al. 2006) on the free parameters.
                let power: f64 = force.iter().zip(&velocity).map(|(f, v)| f.dot(v)).sum();
                if power > 0.0 {
                    let v_norm = velocity.iter().map(|v| v.norm_squared()).sum::<f64>().sqrt();
                    let f_norm = force.iter().map(|f| f.norm_squared()).sum::<f64>().sqrt();
                    for (v, f) in velocity.iter_mut().zip(&force) {
                        *v = *v * (1.0 - alpha) + f * (alpha * v_norm / f_norm);
                    }
                    n_positive += 1;
                    if n_positive > 5 {
                        dt = (dt * 1.1).min(FIRE_DT_MAX);
                        alpha *= 0.99;
                    }
                } else {
                    velocity.iter_mut().for_each(|v| *v = Vector3::zeros());
                    (dt, alpha, n_positive) = (dt * 0.5, FIRE_ALPHA_START, 0);
                }
                for (v, f) in velocity.iter_mut().zip(&force) {
                    *v += f * dt;
                }
                let mut step: Vec<Vector3<f64>> = velocity.iter().map(|v| v * dt).collect();
                let longest = max_move(&step);
                if longest > max_step {
                    step.iter_mut().for_each(|s| *s *= max_step / longest);
                }
                for (u, s) in params.iter_mut().zip(&step) {
                    *u += s;
                }
            }
            pos = positions(&params);
            let moved = pos.iter().zip(&built_at).map(|(a, b)| (a - b).norm()).fold(0.0, f64::max);
            if moved > 0.5 * skin {
                list = build(&pos);
                built_at = pos.clone();
            }
            e = energy(&pos, &list, &mut grad_r);
        }
        if e == 0.0 {
            return Ok((params, None));
        }
        // σ is MINSEP × (1 + SEPARATION_MARGIN): the ratio is to MINSEP.
        let ratio = list
            .iter()
            .map(|p| (pos[p.j] + p.shift - pos[p.i]).norm() / p.sigma * (1.0 + SEPARATION_MARGIN))
            .fold(f64::INFINITY, f64::min);
        if ratio >= 1.0 - self.input.slack {
            Ok((params, Some(ratio.min(1.0))))
        } else {
            Err(format!(
                "atoms still closer than (1 - SLACK) x MINSEP after {MAX_RELAX_EVALUATIONS} relaxation steps \
                 (smallest separation {ratio:.3} x MINSEP)"
            ))
        }
    }
}

/// The first pair of atoms (periodic images included, and an atom with its own
/// images) closer than `minsep(Z_a, Z_b)`, described, or `None`.
pub fn first_violation(atoms: &Atoms, minsep: impl Fn(u8, u8) -> f64) -> Option<String> {
    let basis = Matrix3::from_fn(|i, j| atoms.cell[j][i]);
    let Some(inv) = basis.try_inverse() else { return Some("the cell is singular".into()) };
    let cutoff = atoms
        .numbers
        .iter()
        .flat_map(|&a| atoms.numbers.iter().map(move |&b| (a, b)))
        .map(|(a, b)| minsep(a, b))
        .fold(0.0, f64::max);
    let shifts = image_shifts(&basis, cutoff);
    let pos: Vec<Vector3<f64>> = atoms.positions.iter().map(|p| Vector3::from(*p)).collect();
    for i in 0..pos.len() {
        for j in i..pos.len() {
            let d0 = pos[j] - pos[i];
            let base = basis * (inv * d0).map(|x| -x.round());
            let (zi, zj) = (atoms.numbers[i], atoms.numbers[j]);
            let limit = minsep(zi, zj);
            for s in &shifts {
                let d = (d0 + base + s).norm();
                let same = i == j && d < 1e-9;
                if !same && d < limit {
                    return Some(format!("atoms {i} and {j} are {d:.4} Å apart, below MINSEP {limit}"));
                }
            }
        }
    }
    None
}
