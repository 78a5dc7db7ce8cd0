//! Faults at every step of a run's write and commit sequence: strace makes
//! each `write`, `fsync`, `ftruncate`, `rename` and `unlink` of a small `md`
//! run (two inputs, one output per input, one failing item) fail with EIO,
//! or kills the process (SIGKILL) just before it, one at a time. After each
//! fault, an output under its final name is always whole; a clean rerun, and
//! then a rerun with `--overwrite`, write exactly what an undisturbed run
//! writes, with nothing left beside them. The same holds for faults in an
//! `--overwrite` run over complete outputs of other arguments.
//!
//! Needs `strace` (installed by `cargo xtask deps`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_autopara");

/// The system calls faults are injected into.
const SYSCALLS: &[&str] =
    &["write", "fsync", "fdatasync", "ftruncate", "rename", "renameat", "renameat2", "unlink", "unlinkat"];

/// Two inputs: `a.xyz` with three pairs (the second overlapping, so its md
/// item fails), `b.xyz` with one.
fn write_inputs(dir: &Path) {
    let frame = |x: f64, y: f64| format!("2\nLattice=\"5 0 0 0 5 0 0 0 5\" pbc=\"T T T\"\nCu 0 0 0\nCu {x} {y} 0\n");
    let a = [frame(2.2, 0.0), frame(0.0, 0.0), frame(0.0, 2.3)].concat();
    std::fs::write(dir.join("a.xyz"), a).unwrap();
    std::fs::write(dir.join("b.xyz"), frame(2.2, 0.1)).unwrap();
}

/// `autopara run md` on the inputs in `dir` into `dir/out/{stem}.md.xyz`,
/// serially with a journal line per item (so the sequence of system calls
/// is the same every time), optionally under strace with `inject`.
fn run_md(dir: &Path, steps: u32, extra: &[&str], inject: Option<&str>) -> Output {
    let args = format!(r#"{{"calculator": {{"type": "lennard_jones"}}, "steps": {steps}, "dt": 1.0}}"#);
    let autopara_args = [
        "run",
        "md",
        "-i",
        "a.xyz",
        "b.xyz",
        "-o",
        "out/{stem}.md.xyz",
        "--args",
        &args,
        "-q",
        "--workers",
        "1",
        "--chunk-size",
        "1",
    ];
    let mut c = match inject {
        Some(spec) => {
            let mut c = Command::new("strace");
            c.args(["-f", "-qq", "-o", "/dev/null", "-e", &format!("trace={}", SYSCALLS.join(",")), "-e", spec, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    c.args(autopara_args).args(extra).current_dir(dir).env("AUTOPARA_CHECKPOINT_INTERVAL", "0");
    c.env_remove("AUTOPARA_NUM_WORKERS").output().unwrap()
}

/// How often each of [`SYSCALLS`] occurs in an undisturbed run.
fn count_syscalls(dir: &Path, steps: u32, extra: &[&str]) -> BTreeMap<String, usize> {
    let trace = dir.join("trace.txt");
    let args = format!(r#"{{"calculator": {{"type": "lennard_jones"}}, "steps": {steps}, "dt": 1.0}}"#);
    let o = Command::new("strace")
        .args(["-f", "-qq", "-o", trace.to_str().unwrap(), "-e", &format!("trace={}", SYSCALLS.join(",")), BIN])
        .args(["run", "md", "-i", "a.xyz", "b.xyz", "-o", "out/{stem}.md.xyz", "--args", &args, "-q"])
        .args(["--workers", "1", "--chunk-size", "1"])
        .args(extra)
        .current_dir(dir)
        .env("AUTOPARA_CHECKPOINT_INTERVAL", "0")
        .env_remove("AUTOPARA_NUM_WORKERS")
        .output()
        .expect("strace is needed for this test (cargo xtask deps installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(&trace).unwrap().lines() {
        // `PID name(args) = ret`
        let call = line.split_once(' ').map_or(line, |(_, rest)| rest);
        if let Some((name, _)) = call.trim_start().split_once('(') {
            *counts.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    std::fs::remove_file(trace).unwrap();
    counts
}

/// Every file in `dir/out`, by name, with its content.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir.join("out")) else { return BTreeMap::new() };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

/// `files` without lock files, which a failed removal may leave (the lock
/// is the file's flock, not the file; the next run removes it).
fn unlocked(mut files: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    files.retain(|name, _| !name.ends_with(".autopara-lock"));
    files
}

/// The outputs of an undisturbed run of `steps` into a fresh directory.
fn reference(root: &Path, steps: u32) -> BTreeMap<String, Vec<u8>> {
    let dir = root.join(format!("reference{steps}"));
    std::fs::create_dir(&dir).unwrap();
    write_inputs(&dir);
    let o = run_md(&dir, steps, &[], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let files = outputs(&dir);
    assert_eq!(files.len(), 5, "two outputs, two records, one failure file: {:?}", files.keys());
    files
}

/// After a fault: each output under its final name is whole, the output of
/// `before` or of `after` (records and failure files may be either).
fn assert_whole(case: &str, dir: &Path, before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) {
    for (name, bytes) in outputs(dir) {
        if name.ends_with(".md.xyz") {
            assert!(
                before.get(&name) == Some(&bytes) || after.get(&name) == Some(&bytes),
                "{case}: {name} is not a whole output ({} bytes)",
                bytes.len()
            );
        }
    }
}

/// A clean rerun (with `extra`) writes exactly `expected`, nothing beside.
fn assert_rerun_gives(case: &str, dir: &Path, steps: u32, extra: &[&str], expected: &BTreeMap<String, Vec<u8>>) {
    let o = run_md(dir, steps, extra, None);
    assert!(o.status.success(), "{case}: rerun {extra:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    let got = outputs(dir);
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{case}: rerun {extra:?}");
    for (name, bytes) in &got {
        assert!(!bytes.is_empty() || expected[name].is_empty(), "{case}: {name} empty");
        assert!(bytes == &expected[name], "{case}: rerun {extra:?}: {name} differs from an undisturbed run");
    }
}

/// Each fault point: every occurrence of every syscall in an undisturbed run,
/// as EIO and as SIGKILL just before it.
fn fault_points(counts: &BTreeMap<String, usize>) -> Vec<(String, String)> {
    let mut points = Vec::new();
    for (name, &n) in counts {
        for when in 1..=n {
            for effect in ["error=EIO", "signal=KILL"] {
                points.push((format!("{name} #{when} {effect}"), format!("inject={name}:{effect}:when={when}")));
            }
        }
    }
    points
}

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    write_inputs(&dir);
    dir
}

/// Runs `check` on every fault point, a few at a time (each run mostly
/// waits on strace and fsync, not on a core).
fn for_each_point(points: &[(String, String)], check: impl Fn(usize, &str, &str) + Sync) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((case, inject)) = points.get(i) else { break };
                    check(i, case, inject);
                }
            });
        }
    });
}

/// Puts `files` into `dir/out`.
fn put_outputs(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    std::fs::create_dir_all(dir.join("out")).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join("out").join(name), bytes).unwrap();
    }
}

#[test]
fn faults_at_every_step_never_leave_partial_or_fabricated_outputs() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ref2 = reference(root, 2);
    let ref3 = reference(root, 3);

    // Faults in a fresh run.
    let counts = count_syscalls(&fresh_dir(root, "count-fresh"), 2, &[]);
    for name in ["write", "fsync", "ftruncate", "rename", "unlink"] {
        assert!(counts.get(name).is_some_and(|&n| n > 0), "no {name} traced: {counts:?}");
    }
    for_each_point(&fault_points(&counts), |i, case, inject| {
        let dir = fresh_dir(root, &format!("fresh{i}"));
        let o = run_md(&dir, 2, &[], Some(inject));
        let case = format!("fresh run, {case}");
        if o.status.success() {
            assert_eq!(unlocked(outputs(&dir)), ref2, "{case}: exit 0, so the outputs must be complete");
        }
        assert_whole(&case, &dir, &ref2, &ref2);
        assert_rerun_gives(&case, &dir, 2, &[], &ref2);
        assert_rerun_gives(&case, &dir, 2, &["--overwrite"], &ref2);
        std::fs::remove_dir_all(&dir).unwrap();
    });

    // Faults in an --overwrite run (3 steps) over complete outputs of 2 steps.
    let dir = fresh_dir(root, "count-overwrite");
    put_outputs(&dir, &ref2);
    let counts = count_syscalls(&dir, 3, &["--overwrite"]);
    for_each_point(&fault_points(&counts), |i, case, inject| {
        let dir = fresh_dir(root, &format!("overwrite{i}"));
        put_outputs(&dir, &ref2);
        let o = run_md(&dir, 3, &["--overwrite"], Some(inject));
        let case = format!("overwrite run, {case}");
        if o.status.success() {
            assert_eq!(unlocked(outputs(&dir)), ref3, "{case}: exit 0, so the outputs must be complete");
        }
        assert_whole(&case, &dir, &ref2, &ref3);
        assert_rerun_gives(&case, &dir, 3, &["--overwrite"], &ref3);
        assert_rerun_gives(&case, &dir, 3, &[], &ref3);
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// `autopara run calculate` (Lennard-Jones) on `in.xyz` into `out.xyz` in
/// `dir` under strace, tracing `calls`; returns the trace's lines.
fn traced_calculate(dir: &Path, calls: &str, extra: &[&str]) -> Vec<String> {
    let trace = dir.join("calculate-trace.txt");
    let o = Command::new("strace")
        .args(["-f", "-qq", "-o", trace.to_str().unwrap(), "-e", &format!("trace={calls}"), BIN])
        .args(["run", "calculate", "-i", "in.xyz", "-o", "out.xyz", "-q", "--workers", "2"])
        .args(["--args", r#"{"calculator": {"type": "lennard_jones"}}"#])
        .args(extra)
        .current_dir(dir)
        .output()
        .expect("strace is needed for this test (cargo xtask deps installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = std::fs::read_to_string(&trace).unwrap().lines().map(str::to_owned).collect();
    std::fs::remove_file(trace).unwrap();
    lines
}

/// An output of several MiB has its write-back started as it is written,
/// one MiB after another from its first byte (so the fsync that completes
/// the run waits for little); an `--overwrite` run does not read the output
/// it replaces, while a plain rerun reads it to check it before reusing it.
#[test]
fn large_outputs_are_written_back_as_they_grow_and_overwrite_reads_no_old_output() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let frame =
        |i: usize| format!("2\nLattice=\"5 0 0 0 5 0 0 0 5\" pbc=\"T T T\" i={i}\nCu 0 0 0\nCu 1.25 1.5 1.75\n");
    std::fs::write(dir.join("in.xyz"), (0..20_000).map(frame).collect::<String>()).unwrap();

    let calls = traced_calculate(dir, "sync_file_range", &[]);
    let size = std::fs::metadata(dir.join("out.xyz")).unwrap().len();
    assert!(size > 5 << 20, "the output should span several MiB, not {size} bytes");
    // `PID sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE) = 0`
    let mut next = 0u64;
    for line in &calls {
        let args: Vec<&str> = line.split_once('(').unwrap().1.split(',').map(str::trim).collect();
        let (offset, len): (u64, u64) = (args[1].parse().unwrap(), args[2].parse().unwrap());
        assert_eq!(offset, next, "write-back ranges should follow each other: {calls:?}");
        assert!(len >= 1 << 20 && args[3].starts_with("SYNC_FILE_RANGE_WRITE)"), "{line}");
        next += len;
    }
    assert!(next + (1 << 20) + (1 << 16) > size, "write-back started for {next} of {size} bytes: {calls:?}");

    let reads_output = |lines: &[String]| lines.iter().any(|l| l.contains("\"out.xyz\", O_RDONLY"));
    assert!(reads_output(&traced_calculate(dir, "openat", &[])), "a rerun checks the output before reusing it");
    assert!(
        !reads_output(&traced_calculate(dir, "openat", &["--overwrite"])),
        "--overwrite need not read the old output"
    );
}
