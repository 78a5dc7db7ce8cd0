//! End to end: `autopara run calculate` on an extxyz file written by ASE,
//! and the same from Rust; ASE reads our output and recomputes EMT itself.

mod common;

use autopara::autopara_info::AutoparaInfo;
use autopara::{ConfigSet, OutputSpec, build_op, extxyz, runner};
use autopara_testkit::run_python_json_on_files;
use common::{Workdir, autopara_ok, inputs_from_python};
use serde_json::json;

/// Writes the inputs with ASE: periodic rattled Cu, a CuAu triclinic cell, a
/// non-periodic cluster, and Si (which EMT does not know).
const WRITE_INPUTS: &str = r#"
import sys
import numpy as np
from ase.build import bulk
from ase.io import write
rng = np.random.default_rng(3)
cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
cu.rattle(0.05, rng=rng)
cuau = bulk("Cu", "fcc", a=3.7).repeat((2, 2, 1))
cuau.symbols[1] = "Au"
cuau.cell[2] += [0.5, 0.3, 0.0]
cuau.rattle(0.05, rng=rng)
cluster = bulk("Cu", "fcc", a=3.6, cubic=True)
cluster.pbc = False
cluster.cell = None
si = bulk("Si", "diamond", a=5.43)
for at in (cu, cuau, cluster, si):
    at.info["config_type"] = "test"
write(sys.argv[1], [cu, cuau, cluster, si])
"#;

/// Reads our output with ASE, recomputes EMT, prints the largest deviations.
const CHECK_OUTPUT: &str = r#"
import json, sys
import numpy as np
from ase.io import read
from ase.calculators.emt import EMT
out = []
for at in read(sys.argv[1], ":"):
    rec = {"keys": sorted(list(at.info.keys()) + list(at.arrays.keys())), "config_type": at.info.get("config_type")}
    if not at.info.get("EMT_calculation_failed", False):
        ref = at.copy()
        ref.calc = EMT()
        e = ref.get_potential_energy()
        rec["energy"] = abs(at.info["EMT_energy"] - e) / max(1.0, abs(e))
        rec["forces"] = float(np.abs(at.arrays["EMT_forces"] - ref.get_forces()).max())
        if "EMT_stress" in at.info:
            rec["stress"] = float(np.abs(np.asarray(at.info["EMT_stress"]) - ref.get_stress()).max())
    out.append(rec)
print(json.dumps(out))
"#;

#[test]
fn autopara_run_calculate_emt_matches_ase() {
    let Some(py) = autopara_testkit::python_or_skip("autopara run calculate") else { return };
    let Workdir { dir, input, output } = inputs_from_python(&py, WRITE_INPUTS);
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    autopara_ok(&[
        "run",
        "calculate",
        "-i",
        i,
        "-o",
        o,
        "--args",
        r#"{"calculator":{"type":"emt"}}"#,
        "--workers",
        "2",
        "-q",
    ]);

    let report = run_python_json_on_files(&py, CHECK_OUTPUT, &[&output]);
    let report = report.as_array().unwrap();
    assert_eq!(report.len(), 4);
    for (c, rec) in report.iter().enumerate().take(3) {
        assert!(rec["energy"].as_f64().unwrap() < 1e-8, "config {c}: {rec}");
        assert!(rec["forces"].as_f64().unwrap() < 1e-8, "config {c}: {rec}");
        assert_eq!(rec["config_type"], json!("test"));
    }
    assert!(report[0]["stress"].as_f64().unwrap() < 1e-8);
    assert!(report[1]["stress"].as_f64().unwrap() < 1e-8);
    assert!(report[2].get("stress").is_none(), "non-periodic: no stress");
    let si_keys = report[3]["keys"].to_string();
    assert!(si_keys.contains("EMT_calculation_failed") && !si_keys.contains("EMT_energy"), "{si_keys}");

    // The same from Rust, on one worker in memory: identical configurations.
    let op = build_op("calculate", json!({"calculator": {"type": "emt"}})).unwrap();
    let inputs = ConfigSet::from_paths(&[input.to_str().unwrap()]).unwrap();
    let info = AutoparaInfo { workers: Some(1), progress: Some(false), ..Default::default() };
    let rust_out = dir.path().join("rust.xyz");
    runner::run(op.as_ref(), &inputs, &OutputSpec::file(&rust_out), &info).unwrap();
    let strip = |mut frames: Vec<autopara::Atoms>| {
        // Run bookkeeping aside, the outputs agree bit for bit.
        for f in &mut frames {
            f.info.retain(|k, _| !k.starts_with("_ConfigSet"));
        }
        frames
    };
    assert_eq!(strip(extxyz::read_file(&rust_out).unwrap()), strip(extxyz::read_file(&output).unwrap()));
}
