//! Every file autopara writes from an ASE-readable input is ASE-readable
//! (issue 18, point 7): inputs in the forms ASE and the libAtoms parser read
//! (ASE's mapped column names, 3x3 `stress` and `virial`, QUIP's header), put
//! through `convert` and every configuration op, and each output read back
//! with `ase.io.read` at test time.

use autopara_testkit::{python_or_skip, run_python_json_on_files};
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_autopara");

/// Cu cells as real files write them: a `positions` column with QUIP's `Z`,
/// a GAP-style frame with `virial`, `stress` and `energy` (which ASE turns
/// into calculator results), and QUIP's `cutoff`/`nneightol` keys.
const INPUT: &str = "2
Lattice=\"3.6 0 0 0 3.6 0 0 0 3.6\" Properties=species:S:1:positions:R:3:Z:I:1 cutoff=-1.0 nneightol=1.2 pbc=\"T T T\"
Cu 0.05 0 0 29
Cu 1.8 1.8 0 29
2
Lattice=\"3.6 0 0 0 3.6 0 0 0 3.6\" Properties=species:S:1:pos:R:3:force:R:3 energy=-7.5 stress=\"0.01 0 0 0 0.02 0 0 0 0.03\" virial=\"1 0.1 0.2 0.1 2 0.3 0.2 0.3 3\" config_type=bulk pbc=\"T T T\"
Cu 0 0.05 0 0.1 0 0
Cu 1.8 1.8 0 -0.1 0 0
";

const READ_ALL: &str = r#"
import json, sys
import ase.io
print(json.dumps([len(ase.io.read(path, ":")) for path in sys.argv[1:]]))
"#;

fn autopara(dir: &Path, args: &[&str]) {
    let out = Command::new(BIN).args(args).current_dir(dir).output().expect("run autopara");
    assert!(out.status.success(), "autopara {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_output_from_an_ase_readable_input_is_ase_readable() {
    let Some(py) = python_or_skip("every_output_from_an_ase_readable_input_is_ase_readable") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.xyz"), INPUT).expect("write");
    let emt = r#"{"type": "EMT"}"#;
    let runs: [(&str, &[&str], String); 6] = [
        ("converted.xyz", &["convert", "in.xyz", "-o", "converted.xyz", "--tag", "set=1"], String::new()),
        ("single.xyz", &["run", "calculate"], format!(r#"{{"calculator": {emt}}}"#)),
        ("plain.xyz", &["run", "calculate"], format!(r#"{{"calculator": {emt}, "output_prefix": null}}"#)),
        ("md.xyz", &["run", "md"], format!(r#"{{"calculator": {emt}, "steps": 3, "dt": 1.0, "temperature": 300}}"#)),
        ("minim.xyz", &["run", "minim"], format!(r#"{{"calculator": {emt}, "fmax": 0.1, "steps": 5}}"#)),
        (
            "soap.xyz",
            &["run", "descriptor"],
            r#"{"descriptor": {"type": "soap", "species": ["Cu"], "r_cut": 3.0, "n_max": 2, "l_max": 2}, "key": "soap", "per_atom": true}"#
                .to_string(),
        ),
    ];
    let mut outputs = Vec::new();
    for (out, cmd, args) in &runs {
        let mut argv: Vec<&str> = cmd.to_vec();
        if !args.is_empty() {
            argv.extend(["-i", "in.xyz", "-o", out, "-q", "--args", args]);
        }
        autopara(dir.path(), &argv);
        outputs.push(dir.path().join(out));
    }
    let files: Vec<&Path> = outputs.iter().map(|p| p.as_path()).collect();
    let counts = run_python_json_on_files(&py, READ_ALL, &files);
    // md: 4 frames per input, minim: a trajectory per input (at least 1 frame each).
    let counts: Vec<u64> = counts.as_array().expect("list").iter().map(|c| c.as_u64().expect("count")).collect();
    assert_eq!(&counts[..3], &[2, 2, 2]);
    assert_eq!(counts[3], 8);
    assert!(counts[4] >= 2);
    assert_eq!(counts[5], 2);
}
