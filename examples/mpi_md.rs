//! Molecular dynamics over many configurations on every MPI rank.
//!
//! ```sh
//! cargo build --release --features mpi --example mpi_md
//! AUTOPARA_MPI=1 mpirun -np 2 target/release/examples/mpi_md IN.xyz OUT.xyz
//! ```
//!
//! Rank 0 runs this program; the other ranks serve chunks inside
//! `autopara::mpi::init()` and exit when rank 0 is done. The output is
//! byte-identical to a serial run with the same seed.

use autopara::{AutoparaInfo, ConfigSet, OutputSpec, build_op, runner};
use std::process::ExitCode;

fn main() -> ExitCode {
    let _mpi = autopara::mpi::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: mpi_md IN.xyz OUT.xyz");
        return ExitCode::FAILURE;
    };
    let result = (|| {
        let md = build_op(
            "md",
            serde_json::json!({
                "calculator": {"type": "emt"},
                "steps": 200, "dt": 1.0,
                "temperature": 300.0, "temperature_tau": 50.0, "integrator": "Langevin",
                "traj_step_interval": 50,
            }),
        )?;
        let info = AutoparaInfo { seed: Some(42), chunk_size: Some(1), ..Default::default() };
        let inputs = ConfigSet::from_paths(&[input])?;
        runner::run(md.as_ref(), &inputs, &OutputSpec::file(output), &info)
    })();
    match result {
        Ok(summary) => {
            println!("{:?}: {}", summary.action, summary.stats.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mpi_md: {e}");
            ExitCode::FAILURE
        }
    }
}
