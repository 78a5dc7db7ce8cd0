//! SOAP and ACSF against dscribe 2.1.2, computed at test time in the
//! reference venv: per atom and averaged, periodic and not, one and several
//! species, to 1e-6 of each row's scale.

mod common;

use autopara_core::Atoms;
use autopara_descriptor::DescriptorSpec;
use common::*;
use serde_json::{Value as Json, json};

/// Our features for `spec` on `at`, as rows.
fn ours(spec: &Json, at: &Atoms) -> Vec<Vec<f64>> {
    let spec: Box<dyn DescriptorSpec> = serde_json::from_value(spec.clone()).expect("spec parses");
    let d = spec.build().expect("spec builds");
    let centers: Vec<usize> = (0..at.len()).collect();
    let n_rows = if d.averaged() { 1 } else { at.len() };
    let mut out = vec![0.0; n_rows * d.n_features()];
    d.compute(at, &centers, &mut out).expect("compute");
    out.chunks(d.n_features()).map(<[f64]>::to_vec).collect()
}

/// dscribe's features for each `(structure, spec)` case, in one interpreter run.
fn reference(test: &str, cases: &[(Json, Json)]) -> Option<Vec<Json>> {
    let python = python(test)?;
    let script = format!(
        "{PY_ATOMS}
from dscribe.descriptors import SOAP, ACSF
out = []
for case in json.load(sys.stdin):
    spec = dict(case['spec'])
    kind = spec.pop('type')
    d = (SOAP if kind == 'soap' else ACSF)(**spec)
    out.append(np.asarray(d.create(atoms(case['atoms']))).tolist())
print(json.dumps(out))
"
    );
    let input = Json::Array(cases.iter().map(|(a, s)| json!({"atoms": a, "spec": s})).collect());
    let out = autopara_testkit::run_python_json(&python, &script, &input.to_string());
    Some(out.as_array().expect("list of results").clone())
}

fn check(test: &str, cases: Vec<(Atoms, Json)>) {
    let json_cases: Vec<(Json, Json)> = cases.iter().map(|(a, s)| (atoms_json(a), s.clone())).collect();
    let Some(refs) = reference(test, &json_cases) else { return };
    for ((at, spec), r) in cases.iter().zip(&refs) {
        let what = format!("{test}: {} atoms, {spec}", at.len());
        assert_rows_close(&what, &ours(spec, at), &rows(r), 1e-6);
    }
}

fn soap(species: &[&str], r_cut: f64, n_max: usize, l_max: usize, sigma: f64, periodic: bool, average: &str) -> Json {
    json!({"type": "soap", "species": species, "r_cut": r_cut, "n_max": n_max, "l_max": l_max,
           "sigma": sigma, "periodic": periodic, "average": average, "rbf": "gto"})
}

/// 32-atom Cu cell (smaller than the cutoff sphere, so images matter), the benchmark's settings.
#[test]
fn soap_periodic_one_species() {
    let cu = fcc(29, 3.61, 2, 0.15, 1);
    let cases = ["off", "inner", "outer"].map(|avg| (cu.clone(), soap(&["Cu"], 5.0, 8, 6, 0.5, true, avg)));
    check("soap_periodic_one_species", cases.to_vec());
}

/// Si–C in a triclinic cell, two species, every averaging mode; and the same
/// structure with `periodic = false`, which ignores the cell.
#[test]
fn soap_periodic_two_species_triclinic() {
    let cell = [[7.1, 0.0, 0.0], [1.9, 6.6, 0.0], [-1.2, 1.4, 7.4]];
    let sic = random_cell(&[6, 14], cell, 24, 1.6, 2);
    let mut cases: Vec<(Atoms, Json)> = ["off", "inner", "outer"]
        .iter()
        .map(|avg| (sic.clone(), soap(&["Si", "C"], 4.5, 5, 4, 0.4, true, avg)))
        .collect();
    cases.push((sic.clone(), soap(&["C", "Si"], 4.5, 5, 4, 0.4, false, "off")));
    check("soap_periodic_two_species_triclinic", cases);
}

/// A molecule-like cluster with a species the spec lists but the cluster
/// lacks (its blocks are zero but present).
#[test]
fn soap_non_periodic_cluster() {
    let mol = cluster(&[1, 6, 8], 15, 3.5, 1.0, 3);
    let cases =
        ["off", "inner", "outer"].map(|avg| (mol.clone(), soap(&["H", "C", "N", "O"], 3.5, 4, 5, 0.3, false, avg)));
    check("soap_non_periodic_cluster", cases.to_vec());
}

/// A 3-atom cell far smaller than the cutoff (many images of every atom,
/// including the centre's own), a slab periodic in two directions, and
/// larger basis settings.
#[test]
fn soap_small_cell_and_slab() {
    let tiny = random_cell(&[6, 14], [[2.6, 0.0, 0.0], [0.8, 2.4, 0.0], [0.3, -0.5, 2.9]], 3, 1.2, 4);
    let mut slab = random_cell(&[14], [[6.0, 0.0, 0.0], [3.0, 5.2, 0.0], [0.0, 0.0, 9.0]], 12, 2.0, 5);
    slab.pbc = [true, true, false];
    let cases = vec![
        (tiny.clone(), soap(&["C", "Si"], 6.0, 3, 3, 0.6, true, "off")),
        (tiny, soap(&["C", "Si"], 3.0, 6, 9, 1.0, true, "inner")),
        (slab.clone(), soap(&["Si"], 5.0, 6, 8, 0.5, true, "off")),
        (slab, soap(&["Si"], 4.0, 2, 0, 0.2, true, "outer")),
    ];
    check("soap_small_cell_and_slab", cases);
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

/// ACSF G1–G5 with several parameters each: periodic two- and one-species
/// cells, a non-periodic cluster with an absent species, a tiny cell.
#[test]
fn acsf_all_functions() {
    let cell = [[7.1, 0.0, 0.0], [1.9, 6.6, 0.0], [-1.2, 1.4, 7.4]];
    let sic = random_cell(&[6, 14], cell, 24, 1.6, 6);
    let cu = fcc(29, 3.61, 2, 0.15, 7);
    let mol = cluster(&[1, 6, 8], 15, 3.5, 1.0, 8);
    let tiny = random_cell(&[6, 14], [[2.6, 0.0, 0.0], [0.8, 2.4, 0.0], [0.3, -0.5, 2.9]], 3, 1.2, 9);
    let cases = vec![
        (sic.clone(), acsf(&["C", "Si"], 5.0, true, false)),
        (sic, acsf(&["C", "Si"], 5.0, false, true)),
        (cu, acsf(&["Cu"], 6.0, true, false)),
        (mol, acsf(&["H", "C", "N", "O"], 4.0, false, true)),
        (tiny, acsf(&["C", "Si"], 4.5, true, false)),
        // Only G1 (no parameter lists).
        (
            random_cell(&[14], cell, 10, 2.0, 10),
            json!({"type": "acsf", "species": ["Si"], "r_cut": 6.0, "periodic": true}),
        ),
    ];
    check("acsf_all_functions", cases);
}
