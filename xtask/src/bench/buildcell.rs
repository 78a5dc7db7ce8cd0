//! `cargo xtask bench buildcell`: random structures per second from the
//! release `autopara` binary (`autopara run buildcell --count N`, threads via
//! the core executor), for wfl's Li test input and a Li–Al input, with 1 and 2
//! workers.
//!
//! There is no peer: wfl runs AIRSS's external `buildcell` program, which is
//! not installable here, so only our throughput is printed.

use crate::util::{print_load, release_autopara, root, target_dir, timed};
use std::path::Path;
use std::process::Command;

/// wfl's `tests/test_buildcell.py` input.
const LI: &str = "#TARGVOL=19-21\n#SPECIES=Li%NUM=1\n#NFORM={6,8,10,12,14,16,18,20,22,24}\n#SYMMOPS=1-8\n\
                  #SLACK=0.25\n#OVERLAP=0.1\n#COMPACT\n#MINSEP=0.5 Li-Li=2.7\n##EXTRA_INFO RSS_min_vol_per_atom=10.0\n";

/// `create_input([3, 13], [20, 16.5], [3.0, 2.86], [1, 1], natom=(6, 16))`.
const LIAL: &str = "#TARGVOL=35-38\n#SPECIES=Li%NUM=1,Al%NUM=1\n#NFORM={3,4,5,6,7,8}\n#SYMMOPS=1-8\n#SLACK=0.25\n\
                    #OVERLAP=0.1\n#COMPACT\n#MINSEP=0.5 Li-Li=2.7 Li-Al=2.6 Al-Al=2.6\n\
                    ##EXTRA_INFO RSS_min_vol_per_atom=9.125\n";

/// Structures per run.
const COUNT: u64 = 1500;

/// Runs `autopara run buildcell` once; returns (CPU seconds, wall seconds).
fn time_run(bin: &Path, dir: &Path, name: &str, input: &str, workers: usize) -> Result<(f64, f64), String> {
    let args = dir.join(format!("{name}.json"));
    let json = serde_json::json!({ "buildcell_input": input });
    std::fs::write(&args, json.to_string()).map_err(|e| format!("{}: {e}", args.display()))?;
    let out = dir.join(format!("{name}_{workers}.xyz"));
    timed(
        Command::new(bin)
            .args(["run", "buildcell", "--count", &COUNT.to_string(), "--seed", "1", "--overwrite", "-q"])
            .arg("--workers")
            .arg(workers.to_string())
            .arg("--args")
            .arg(format!("@{}", args.display()))
            .arg("-o")
            .arg(&out),
    )
}

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    let root = root();
    let bin = release_autopara(&root, "")?;
    let dir = target_dir(&root).join("bench-buildcell");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    print_load();
    println!("peer: none (wfl calls AIRSS's external buildcell binary, not installable here); autopara only");
    println!("{:<22} {:>7} {:>8} {:>8} {:>14}", "input", "workers", "wall s", "CPU s", "structures/s");
    for (name, input, label) in [("li", LI, "Li (wfl test input)"), ("lial", LIAL, "LiAl (binary)")] {
        for workers in [1, 2] {
            let (cpu, wall) = time_run(&bin, &dir, name, input, workers)?;
            println!("{label:<22} {workers:>7} {wall:>8.2} {cpu:>8.2} {:>14.0}", COUNT as f64 / wall);
        }
    }
    println!(
        "({COUNT} structures per run, end to end: executor threads, generation, symmetry detection, extxyz output)"
    );
    Ok(())
}
