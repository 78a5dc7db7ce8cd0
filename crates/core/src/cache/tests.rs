use super::*;
use crate::sidecar::{journal_path, partial_path};
use std::collections::BTreeMap;

fn key(steps: u64) -> RunKey {
    RunKey {
        op: "md".into(),
        op_version: 2,
        args: serde_json::json!({ "steps": steps }),
        seed: 0,
        inputs: "blake3:00".into(),
        tags: BTreeMap::new(),
        autopara_version: AUTOPARA_VERSION.into(),
    }
}

fn frame(i: u64) -> Atoms {
    Atoms::new(vec![1], vec![[i as f64, 0.0, 0.0]])
}

fn write_json(w: &mut dyn Write, at: &Atoms) -> std::io::Result<()> {
    writeln!(w, "{}", serde_json::to_string(at).map_err(std::io::Error::other)?)
}

fn loc(i: u64) -> Location {
    Location { file: None, path: vec![i as usize] }
}

fn route(_: &Location) -> usize {
    0
}

/// Feeds items `from..to` (every 4th fails) with a checkpoint every 3 items.
fn feed(sink: &mut FileSink<'_>, from: u64, to: u64) {
    for i in from..to {
        if i % 4 == 3 {
            let f = FailureRecord {
                index: i,
                location: loc(i),
                op: "md".into(),
                message: format!("boom {i}"),
                frames: Vec::new(),
            };
            sink.write_failure(&f).unwrap();
        } else {
            sink.write_item(i, &loc(i), vec![frame(i); (i % 3) as usize]).unwrap();
        }
        if i % 3 == 2 {
            sink.checkpoint(i + 1, true).unwrap();
        }
    }
}

fn complete_run(out: &Path, k: &RunKey, n: u64) -> Vec<RunRecord> {
    let mut sink = FileSink::start(&[out.to_path_buf()], k, None, &route, write_json).unwrap();
    feed(&mut sink, 0, n);
    sink.checkpoint(n, true).unwrap();
    sink.finish(k).unwrap()
}

#[test]
fn complete_output_is_reused_and_stale_refused_with_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/out.xyz");
    let outs = vec![out.clone()];
    assert!(matches!(plan(&outs, &key(1000), false).unwrap(), Plan::Compute(why) if why.contains("does not exist")));
    let records = complete_run(&out, &key(1000), 10);
    assert_eq!((records[0].items, records[0].failed), (10, 2));
    assert_eq!(records[0].configs, (0..10).filter(|i| i % 4 != 3).map(|i| i % 3).sum::<u64>());
    assert!(!journal_path(&out).exists() && !partial_path(&out).exists());
    let entries = read_failures(&out).unwrap();
    assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![3, 7]);
    assert_eq!(entries[0].message, "boom 3");
    assert_eq!(entries[0].location, " / 3");
    // Items 0..3 wrote 0 + 1 + 2 frames before item 3's place.
    let lines_before = std::fs::read_to_string(&out).unwrap()[..entries[0].offset as usize].lines().count();
    assert_eq!(lines_before, 3);

    assert!(matches!(plan(&outs, &key(1000), false).unwrap(), Plan::Reuse(r) if r == records));
    let e = plan(&outs, &key(2000), false).unwrap_err().to_string();
    assert!(e.contains("args.steps: 1000 -> 2000") && e.contains("--overwrite"), "{e}");
    let mut other = key(1000);
    other.op_version = 3;
    other.inputs = "blake3:11".into();
    let e = plan(&outs, &other, false).unwrap_err().to_string();
    assert!(e.contains("op md version 2 -> 3") && e.contains("input digest differs"), "{e}");
    assert!(matches!(plan(&outs, &key(2000), true).unwrap(), Plan::Compute(_)));
    assert!(matches!(plan(&outs, &key(1000), true).unwrap(), Plan::Compute(w) if w.contains("overwrite")));

    // A modified output is refused.
    std::fs::write(&out, "edited\n").unwrap();
    let e = plan(&outs, &key(1000), false).unwrap_err().to_string();
    assert!(e.contains("modified"), "{e}");
    // A file without a record is not ours.
    std::fs::remove_file(record_path(&out)).unwrap();
    let e = plan(&outs, &key(1000), false).unwrap_err().to_string();
    assert!(e.contains("no autopara record") && e.contains("--overwrite"), "{e}");
    assert!(matches!(plan(&outs, &key(1000), true).unwrap(), Plan::Compute(_)));
}

#[test]
fn resume_after_a_crash_gives_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.xyz");
    complete_run(&reference, &key(1), 20);
    for crash_at in [1u64, 5, 9, 13, 19] {
        let out = dir.path().join(format!("out{crash_at}.xyz"));
        let outs = vec![out.clone()];
        {
            let mut sink = FileSink::start(&outs, &key(1), None, &route, write_json).unwrap();
            // Items after the last checkpoint reach the partial file but not the journal.
            feed(&mut sink, 0, crash_at);
        }
        // A cut journal line (killed mid-write) is ignored.
        let mut j = OpenOptions::new().append(true).open(journal_path(&out)).unwrap();
        j.write_all(b"{\"next\": 9").unwrap();
        drop(j);
        let Plan::Resume(state) = plan(&outs, &key(1), false).unwrap() else { panic!("expected resume") };
        assert_eq!(state.next_index, crash_at / 3 * 3);
        // A different key discards the interrupted run.
        assert!(matches!(plan(&outs, &key(2), false).unwrap(), Plan::Compute(w) if w.contains("args.steps: 1 -> 2")));
        let mut sink = FileSink::start(&outs, &key(1), Some(&state), &route, write_json).unwrap();
        feed(&mut sink, state.next_index, 20);
        sink.checkpoint(20, true).unwrap();
        let records = sink.finish(&key(1)).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&reference).unwrap(), "crash at {crash_at}");
        assert_eq!(std::fs::read(failures_path(&out)).unwrap(), std::fs::read(failures_path(&reference)).unwrap());
        assert_eq!(records[0].items, 20);
    }
}

#[test]
fn empty_runs_leave_a_complete_keyed_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("empty.xyz");
    let records = complete_run(&out, &key(1), 0);
    assert_eq!(std::fs::read(&out).unwrap(), b"");
    assert_eq!(records[0].items, 0);
    assert!(matches!(plan(&[out], &key(1), false).unwrap(), Plan::Reuse(_)));
}

/// Runs what `plan` decides to the end (resume from its state, or compute
/// from the first item), as the runner does; returns the plan's word.
fn finish_as_planned(outs: &[PathBuf], k: &RunKey, overwrite: bool, n: u64) -> &'static str {
    let (word, resume) = match plan(outs, k, overwrite).unwrap() {
        Plan::Reuse(_) => return "reuse",
        Plan::Resume(state) => ("resume", Some(state)),
        Plan::Compute(_) => ("compute", None),
    };
    let mut sink = FileSink::start(outs, k, resume.as_ref(), &route, write_json).unwrap();
    feed(&mut sink, resume.as_ref().map_or(0, |s| s.next_index), n);
    sink.checkpoint(n, true).unwrap();
    sink.finish(k).unwrap();
    word
}

/// An interrupted run: items `0..n` written, checkpointed every 3 items.
fn interrupted_run(out: &Path, k: &RunKey, n: u64) {
    let mut sink = FileSink::start(&[out.to_path_buf()], k, None, &route, write_json).unwrap();
    feed(&mut sink, 0, n);
}

#[test]
fn resume_never_fabricates_data() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.xyz");
    complete_run(&reference, &key(1), 20);
    let expected = std::fs::read(&reference).unwrap();
    let out = dir.path().join("out.xyz");
    let outs = vec![out.clone()];
    let check = |case: &str| {
        let got = std::fs::read(&out).unwrap();
        assert!(!got.contains(&0), "{case}: NUL bytes in the output");
        assert_eq!(got, expected, "{case}");
        assert_eq!(std::fs::read(failures_path(&out)).unwrap(), std::fs::read(failures_path(&reference)).unwrap());
        assert!(!journal_path(&out).exists() && !partial_path(&out).exists(), "{case}: leftovers");
        assert!(matches!(plan(&outs, &key(1), false).unwrap(), Plan::Reuse(_)), "{case}: not reusable");
    };
    // A complete run whose journal survived (a kill between the last rename
    // and the journal's removal, or a failed removal).
    let complete_with_journal = || {
        let mut sink = FileSink::start(&outs, &key(1), None, &route, write_json).unwrap();
        feed(&mut sink, 0, 20);
        sink.checkpoint(20, true).unwrap();
        let journal = std::fs::read(journal_path(&out)).unwrap();
        sink.finish(&key(1)).unwrap();
        std::fs::write(journal_path(&out), journal).unwrap();
    };

    // Then --overwrite starts from nothing.
    complete_with_journal();
    assert!(matches!(plan(&outs, &key(1), true).unwrap(), Plan::Compute(why) if why.contains("overwrite")));
    assert_eq!(finish_as_planned(&outs, &key(1), true, 20), "compute");
    check("overwrite after a surviving journal");

    // Then the output is deleted by hand and the run repeated.
    complete_with_journal();
    std::fs::remove_file(&out).unwrap();
    assert_eq!(finish_as_planned(&outs, &key(1), false, 20), "compute");
    check("rerun after the output was deleted");

    // An interrupted run whose partial output was deleted, cut, or changed in
    // place (same length), or whose partial failure records went.
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 4] = [
        ("partial deleted", |out| std::fs::remove_file(partial_path(out)).unwrap()),
        ("partial cut short", |out| {
            let p = partial_path(out);
            let len = std::fs::metadata(&p).unwrap().len();
            OpenOptions::new().write(true).open(&p).unwrap().set_len(len / 2).unwrap();
        }),
        ("partial changed", |out| {
            let p = partial_path(out);
            let mut bytes = std::fs::read(&p).unwrap();
            bytes[5] ^= 1;
            std::fs::write(&p, bytes).unwrap();
        }),
        ("failure records deleted", |out| std::fs::remove_file(partial_failures_path(out)).unwrap()),
    ];
    for (case, damage) in damages {
        std::fs::remove_file(&out).unwrap();
        interrupted_run(&out, &key(1), 14);
        damage(&out);
        let Plan::Compute(why) = plan(&outs, &key(1), false).unwrap() else { panic!("{case}: resumed") };
        assert!(why.contains("discarding an interrupted run"), "{case}: {why}");
        assert_eq!(finish_as_planned(&outs, &key(1), false, 20), "compute");
        check(case);
    }
    // Undamaged, the same interrupted run resumes.
    std::fs::remove_file(&out).unwrap();
    interrupted_run(&out, &key(1), 14);
    assert_eq!(finish_as_planned(&outs, &key(1), false, 20), "resume");
    check("undamaged");
    // With --overwrite it starts from nothing all the same.
    std::fs::remove_file(&out).unwrap();
    interrupted_run(&out, &key(1), 14);
    let Plan::Compute(why) = plan(&outs, &key(1), true).unwrap() else { panic!("--overwrite resumed") };
    assert!(why.contains("discarding an interrupted run (overwrite)"), "{why}");
    assert_eq!(finish_as_planned(&outs, &key(1), true, 20), "compute");
    check("undamaged, overwrite");
}

#[test]
fn a_sink_never_extends_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.xyz");
    let outs = vec![out.clone()];
    interrupted_run(&out, &key(1), 14);
    let Plan::Resume(state) = plan(&outs, &key(1), false).unwrap() else { panic!("expected resume") };
    // The partial file loses its end after the plan was made.
    OpenOptions::new().write(true).open(partial_path(&out)).unwrap().set_len(3).unwrap();
    let e = FileSink::start(&outs, &key(1), Some(&state), &route, write_json).err().expect("refused");
    assert!(e.to_string().contains("fewer than the"), "{e}");
    assert_eq!(std::fs::metadata(partial_path(&out)).unwrap().len(), 3);
}

#[test]
fn a_run_that_wrote_nothing_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let outs = vec![dir.path().join("out.xyz")];
    let out = &outs[0];
    let sink = FileSink::start(&outs, &key(1), None, &route, write_json).unwrap();
    assert!(journal_path(out).exists() && partial_path(out).exists());
    sink.abandon();
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
    // With items written, the journal and partial files stay for a resume.
    let mut sink = FileSink::start(&outs, &key(1), None, &route, write_json).unwrap();
    feed(&mut sink, 0, 4);
    sink.abandon();
    assert!(matches!(plan(&outs, &key(1), false).unwrap(), Plan::Resume(s) if s.next_index == 3));
}
