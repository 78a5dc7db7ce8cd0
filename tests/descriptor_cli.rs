//! End to end: `autopara run descriptor` on an extxyz file written by ASE;
//! ASE reads the output back and dscribe recomputes the features from the
//! same input (per-atom SOAP rows and a per-config averaged ACSF-free vector,
//! both L2-normalised as wfl does).

mod common;

use autopara_testkit::run_python_json_on_files;
use common::{Workdir, autopara_ok, inputs_from_python};
use serde_json::json;

/// Two shaken SiC cells with random Si/C occupancy.
const WRITE_INPUTS: &str = r#"
import sys
import numpy as np
from ase.build import bulk
from ase.io import write
rng = np.random.default_rng(5)
frames = []
for i in range(2):
    a = bulk("SiC", "zincblende", a=4.36, cubic=True).repeat(2)
    a.numbers = rng.choice([6, 14], len(a))
    a.positions += rng.normal(0, 0.05, a.positions.shape)
    a.wrap()
    frames.append(a)
write(sys.argv[1], frames)
"#;

/// Largest row-relative difference between the output file's features and
/// dscribe's on the input file.
const CHECK_OUTPUT: &str = r#"
import json, sys
import numpy as np
from ase.io import read
from dscribe.descriptors import SOAP
spec = dict(species=["C", "Si"], r_cut=4.0, n_max=4, l_max=4, sigma=0.5, periodic=True)
worst = 0.0
for at_in, at_out in zip(read(sys.argv[1], ":"), read(sys.argv[2], ":")):
    rows = SOAP(**spec).create(at_in)
    rows = (rows.T / np.linalg.norm(rows, axis=1)).T
    worst = max(worst, float(np.abs(at_out.arrays["soap"] - rows).max() / np.abs(rows).max()))
    vec = SOAP(average="inner", **spec).create(at_in)
    vec = vec / np.linalg.norm(vec)
    worst = max(worst, float(np.abs(np.asarray(at_out.info["soap_inner"]) - vec).max() / np.abs(vec).max()))
print(json.dumps({"worst": worst, "frames": len(read(sys.argv[2], ":"))}))
"#;

#[test]
fn autopara_run_descriptor_matches_dscribe() {
    let Some(py) = autopara_testkit::python_or_skip("autopara run descriptor") else { return };
    let Workdir { dir, input, output } = inputs_from_python(&py, WRITE_INPUTS);
    let mid = dir.path().join("mid.xyz");
    let soap = json!({"type": "soap", "species": ["C", "Si"], "r_cut": 4.0, "n_max": 4, "l_max": 4,
                      "sigma": 0.5, "periodic": true});
    let mut inner = soap.clone();
    inner["average"] = json!("inner");
    let per_atom = json!({"descriptor": soap, "key": "soap", "per_atom": true});
    let per_config = json!({"descriptor": inner, "key": "soap_inner", "per_atom": false});
    let (i, m, o) = (input.to_str().unwrap(), mid.to_str().unwrap(), output.to_str().unwrap());
    autopara_ok(&["run", "descriptor", "-i", i, "-o", m, "--args", &per_atom.to_string(), "--workers", "2", "-q"]);
    autopara_ok(&["run", "descriptor", "-i", m, "-o", o, "--args", &per_config.to_string(), "-q"]);

    let r = run_python_json_on_files(&py, CHECK_OUTPUT, &[&input, &output]);
    assert_eq!(r["frames"], json!(2));
    assert!(r["worst"].as_f64().unwrap() < 1e-6, "{r}");
}
