//! The `ase` calculator against ASE called in-process (the reference Python
//! computes the same calculators at test time), what reaches the Python
//! side, and faults: each costs one calculation, never the calculator.

use autopara_calculators::Ase;
use autopara_core::{ArrayData, Atoms, CalcError, CalcResults, Calculator, CalculatorSpec, Column, Properties, Value};
use autopara_testkit::fixtures::fcc;
use serde_json::{Value as Json, json};
use std::path::PathBuf;

/// A spec for `constructor` run by the reference interpreter, or `None` (skip).
fn spec(test: &str, constructor: &str, kwargs: Json) -> Option<Ase> {
    let python = autopara_testkit::python_or_skip(test)?;
    let mut s = Ase::new(constructor);
    s.kwargs = kwargs.as_object().cloned().unwrap_or_default();
    s.python = Some(python.to_string_lossy().into_owned());
    s.pythonpath = vec![autopara_testkit::bridge::modules()];
    Some(s)
}

fn rattled(mut at: Atoms, amplitude: f64, seed: u64) -> Atoms {
    for (i, p) in at.positions.iter_mut().enumerate() {
        for (k, x) in p.iter_mut().enumerate() {
            *x += amplitude * ((seed as f64 + 1.0) * (3 * i + k) as f64 * 0.7315).sin();
        }
    }
    at
}

/// Periodic cubic, triclinic, a slab and a cluster, of `z` at lattice constant `a`.
fn configs(z: u8, a: f64) -> Vec<Atoms> {
    let cubic = rattled(fcc(z, a, [3, 3, 3]), 0.05, 1);
    let mut tri = rattled(fcc(z, a, [2, 2, 2]), 0.04, 2);
    tri.cell[1][0] += 0.3 * a;
    tri.cell[2][1] -= 0.2 * a;
    let mut slab = rattled(fcc(z, a, [2, 2, 2]), 0.04, 3);
    slab.pbc = [true, true, false];
    slab.cell[2][2] += 8.0;
    let mut cluster = rattled(fcc(z, a, [2, 2, 1]), 0.03, 4);
    cluster.pbc = [false; 3];
    cluster.cell = [[0.0; 3]; 3];
    vec![cubic, tri, slab, cluster]
}

/// In-process ASE on `configs`: energy, forces, stress (periodic ones) and per-atom energies.
const REFERENCE: &str = r#"
import importlib, json, sys
import numpy as np
from ase import Atoms
req = json.load(sys.stdin)
module, _, name = req["constructor"].rpartition(".")
ctor = getattr(importlib.import_module(module), name)
out = []
for c in req["configs"]:
    at = Atoms(numbers=c["numbers"], positions=c["positions"], cell=c["cell"], pbc=c["pbc"])
    at.calc = ctor(*req["args"], **req["kwargs"])
    r = {"energy": at.get_potential_energy(), "forces": at.get_forces().tolist(),
         "energies": at.get_potential_energies().tolist()}
    if all(c["pbc"]):
        r["stress"] = at.get_stress().tolist()
    out.append(r)
print(json.dumps(out))
"#;

fn assert_close(what: &str, ours: &[f64], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    let scale = theirs.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    for (k, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!((a - b).abs() <= 1e-12 * scale, "{what}[{k}]: bridge {a:e} vs ASE {b:e} (scale {scale:e})");
    }
}

fn floats(v: &Json) -> Vec<f64> {
    match v {
        Json::Array(items) => items.iter().flat_map(floats).collect(),
        x => vec![x.as_f64().expect("a number")],
    }
}

/// The bridge equals in-process ASE for `constructor(*args, **kwargs)` on
/// `configs`, all through one worker; returns the calculator's name.
fn compare(test: &str, constructor: &str, args: Json, kwargs: Json, configs: &[Atoms]) -> Option<String> {
    let mut spec = spec(test, constructor, kwargs.clone())?;
    spec.args = args.as_array().cloned().unwrap_or_default();
    let python = PathBuf::from(spec.python.clone().unwrap_or_default());
    let request = json!({
        "constructor": constructor.replace(':', "."),
        "args": args,
        "kwargs": kwargs,
        "configs": configs.iter().map(|a| json!({
            "numbers": a.numbers, "positions": a.positions, "cell": a.cell, "pbc": a.pbc,
        })).collect::<Vec<_>>(),
    });
    let reference = autopara_testkit::run_python_json(&python, REFERENCE, &request.to_string());
    let mut calc = spec.build().expect("the calculator builds");
    let mut out = CalcResults::default();
    // Twice over, so that the worker sees new numbers, a new size and repeated positions.
    let rounds = if configs.len() > 1 { 2 } else { 1 };
    for round in 0..rounds {
        for (k, (at, theirs)) in configs.iter().zip(reference.as_array().unwrap()).enumerate() {
            let request = Properties { stress: at.pbc.iter().all(|&p| p), ..Properties::ALL };
            calc.calculate(at, request, &mut out).unwrap_or_else(|e| panic!("{test} config {k}: {e}"));
            let what = |p: &str| format!("{test} {constructor} config {k} round {round} {p}");
            assert_close(&what("energy"), &[out.energy], &[theirs["energy"].as_f64().unwrap()]);
            assert_close(&what("forces"), &out.forces.concat(), &floats(&theirs["forces"]));
            assert_close(&what("energies"), &out.energies, &floats(&theirs["energies"]));
            if request.stress {
                assert_close(&what("stress"), &out.stress, &floats(&theirs["stress"]));
            }
        }
    }
    Some(calc.name().to_string())
}

#[test]
fn emt_lennard_jones_and_morse_equal_ase_in_process() {
    let cu = configs(29, 3.61);
    let name = compare("ase_bridge emt", "ase.calculators.emt.EMT", json!([]), json!({}), &cu);
    assert!(name.is_none_or(|n| n == "EMT"));
    let ar = configs(18, 5.26);
    let lj = json!({"sigma": 3.4, "epsilon": 0.0104, "rc": 8.5, "smooth": true});
    compare("ase_bridge lj", "ase.calculators.lj:LennardJones", json!([]), lj, &ar);
    let morse = json!({"epsilon": 0.35, "r0": 2.55, "rho0": 4.5});
    compare("ase_bridge morse", "ase.calculators.morse.MorsePotential", json!([]), morse, &cu);
}

/// Stillinger-Weber silicon through quippy, as in QUIP's own tests.
const SW: &str = r#"<SW_params n_types="1" label="PRB_31_plus_H">
<per_type_data type="1" atomic_num="14" />
<per_pair_data atnum_i="14" atnum_j="14" AA="7.049556277" BB="0.6022245584"
      p="4" q="0" a="1.80" sigma="2.0951" eps="2.1675" />
<per_triplet_data atnum_c="14" atnum_j="14" atnum_k="14"
      lambda="21.0" gamma="1.20" eps="2.1675" />
</SW_params>"#;

#[test]
fn quippy_stillinger_weber_equals_quippy_in_process() {
    // Diamond: fcc and the same shifted by a quarter of the cube's diagonal.
    let mut diamond = fcc(14, 5.43, [2, 2, 2]);
    let shifted: Vec<[f64; 3]> = diamond.positions.iter().map(|p| p.map(|x| x + 5.43 / 4.0)).collect();
    diamond.numbers.extend(vec![14; shifted.len()]);
    diamond.positions.extend(shifted);
    let si = [rattled(diamond, 0.05, 5)];
    let name =
        compare("ase_bridge quippy", "quippy.potential.Potential", json!(["IP SW"]), json!({"param_str": SW}), &si);
    assert!(name.is_none_or(|n| n == "Potential"));
}

fn probe_config(n: usize) -> Atoms {
    let mut at = Atoms::new(vec![1; n], (0..n).map(|i| [i as f64, 0.0, 0.0]).collect());
    at.numbers[0] = 8;
    at
}

fn probe(test: &str) -> Option<Box<dyn Calculator>> {
    spec(test, "bridge_test_calculators.Probe", json!({})).map(|s| s.build().expect("Probe builds"))
}

#[test]
fn info_and_arrays_reach_python_and_follow_each_config() {
    let Some(mut calc) = probe("ase_bridge info") else { return };
    let mut out = CalcResults::default();
    let ef = Properties { energies: true, ..Properties::ENERGY_FORCES };

    let mut a = probe_config(3);
    a.info.insert("shift".into(), Value::Float(0.25));
    a.info.insert("label".into(), Value::Str("four".into()));
    a.arrays.insert("initial_charges".into(), Column::scalars(vec![0.5, -0.25, 1.0]));
    a.arrays.insert("initial_magmoms".into(), Column::scalars(vec![1.5, 0.0, -2.0]));
    a.arrays.insert("weights".into(), Column { width: 1, data: ArrayData::Int(vec![7, 8, 9]) });
    calc.calculate(&a, ef, &mut out).unwrap();
    assert_eq!(out.energy, 3.0 + 0.25 + 1.25);
    assert_eq!(out.forces, vec![[1.5, 8.0, 4.0], [0.0, 1.0, 4.0], [-2.0, 1.0, 4.0]]);
    assert_eq!(out.energies, vec![7.0, 8.0, 9.0]);

    // The next config has none of them (same size and numbers): nothing stale remains.
    let b = probe_config(3);
    calc.calculate(&b, ef, &mut out).unwrap();
    assert_eq!(out.energy, 3.0);
    assert_eq!(out.forces, vec![[0.0, 8.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]);
    assert!(!out.computed.energies, "no weights, no per-atom energies");

    // Info changed between calls on the same atoms (an md stage) reaches Python too.
    let mut c = b.clone();
    c.info.insert("shift".into(), Value::Int(2));
    calc.calculate(&c, ef, &mut out).unwrap();
    assert_eq!(out.energy, 5.0);
    // A new size with arrays; then back.
    let mut d = probe_config(5);
    d.arrays.insert("initial_charges".into(), Column::scalars(vec![1.0; 5]));
    calc.calculate(&d, ef, &mut out).unwrap();
    assert_eq!((out.energy, out.forces.len()), (10.0, 5));
    calc.calculate(&a, ef, &mut out).unwrap();
    assert_eq!(out.energy, 4.5);
}

/// Requests and replies larger than the worker's 64 KiB input buffer (up to
/// 20,000 atoms: numbers, per-atom arrays and positions of about 1 MB), with
/// small ones between them, arrive whole and in order.
#[test]
fn messages_of_any_size_cross_the_pipes() {
    let Some(mut calc) = probe("ase_bridge sizes") else { return };
    let mut out = CalcResults::default();
    for n in [3, 5000, 2, 20_000, 20_000, 7, 3000] {
        let mut at = probe_config(n);
        let charges: Vec<f64> = (0..n).map(|i| (i % 7) as f64 * 0.5).collect();
        let magmoms: Vec<f64> = (0..n).map(|i| i as f64).collect();
        at.arrays.insert("initial_charges".into(), Column::scalars(charges.clone()));
        at.arrays.insert("initial_magmoms".into(), Column::scalars(magmoms.clone()));
        calc.calculate(&at, Properties::ENERGY_FORCES, &mut out).unwrap_or_else(|e| panic!("{n} atoms: {e}"));
        assert_eq!(out.energy, n as f64 + charges.iter().sum::<f64>(), "{n} atoms: energy");
        assert_eq!(out.forces.len(), n);
        for (i, f) in out.forces.iter().enumerate() {
            assert_eq!([f[0], f[1]], [magmoms[i], f64::from(at.numbers[i])], "{n} atoms: force {i}");
        }
    }
}

/// ASE in process, one calculator attached to each configuration in turn
/// (as wfl's md and calculate do) and asked for energy and forces, reset
/// when the configuration's numbers, info or arrays were replaced (`new`):
/// the system_changes its calculations were given, via `log`.
const CHANGES_REFERENCE: &str = r#"
import json, sys
from ase import Atoms
from bridge_test_calculators import ChangesLog
req = json.load(sys.stdin)
calc = ChangesLog(log=req["log"])
for c in req["steps"]:
    at = Atoms(numbers=c["numbers"], positions=c["positions"], cell=c["cell"], pbc=c["pbc"])
    for k, v in c["arrays"].items():
        at.arrays[k] = __import__("numpy").array(v)
    if c["new"]:
        calc.reset()
    at.calc = calc
    at.get_potential_energy()
    at.get_forces()
"#;

/// The calculator is told what changed as ASE's `get_property` tells it
/// (`check_state`: the positions, cell or pbc that changed, and no
/// calculation when nothing did); a new configuration (new numbers, info or
/// arrays) is all changes, as for a calculator just reset, so that no result
/// depends on what the worker computed before; no result of an earlier state
/// is handed back. Checked against ASE in process.
#[test]
fn calculations_see_the_system_changes_ase_would_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, ase_log) = (dir.path().join("changes.log"), dir.path().join("ase.log"));
    let Some(spec) = spec("ase_bridge changes", "bridge_test_calculators.ChangesLog", json!({"log": log})) else {
        return;
    };
    let mut a = probe_config(3);
    a.cell = [[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]];
    a.pbc = [true; 3];
    let mut steps = vec![a.clone(), a.clone()];
    let mut change = |f: &dyn Fn(&mut Atoms)| {
        let mut next = steps.last().unwrap().clone();
        f(&mut next);
        steps.push(next);
    };
    change(&|a| a.positions[1][0] += 0.5);
    change(&|a| a.cell[0][0] = 6.0);
    change(&|a| a.pbc[2] = false);
    change(&|a| {
        a.positions[0][0] += 0.25;
        a.cell[1][1] = 7.0;
    });
    change(&|a| a.numbers[1] = 6);
    change(&|a| _ = a.info.insert("charge".into(), Value::Int(1)));
    change(&|a| _ = a.arrays.insert("initial_charges".into(), Column::scalars(vec![0.5, 0.0, -0.5])));
    change(&|a| _ = a.arrays.insert("initial_charges".into(), Column::scalars(vec![0.5, 0.0, -0.25])));
    change(&|a| _ = a.arrays.insert("initial_magmoms".into(), Column::scalars(vec![1.0, 0.0, 0.0])));
    change(&|a| a.positions[2][1] = 0.125);
    // Another configuration of the same numbers without info or arrays, then one of another size.
    change(&|a| {
        a.info.clear();
        a.arrays.clear();
        a.positions[0][2] = 1.0;
    });
    change(&|a| *a = probe_config(4));
    change(&|a| *a = probe_config(4));

    let mut calc = spec.build().expect("ChangesLog builds");
    let mut out = CalcResults::default();
    for (k, at) in steps.iter().enumerate() {
        calc.calculate(at, Properties::ENERGY_FORCES, &mut out).unwrap();
        assert_eq!(out.energy, at.positions.iter().map(|p| p[0]).sum::<f64>(), "step {k}");
    }
    let request = json!({
        "log": ase_log,
        "steps": steps.iter().enumerate().map(|(k, a)| json!({
            "numbers": a.numbers, "positions": a.positions, "cell": a.cell, "pbc": a.pbc,
            "arrays": a.arrays.iter().map(|(name, c)| match &c.data {
                ArrayData::Float(v) => (name.clone(), json!(v)),
                other => panic!("{other:?}"),
            }).collect::<serde_json::Map<_, _>>(),
            "new": k > 0 && (a.numbers != steps[k - 1].numbers || a.info != steps[k - 1].info
                || a.arrays != steps[k - 1].arrays),
        })).collect::<Vec<_>>(),
    });
    let python = PathBuf::from(spec.python.clone().unwrap_or_default());
    let script =
        format!("import sys; sys.path.insert(0, {:?})\n{CHANGES_REFERENCE}", autopara_testkit::bridge::modules());
    autopara_testkit::run_python(&python, &script, &request.to_string());
    let read = |p: &std::path::Path| std::fs::read_to_string(p).expect("read log");
    let (ours, theirs) = (read(&log), read(&ase_log));
    assert_eq!(ours, theirs, "the bridge's system_changes (left) against ASE's (right)");
    // The reference is not vacuous: it saw each kind of change.
    for name in ["cell", "pbc", "positions", "cell positions"] {
        assert!(theirs.lines().any(|l| l == name), "no step changed only {name}: {theirs}");
    }
    let all = "cell initial_charges initial_magmoms numbers pbc positions";
    assert_eq!(theirs.lines().filter(|&l| l == all).count(), 8, "the first and the 7 new configurations: {theirs}");
}

/// The worker's numerical libraries get one thread each unless autopara's
/// environment says otherwise, or the spec's `threads`.
#[test]
fn workers_get_the_thread_settings() {
    use autopara_calculators::THREAD_VARIABLES;
    let Some(mut spec) = spec("ase_bridge threads", "bridge_test_calculators.ThreadSettings", json!({})) else {
        return;
    };
    let seen = |spec: &Ase| {
        let mut calc = spec.build().expect("ThreadSettings builds");
        let mut out = CalcResults::default();
        calc.calculate(&probe_config(2), Properties::ENERGY_FORCES, &mut out).unwrap();
        vec![out.forces[0][0], out.forces[0][1], out.forces[0][2], out.forces[1][0]]
    };
    // The rule, for any environment of autopara's.
    let none = |_: &str| None;
    let omp = |v: &str| (v == "OMP_NUM_THREADS").then(|| "4".into());
    let expect = |n: &str| THREAD_VARIABLES.iter().map(|&v| (v, n.to_string())).collect::<Vec<_>>();
    assert_eq!(spec.thread_environment(none), expect("1"));
    assert_eq!(spec.thread_environment(omp), vec![], "a variable of the user's leaves all as they are");
    spec.threads = Some(3);
    assert_eq!(spec.thread_environment(omp), expect("3"));
    // And in the worker.
    assert_eq!(seen(&spec), vec![3.0; 4]);
    spec.threads = None;
    if THREAD_VARIABLES.iter().all(|v| std::env::var_os(v).is_none()) {
        assert_eq!(seen(&spec), vec![1.0; 4]);
    }
    spec.threads = Some(0);
    let err = spec.validate().expect_err("0 threads").to_string();
    assert!(err.contains("threads"), "{err}");
}

/// Runs `fault` on a probe config, then a good config; returns the error and
/// whether the worker process was replaced.
fn fault_then_good(calc: &mut autopara_calculators::AseCalculator, fault: &str) -> (String, bool) {
    let mut out = CalcResults::default();
    let before = calc.pid();
    let mut bad = probe_config(2);
    bad.info.insert("fault".into(), Value::Str(fault.into()));
    let err = calc.calculate(&bad, Properties::ENERGY_FORCES, &mut out).expect_err(fault).to_string();
    let good = probe_config(4);
    calc.calculate(&good, Properties::ENERGY_FORCES, &mut out).unwrap_or_else(|e| panic!("after {fault}: {e}"));
    assert_eq!(out.energy, 4.0, "after {fault}");
    (err, calc.pid() != before)
}

#[test]
fn faults_cost_one_calculation() {
    let Some(mut s) = spec("ase_bridge faults", "bridge_test_calculators:Probe", json!({})) else { return };
    s.timeout = Some(3.0);
    let mut calc = s.start().expect("Probe starts");
    let mut out = CalcResults::default();
    calc.calculate(&probe_config(2), Properties::ENERGY_FORCES, &mut out).unwrap();

    let (err, replaced) = fault_then_good(&mut calc, "raise");
    assert!(err.contains("Probe raised ValueError: refusing a config of 2 atoms"), "{err}");
    assert!(err.contains("probe: about to fail") && err.contains("Traceback"), "stderr tail: {err}");
    assert!(!replaced, "an exception keeps the worker");

    let (err, replaced) = fault_then_good(&mut calc, "exit");
    assert!(err.contains("exited (exit status: 3)"), "{err}");
    assert!(replaced);

    let (err, replaced) = fault_then_good(&mut calc, "segv");
    assert!(err.contains("signal 11 (SIGSEGV)") && err.contains("Fatal Python error"), "{err}");
    assert!(replaced);

    let (err, replaced) = fault_then_good(&mut calc, "sleep");
    assert!(err.contains("no result within the timeout of 3 s"), "{err}");
    assert!(replaced);

    // Prints of the calculator go to stderr, not into the protocol.
    let mut noisy = probe_config(3);
    noisy.info.insert("fault".into(), Value::Str("print".into()));
    calc.calculate(&noisy, Properties::ENERGY_FORCES, &mut out).unwrap();
    assert_eq!(out.energy, 3.0);
}

#[test]
fn a_killed_worker_is_replaced() {
    let Some(s) = spec("ase_bridge killed", "bridge_test_calculators.Probe", json!({})) else { return };
    let mut calc = s.start().unwrap();
    let pid = calc.pid().unwrap();
    std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    let mut out = CalcResults::default();
    let err = calc.calculate(&probe_config(2), Properties::ENERGY_FORCES, &mut out).unwrap_err().to_string();
    assert!(err.contains("signal 9 (SIGKILL"), "{err}");
    calc.calculate(&probe_config(2), Properties::ENERGY_FORCES, &mut out).unwrap();
    assert_ne!(calc.pid(), Some(pid));
}

#[test]
fn construction_failures_are_construction_errors() {
    let Some(base) = spec("ase_bridge construction", "bridge_test_calculators.raising", json!({"model": "x"})) else {
        return;
    };
    let cases = [
        ("bridge_test_calculators.raising", "the constructor raised RuntimeError: no model file for ['model']"),
        ("no_such_module_here.Calc", "cannot import it with"),
        ("bridge_test_calculators.Missing", "AttributeError"),
        ("bridge_test_calculators.not_a_calculator", "returned a int, not an ASE calculator"),
    ];
    for (constructor, expected) in cases {
        let mut s = base.clone();
        s.constructor = constructor.into();
        match s.build() {
            Err(CalcError::Construction(m)) => {
                assert!(m.contains(expected) && m.contains(constructor), "{constructor}: {m}")
            }
            Err(other) => panic!("{constructor}: not a construction error: {other}"),
            Ok(_) => panic!("{constructor} built"),
        }
    }
    let mut s = base.clone();
    s.python = Some("/nonexistent/python3".into());
    let Err(CalcError::Construction(m)) = s.build() else { panic!("a missing interpreter builds") };
    assert!(m.contains("cannot start the Python interpreter /nonexistent/python3"), "{m}");
}

#[test]
fn spec_fields_are_validated() {
    let bad = [
        (json!({"type": "ase", "constructor": "EMT"}), "constructor"),
        (json!({"type": "ase", "constructor": "a.B", "timeout": 0}), "timeout"),
        (json!({"type": "ase", "constructor": "a.B", "python": ""}), "python"),
        (json!({"type": "ase", "constructor": "a.B", "pythonpath": [""]}), "pythonpath"),
    ];
    for (v, field) in bad {
        let spec: Box<dyn CalculatorSpec> = serde_json::from_value(v.clone()).unwrap();
        match spec.validate() {
            Err(CalcError::InvalidSpec { field: f, .. }) => assert_eq!(f, field, "{v}"),
            other => panic!("{v}: {other:?}"),
        }
    }
    let unknown =
        serde_json::from_value::<Box<dyn CalculatorSpec>>(json!({"type": "ase", "constructor": "a.B", "x": 1}));
    assert!(unknown.is_err());
}

/// A worker written from `docs/ase-bridge.md` alone (plain Python, no ASE, no
/// numpy), standing in for a code in another language: it skips the Python
/// worker's code autopara sends first, then serves a harmonic potential of
/// the documented messages. Energy `0.5 k Σ|r|² + Σ Z + Σ q + len(label) +
/// flag + count`, with `k`, `label`, `flag` and `count` from `info` and `q`
/// the `charges` array; forces `-k r`; stress the cell's diagonal, then
/// `a[1][0]` plus the pbc flags as digits, `a[2][1]` and `a[0][1]`; per-atom
/// energies `0.5 k |r_i|²` plus the last column of the `v` array (n x 2);
/// free energy: 1000 x the `NUMS` and 1 x the `META` messages received so far.
const DOCUMENTED_WORKER: &str = r#"
import json, struct, sys
inp, out = sys.stdin.buffer, sys.stdout.buffer

def read(k):
    b = b""
    while len(b) < k:
        c = inp.read(k - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b

def send(tag, payload):
    out.write(tag + struct.pack("<Q", len(payload)) + payload)
    out.flush()

def entries(b, at):
    (count,) = struct.unpack_from("<I", b, at); at += 4
    got = {}
    for _ in range(count):
        (klen,) = struct.unpack_from("<I", b, at); at += 4
        key = b[at:at + klen].decode(); at += klen
        kind, dims = b[at], b[at + 1]; at += 2
        shape = struct.unpack_from(f"<{dims}Q", b, at); at += 8 * dims
        size = 1
        for s in shape:
            size *= s
        values = []
        for _ in range(size):
            if kind == 0:
                values.append(bool(b[at])); at += 1
            elif kind in (1, 2):
                values.append(struct.unpack_from("<q" if kind == 1 else "<d", b, at)[0]); at += 8
            else:
                (slen,) = struct.unpack_from("<I", b, at); at += 4
                values.append(b[at:at + slen].decode()); at += slen
        if dims == 2:
            values = [values[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]
        got[key] = values[0] if dims == 0 else values
    return got, at

read(int(sys.argv[-1]))  # the Python worker's code, which this worker does not run
numbers, info, arrays = [], {}, {}
received = {b"NUMS": 0, b"META": 0}
while True:
    head = inp.read(12)
    if len(head) < 12:
        break
    tag, (size,) = head[:4], struct.unpack("<Q", head[4:])
    body = read(size)
    received[tag] = received.get(tag, 0) + 1
    if tag == b"INIT":
        assert json.loads(body)["protocol"] == 1
        send(b"REDY", json.dumps({"name": "Spring"}).encode())
    elif tag == b"NUMS":
        (n,) = struct.unpack_from("<I", body)
        numbers, info, arrays = struct.unpack_from(f"<{n}i", body, 4), {}, {}
    elif tag == b"META":
        info, at = entries(body, 0)
        arrays, _ = entries(body, at)
    elif tag == b"CALC":
        wanted, n = struct.unpack_from("<II", body)
        pbc = body[8:11]
        cell = struct.unpack_from("<9d", body, 16)
        r = struct.unpack_from(f"<{3 * n}d", body, 88)
        k = info.get("k", 1.0)
        per_atom = [0.5 * k * sum(x * x for x in r[3 * i:3 * i + 3]) for i in range(n)]
        energy = (sum(per_atom) + sum(numbers) + sum(arrays.get("charges", [])) + len(info.get("label", ""))
                  + info.get("flag", False) + info.get("count", 0))
        present, tail = 1 | 4, struct.pack(f"<{3 * n}d", *[-k * x for x in r])
        if wanted & 4:
            present |= 8
            tail += struct.pack("<6d", cell[0], cell[4], cell[8], cell[3] + pbc[0] * 10 + pbc[1] * 100 + pbc[2] * 1000, cell[7], cell[1])
        if wanted & 8:
            present |= 16
            extra = [row[-1] for row in arrays.get("v", [[0.0]] * n)]
            tail += struct.pack(f"<{n}d", *[e + x for e, x in zip(per_atom, extra)])
        present |= 2
        free = 1000 * received[b"NUMS"] + received[b"META"]
        send(b"RSLT", struct.pack("<IIdd", present, n, energy, free) + tail)
"#;

#[test]
fn a_worker_written_from_the_protocol_docs_serves_autopara() {
    let Some(python) = autopara_testkit::python_or_skip("ase_bridge documented protocol") else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("worker.py");
    std::fs::write(&script, DOCUMENTED_WORKER).unwrap();
    // The spec's `python` is an executable that autopara runs as `python -c BOOTSTRAP LENGTH`.
    let exe = dir.path().join("spring-worker");
    let text = format!("#!/bin/sh\nexec '{}' '{}' \"$@\"\n", python.display(), script.display());
    autopara_testkit::bridge::write_executable(&exe, &text);
    let mut spec = Ase::new("any.Thing");
    spec.python = Some(exe.to_string_lossy().into_owned());
    let mut calc = spec.start().expect("the documented worker starts");
    assert_eq!(calc.name(), "Spring");

    let mut a = Atoms::new(vec![29, 1, 8], vec![[0.5, -1.0, 2.0], [1.5, 0.25, -0.5], [3.0, 2.0, 1.0]]);
    a.cell = [[4.0, 0.0, 0.0], [0.5, 5.0, 0.0], [0.0, 0.25, 6.0]];
    a.pbc = [true, false, true];
    a.info.insert("k".into(), Value::Float(2.0));
    a.info.insert("label".into(), Value::Str("fünf".into()));
    a.info.insert("flag".into(), Value::Bool(true));
    a.info.insert("count".into(), Value::Int(-7));
    a.arrays.insert("charges".into(), Column::scalars(vec![0.5, -0.25, 1.0]));
    a.arrays.insert("v".into(), Column { width: 2, data: ArrayData::Float(vec![9.0, 1.0, 9.0, 2.0, 9.0, 3.0]) });
    let r2: Vec<f64> = a.positions.iter().map(|p| p.iter().map(|x| x * x).sum()).collect();
    let mut out = CalcResults::default();
    for step in 0..2 {
        // The second call sends only CALC: the worker keeps numbers, info and arrays.
        calc.calculate(&a, Properties { stress: true, ..Properties::ALL }, &mut out).unwrap();
        assert_eq!(out.free_energy, Some(1001.0), "NUMS and META once, step {step}");
        let e = r2.iter().sum::<f64>() + 38.0 + 1.25 + 4.0 + 1.0 - 7.0;
        assert_eq!(out.energy, e, "step {step}");
        let forces: Vec<f64> = a.positions.concat().iter().map(|x| -2.0 * x).collect();
        assert_eq!(out.forces.concat(), forces);
        assert_eq!(out.stress, [4.0, 5.0, 6.0, 1010.5, 0.25, 0.0]);
        assert_eq!(out.energies, vec![r2[0] + 1.0, r2[1] + 2.0, r2[2] + 3.0]);
    }
    // New numbers and no info: NUMS starts the configuration afresh.
    let b = Atoms::new(vec![2, 2], vec![[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]]);
    calc.calculate(&b, Properties::ENERGY_FORCES, &mut out).unwrap();
    assert_eq!(out.energy, 0.5 * 10.0 + 4.0);
    assert_eq!(out.forces, vec![[-1.0, 0.0, 0.0], [0.0, 0.0, -3.0]]);
    assert_eq!(out.free_energy, Some(2001.0), "a second NUMS, no META for a config without info or arrays");
    // The same numbers with new info: META alone.
    let mut c = b.clone();
    c.info.insert("k".into(), Value::Float(4.0));
    calc.calculate(&c, Properties::ENERGY_FORCES, &mut out).unwrap();
    assert_eq!((out.energy, out.free_energy), (2.0 * 10.0 + 4.0, Some(2002.0)));
}
