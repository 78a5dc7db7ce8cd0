//! Energies, forces, stress and per-atom energies against ASE 3.28, computed
//! at test time in the reference venv: cubic and triclinic periodic cells,
//! cells smaller than twice the cutoff (several images of one neighbour),
//! clusters without a cell, and slabs/wires with mixed periodicity.

use autopara_calculators as _; // links the calculators' registrations
use autopara_core::{Atoms, CalcResults, CalculatorSpec, Properties};
use autopara_geometry::cell;
use autopara_testkit::fixtures::fcc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const REFERENCE: &str = r#"
import json, sys
import numpy as np
from ase import Atoms
from ase.calculators.calculator import all_changes
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential
from ase.calculators.emt import EMT
d = json.load(sys.stdin)
cls = {"LennardJones": LennardJones, "MorsePotential": MorsePotential, "EMT": EMT}[d["calculator"]]
out = []
for c in d["configs"]:
    at = Atoms(numbers=c["numbers"], positions=c["positions"], cell=c["cell"], pbc=c["pbc"])
    calc = cls(**d["kwargs"])
    props = ["energy", "forces", "energies"] + (["stress"] if at.cell.rank == 3 else [])
    calc.calculate(at, properties=props, system_changes=all_changes)
    r = calc.results
    out.append({
        "energy": float(r["energy"]),
        "forces": np.asarray(r["forces"]).tolist(),
        "energies": np.asarray(r["energies"]).tolist(),
        "stress": np.asarray(r["stress"]).tolist() if "stress" in r else None,
    })
print(json.dumps(out))
"#;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-10 + 1e-8 * b.abs()
}

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(x) => vec![x.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

/// Compares our calculator (built from `spec`) with ASE's `ase_class(**kwargs)` on `configs`.
fn compare(test: &str, spec: Value, ase_class: &str, kwargs: Value, configs: &[Atoms]) {
    let Some(py) = autopara_testkit::python_or_skip(test) else { return };
    let input = json!({
        "calculator": ase_class,
        "kwargs": kwargs,
        "configs": configs.iter().map(|a| json!({
            "numbers": a.numbers, "positions": a.positions, "cell": a.cell, "pbc": a.pbc,
        })).collect::<Vec<_>>(),
    });
    let reference = autopara_testkit::run_python_json(&py, REFERENCE, &input.to_string());
    let spec: Box<dyn CalculatorSpec> = serde_json::from_value(spec).unwrap();
    let mut calc = spec.build().unwrap();
    assert_eq!(calc.name(), ase_class);
    let mut out = CalcResults::default();
    for (c, (at, r)) in configs.iter().zip(reference.as_array().unwrap()).enumerate() {
        // ASE is asked for stress only when the cell has a volume; so are we.
        let stress = cell::has_volume(&at.cell);
        calc.calculate(at, Properties { stress, ..Properties::ALL }, &mut out).unwrap();
        let e = r["energy"].as_f64().unwrap();
        assert!(close(out.energy, e), "{test} config {c}: energy {} vs ASE {e}", out.energy);
        let f = floats(&r["forces"]);
        let ours: Vec<f64> = out.forces.iter().flatten().copied().collect();
        assert_eq!(ours.len(), f.len());
        for (k, (a, b)) in ours.iter().zip(&f).enumerate() {
            assert!(close(*a, *b), "{test} config {c}: force component {k}: {a} vs ASE {b}");
        }
        let en = floats(&r["energies"]);
        for (k, (a, b)) in out.energies.iter().zip(&en).enumerate() {
            assert!(close(*a, *b), "{test} config {c}: energy of atom {k}: {a} vs ASE {b}");
        }
        assert_eq!(out.energies.len(), en.len());
        match &r["stress"] {
            Value::Null => assert!(!out.computed.stress, "{test} config {c}: stress without a volume"),
            s => {
                assert!(out.computed.stress);
                for (k, (a, b)) in out.stress.iter().zip(floats(s)).enumerate() {
                    assert!(close(*a, b), "{test} config {c}: stress {k}: {a} vs ASE {b}");
                }
            }
        }
    }
}

fn rattle(at: &mut Atoms, amount: f64, rng: &mut StdRng) {
    for p in at.positions.iter_mut() {
        for x in p.iter_mut() {
            *x += rng.random_range(-amount..amount);
        }
    }
}

/// A family of configurations scaled to nearest-neighbour distance `nn`:
/// rattled cubic supercell, a small skewed cell with one or two atoms (cutoff
/// several cells), a triclinic cell with positions outside it, a cluster
/// without a cell, a slab (periodic x, y) and a wire (periodic x) with open
/// directions that have zero or non-zero cell vectors.
fn configs(nn: f64, species: &[u8], rng: &mut StdRng) -> Vec<Atoms> {
    let a = nn * 2f64.sqrt();
    let mut out = Vec::new();
    let pick = |rng: &mut StdRng| species[rng.random_range(0..species.len())];

    let mut bulk = fcc(species[0], a, [3, 3, 3]);
    rattle(&mut bulk, 0.05 * nn, rng);
    bulk.numbers.iter_mut().for_each(|z| *z = pick(rng));
    out.push(bulk);

    let mut prim = Atoms::new(vec![pick(rng)], vec![[0.1, 0.0, 0.05]]);
    prim.cell = [[0.0, a / 2.0, a / 2.0], [a / 2.0, 0.0, a / 2.0], [a / 2.0, a / 2.0, 0.0]];
    prim.pbc = [true; 3];
    out.push(prim);

    let mut tri = Atoms::new(vec![pick(rng), pick(rng)], vec![[0.0, 0.0, 0.0], [0.6 * nn, 0.5 * nn, -0.9 * nn]]);
    tri.cell = [[1.1 * nn, 0.0, 0.0], [0.4 * nn, 1.2 * nn, 0.0], [-0.3 * nn, 0.5 * nn, 1.3 * nn]];
    tri.pbc = [true; 3];
    out.push(tri);

    let mut cell = fcc(species[0], a, [2, 2, 2]);
    cell.cell = [[2.0 * a, 0.0, 0.0], [0.3 * a, 2.1 * a, 0.0], [0.2 * a, -0.4 * a, 1.9 * a]];
    rattle(&mut cell, 0.08 * nn, rng);
    cell.positions.iter_mut().for_each(|p| p[2] += 0.7 * a); // some outside the cell
    cell.numbers.iter_mut().for_each(|z| *z = pick(rng));
    out.push(cell);

    let mut cluster = fcc(species[0], a, [2, 2, 2]);
    cluster.cell = [[0.0; 3]; 3];
    cluster.pbc = [false; 3];
    rattle(&mut cluster, 0.05 * nn, rng);
    cluster.numbers.iter_mut().for_each(|z| *z = pick(rng));
    out.push(cluster);

    let mut slab = fcc(species[0], a, [2, 2, 2]);
    slab.pbc = [true, true, false];
    slab.cell[2] = [0.0, 0.0, 4.0 * a]; // vacuum along c
    rattle(&mut slab, 0.05 * nn, rng);
    slab.numbers.iter_mut().for_each(|z| *z = pick(rng));
    out.push(slab.clone());

    let mut wire = fcc(species[0], a, [1, 2, 2]);
    wire.pbc = [true, false, false];
    rattle(&mut wire, 0.05 * nn, rng);
    wire.numbers.iter_mut().for_each(|z| *z = pick(rng));
    out.push(wire);
    out
}

#[test]
fn lennard_jones_matches_ase() {
    let mut rng = StdRng::seed_from_u64(1);
    let nn = 2f64.powf(1.0 / 6.0) * 1.05;
    let cfgs = configs(nn, &[18], &mut rng);
    compare("lj default", json!({"type": "lennard_jones"}), "LennardJones", json!({}), &cfgs);
    compare(
        "lj rc 2.5",
        json!({"type": "lennard_jones", "sigma": 1.1, "epsilon": 0.7, "rc": 2.5}),
        "LennardJones",
        json!({"sigma": 1.1, "epsilon": 0.7, "rc": 2.5}),
        &cfgs,
    );
    compare(
        "lj smooth",
        json!({"type": "lennard_jones", "smooth": true, "rc": 3.2, "ro": 2.0}),
        "LennardJones",
        json!({"smooth": true, "rc": 3.2, "ro": 2.0}),
        &cfgs,
    );
    // Small steps from one configuration: the Verlet list is reused between
    // calls and must still give ASE's numbers.
    let mut walk = vec![fcc(18, 1.55, [3, 3, 3])];
    for _ in 0..8 {
        let mut next = walk[walk.len() - 1].clone();
        rattle(&mut next, 0.03, &mut rng);
        walk.push(next);
    }
    compare("lj walk", json!({"type": "lennard_jones", "rc": 2.5}), "LennardJones", json!({"rc": 2.5}), &walk);
    compare(
        "lj smooth default ro",
        json!({"type": "lennard_jones", "smooth": true}),
        "LennardJones",
        json!({"smooth": true}),
        &cfgs,
    );
}

#[test]
fn morse_matches_ase() {
    let mut rng = StdRng::seed_from_u64(2);
    let cfgs = configs(1.0, &[1], &mut rng);
    compare("morse default", json!({"type": "morse"}), "MorsePotential", json!({}), &cfgs);
    let kw = json!({"epsilon": 0.8, "rho0": 4.0, "r0": 2.3, "rcut1": 1.5, "rcut2": 2.2});
    let cfgs = configs(2.3, &[29], &mut rng);
    let mut spec = kw.clone();
    spec["type"] = json!("morse");
    compare("morse custom", spec, "MorsePotential", kw, &cfgs);
}

#[test]
fn emt_matches_ase() {
    let mut rng = StdRng::seed_from_u64(3);
    let cu = configs(2.55, &[29], &mut rng);
    compare("emt Cu", json!({"type": "emt"}), "EMT", json!({}), &cu);
    let metals = configs(2.8, &[29, 13, 47, 79, 28, 46, 78], &mut rng);
    compare("emt metals", json!({"type": "emt"}), "EMT", json!({}), &metals);
    let light = configs(2.4, &[29, 1, 6, 7, 8], &mut rng);
    compare("emt with H C N O", json!({"type": "emt"}), "EMT", json!({}), &light);
    // asap_cutoff: the radius follows the elements present, so it changes
    // between these configs (the calculator is reused across them).
    let mut mixed = configs(2.6, &[29, 28], &mut rng);
    mixed.extend(configs(2.6, &[29], &mut rng));
    mixed.extend(configs(2.8, &[79, 47], &mut rng));
    compare(
        "emt asap_cutoff",
        json!({"type": "emt", "asap_cutoff": true}),
        "EMT",
        json!({"asap_cutoff": true}),
        &mixed,
    );
}

/// `atoms` with `cell` and `pbc`.
fn periodic(mut atoms: Atoms, cell: [[f64; 3]; 3], pbc: [bool; 3]) -> Atoms {
    atoms.cell = cell;
    atoms.pbc = pbc;
    atoms
}

/// Pairs at exactly the cutoff, at distances every code computes exactly:
/// ASE's LennardJones counts them (it zeroes only `r² > rc²`: no energy
/// after the shift, but a force and a quarter of the stress of a simple
/// cubic crystal at `a = rc`), MorsePotential's terms vanish there, and EMT
/// leaves out pairs at its list cutoff (`r < rc_list`).
#[test]
fn pairs_exactly_at_the_cutoff_count_as_in_ase() {
    let cubic = |a: f64| [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]];
    let dimer = |z: u8, r: f64| Atoms::new(vec![z, z], vec![[0.0; 3], [r, 0.0, 0.0]]);
    // Simple cubic at a = rc (6 neighbours at rc), its supercell with one
    // atom moved off (pairs on both sides of rc), a square sheet and a dimer.
    let mut moved =
        Atoms::new(vec![18; 8], (0..8).map(|n| [n & 1, (n >> 1) & 1, n >> 2].map(|k| 2.0 * k as f64)).collect());
    moved.positions[5][0] += 0.25;
    let lj = [
        periodic(Atoms::new(vec![18], vec![[0.5, 0.5, 0.5]]), cubic(2.0), [true; 3]),
        periodic(moved, cubic(4.0), [true; 3]),
        periodic(Atoms::new(vec![18], vec![[0.0; 3]]), cubic(2.0), [true, true, false]),
        dimer(18, 2.0),
    ];
    for (name, kw) in [
        ("lj at rc", json!({"sigma": 1.0, "epsilon": 1.0, "rc": 2.0})),
        ("lj smooth at rc", json!({"sigma": 1.0, "epsilon": 1.0, "rc": 2.0, "ro": 1.5, "smooth": true})),
    ] {
        let mut spec = kw.clone();
        spec["type"] = json!("lennard_jones");
        compare(name, spec, "LennardJones", kw, &lj);
    }
    // Morse's cutoff is rcut2 · r0 = 2.5 Å.
    let kw = json!({"epsilon": 0.8, "rho0": 4.0, "r0": 1.0, "rcut1": 1.5, "rcut2": 2.5});
    let mut spec = kw.clone();
    spec["type"] = json!("morse");
    let morse = [periodic(Atoms::new(vec![1], vec![[0.0; 3]]), cubic(2.5), [true; 3]), dimer(1, 2.5)];
    compare("morse at rcut2", spec, "MorsePotential", kw, &morse);
    // EMT's list cutoff for Cu alone is rc + 0.5 with rc from the parameters;
    // a dimer just inside, at and just beyond it (ASE reports rc_list).
    let Some(py) = autopara_testkit::python_or_skip("emt rc_list") else { return };
    let rc_list = autopara_testkit::run_python_json(
        &py,
        "from ase.calculators.emt import EMT\nfrom ase import Atoms\nc = EMT()\nc.calculate(Atoms('Cu2', positions=[[0, 0, 0], [2.5, 0, 0]]))\nprint(c.rc_list)",
        "",
    )
    .as_f64()
    .unwrap();
    let emt: Vec<Atoms> = [rc_list.next_down(), rc_list, rc_list.next_up()].map(|r| dimer(29, r)).into();
    compare("emt at rc_list", json!({"type": "emt"}), "EMT", json!({}), &emt);
}
