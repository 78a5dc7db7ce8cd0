//! `autopara run` end to end: the real binary (op listing, error messages,
//! start line, quiet, tags, args files, dry run) and, for kill/resume and
//! locking, this test binary acting as `autopara` with a slow test op
//! registered (`cli_child`).

use autopara as _;
use autopara::{
    InputKind, Item, ItemFailure, ItemResult, OpInfo, OpRegistration, Operation, Value, WorkerContext, extxyz,
};
use autopara::{cache, sidecar};
use autopara_testkit::fixtures::cu_pairs;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

static SLOW: OpInfo = OpInfo {
    name: "test_slow",
    version: 1,
    default_chunk_size: 2,
    summary: "copy, set info keys from the item RNG, sleep (CLI tests)",
    input_kind: InputKind::Configs,
};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Slow {
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    fail: Vec<u64>,
}

impl Operation for Slow {
    fn info(&self) -> &'static OpInfo {
        &SLOW
    }
    fn args(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn run_chunk(&self, items: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult> {
        items
            .iter()
            .map(|item| {
                std::thread::sleep(Duration::from_millis(self.sleep_ms));
                if self.fail.contains(&item.index) {
                    return Err(ItemFailure::new(format!("item {} fails", item.index)));
                }
                let mut at = item.atoms()?.clone();
                let r: f64 = ctx.rng(item).random();
                at.info.insert("r".into(), Value::Float(r));
                Ok(vec![at])
            })
            .collect()
    }
}

fn build(args: serde_json::Value) -> autopara::Result<Box<dyn Operation>> {
    Ok(Box::new(autopara::args::parse::<Slow>(args).map_err(|e| e.in_context("test_slow"))?))
}

autopara::inventory::submit! { OpRegistration { info: &SLOW, build } }

const BIN: &str = env!("CARGO_BIN_EXE_autopara");

/// The child half: acts as `autopara` with the arguments in `AUTOPARA_TEST_CLI_ARGS`.
#[test]
#[ignore = "run as a child process by the kill and lock tests"]
fn cli_child() {
    let args: Vec<String> = serde_json::from_str(&std::env::var("AUTOPARA_TEST_CLI_ARGS").unwrap()).unwrap();
    let code = autopara::cli::main_with_args(std::iter::once("autopara".to_string()).chain(args));
    std::process::exit(if code == std::process::ExitCode::SUCCESS { 0 } else { 1 });
}

fn child(args: &[&str]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "cli_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env("AUTOPARA_TEST_CLI_ARGS", serde_json::to_string(args).unwrap())
        .env_remove("AUTOPARA_NUM_WORKERS")
        // A journal line per chunk, so the kill points below are reached.
        .env("AUTOPARA_CHECKPOINT_INTERVAL", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn finish(c: Child) -> (bool, String) {
    let out = c.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn bin(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("AUTOPARA_NUM_WORKERS").output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_inputs(path: &Path, n: usize) {
    extxyz::write_file(path, &cu_pairs(n, 0.1)).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn journal_lines(out: &Path) -> usize {
    std::fs::read_to_string(sidecar::journal_path(out)).map(|t| t.matches('\n').count()).unwrap_or(0)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn every_registered_op_is_visible_from_the_binary() {
    let out = bin(&["ops"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let from_binary: Vec<&str> = text.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    let from_facade: Vec<&str> =
        autopara::registered_ops().iter().map(|r| r.info.name).filter(|n| *n != "test_slow").collect();
    assert_eq!(from_binary, from_facade);
    assert!(autopara::find_op("test_slow").is_ok(), "ops registered in an integration test are visible to it");
    // Op crates enabled by features register through the facade.
    #[cfg(feature = "md")]
    assert!(from_binary.contains(&"md"), "{from_binary:?}");
    #[cfg(feature = "descriptor")]
    assert!(from_binary.contains(&"descriptor"), "{from_binary:?}");
}

#[test]
fn errors_name_what_is_wrong_and_list_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 2);
    let out = s(&dir.path().join("out.xyz")).to_string();
    let o = bin(&["run", "nope", "-i", s(&input), "-o", &out]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("unknown op 'nope'"), "{e}");
    for r in autopara::registered_ops().iter().filter(|r| r.info.name != "test_slow") {
        assert!(e.contains(r.info.name), "lists {}: {e}", r.info.name);
    }
    #[cfg(feature = "md")]
    {
        let o = bin(&["run", "md", "-i", s(&input), "-o", &out, "--args", r#"{"stepz": 10}"#]);
        let e = stderr(&o);
        assert!(!o.status.success() && e.contains("stepz") && e.contains("steps"), "{e}");
        let o = bin(&["run", "md", "-i", s(&input), "-o", &out, "--args", r#"{"steps": "many"}"#]);
        let e = stderr(&o);
        assert!(!o.status.success() && e.contains("steps") && e.contains("invalid type"), "{e}");
    }
    let o = bin(&["run", "md", "-i", "/no/such/file.xyz", "-o", &out]);
    assert!(!o.status.success() && stderr(&o).contains("/no/such/file.xyz"), "{}", stderr(&o));
    let o = bin(&["run", "md", "-i", s(&input), "-o", &out, "--args", "{not json"]);
    assert!(!o.status.success() && stderr(&o).contains("--args"), "{}", stderr(&o));
    let o = bin(&["run", "md", "-o", &out, "--count", "3"]);
    assert!(!o.status.success() && stderr(&o).contains("configurations"), "{}", stderr(&o));
    assert!(!Path::new(&out).exists());
}

#[cfg(all(feature = "md", feature = "calculators"))]
#[test]
fn run_md_from_the_binary_with_args_file_tags_quiet_and_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 3);
    let out = dir.path().join("md.xyz");
    let json = r#"{"calculator": {"type": "lennard_jones", "sigma": 2.3, "epsilon": 0.4}, "steps": 4, "dt": 1.0}"#;
    let toml_file = dir.path().join("args.toml");
    std::fs::write(
        &toml_file,
        "steps = 4\ndt = 1.0\n[calculator]\ntype = \"lennard_jones\"\nsigma = 2.3\nepsilon = 0.4\n",
    )
    .unwrap();
    let o = bin(&[
        "run",
        "md",
        "-i",
        s(&input),
        "-o",
        s(&out),
        "--args",
        json,
        "--workers",
        "2",
        "--chunk-size",
        "2",
        "--tag",
        "stage=one",
        "--tag",
        "n=3",
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("running op md (version") && e.contains("2 workers") && e.contains("chunk size 2"), "{e}");
    let frames = extxyz::read_file(&out).unwrap();
    assert_eq!(frames.len(), 3 * 5);
    assert_eq!(frames[0].info["stage"], Value::Str("one".into()));
    assert_eq!(frames[0].info["n"], Value::Int(3));
    let args_file = format!("@{}", s(&toml_file));
    let tags = ["--tag", "stage=one", "--tag", "n=3"];
    let mut again = vec!["run", "md", "-i", s(&input), "-o", s(&out), "--args", &args_file];
    again.extend(tags);
    let dry: Vec<&str> = again.iter().copied().chain(["--dry-run"]).collect();
    let o = bin(&dry);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("reuse:"), "{}", String::from_utf8_lossy(&o.stdout));
    let quiet: Vec<&str> = again.iter().copied().chain(["--quiet"]).collect();
    let o = bin(&quiet);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    let o = bin(&again);
    assert!(stderr(&o).contains("reusing"), "{}", stderr(&o));
    let json6 = json.replace("\"steps\": 4", "\"steps\": 6");
    let changed: Vec<&str> =
        ["run", "md", "-i", s(&input), "-o", s(&out), "--args", &json6].into_iter().chain(tags).collect();
    let o = bin(&changed);
    assert!(!o.status.success() && stderr(&o).contains("args.steps: 4 -> 6"), "{}", stderr(&o));
    let with_dry: Vec<&str> = changed.iter().copied().chain(["--dry-run"]).collect();
    let o = bin(&with_dry);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("refuse:"));
}

#[test]
fn killed_runs_resume_to_byte_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 40);
    let args = r#"{"sleep_ms": 15, "fail": [7, 30]}"#;
    let run = |out: &PathBuf, extra: &[&str]| {
        let mut a = vec!["run", "test_slow", "-i", s(&input), "-o", s(out), "--args", args];
        a.extend_from_slice(extra);
        child(&a).spawn().unwrap()
    };
    let reference = dir.path().join("ref.xyz");
    let (ok, e) = finish(run(&reference, &["--workers", "2"]));
    assert!(ok, "{e}");
    let ref_bytes = std::fs::read(&reference).unwrap();
    assert_eq!(extxyz::read_file(&reference).unwrap().len(), 38);
    // Kill points: as soon as the lock exists, and after 1, 4 and 11 checkpoints.
    for (n, lines) in [(0usize, 0usize), (1, 2), (2, 5), (3, 12)] {
        let out = dir.path().join(format!("killed{n}.xyz"));
        let c = run(&out, &["--workers", "2", "--chunk-size", "2"]);
        if lines == 0 {
            wait_until("the lock", || cache::lock::lock_path(&out).exists());
        } else {
            wait_until("checkpoints", || journal_lines(&out) >= lines);
        }
        let mut c = c;
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        assert!(!out.exists(), "kill point {n}: no output under its final name");
        let (ok, e) = finish(run(&out, &["--workers", "1", "--chunk-size", "3"]));
        assert!(ok, "{e}");
        if lines > 0 {
            assert!(e.contains("resume:"), "kill point {n}: {e}");
        }
        assert_eq!(std::fs::read(&out).unwrap(), ref_bytes, "kill point {n}");
        assert_eq!(
            std::fs::read(sidecar::failures_path(&out)).unwrap(),
            std::fs::read(sidecar::failures_path(&reference)).unwrap()
        );
    }
}

#[test]
fn two_runs_on_one_output_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 20);
    let out = dir.path().join("out.xyz");
    let a = ["run", "test_slow", "-i", s(&input), "-o", s(&out), "--args", r#"{"sleep_ms": 10}"#, "--workers", "1"];
    let first = child(&a).spawn().unwrap();
    wait_until("the first run's journal", || journal_lines(&out) >= 2);
    let (ok, e) = finish(child(&a).spawn().unwrap());
    assert!(!ok && e.contains("being written by another autopara run"), "{e}");
    let (ok, e) = finish(first);
    assert!(ok, "{e}");
    assert_eq!(extxyz::read_file(&out).unwrap().len(), 20);
    let (ok, e) = finish(child(&a).spawn().unwrap());
    assert!(ok && e.contains("reusing"), "{e}");
}

#[test]
fn retry_failed_and_progress_lines_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 6);
    let out = dir.path().join("out.xyz");
    let base = ["run", "test_slow", "-i", s(&input), "-o", s(&out)];
    let with = |args: &str, extra: &[&str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend(["--args", args]);
        v.extend_from_slice(extra);
        let mut c = child(&v);
        c.env("AUTOPARA_PROGRESS_INTERVAL", "0");
        finish(c.spawn().unwrap())
    };
    let (ok, e) = with(r#"{"fail": [2, 4]}"#, &["--chunk-size", "1"]);
    assert!(ok, "{e}");
    assert!(e.contains("autopara: test_slow: 6/6 items,"), "periodic progress lines: {e}");
    assert!(e.contains("2 failed") && e.contains("failures.jsonl"), "summary names the failure file: {e}");
    let (ok, e) = with(r#"{"fail": []}"#, &["--retry-failed"]);
    assert!(ok && e.contains("rerunning 2 failed items"), "{e}");
    assert_eq!(extxyz::read_file(&out).unwrap().len(), 6);
    let (ok, e) = with(r#"{"fail": []}"#, &[]);
    assert!(ok && e.contains("reusing"), "{e}");
    let (ok, e) = with(r#"{"fail": []}"#, &["--skip-failed", "false", "--quiet"]);
    assert!(ok && e.is_empty(), "{e}");
}

#[test]
fn an_empty_input_is_an_error_naming_it_but_an_empty_autopara_output_is_no_items() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.xyz");
    for (name, text, what) in
        [("empty.xyz", "", "the file is empty"), ("blank.xyz", "\n  \n", "the file holds only blank lines")]
    {
        let input = dir.path().join(name);
        std::fs::write(&input, text).unwrap();
        let expected = format!("{}: frame 0, line 1: no frames: {what}", input.display());
        #[cfg(feature = "calculators")]
        {
            let args = r#"{"calculator": {"type": "emt"}}"#;
            let o = bin(&["run", "calculate", "-i", s(&input), "-o", s(&out), "--args", args]);
            let e = stderr(&o);
            assert!(!o.status.success() && e.contains(&expected), "{name}: {e}");
            assert!(!out.exists());
        }
        let (ok, e) = finish(child(&["run", "test_slow", "-i", s(&input), "-o", s(&out)]).spawn().unwrap());
        assert!(!ok && e.contains(&expected), "{name}: {e}");
        assert!(!out.exists());
        let o = bin(&["convert", s(&input), "-o", s(&out)]);
        assert!(!o.status.success() && stderr(&o).contains(s(&input)), "{}", stderr(&o));
        assert!(!out.exists());
    }
    // Every item fails: the output is empty, complete and keyed, and the
    // input of a next run, which has nothing to do.
    let input = dir.path().join("in.xyz");
    write_inputs(&input, 2);
    let failed = dir.path().join("failed.xyz");
    let (ok, e) = finish(
        child(&["run", "test_slow", "-i", s(&input), "-o", s(&failed), "--args", r#"{"fail": [0, 1]}"#])
            .spawn()
            .unwrap(),
    );
    assert!(ok && std::fs::read(&failed).unwrap().is_empty(), "{e}");
    let (ok, e) = finish(child(&["run", "test_slow", "-i", s(&failed), "-o", s(&out)]).spawn().unwrap());
    assert!(ok && e.contains("0 items"), "{e}");
    assert!(std::fs::read(&out).unwrap().is_empty());
}

/// The names of the files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Runs this binary as `autopara ARGS` (with the test op), failing the test
/// if it does not finish within a minute; returns success and stderr.
fn run_child(args: &[&str]) -> (bool, String) {
    let mut c = child(args).spawn().unwrap();
    let start = Instant::now();
    while c.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            c.kill().unwrap();
            panic!("autopara {args:?} hangs");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    finish(c)
}

#[test]
fn paths_that_cannot_be_inputs_or_outputs_are_named_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("in.xyz");
    write_inputs(&input, 2);
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let fifo = d.join("pipe.xyz");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = s(&d.join("out.xyz")).to_string();
    let sub_slash = format!("{}/", s(&d.join("new")));
    // (input, output, what the error must say); a reader that opened the
    // pipe would wait for a writer forever.
    // (Even with --overwrite, a pipe or device is never replaced by a file.)
    let cases: [(&str, &str, &[&str]); 8] = [
        (s(&input), "", &["output path is empty"]),
        (s(&input), s(&sub), &["sub names a directory", "sub/out.xyz"]),
        (s(&input), &sub_slash, &["new/ names a directory"]),
        (s(&input), s(&fifo), &["pipe.xyz is a named pipe (FIFO), not a regular file"]),
        (s(&input), "-", &["'-': standard output cannot be an output", "give a file name"]),
        (s(&sub), &out, &["sub: is a directory", "sub/*.xyz"]),
        (s(&fifo), &out, &["pipe.xyz: is a named pipe (FIFO)", "save it to a file first"]),
        ("-", &out, &["'-': standard input cannot be an input", "save it to a file first"]),
    ];
    for (inp, output, says) in cases {
        for cmd in [
            ["run", "test_slow", "-i", inp, "-o", output, "--overwrite"].as_slice(),
            &["convert", inp, "-o", output, "--overwrite"],
        ] {
            let (ok, e) = run_child(cmd);
            assert!(!ok, "{cmd:?} succeeded");
            for said in says {
                assert!(e.contains(said), "{cmd:?}: expected '{said}' in: {e}");
            }
            assert_eq!(listing(d), ["in.xyz", "pipe.xyz", "sub"], "{cmd:?} left files behind");
            assert!(listing(&sub).is_empty());
            assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "{cmd:?} replaced the pipe");
        }
    }
    // A run that fails at its first item leaves no journal or partial file.
    let bad = d.join("bad.xyz");
    std::fs::write(&bad, "1\n\nCu 0 x 0\n").unwrap();
    for cmd in [["run", "test_slow", "-i", s(&bad), "-o", &out].as_slice(), &["convert", s(&bad), "-o", &out]] {
        let (ok, e) = run_child(cmd);
        assert!(!ok && e.contains("frame 0, line 3"), "{e}");
    }
    let failing =
        ["run", "test_slow", "-i", s(&input), "-o", &out, "--args", r#"{"fail": [0]}"#, "--skip-failed", "false"];
    let (ok, e) = run_child(&failing);
    assert!(!ok && e.contains("item 0"), "{e}");
    assert_eq!(listing(d), ["bad.xyz", "in.xyz", "pipe.xyz", "sub"]);
}
