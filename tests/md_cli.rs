//! End to end: `autopara run md` on an extxyz file written by ASE; ASE reads
//! the trajectories back (momenta, masses, MD keys, results) and checks them
//! with its own EMT and `get_temperature`.

mod common;

use autopara_testkit::run_python_json_on_files;
use common::{Workdir, autopara_ok, inputs_from_python};
use serde_json::json;

/// Two Cu cells: one with custom masses, one with a per-config override.
const WRITE_INPUTS: &str = r#"
import sys
import numpy as np
from ase.build import bulk
from ase.io import write
a = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
a.set_masses(np.full(len(a), 50.0))
a.info["config_type"] = "test"
b = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
b.info["WFL_MD_KWARGS"] = '{"temperature": 600.0}'
write(sys.argv[1], [a, b])
"#;

/// Per frame: ASE's temperature from the file's momenta and masses against
/// `MD_current_temperature`, ASE's EMT energy against ours, and the keys.
const CHECK_OUTPUT: &str = r#"
import json, sys
from ase.io import read
from ase.calculators.emt import EMT
out = []
for at in read(sys.argv[1], ":"):
    ref = at.copy()
    ref.calc = EMT()
    out.append({
        "step": int(at.info["MD_step"]),
        "target": float(at.info["MD_temperature_K"]),
        "config_type": at.info.get("config_type"),
        "dT": float(abs(at.get_temperature() - at.info["MD_current_temperature"])),
        "dE": float(abs(ref.get_potential_energy() - at.info["last_op__md_energy"])),
        "mass": float(at.get_masses()[0]),
        "has_forces": "last_op__md_forces" in at.arrays,
    })
print(json.dumps(out))
"#;

#[test]
fn autopara_run_md_output_reads_in_ase() {
    let Some(py) = autopara_testkit::python_or_skip("autopara run md") else { return };
    let Workdir { dir: _dir, input, output } = inputs_from_python(&py, WRITE_INPUTS);
    let args = json!({"calculator": {"type": "emt"}, "steps": 20, "dt": 2.0, "temperature": 300.0,
                      "temperature_tau": 50.0, "traj_step_interval": 10});
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());
    autopara_ok(&["run", "md", "-i", i, "-o", o, "--args", &args.to_string(), "--workers", "2", "--seed", "3", "-q"]);

    let frames = run_python_json_on_files(&py, CHECK_OUTPUT, &[&output]);
    let frames = frames.as_array().unwrap();
    assert_eq!(frames.len(), 6, "{frames:?}");
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["step"], json!(10 * (i % 3)), "{f}");
        assert!(f["dT"].as_f64().unwrap() < 1e-6, "ASE's temperature from our momenta: {f}");
        assert!(f["dE"].as_f64().unwrap() < 1e-8, "ASE's EMT energy: {f}");
        assert_eq!(f["has_forces"], json!(true));
    }
    assert_eq!(frames[0]["config_type"], json!("test:MD"));
    assert_eq!(frames[3]["config_type"], json!("MD"));
    assert_eq!(frames[0]["mass"], json!(50.0));
    assert_eq!(frames[0]["target"], json!(300.0));
    assert_eq!(frames[3]["target"], json!(600.0), "the per-config override");
}
