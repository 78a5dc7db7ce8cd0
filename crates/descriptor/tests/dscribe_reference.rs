//! SOAP and ACSF against dscribe 2.1.2, computed at test time in the
//! reference venv: per atom and averaged, periodic and not, one and several
//! species, to 1e-6 of each row's scale.

mod common;

use autopara_core::Atoms;
use autopara_descriptor::DescriptorSpec;
use common::*;
use serde_json::{Value as Json, json};
use std::sync::OnceLock;

/// Our features for `spec` on `at`, as rows.
fn ours(spec: &Json, at: &Atoms) -> Vec<Vec<f64>> {
    let spec: Box<dyn DescriptorSpec> = serde_json::from_value(spec.clone()).expect("spec parses");
    let d = spec.build().expect("spec builds");
    let centers: Vec<usize> = (0..at.len()).collect();
    let n_rows = if d.averaged() { 1 } else { at.len() };
    let mut out = vec![0.0; n_rows * d.n_features()];
    d.compute(at, &centers, &mut out, &mut autopara_descriptor::Lists::default()).expect("compute");
    out.chunks(d.n_features()).map(<[f64]>::to_vec).collect()
}

/// dscribe's features for every case of [`all_cases`], computed once per
/// test binary (one interpreter start) and shared by the tests; `None` when
/// the reference venv is missing.
fn references() -> Option<&'static [Json]> {
    static REFS: OnceLock<Option<Vec<Json>>> = OnceLock::new();
    REFS.get_or_init(|| {
        let python = python("dscribe_reference")?;
        let script = format!(
            "{PY_ATOMS}
from dscribe.descriptors import SOAP, ACSF
out = []
for case in json.load(sys.stdin):
    spec = dict(case['spec'])
    kind = spec.pop('type')
    a = atoms(case['atoms'])
    # Without `periodic`, ours follows the configuration's pbc.
    spec.setdefault('periodic', bool(a.pbc.any()))
    d = (SOAP if kind == 'soap' else ACSF)(**spec)
    out.append(np.asarray(d.create(a)).tolist())
print(json.dumps(out))
"
        );
        let input: Vec<Json> =
            all_cases().iter().map(|c| json!({"atoms": atoms_json(&c.atoms), "spec": c.spec})).collect();
        let out = autopara_testkit::run_python_json(&python, &script, &Json::Array(input).to_string());
        Some(out.as_array().expect("list of results").clone())
    })
    .as_deref()
}

/// One comparison: a structure and a spec, grouped by test.
struct Case {
    test: &'static str,
    atoms: Atoms,
    spec: Json,
}

/// Compares every case of `test` with dscribe.
fn check(test: &str) {
    let Some(refs) = references() else { return };
    let cases = all_cases();
    let mut n = 0;
    for (case, r) in cases.iter().zip(refs).filter(|(c, _)| c.test == test) {
        let what = format!("{test}: {} atoms, {}", case.atoms.len(), case.spec);
        assert_rows_close(&what, &ours(&case.spec, &case.atoms), &rows(r), 1e-6);
        n += 1;
    }
    assert!(n > 0, "no cases for {test}");
}

fn soap(species: &[&str], r_cut: f64, n_max: usize, l_max: usize, sigma: f64, periodic: bool, average: &str) -> Json {
    json!({"type": "soap", "species": species, "r_cut": r_cut, "n_max": n_max, "l_max": l_max,
           "sigma": sigma, "periodic": periodic, "average": average, "rbf": "gto"})
}

/// ACSF with several G2–G5 functions. Fractional `zeta` only when no three
/// atoms are collinear: there rounding can make `1 + λ cos θ` a hair below
/// zero and dscribe's `pow` returns NaN (we clamp `cos θ` to [-1, 1]).
fn acsf(species: &[&str], r_cut: f64, periodic: bool, fractional_zeta: bool) -> Json {
    let z = if fractional_zeta { [4.5, 1.5] } else { [4.0, 2.0] };
    json!({"type": "acsf", "species": species, "r_cut": r_cut, "periodic": periodic,
           "g2_params": [[1.0, 0.0], [0.5, 1.5], [2.0, 2.5], [0.1, 3.0]],
           "g3_params": [1.0, 2.5, -0.7],
           "g4_params": [[0.005, 1.0, 1.0], [0.05, 2.0, -1.0], [0.01, z[0], 1.0], [0.1, 1.0, -1.0]],
           "g5_params": [[0.005, 1.0, 1.0], [0.02, 3.0, -1.0], [0.2, z[1], 1.0]]})
}

/// Every case, in a fixed order.
fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |test: &'static str, atoms: &Atoms, spec: Json| cases.push(Case { test, atoms: atoms.clone(), spec });

    // 32-atom Cu cell (smaller than the cutoff sphere, so images matter), the benchmark's settings.
    let cu = fcc(29, 3.61, 2, 0.15, 1);
    for avg in ["off", "inner", "outer"] {
        add("soap_periodic_one_species", &cu, soap(&["Cu"], 5.0, 8, 6, 0.5, true, avg));
    }

    // Si–C in a triclinic cell, two species, every averaging mode; and the
    // same structure with `periodic = false`, which ignores the cell.
    let cell = [[7.1, 0.0, 0.0], [1.9, 6.6, 0.0], [-1.2, 1.4, 7.4]];
    let sic = random_cell(&[6, 14], cell, 24, 1.6, 2);
    for avg in ["off", "inner", "outer"] {
        add("soap_periodic_two_species_triclinic", &sic, soap(&["Si", "C"], 4.5, 5, 4, 0.4, true, avg));
    }
    add("soap_periodic_two_species_triclinic", &sic, soap(&["C", "Si"], 4.5, 5, 4, 0.4, false, "off"));

    // A molecule-like cluster with a species the spec lists but the cluster
    // lacks (its blocks are zero but present).
    let mol = cluster(&[1, 6, 8], 15, 3.5, 1.0, 3);
    for avg in ["off", "inner", "outer"] {
        add("soap_non_periodic_cluster", &mol, soap(&["H", "C", "N", "O"], 3.5, 4, 5, 0.3, false, avg));
    }

    // A 3-atom cell far smaller than the cutoff (many images of every atom,
    // the centre's own included), a slab periodic in two directions, and
    // larger and smaller basis settings.
    let tiny = random_cell(&[6, 14], [[2.6, 0.0, 0.0], [0.8, 2.4, 0.0], [0.3, -0.5, 2.9]], 3, 1.2, 4);
    let mut slab = random_cell(&[14], [[6.0, 0.0, 0.0], [3.0, 5.2, 0.0], [0.0, 0.0, 9.0]], 12, 2.0, 5);
    slab.pbc = [true, true, false];
    add("soap_small_cell_and_slab", &tiny, soap(&["C", "Si"], 6.0, 3, 3, 0.6, true, "off"));
    add("soap_small_cell_and_slab", &tiny, soap(&["C", "Si"], 3.0, 6, 9, 1.0, true, "inner"));
    add("soap_small_cell_and_slab", &slab, soap(&["Si"], 5.0, 6, 8, 0.5, true, "off"));
    add("soap_small_cell_and_slab", &slab, soap(&["Si"], 4.0, 2, 0, 0.2, true, "outer"));

    // ACSF G1–G5 with several parameters each: periodic two- and one-species
    // cells, a non-periodic cluster with an absent species, a tiny cell, G1 only.
    let sic = random_cell(&[6, 14], cell, 24, 1.6, 6);
    add("acsf_all_functions", &sic, acsf(&["C", "Si"], 5.0, true, false));
    add("acsf_all_functions", &sic, acsf(&["C", "Si"], 5.0, false, true));
    add("acsf_all_functions", &fcc(29, 3.61, 2, 0.15, 7), acsf(&["Cu"], 6.0, true, false));
    add("acsf_all_functions", &cluster(&[1, 6, 8], 15, 3.5, 1.0, 8), acsf(&["H", "C", "N", "O"], 4.0, false, true));
    let tiny = random_cell(&[6, 14], [[2.6, 0.0, 0.0], [0.8, 2.4, 0.0], [0.3, -0.5, 2.9]], 3, 1.2, 9);
    add("acsf_all_functions", &tiny, acsf(&["C", "Si"], 4.5, true, false));
    let si = random_cell(&[14], cell, 10, 2.0, 10);
    add("acsf_all_functions", &si, json!({"type": "acsf", "species": ["Si"], "r_cut": 6.0, "periodic": true}));
    // Neighbours at exactly the cutoff: dscribe counts a SOAP neighbour at
    // exactly r_cut + its Gaussians' padding; ACSF terms vanish at r_cut.
    let padded = 3.0 + 0.5 * (-2.0 * 1e-3f64.ln()).sqrt();
    let dimer = |r: f64| Atoms::new(vec![29, 29], vec![[0.0; 3], [r, 0.0, 0.0]]);
    for r in [padded.next_down(), padded, padded.next_up()] {
        add("at_the_cutoff", &dimer(r), soap(&["Cu"], 3.0, 4, 3, 0.5, false, "off"));
    }
    let mut lattice = Atoms::new(vec![29], vec![[0.0; 3]]);
    lattice.cell = [[padded, 0.0, 0.0], [0.0, padded, 0.0], [0.0, 0.0, padded]];
    lattice.pbc = [true; 3];
    add("at_the_cutoff", &lattice, soap(&["Cu"], 3.0, 4, 3, 0.5, true, "off"));
    add("at_the_cutoff", &dimer(4.0), acsf(&["Cu"], 4.0, false, false));

    // No `periodic`: each configuration's own pbc decides (periodic cells,
    // a slab, a cluster), for SOAP and ACSF.
    let cu = fcc(29, 3.61, 2, 0.15, 11);
    let mut cu_cluster = fcc(29, 3.61, 1, 0.15, 12);
    cu_cluster.pbc = [false; 3];
    cu_cluster.cell = [[0.0; 3]; 3];
    let mut cu_slab = fcc(29, 3.61, 2, 0.15, 13);
    cu_slab.pbc = [true, false, true];
    for at in [&cu, &cu_cluster, &cu_slab] {
        let mut s = soap(&["Cu"], 5.0, 4, 4, 0.5, false, "off");
        s.as_object_mut().map(|o| o.remove("periodic"));
        add("periodic_follows_pbc", at, s);
        let mut a = acsf(&["Cu"], 5.0, false, false);
        a.as_object_mut().map(|o| o.remove("periodic"));
        add("periodic_follows_pbc", at, a);
    }
    cases
}

#[test]
fn soap_periodic_one_species() {
    check("soap_periodic_one_species");
}

#[test]
fn soap_periodic_two_species_triclinic() {
    check("soap_periodic_two_species_triclinic");
}

#[test]
fn soap_non_periodic_cluster() {
    check("soap_non_periodic_cluster");
}

#[test]
fn soap_small_cell_and_slab() {
    check("soap_small_cell_and_slab");
}

#[test]
fn at_the_cutoff() {
    check("at_the_cutoff");
}

#[test]
fn acsf_all_functions() {
    check("acsf_all_functions");
}

#[test]
fn periodic_follows_pbc() {
    check("periodic_follows_pbc");
}

/// `periodic: true` on a configuration with nothing periodic is an error, as
/// dscribe's SOAP refuses it; `false` gives the cluster descriptor of a
/// periodic cell, as dscribe does.
#[test]
fn explicit_periodic_true_without_periodicity_is_an_error() {
    let mut cluster = fcc(29, 3.61, 1, 0.1, 14);
    cluster.pbc = [false; 3];
    cluster.cell = [[0.0; 3]; 3];
    for spec in [soap(&["Cu"], 4.0, 2, 2, 0.5, true, "off"), acsf(&["Cu"], 4.0, true, false)] {
        let spec: Box<dyn DescriptorSpec> = serde_json::from_value(spec).expect("spec parses");
        let d = spec.build().expect("spec builds");
        let mut out = vec![0.0; cluster.len() * d.n_features()];
        let centers: Vec<usize> = (0..cluster.len()).collect();
        let mut lists = autopara_descriptor::Lists::default();
        let err = d.compute(&cluster, &centers, &mut out, &mut lists).expect_err("refused");
        assert!(err.to_string().contains("no periodic direction"), "{err}");
    }
    let Some(python) = python("explicit_periodic_true") else { return };
    let script = format!(
        "{PY_ATOMS}
from dscribe.descriptors import SOAP
try:
    SOAP(species=['Cu'], r_cut=4.0, n_max=2, l_max=2, periodic=True).create(atoms(json.load(sys.stdin)))
    print(json.dumps('computed'))
except ValueError as e:
    print(json.dumps(str(e)))
"
    );
    let said = autopara_testkit::run_python_json(&python, &script, &atoms_json(&cluster).to_string());
    assert_eq!(said, json!("System doesn't have cell to justify periodicity."));
}
