//! The `external` calculator: a Python ASE script as the command gives ASE's
//! EMT numbers; failures, timeouts and the keep-files policy.

use autopara_calculators as _; // links the registrations
use autopara_core::{Atoms, CalcError, CalcResults, CalculatorSpec, Properties};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const ASE_EMT: &str = r#"
from ase.io import read, write
from ase.calculators.emt import EMT
at = read("input.xyz")
at.calc = EMT()
at.get_potential_energy(); at.get_forces(); at.get_stress()
write("output.xyz", at)
"#;

fn cu() -> Atoms {
    let a = 3.6;
    let mut at = Atoms::new(
        vec![29, 29, 79, 29],
        vec![[0.0, 0.0, 0.05], [0.0, a / 2.0, a / 2.0], [a / 2.0, 0.1, a / 2.0], [a / 2.0, a / 2.0, 0.0]],
    );
    at.cell = [[a, 0.0, 0.0], [0.3, a, 0.0], [0.0, 0.2, a]];
    at.pbc = [true; 3];
    at
}

fn calc(spec: Value, at: &Atoms, request: Properties) -> Result<CalcResults, CalcError> {
    let spec: Box<dyn CalculatorSpec> = serde_json::from_value(spec).expect("valid spec");
    spec.validate()?;
    let mut out = CalcResults::default();
    spec.build()?.calculate(at, request, &mut out).map(|()| out)
}

fn run_dirs(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn ase_script_gives_ase_emt() {
    let Some(py) = autopara_testkit::python_or_skip("external ASE EMT") else { return };
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("emt.py");
    std::fs::write(&script, ASE_EMT).unwrap();
    let runs = work.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let spec = json!({
        "type": "external",
        "command": format!("'{}' '{}'", py.display(), script.display()),
        "workdir": runs, "timeout": 120, "name": "AseEMT",
    });
    let ours = calc(json!({"type": "emt"}), &cu(), Properties::ALL_BUT_ENERGIES).unwrap();
    let ext = calc(spec, &cu(), Properties::ALL_BUT_ENERGIES).unwrap();
    assert!((ext.energy - ours.energy).abs() < 1e-10 + 1e-8 * ours.energy.abs());
    // ASE writes per-atom columns with 8 decimals.
    for (a, b) in ext.forces.iter().flatten().zip(ours.forces.iter().flatten()) {
        assert!((a - b).abs() < 1e-8, "{a} vs {b}");
    }
    for (a, b) in ext.stress.iter().zip(&ours.stress) {
        assert!((a - b).abs() < 1e-10, "{a} vs {b}");
    }
    assert_eq!(run_dirs(&runs), 0, "successful runs leave nothing by default");
}

#[test]
fn failures_timeouts_and_kept_files() {
    let work = tempfile::tempdir().unwrap();
    let spec = |command: &str, keep: &str| json!({"type": "external", "command": command, "keep_files": keep, "workdir": work.path(), "timeout": 0.5});
    let energy = Properties { energy: true, ..Default::default() };

    // Non-zero exit: an error with the status and stderr; the run directory is kept (on_failure).
    let err = calc(spec("echo broken >&2; exit 3", "on_failure"), &cu(), energy).unwrap_err().to_string();
    assert!(err.contains("exit status: 3") && err.contains("broken") && err.contains("kept"), "{err}");
    assert_eq!(run_dirs(work.path()), 1);
    let err = calc(spec("exit 1", "never"), &cu(), energy).unwrap_err().to_string();
    assert!(!err.contains("kept"), "{err}");
    assert_eq!(run_dirs(work.path()), 1);

    // A command that runs too long is killed.
    let start = Instant::now();
    let err = calc(spec("sleep 30", "never"), &cu(), energy).unwrap_err().to_string();
    assert!(err.contains("timed out"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(20));

    // The output lacks a requested property; then has it, and `always` keeps the directory.
    let err = calc(spec("cp input.xyz output.xyz", "never"), &cu(), energy).unwrap_err().to_string();
    assert!(err.contains("no energy"), "{err}");
    let mut at = cu();
    at.info.insert("energy".into(), autopara_core::Value::Float(-2.0));
    let out = calc(spec("cp \"$AUTOPARA_INPUT\" \"$AUTOPARA_OUTPUT\"", "always"), &at, energy).unwrap();
    assert_eq!(out.energy, -2.0);
    assert_eq!(run_dirs(work.path()), 2);
    // No output file at all.
    let err = calc(spec("true", "never"), &cu(), energy).unwrap_err().to_string();
    assert!(err.contains("output.xyz"), "{err}");
}

#[test]
fn bad_specs_are_rejected() {
    let bad = |spec: Value, field: &str| {
        let parsed: Result<Box<dyn CalculatorSpec>, _> = serde_json::from_value(spec.clone());
        match parsed {
            Err(e) => assert!(e.to_string().contains(field), "{spec}: {e}"),
            Ok(s) => match s.validate() {
                Err(CalcError::InvalidSpec { field: f, .. }) => assert_eq!(f, field, "{spec}"),
                other => panic!("{spec}: expected an invalid field, got {other:?}"),
            },
        }
    };
    bad(json!({"type": "external", "command": "  "}), "command");
    bad(json!({"type": "external", "command": "true", "timeout": 0}), "timeout");
    bad(json!({"type": "external", "command": "true", "timeout": -1}), "timeout");
    bad(json!({"type": "external", "command": "true", "input_file": "../x.xyz"}), "input_file");
    bad(json!({"type": "external", "command": "true", "keep_files": "sometimes"}), "sometimes");
    bad(json!({"type": "external", "command": "true", "shell": "bash"}), "shell");
    bad(json!({"type": "external"}), "command");
}
