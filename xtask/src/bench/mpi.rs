//! `cargo xtask bench mpi`: md on 64 Lennard-Jones 108-atom systems (the
//! LAMMPS bench/in.lj settings of `bench md`) serially, on 2 threads, and
//! under `mpirun -np 2` with the MPI backend, in one run. Target: MPI np 2 at
//! least 1.8x serial. The machine is shared, so the three runs alternate for
//! a few rounds and each one's fastest counts (wall and CPU seconds are
//! printed). The three outputs must be byte-identical.

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
    let steps = 1000u64;
    let args = json!({
        "calculator": {"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5},
        "steps": steps, "dt": 0.0509, "temperature": 1.44 / autopara_core::units::KB, "traj_step_interval": 100,
    });
    let args_file = dir.join("lj.json");
    std::fs::write(&args_file, args.to_string()).map_err(|e| format!("{}: {e}", args_file.display()))?;
    let atom_steps = 64.0 * 108.0 * steps as f64;
    let run_args = |out: &Path| -> Vec<String> {
        ["run", "md", "-i"]
            .iter()
            .map(|s| s.to_string())
            .chain([input.display().to_string(), "-o".into(), out.display().to_string()])
            .chain(["--args".into(), format!("@{}", args_file.display())])
            .chain(["--seed", "1", "--chunk-size", "1", "--overwrite", "--quiet"].iter().map(|s| s.to_string()))
            .collect()
    };
    let has_mpirun = Command::new("mpirun").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_mpirun {
        println!("mpirun missing (run `cargo xtask deps`); MPI reported as absent");
    }
    let runs: Vec<_> = RUNS.iter().filter(|(_, _, mpi)| has_mpirun || !mpi).collect();
    let command = |workers: &str, mpi: bool, out: &Path| {
        let mut cmd = if mpi {
            let mut cmd = Command::new("mpirun");
            cmd.args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
                .arg(bin)
                .env("AUTOPARA_MPI", "1")
                .env("AUTOPARA_NUM_WORKERS", workers);
            cmd
        } else {
            let mut cmd = Command::new(bin);
            cmd.args(["--workers", workers]);
            cmd
        };
        cmd.args(run_args(out));
        cmd
    };
    // Other processes share the machine: the runs alternate, ROUNDS times, and
    // each configuration's fastest run counts.
    let mut best = vec![(f64::INFINITY, 0.0); runs.len()];
    let outputs: Vec<_> = (0..runs.len()).map(|i| dir.join(format!("out-{i}.xyz"))).collect();
    for _ in 0..ROUNDS {
        for ((_, workers, mpi), (out, best)) in runs.iter().zip(outputs.iter().zip(best.iter_mut())) {
            let (cpu, wall) = util::timed(&mut command(workers, *mpi, out))?;
            if wall < best.0 {
                *best = (wall, cpu);
            }
        }
    }
    println!("best of {ROUNDS} alternating runs each:");
    for ((label, _, _), &(wall, cpu)) in runs.iter().zip(&best) {
        println!(
            "{label:<22} {:.3} M atom-steps/s ({wall:.2} s wall, {cpu:.2} CPU-s); / serial = {:.2}x",
            atom_steps / wall / 1e6,
            best[0].0 / wall
        );
    }
    if let Some(&(wall, _)) = best.get(2) {
        println!("MPI / serial = {:.2}x (target >= 1.8x), MPI / threads = {:.2}x", best[0].0 / wall, best[1].0 / wall);
    }
    let first = std::fs::read(&outputs[0]).map_err(|e| e.to_string())?;
    for o in &outputs[1..] {
        if std::fs::read(o).map_err(|e| e.to_string())? != first {
            return Err(format!("{} differs from the serial output", o.display()));
        }
    }
    println!("outputs of {} are byte-identical", runs.iter().map(|(l, _, _)| *l).collect::<Vec<_>>().join(", "));
    Ok(())
}
