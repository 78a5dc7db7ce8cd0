//! Test support shared by autopara's crates: finding the reference Python
//! environment (ASE, dscribe, the libAtoms `extxyz` parser) and running
//! reference scripts in it, and common [`fixtures`] (crystals, items).
//!
//! The interpreter is `$AUTOPARA_PYTHON` when set, else `<workspace>/.venv/bin/python`
//! (made by `cargo xtask deps`). When neither exists, reference tests print a
//! loud `SKIPPED` line and pass, unless `AUTOPARA_REQUIRE_REFERENCES=1` (set by
//! `cargo xtask test` in CI), which turns a missing environment into a failure.

pub mod bridge;
pub mod fixtures;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| PathBuf::from("."))
}

/// The reference interpreter, if one is available.
pub fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AUTOPARA_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let p = workspace_root().join(".venv/bin/python");
    p.exists().then_some(p)
}

/// The reference interpreter, or `None` after printing a loud skip notice.
/// Panics (fails the test) when `AUTOPARA_REQUIRE_REFERENCES=1` and none exists.
pub fn python_or_skip(test: &str) -> Option<PathBuf> {
    match python() {
        Some(p) => Some(p),
        None if std::env::var("AUTOPARA_REQUIRE_REFERENCES").is_ok_and(|v| v == "1") => {
            panic!("{test}: reference Python environment missing; run `cargo xtask deps`")
        }
        None => {
            eprintln!("SKIPPED {test}: no reference Python (run `cargo xtask deps` or set AUTOPARA_PYTHON)");
            None
        }
    }
}

/// Runs `script` with the interpreter, feeding `stdin`, and returns stdout.
/// Panics with the script's stderr when it fails (this is test code).
pub fn run_python(python: &PathBuf, script: &str, stdin: &str) -> String {
    run_script(python, script, &[], stdin)
}

/// Runs `script` and parses its stdout as JSON.
pub fn run_python_json(python: &PathBuf, script: &str, stdin: &str) -> serde_json::Value {
    parse_json(run_python(python, script, stdin))
}

/// Runs `script` on files named on its command line (`sys.argv[1:]`), with
/// an empty stdin, and returns stdout; panics with its stderr when it fails.
pub fn run_python_on_files(python: &PathBuf, script: &str, files: &[&Path]) -> String {
    run_script(python, script, files, "")
}

/// [`run_python_on_files`], its stdout parsed as JSON.
pub fn run_python_json_on_files(python: &PathBuf, script: &str, files: &[&Path]) -> serde_json::Value {
    parse_json(run_python_on_files(python, script, files))
}

fn run_script(python: &PathBuf, script: &str, args: &[&Path], stdin: &str) -> String {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    if let Some(mut s) = child.stdin.take() {
        s.write_all(stdin.as_bytes()).expect("write python stdin");
    }
    let out = child.wait_with_output().expect("wait for python");
    assert!(out.status.success(), "reference script failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("python stdout is UTF-8")
}

fn parse_json(out: String) -> serde_json::Value {
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("reference script printed invalid JSON ({e}):\n{out}"))
}
