//! `cargo xtask bench memory`: peak resident memory of `autopara run
//! calculate` (Lennard-Jones energy, forces and stress) and `autopara
//! convert` on 2 workers over 100,000 and 1,000,000 small configurations (two
//! atoms in a cell), and the ratio of the two peaks: memory must not grow with
//! the number of configurations (target: within 1.2x).
//!
//! Each run is the release binary under `/usr/bin/time -f %M`, which reports
//! the child's peak resident set size (`ru_maxrss`, kB).

use crate::util;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

/// Configurations in the small and the large run.
const SIZES: [usize; 2] = [100_000, 1_000_000];

/// Largest allowed ratio of the large run's peak to the small run's.
const TARGET: f64 = 1.2;

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    if !Path::new(TIME).exists() {
        return Err(format!("{TIME} (GNU time) is needed to measure peak memory; install the `time` package"));
    }
    let bin = util::release_autopara(&util::root(), "")?;
    util::in_temp_dir("memory", |dir| run_in(&bin, dir))
}

const TIME: &str = "/usr/bin/time";

fn run_in(bin: &Path, dir: &Path) -> Result<(), String> {
    util::print_load();
    let lj = r#"{"calculator": {"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5}, "properties": ["energy", "forces", "stress"]}"#;
    let mut peaks = Vec::new();
    for n in SIZES {
        let input = dir.join(format!("in-{n}.xyz"));
        write_configs(&input, n)?;
        let calc = dir.join(format!("calc-{n}.xyz"));
        let mut cmd = Command::new(bin);
        cmd.args(["run", "calculate", "-i"]).arg(&input).arg("-o").arg(&calc);
        cmd.args(["--args", lj, "--workers", "2", "--quiet"]);
        let calculate = peak_kb(&mut cmd)?;
        let conv = dir.join(format!("conv-{n}.xyz"));
        let mut cmd = Command::new(bin);
        cmd.arg("convert").arg(&input).arg("-o").arg(&conv).args(["--workers", "2"]);
        let convert = peak_kb(&mut cmd)?;
        println!("{n:>9} configurations: peak RSS calculate {calculate:>7} kB, convert {convert:>7} kB");
        peaks.push((calculate, convert));
        for f in [input, calc, conv] {
            // Best effort: frees the disk for the next size.
            let _ = std::fs::remove_file(f);
        }
    }
    let [(c0, v0), (c1, v1)] = peaks[..] else { return Err("missing measurements".into()) };
    let mut met = true;
    for (what, small, large) in [("calculate", c0, c1), ("convert", v0, v1)] {
        let ratio = large as f64 / small as f64;
        met &= ratio <= TARGET;
        println!(
            "{what}: peak at {} / peak at {} configurations = {ratio:.3} (target <= {TARGET}: {})",
            SIZES[1],
            SIZES[0],
            if ratio <= TARGET { "met" } else { "NOT met" }
        );
    }
    util::print_load_after();
    if met { Ok(()) } else { Err("peak memory grows with the number of configurations".into()) }
}

/// `n` two-atom configurations in a 3 Å cube, each a little different.
fn write_configs(path: &Path, n: usize) -> Result<(), String> {
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    for i in 0..n {
        let d = 1.0 + (i % 1000) as f64 * 1e-4;
        write!(
            w,
            "2\nLattice=\"3.0 0.0 0.0 0.0 3.0 0.0 0.0 0.0 3.0\" Properties=species:S:1:pos:R:3 i={i} pbc=\"T T T\"\n\
             Ar 0.0 0.0 0.0\nAr {d} 0.5 0.0\n"
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    w.flush().map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `cmd` under GNU time and returns its peak resident set size in kB.
fn peak_kb(cmd: &mut Command) -> Result<u64, String> {
    let mut timed = Command::new(TIME);
    timed.args(["-f", "PEAK_KB=%M"]).arg(cmd.get_program()).args(cmd.get_args());
    let out = timed.output().map_err(|e| format!("cannot run {timed:?}: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {err}"));
    }
    err.lines()
        .rev()
        .find_map(|l| l.strip_prefix("PEAK_KB=")?.trim().parse().ok())
        .ok_or_else(|| format!("{TIME} printed no peak for {cmd:?}: {err}"))
}
