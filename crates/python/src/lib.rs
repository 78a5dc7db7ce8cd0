//! `autopara._native`: the Rust half of the `autopara` Python package
//! (`python/` in the repository; `pip install ./python` builds it with maturin).
//!
//! It runs autopara's native ops on [`ConfigSet`](autopara::ConfigSet)s and
//! [`OutputSpec`](autopara::OutputSpec)s described from Python, through the
//! same runner, cache and locks as `autopara run`; reads and writes frames for
//! the pure-Python `ConfigSet` wrapper; and drives `autoparallelize`: the
//! user's Python function in long-lived worker processes
//! (`procs::ProcessBackend`), fed and drained by the core executor.
//!
//! Errors become Python exceptions of the `AutoparaError` hierarchy (`autopara.errors`) carrying
//! the message `autopara` prints after `autopara: error:`; a Rust panic is
//! caught at the boundary and raised as `AutoparaError` too. Every call that
//! computes or reads releases the GIL while it works.

mod codec;
mod frames;
mod procs;
mod run;

use pyo3::prelude::*;
use pyo3::types::PyType;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The exception `class` of `autopara.errors` (the hierarchy is defined in
/// Python so that, for example, `ArgsError` is also a `ValueError`) with `message`.
pub(crate) fn error(class: &str, message: String) -> PyErr {
    Python::attach(|py| {
        let ty = py.import("autopara.errors").and_then(|m| m.getattr(class)).and_then(|t| Ok(t.cast_into::<PyType>()?));
        match ty {
            Ok(ty) => PyErr::from_type(ty, (message,)),
            Err(e) => e,
        }
    })
}

/// The Python exception for a core error, with the CLI's message.
pub(crate) fn to_py(e: autopara::Error) -> PyErr {
    use autopara::Error as E;
    let message = e.to_string();
    let class = match e {
        E::Io { .. } | E::Parse { .. } => "FileError",
        E::Args { .. } | E::Unknown { .. } => "ArgsError",
        E::Input(_) => "InputError",
        E::Output(_) => "OutputError",
        E::Cache(_) => "CacheError",
        E::ItemFailed { .. } => "ItemFailedError",
        E::Other(_) => "AutoparaError",
    };
    error(class, message)
}

/// The text of a caught panic.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The error raised for a panic caught at the Python boundary.
pub(crate) fn panic_error(payload: &(dyn std::any::Any + Send)) -> PyErr {
    error("AutoparaError", format!("internal error (a bug in autopara; please report it): {}", panic_text(payload)))
}

/// Runs `f`, turning a panic into `AutoparaError`: no Rust panic reaches Python.
pub(crate) fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(panic_error(payload.as_ref())))
}

/// Panics inside the boundary guard: the test suite checks that it arrives as
/// `AutoparaError`, not as a panic.
#[pyfunction]
fn _guard_self_test() -> PyResult<()> {
    guarded(|| {
        let empty: Vec<u8> = Vec::new();
        // An out-of-bounds index: a genuine panic, as a bug would raise.
        std::hint::black_box(empty[empty.len()]);
        Ok(())
    })
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("VERSION", autopara::cache::AUTOPARA_VERSION)?;
    m.add_function(wrap_pyfunction!(_guard_self_test, m)?)?;
    frames::register(m)?;
    run::register(m)?;
    procs::register(m)?;
    Ok(())
}
