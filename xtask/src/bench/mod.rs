//! `cargo xtask bench [NAME...]`: each benchmark times autopara and its peer
//! (ASE/wfl, dscribe, LAMMPS) side by side in the same run and prints
//! throughput and ratios. Peers come from `cargo xtask deps --peers`; a missing
//! peer is reported, not faked.
//!
//! Add a benchmark: a module with `pub fn run() -> Result<(), String>` and a line in [`BENCHES`].

/// Registered benchmarks: name and entry point.
type Bench = (&'static str, fn() -> Result<(), String>);

mod ase;
mod buildcell;
mod calculate;
mod descriptor;
mod executor;
mod io;
mod md;
mod memory;
mod minim;
mod mpi;
mod python;
mod queue;

const BENCHES: &[Bench] = &[
    ("ase", ase::run),
    ("buildcell", buildcell::run),
    ("calculate", calculate::run),
    ("descriptor", descriptor::run),
    ("executor", executor::run),
    ("io", io::run),
    ("md", md::run),
    ("memory", memory::run),
    ("minim", minim::run),
    ("mpi", mpi::run),
    ("python", python::run),
    ("queue", queue::run),
];

/// Benchmark names, for usage text.
pub fn names() -> Vec<&'static str> {
    BENCHES.iter().map(|(n, _)| *n).collect()
}

/// Runs the named benchmarks (all when none is named).
pub fn run(args: &[String]) -> Result<(), String> {
    let selected: Vec<&Bench> = if args.is_empty() {
        BENCHES.iter().collect()
    } else {
        args.iter()
            .map(|a| {
                BENCHES
                    .iter()
                    .find(|(n, _)| n == a)
                    .ok_or_else(|| format!("unknown benchmark '{a}'; known: {}", names().join(", ")))
            })
            .collect::<Result<_, _>>()?
    };
    for (name, f) in selected {
        println!("== bench {name} ==");
        f()?;
    }
    Ok(())
}

/// From a debug build, re-runs `cargo xtask bench NAME` as a release build
/// (timings of unoptimised code mean nothing) and returns `Ok(true)`; in a
/// release build returns `Ok(false)` so the caller runs the benchmark.
pub fn rerun_in_release(name: &str) -> Result<bool, String> {
    if !cfg!(debug_assertions) {
        return Ok(false);
    }
    println!("(building xtask in release mode for timing)");
    crate::util::cargo(&crate::util::root(), &["run", "--release", "--quiet", "-p", "xtask", "--", "bench", name])?;
    Ok(true)
}
