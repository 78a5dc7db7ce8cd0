//! Helpers shared by the facade's end-to-end tests.

use std::path::PathBuf;

/// A temporary directory with an input file written by a Python script.
pub struct Workdir {
    /// The directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// `in.xyz`, as the script wrote it.
    pub input: PathBuf,
    /// `out.xyz` (not yet written).
    pub output: PathBuf,
}

/// Runs the Python `script` with the path of `in.xyz` in a fresh temporary
/// directory (its `sys.argv[1]`) to write the inputs.
pub fn inputs_from_python(python: &PathBuf, script: &str) -> Workdir {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.xyz"), dir.path().join("out.xyz"));
    autopara_testkit::run_python_on_files(python, script, &[&input]);
    Workdir { dir, input, output }
}

/// Runs the `autopara` binary with `args`; panics with its stderr unless it succeeds.
pub fn autopara_ok(args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_autopara")).args(args).output().unwrap();
    assert!(out.status.success(), "autopara failed: {}", String::from_utf8_lossy(&out.stderr));
}
