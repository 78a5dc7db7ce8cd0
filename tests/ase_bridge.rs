//! End to end: the `ase` calculator under `autopara run` and `autopara
//! pipeline`. One Python worker per autopara worker across chunks and ops;
//! md and minim through it follow ASE's own VelocityVerlet and LBFGS; a
//! constructor that fails is one error; a fault costs one item; and no
//! worker outlives autopara, however it ends.

use autopara::{Value, extxyz};
use autopara_testkit::bridge::{Recorded, alive};
use serde_json::{Value as Json, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_autopara");

/// Rattled fcc Cu cells (ASE's bulk and rattle), with Maxwell-Boltzmann momenta at 300 K.
const WRITE_CU: &str = r#"
import sys
import numpy as np
from ase.build import bulk
from ase.io import write
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
n = int(sys.argv[2])
rng = np.random.default_rng(11)
configs = []
for k in range(n):
    at = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    at.rattle(0.05, rng=rng)
    MaxwellBoltzmannDistribution(at, temperature_K=300, rng=rng)
    at.info["k"] = k
    configs.append(at)
write(sys.argv[1], configs)
"#;

struct Case {
    python: PathBuf,
    dir: tempfile::TempDir,
}

impl Case {
    fn new(test: &str) -> Option<Case> {
        let python = autopara_testkit::python_or_skip(test)?;
        Some(Case { python, dir: tempfile::tempdir().unwrap() })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `n` Cu configs written by ASE into `name`.
    fn cu_inputs(&self, name: &str, n: usize) -> PathBuf {
        let path = self.path(name);
        let status = Command::new(&self.python).args(["-c", WRITE_CU]).arg(&path).arg(n.to_string()).status().unwrap();
        assert!(status.success());
        path
    }

    /// An `ase` spec for `constructor` with `kwargs`, run by the reference interpreter.
    fn spec(&self, constructor: &str, kwargs: Json) -> Json {
        json!({
            "type": "ase", "constructor": constructor, "kwargs": kwargs,
            "python": self.python, "pythonpath": [autopara_testkit::bridge::modules()],
        })
    }

    fn autopara(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "autopara failed ({}):\n{stderr}", out.status);
    stderr
}

#[test]
fn one_worker_per_autopara_worker_across_chunks_ops_and_a_pipeline() {
    let Some(case) = Case::new("ase bridge pipeline") else { return };
    case.cu_inputs("in.xyz", 6);
    let recording = |log: &str| case.spec("bridge_test_calculators.RecordingEMT", json!({"log": case.path(log)}));
    let pipeline = format!(
        "[settings]\nworkers = 2\nchunk_size = 1\nseed = 3\n\n\
         [[step]]\nname = \"single\"\nop = \"calculate\"\ninputs = [\"in.xyz\"]\noutput = \"single.xyz\"\n\
         args = {{ calculator = {} }}\n\n\
         [[step]]\nname = \"md\"\nop = \"md\"\ninputs = [\"@single\"]\noutput = \"md.xyz\"\n\
         args = {{ calculator = {}, steps = 12, dt = 1.0, temperature = 300, temperature_tau = 20, integrator = \"Langevin\", traj_step_interval = 4 }}\n\n\
         [[step]]\nname = \"relaxed\"\nop = \"minim\"\ninputs = [\"@single\"]\noutput = \"relaxed.xyz\"\n\
         args = {{ calculator = {}, fmax = 0.05, keep_symmetry = false, traj_subselect = \"last\" }}\n",
        toml_inline(&recording("single.log")),
        toml_inline(&recording("md.log")),
        toml_inline(&recording("minim.log")),
    );
    std::fs::write(case.path("pipeline.toml"), pipeline).unwrap();
    ok(case.autopara(&["pipeline", "pipeline.toml", "--quiet"]).output().unwrap());

    Recorded::read(&case.path("single.log")).assert_once_per_worker("calculate", 2, 6);
    // md: the first evaluation and one per step, for each of 6 configs.
    Recorded::read(&case.path("md.log")).assert_once_per_worker("md", 2, 6 * 13);
    let minim = Recorded::read(&case.path("minim.log"));
    let minim_calls = minim.calculations();
    minim.assert_once_per_worker("minim", 2, minim_calls);
    assert!(minim_calls > 6, "minim made {minim_calls} calls");

    // The results are ASE's EMT: the same as the built-in EMT to its tested 1e-8.
    let single = extxyz::read_file(case.path("single.xyz")).unwrap();
    let native = case.path("native.xyz");
    let args = json!({"calculator": {"type": "emt"}}).to_string();
    ok(case
        .autopara(&["run", "calculate", "-i", "in.xyz", "-o"])
        .arg(&native)
        .args(["--args", &args, "-q"])
        .output()
        .unwrap());
    for (a, b) in single.iter().zip(extxyz::read_file(native).unwrap()) {
        let (e_bridge, e_native) = (a.info_f64("RecordingEMT_energy").unwrap(), b.info_f64("EMT_energy").unwrap());
        assert!((e_bridge - e_native).abs() < 1e-8 * e_native.abs().max(1.0), "{e_bridge} vs {e_native}");
        assert_eq!(a.info_f64("RecordingEMT_free_energy"), Some(e_bridge));
    }
    let md = extxyz::read_file(case.path("md.xyz")).unwrap();
    assert_eq!(md.len(), 6 * 4, "frames at steps 0, 4, 8, 12");
    assert!(
        md.iter().all(|f| f.info.contains_key("last_op__md_energy") && f.arrays.contains_key("last_op__md_energies"))
    );

    // A rerun reuses every step and starts no worker.
    let before = std::fs::read_to_string(case.path("md.log")).unwrap();
    ok(case.autopara(&["pipeline", "pipeline.toml", "--quiet"]).output().unwrap());
    assert_eq!(std::fs::read_to_string(case.path("md.log")).unwrap(), before);
}

/// A JSON object as a TOML inline table.
fn toml_inline(v: &Json) -> String {
    match v {
        Json::Object(m) => {
            let fields: Vec<String> = m.iter().map(|(k, v)| format!("{k} = {}", toml_inline(v))).collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Json::Array(items) => format!("[{}]", items.iter().map(toml_inline).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// ASE's VelocityVerlet with ASE's EMT from the same configuration and momenta.
const ASE_NVE: &str = r#"
import json, sys
from ase.io import read
from ase.calculators.emt import EMT
from ase.md.verlet import VelocityVerlet
from ase import units
at = read(sys.argv[1], 0)
at.calc = EMT()
VelocityVerlet(at, timestep=1.0 * units.fs).run(100)
print(json.dumps({"positions": at.positions.tolist(), "energy": at.get_potential_energy()}))
"#;

#[test]
fn nve_md_through_the_bridge_follows_ases_velocity_verlet() {
    let Some(case) = Case::new("ase bridge nve") else { return };
    let input = case.cu_inputs("in.xyz", 1);
    let theirs = autopara_testkit::run_python_json_on_files(&case.python, ASE_NVE, &[&input]);
    let args = json!({
        "calculator": case.spec("ase.calculators.emt.EMT", json!({})),
        "steps": 100, "dt": 1.0, "traj_step_interval": 100,
    })
    .to_string();
    ok(case.autopara(&["run", "md", "-i", "in.xyz", "-o", "md.xyz", "--args", &args, "-q"]).output().unwrap());
    let frames = extxyz::read_file(case.path("md.xyz")).unwrap();
    let last = frames.last().unwrap();
    assert_eq!(last.info["MD_step"], Value::Int(100));
    let start = &frames[0].positions;
    let mut moved = 0.0f64;
    for (i, (p, q)) in last.positions.iter().zip(theirs["positions"].as_array().unwrap()).enumerate() {
        for k in 0..3 {
            let d = (p[k] - q[k].as_f64().unwrap()).abs();
            assert!(d < 1e-8, "atom {i} axis {k}: ours {} vs ASE's {} after 100 steps", p[k], q[k]);
            moved = moved.max((p[k] - start[i][k]).abs());
        }
    }
    assert!(moved > 0.05, "the atoms hardly moved ({moved} A)");
    let e = last.info_f64("last_op__md_energy").unwrap();
    assert!((e - theirs["energy"].as_f64().unwrap()).abs() < 1e-8);
}

/// ASE's LBFGS with a calculation-counting EMT.
const ASE_LBFGS: &str = r#"
import json, sys
from ase.io import read
from ase.calculators.emt import EMT
from ase.optimize import LBFGS
class Counting(EMT):
    calls = 0
    def calculate(self, *args, **kwargs):
        Counting.calls += 1
        super().calculate(*args, **kwargs)
at = read(sys.argv[1], 0)
del at.arrays["momenta"]
at.calc = Counting()
converged = LBFGS(at, logfile=None).run(fmax=1e-3, steps=200)
print(json.dumps({"positions": at.positions.tolist(), "energy": at.get_potential_energy(), "calls": Counting.calls, "converged": bool(converged)}))
"#;

#[test]
fn minim_through_the_bridge_reaches_ases_minimum_with_as_many_calculations() {
    let Some(case) = Case::new("ase bridge minim") else { return };
    let input = case.cu_inputs("in.xyz", 1);
    let theirs = autopara_testkit::run_python_json_on_files(&case.python, ASE_LBFGS, &[&input]);
    let args = json!({
        "calculator": case.spec("bridge_test_calculators.RecordingEMT", json!({"log": case.path("minim.log")})),
        "optimizer": "LBFGS", "fmax": 1e-3, "steps": 200, "keep_symmetry": false, "traj_subselect": "last",
    })
    .to_string();
    ok(case.autopara(&["run", "minim", "-i", "in.xyz", "-o", "min.xyz", "--args", &args, "-q"]).output().unwrap());
    let last = extxyz::read_file(case.path("min.xyz")).unwrap().pop().unwrap();
    assert_eq!(last.info["optimize_config_type"].as_str(), Some("optimize_last_converged"));
    assert_eq!(theirs["converged"], json!(true));
    let ours = Recorded::read(&case.path("minim.log")).calculations();
    assert_eq!(ours as u64, theirs["calls"].as_u64().unwrap(), "EMT calculations: ours vs ASE's LBFGS");
    for (p, q) in last.positions.iter().zip(theirs["positions"].as_array().unwrap()) {
        for k in 0..3 {
            assert!((p[k] - q[k].as_f64().unwrap()).abs() < 1e-6, "{p:?} vs {q}");
        }
    }
    let e = last.info_f64("last_op__optimize_energy").unwrap();
    assert!((e - theirs["energy"].as_f64().unwrap()).abs() < 1e-8);
}

#[test]
fn a_constructor_that_fails_is_one_error_before_any_output() {
    let Some(case) = Case::new("ase bridge construction") else { return };
    case.cu_inputs("in.xyz", 4);
    for (op, extra) in [("calculate", json!({})), ("md", json!({"steps": 3, "dt": 1.0}))] {
        for constructor in ["bridge_test_calculators.raising", "no_such_package_here.Calculator"] {
            let mut args = extra.clone();
            args["calculator"] = case.spec(constructor, json!({"model": "gap.xml"}));
            let out = case
                .autopara(&["run", op, "-i", "in.xyz", "-o", "out.xyz", "--workers", "2", "--chunk-size", "1"])
                .args(["--args", &args.to_string(), "-q"])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{op} {constructor}: the run succeeded:\n{stderr}");
            let expected = if constructor.ends_with("raising") {
                "the constructor raised RuntimeError: no model file for ['model']"
            } else {
                "ModuleNotFoundError: No module named 'no_such_package_here'"
            };
            assert!(stderr.contains(expected) && stderr.contains(constructor), "{op}: {stderr}");
            // One error (with the traceback's tail), no failure records, no output.
            assert_eq!(stderr.matches("autopara: error").count(), 1, "{op}: one error, said once:\n{stderr}");
            assert!(stderr.contains("Traceback"), "{op}: {stderr}");
            assert!(!case.path("out.xyz").exists() && !case.path("out.xyz.failures.jsonl").exists(), "{op}");
        }
    }
}

#[test]
fn a_fault_costs_one_item_and_the_run_completes() {
    let Some(case) = Case::new("ase bridge faults") else { return };
    let mut configs = Vec::new();
    for (k, fault) in ["", "raise", "", "exit", "", "segv", ""].iter().enumerate() {
        let mut at = autopara::Atoms::new(vec![1, 1], vec![[0.0; 3], [0.74, 0.0, 0.0]]);
        at.info.insert("k".into(), Value::Int(k as i64));
        if !fault.is_empty() {
            at.info.insert("fault".into(), Value::Str((*fault).into()));
        }
        configs.push(at);
    }
    extxyz::write_file(case.path("in.xyz"), &configs).unwrap();
    let args = json!({
        "calculator": case.spec("bridge_test_calculators.Probe", json!({})),
        "properties": ["energy", "forces"], "raise_calc_exceptions": true,
    })
    .to_string();
    let stderr = ok(case
        .autopara(&["run", "calculate", "-i", "in.xyz", "-o", "out.xyz", "--args", &args, "--chunk-size", "2"])
        .output()
        .unwrap());
    let out = extxyz::read_file(case.path("out.xyz")).unwrap();
    let done: Vec<i64> = out.iter().map(|a| a.info["k"].as_i64().unwrap()).collect();
    assert_eq!(done, vec![0, 2, 4, 6], "{stderr}");
    assert!(out.iter().all(|a| a.info_f64("Probe_energy") == Some(2.0)));
    let failures = std::fs::read_to_string(case.path("out.xyz.failures.jsonl")).unwrap();
    let records: Vec<Json> = failures.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.iter().map(|r| r["index"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 3, 5]);
    let message = |k: usize| records[k]["message"].as_str().unwrap().to_string();
    assert!(message(0).contains("Probe raised ValueError: refusing a config of 2 atoms"), "{}", message(0));
    assert!(message(0).contains("probe: about to fail"), "the stderr tail: {}", message(0));
    assert!(message(1).contains("exit status: 3"), "{}", message(1));
    assert!(message(2).contains("SIGSEGV"), "{}", message(2));
}

#[test]
fn configs_may_change_the_kwargs_of_the_runs_constructor_but_not_choose_another() {
    let Some(case) = Case::new("ase bridge overrides") else { return };
    let lj = case.spec("ase.calculators.lj.LennardJones", json!({"sigma": 2.3, "epsilon": 0.4, "rc": 6.0}));
    let mut configs = Vec::new();
    for k in 0..4 {
        let mut at = autopara::Atoms::new(vec![18; 2], vec![[0.0; 3], [2.6, 0.0, 0.0]]);
        at.info.insert("k".into(), Value::Int(k));
        configs.push(at);
    }
    let mut kwargs = lj.clone();
    kwargs["kwargs"]["sigma"] = json!(2.5);
    configs[1]
        .info
        .insert("AUTOPARA_CALCULATOR_KWARGS".into(), Value::Str(json!({"kwargs": kwargs["kwargs"]}).to_string()));
    let emt = case.spec("ase.calculators.emt.EMT", json!({}));
    configs[2].info.insert("AUTOPARA_CALCULATOR".into(), Value::Str(emt.to_string()));
    // A whole spec of the run's constructor, interpreter and path: its own kwargs.
    let mut own = lj.clone();
    own["kwargs"]["sigma"] = json!(2.4);
    configs[3].info.insert("AUTOPARA_CALCULATOR".into(), Value::Str(own.to_string()));
    extxyz::write_file(case.path("in.xyz"), &configs).unwrap();
    let args = json!({"calculator": lj, "properties": ["energy"]}).to_string();
    ok(case.autopara(&["run", "calculate", "-i", "in.xyz", "-o", "out.xyz", "--args", &args, "-q"]).output().unwrap());
    let out = extxyz::read_file(case.path("out.xyz")).unwrap();
    let lj_energy = |sigma: f64| {
        let u = |r: f64| 4.0 * 0.4 * ((sigma / r).powi(12) - (sigma / r).powi(6));
        u(2.6) - u(6.0)
    };
    let e0 = out[0].info_f64("LennardJones_energy").unwrap();
    let e1 = out[1].info_f64("LennardJones_energy").unwrap();
    let e3 = out[2].info_f64("LennardJones_energy").unwrap();
    assert!((e0 - lj_energy(2.3)).abs() < 1e-12 && (e1 - lj_energy(2.5)).abs() < 1e-12, "{e0} {e1}");
    assert!((e3 - lj_energy(2.4)).abs() < 1e-12, "{e3}");
    // The third would have run another constructor: refused, as a failure record.
    assert_eq!(out.len(), 3);
    let failures = std::fs::read_to_string(case.path("out.xyz.failures.jsonl")).unwrap();
    let record: Json = serde_json::from_str(failures.trim()).unwrap();
    let why = record["message"].as_str().unwrap();
    assert_eq!(record["index"], json!(2));
    assert!(why.contains("AUTOPARA_CALCULATOR") && why.contains("ase.calculators.emt.EMT"), "{why}");
}

/// Processes whose environment holds `tag`.
fn tagged(tag: &str) -> BTreeSet<u32> {
    let needle = format!("AUTOPARA_TEST_TAG={tag}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
                && alive(*pid)
        })
        .collect()
}

#[test]
fn no_worker_outlives_autopara_ended_by_a_signal() {
    let Some(case) = Case::new("ase bridge signals") else { return };
    let mut configs = Vec::new();
    for _ in 0..4 {
        let mut at = autopara::Atoms::new(vec![1, 1], vec![[0.0; 3], [0.74, 0.0, 0.0]]);
        at.info.insert("fault".into(), Value::Str("sleep".into()));
        at.info.insert("mark".into(), Value::Str(case.path("marks").to_string_lossy().into_owned()));
        configs.push(at);
    }
    extxyz::write_file(case.path("in.xyz"), &configs).unwrap();
    let args = json!({"calculator": case.spec("bridge_test_calculators.Probe", json!({})), "steps": 5, "dt": 1.0});
    // The pids of the workers that are sleeping in a calculation.
    let sleeping = || -> BTreeSet<u32> {
        std::fs::read_dir(case.path("marks"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("sleeping-")?.parse().ok())
            .collect()
    };
    for signal in ["TERM", "INT", "KILL"] {
        std::fs::create_dir_all(case.path("marks")).unwrap();
        let tag = format!("{}-{signal}", std::process::id());
        let mut run = case
            .autopara(&["run", "md", "-i", "in.xyz", "-o", &format!("{signal}.xyz"), "--workers", "2"])
            .args(["--chunk-size", "1", "--args", &args.to_string(), "-q"])
            .env("AUTOPARA_TEST_TAG", &tag)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Both workers' Python processes are up and sleeping in a calculation
        // (not reading their input, whose end would make them exit).
        let start = Instant::now();
        while sleeping().len() < 2 {
            assert!(start.elapsed() < Duration::from_secs(60), "SIG{signal}: workers never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Those sleeping are autopara's own workers (another child may be
        // starting or ending; it too must be gone once autopara is).
        let children: BTreeSet<u32> = tagged(&tag).into_iter().filter(|&p| p != run.id()).collect();
        assert!(sleeping().is_subset(&children), "SIG{signal}: sleeping {:?}, children {children:?}", sleeping());
        Command::new("kill").args([&format!("-{signal}"), &run.id().to_string()]).status().unwrap();
        run.wait().unwrap();
        let start = Instant::now();
        while !tagged(&tag).is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "SIG{signal}: worker processes {:?} outlived autopara",
                tagged(&tag)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::remove_dir_all(case.path("marks")).unwrap();
    }
}

#[test]
fn listed_by_autopara_calculators_and_the_interpreter_is_the_field_then_autopara_python_then_python3() {
    let Some(case) = Case::new("ase bridge interpreter") else { return };
    let listing = Command::new(BIN).arg("calculators").output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    let mut lines = listing.lines().skip_while(|l| !l.starts_with("ase: "));
    assert!(lines.next().is_some(), "no ase in:\n{listing}");
    let fields: Vec<&str> =
        lines.take_while(|l| l.starts_with("    ")).filter_map(|l| Some(l.trim_start().split_once(':')?.0)).collect();
    assert_eq!(fields, ["constructor", "args", "kwargs", "python", "pythonpath", "timeout", "threads"], "{listing}");

    // Three interpreters, each the reference Python noting its name when started.
    let bin = case.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let which = case.path("which.log");
    for name in ["field", "env", "python3"] {
        let exe = bin.join(name);
        let script =
            format!("#!/bin/sh\necho {name} >> '{}'\nexec '{}' \"$@\"\n", which.display(), case.python.display());
        autopara_testkit::bridge::write_executable(&exe, &script);
    }
    extxyz::write_file(case.path("in.xyz"), &[autopara::Atoms::new(vec![1, 1], vec![[0.0; 3], [0.74, 0.0, 0.0]])])
        .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut spec = case.spec("bridge_test_calculators.Probe", json!({}));
    for (python, env, expected) in [(Some("field"), true, "field"), (None, true, "env"), (None, false, "python3")] {
        match python {
            Some(name) => spec["python"] = json!(bin.join(name)),
            None => drop(spec.as_object_mut().unwrap().remove("python")),
        }
        let args = json!({"calculator": spec, "properties": ["energy"]}).to_string();
        let mut cmd = case.autopara(&["run", "calculate", "-i", "in.xyz", "-o", "out.xyz", "--overwrite", "-q"]);
        cmd.args(["--args", &args]).env("PATH", &path).env_remove("AUTOPARA_PYTHON");
        if env {
            cmd.env("AUTOPARA_PYTHON", bin.join("env"));
        }
        let _ = std::fs::remove_file(&which);
        ok(cmd.output().unwrap());
        let started = std::fs::read_to_string(&which).unwrap_or_default();
        assert!(
            !started.is_empty() && started.lines().all(|l| l == expected),
            "python field {python:?}, AUTOPARA_PYTHON set: {env}: started {started:?}, expected {expected}"
        );
    }
}
