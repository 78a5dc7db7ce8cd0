//! Geometry that real files contain, through every op that builds neighbour
//! lists (calculate, md, minim, descriptor): atoms far outside a periodic
//! cell (unwrapped coordinates), near-flat configurations (a sheet or a
//! planar cluster with 0 to 1e-3 Å of noise along an open direction), and
//! a mixed corpus whose results must not depend on input order, workers or
//! chunking (that is, on what a worker's calculator computed before).

use autopara::{Atoms, AutoparaInfo, ConfigSet, OutputSpec, Value, build_op, extxyz, runner};
use autopara_testkit::fixtures::memory_outputs;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// Writes the configurations with ASE (each with `info["cfg_id"]`) and
/// prints ASE's EMT results for each, and for each far configuration the
/// id of its wrapped twin (`ase.Atoms.wrap`).
const EDGE_CASES: &str = r#"
import json, sys
import numpy as np
from ase import Atoms
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.io import read, write
rng = np.random.default_rng(5)
frames, twins = [], {}
def add(at):
    at.info["cfg_id"] = len(frames)
    frames.append(at)
    return at.info["cfg_id"]
# Far outside a periodic cell: a 2-atom cell and a slab, one atom moved by
# lattice vectors 1e6 A long (along one and along every periodic axis), as
# an unwrapped trajectory holds it; its wrapped twin beside it.
prim = bulk("Cu", "fcc", a=3.6, orthorhombic=True)
prim.rattle(0.05, seed=1)
slab = fcc111("Cu", size=(2, 2, 2), vacuum=4.0)
slab.pbc = [True, True, False]
for base in (prim, slab):
    n = [round(1e6 / np.linalg.norm(v)) if p else 0 for v, p in zip(base.cell, base.pbc)]
    for cells in ([n[0], 0, 0], [n[0], -n[1], n[2]]):
        far = base.copy()
        far.positions[1] += np.dot(cells, base.cell)
        wrapped = far.copy()
        wrapped.wrap()
        twins[add(far)] = add(wrapped)
# Near-flat: a periodic sheet and a planar cluster with noise along z.
sheet = fcc111("Cu", size=(3, 3, 1), vacuum=5.0)
sheet.pbc = [True, True, False]
hexagon = Atoms("Cu7", positions=[[0, 0, 0]] + [[2.55 * np.cos(k * np.pi / 3), 2.55 * np.sin(k * np.pi / 3), 0] for k in range(6)])
for noise in (0.0, 1e-9, 1e-7, 1e-5, 1e-3):
    for base in (sheet, hexagon):
        at = base.copy()
        at.positions[:, 2] = at.positions[0, 2] + noise * rng.uniform(-0.5, 0.5, len(at))
        at.positions[:, :2] += rng.uniform(-0.05, 0.05, (len(at), 2))
        add(at)
write(sys.argv[1], frames)
out = []
# The coordinates as written (ASE writes 8 decimals), as we read them.
for at in read(sys.argv[1], ":"):
    at.calc = EMT()
    out.append({"energy": at.get_potential_energy(), "forces": at.get_forces().tolist()})
print(json.dumps({"ase": out, "twins": {str(k): v for k, v in twins.items()}}))
"#;

/// A mixed corpus: sizes from 1 to 32 atoms, Cu/Ni/Al, periodic, slab and
/// cluster, a cell smaller than the cutoff and one far larger, near-flat
/// sheets, an atom far outside, an element EMT lacks and coinciding atoms.
const CORPUS: &str = r#"
import sys
import numpy as np
from ase import Atoms
from ase.build import bulk, fcc111
from ase.io import write
rng = np.random.default_rng(11)
frames = []
cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
for k in range(3):
    at = cu.copy()
    at.numbers[k::4] = [28, 13, 29][k]
    at.rattle(0.05, seed=k)
    frames.append(at)
frames.append(Atoms("Cu", positions=[[0.2, 0.1, 0.3]], cell=[2.1, 2.3, 2.2], pbc=True))
frames.append(Atoms("CuNi", positions=[[1, 1, 1], [3.4, 1.2, 1.1]], cell=[30, 30, 30], pbc=True))
slab = fcc111("Al", size=(3, 3, 2), vacuum=4.0)
slab.pbc = [True, True, False]
slab.rattle(0.05, seed=3)
frames.append(slab)
cluster = bulk("Ni", "fcc", a=3.52, cubic=True).repeat((2, 2, 1))
cluster.pbc = False
cluster.cell = None
cluster.rattle(0.05, seed=4)
frames.append(cluster)
for noise in (1e-7, 3e-4, 1e-3):
    sheet = fcc111("Cu", size=(3, 3, 1), vacuum=5.0)
    sheet.pbc = [True, True, False]
    sheet.positions[:, 2] += noise * rng.uniform(-0.5, 0.5, len(sheet))
    frames.append(sheet)
    flat = Atoms("Cu6", positions=[[2.5 * np.cos(k * np.pi / 3), 2.5 * np.sin(k * np.pi / 3), noise * rng.uniform()] for k in range(6)])
    frames.append(flat)
far = bulk("Cu", "fcc", a=3.6, orthorhombic=True)
far.positions[1] += [1e6, 2e5, -3e5]
frames.append(far)
tri = bulk("Ni", "fcc", a=3.52).repeat((2, 2, 2))
tri.rattle(0.05, seed=6)
frames.append(tri)
frames.append(Atoms("CuSi", positions=[[0, 0, 0], [2.3, 0, 0]], cell=[6, 6, 6], pbc=True))
frames.append(Atoms("Cu3", positions=[[0, 0, 0], [0, 0, 0], [2.4, 0, 0]], cell=[7, 7, 7], pbc=True))
for i, at in enumerate(frames):
    at.info["cfg_id"] = i
write(sys.argv[1], frames)
"#;

fn emt() -> Json {
    json!({"type": "emt"})
}

/// The four ops' arguments: EMT single points, NVE dynamics (no random
/// numbers, which are drawn per item index), FIRE and SOAP.
fn ops() -> [(&'static str, Json); 4] {
    [
        ("calculate", json!({"calculator": emt()})),
        ("md", json!({"calculator": emt(), "steps": 6, "dt": 1.0, "traj_step_interval": 3})),
        ("minim", json!({"calculator": emt(), "optimizer": "FIRE", "fmax": 0.05, "steps": 8, "keep_symmetry": false})),
        (
            "descriptor",
            json!({"descriptor": {"type": "soap", "species": ["Cu", "Ni", "Al"], "r_cut": 4.0, "n_max": 3,
                                  "l_max": 2, "sigma": 0.5}, "key": "soap", "per_atom": true}),
        ),
    ]
}

/// Runs `op` on `configs`; the output frames and the failure messages.
fn run(
    op: &str,
    args: &Json,
    configs: Vec<Atoms>,
    workers: usize,
    chunk_size: usize,
) -> (Vec<Atoms>, Vec<(u64, String)>) {
    let op = build_op(op, args.clone()).expect("op builds");
    let info = AutoparaInfo {
        workers: Some(workers),
        chunk_size: Some(chunk_size),
        progress: Some(false),
        ..Default::default()
    };
    let summary = runner::run(op.as_ref(), &ConfigSet::from_atoms(configs), &OutputSpec::memory(), &info).expect("run");
    let failures = summary.failures.iter().map(|f| (f.index, f.message.clone())).collect();
    (memory_outputs(summary.outputs), failures)
}

fn cfg_id(at: &Atoms) -> i64 {
    match at.info.get("cfg_id") {
        Some(Value::Int(i)) => *i,
        other => panic!("cfg_id missing: {other:?}"),
    }
}

/// Each configuration's result: its output frames as extxyz text, or its
/// failure message.
fn by_config(inputs: &[Atoms], (frames, failures): (Vec<Atoms>, Vec<(u64, String)>)) -> BTreeMap<i64, String> {
    let mut out: BTreeMap<i64, String> = BTreeMap::new();
    for f in &frames {
        out.entry(cfg_id(f)).or_default().push_str(&extxyz::to_string(std::slice::from_ref(f)).unwrap());
    }
    for (index, message) in failures {
        // Without the item's location (`config 3 / 3: `), which moves with the order.
        let message = message.split_once(": ").filter(|(at, _)| at.starts_with("config ")).map_or(&*message, |m| m.1);
        out.entry(cfg_id(&inputs[index as usize])).or_default().push_str(&format!("failed: {message}"));
    }
    out
}

fn energy(at: &Atoms, key: &str) -> f64 {
    at.info.get(key).and_then(Value::as_f64).unwrap_or_else(|| panic!("{key} missing in config {}", cfg_id(at)))
}

#[test]
fn far_outside_and_near_flat_configurations_compute_as_in_ase() {
    let Some(py) = autopara_testkit::python_or_skip("geometry edge cases") else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    let reference = autopara_testkit::run_python_json_on_files(&py, EDGE_CASES, &[&input]);
    let inputs = extxyz::read_file(&input).unwrap();
    let twins: Vec<(usize, usize)> = reference["twins"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.parse().unwrap(), v.as_u64().unwrap() as usize))
        .collect();
    let [calculate, md, minim, descriptor] = ops().map(|(op, args)| {
        let (frames, failures) = run(op, &args, inputs.clone(), 1, 1);
        assert!(failures.is_empty(), "{op}: {failures:?}");
        frames
    });
    // calculate: ASE's EMT on the same coordinates.
    assert_eq!(calculate.len(), inputs.len());
    for (at, r) in calculate.iter().zip(reference["ase"].as_array().unwrap()) {
        let id = cfg_id(at);
        assert!(
            at.info.get("EMT_calculation_failed").is_none(),
            "config {id}: {:?}",
            at.info.get("EMT_calculation_error")
        );
        let e = r["energy"].as_f64().unwrap();
        assert!(
            (energy(at, "EMT_energy") - e).abs() < 1e-8 * e.abs().max(1.0),
            "config {id}: energy {} vs ASE {e}",
            energy(at, "EMT_energy")
        );
        let forces = at.array_vec3("EMT_forces").unwrap();
        for (f, g) in forces.iter().zip(r["forces"].as_array().unwrap()) {
            for k in 0..3 {
                assert!((f[k] - g[k].as_f64().unwrap()).abs() < 1e-6, "config {id}: forces {f:?} vs ASE {g}");
            }
        }
    }
    // md, minim and descriptor: an atom far outside gives the results of
    // its wrapped twin (to the digits its coordinates keep).
    let frames_of =
        |frames: &[Atoms], id: usize| frames.iter().filter(|f| cfg_id(f) == id as i64).cloned().collect::<Vec<_>>();
    for (far, wrapped) in twins {
        for (what, frames, key) in [("md", &md, "last_op__md_energy"), ("minim", &minim, "last_op__optimize_energy")] {
            let (a, b) = (frames_of(frames, far), frames_of(frames, wrapped));
            assert_eq!(a.len(), b.len(), "{what}: config {far} and its wrapped twin {wrapped}");
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (energy(x, key) - energy(y, key)).abs() < 1e-6,
                    "{what}: config {far} vs {wrapped}: {} vs {}",
                    energy(x, key),
                    energy(y, key)
                );
            }
        }
        let (a, b) = (frames_of(&descriptor, far), frames_of(&descriptor, wrapped));
        let (x, y) = (&a[0].arrays["soap"], &b[0].arrays["soap"]);
        let (x, y) = (x.data.to_f64_vec().unwrap(), y.data.to_f64_vec().unwrap());
        assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-8), "descriptor: config {far} vs {wrapped}");
    }
    // md's first frame of every configuration is ASE's energy.
    for (at, r) in inputs.iter().zip(reference["ase"].as_array().unwrap()) {
        let first = md.iter().find(|f| cfg_id(f) == cfg_id(at)).unwrap();
        let e = r["energy"].as_f64().unwrap();
        assert!((energy(first, "last_op__md_energy") - e).abs() < 1e-8 * e.abs().max(1.0), "md config {}", cfg_id(at));
    }
}

#[test]
fn results_depend_only_on_the_configuration() {
    let Some(py) = autopara_testkit::python_or_skip("order independence") else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    autopara_testkit::run_python_on_files(&py, CORPUS, &[&input]);
    let original = extxyz::read_file(&input).unwrap();
    let n = original.len();
    let reversed: Vec<Atoms> = original.iter().rev().cloned().collect();
    // A fixed shuffle: stride 7 through the corpus (coprime to its length).
    assert_ne!(n % 7, 0);
    let shuffled: Vec<Atoms> = (0..n).map(|k| original[(7 * k + 3) % n].clone()).collect();
    for (op, args) in ops() {
        let reference = by_config(&original, run(op, &args, original.clone(), 1, 1));
        assert_eq!(reference.len(), n, "{op}: every configuration has a result");
        for (name, inputs) in [("original", &original), ("reversed", &reversed), ("shuffled", &shuffled)] {
            for workers in [1, 2] {
                for chunk in [1, 3, 10] {
                    let got = by_config(inputs, run(op, &args, inputs.clone(), workers, chunk));
                    for (id, want) in &reference {
                        assert_eq!(&got[id], want, "{op}, {name} order, {workers} workers, chunk {chunk}: config {id}");
                    }
                }
            }
        }
    }
}
