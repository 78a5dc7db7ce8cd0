//! The buildcell op through the core runner: identical structures for any
//! number of worker threads and chunk size, and an extxyz output that ASE reads
//! back with wfl's info keys (and spglib agrees with `buildcell_symmetry`).

mod common;

use autopara_buildcell as _; // links the op's registration
use autopara_core::{Atoms, AutoparaInfo, ConfigSet, OutputSpec, Value, build_op, runner};
use autopara_testkit::fixtures::memory_outputs;
use autopara_testkit::{python_or_skip, run_python_json};
use common::LI;
use serde_json::json;

fn run(n: u64, workers: usize, chunk_size: usize, output: &OutputSpec) -> runner::RunSummary {
    let op = build_op("buildcell", json!({"buildcell_input": LI})).expect("buildcell op");
    let info = AutoparaInfo {
        workers: Some(workers),
        chunk_size: Some(chunk_size),
        seed: Some(7),
        progress: Some(false),
        ..Default::default()
    };
    runner::run(op.as_ref(), &ConfigSet::counters(n), output, &info).expect("run")
}

fn structures(summary: runner::RunSummary) -> Vec<Atoms> {
    memory_outputs(summary.outputs)
}

#[test]
fn identical_for_any_workers_and_chunking() {
    let reference = structures(run(20, 1, 1, &OutputSpec::memory()));
    assert_eq!(reference.len(), 20);
    for (i, at) in reference.iter().enumerate() {
        assert_eq!(at.info.get("buildcell_config_i"), Some(&Value::Int(i as i64)));
    }
    for (workers, chunk) in [(2, 1), (2, 3), (3, 7)] {
        assert_eq!(
            structures(run(20, workers, chunk, &OutputSpec::memory())),
            reference,
            "{workers} workers, chunk {chunk}"
        );
    }
}

const ASE_READ: &str = r#"
import json, sys
import ase.io, spglib
import numpy as np
out = []
for a in ase.io.read(sys.stdin.read().strip(), ":"):
    d = spglib.get_symmetry_dataset((a.cell[:], a.get_scaled_positions(), a.numbers), symprec=0.01)
    out.append({
        "n": len(a), "pbc": [bool(p) for p in a.pbc], "volume": float(a.get_volume()),
        "config_type": a.info["config_type"], "config_i": int(a.info["buildcell_config_i"]),
        "config_i_integer": isinstance(a.info["buildcell_config_i"], (int, np.integer)),
        "symmetry": a.info["buildcell_symmetry"], "rss": float(a.info["RSS_min_vol_per_atom"]),
        "rss_float": isinstance(a.info["RSS_min_vol_per_atom"], (float, np.floating)),
        "spglib": "{} {} {} @ {}".format(d.number, d.international, d.hall, 0.01),
        "near": [spglib.get_symmetry_dataset((a.cell[:], a.get_scaled_positions(), a.numbers), symprec=p).number for p in (0.005, 0.02)],
    })
print(json.dumps(out))
"#;

#[test]
fn extxyz_output_reads_back_in_ase_with_wfl_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("li_rss.xyz");
    run(30, 2, 1, &OutputSpec::file(&path));
    let Some(py) = python_or_skip("extxyz_output_reads_back_in_ase_with_wfl_keys") else { return };
    let frames = run_python_json(&py, ASE_READ, &path.display().to_string());
    let frames = frames.as_array().expect("list");
    assert_eq!(frames.len(), 30);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["config_type"], json!("buildcell"));
        assert_eq!(f["config_i"], json!(i));
        assert_eq!(f["config_i_integer"], json!(true), "an integer, as wfl writes it");
        assert_eq!(f["rss_float"], json!(true));
        assert_eq!(f["rss"], json!(10.0));
        assert_eq!(f["pbc"], json!([true, true, true]));
        let n = f["n"].as_f64().expect("n");
        let per_atom = f["volume"].as_f64().expect("volume") / n;
        assert!((19.0 - 1e-6..=21.0 + 1e-6).contains(&per_atom), "frame {i}: {per_atom}");
        let ours = f["symmetry"].as_str().expect("str");
        if ours != f["spglib"].as_str().expect("str") {
            // Only structures on a tolerance boundary (see tests/reference.rs).
            let number: i64 = ours.split(' ').next().and_then(|s| s.parse().ok()).expect("number");
            assert!(f["near"].as_array().expect("list").contains(&json!(number)), "frame {i}: {f}");
        }
    }
}
