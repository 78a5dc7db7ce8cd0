//! `cargo xtask bench python`: the Python package against its peers, in one run
//! (`python_bench.py`):
//!
//! - `autoparallelize` of a trivial function over 10,000 two-atom
//!   configurations (file in, file out), 2 workers, chunks of 10, against wfl's
//!   `autoparallelize` with 2 subprocesses and the same chunks: the per-item
//!   overhead, whose target is 3x lower than wfl's;
//! - `calculate` and `md` called from Python against `autopara run` on the
//!   same inputs (target: within 10%), with the outputs compared byte for byte.
//!
//! The package is built in release mode and installed into `.venv` first.

use crate::util;
use std::process::Command;

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    let root = util::root();
    let python = util::venv_python().ok_or("no .venv: run `cargo xtask deps` first")?;
    if !util::python_has(&python, "wfl.autoparallelize") {
        return Err("wfl is missing from .venv (cargo xtask deps installs it)".into());
    }
    let bin = util::release_autopara(&root, "")?;
    util::install_python_package(&root, "release")?;
    util::in_temp_dir("python", |dir| {
        util::print_load();
        let script = dir.join("python_bench.py");
        std::fs::write(&script, include_str!("python_bench.py")).map_err(|e| format!("{}: {e}", script.display()))?;
        util::run(Command::new(&python).arg(&script).arg(dir).arg(&bin))
    })
}
