//! The `descriptor` op: wfl's `descriptors.calculate` semantics (keys,
//! concatenation, centre-element split with composition weights, L2
//! normalisation, `force`) checked against the same recipe applied to
//! dscribe's output in the reference venv; and its argument and input errors.

mod common;

use autopara_core::ItemOp;
use autopara_core::{ArrayData, Atoms, Value, WorkerContext, find_op};
use autopara_descriptor::{DescriptorOp, registered_descriptors};
use autopara_testkit::fixtures::items;
use common::*;
use serde_json::{Value as Json, json};

fn sic() -> Atoms {
    let cell = [[7.1, 0.0, 0.0], [1.9, 6.6, 0.0], [-1.2, 1.4, 7.4]];
    random_cell(&[6, 14], cell, 20, 1.6, 21)
}

fn soap(average: &str) -> Json {
    json!({"type": "soap", "species": ["C", "Si"], "r_cut": 4.0, "n_max": 4, "l_max": 3, "sigma": 0.5,
           "periodic": true, "average": average})
}

fn acsf() -> Json {
    json!({"type": "acsf", "species": ["C", "Si"], "r_cut": 4.5, "periodic": true,
           "g2_params": [[1.0, 1.5], [0.3, 2.5]], "g4_params": [[0.01, 2.0, -1.0]]})
}

fn float_rows(col: &autopara_core::Column) -> Vec<Vec<f64>> {
    match &col.data {
        ArrayData::Float(v) => v.chunks(col.width).map(<[f64]>::to_vec).collect(),
        other => panic!("not a float column: {other:?}"),
    }
}

/// wfl's recipe on dscribe's output, for the reference.
const PY_WFL: &str = r#"
from dscribe.descriptors import SOAP, ACSF
def build(spec):
    spec = dict(spec); kind = spec.pop('type')
    return (SOAP if kind == 'soap' else ACSF)(**spec)
def normalize_rows(m):
    n = np.linalg.norm(m, axis=1); nz = n > 1e-8
    m[nz] = (m[nz].T / n[nz]).T
    return m
inp = json.load(sys.stdin)
at = atoms(inp['atoms'])
out = {}
# per config, split by centre element, composition-weighted, concatenated, normalised
vec = []
for z in sorted(int(k) for k in inp['per_config']):
    idx = [i for i, n in enumerate(at.numbers) if n == z]
    for spec in inp['per_config'][str(z)]:
        vec.extend(np.asarray(build(spec).create(at, centers=idx)) * len(idx) / len(at))
vec = np.asarray(vec)
out['per_config'] = (vec / np.linalg.norm(vec)).tolist()
# per atom, all centres, two descriptors concatenated, rows normalised
m = np.concatenate([np.asarray(build(s).create(at)) for s in inp['per_atom']], axis=1)
out['per_atom'] = normalize_rows(m).tolist()
# per atom, split by centre element: rows of other elements are zero
for z in sorted(int(k) for k in inp['per_atom_z']):
    idx = [i for i, n in enumerate(at.numbers) if n == z]
    spec = inp['per_atom_z'][str(z)]
    m = np.zeros((len(at), build(spec).get_number_of_features()))
    m[idx] = np.asarray(build(spec).create(at, centers=idx))
    out[f'per_atom_z_{z}'] = normalize_rows(m).tolist()
print(json.dumps(out))
"#;

#[test]
fn wfl_semantics_against_dscribe() {
    let Some(python) = python("wfl_semantics_against_dscribe") else { return };
    let at = sic();
    let input = json!({
        "atoms": atoms_json(&at),
        "per_config": {"6": [soap("inner")], "14": [soap("outer"), soap("inner")]},
        "per_atom": [soap("off"), acsf()],
        "per_atom_z": {"6": acsf(), "14": soap("off")},
    });
    let reference = autopara_testkit::run_python_json(&python, &format!("{PY_ATOMS}{PY_WFL}"), &input.to_string());

    // Per config, keyed by centre symbol and atomic number alike.
    let op = DescriptorOp::from_json(json!({
        "descriptor": {"C": soap("inner"), "14": [soap("outer"), soap("inner")]},
        "key": "desc", "per_atom": false,
    }))
    .unwrap();
    let mut a = at.clone();
    op.apply(&mut a).unwrap();
    let v = a.info["desc"].to_f64_vec().unwrap();
    assert_rows_close("per config", &[v], &rows(&reference["per_config"]), 1e-6);

    // Per atom, a list concatenated.
    let op =
        DescriptorOp::from_json(json!({"descriptor": [soap("off"), acsf()], "key": "desc", "per_atom": true})).unwrap();
    let mut a = at.clone();
    op.apply(&mut a).unwrap();
    assert_rows_close("per atom", &float_rows(&a.arrays["desc"]), &rows(&reference["per_atom"]), 1e-6);

    // Per atom, split by centre element.
    let op =
        DescriptorOp::from_json(json!({"descriptor": {"6": acsf(), "14": soap("off")}, "key": "d", "per_atom": true}))
            .unwrap();
    let mut a = at.clone();
    op.apply(&mut a).unwrap();
    assert!(!a.arrays.contains_key("d"));
    for z in [6, 14] {
        let ours = float_rows(&a.arrays[&format!("d_Z_{z}")]);
        assert_rows_close(&format!("per atom Z={z}"), &ours, &rows(&reference[format!("per_atom_z_{z}")]), 1e-6);
    }
}

/// Without normalisation and composition weights the stored vector is the
/// plain concatenation of the averaged descriptors, which equal the per-atom
/// rows averaged (outer) — a check independent of the reference venv.
#[test]
fn unnormalised_outer_average_is_mean_of_rows() {
    let at = sic();
    let per_atom =
        DescriptorOp::from_json(json!({"descriptor": soap("off"), "key": "p", "per_atom": true, "normalize": false}))
            .unwrap();
    let per_config = DescriptorOp::from_json(json!({
        "descriptor": soap("outer"), "key": "g", "per_atom": false, "normalize": false, "composition_weight": false
    }))
    .unwrap();
    let mut a = at.clone();
    per_atom.apply(&mut a).unwrap();
    per_config.apply(&mut a).unwrap();
    let rows = float_rows(&a.arrays["p"]);
    let mean: Vec<f64> =
        (0..rows[0].len()).map(|k| rows.iter().map(|r| r[k]).sum::<f64>() / rows.len() as f64).collect();
    assert_rows_close("outer = mean of rows", &[a.info["g"].to_f64_vec().unwrap()], &[mean], 1e-12);
}

#[test]
fn missing_centre_element_writes_no_array_and_zero_block() {
    let si_only = random_cell(&[14], [[6.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 6.0]], 8, 2.0, 22);
    let op = DescriptorOp::from_json(
        json!({"descriptor": {"6": soap("off"), "14": soap("off")}, "key": "d", "per_atom": true}),
    )
    .unwrap();
    let mut a = si_only.clone();
    op.apply(&mut a).unwrap();
    assert!(!a.arrays.contains_key("d_Z_6"));
    assert_eq!(a.arrays["d_Z_14"].rows(), 8);

    let op = DescriptorOp::from_json(json!({
        "descriptor": {"6": soap("inner"), "14": soap("inner")}, "key": "d", "per_atom": false, "normalize": false
    }))
    .unwrap();
    let mut a = si_only;
    op.apply(&mut a).unwrap();
    let v = a.info["d"].to_f64_vec().unwrap();
    let half = v.len() / 2;
    assert!(v[..half].iter().all(|&x| x == 0.0), "carbon block is zero");
    assert!(v[half..].iter().any(|&x| x != 0.0));
}

#[test]
fn existing_key_needs_force() {
    let op = |force: bool, per_atom: bool| {
        let d = if per_atom { soap("off") } else { soap("inner") };
        DescriptorOp::from_json(json!({"descriptor": d, "key": "soap", "per_atom": per_atom, "force": force})).unwrap()
    };
    let mut a = sic();
    a.info.insert("soap".into(), Value::Float(1.0));
    let e = op(false, false).apply(&mut a).unwrap_err();
    assert!(e.message.contains("info key 'soap' already exists") && e.message.contains("force"), "{e}");
    op(true, false).apply(&mut a).unwrap();
    assert!(matches!(a.info["soap"], Value::Array { .. }));

    a.arrays.insert("soap_Z_6".into(), autopara_core::Column::scalars(vec![0.0; a.len()]));
    a.arrays.insert("soap_other".into(), autopara_core::Column::scalars(vec![0.0; a.len()]));
    let e = op(false, true).apply(&mut a).unwrap_err();
    assert!(e.message.contains("arrays key 'soap' already exists"), "{e}");
    op(true, true).apply(&mut a).unwrap();
    assert!(!a.arrays.contains_key("soap_Z_6"), "stale per-element array removed");
    assert!(a.arrays.contains_key("soap_other"), "unrelated keys kept");
    assert_eq!(a.arrays["soap"].width, 4 * 2 * (4 * 2 + 1) / 2 * 4);
}

/// Bad arguments fail when the op is built, naming the field.
#[test]
fn argument_errors_name_the_field() {
    let err = |args: Json| DescriptorOp::from_json(args).unwrap_err().to_string();
    let with = |d: Json| json!({"descriptor": d, "key": "k", "per_atom": true});
    let mut bad_type = soap("off");
    bad_type["type"] = json!("mbtr");
    let e = err(with(bad_type));
    assert!(e.contains("descriptor") && e.contains("mbtr") && e.contains("soap"), "{e}");
    let mut unknown = soap("off");
    unknown["r_cutoff"] = json!(5.0);
    let e = err(with(unknown));
    assert!(e.contains("r_cutoff"), "{e}");
    for (field, value, expect) in [
        ("r_cut", json!(-1.0), "descriptor.r_cut"),
        ("r_cut", json!(0.0), "descriptor.r_cut"),
        ("sigma", json!(0.0), "descriptor.sigma"),
        ("n_max", json!(0), "descriptor.n_max"),
        ("n_max", json!(-2), "n_max"),
        ("l_max", json!(21), "descriptor.l_max"),
        // Sizes of the basis and radial table: these aborted the process
        // (allocations of 72 TB and 19 GB) or overflowed (a panic).
        ("n_max", json!(1_000_000), "descriptor.n_max: must be <= 100"),
        ("r_cut", json!(1e6), "descriptor.r_cut: r_cut + 3.72 sigma"),
        ("sigma", json!(1e300), "descriptor.sigma: r_cut + 3.72 sigma"),
        ("sigma", json!(f64::MAX), "descriptor.sigma"),
        ("rbf", json!("polynomial"), "descriptor.rbf"),
        ("average", json!("mean"), "average"),
        ("species", json!(["Cu", "Qq"]), "species"),
        ("species", json!([]), "descriptor.species"),
    ] {
        let mut s = soap("off");
        s[field] = value.clone();
        let e = err(with(s));
        assert!(e.contains(expect), "{field}={value}: {e}");
    }
    let e = err(with(json!([soap("off"), {"type": "acsf", "species": ["C"], "r_cut": -3.0}])));
    assert!(e.contains("descriptor[1].r_cut"), "{e}");
    let e = err(with(json!({"6": {"type": "acsf", "species": ["C"], "r_cut": 0.0}})));
    assert!(e.contains("descriptor.6.r_cut"), "{e}");
    let e = err(with(json!({"Xy": soap("off")})));
    assert!(e.contains("descriptor.Xy"), "{e}");
    // per_atom must match the descriptor's rows.
    let e = err(with(soap("inner")));
    assert!(e.contains("descriptor") && e.contains("per_atom"), "{e}");
    let e = err(json!({"descriptor": acsf(), "key": "k", "per_atom": false}));
    assert!(e.contains("per_atom=false"), "{e}");
    let e = err(json!({"descriptor": soap("off"), "per_atom": true}));
    assert!(e.contains("key"), "{e}");
    let e = err(json!({"descriptor": soap("off"), "key": "k", "per_atom": true, "normalise": true}));
    assert!(e.contains("normalise"), "{e}");
}

/// An element the spec does not list fails that config only, naming the
/// config and the element.
#[test]
fn unlisted_species_fails_the_item() {
    let op = find_op("descriptor").unwrap();
    let op = (op.build)(json!({"descriptor": soap("off"), "key": "k", "per_atom": true})).unwrap();
    let mut fe = sic();
    fe.numbers[3] = 26;
    let items = items(vec![sic(), fe]);
    let mut ctx = WorkerContext::new(0, 0, "descriptor");
    let out = op.run_chunk(&items, &mut ctx);
    assert!(out[0].is_ok());
    let e = out[1].as_ref().unwrap_err();
    assert!(e.message.contains("config 1") && e.message.contains("Fe (Z=26)") && e.message.contains("C, Si"), "{e}");
}

#[test]
fn registered_with_canonical_args() {
    let names: Vec<_> = registered_descriptors().iter().map(|d| d.name).collect();
    assert!(names.contains(&"soap") && names.contains(&"acsf"), "{names:?}");
    let reg = find_op("descriptor").unwrap();
    assert_eq!(reg.info.default_chunk_size, 1);
    let op =
        (reg.build)(json!({"descriptor": {"type": "soap", "species": [14, "C"], "r_cut": 4.0, "n_max": 2, "l_max": 1},
                                 "key": "k", "per_atom": true}))
        .unwrap();
    let args = op.args();
    assert_eq!(args["normalize"], json!(true));
    assert_eq!(args["composition_weight"], json!(true));
    assert_eq!(args["force"], json!(false));
    let spec = &args["descriptor"];
    assert_eq!(spec["type"], json!("soap"));
    assert_eq!(spec["species"], json!(["C", "Si"]));
    assert_eq!(spec["sigma"], json!(1.0));
    assert_eq!(spec["average"], json!("off"));
    // The canonical form parses back to the same op.
    let again = (reg.build)(args.clone()).unwrap();
    assert_eq!(again.args(), args);
}
