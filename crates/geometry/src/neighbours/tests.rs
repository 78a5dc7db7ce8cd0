//! The neighbour lists against brute force over every image, and the Verlet
//! list against fresh lists.

use super::bins::grid_basis;
use super::list::{Search, keep, pairs_lower_bound};
use super::*;
use crate::cell::{inverse, shift_vector};
use crate::vec3::norm;
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
        let pbc = [[true; 3], [true, true, false], [false, true, false], [false; 3], [true, false, true]][trial % 5];
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
fn tiny_cells_with_more_candidates_than_a_batch_match_brute_force() {
    // 8 atoms in a 0.3 Å cell, cutoff 3: about 74,000 candidate images per
    // centre, so the pair search filters them in several batches.
    let mut rng = StdRng::seed_from_u64(5);
    let cell = [[0.3, 0.0, 0.0], [0.02, 0.3, 0.0], [0.0, 0.01, 0.3]];
    let pos = random_positions(&mut rng, 8, &cell, 0.2);
    check(&pos, &cell, [true; 3], 3.0);
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
fn lattice_ordered_system_matches_brute_force() {
    // Atoms numbered in spatial order, as lattices are built: a half list's
    // linked-cell search skips the bins whose atoms all come before the
    // centre, in a diagonal cell (rows cut to the radius) and a tilted one.
    let mut rng = StdRng::seed_from_u64(29);
    let a = 1.8;
    let basis = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]];
    let mut pos = Vec::new();
    for (x, y, z) in (0..4).flat_map(|x| (0..4).flat_map(move |y| (0..4).map(move |z| (x, y, z)))) {
        for b in &basis {
            let jitter = |_| rng.random_range(-0.1..0.1);
            let j: [f64; 3] = std::array::from_fn(jitter);
            pos.push([(x as f64 + b[0]) * a + j[0], (y as f64 + b[1]) * a + j[1], (z as f64 + b[2]) * a + j[2]]);
        }
    }
    let l = 4.0 * a;
    for cell in [[[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]], [[l, 0.0, 0.0], [0.3, l, 0.0], [-0.2, 0.4, l]]] {
        check(&pos, &cell, [true; 3], 2.6);
    }
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
fn diagonal_cells_skip_the_bins_beyond_the_radius_and_match_brute_force() {
    // In a cell with only diagonal entries the linked cells cut each row of
    // bins to those within the radius: the same pairs as brute force, atoms
    // outside the cell, open directions and cutoffs past the cell included.
    let mut rng = StdRng::seed_from_u64(13);
    for trial in 0..10 {
        let cell: [[f64; 3]; 3] =
            std::array::from_fn(|k| std::array::from_fn(|l| if k == l { rng.random_range(6.0..14.0) } else { 0.0 }));
        let n = rng.random_range(100..250);
        let pos = random_positions(&mut rng, n, &cell, 0.3);
        let cutoff = [1.5, 2.5, 3.5, 7.0, 16.0][trial % 5];
        let pbc = [[true; 3], [true, true, false], [false, true, true], [false; 3], [true, false, false]][trial % 5];
        check(&pos, &cell, pbc, cutoff);
    }
    // Fewer distances than the same cell tilted by a hair, where every bin
    // within reach is visited.
    let work = |tilt: f64| {
        let cell = [[20.0, 0.0, 0.0], [tilt, 20.0, 0.0], [0.0, 0.0, 20.0]];
        let pos = random_positions(&mut StdRng::seed_from_u64(1), 640, &cell, 0.0);
        let mut nl = NeighbourList::new(3.0, ListKind::Half).unwrap();
        nl.search = Some(Search::Cells);
        nl.build(&pos, &cell, [true; 3]).unwrap();
        (nl.len(), nl.candidates_examined() as f64)
    };
    let ((pairs, trimmed), (tilted_pairs, full)) = (work(0.0), work(1e-9));
    assert_eq!(pairs, tilted_pairs);
    assert!(trimmed < 0.8 * full, "{trimmed} distances against {full}");
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

#[test]
fn verlet_list_by_linked_cells_equals_fresh_lists_with_atoms_outside_the_cell() {
    // Enough atoms for the linked-cell search, up to two cells outside the
    // cell (the outer list numbers the shifts on a grid) and with one a
    // million cells out (by a map), through builds and refreshes.
    let mut rng = StdRng::seed_from_u64(23);
    let diagonal = [[19.0, 0.0, 0.0], [0.0, 20.0, 0.0], [0.0, 0.0, 21.0]];
    for (cell, far) in [(random_cell(&mut rng, 20.0), false), (diagonal, false), (diagonal, true)] {
        let mut pos = random_positions(&mut rng, 1500, &cell, 2.0);
        if far {
            let far = shift_vector([1_000_000, -3, 2], &cell);
            pos[7] = [pos[7][0] + far[0], pos[7][1] + far[1], pos[7][2] + far[2]];
        }
        let mut vl = VerletList::new(3.0, 0.3, ListKind::Half).unwrap().with_outer_margin(1.0);
        let mut fresh = NeighbourList::new(3.0, ListKind::Half).unwrap();
        for _step in 0..16 {
            for p in pos.iter_mut() {
                for x in p.iter_mut() {
                    *x += rng.random_range(-0.08..0.08);
                }
            }
            vl.update(&pos, &cell, [true; 3]).unwrap();
            fresh.build(&pos, &cell, [true; 3]).unwrap();
            // The linked cells, not every pair's images.
            let mut by_cells = NeighbourList::new(3.0, ListKind::Half).unwrap();
            by_cells.search = Some(Search::Cells);
            by_cells.build(&pos, &cell, [true; 3]).unwrap();
            assert_eq!(fresh.candidates_examined(), by_cells.candidates_examined());
            let mut got = Vec::new();
            vl.for_each_pair(&pos, |i, j, d, _| got.push((i, j, d)));
            let want: Vec<_> = (0..fresh.len()).map(|p| (fresh.i()[p], fresh.j()[p], fresh.vectors()[p])).collect();
            assert!(got == want, "{} pairs against {}", got.len(), want.len());
        }
        assert!(vl.builds() > 1 && vl.refreshes() > 0, "builds {} refreshes {}", vl.builds(), vl.refreshes());
    }
}

/// `n` atoms spread over 8 Å along x and y and `noise` Å along z, the
/// cell (when periodic in x and y) with a zero third vector.
fn near_flat(rng: &mut StdRng, n: usize, noise: f64) -> Vec<[f64; 3]> {
    (0..n)
        .map(|_| [rng.random_range(0.0..8.0), rng.random_range(0.0..8.0), noise * rng.random_range(-0.5..0.5)])
        .collect()
}

#[test]
fn near_flat_configurations_match_brute_force() {
    // Extents from 0 to 1e-3 Å along an open direction: one bin along it,
    // not millions of bins' reach (which used to refuse the build as too
    // many pairs).
    let mut rng = StdRng::seed_from_u64(17);
    let slab = [[8.0, 0.0, 0.0], [1.0, 8.0, 0.0], [0.0; 3]];
    for noise in [0.0, 1e-12, 1e-9, 1e-7, 1e-5, 1e-3] {
        let pos = near_flat(&mut rng, 40, noise);
        check(&pos, &[[0.0; 3]; 3], [false; 3], 3.0);
        check(&pos, &slab, [true, true, false], 3.0);
        // The same plane along other open axes.
        let yz: Vec<[f64; 3]> = pos.iter().map(|p| [p[2], p[0], p[1]]).collect();
        check(&yz, &[[0.0; 3]; 3], [false; 3], 3.0);
        let wire = [[0.0; 3], [8.0, 0.0, 0.0], [0.0; 3]];
        let line: Vec<[f64; 3]> = pos.iter().map(|p| [p[2], p[0], -p[2]]).collect();
        check(&line, &wire, [false, true, false], 3.0);
    }
}

/// The pairs of `nl` as `(i, j, distance)`, the shift left out.
fn pairs_without_shifts(nl: &NeighbourList) -> Vec<(usize, usize, f64)> {
    (0..nl.len()).map(|p| (nl.i()[p], nl.j()[p], nl.distances()[p])).collect()
}

#[test]
fn atoms_far_outside_the_cell_give_the_pairs_of_the_wrapped_positions() {
    // A 2-atom cell with the second atom 1e6 Å (and more) away along each
    // periodic direction, as unwrapped trajectories hold: the pairs of the
    // wrapped positions, with shifts that carry the difference, and a
    // Verlet list whose shift table does not grow with the distance.
    let cell = [[2.5, 0.0, 0.0], [0.4, 2.3, 0.0], [0.2, 0.3, 2.6]];
    let near = [[0.1, 0.2, 0.3], [1.4, 1.2, 1.5]];
    for far in [[1e6, 0.0, 0.0], [0.0, -1e6, 0.0], [1e6, 1e6, -1e6], [3e8, -3e8, 3e8]] {
        for pbc in [[true; 3], [true, false, true]] {
            let moved = [near[0], [near[1][0] + far[0], near[1][1] + far[1], near[1][2] + far[2]]];
            // The wrapped equivalent: subtract the whole cells the move added.
            let inv = inverse(&cell).unwrap();
            let cells = crate::cell::fractional(&moved[1], &inv).map(f64::floor);
            let back = crate::cell::cartesian(cells, &cell);
            let mut wrapped = [moved[0], [moved[1][0] - back[0], moved[1][1] - back[1], moved[1][2] - back[2]]];
            for (k, c) in cells.iter().enumerate() {
                // Along open directions the atom stays far away.
                if !pbc[k] && *c != 0.0 {
                    wrapped[1] = moved[1];
                }
            }
            for kind in [ListKind::Full, ListKind::Half] {
                let mut a = NeighbourList::new(4.0, kind).unwrap();
                let mut b = NeighbourList::new(4.0, kind).unwrap();
                a.build(&moved, &cell, pbc).unwrap();
                b.build(&wrapped, &cell, pbc).unwrap();
                let (pa, pb) = (pairs_without_shifts(&a), pairs_without_shifts(&b));
                assert_eq!(pa.len(), pb.len(), "far {far:?} pbc {pbc:?}");
                for (x, y) in pa.iter().zip(&pb) {
                    assert_eq!((x.0, x.1), (y.0, y.1));
                    // The far coordinates keep about 1e-16 of their size.
                    assert!((x.2 - y.2).abs() < 1e-6, "{x:?} {y:?}");
                }
            }
            let mut vl = VerletList::new(4.0, 0.4, ListKind::Half).unwrap().with_outer_margin(2.0);
            vl.update(&moved, &cell, pbc).unwrap();
            let mut n = 0;
            vl.for_each_pair(&moved, |_, _, _, r2| {
                assert!(r2 < 16.0);
                n += 1;
            });
            let mut fresh = NeighbourList::new(4.0, ListKind::Half).unwrap();
            fresh.build(&moved, &cell, pbc).unwrap();
            assert_eq!(n, fresh.len());
        }
    }
}

#[test]
fn positions_beyond_2_to_the_29_cells_are_an_error() {
    let cell = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]];
    let mut nl = NeighbourList::new(3.0, ListKind::Full).unwrap();
    let err = nl.build(&[[0.0; 3], [0.0, 2e9, 0.0]], &cell, [true; 3]).unwrap_err();
    assert!(matches!(err, NeighbourError::FarOutsideCell { atom: 1, .. }), "{err}");
    // Along an open direction the distance costs nothing.
    nl.build(&[[0.0; 3], [0.0, 2e9, 0.0]], &cell, [true, false, true]).unwrap();
}

#[test]
fn verlet_margin_shrinks_to_keep_the_outer_list_within_the_pair_limit() {
    use super::verlet::margin_within_limit;
    // LAMMPS's bench/in.lj at 256,000 atoms: 9.14 M pairs within cutoff +
    // skin (2.75 σ). A 1.5 σ margin would make the outer list 35 M pairs:
    // it shrinks to fit half the limit of 200 pairs per atom, 25.6 M.
    let m = margin_within_limit(1.5, 0.25, 2.75, (2.75, 9.14e6), 256_000);
    let outer = 9.14e6 * ((2.75 + m) / 2.75f64).powi(3);
    assert!((outer - 25.6e6).abs() < 1.0, "margin {m}: {outer} pairs");
    // Compact lists (a Verlet list's) may hold that many; full ones 25 M.
    assert_eq!(max_pairs(true, 256_000), 51_200_000);
    assert_eq!(max_pairs(false, 256_000), MAX_PAIRS);
    assert_eq!(max_pairs(true, 1_000), MAX_PAIRS);
    // At 32,000 atoms (1.14 M pairs) it stays whole, within half the
    // absolute limit (12.5 M pairs, more than 200 per atom there).
    assert_eq!(margin_within_limit(1.5, 0.25, 2.75, (2.75, 1.14e6), 32_000), 1.5);
    let m = margin_within_limit(1.5, 0.25, 2.75, (2.75, 1.14e6), 1_000);
    assert_eq!(m, 1.5);
    // Judged from a list at another distance (the bare cutoff after a
    // fallback): the same margin as from the list at cutoff + skin.
    let at_cutoff = 9.14e6 * (2.5f64 / 2.75).powi(3);
    let m2 = margin_within_limit(1.5, 0.25, 2.75, (2.5, at_cutoff), 256_000);
    assert!((m2 - margin_within_limit(1.5, 0.25, 2.75, (2.75, 9.14e6), 256_000)).abs() < 1e-9);
    // A list proper near the limit already leaves less than the skin: no margin.
    assert_eq!(margin_within_limit(1.5, 0.25, 2.75, (2.75, 12e6), 32_000), 0.0);
    // No estimate (open directions before the first build): the whole margin.
    assert_eq!(margin_within_limit(1.5, 0.25, 2.75, (2.75, 0.0), 32_000), 1.5);
}

#[test]
fn verlet_refresh_from_the_outer_list_stores_exactly_the_pairs_within_the_skin() {
    // 500 atoms in an 8 Å box, a 1 Å margin: a move of 0.3 Å is a refresh
    // from the outer list.
    let mut rng = StdRng::seed_from_u64(17);
    let cell = [[8.0, 0.0, 0.0], [0.0, 8.0, 0.0], [0.0, 0.0, 8.0]];
    let pos = random_positions(&mut rng, 500, &cell, 0.0);
    let mut moved = pos.clone();
    moved[0][0] += 0.3;
    let within = |reach: f64, pos: &[[f64; 3]]| {
        let mut nl = NeighbourList::new(reach, ListKind::Half).unwrap();
        nl.build(pos, &cell, [true; 3]).unwrap();
        nl.len()
    };
    let mut vl = VerletList::new(3.0, 0.1, ListKind::Half).unwrap().with_outer_margin(1.0);
    vl.update(&pos, &cell, [true; 3]).unwrap();
    assert_eq!(vl.stored_pairs(), within(3.1, &pos));
    vl.update(&moved, &cell, [true; 3]).unwrap();
    assert_eq!((vl.builds(), vl.refreshes()), (1, 1));
    let mut fresh = NeighbourList::new(3.0, ListKind::Half).unwrap();
    fresh.build(&moved, &cell, [true; 3]).unwrap();
    assert!(vl.stored_pairs() >= fresh.len());
    // Exactly the pairs within cutoff + skin, whether built or refreshed
    // (the refresh keeps its array at the outer list's length).
    assert_eq!(vl.stored_pairs(), within(3.1, &moved));
    assert_eq!((0..moved.len()).map(|i| vl.centre(i).count()).sum::<usize>(), within(3.1, &moved));
}

#[test]
fn two_largest_displacements_by_lanes_equal_a_plain_scan() {
    use super::verlet::two_largest_displacements;
    // The two largest of all, wherever they fall among the eight lanes and
    // the remainder, and infinite for NaN.
    let plain = |p: &[[f64; 3]], q: &[[f64; 3]]| {
        let mut d: Vec<f64> = p.iter().zip(q).map(|(p, q)| norm([p[0] - q[0], p[1] - q[1], p[2] - q[2]])).collect();
        d.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = f64::INFINITY);
        d.sort_by(|a, b| b.total_cmp(a));
        let (a, b) = (d.first().copied().unwrap_or(0.0), d.get(1).copied().unwrap_or(0.0));
        (a, a + b)
    };
    let mut rng = StdRng::seed_from_u64(31);
    for n in [0, 1, 2, 7, 8, 9, 16, 17, 100, 1001] {
        for trial in 0..20 {
            let q: Vec<[f64; 3]> = (0..n).map(|_| std::array::from_fn(|_| rng.random_range(-5.0..5.0))).collect();
            let mut p: Vec<[f64; 3]> =
                q.iter().map(|q| std::array::from_fn(|k| q[k] + rng.random_range(-0.1..0.1))).collect();
            // The two largest in one lane, or one in the remainder.
            if n > 0 && trial % 4 == 1 {
                p[n - 1][0] += 3.0;
                p[(n - 1) % 8][1] += 2.0;
            }
            if n > 8 && trial % 4 == 2 {
                p[0][2] += 1.0;
                p[8][2] += 1.5;
            }
            if n > 2 && trial % 4 == 3 {
                p[n / 2][0] = f64::NAN;
            }
            let (got, want) = (two_largest_displacements(&p, &q), plain(&p, &q));
            let close = got.1 == want.1 || (got.1 - want.1).abs() <= 1e-15 * want.1;
            assert!(got.0 == want.0 && close, "n {n}: {got:?} {want:?}");
        }
    }
}

/// The bound that refuses tiny and thin cells before their search never
/// exceeds the pairs a list holds, over random cells (cubic, triclinic,
/// thin along one axis, smaller than the cutoff) and positions.
#[test]
fn pairs_lower_bound_never_exceeds_the_list() {
    let mut rng = StdRng::seed_from_u64(23);
    let mut binding = 0;
    for trial in 0..300 {
        let scale = rng.random_range(0.5..4.0);
        let mut cell = random_cell(&mut rng, scale);
        if trial % 3 == 0 {
            let k = rng.random_range(0..3);
            let squeeze = rng.random_range(0.02..0.2);
            cell[k] = cell[k].map(|x| x * squeeze);
        }
        let pbc = if trial % 5 == 0 { [true, rng.random_bool(0.5), true] } else { [true; 3] };
        let n = rng.random_range(1..6);
        let pos = random_positions(&mut rng, n, &cell, 0.3);
        let cutoff = rng.random_range(1.0..4.0);
        for kind in [ListKind::Full, ListKind::Half] {
            let mut nl = NeighbourList::new(cutoff, kind).unwrap();
            nl.build(&pos, &cell, pbc).unwrap();
            let bound = pairs_lower_bound(&crate::cell::periodic_rows(&cell, pbc), pbc, n, cutoff, kind);
            assert!(bound <= nl.len() as f64, "trial {trial} {kind:?}: bound {bound} > {} pairs", nl.len());
            binding += usize::from(bound > 0.5 * nl.len() as f64);
        }
    }
    // Not vacuous: the bound is within a factor two of the list in many trials.
    assert!(binding > 10, "{binding}");
    // A 0.025 Å cube and a cell 1e-7 Å thin, one atom: refused at once.
    let tiny = [[0.025, 0.0, 0.0], [0.0, 0.025, 0.0], [0.0, 0.0, 0.025]];
    let thin = [[3610.0, 0.0, 0.0], [0.0, 1e-7, 0.0], [0.0, 0.0, 3610.0]];
    for cell in [tiny, thin] {
        let mut nl = NeighbourList::new(5.9, ListKind::Half).unwrap();
        assert!(matches!(nl.build(&[[0.0; 3]], &cell, [true; 3]), Err(NeighbourError::TooManyPairs { .. })));
        assert!(pairs_lower_bound(&cell, [true; 3], 1, 5.9, ListKind::Half) > MAX_PAIRS as f64);
    }
}
