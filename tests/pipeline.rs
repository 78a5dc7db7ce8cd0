//! `autopara pipeline`: steps chained by name, each cached: a rerun does no
//! work, and changing one step recomputes that step and the later ones only.

use autopara::{Atoms, extxyz};
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_autopara");

fn pipeline_text(md_steps: u32) -> String {
    format!(
        r#"
[settings]
seed = 3
workers = 2

[[step]]
name = "single"
op = "calculate"
inputs = ["in.xyz"]
output = "single.xyz"
args = {{ calculator = {{ type = "emt" }} }}

[[step]]
name = "dynamics"
op = "md"
inputs = ["@single"]
output = "md.xyz"
args = {{ calculator = {{ type = "emt" }}, steps = {md_steps}, dt = 1.0, temperature = 300.0, temperature_tau = 50.0, traj_step_interval = 5 }}
settings = {{ chunk_size = 2 }}

[[step]]
name = "again"
op = "calculate"
inputs = ["@dynamics"]
output = "again.xyz"
args = {{ calculator = {{ type = "lennard_jones", sigma = 2.3, epsilon = 0.4 }}, output_prefix = "LJ_" }}
"#
    )
}

fn run(dir: &Path) -> Vec<String> {
    let out = Command::new(BIN)
        .args(["pipeline", "pipe.toml", "--quiet"])
        .current_dir(dir)
        .output()
        .expect("run autopara pipeline");
    assert!(out.status.success(), "pipeline failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn action(lines: &[String], step: &str) -> String {
    let line = lines.iter().find(|l| l.starts_with(&format!("step {step}: "))).unwrap_or_else(|| panic!("{lines:?}"));
    line.split(": ").nth(1).unwrap_or("").to_string()
}

#[test]
fn rerun_does_no_work_and_a_change_recomputes_from_that_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut configs = Vec::new();
    for i in 0..6 {
        let mut at = Atoms::new(
            vec![29, 29, 29, 29],
            vec![[0.0, 0.0, 0.0], [1.8 + 0.01 * f64::from(i), 1.8, 0.0], [1.8, 0.0, 1.8], [0.0, 1.8, 1.8]],
        );
        at.cell = [[3.6, 0.0, 0.0], [0.0, 3.6, 0.0], [0.0, 0.0, 3.6]];
        at.pbc = [true; 3];
        configs.push(at);
    }
    std::fs::write(dir.path().join("in.xyz"), extxyz::to_string(&configs).expect("encode")).expect("write");
    std::fs::write(dir.path().join("pipe.toml"), pipeline_text(20)).expect("write pipeline");

    let first = run(dir.path());
    for step in ["single", "dynamics", "again"] {
        assert_eq!(action(&first, step), "computed", "{first:?}");
    }
    let md_before = std::fs::read(dir.path().join("md.xyz")).expect("md output");

    let second = run(dir.path());
    for step in ["single", "dynamics", "again"] {
        assert_eq!(action(&second, step), "reused", "{second:?}");
    }
    assert_eq!(std::fs::read(dir.path().join("md.xyz")).expect("md output"), md_before);

    std::fs::write(dir.path().join("pipe.toml"), pipeline_text(30)).expect("write pipeline");
    let third = run(dir.path());
    assert_eq!(action(&third, "single"), "reused", "{third:?}");
    assert_eq!(action(&third, "dynamics"), "computed", "{third:?}");
    assert_eq!(action(&third, "again"), "computed", "{third:?}");
    let frames = extxyz::read_file(dir.path().join("md.xyz")).expect("read md output");
    assert_eq!(frames.len(), 6 * 7, "30 steps at interval 5 give 7 frames per config");
}

/// A step whose every item gives nothing (two minimizer steps never converge,
/// and only converged frames are kept) leaves an empty output that the next
/// step reads as no items; reruns reuse both.
#[cfg(feature = "minim")]
#[test]
fn an_empty_step_output_feeds_the_next_step_as_no_items() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut at = Atoms::new(vec![29, 29], vec![[0.0, 0.0, 0.0], [1.7, 1.9, 0.1]]);
    at.cell = [[3.6, 0.0, 0.0], [0.0, 3.6, 0.0], [0.0, 0.0, 3.6]];
    at.pbc = [true; 3];
    std::fs::write(dir.path().join("in.xyz"), extxyz::to_string(&[at.clone(), at]).expect("encode")).expect("write");
    let text = r#"
[[step]]
name = "relax"
op = "minim"
inputs = ["in.xyz"]
output = "relaxed.xyz"
args = { calculator = { type = "emt" }, steps = 2, fmax = 1e-6, traj_subselect = "last_converged" }

[[step]]
name = "energies"
op = "calculate"
inputs = ["@relax"]
output = "energies.xyz"
args = { calculator = { type = "emt" } }
"#;
    std::fs::write(dir.path().join("pipe.toml"), text).expect("write pipeline");
    let first = run(dir.path());
    assert_eq!((action(&first, "relax"), action(&first, "energies")), ("computed".into(), "computed".into()));
    for out in ["relaxed.xyz", "energies.xyz"] {
        assert_eq!(std::fs::read(dir.path().join(out)).expect("output"), b"", "{out}");
    }
    let second = run(dir.path());
    assert_eq!((action(&second, "relax"), action(&second, "energies")), ("reused".into(), "reused".into()));
}

#[test]
fn bad_pipelines_are_refused_before_any_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("[[step]]\nname = \"a\"\nop = \"nope\"\ncount = 3\noutput = \"a.xyz\"\n", "unknown op 'nope'"),
        ("[[step]]\nname = \"a\"\nop = \"md\"\ninputs = [\"@b\"]\noutput = \"a.xyz\"\n", "'@b' is not an earlier step"),
        ("[[step]]\nname = \"a\"\nop = \"md\"\ninputs = [\"x.xyz\"]\noutput = \"a.xyz\"\nbogus = 1\n", "bogus"),
        (
            "[[step]]\nname = \"a\"\nop = \"calculate\"\ninputs = [\"x.xyz\"]\noutput = \"a.xyz\"\nargs = { calculator = { type = \"emt\" }, stepz = 3 }\n",
            "stepz",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("bad.toml"), text).expect("write");
        let out = Command::new(BIN).args(["pipeline", "bad.toml"]).current_dir(dir.path()).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text} was accepted");
        assert!(stderr.contains(expected), "expected '{expected}' in: {stderr}");
        assert!(!dir.path().join("a.xyz").exists());
    }
}
