//! Benchmark driver for `cargo xtask bench descriptor` (built in release).
//!
//! `bench_descriptor DIR` writes the benchmark structures to `DIR/cu108.xyz`
//! (1,000 fcc Cu cells of 108 atoms, thermally shaken) and `DIR/sic64.xyz`
//! (1,000 zincblende cells of 64 atoms with random Si/C occupancy, shaken),
//! then times the `descriptor` op (SOAP r_cut 5, n_max 8, l_max 6, sigma 0.5,
//! per atom) on each through the executor (`runner::run`, threads backend,
//! in-memory input and output, default chunk size) with 1 and 2 workers, and
//! prints one JSON line per
//! run: `{"set": ..., "workers": n, "configs": n, "seconds": s}`. The
//! features of the first config of each set go to `DIR/<set>.first.json` so
//! the caller can check them against dscribe.

use autopara_core::outputspec::Outputs;
use autopara_core::{ArrayData, Atoms, AutoparaInfo, ConfigSet, OutputSpec, extxyz, runner};
use autopara_core::{ItemOp, KitOp};
use autopara_descriptor::DescriptorOp;
use std::path::{Path, PathBuf};
use std::time::Instant;

const N_CONFIGS: usize = 1000;

/// xorshift64*: deterministic structures without a dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An `n³` supercell of a cubic conventional cell with fractional `basis`
/// sites, elements chosen per site by `element`, every coordinate shaken by
/// up to ±`shake` Å and wrapped into the cell.
fn crystal(
    a: f64,
    n: usize,
    basis: &[[f64; 3]],
    shake: f64,
    rng: &mut Rng,
    mut element: impl FnMut(usize, &mut Rng) -> u8,
) -> Atoms {
    let side = a * n as f64;
    let (mut numbers, mut positions) = (Vec::new(), Vec::new());
    for i in 0..n {
        for j in 0..n {
            for k in 0..n {
                for (s, b) in basis.iter().enumerate() {
                    let p = [(i as f64 + b[0]) * a, (j as f64 + b[1]) * a, (k as f64 + b[2]) * a];
                    positions.push(p.map(|x| (x + shake * (2.0 * rng.uniform() - 1.0)).rem_euclid(side)));
                    numbers.push(element(s, rng));
                }
            }
        }
    }
    let mut at = Atoms::new(numbers, positions);
    at.cell = [[side, 0.0, 0.0], [0.0, side, 0.0], [0.0, 0.0, side]];
    at.pbc = [true; 3];
    at
}

fn structures() -> Vec<(&'static str, Vec<Atoms>)> {
    let fcc = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]];
    let zincblende: Vec<[f64; 3]> = fcc.iter().copied().chain(fcc.iter().map(|p| p.map(|x| x + 0.25))).collect();
    let mut rng = Rng(0x5EED_0000_0000_0001);
    let cu = (0..N_CONFIGS).map(|_| crystal(3.61, 3, &fcc, 0.1, &mut rng, |_, _| 29)).collect();
    let sic = (0..N_CONFIGS)
        .map(|_| crystal(4.36, 2, &zincblende, 0.1, &mut rng, |_, r| if r.uniform() < 0.5 { 6 } else { 14 }))
        .collect();
    vec![("cu108", cu), ("sic64", sic)]
}

fn op(species: &[&str]) -> KitOp<DescriptorOp> {
    let args = serde_json::json!({
        "descriptor": {"type": "soap", "species": species, "r_cut": 5.0, "n_max": 8, "l_max": 6, "sigma": 0.5,
                       "periodic": true, "average": "off"},
        "key": "soap", "per_atom": true, "normalize": false,
    });
    match DescriptorOp::from_json(args) {
        Ok(op) => op,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("bench_descriptor: {message}");
    std::process::exit(1)
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        fail(&format!("{}: {e}", path.display()));
    }
}

/// This process's CPU time (user + system, s) from `/proc/self/stat`, when readable.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else { fail("usage: bench_descriptor DIR") };
    for (set, configs) in structures() {
        let text = extxyz::to_string(&configs).unwrap_or_else(|e| fail(&e.to_string()));
        write(&dir.join(format!("{set}.xyz")), &text);
        let op = op(if set == "cu108" { &["Cu"] } else { &["C", "Si"] });
        for workers in [1, 2] {
            let inputs = ConfigSet::from_atoms(configs.clone());
            let info = AutoparaInfo { workers: Some(workers), progress: Some(false), ..Default::default() };
            let (start, cpu_start) = (Instant::now(), cpu_seconds());
            let summary =
                runner::run(&op, &inputs, &OutputSpec::memory(), &info).unwrap_or_else(|e| fail(&e.to_string()));
            let Outputs::Memory(done) = summary.outputs else { fail("expected in-memory outputs") };
            if summary.stats.failed > 0 {
                fail(&format!("{} configs failed", summary.stats.failed));
            }
            let seconds = start.elapsed().as_secs_f64();
            let cpu = cpu_start.zip(cpu_seconds()).map(|(a, b)| b - a);
            println!(
                "{}",
                serde_json::json!({"set": set, "workers": workers, "configs": done.len(), "seconds": seconds, "cpu_seconds": cpu})
            );
            if workers == 1 {
                let first = match &done[0].arrays["soap"].data {
                    ArrayData::Float(v) => v.clone(),
                    _ => fail("soap column is not float"),
                };
                write(&dir.join(format!("{set}.first.json")), &serde_json::json!(first).to_string());
            }
        }
    }
}
