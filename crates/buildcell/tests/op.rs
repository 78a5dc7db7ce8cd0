//! The op: registration, arguments, determinism under any chunking and worker
//! contexts, rattling, EXTRA_INFO, attempt limit, and bad input rejected when
//! the op is built (before any work).

mod common;

use autopara_buildcell::Buildcell;
use autopara_core::{InputKind, ItemOp, Operation, Value, WorkerContext, build_op, find_op};
use autopara_testkit::fixtures::counters;
use common::{LI, op_for_input};
use serde_json::json;

fn op(args: serde_json::Value) -> Box<dyn Operation> {
    build_op("buildcell", args).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn registered_as_a_counter_op_with_chunk_size_one() {
    let reg = find_op("buildcell").expect("registered");
    assert_eq!(reg.info.default_chunk_size, 1);
    assert_eq!(reg.info.input_kind, InputKind::Counters);
    assert_eq!(Buildcell::INFO.name, "buildcell");
}

#[test]
fn same_seed_and_counter_give_the_same_structure_whatever_the_chunking() {
    let op = op(json!({"buildcell_input": LI}));
    let items = counters(24);
    // Reference: one chunk in one worker.
    let mut ctx = WorkerContext::new(0, 42, "buildcell");
    let reference: Vec<_> = op.run_chunk(&items, &mut ctx);
    for chunk in [1usize, 5, 7] {
        // Chunks handed round-robin to three workers, each with its own context.
        let mut workers: Vec<WorkerContext> = (0..3).map(|w| WorkerContext::new(w, 42, "buildcell")).collect();
        let mut got = Vec::new();
        for (k, c) in items.chunks(chunk).enumerate() {
            got.extend(op.run_chunk(c, &mut workers[k % 3]));
        }
        assert_eq!(got, reference, "chunk size {chunk}");
    }
    // A different seed gives different structures.
    let other = op.run_chunk(&items, &mut WorkerContext::new(0, 43, "buildcell"));
    assert_ne!(other, reference);
    // Counters differ from each other.
    let first = reference.first().and_then(|r| r.as_ref().ok()).expect("ok");
    let second = reference.get(1).and_then(|r| r.as_ref().ok()).expect("ok");
    assert_ne!(first, second);
}

#[test]
fn perturbation_rattles_from_the_item_rng_and_extra_info_overrides() {
    let plain = op(json!({"buildcell_input": LI}));
    let rattled = op(json!({
        "buildcell_input": LI,
        "perturbation": 0.05,
        "extra_info": {"RSS_min_vol_per_atom": 12, "tag": "x", "v": [1.5, 2.0]}
    }));
    let items = counters(6);
    let a = plain.run_chunk(&items, &mut WorkerContext::new(0, 9, "buildcell"));
    let b = rattled.run_chunk(&items, &mut WorkerContext::new(0, 9, "buildcell"));
    let b2 = rattled.run_chunk(&items, &mut WorkerContext::new(1, 9, "buildcell"));
    assert_eq!(b, b2, "rattle is reproducible");
    let mut max_shift = 0.0f64;
    let mut sum_sq = 0.0;
    let mut n = 0.0;
    for (ra, rb) in a.iter().zip(&b) {
        let (x, y) = (&ra.as_ref().expect("ok")[0], &rb.as_ref().expect("ok")[0]);
        assert_eq!(x.cell, y.cell);
        assert_eq!(x.info.get("RSS_min_vol_per_atom"), Some(&Value::Float(10.0)));
        assert_eq!(y.info.get("RSS_min_vol_per_atom"), Some(&Value::Int(12)));
        assert_eq!(y.info.get("tag"), Some(&Value::Str("x".into())));
        assert_eq!(y.info.get("v"), Some(&Value::floats(vec![1.5, 2.0])));
        for (p, q) in x.positions.iter().zip(&y.positions) {
            for k in 0..3 {
                let d = q[k] - p[k];
                max_shift = max_shift.max(d.abs());
                sum_sq += d * d;
                n += 1.0;
            }
        }
    }
    let rms = (sum_sq / n).sqrt();
    assert!(rms > 0.03 && rms < 0.07, "rms displacement {rms} for stdev 0.05");
    assert!(max_shift < 0.05 * 6.0);
}

#[test]
fn an_unplaceable_structure_is_an_item_failure_not_a_hang() {
    // 8 atoms with MINSEP 3.05 in 20-21 Å³ per atom: a packing fraction of 0.71-0.74,
    // allowed by the densest-packing bound but far beyond what random placement
    // reaches; 3 attempts only.
    let text = "#TARGVOL=20-21\n#SPECIES=Si%NUM=1\n#NFORM=8\n#SYMMOPS=1\n#MINSEP=3.05\n";
    let op = op_for_input(text, 3);
    let items = counters(2);
    let res = op.run_chunk(&items, &mut WorkerContext::new(0, 1, "buildcell"));
    assert_eq!(res.len(), 2);
    for r in res {
        let err = r.expect_err("cannot be placed");
        assert!(err.message.contains("could not place a structure in 3 attempts"), "{}", err.message);
    }
}

#[test]
fn input_file_is_read_and_its_text_is_the_cache_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("li.cell");
    std::fs::write(&path, LI).expect("write");
    let from_file = op(json!({"buildcell_input_file": path}));
    let from_text = op(json!({"buildcell_input": LI}));
    assert_eq!(from_file.args(), from_text.args());
    assert_eq!(from_file.args()["symprec"], json!(0.01));
    let items = counters(2);
    assert_eq!(
        from_file.run_chunk(&items, &mut WorkerContext::new(0, 5, "buildcell")),
        from_text.run_chunk(&items, &mut WorkerContext::new(0, 5, "buildcell"))
    );
}

/// Builds the op from `text` and returns the error message.
fn build_error(text: &str) -> String {
    match build_op("buildcell", json!({ "buildcell_input": text })) {
        Ok(_) => panic!("accepted bad input:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_input_is_rejected_when_the_op_is_built_quoting_the_line() {
    let base = |replace: &str, with: &str| LI.replace(replace, with);
    // Malformed line.
    let e = build_error(&base("#SLACK=0.25", "#SLACK=lots"));
    assert!(e.contains("line 5") && e.contains("`#SLACK=lots`"), "{e}");
    let e = build_error(&base("#COMPACT", "COMPACT please"));
    assert!(e.contains("line 7") && e.contains("`COMPACT please`"), "{e}");
    // Unknown element, in SPECIES and in MINSEP.
    let e = build_error(&base("Li%NUM=1", "Lx%NUM=1"));
    assert!(e.contains("line 2") && e.contains("unknown element `Lx`"), "{e}");
    let e = build_error(&base("Li-Li=2.7", "Li-Qq=2.7"));
    assert!(e.contains("line 8") && e.contains("unknown element `Qq`"), "{e}");
    // Unknown key.
    let e = build_error(&format!("{LI}\n#CELLAMP=0.5"));
    assert!(e.contains("line 10") && e.contains("unknown key CELLAMP"), "{e}");
    // Empty NFORM (what create_input writes for an impossible natom range).
    let e = build_error(&base("{6,8,10,12,14,16,18,20,22,24}", "{}"));
    assert!(e.contains("line 3") && e.contains("empty NFORM"), "{e}");
    // MINSEP that makes the target volume impossible even within SLACK
    // ((1 - 0.25) x 4.5 Å spheres): quotes both lines. Li-Li=3.5 overfills the
    // volume only as hard spheres, and is a target the atoms get within SLACK of.
    let e = build_error(&base("Li-Li=2.7", "Li-Li=4.5"));
    assert!(e.contains("impossible") && e.contains("`#MINSEP=0.5 Li-Li=4.5`") && e.contains("`#TARGVOL=19-21`"), "{e}");
    assert!(build_op("buildcell", json!({ "buildcell_input": base("Li-Li=2.7", "Li-Li=3.5") })).is_ok());
    // SYMMOPS that no crystal has.
    let e = build_error(&base("#SYMMOPS=1-8", "#SYMMOPS=5"));
    assert!(e.contains("line 4") && e.contains("not possible for a crystal"), "{e}");
    // More atoms than a structure may have (checked before anything is allocated).
    let e = build_error(&base("{6,8,10,12,14,16,18,20,22,24}", "1-4000000000"));
    assert!(e.contains("line 3") && e.contains("NFORM above 1000"), "{e}");
    let e = build_error(&base("Li%NUM=1", "Li%NUM=4000000000"));
    assert!(e.contains("line 3") && e.contains("at most 1000"), "{e}");
    // Missing keys and bad arguments.
    assert!(build_error("#SPECIES=Li\n").contains("missing `#TARGVOL=`"));
    let e = build_op("buildcell", json!({"buildcell_input": LI, "perturbation": -1})).err().expect("rejected");
    assert!(e.to_string().contains("perturbation"), "{e}");
    let e = build_op("buildcell", json!({"buildcell_input": LI, "bogus": 1})).err().expect("rejected");
    assert!(e.to_string().contains("bogus"), "{e}");
    let e = build_op("buildcell", json!({})).err().expect("rejected");
    assert!(e.to_string().contains("buildcell_input"), "{e}");
}
