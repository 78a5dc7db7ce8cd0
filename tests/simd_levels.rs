//! The vectorised kernels (EMT, the pair potentials, SOAP) give bit-identical results whichever
//! vector unit runs them (AVX-512, AVX2 or the x86-64 baseline, forced
//! through `AUTOPARA_SIMD`), so outputs do not depend on the machine: single
//! points, MD trajectories and SOAP vectors, for one element and a mixture,
//! periodic and not.

use autopara::extxyz;
use autopara_testkit::fixtures::fcc;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_autopara");

/// Rattled fcc cells: pure Cu, a Cu-Au mixture, and a Cu cluster without a cell.
fn write_inputs(dir: &Path) -> PathBuf {
    let mut configs = Vec::new();
    for c in 0..3u32 {
        let mut at = fcc(29, 3.7, [2, 2, 2]);
        for (n, p) in at.positions.iter_mut().enumerate() {
            let jitter = |phase: f64| 0.08 * (n as f64 * 1.3 + f64::from(c) * 0.71 + phase).sin();
            *p = [p[0] + jitter(0.0), p[1] + jitter(1.0), p[2] + jitter(2.0)];
            if c == 1 && n % 3 == 0 {
                at.numbers[n] = 79;
            }
        }
        if c == 2 {
            at.cell = [[0.0; 3]; 3];
            at.pbc = [false; 3];
        }
        configs.push(at);
    }
    let path = dir.join("in.xyz");
    std::fs::write(&path, extxyz::to_string(&configs).expect("encode inputs")).expect("write inputs");
    path
}

/// Runs `op` with `args` on `input` into `out` with `AUTOPARA_SIMD` set to `level`
/// (or unset: the widest unit), and returns the output's bytes.
fn run(op: &str, args: &str, input: &Path, out: &Path, level: Option<&str>) -> Vec<u8> {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", op, "-i"]).arg(input).arg("-o").arg(out).args(["--args", args, "--seed", "3", "-q"]);
    match level {
        Some(level) => cmd.env("AUTOPARA_SIMD", level),
        None => cmd.env_remove("AUTOPARA_SIMD"),
    };
    let result = cmd.output().expect("run autopara");
    assert!(result.status.success(), "{op} ({level:?}): {}", String::from_utf8_lossy(&result.stderr));
    std::fs::read(out).expect("read output")
}

#[test]
fn outputs_are_bit_identical_on_every_vector_unit() {
    #[cfg(target_arch = "x86_64")]
    for feature in ["avx2", "avx512f"] {
        let present = match feature {
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            _ => std::arch::is_x86_feature_detected!("avx512f"),
        };
        if !present {
            eprintln!("outputs_are_bit_identical_on_every_vector_unit: no {feature} here; that unit not compared");
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_inputs(dir.path());
    let md = r#"{"calculator": {"type": "emt"}, "steps": 40, "dt": 2.0, "temperature": 500,
                 "temperature_tau": 50, "integrator": "Langevin", "traj_step_interval": 10}"#;
    let lj = r#"{"calculator": {"type": "lennard_jones", "sigma": 2.3, "epsilon": 0.4, "rc": 5.0}, "steps": 40,
               "dt": 2.0, "temperature": 500, "traj_step_interval": 10}"#;
    let soap = r#"{"descriptor": {"type": "soap", "species": ["Cu", "Au"], "r_cut": 4.0, "n_max": 6,
                   "l_max": 5, "sigma": 0.5}, "key": "soap", "per_atom": true}"#;
    let emt = r#"{"calculator": {"type": "emt"}}"#;
    for (name, op, args) in
        [("calculate", "calculate", emt), ("md", "md", md), ("md-lj", "md", lj), ("descriptor", "descriptor", soap)]
    {
        let widest = run(op, args, &input, &dir.path().join(format!("{name}-widest.xyz")), None);
        assert!(!widest.is_empty());
        for level in ["avx2", "baseline"] {
            let other = run(op, args, &input, &dir.path().join(format!("{name}-{level}.xyz")), Some(level));
            assert!(other == widest, "{name}: output with AUTOPARA_SIMD={level} differs from the widest unit's");
        }
    }
}
