//! End-to-end runs through `runner::run` with file inputs and outputs: determinism
//! across workers and chunk sizes, failure records, the cache (reuse, refusal,
//! overwrite, explain, empty outputs, retry-failed), locking and bounded memory.

use autopara_core::cache::{self, lock::OutputLock};
use autopara_core::outputspec::Outputs;
use autopara_core::runner::{self, Action};
use autopara_core::sidecar;
use autopara_core::{
    Atoms, AutoparaInfo, ConfigSet, Error, InputKind, Item, ItemFailure, ItemResult, OpInfo, OpRegistration, Operation,
    OutputSpec, Value, WorkerContext, extxyz,
};
use autopara_testkit::fixtures::cu_pairs;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

static INFO: OpInfo = OpInfo {
    name: "test_rattle",
    version: 1,
    default_chunk_size: 3,
    summary: "rattle positions (runner tests)",
    input_kind: InputKind::Configs,
};

/// Rattles positions by the item's RNG; items listed in `fail` return an error,
/// in `panic` panic. Item 1 gives two frames (a short trajectory).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rattle {
    #[serde(default = "default_amplitude")]
    amplitude: f64,
    #[serde(default)]
    fail: Vec<u64>,
    #[serde(default)]
    panic: Vec<u64>,
}

fn default_amplitude() -> f64 {
    0.1
}

impl Operation for Rattle {
    fn info(&self) -> &'static OpInfo {
        &INFO
    }
    fn args(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn run_chunk(&self, items: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult> {
        items
            .iter()
            .map(|item| {
                if self.fail.contains(&item.index) {
                    return Err(ItemFailure::new(format!("refusing item {}", item.index)));
                }
                if self.panic.contains(&item.index) {
                    panic!("item {} exploded", item.index);
                }
                let mut at = item.atoms()?.clone();
                let mut rng = ctx.rng(item);
                for p in &mut at.positions {
                    for x in p.iter_mut() {
                        *x += rng.random_range(-self.amplitude..self.amplitude);
                    }
                }
                at.info.insert("rattled".into(), Value::Bool(true));
                Ok(if item.index == 1 { vec![at.clone(), at] } else { vec![at] })
            })
            .collect()
    }
}

fn build(args: serde_json::Value) -> autopara_core::Result<Box<dyn Operation>> {
    Ok(Box::new(autopara_core::args::parse::<Rattle>(args).map_err(|e| e.in_context("test_rattle"))?))
}

autopara_core::inventory::submit! { OpRegistration { info: &INFO, build } }

fn op(args: serde_json::Value) -> Box<dyn Operation> {
    autopara_core::build_op("test_rattle", args).unwrap()
}

fn write_inputs(path: &Path, n: usize) {
    extxyz::write_file(path, &cu_pairs(n, 0.01)).unwrap();
}

fn info(workers: usize, chunk: usize) -> AutoparaInfo {
    AutoparaInfo { workers: Some(workers), chunk_size: Some(chunk), progress: Some(false), ..Default::default() }
}

fn inputs(path: &Path) -> ConfigSet {
    ConfigSet::from_paths(&[path.to_str().unwrap()]).unwrap()
}

#[test]
fn file_outputs_bit_identical_for_any_workers_and_chunk_size() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 30);
    let op = op(serde_json::json!({}));
    let reference = dir.path().join("ref.xyz");
    runner::run(op.as_ref(), &inputs(&input), &OutputSpec::file(&reference), &info(1, 1)).unwrap();
    let bytes = std::fs::read(&reference).unwrap();
    for workers in [1, 2, 4] {
        for chunk in [1, 3, 7] {
            let out = dir.path().join(format!("w{workers}c{chunk}.xyz"));
            let s = runner::run(op.as_ref(), &inputs(&input), &OutputSpec::file(&out), &info(workers, chunk)).unwrap();
            assert_eq!(s.action, Action::Computed);
            assert_eq!(std::fs::read(&out).unwrap(), bytes, "workers {workers} chunk {chunk}");
        }
    }
    let frames = extxyz::read_file(&reference).unwrap();
    assert_eq!(frames.len(), 31);
    assert_ne!(frames[0].positions[0], frames[2].positions[0], "items get different streams");
    let seeded = dir.path().join("seed1.xyz");
    let mut i = info(2, 3);
    i.seed = Some(1);
    runner::run(op.as_ref(), &inputs(&input), &OutputSpec::file(&seeded), &i).unwrap();
    assert_ne!(extxyz::read_file(&seeded).unwrap()[0].positions, frames[0].positions, "seeds differ");
}

/// Workers parse the input frames and encode (tag and format) the outputs;
/// the bytes, and the errors of a bad input frame or of a configuration the
/// writer refuses, are those of the driver doing it all.
#[test]
fn workers_parse_and_write_as_the_driver_would() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 30);
    let op = op(serde_json::json!({}));
    let tag = |spec: OutputSpec| spec.with_tag("stage", Value::Str("two".into())).with_tag("n", Value::Int(2));
    // In memory, tags are added and nothing is formatted by the workers.
    let s = runner::run(op.as_ref(), &inputs(&input), &tag(OutputSpec::memory()), &info(1, 1)).unwrap();
    let Outputs::Memory(frames) = s.outputs else { panic!("memory expected") };
    let expected = extxyz::to_string(&frames).unwrap();
    for (workers, chunk) in [(1, 1), (2, 1), (2, 4)] {
        let out = dir.path().join(format!("w{workers}c{chunk}.xyz"));
        runner::run(op.as_ref(), &inputs(&input), &tag(OutputSpec::file(&out)), &info(workers, chunk)).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), expected, "workers {workers} chunk {chunk}");
    }

    // A bad frame in the middle: the error of reading the file alone.
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let bad = dir.path().join("bad.xyz");
    let mut broken = lines.clone();
    let line = 17 * 4 + 3; // an atom line of frame 17 (frames of two atoms)
    let garbled = broken[line].replacen(' ', " x", 1);
    broken[line] = &garbled;
    std::fs::write(&bad, broken.join("\n") + "\n").unwrap();
    let expected = extxyz::read_file(&bad).unwrap_err().to_string();
    assert!(expected.contains("frame 17, line 72"), "{expected}");
    for (workers, chunk) in [(1, 1), (2, 1), (2, 5)] {
        let out = dir.path().join(format!("bad{workers}{chunk}.xyz"));
        let e = runner::run(op.as_ref(), &inputs(&bad), &OutputSpec::file(&out), &info(workers, chunk)).unwrap_err();
        assert!(matches!(e, Error::Parse { frame: 17, line: 72, .. }), "{e}");
        assert_eq!(e.to_string(), expected);
    }

    // A result the writer refuses (a column name with a space) fails the
    // run alike, whoever formats it.
    let mut errors = Vec::new();
    for workers in [1, 2] {
        let out = dir.path().join(format!("refused{workers}.xyz"));
        let e = runner::map(&inputs(&input), &OutputSpec::file(&out), &info(workers, 2), |mut at: Atoms, _: &mut _| {
            if at.info.get("i") == Some(&Value::Int(9)) {
                at.arrays.insert("a b".into(), autopara_core::Column::vec3(&at.positions.clone()));
            }
            at
        })
        .unwrap_err();
        errors.push(e.to_string().replace(&format!("refused{workers}"), "refused"));
    }
    assert!(errors[0].contains("cannot be an extxyz column name"), "{}", errors[0]);
    assert_eq!(errors[0], errors[1]);
}

#[test]
fn failures_are_recorded_beside_the_output_and_stop_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 12);
    let failing = op(serde_json::json!({ "fail": [3, 8], "panic": [5] }));
    let out = dir.path().join("out.xyz");
    let s = runner::run(failing.as_ref(), &inputs(&input), &OutputSpec::file(&out), &info(2, 4)).unwrap();
    assert_eq!((s.stats.items, s.stats.failed), (12, 3));
    assert_eq!(s.records[0].failed, 3);
    assert_eq!(extxyz::read_file(&out).unwrap().len(), 12 - 3 + 1);
    let records = cache::read_failures(&out).unwrap();
    assert_eq!(records.iter().map(|r| r.index).collect::<Vec<_>>(), vec![3, 5, 8]);
    assert_eq!(records[0].message, "refusing item 3");
    assert_eq!(records[0].location, " / 0 / 3");
    assert!(records[1].message.starts_with("panicked: item 5 exploded"), "{}", records[1].message);
    assert_eq!(records[2].op, "test_rattle");

    // Stop at the first failure: the error names it; the rerun resumes there.
    let stop = dir.path().join("stop.xyz");
    let mut strict = info(2, 2);
    strict.skip_failed = Some(false);
    let e = runner::run(failing.as_ref(), &inputs(&input), &OutputSpec::file(&stop), &strict).unwrap_err();
    assert!(matches!(&e, Error::ItemFailed { index: 3, .. }), "{e}");
    assert!(e.to_string().contains("item 3 ( / 0 / 3) failed in op test_rattle: refusing item 3"), "{e}");
    assert!(!stop.exists(), "an unfinished output never appears under its final name");
    let plan = runner::explain(failing.as_ref(), &inputs(&input), &OutputSpec::file(&stop), &info(1, 1)).unwrap();
    assert!(plan.starts_with("resume:") && plan.contains("continuing from item 3"), "{plan}");
    let s = runner::run(failing.as_ref(), &inputs(&input), &OutputSpec::file(&stop), &info(1, 5)).unwrap();
    assert_eq!(s.action, Action::Resumed { from: 3 });
    assert_eq!(std::fs::read(&stop).unwrap(), std::fs::read(&out).unwrap());
    assert_eq!(
        std::fs::read(sidecar::failures_path(&stop)).unwrap(),
        std::fs::read(sidecar::failures_path(&out)).unwrap()
    );
}

#[test]
fn cache_reuses_refuses_stale_and_recomputes_with_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 5);
    let out = dir.path().join("out.xyz");
    let spec = OutputSpec::file(&out);
    let a = op(serde_json::json!({ "amplitude": 0.1 }));
    assert!(runner::explain(a.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap().starts_with("compute:"));
    assert_eq!(runner::run(a.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap().action, Action::Computed);
    let first = std::fs::read(&out).unwrap();
    assert_eq!(runner::run(a.as_ref(), &inputs(&input), &spec, &info(2, 2)).unwrap().action, Action::Reused);
    assert!(runner::explain(a.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap().starts_with("reuse:"));

    let b = op(serde_json::json!({ "amplitude": 0.2 }));
    let e = runner::run(b.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap_err().to_string();
    assert!(e.contains("args.amplitude: 0.1 -> 0.2") && e.contains("--overwrite"), "{e}");
    let why = runner::explain(b.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap();
    assert!(why.starts_with("refuse:") && why.contains("args.amplitude"), "{why}");
    let mut seeded = info(1, 1);
    seeded.seed = Some(4);
    let e = runner::run(a.as_ref(), &inputs(&input), &spec, &seeded).unwrap_err().to_string();
    assert!(e.contains("seed 0 -> 4"), "{e}");
    let tagged = OutputSpec::file(&out).with_tag("stage", Value::Str("two".into()));
    let e = runner::run(a.as_ref(), &inputs(&input), &tagged, &info(1, 1)).unwrap_err().to_string();
    assert!(e.contains("tags.stage: (absent) -> \"two\""), "{e}");

    // Changed inputs are detected by content.
    write_inputs(&input, 6);
    let e = runner::run(a.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap_err().to_string();
    assert!(e.contains("input digest differs"), "{e}");
    write_inputs(&input, 5);
    assert_eq!(runner::run(a.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap().action, Action::Reused);

    let s = runner::run(b.as_ref(), &inputs(&input), &spec.clone().overwrite(true), &info(1, 1)).unwrap();
    assert_eq!(s.action, Action::Computed);
    assert_ne!(std::fs::read(&out).unwrap(), first);
    assert_eq!(runner::run(b.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap().action, Action::Reused);

    // A file autopara did not write is refused unless overwrite.
    let foreign = dir.path().join("foreign.xyz");
    std::fs::write(&foreign, "BOB").unwrap();
    let e = runner::run(a.as_ref(), &inputs(&input), &OutputSpec::file(&foreign), &info(1, 1)).unwrap_err();
    assert!(e.to_string().contains("no autopara record"), "{e}");

    // In-memory outputs are always computed.
    for _ in 0..2 {
        let s = runner::run(a.as_ref(), &inputs(&input), &OutputSpec::memory(), &info(2, 1)).unwrap();
        assert_eq!(s.action, Action::Computed);
        let Outputs::Memory(configs) = s.outputs else { panic!("memory expected") };
        assert_eq!(configs.len(), 6);
    }
}

#[test]
fn empty_outputs_are_complete_and_keyed_and_feed_next_steps_as_no_items() {
    let dir = tempfile::tempdir().unwrap();
    let a = op(serde_json::json!({}));
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 4);
    let all_fail = op(serde_json::json!({ "fail": [0, 1, 2, 3] }));
    let failed = dir.path().join("failed.xyz");
    let s = runner::run(all_fail.as_ref(), &inputs(&input), &OutputSpec::file(&failed), &info(2, 1)).unwrap();
    assert_eq!(s.stats.failed, 4);
    assert_eq!(std::fs::read(&failed).unwrap(), b"");
    assert_eq!(cache::read_record(&failed).unwrap().map(|r| (r.items, r.configs)), Some((4, 0)));
    assert!(sidecar::is_empty_output(&failed).unwrap());
    assert_eq!(cache::read_failures(&failed).unwrap().len(), 4);
    let again = runner::run(all_fail.as_ref(), &inputs(&input), &OutputSpec::file(&failed), &info(2, 1)).unwrap();
    assert_eq!(again.action, Action::Reused);

    // The empty output is the input of a next step (as in a pipeline): no
    // items, and an empty, complete, keyed output again.
    let next = dir.path().join("next.xyz");
    let s = runner::run(a.as_ref(), &inputs(&failed), &OutputSpec::file(&next), &info(2, 1)).unwrap();
    assert_eq!((s.action, s.stats.items), (Action::Computed, 0));
    assert_eq!(std::fs::read(&next).unwrap(), b"");
    assert!(sidecar::is_empty_output(&next).unwrap());
    let s = runner::run(a.as_ref(), &inputs(&failed), &OutputSpec::file(&next), &info(2, 1)).unwrap();
    assert_eq!(s.action, Action::Reused);
    // Beside other inputs it contributes nothing and keeps their file indices.
    let both = Outputs::Files(vec![failed.clone(), input.clone()]).into_config_set();
    let files: Vec<Option<usize>> = both.items().unwrap().map(|i| i.unwrap().location.file).collect();
    assert_eq!(files, vec![Some(1); 4]);
    let s = runner::run(a.as_ref(), &both, &OutputSpec::memory(), &info(1, 2)).unwrap();
    assert_eq!(s.stats.items, 4);

    // Any other empty file is an error naming it: a user's empty or blank
    // input, or an output emptied after autopara wrote it.
    let empty_in = dir.path().join("empty_in.xyz");
    let full = dir.path().join("full.xyz");
    runner::run(a.as_ref(), &inputs(&input), &OutputSpec::file(&full), &info(1, 1)).unwrap();
    std::fs::write(&full, "").unwrap();
    for (bad, text) in [(&empty_in, ""), (&empty_in, "\n \n"), (&full, "")] {
        std::fs::write(bad, text).unwrap();
        assert!(!sidecar::is_empty_output(bad).unwrap());
        let out = dir.path().join("never.xyz");
        let e = runner::run(a.as_ref(), &inputs(bad), &OutputSpec::file(&out), &info(2, 1)).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{}: frame 0, line 1: no frames", bad.display())), "{e}");
        assert!(!out.exists());
        let e = runner::run(a.as_ref(), &inputs(bad), &OutputSpec::memory(), &info(1, 1)).unwrap_err();
        assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
    }
}

#[test]
fn retry_failed_merges_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 10);
    let run_to = |args: serde_json::Value, out: &PathBuf| {
        runner::run(op(args).as_ref(), &inputs(&input), &OutputSpec::file(out), &info(2, 3)).unwrap()
    };
    let clean = dir.path().join("clean.xyz");
    run_to(serde_json::json!({}), &clean);
    let still5 = dir.path().join("still5.xyz");
    run_to(serde_json::json!({ "fail": [5] }), &still5);

    let out = dir.path().join("out.xyz");
    run_to(serde_json::json!({ "fail": [1, 5, 9], "panic": [2] }), &out);
    assert_eq!(cache::read_failures(&out).unwrap().len(), 4);
    // The "fix" leaves item 5 failing.
    let partly = op(serde_json::json!({ "fail": [5] }));
    let s = runner::retry_failed(partly.as_ref(), &inputs(&input), &OutputSpec::file(&out), &info(2, 1)).unwrap();
    assert_eq!(s.action, Action::RetriedFailed { retried: 4 });
    assert_eq!((s.stats.items, s.stats.failed), (4, 1));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&still5).unwrap());
    assert_eq!(
        std::fs::read(sidecar::failures_path(&out)).unwrap(),
        std::fs::read(sidecar::failures_path(&still5)).unwrap()
    );
    assert_eq!(cache::read_record(&out).unwrap(), cache::read_record(&still5).unwrap(), "key and counts updated");
    // The full fix.
    let fixed = op(serde_json::json!({}));
    runner::retry_failed(fixed.as_ref(), &inputs(&input), &OutputSpec::file(&out), &info(1, 1)).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&clean).unwrap());
    assert!(!sidecar::failures_path(&out).exists());
    let s = runner::run(fixed.as_ref(), &inputs(&input), &OutputSpec::file(&out), &info(1, 1)).unwrap();
    assert_eq!(s.action, Action::Reused);
    // Nothing left to retry; other inputs are refused.
    let s = runner::retry_failed(fixed.as_ref(), &inputs(&input), &OutputSpec::file(&out), &info(1, 1)).unwrap();
    assert_eq!(s.action, Action::RetriedFailed { retried: 0 });
    write_inputs(&input, 11);
    let e = runner::retry_failed(fixed.as_ref(), &inputs(&input), &OutputSpec::file(&out), &info(1, 1)).unwrap_err();
    assert!(e.to_string().contains("input digest differs"), "{e}");
}

#[test]
fn a_locked_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 3);
    let out = dir.path().join("out.xyz");
    let held = OutputLock::acquire(&out).unwrap();
    let a = op(serde_json::json!({}));
    let e = runner::run(a.as_ref(), &inputs(&input), &OutputSpec::file(&out), &info(1, 1)).unwrap_err();
    assert!(e.to_string().contains("being written by another autopara run"), "{e}");
    drop(held);
    runner::run(a.as_ref(), &inputs(&input), &OutputSpec::file(&out), &info(1, 1)).unwrap();
}

#[test]
fn per_input_outputs_and_map() {
    let dir = tempfile::tempdir().unwrap();
    for (name, n) in [("a.xyz", 3), ("b.xyz", 1), ("c.xyz", 2)] {
        write_inputs(&dir.path().join(name), n);
    }
    let pattern = dir.path().join("*.xyz");
    let cs = ConfigSet::from_paths(&[pattern.to_str().unwrap()]).unwrap();
    let template = format!("{}/out/{{stem}}.rattled.xyz", dir.path().display());
    // b's only item fails: its output is empty, and reads back as no items.
    let a = op(serde_json::json!({ "fail": [3, 5] }));
    let s = runner::run(a.as_ref(), &cs, &OutputSpec::per_input(&template), &info(2, 2)).unwrap();
    let Outputs::Files(files) = &s.outputs else { panic!("files expected") };
    let counts: Vec<usize> =
        files.iter().map(|f| ConfigSet::from_files(vec![f.clone()]).items().unwrap().count()).collect();
    assert_eq!(counts, vec![4, 0, 1]);
    assert_eq!(std::fs::read(&files[1]).unwrap(), b"");
    assert_eq!(cache::read_failures(&files[2]).unwrap()[0].location, " / 2 / 1");
    assert_eq!(
        runner::run(a.as_ref(), &cs, &OutputSpec::per_input(&template), &info(1, 1)).unwrap().action,
        Action::Reused
    );

    let s = runner::map(&cs, &OutputSpec::memory(), &info(2, 1), |at: Atoms, rng: &mut autopara_core::rng::ItemRng| {
        let x: f64 = rng.random();
        if at.info.get("i") == Some(&Value::Int(1)) { Err(format!("no {x}")) } else { Ok(at) }
    })
    .unwrap();
    assert_eq!((s.stats.items, s.stats.failed), (6, 2));
    assert_eq!(s.failures.iter().map(|f| f.index).collect::<Vec<_>>(), vec![1, 5]);
}

/// Frames in the big file of the memory test.
const BIG: usize = 1_000_000;
/// Frames in the small file.
const SMALL: usize = 10_000;

/// A file of `n` one-atom frames, written directly (fast).
fn write_tiny_frames(path: &Path, n: usize) {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(w, "1\nProperties=species:S:1:pos:R:3 i={i}\nH 0.0 0.0 {}.5", i % 97).unwrap();
    }
}

/// Child half of the memory test: runs over the file named by the
/// environment and prints its peak resident set size.
#[test]
#[ignore = "run by peak_memory_does_not_grow_with_frame_count in a child process"]
fn child_run_and_report_peak_rss() {
    let input = std::env::var("AUTOPARA_TEST_INPUT").unwrap();
    let output = std::env::var("AUTOPARA_TEST_OUTPUT").unwrap();
    let a = op(serde_json::json!({}));
    let s = runner::run(a.as_ref(), &inputs(Path::new(&input)), &OutputSpec::file(&output), &info(2, 100)).unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    println!("ITEMS={} PEAK_KB={}", s.stats.items, hwm.split_whitespace().nth(1).unwrap());
}

fn child_peak_kb(input: &Path, output: &Path) -> (u64, u64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_run_and_report_peak_rss", "--ignored", "--nocapture", "--test-threads=1"])
        .env("AUTOPARA_TEST_INPUT", input)
        .env("AUTOPARA_TEST_OUTPUT", output)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find(|l| l.contains("ITEMS=")).expect("child reports its peak");
    let num = |k: &str| line.split(k).nth(1).and_then(|r| r.split_whitespace().next()).unwrap().parse::<u64>().unwrap();
    (num("ITEMS="), num("PEAK_KB="))
}

#[cfg(target_os = "linux")]
#[test]
fn peak_memory_does_not_grow_with_frame_count() {
    let dir = tempfile::tempdir().unwrap();
    let (small, big) = (dir.path().join("small.xyz"), dir.path().join("big.xyz"));
    write_tiny_frames(&small, SMALL);
    write_tiny_frames(&big, BIG);
    let (n_small, kb_small) = child_peak_kb(&small, &dir.path().join("small_out.xyz"));
    let (n_big, kb_big) = child_peak_kb(&big, &dir.path().join("big_out.xyz"));
    assert_eq!((n_small, n_big), (SMALL as u64, BIG as u64));
    eprintln!("peak RSS: {kb_small} kB for {SMALL} frames, {kb_big} kB for {BIG} frames");
    // 100x the frames: keeping even 16 bytes per frame would add 16 MB.
    assert!(kb_big < kb_small + 8 * 1024, "peak grew from {kb_small} kB to {kb_big} kB");
}

/// The names of the files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_journal_left_beside_complete_outputs_is_removed_and_never_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 6);
    let reference = dir.path().join("reference.xyz");
    let a = op(serde_json::json!({"fail": [4]}));
    runner::run(a.as_ref(), &inputs(&input), &OutputSpec::file(&reference), &info(1, 1)).unwrap();
    let expected = std::fs::read(&reference).unwrap();
    // An interrupted run (stopped at item 4), then completed by a resume; its
    // journal put back, as a kill between the output's final rename and the
    // journal's removal (or a failed removal) leaves it.
    let out = dir.path().join("out.xyz");
    let spec = OutputSpec::file(&out);
    let strict = AutoparaInfo { skip_failed: Some(false), ..info(1, 1) };
    assert!(runner::run(a.as_ref(), &inputs(&input), &spec, &strict).is_err());
    let journal = sidecar::journal_path(&out);
    let interrupted = std::fs::read(&journal).unwrap();
    let s = runner::run(a.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap();
    assert_eq!(s.action, Action::Resumed { from: 4 });
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    let names = listing(dir.path());
    std::fs::write(&journal, &interrupted).unwrap();
    // A rerun reuses the output and removes the stale journal.
    let s = runner::run(a.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap();
    assert_eq!(s.action, Action::Reused);
    assert_eq!(listing(dir.path()), names);
    // --overwrite starts from nothing, whatever the journal says.
    std::fs::write(&journal, &interrupted).unwrap();
    let s = runner::run(a.as_ref(), &inputs(&input), &spec.clone().overwrite(true), &info(1, 1)).unwrap();
    assert_eq!(s.action, Action::Computed);
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    assert_eq!(listing(dir.path()), names);
    // So does a rerun after the output was deleted by hand.
    std::fs::write(&journal, &interrupted).unwrap();
    std::fs::remove_file(&out).unwrap();
    let s = runner::run(a.as_ref(), &inputs(&input), &spec, &info(1, 1)).unwrap();
    assert_eq!(s.action, Action::Computed);
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    assert_eq!(listing(dir.path()), names);
}

#[test]
fn a_run_that_fails_before_any_item_leaves_no_journal_or_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 6);
    let out = dir.path().join("out.xyz");
    let strict = AutoparaInfo { skip_failed: Some(false), ..info(1, 1) };
    // The first item fails (skip_failed = false).
    let e =
        runner::run(op(serde_json::json!({"fail": [0]})).as_ref(), &inputs(&input), &OutputSpec::file(&out), &strict);
    assert!(matches!(e, Err(Error::ItemFailed { index: 0, .. })), "{e:?}");
    assert_eq!(listing(dir.path()), ["in.xyz"]);
    // The first frame is unreadable.
    let bad = dir.path().join("bad.xyz");
    std::fs::write(&bad, "1\n\nCu 0 x 0\n").unwrap();
    let a = op(serde_json::json!({}));
    let e = runner::run(a.as_ref(), &inputs(&bad), &OutputSpec::file(&out), &info(2, 1)).unwrap_err();
    assert!(e.to_string().contains("frame 0, line 3"), "{e}");
    assert_eq!(listing(dir.path()), ["bad.xyz", "in.xyz"]);
    // A run that fails later keeps what it wrote, and a rerun resumes it.
    let e =
        runner::run(op(serde_json::json!({"fail": [4]})).as_ref(), &inputs(&input), &OutputSpec::file(&out), &strict);
    assert!(matches!(e, Err(Error::ItemFailed { index: 4, .. })), "{e:?}");
    assert!(sidecar::journal_path(&out).exists());
    let s = runner::run(
        op(serde_json::json!({"fail": [4]})).as_ref(),
        &inputs(&input),
        &OutputSpec::file(&out),
        &info(1, 1),
    )
    .unwrap();
    assert_eq!(s.action, Action::Resumed { from: 4 });
}
