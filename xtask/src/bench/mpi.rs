//! `cargo xtask bench mpi`: md on 64 Lennard-Jones 108-atom systems (the
//! LAMMPS bench/in.lj settings of `bench md`, 5000 steps so that the fixed
//! start-up and `MPI_Init` time of about 0.34 s weighs little) serially, on 2 threads, and
//! under `mpirun -np 2` with the MPI backend, in one run. Target: MPI np 2 at
//! least 1.8x serial. The machine is shared, so the three runs alternate for
//! a few rounds and each one's fastest counts (wall and CPU seconds are
//! printed). Each is also timed on a 1-step run, which measures what does
//! not depend on the work (start-up, `MPI_Init`, shut-down), and the speed-up
//! without it is printed too. The three outputs must be byte-identical.

use super::md::write_systems;
use crate::util;
use serde_json::json;
use std::path::Path;
use std::process::Command;

/// Alternating rounds of the three runs; each configuration's fastest counts.
const ROUNDS: usize = 3;

/// The configurations compared: label, workers (threads per rank under
/// `mpirun`), and whether to run under `mpirun -np 2`.
const RUNS: [(&str, &str, bool); 3] =
    [("serial", "1", false), ("threads, 2 workers", "2", false), ("mpirun -np 2", "1", true)];

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    let bin = util::release_autopara(&util::root(), "mpi")?;
    util::in_temp_dir("mpi", |dir| run_in(&bin, dir))
}

fn run_in(bin: &Path, dir: &Path) -> Result<(), String> {
    util::print_load();
    let input = dir.join("lj.xyz");
    write_systems(&input, 18, 1.6796, Some(1.0))?;
    let steps = 5000u64;
    let atom_steps = 64.0 * 108.0 * steps as f64;
    // The benchmark proper, and one step of it: the latter measures what
    // does not depend on the work (start-up, MPI_Init, reading, shut-down).
    let mut args_files = Vec::new();
    for (name, steps, interval) in [("lj", steps, 100), ("lj-1step", 1, 1)] {
        let args = json!({
            "calculator": {"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5},
            "steps": steps, "dt": 0.0509, "temperature": 1.44 / autopara_core::units::KB, "traj_step_interval": interval,
        });
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, args.to_string()).map_err(|e| format!("{}: {e}", file.display()))?;
        args_files.push(file);
    }
    let has_mpirun = Command::new("mpirun").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_mpirun {
        println!("mpirun missing (run `cargo xtask deps`); MPI reported as absent");
    }
    let runs: Vec<_> = RUNS.iter().filter(|(_, _, mpi)| has_mpirun || !mpi).collect();
    let command = |workers: &str, mpi: bool, args_file: &Path, out: &Path| {
        let mut cmd = if mpi {
            let mut cmd = Command::new("mpirun");
            cmd.args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
                .arg(bin)
                .env("AUTOPARA_MPI", "1")
                .env("AUTOPARA_NUM_WORKERS", workers);
            cmd
        } else {
            Command::new(bin)
        };
        cmd.args(["run", "md", "-i"])
            .arg(&input)
            .arg("-o")
            .arg(out)
            .arg("--args")
            .arg(format!("@{}", args_file.display()))
            .args(["--seed", "1", "--chunk-size", "1", "--overwrite", "--quiet"]);
        if !mpi {
            cmd.args(["--workers", workers]);
        }
        cmd
    };
    // Other processes share the machine: the runs alternate, ROUNDS times, and
    // each configuration's fastest run counts. best[args][run] = (wall, CPU).
    let mut best = vec![vec![(f64::INFINITY, 0.0); runs.len()]; args_files.len()];
    let output = |a: usize, r: usize| dir.join(format!("out-{a}-{r}.xyz"));
    for _ in 0..ROUNDS {
        for (r, (_, workers, mpi)) in runs.iter().enumerate() {
            for (a, args_file) in args_files.iter().enumerate() {
                let (cpu, wall) = util::timed(&mut command(workers, *mpi, args_file, &output(a, r)))?;
                if wall < best[a][r].0 {
                    best[a][r] = (wall, cpu);
                }
            }
        }
    }
    let (full, fixed) = (&best[0], &best[1]);
    println!("best of {ROUNDS} alternating runs each:");
    for (r, (label, _, _)) in runs.iter().enumerate() {
        let ((wall, cpu), (fixed_wall, _)) = (full[r], fixed[r]);
        println!(
            "{label:<22} {:.3} M atom-steps/s ({wall:.2} s wall, {cpu:.2} CPU-s; a 1-step run {fixed_wall:.2} s); \
             / serial = {:.2}x, without the 1-step run's time = {:.2}x",
            atom_steps / wall / 1e6,
            full[0].0 / wall,
            (full[0].0 - fixed[0].0) / (wall - fixed_wall),
        );
    }
    if let Some(&(wall, _)) = full.get(2) {
        println!("MPI / serial = {:.2}x (target >= 1.8x), MPI / threads = {:.2}x", full[0].0 / wall, full[1].0 / wall);
    }
    for a in 0..args_files.len() {
        let first = std::fs::read(output(a, 0)).map_err(|e| e.to_string())?;
        for r in 1..runs.len() {
            if std::fs::read(output(a, r)).map_err(|e| e.to_string())? != first {
                return Err(format!("{} differs from the serial output", output(a, r).display()));
            }
        }
    }
    println!("outputs of {} are byte-identical", runs.iter().map(|(l, _, _)| *l).collect::<Vec<_>>().join(", "));
    Ok(())
}
