//! Point 4 of the buildcell issue on 1,000 structures each for a one-species
//! (wfl's Li test input) and a two-species input: stoichiometry, volume,
//! separations (periodic images included), a non-degenerate cell, symmetry
//! (built operations map the structure onto itself, and moyo's detected group
//! contains them), and the info keys. All checks here are written from the
//! definitions, independently of the generator's own checks.

mod common;

use autopara_buildcell::{BuildcellInput, detect_symmetry};
use autopara_core::{Atoms, Value, WorkerContext};
use autopara_geometry::cell;
use autopara_geometry::neighbours::pair_vector;
use autopara_geometry::vec3::{cross, norm};
use autopara_testkit::fixtures::counter;
use common::{LI, op_for_input};

/// `create_input([3, 13], [20, 16.5], [3.0, 2.86], [1, 1], natom=(6, 16))`: Li + Al.
const LIAL: &str = "#TARGVOL=35-38
#SPECIES=Li%NUM=1,Al%NUM=1
#NFORM={3,4,5,6,7,8}
#SYMMOPS=1-8
#SLACK=0.25
#OVERLAP=0.1
#COMPACT
#MINSEP=0.5 Li-Li=2.7 Li-Al=2.6 Al-Al=2.6
##EXTRA_INFO RSS_min_vol_per_atom=9.125
";

/// wfl's own test parameters, `create_input(z=[3, 13], vol_per_atom=[5, 10],
/// bond_lengths=[2, 3], composition=[1, 2])`: two Al at MINSEP 2.7 Å overfill
/// the target volume (the densest packing needs 27.8 Å³ per formula unit, the
/// volume is 24 to 27 Å³), so MINSEP is a target that the atoms get within
/// SLACK of, as AIRSS's structures do.
const WFL_LIAL: &str = "#TARGVOL=16-18
#SPECIES=Li%NUM=1,Al%NUM=2
#NFORM={2,4,6,8}
#SYMMOPS=1-8
#SLACK=0.25
#OVERLAP=0.1
#COMPACT
#MINSEP=0.5 Li-Li=1.8 Li-Al=2.2 Al-Al=2.7
##EXTRA_INFO RSS_min_vol_per_atom=4.166666666666667
";

/// Fractional coordinates (rows of the cell are lattice vectors).
fn fractional(at: &Atoms) -> Vec<[f64; 3]> {
    let inv = cell::inverse(&at.cell).expect("a cell with a volume");
    at.positions.iter().map(|p| cell::fractional(p, &inv)).collect()
}

/// Smallest distance between atoms i and j over all periodic images (i == j: its own images),
/// by brute force over enough lattice translations to cover `reach`.
fn min_image_distance(at: &Atoms, i: usize, j: usize, reach: f64) -> f64 {
    let c = at.cell;
    let v = cell::determinant(&c).abs();
    let h = [v / norm(cross(c[1], c[2])), v / norm(cross(c[2], c[0])), v / norm(cross(c[0], c[1]))];
    let diag = norm(c[0]) + norm(c[1]) + norm(c[2]);
    let k: Vec<i32> = h.iter().map(|hh| ((reach + diag) / hh).ceil() as i32).collect();
    let mut best = f64::INFINITY;
    for a in -k[0]..=k[0] {
        for b in -k[1]..=k[1] {
            for cc in -k[2]..=k[2] {
                if i == j && a == 0 && b == 0 && cc == 0 {
                    continue;
                }
                let d = pair_vector(&at.positions[i], &at.positions[j], &cell::shift_vector([a, b, cc], &c));
                best = best.min(norm(d));
            }
        }
    }
    best
}

/// True when operation (W, t) maps every atom onto an atom of the same element.
fn maps_onto_itself(at: &Atoms, w: &[[i32; 3]; 3], t: &[f64; 3], tol: f64) -> bool {
    let frac = fractional(at);
    frac.iter().zip(&at.numbers).all(|(x, &z)| {
        let y: [f64; 3] = std::array::from_fn(|r| {
            f64::from(w[r][0]) * x[0] + f64::from(w[r][1]) * x[1] + f64::from(w[r][2]) * x[2] + t[r]
        });
        frac.iter().zip(&at.numbers).any(|(x2, &z2)| {
            z2 == z
                && (0..3).all(|k| {
                    let d = y[k] - x2[k];
                    (d - d.round()).abs() < tol
                })
        })
    })
}

fn same_op(a: &([[i32; 3]; 3], [f64; 3]), b: &([[i32; 3]; 3], [f64; 3]), tol: f64) -> bool {
    a.0 == b.0
        && (0..3).all(|k| {
            let d = a.1[k] - b.1[k];
            (d - d.round()).abs() < tol
        })
}

fn check_input(text: &str, seed: u64, n: u64) {
    let input = BuildcellInput::parse(text).expect("valid input");
    let op = op_for_input(text, 200);
    let ctx = WorkerContext::new(0, seed, "buildcell");
    let mut seen_symmops = std::collections::BTreeSet::new();
    let mut below_minsep = 0;
    for item in (0..n).map(counter) {
        let built = op.build_item(&item, &ctx).unwrap_or_else(|e| panic!("item {}: {e}", item.index));
        let at = &built.atoms;

        // Stoichiometry: NUM x nform, with nform from NFORM.
        assert!(input.nform.contains(&built.nform));
        for s in &input.species {
            let n = at.numbers.iter().filter(|&&z| z == s.z).count() as u32;
            assert_eq!(n, s.num * built.nform, "item {}: element {}", item.index, s.z);
        }
        assert_eq!(at.len() as u32, input.atoms_per_formula_unit() * built.nform);

        // Volume: TARGVOL x atoms / SPECIES entries.
        let volume = cell::determinant(&at.cell);
        let per_entry = volume * input.species.len() as f64 / at.len() as f64;
        assert!(
            per_entry >= input.targvol.0 * (1.0 - 1e-9) && per_entry <= input.targvol.1 * (1.0 + 1e-9),
            "item {}: volume per entry {per_entry}",
            item.index
        );

        // Non-degenerate, right-handed cell.
        assert!(volume > 0.0);
        let c = at.cell;
        for (a, b) in [(1, 2), (2, 0), (0, 1)] {
            let height = volume / norm(cross(c[a], c[b]));
            assert!(height >= 0.2 * volume.cbrt() - 1e-9, "item {}: thin cell", item.index);
        }
        assert!(at.pbc.iter().all(|&p| p));

        // Separations, periodic images included: MINSEP is met, or, when forty
        // attempts could not push the atoms that far apart, (1 - SLACK) MINSEP.
        let reach = input.minsep_pairs.iter().map(|p| p.2).fold(input.minsep_default, f64::max);
        let mut short = false;
        for i in 0..at.len() {
            for j in i..at.len() {
                let d = min_image_distance(at, i, j, reach);
                let limit = input.minsep(at.numbers[i], at.numbers[j]);
                short |= d < limit;
                assert!(d >= (1.0 - input.slack) * limit, "item {}: atoms {i},{j} at {d} < {limit}", item.index);
            }
        }
        below_minsep += u64::from(short);

        // Symmetry: the built group has a SYMMOPS number of operations, each maps the
        // structure onto itself, and moyo's detected operations contain them all.
        let nops = built.operations.len();
        assert!(input.symmops.contains(&nops), "item {}: {nops} operations", item.index);
        seen_symmops.insert(nops);
        for (w, t) in &built.operations {
            assert!(maps_onto_itself(at, w, t, 1e-6), "item {}: op {w:?} {t:?}", item.index);
        }
        let detected = detect_symmetry(at, 1e-3).expect("moyo");
        assert_eq!(detected.operations.len() % nops, 0, "item {}", item.index);
        for op in &built.operations {
            assert!(
                detected.operations.iter().any(|d| same_op(d, op, 1e-4)),
                "item {}: built op {op:?} not detected in group {}",
                item.index,
                detected.number
            );
        }

        // Info.
        assert_eq!(at.info.get("config_type"), Some(&Value::Str("buildcell".into())));
        assert_eq!(at.info.get("buildcell_config_i"), Some(&Value::Int(item.index as i64)));
        let sym = at.info.get("buildcell_symmetry").and_then(Value::as_str).expect("buildcell_symmetry");
        let wanted = detect_symmetry(at, 0.01).expect("moyo");
        assert_eq!(sym, format!("{} {} {} @ 0.01", wanted.number, wanted.international, wanted.hall));
        for (k, v) in &input.extra_info {
            assert_eq!(at.info.get(k), Some(v));
        }
    }
    // Where MINSEP fits, nearly every structure meets it in full.
    if input.minsep_can_fit() {
        assert!(below_minsep * 100 <= n, "{below_minsep} of {n} structures below MINSEP");
    } else {
        assert!(below_minsep > 0);
    }
    // With 1,000 draws every allowed number of operations shows up.
    assert_eq!(seen_symmops.into_iter().collect::<Vec<_>>(), input.symmops);
}

#[test]
fn one_species_wfl_li_input_meets_every_constraint() {
    check_input(LI, 11, 1000);
}

#[test]
fn two_species_input_meets_every_constraint() {
    check_input(LIAL, 12, 1000);
}

#[test]
fn wfl_test_parameters_generate_structures_within_slack_of_minsep() {
    assert!(!BuildcellInput::parse(WFL_LIAL).expect("accepted").minsep_can_fit());
    check_input(WFL_LIAL, 13, 200);
}
