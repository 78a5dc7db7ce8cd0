//! wfl scripts translate line by line (issue 18, point 10): wfl's own argument
//! spellings run, and where wfl is at hand (the reference venv) its output is
//! the reference, computed at test time.

use autopara::extxyz;
use autopara_testkit::{python_or_skip, run_python, run_python_json_on_files};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_autopara");

fn autopara(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).current_dir(dir).output().expect("run autopara")
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    let out = autopara(dir, args);
    assert!(out.status.success(), "autopara {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `create_input(z=[3, 13], vol_per_atom=[5, 10], bond_lengths=[2, 3],
/// composition=[1, 2], vol_range=(0.9, 1.1))` with `--vol-range LO,HI` as the
/// help says, byte for byte wfl's text; `buildcell` then generates from it
/// (MINSEP overfills this volume as hard spheres: a target, as in AIRSS),
/// with wfl's `buildcell_cmd` and `verbose` accepted.
#[test]
fn create_input_and_buildcell_with_wfl_test_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = ok(
        dir.path(),
        &["buildcell-input", "--z", "3,13", "--vol-per-atom", "5,10", "--bond-lengths", "2,3"]
            .into_iter()
            .chain(["--composition", "1,2", "--vol-range", "0.9,1.1", "-o", "LiAl.cell"])
            .collect::<Vec<_>>(),
    );
    assert!(ours.stdout.is_empty());
    let text = std::fs::read_to_string(dir.path().join("LiAl.cell")).expect("written");
    if let Some(py) = python_or_skip("create_input_and_buildcell_with_wfl_test_parameters") {
        let wfl = run_python(
            &py,
            "from wfl.generate.buildcell import create_input\n\
             print(create_input(z=[3, 13], vol_per_atom=[5, 10], bond_lengths=[2, 3], composition=[1, 2], \
             vol_range=(0.9, 1.1)), end='')",
            "",
        );
        assert_eq!(text, wfl);
    }
    let args = r#"{"buildcell_input_file": "LiAl.cell", "buildcell_cmd": "/usr/bin/buildcell", "verbose": true}"#;
    let out = ok(dir.path(), &["run", "buildcell", "--count", "20", "--seed", "4", "-o", "rss.xyz", "--args", args]);
    let notes = stderr(&out);
    assert!(notes.contains("buildcell: ignoring wfl's `buildcell_cmd`"), "{notes}");
    assert!(notes.contains("20 configs written, 0 failed"), "{notes}");
    let frames = extxyz::read_file(dir.path().join("rss.xyz")).expect("read");
    assert_eq!(frames.len(), 20);
    assert!(frames.iter().all(|f| f.len() % 3 == 0 && f.info.contains_key("RSS_min_vol_per_atom")));
}

/// Inputs for the calculate comparison: a rattled periodic cell and a cluster.
const WRITE_INPUTS: &str = r#"
import sys
from ase.build import bulk
from ase.io import write
cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
cu.rattle(0.05, seed=1)
cluster = bulk("Cu", "fcc", a=3.6, cubic=True)
cluster.rattle(0.05, seed=2)
cluster.pbc = False
cluster.cell = None
write(sys.argv[1], [cu, cluster])
"#;

/// wfl's `generic.calculate(..., EMT(), output_prefix=None)` on the same inputs.
const WFL_CALCULATE: &str = r#"
import sys
from ase.calculators.emt import EMT
from wfl.configset import ConfigSet, OutputSpec
from wfl.calculators import generic
generic.calculate(ConfigSet(sys.argv[1]), OutputSpec(sys.argv[2]), EMT(), output_prefix=None)
"#;

/// Both files as ASE reads them: per frame, its info and array keys and the
/// calculator results.
const READ_BOTH: &str = r#"
import json, sys
import ase.io
out = []
for path in sys.argv[1:]:
    frames = []
    for at in ase.io.read(path, ":"):
        res = at.calc.results if at.calc is not None else {}
        frames.append({"info": sorted(k for k in at.info if not k.startswith("_ConfigSet")),
                       "arrays": sorted(at.arrays), "results": {k: list(map(float, res[k].ravel()))
                       if hasattr(res[k], "ravel") else float(res[k]) for k in sorted(res)}})
    out.append(frames)
print(json.dumps(out))
"#;

/// A wfl calculate call with `EMT()` and `output_prefix=None` translates as
/// `{"type": "EMT"}` and `"output_prefix": null`: the results are ASE's own
/// keys (a 3x3 `stress` ASE reads), equal to what wfl writes.
#[test]
fn calculate_with_ase_class_names_and_output_prefix_null_writes_what_wfl_writes() {
    let Some(py) = python_or_skip("calculate_with_output_prefix_null") else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.xyz");
    autopara_testkit::run_python_on_files(&py, WRITE_INPUTS, &[&input]);
    autopara_testkit::run_python_on_files(&py, WFL_CALCULATE, &[&input, &dir.path().join("wfl.xyz")]);
    let args = r#"{"calculator": {"type": "EMT"}, "output_prefix": null, "verbose": true}"#;
    ok(dir.path(), &["run", "calculate", "-i", "in.xyz", "-o", "ours.xyz", "-q", "--args", args]);
    let both = run_python_json_on_files(&py, READ_BOTH, &[&dir.path().join("wfl.xyz"), &dir.path().join("ours.xyz")]);
    let (wfl, ours) = (both[0].as_array().expect("wfl"), both[1].as_array().expect("ours"));
    assert_eq!(wfl.len(), 2);
    assert_eq!(ours.len(), 2);
    for (i, (w, o)) in wfl.iter().zip(ours).enumerate() {
        assert_eq!(o["arrays"], w["arrays"], "frame {i}");
        // wfl stores the energy alone; we also write free_energy (equal for EMT).
        let keys = |r: &serde_json::Value| {
            r.as_object().expect("results").keys().filter(|k| *k != "free_energy").cloned().collect::<Vec<_>>()
        };
        assert_eq!(keys(&o["results"]), keys(&w["results"]), "frame {i}");
        for (k, v) in w["results"].as_object().expect("results") {
            let flat = |x: &serde_json::Value| match x {
                serde_json::Value::Array(a) => a.iter().map(|y| y.as_f64().expect("number")).collect::<Vec<_>>(),
                y => vec![y.as_f64().expect("number")],
            };
            let (a, b) = (flat(v), flat(&o["results"][k]));
            assert_eq!(a.len(), b.len(), "frame {i}: {k}");
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() < 1e-8 * (1.0 + x.abs()), "frame {i}: {k}: wfl {x}, ours {y}");
            }
        }
    }
    // Same calculator, same key: the lowercase tag reuses the output.
    let again = r#"{"calculator": {"type": "emt"}, "output_prefix": null}"#;
    let out = ok(dir.path(), &["run", "calculate", "-i", "in.xyz", "-o", "ours.xyz", "--args", again]);
    assert!(stderr(&out).contains("same key"), "{}", stderr(&out));
}

/// md's `logger_interval`, `logger_kwargs`, `verbose` and minim's `logfile`,
/// `verbose` run with one notice each and change neither outputs nor keys: a
/// rerun without them reuses the output.
#[test]
fn wfl_logging_arguments_run_with_a_notice_and_leave_the_key_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cu = autopara_testkit::fixtures::fcc(29, 3.61, [1, 1, 1]);
    cu.positions[0][0] += 0.1;
    extxyz::write_file(dir.path().join("in.xyz"), &[cu]).expect("write");
    let cases = [
        (
            "md",
            r#""steps": 5, "dt": 1.0, "temperature": 300.0, "logger_interval": 10, "logger_kwargs": {"logfile": "-"}, "verbose": true"#,
            r#""steps": 5, "dt": 1.0, "temperature": 300.0"#,
            vec!["logger_interval", "logger_kwargs", "verbose"],
        ),
        (
            "minim",
            r#""fmax": 0.1, "logfile": "opt.log", "verbose": true"#,
            r#""fmax": 0.1"#,
            vec!["logfile", "verbose"],
        ),
    ];
    for (op, with, without, ignored) in cases {
        let out_file = format!("{op}.xyz");
        let args = |rest: &str| format!(r#"{{"calculator": {{"type": "EMT"}}, {rest}}}"#);
        let first = ok(dir.path(), &["run", op, "-i", "in.xyz", "-o", &out_file, "--seed", "1", "--args", &args(with)]);
        let notes = stderr(&first);
        for name in ignored {
            let line = format!("autopara: {op}: ignoring wfl's `{name}`");
            assert_eq!(notes.matches(&line).count(), 1, "{op}: {notes}");
        }
        let second =
            ok(dir.path(), &["run", op, "-i", "in.xyz", "-o", &out_file, "--seed", "1", "--args", &args(without)]);
        assert!(stderr(&second).contains("same key"), "{op}: {}", stderr(&second));
    }
}

/// A step with one output per input file (`{stem}`) feeds a later step
/// through `@name`: the later step reads every file it wrote.
#[test]
fn a_stem_step_feeds_a_later_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, a) in [("a.xyz", 3.6), ("b.xyz", 3.7)] {
        let cu = autopara_testkit::fixtures::fcc(29, a, [1, 1, 1]);
        extxyz::write_file(dir.path().join(name), &[cu.clone(), cu]).expect("write");
    }
    let pipeline = r#"
[[step]]
name = "single"
op = "calculate"
inputs = ["a.xyz", "b.xyz"]
output = "single/{stem}.xyz"
args = { calculator = { type = "EMT" } }

[[step]]
name = "relaxed"
op = "minim"
inputs = ["@single"]
output = "relaxed.xyz"
args = { calculator = { type = "EMT" }, fmax = 0.1, traj_subselect = "last" }
"#;
    std::fs::write(dir.path().join("pipe.toml"), pipeline).expect("write");
    let out = ok(dir.path(), &["pipeline", "pipe.toml", "--quiet"]);
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(lines.contains("step relaxed: computed: 4 items, 0 failed"), "{lines}");
    for f in ["single/a.xyz", "single/b.xyz"] {
        assert_eq!(extxyz::read_file(dir.path().join(f)).expect("read").len(), 2, "{f}");
    }
    assert_eq!(extxyz::read_file(dir.path().join("relaxed.xyz")).expect("read").len(), 4);
    // A rerun reuses both steps.
    let again = String::from_utf8_lossy(&ok(dir.path(), &["pipeline", "pipe.toml", "--quiet"]).stdout).into_owned();
    assert!(again.contains("step single: reused") && again.contains("step relaxed: reused"), "{again}");
}

/// docs/coming-from-wfl.md states each op's default chunk size: it must be
/// the registered one.
#[test]
fn the_wfl_guide_states_the_default_chunk_sizes_in_use() {
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/coming-from-wfl.md"))
        .expect("docs/coming-from-wfl.md");
    let line = guide.lines().find(|l| l.contains("defaults per op")).expect("the chunk-size line");
    // `... (defaults per op: calculate 10, md 1, ...; ...)`: name and number pairs.
    let list = line.split("defaults per op").nth(1).and_then(|r| r.split(['(', ')', ';']).next()).expect("list");
    let stated: std::collections::BTreeMap<String, usize> = list
        .trim_start_matches([':', ' '])
        .split(", ")
        .filter_map(|pair| {
            let (name, n) = pair.trim().rsplit_once(' ')?;
            Some((name.to_string(), n.parse().ok()?))
        })
        .collect();
    let registered: std::collections::BTreeMap<String, usize> =
        autopara::registered_ops().iter().map(|r| (r.info.name.to_string(), r.info.default_chunk_size)).collect();
    assert_eq!(stated, registered, "docs/coming-from-wfl.md: {line}");
}
