//! `cargo xtask`: developer automation for autopara.
//!
//! ```text
//! cargo xtask deps [--peers]   reference environment (apt packages, .venv with ASE, dscribe, extxyz)
//! cargo xtask test             deps, fmt check, clippy, the whole test suite with references required
//! cargo xtask bench [NAME]...  benchmarks against their peers (io, executor, calculate, md, minim, descriptor, buildcell), and the MPI and queue backends' own costs
//! ```

mod bench;
mod demo;
mod deps;
mod new_op;
mod same_outputs;
mod util;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>
  deps [--peers]        install the reference environment (idempotent)
  test                  deps + fmt + clippy + all tests, the Python package's too (references required)
  bench [NAME...]       benchmarks side by side with peers; names: {BENCHES}
  demo                  the demo pipeline (buildcell -> minim -> md -> descriptor) into demo-out/
  run FILE.toml         run a pipeline file with the release binary
  new-op NAME           scaffold an op crate (crates/NAME, feature NAME) that builds and registers at once
  same-outputs REV      every op's output files on a corpus, byte for byte against git revision REV";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("deps") => deps::run(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("demo") => demo::demo(&args[1..]),
        Some("run") => demo::run_file(&args[1..]),
        Some("new-op") => new_op::run(&args[1..]),
        Some("same-outputs") => same_outputs::run(&args[1..]),
        Some(other) => Err(format!("unknown command '{other}'\n{}", usage())),
        None => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    USAGE.replace("{BENCHES}", &bench::names().join(", "))
}

/// The README's test command: everything a fresh machine needs, then every check.
fn test(args: &[String]) -> Result<(), String> {
    deps::run(&[])?;
    let root = util::root();
    util::cargo(&root, &["fmt", "--all", "--check"])?;
    // All features: the MPI backend (`mpi`) and its end-to-end tests are part
    // of the suite; `deps` installed what they need.
    util::cargo(&root, &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])?;
    // Doc comments are part of the interface: broken links fail the build.
    util::cargo_env(
        &root,
        &["doc", "--workspace", "--no-deps", "--all-features", "--document-private-items"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    let mut test_args = vec!["test", "--workspace", "--all-features"];
    test_args.extend(args.iter().map(String::as_str));
    util::cargo_env(&root, &test_args, &[("AUTOPARA_REQUIRE_REFERENCES", "1")])?;
    // The default binary (no features): what it refuses and what it has.
    util::cargo_env(
        &root,
        &["test", "-p", "autopara", "--test", "default_build"],
        &[("AUTOPARA_REQUIRE_REFERENCES", "1")],
    )?;
    python_tests(&root)?;
    println!("xtask test: all checks passed");
    Ok(())
}

/// Builds the Python package (`python/`) into the reference venv and runs its
/// pytest suite against the `autopara` binary the tests above built. The
/// extension is built with the dev profile, which reuses the test build's
/// compiled dependencies (a release build takes minutes; results are the same).
fn python_tests(root: &std::path::Path) -> Result<(), String> {
    use std::process::Command;
    util::install_python_package(root, "dev")?;
    let venv = root.join(".venv/bin");
    let target = util::target_dir(root);
    util::run(
        Command::new(venv.join("python"))
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "python/tests"])
            .current_dir(root)
            .env("AUTOPARA_REQUIRE_REFERENCES", "1")
            .env("AUTOPARA_CLI", target.join("debug/autopara")),
    )
}
