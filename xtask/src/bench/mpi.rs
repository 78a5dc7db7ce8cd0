//! `cargo xtask bench mpi`: md on 64 Lennard-Jones 108-atom systems (the
//! LAMMPS bench/in.lj settings of `bench md`) serially, on 2 threads, and
//! under `mpirun -np 2` with the MPI backend, in one run. Target: MPI np 2 at
//! least 1.8x serial. The three outputs must be byte-identical.

use super::md::write_systems;
use crate::util;
use serde_json::json;
use std::path::Path;
use std::process::Command;

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
    let mut walls = Vec::new();
    let mut outputs = Vec::new();
    for (label, workers) in [("serial", "1"), ("threads, 2 workers", "2")] {
        let out = dir.join(format!("out-{workers}.xyz"));
        let (_, wall) = util::timed(Command::new(bin).args(run_args(&out)).args(["--workers", workers]))?;
        println!("{label:<22} {:.3} M atom-steps/s ({wall:.2} s wall)", atom_steps / wall / 1e6);
        walls.push(wall);
        outputs.push(out);
    }
    let has_mpirun = Command::new("mpirun").arg("--version").output().is_ok_and(|o| o.status.success());
    if !has_mpirun {
        println!("mpirun missing (run `cargo xtask deps`); MPI reported as absent");
        return Ok(());
    }
    let out = dir.join("out-mpi.xyz");
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-np", "2"])
        .arg(bin)
        .args(run_args(&out))
        .env("AUTOPARA_MPI", "1")
        .env("AUTOPARA_NUM_WORKERS", "1");
    let (_, wall) = util::timed(&mut cmd)?;
    println!(
        "{:<22} {:.3} M atom-steps/s ({wall:.2} s wall); MPI / serial = {:.2}x (target >= 1.8x), MPI / threads = {:.2}x",
        "mpirun -np 2",
        atom_steps / wall / 1e6,
        walls[0] / wall,
        walls[1] / wall
    );
    outputs.push(out);
    let first = std::fs::read(&outputs[0]).map_err(|e| e.to_string())?;
    for o in &outputs[1..] {
        if std::fs::read(o).map_err(|e| e.to_string())? != first {
            return Err(format!("{} differs from the serial output", o.display()));
        }
    }
    println!("outputs of serial, threads and MPI are byte-identical");
    Ok(())
}
