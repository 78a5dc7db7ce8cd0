//! The md op through the executor: identical trajectories for any number of
//! workers and chunk size, and a blown-up trajectory recorded as that item's
//! failure while the others finish.

use autopara_calculators as _; // links the calculators' registrations
use autopara_core::{Atoms, AutoparaInfo, Column, ConfigSet, OutputSpec, Value, build_op, runner};
use autopara_md as _; // links the op's registration
use autopara_testkit::fixtures::memory_outputs;
use serde_json::json;

/// Small rattled LJ clusters in a periodic box.
fn configs(n: usize) -> Vec<Atoms> {
    (0..n)
        .map(|c| {
            let mut rng = autopara_core::rng::item_rng(9, "executor test", c as u64);
            let mut positions = Vec::new();
            for i in 0..2 {
                for j in 0..2 {
                    for k in 0..2 {
                        let jitter = |rng: &mut autopara_core::rng::ItemRng| 0.1 * rand::Rng::random::<f64>(rng);
                        positions.push([
                            1.2 * i as f64 + jitter(&mut rng),
                            1.2 * j as f64 + jitter(&mut rng),
                            1.2 * k as f64 + jitter(&mut rng),
                        ]);
                    }
                }
            }
            let mut at = Atoms::new(vec![18; 8], positions);
            at.cell = [[2.4, 0.0, 0.0], [0.0, 2.4, 0.0], [0.0, 0.0, 2.4]];
            at.pbc = [true; 3];
            at.arrays.insert("masses".into(), Column::scalars(vec![1.0; 8]));
            at
        })
        .collect()
}

fn run(configs: Vec<Atoms>, workers: usize, chunk_size: usize) -> runner::RunSummary {
    let op = build_op(
        "md",
        json!({"calculator": {"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.0},
               "steps": 30, "dt": 0.05, "integrator": "Langevin", "temperature": 5000.0,
               "temperature_tau": 2.0, "traj_step_interval": 10}),
    )
    .expect("md op");
    let info = AutoparaInfo {
        workers: Some(workers),
        chunk_size: Some(chunk_size),
        seed: Some(42),
        progress: Some(false),
        ..Default::default()
    };
    runner::run(op.as_ref(), &ConfigSet::from_atoms(configs), &OutputSpec::memory(), &info).expect("run")
}

fn frames(summary: runner::RunSummary) -> Vec<Atoms> {
    memory_outputs(summary.outputs)
}

#[test]
fn identical_for_any_workers_and_chunking() {
    let reference = frames(run(configs(7), 1, 1));
    assert_eq!(reference.len(), 7 * 4);
    for (workers, chunk) in [(2, 1), (2, 3), (3, 2), (1, 7)] {
        assert_eq!(frames(run(configs(7), workers, chunk)), reference, "{workers} workers, chunk {chunk}");
    }
    // Different items get different velocities, even from equal configurations.
    let same = vec![configs(1).remove(0); 2];
    let out = frames(run(same, 2, 1));
    assert_ne!(out[0].arrays["momenta"], out[4].arrays["momenta"]);
}

#[test]
fn a_blow_up_fails_only_its_item() {
    let mut inputs = configs(3);
    // Two atoms 1e-30 A apart: an infinite energy.
    inputs[1].positions[0] = [0.0; 3];
    inputs[1].positions[1] = [1e-30, 0.0, 0.0];
    inputs[1].info.insert("config_type".into(), Value::Str("bad".into()));
    let summary = run(inputs, 2, 1);
    assert_eq!(summary.failures.len(), 1, "{:?}", summary.failures);
    let failure = &summary.failures[0];
    assert_eq!(failure.index, 1);
    assert!(failure.message.contains("blew up"), "{}", failure.message);
    assert_eq!(frames(summary).len(), 2 * 4);
}
