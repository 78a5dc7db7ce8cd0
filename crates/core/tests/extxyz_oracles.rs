//! extxyz against its references, computed at test time in the reference
//! Python: ASE 3.28 (`ase.io.read`/`ase.io.write`) and the libAtoms C parser
//! (PyPI `extxyz`, `read_dicts`).
//!
//! Values are compared exactly (floats bit for bit, as their `repr`), through
//! one typed JSON encoding of frames on both sides. Where ASE moves values into
//! a calculator (`energy`, `stress`, `forces`, ...) or a constraint
//! (`move_mask`), the Python side puts them back into info and arrays.

mod common;

use autopara_core::{ArrayData, Atoms, Column, Value, extxyz};
use autopara_testkit::{python_or_skip, run_python_json};
use serde_json::{Value as J, json};

/// Python helpers: the typed encoding and frame conversion for ASE Atoms and
/// libAtoms Frames. `_JSON` strings (ASE's encoding of lists and matrices) are
/// decoded for libAtoms, which leaves them as strings.
const PY_ENCODE: &str = r#"
import json, sys
import numpy as np
from ase.io.extxyz import per_atom_properties
from ase.stress import voigt_6_to_full_3x3_stress
from ase.constraints import FixAtoms
from ase.data import atomic_numbers

def enc(v):
    if isinstance(v, (bool, np.bool_)): return {"t": "b", "v": bool(v)}
    if isinstance(v, (int, np.integer)): return {"t": "i", "v": int(v)}
    if isinstance(v, (float, np.floating)): return {"t": "f", "v": repr(float(v))}
    if isinstance(v, str):
        if v.startswith("_JSON "):
            d = json.loads(v[6:])
            return {"t": "json", "v": d} if isinstance(d, dict) else enc(np.array(d))
        return {"t": "s", "v": v}
    if isinstance(v, dict): return {"t": "json", "v": v}
    a = np.asarray(v)
    shape, flat = list(a.shape), a.ravel().tolist()
    if a.dtype.kind == 'b': return {"t": "ab", "shape": shape, "v": [bool(x) for x in flat]}
    if a.dtype.kind in 'iu': return {"t": "ai", "shape": shape, "v": [int(x) for x in flat]}
    if a.dtype.kind == 'f': return {"t": "af", "shape": shape, "v": [repr(float(x)) for x in flat]}
    return {"t": "as", "shape": shape, "v": [str(x) for x in flat]}

def from_ase(at):
    info = {k: enc(v) for k, v in at.info.items()}
    arrays = {k: enc(v) for k, v in at.arrays.items() if k not in ("numbers", "positions")}
    if at.calc is not None:
        for k, v in at.calc.results.items():
            if k in per_atom_properties:
                arrays[k] = enc(v)
            else:
                info[k] = enc(voigt_6_to_full_3x3_stress(v) if k == "stress" else v)
    for c in at.constraints:
        assert isinstance(c, FixAtoms)
        mask = np.ones(len(at), bool)
        mask[c.index] = False
        arrays["move_mask"] = enc(mask)
    return {"numbers": at.numbers.tolist(), "positions": enc(at.positions), "cell": enc(at.cell.array),
            "pbc": [bool(p) for p in at.pbc], "info": info, "arrays": arrays}

def from_libatoms(fr, skip=()):
    arrays = dict(fr.arrays)
    species, z, pos = arrays.pop("species", None), arrays.pop("Z", None), arrays.pop("pos")
    numbers = z.tolist() if z is not None else [atomic_numbers[s] for s in species]
    info = {k: enc(v) for k, v in fr.info.items() if k not in skip}
    return {"numbers": numbers, "positions": enc(pos), "cell": enc(np.asarray(fr.cell).T),
            "pbc": [bool(p) for p in fr.pbc], "info": info, "arrays": {k: enc(v) for k, v in arrays.items()}}
"#;

fn enc_data(shape: Vec<usize>, data: &ArrayData) -> J {
    match data {
        ArrayData::Bool(v) => json!({"t": "ab", "shape": shape, "v": v}),
        ArrayData::Int(v) => json!({"t": "ai", "shape": shape, "v": v}),
        ArrayData::Float(v) => {
            json!({"t": "af", "shape": shape, "v": v.iter().map(|x| py_repr(*x)).collect::<Vec<_>>()})
        }
        ArrayData::Str(v) => json!({"t": "as", "shape": shape, "v": v}),
    }
}

/// A float as text; [`normalise`] re-parses both sides, so spellings may differ.
fn py_repr(x: f64) -> String {
    format!("{x:?}")
}

fn enc_value(v: &Value) -> J {
    match v {
        Value::Bool(b) => json!({"t": "b", "v": b}),
        Value::Int(i) => json!({"t": "i", "v": i}),
        Value::Float(x) => json!({"t": "f", "v": py_repr(*x)}),
        Value::Str(s) => match s.strip_prefix("_JSON ").and_then(|j| serde_json::from_str::<J>(j).ok()) {
            Some(d @ J::Object(_)) => json!({"t": "json", "v": d}),
            _ => json!({"t": "s", "v": s}),
        },
        Value::Array { shape, data } => enc_data(shape.clone(), data),
    }
}

fn enc_column(c: &Column) -> J {
    let shape = if c.width == 1 { vec![c.rows()] } else { vec![c.rows(), c.width] };
    enc_data(shape, &c.data)
}

fn enc_frame(a: &Atoms) -> J {
    let pos: Vec<f64> = a.positions.iter().flatten().copied().collect();
    let cell: Vec<f64> = a.cell.iter().flatten().copied().collect();
    json!({
        "numbers": a.numbers,
        "positions": enc_data(vec![a.len(), 3], &ArrayData::Float(pos)),
        "cell": enc_data(vec![3, 3], &ArrayData::Float(cell)),
        "pbc": a.pbc,
        "info": a.info.iter().map(|(k, v)| (k.clone(), enc_value(v))).collect::<serde_json::Map<_, _>>(),
        "arrays": a.arrays.iter().map(|(k, c)| (k.clone(), enc_column(c))).collect::<serde_json::Map<_, _>>(),
    })
}

/// The frames encoded without the info keys `skip` (values the libAtoms
/// parser reads differently: `nan` and `-inf` become strings there).
fn enc_frames_without(frames: &[Atoms], skip: &[&str]) -> Vec<J> {
    frames
        .iter()
        .map(|a| {
            let mut a = a.clone();
            for k in skip {
                a.info.shift_remove(*k);
            }
            enc_frame(&a)
        })
        .collect()
}

/// Normalises float spellings (`1e-12` vs `1e-12`, `1e+21` vs `1e21`) by
/// re-parsing every float string, so that comparison is by value, bit for bit.
fn normalise(v: &mut J) {
    match v {
        J::Object(m) => {
            let is_float = matches!(m.get("t").and_then(J::as_str), Some("f" | "af"));
            for (k, x) in m.iter_mut() {
                if is_float && k == "v" {
                    match x {
                        J::String(s) => *s = canon(s),
                        J::Array(a) => a.iter_mut().for_each(|e| {
                            if let J::String(s) = e {
                                *s = canon(s)
                            }
                        }),
                        _ => {}
                    }
                } else {
                    normalise(x);
                }
            }
        }
        J::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

fn canon(s: &str) -> String {
    match s.parse::<f64>() {
        Ok(x) if x.is_nan() => "nan".into(),
        Ok(x) => format!("{:016x}", x.to_bits()),
        Err(_) => format!("unparsable:{s}"),
    }
}

/// Asserts two encoded frame lists are equal, reporting the first difference by key.
fn assert_same(ours: &[J], theirs: &[J], who: &str) {
    assert_eq!(ours.len(), theirs.len(), "{who}: frame counts differ");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        let (mut a, mut b) = (a.clone(), b.clone());
        normalise(&mut a);
        normalise(&mut b);
        if a == b {
            continue;
        }
        for field in ["numbers", "positions", "cell", "pbc"] {
            assert_eq!(a[field], b[field], "{who}: frame {i}: {field}");
        }
        for group in ["info", "arrays"] {
            let (ma, mb) =
                (a[group].as_object().cloned().unwrap_or_default(), b[group].as_object().cloned().unwrap_or_default());
            let mut ka: Vec<_> = ma.keys().collect();
            let mut kb: Vec<_> = mb.keys().collect();
            ka.sort();
            kb.sort();
            assert_eq!(ka, kb, "{who}: frame {i}: {group} keys");
            for k in ka {
                assert_eq!(ma[k], mb[k], "{who}: frame {i}: {group}[{k}]");
            }
        }
    }
}

/// ASE writes a varied set of frames; we read the file and must get exactly
/// what ASE and the libAtoms parser read from it.
#[test]
fn we_read_what_ase_writes() {
    let Some(py) = python_or_skip("we_read_what_ase_writes") else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ase.xyz");
    let script = format!(
        r#"{PY_ENCODE}
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
import ase.io, extxyz
path = sys.stdin.read().strip()
rng = np.random.default_rng(7)

cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
cu.rattle(0.05, seed=1)
cu.info["config_type"] = "bulk"
cu.calc = SinglePointCalculator(cu, energy=-12.5, forces=rng.normal(size=(len(cu), 3)), stress=rng.normal(size=6))

m = molecule("CH3CH2OH")
n = len(m)
m.info.update(step=7, temperature=300.5, tiny=1.5e-12, big=-2.5e21, converged=True, failed=False,
              label='ethanol "quoted" with spaces', word="plain",
              ints=np.array([1, -2, 3]), floats=np.array([0.5, 1e-12, -3.25]), bools=np.array([True, False, True]),
              names=["a", "b c"], mat=np.arange(6).reshape(2, 3), fmat=rng.normal(size=(3, 2)),
              virial=np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.5]]), meta={{"x": 1, "y": [1, 2]}},
              nan_energy=float("nan"))
m.set_tags(np.arange(n))
m.set_initial_charges(rng.normal(size=n))
m.set_masses(m.get_masses() * 1.5)
m.set_momenta(rng.normal(size=(n, 3)))
m.new_array("flag", np.arange(n) % 2 == 0)
m.new_array("kind", np.array(["x%d" % i for i in range(n)]))
m.new_array("tensor", rng.normal(size=(n, 9)))
from ase.constraints import FixAtoms
m.set_constraint(FixAtoms(indices=[0, 2]))

t = Atoms("SiO2", positions=rng.normal(size=(3, 3)), cell=[[5.0, 0.0, 0.0], [1.0, 4.0, 0.0], [0.5, 0.3, 6.0]],
          pbc=[True, False, True])
t.info["REF_energy"] = -5.0
t.new_array("REF_forces", rng.normal(size=(3, 3)))

p = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], pbc=True)

ase.io.write(path, [cu, m, t, p], format="extxyz")
ase_frames = [from_ase(a) for a in ase.io.read(path, ":")]
lib_frames = [from_libatoms(f, skip=("nan_energy",)) for f in extxyz.read_dicts(path)]
print(json.dumps({{"ase": ase_frames, "libatoms": lib_frames}}))
"#
    );
    let out = run_python_json(&py, &script, &file.display().to_string());
    let ours = extxyz::read_file(&file).unwrap();
    assert_eq!(ours.len(), 4);
    // Spot checks of the mapping itself, independent of the encodings.
    assert_eq!(ours[0].info["config_type"], Value::Str("bulk".into()));
    assert!(matches!(&ours[0].info["stress"], Value::Array { shape, .. } if shape == &[3, 3]));
    assert_eq!(
        ours[1].arrays["move_mask"].data,
        ArrayData::Bool(vec![false, true, false, true, true, true, true, true, true])
    );
    assert_eq!(ours[1].info["meta"], Value::Str(r#"_JSON {"x": 1, "y": [1, 2]}"#.into()));
    assert_eq!(ours[2].pbc, [true, false, true]);
    assert_eq!(ours[3].pbc, [true; 3]);
    assert_eq!(ours[3].cell, [[0.0; 3]; 3]);

    let enc: Vec<J> = ours.iter().map(enc_frame).collect();
    assert_same(&enc, out["ase"].as_array().unwrap(), "ASE");
    let enc_lib = enc_frames_without(&ours, &["nan_energy"]);
    assert_same(&enc_lib, out["libatoms"].as_array().unwrap(), "libAtoms");
}

/// Frames as ASE can represent them: every value round-trips through ASE's
/// reader (no 1-element arrays, which ASE reads as scalars; no empty strings,
/// which ASE reads as empty arrays; no 9-element vectors, which libAtoms reads
/// as 3x3; symmetric `stress`, which ASE stores as 6 Voigt components).
fn ase_representable() -> Vec<Atoms> {
    let mut a = common::varied_frame();
    a.info.insert("config_type".into(), Value::Str("bulk fcc \"quoted\" a\\b {x} [y] = z, w".into()));
    a.info.insert("stress".into(), Value::matrix3([[1.0, 0.5, 0.25], [0.5, 2.0, 0.125], [0.25, 0.125, 3.0]]));
    a.info.insert("virial".into(), Value::matrix3([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]));
    a.info.insert("REF_virial".into(), Value::matrix3([[1.5, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]));
    let mut molecule = Atoms::new(vec![6, 1], vec![[0.0; 3], [0.0, 0.0, 1.09]]);
    molecule.info.insert("nan_energy".into(), Value::Float(f64::NAN));
    molecule.info.insert("neg_inf".into(), Value::Float(f64::NEG_INFINITY));
    vec![a, molecule, Atoms::new(vec![18], vec![[0.5, 0.5, 0.5]])]
}

/// We write; ASE and the libAtoms parser must read back every value exactly.
#[test]
fn ase_and_libatoms_read_what_we_write() {
    let Some(py) = python_or_skip("ase_and_libatoms_read_what_we_write") else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ours.xyz");
    let frames = ase_representable();
    extxyz::write_file(&file, &frames).unwrap();
    let script = format!(
        r#"{PY_ENCODE}
import ase.io, extxyz
path = sys.stdin.read().strip()
ase_frames = [from_ase(a) for a in ase.io.read(path, ":")]
lib_frames = [from_libatoms(f, skip=("nan_energy", "neg_inf")) for f in extxyz.read_dicts(path)]
print(json.dumps({{"ase": ase_frames, "libatoms": lib_frames}}))
"#
    );
    let out = run_python_json(&py, &script, &file.display().to_string());
    let enc: Vec<J> = frames.iter().map(enc_frame).collect();
    assert_same(&enc, out["ase"].as_array().unwrap(), "ASE");
    // libAtoms reads `nan`/`-inf` as strings (its float grammar has no
    // special values); ASE and we read floats. Those keys are left out.
    let enc_lib = enc_frames_without(&frames, &["nan_energy", "neg_inf"]);
    assert_same(&enc_lib, out["libatoms"].as_array().unwrap(), "libAtoms");
    // And we read our own file back unchanged.
    let back = extxyz::read_file(&file).unwrap();
    let enc_back: Vec<J> = back.iter().map(enc_frame).collect();
    assert_same(&enc_back, &enc, "autopara");
}

/// Files that ASE and the libAtoms parser both read, in forms found in public
/// repositories and QUIP's own files, with the column names ASE maps
/// (`positions`, `numbers`, `symbols`), no position column (ASE's positions
/// are then zero) or no element column (ASE's `X`), two position columns (ASE
/// keeps the later), and 3x3 `stress`/`virial`.
const ASE_QUIRKS: [(&str, &str); 9] = [
    ("positions column", "2\nProperties=species:S:1:positions:R:3 pbc=\"F F F\"\nZn 0.5 0.0 0.0\nZn 0.0 2.5 0.0\n"),
    (
        "QUIP header with Z",
        "2\ncutoff=-1.00000000 nneightol=1.20000000 pbc=\"F F F\" Lattice=\"5.000000 0.0 0.0 0.0 5.000000 0.0 0.0 0.0 \
         6.000000\" Properties=species:S:1:pos:R:3:Z:I:1\nSi 0.0 0.0 0.0 14\nSi 1.36 1.36 1.36 14\n",
    ),
    ("no position column", "2\nProperties=species:S:1:velo:R:3:tags:I:1\nH 0.1 0.2 0.3 1\nH -0.1 0.0 0.5 2\n"),
    ("integer positions, numbers column", "2\nProperties=numbers:I:1:positions:I:3\n6 0 0 0\n8 1 0 0\n"),
    ("no element column", "2\nProperties=pos:R:3:q:R:1\n0 0 0 0.5\n1 0 0 -0.5\n"),
    ("symbols and numbers", "2\nProperties=symbols:S:1:numbers:I:1:pos:R:3\nH 2 0 0 0\nH 2 0 0 1\n"),
    ("pos and positions", "1\nProperties=species:S:1:pos:R:3:positions:R:3\nAr 0 0 0 1.5 2.5 3.5\n"),
    (
        "GAP training frame",
        "2\nLattice=\"3.6 0 0 0 3.6 0 0 0 3.6\" Properties=species:S:1:pos:R:3:force:R:3 dft_energy=-7.5 \
         dft_virial=\"1 0.1 0.2 0.1 2 0.3 0.2 0.3 3\" virial=\"4 0.5 0.6 0.5 5 0.7 0.6 0.7 6\" config_type=bulk \
         pbc=\"T T T\"\nCu 0 0 0 0.1 0 0\nCu 1.8 1.8 0 -0.1 0 0\n",
    ),
    (
        "stress as 9 numbers",
        "1\nLattice=\"3 0 0 0 3 0 0 0 3\" stress=\"1 0.5 0.25 0.5 2 0.125 0.25 0.125 3\" energy=-1.0 \
         Properties=species:S:1:pos:R:3\nAr 0 0 0\n",
    ),
];

/// Every ASE_QUIRKS file: ASE and the libAtoms parser read it; we read what
/// ASE reads, and ASE reads from what we write the same as from the original.
#[test]
fn files_ase_and_libatoms_read_are_read_as_ase_reads_them_and_written_back_readable() {
    let Some(py) = python_or_skip("files_ase_and_libatoms_read") else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, (what, text)) in ASE_QUIRKS.iter().enumerate() {
        let original = dir.path().join(format!("in{i}.xyz"));
        std::fs::write(&original, text).unwrap();
        let frames = extxyz::read_file(&original).unwrap_or_else(|e| panic!("{what}: {e}"));
        let ours = dir.path().join(format!("out{i}.xyz"));
        extxyz::write_file(&ours, &frames).unwrap_or_else(|e| panic!("{what}: {e}"));
        paths.push((*what, original, ours, frames));
    }
    let script = format!(
        r#"{PY_ENCODE}
import ase.io, extxyz
out = []
for original, ours in json.loads(sys.stdin.read()):
    lib = extxyz.read_dicts(original)
    lib = len(lib) if isinstance(lib, list) else 1
    out.append({{"libatoms_frames": lib, "ase": [from_ase(a) for a in ase.io.read(original, ":")],
                "ase_from_ours": [from_ase(a) for a in ase.io.read(ours, ":")]}})
print(json.dumps(out))
"#
    );
    let files: Vec<[String; 2]> =
        paths.iter().map(|(_, o, w, _)| [o.display().to_string(), w.display().to_string()]).collect();
    let out = run_python_json(&py, &script, &serde_json::to_string(&files).unwrap());
    for ((what, _, _, frames), r) in paths.iter().zip(out.as_array().unwrap()) {
        assert_eq!(r["libatoms_frames"].as_u64(), Some(frames.len() as u64), "{what}: libAtoms reads it");
        let ase = r["ase"].as_array().unwrap();
        let enc: Vec<J> = frames.iter().map(enc_frame).collect();
        assert_same(&enc, ase, &format!("{what}: we read what ASE reads"));
        assert_same(r["ase_from_ours"].as_array().unwrap(), ase, &format!("{what}: ASE reads our file the same"));
    }
}

/// A `stress` or `virial` of 6 numbers (Voigt order, as calculators give it)
/// is written as ASE writes a stress: the full symmetric 3x3 matrix, which
/// ASE reads (it refuses 6 numbers).
#[test]
fn voigt_stress_and_virial_are_written_as_ase_reads_them() {
    let Some(py) = python_or_skip("voigt_stress_and_virial") else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("voigt.xyz");
    let voigt = [1.0, 2.0, 3.0, 0.25, 0.5, 0.75];
    let mut at = Atoms::new(vec![18], vec![[0.0; 3]]);
    at.cell = [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]];
    at.pbc = [true; 3];
    at.info.insert("stress".into(), Value::floats(voigt.to_vec()));
    at.info.insert("virial".into(), Value::Array { shape: vec![6], data: ArrayData::Int(vec![1, 2, 3, 4, 5, 6]) });
    extxyz::write_file(&file, &[at]).unwrap();
    let script = r#"
import json, sys
import ase.io
a = ase.io.read(sys.stdin.read().strip())
print(json.dumps({"stress": a.calc.results["stress"].tolist(), "virial": a.info["virial"].tolist()}))
"#;
    let out = run_python_json(&py, script, &file.display().to_string());
    // ASE stores the stress as Voigt 6 again, and the virial as a 3x3 matrix.
    assert_eq!(out["stress"], json!(voigt));
    assert_eq!(out["virial"], json!([[1, 6, 5], [6, 2, 4], [5, 4, 3]]));
    let back = extxyz::read_file(&file).unwrap();
    assert_eq!(
        back[0].info["virial"],
        Value::Array { shape: vec![3, 3], data: ArrayData::Int(vec![1, 6, 5, 6, 2, 4, 5, 4, 3]) }
    );
}
