//! autopara from Rust: single points and a closure over in-memory
//! configurations, then MD into a cached file output.
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```

use autopara::outputspec::Outputs;
use autopara::{Atoms, AutoparaInfo, ConfigSet, OutputSpec, Value, build_op, runner};

/// `n` copies of a 4-atom fcc Cu cell, each stretched a little more.
fn cells(n: usize) -> Vec<Atoms> {
    (0..n)
        .map(|i| {
            let a = 3.5 + 0.02 * i as f64;
            let h = a / 2.0;
            let mut at = Atoms::new(vec![29; 4], vec![[0.0, 0.0, 0.0], [h, h, 0.0], [h, 0.0, h], [0.0, h, h]]);
            at.cell = [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]];
            at.pbc = [true; 3];
            at
        })
        .collect()
}

fn main() -> autopara::Result<()> {
    let info = AutoparaInfo { workers: Some(2), seed: Some(7), progress: Some(false), ..Default::default() };
    let inputs = ConfigSet::from_atoms(cells(10));

    // Single points with EMT, in memory: results land in info/arrays as EMT_energy, EMT_forces, ...
    let calculate = build_op("calculate", serde_json::json!({"calculator": {"type": "emt"}}))?;
    let done = runner::run(calculate.as_ref(), &inputs, &OutputSpec::memory(), &info)?;
    let Outputs::Memory(configs) = done.outputs else { return Err(autopara::Error::Other("expected memory".into())) };
    for at in &configs {
        println!("V = {:6.2} A^3  E = {:8.4} eV", at.volume(), at.info_f64("EMT_energy").unwrap_or(f64::NAN));
    }

    // Any closure, like wfl's map: here, the volume per atom into info.
    let done =
        runner::map(&ConfigSet::from_atoms(configs), &OutputSpec::memory(), &info, |mut at: Atoms, _rng: &mut _| {
            let v = at.volume() / at.len() as f64;
            at.info.insert("volume_per_atom".into(), Value::Float(v));
            at
        })?;
    println!("map: {}", done.stats.summary());

    // MD into a file: cached by content, so a second run reuses it.
    let dir = std::env::temp_dir().join(format!("autopara-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| autopara::Error::io(&dir, e))?;
    let md = build_op(
        "md",
        serde_json::json!({"calculator": {"type": "emt"}, "steps": 100, "dt": 1.0,
                           "temperature": 300.0, "temperature_tau": 50.0, "traj_step_interval": 50}),
    )?;
    let output = OutputSpec::file(dir.join("md.xyz"));
    for _ in 0..2 {
        let done = runner::run(md.as_ref(), &inputs, &output, &info)?;
        println!("md: {:?}: {}", done.action, done.stats.summary());
    }
    // Best effort: the directory only holds this example's output.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
