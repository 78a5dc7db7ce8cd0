//! `cargo xtask bench minim`: the `minim` op against wfl + ASE and LAMMPS.
//!
//! (a) 64 rattled (0.1 Å) 108-atom EMT Cu cells (a = 3.61 Å) relaxed to
//!     fmax = 1e-3 eV/Å at fixed cell with PreconLBFGS (wfl's optimizer and
//!     ASE's default Exp preconditioner), against wfl's `optimize` with ASE's
//!     `EMT` on the first [`PEER_SUBSET`] cells (wfl is slow; figures are per cell).
//! (b) 64 rattled (0.1 σ) 108-atom Lennard-Jones cells with LAMMPS's
//!     `bench/in.lj` lattice (σ = 1 Å, ε = 1 eV, a = 1.6796 Å, rc = 2.5 Å),
//!     the same against wfl + ASE `LennardJones`, and against LAMMPS
//!     `minimize` (conjugate gradients, its default; `ftol` 1e-3 on the
//!     global force norm, which is stricter than a per-atom fmax) on all 64
//!     cells in one `lmp` process.
//!
//! Our side is the release `autopara run minim` end to end (extxyz in and
//! out, `traj_subselect = "last"`, as given to wfl), on 1 worker (CPU time)
//! and on 2 (wall time). Force evaluations are the calculator calls: ours
//! from `optimize_n_evaluations`, ASE's counted by a wrapped calculator,
//! LAMMPS's from its minimization statistics.

use crate::util;
use autopara_core::{Atoms, extxyz};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde_json::{Value as Json, json};
use std::path::Path;
use std::process::Command;

const SYSTEMS: usize = 64;
/// Cells given to wfl + ASE.
const PEER_SUBSET: usize = 8;
const FMAX: f64 = 1e-3;

/// The reference runner shared with the minim crate's tests.
const REFERENCE: &str = include_str!("../../../crates/minim/tests/reference/ase_minim.py");

/// One benchmark system family.
struct Case {
    title: &'static str,
    z: u8,
    a: f64,
    rattle: f64,
    calculator: Json,
    lammps: bool,
}

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    let bin = util::release_autopara(&util::root(), "")?;
    util::in_temp_dir("minim", |dir| run_in(&bin, dir))
}

fn run_in(bin: &Path, dir: &Path) -> Result<(), String> {
    util::print_load();
    let python = util::venv_python().filter(|py| util::python_has(py, "wfl.generate.optimize"));
    if python.is_none() {
        println!("peer wfl+ASE: missing (run `cargo xtask deps --peers`); reported as absent");
    }
    let cases = [
        Case {
            title: "(a) EMT Cu, 108 atoms, rattled 0.1 A",
            z: 29,
            a: 3.61,
            rattle: 0.1,
            calculator: json!({"type": "emt"}),
            lammps: false,
        },
        Case {
            title: "(b) Lennard-Jones (bench/in.lj lattice), 108 atoms, rattled 0.1 sigma",
            z: 18,
            a: 1.6796,
            rattle: 0.1,
            calculator: json!({"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5}),
            lammps: true,
        },
    ];
    for (k, case) in cases.iter().enumerate() {
        println!("-- {}: {SYSTEMS} cells to fmax {FMAX} eV/A, PreconLBFGS --", case.title);
        let systems: Vec<Atoms> = (0..SYSTEMS).map(|i| rattled_cell(case, 1000 * k as u64 + i as u64)).collect();
        let input = dir.join(format!("case{k}.xyz"));
        extxyz::write_file(&input, &systems).map_err(|e| e.to_string())?;
        let ours = measure_ours(bin, dir, k, &input, &case.calculator)?;
        ours.report();
        if let Some(py) = &python {
            let peer = measure_wfl(py, &systems[..PEER_SUBSET], &case.calculator)?;
            peer.report(&ours);
        }
        if case.lammps
            && let Some(lmp) = measure_lammps(dir, &systems)?
        {
            lmp.report(&ours);
        }
    }
    Ok(())
}

/// A 3x3x3 cubic fcc cell with normal displacements (ASE's `rattle`).
fn rattled_cell(case: &Case, seed: u64) -> Atoms {
    let basis = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, case.rattle).unwrap_or_else(|_| unreachable!("fixed positive deviation"));
    let mut positions = Vec::new();
    for i in 0..3 {
        for j in 0..3 {
            for k in 0..3 {
                for b in &basis {
                    let ideal = [(i as f64 + b[0]) * case.a, (j as f64 + b[1]) * case.a, (k as f64 + b[2]) * case.a];
                    positions.push(ideal.map(|x| x + normal.sample(&mut rng)));
                }
            }
        }
    }
    let mut at = Atoms::new(vec![case.z; positions.len()], positions);
    let l = 3.0 * case.a;
    at.cell = [[l, 0.0, 0.0], [0.0, l, 0.0], [0.0, 0.0, l]];
    at.pbc = [true; 3];
    at
}

/// Our runs: per-cell steps and evaluations, CPU on 1 worker, wall on 2.
struct Ours {
    steps: Vec<i64>,
    evaluations: Vec<i64>,
    converged: usize,
    cpu: f64,
    wall_one: f64,
    wall_two: f64,
}

impl Ours {
    fn report(&self) {
        let evals: i64 = self.evaluations.iter().sum();
        println!(
            "autopara, 1 worker:  {:.3} s CPU ({:.2} ms per cell, {:.1} us per evaluation); {}/{SYSTEMS} converged; {} steps, {evals} evaluations",
            self.cpu,
            1e3 * self.cpu / SYSTEMS as f64,
            1e6 * self.cpu / evals as f64,
            self.converged,
            self.steps.iter().sum::<i64>(),
        );
        println!(
            "autopara, 2 workers: {:.3} s wall ({:.3} s on 1 worker; speed-up {:.2}x)",
            self.wall_two,
            self.wall_one,
            self.wall_one / self.wall_two
        );
    }
}

fn measure_ours(bin: &Path, dir: &Path, k: usize, input: &Path, calculator: &Json) -> Result<Ours, String> {
    let args = json!({"calculator": calculator, "fmax": FMAX, "traj_subselect": "last"});
    let args_file = dir.join(format!("case{k}.json"));
    std::fs::write(&args_file, args.to_string()).map_err(|e| format!("{}: {e}", args_file.display()))?;
    let mut timings = Vec::new();
    let mut frames = Vec::new();
    for workers in [1, 2] {
        let out = dir.join(format!("case{k}-out-{workers}.xyz"));
        let mut cmd = Command::new(bin);
        cmd.args(["run", "minim", "-i"])
            .arg(input)
            .arg("-o")
            .arg(&out)
            .arg("--args")
            .arg(format!("@{}", args_file.display()))
            .args(["--workers", &workers.to_string(), "--overwrite", "--quiet"]);
        timings.push(util::timed(&mut cmd)?);
        frames = extxyz::read_file(&out).map_err(|e| e.to_string())?;
        if frames.len() != SYSTEMS {
            return Err(format!("expected {SYSTEMS} relaxed cells on {workers} workers, got {}", frames.len()));
        }
    }
    let int = |f: &Atoms, key: &str| f.info.get(key).and_then(autopara_core::Value::as_i64).unwrap_or(0);
    let converged = frames
        .iter()
        .filter(|f| f.info.get("optimize_config_type").and_then(|v| v.as_str()) == Some("optimize_last_converged"))
        .count();
    Ok(Ours {
        steps: frames.iter().map(|f| int(f, "optimize_n_steps")).collect(),
        evaluations: frames.iter().map(|f| int(f, "optimize_n_evaluations")).collect(),
        converged,
        cpu: timings[0].0,
        wall_one: timings[0].1,
        wall_two: timings[1].1,
    })
}

/// wfl + ASE on the first cells: CPU seconds, steps and calculator calls.
struct Peer {
    cpu: f64,
    steps: Vec<i64>,
    calls: Vec<i64>,
}

impl Peer {
    fn report(&self, ours: &Ours) {
        let n = self.calls.len();
        let (ours_calls, ours_steps) = (ours.evaluations[..n].iter().sum::<i64>(), ours.steps[..n].iter().sum::<i64>());
        let per_cell = self.cpu / n as f64;
        println!(
            "wfl+ASE (first {n} cells, in-process): {:.2} s CPU ({:.1} ms per cell); autopara / wfl per cell = {:.0}x (target >= 100x)",
            self.cpu,
            1e3 * per_cell,
            per_cell / (ours.cpu / SYSTEMS as f64)
        );
        println!(
            "  on those {n} cells: evaluations autopara {ours_calls} vs ASE {} (target: no more), steps {ours_steps} vs {}",
            self.calls.iter().sum::<i64>(),
            self.steps.iter().sum::<i64>()
        );
    }
}

fn measure_wfl(py: &Path, systems: &[Atoms], calculator: &Json) -> Result<Peer, String> {
    let request = json!({
        "calculator": calculator,
        "optimizer": "PreconLBFGS",
        "args": {"fmax": FMAX, "traj_subselect": "last"},
        "configs": systems.iter().map(|a| json!({
            "numbers": a.numbers, "positions": a.positions, "cell": a.cell, "pbc": a.pbc
        })).collect::<Vec<_>>(),
    });
    let mut child = Command::new(py)
        .args(["-c", REFERENCE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(request.to_string().as_bytes()).map_err(|e| format!("wfl stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("wfl: {e}"))?;
    if !out.status.success() {
        return Err(format!("wfl reference failed with {}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    let v: Json = serde_json::from_slice(&out.stdout).map_err(|e| format!("wfl output: {e}"))?;
    let results = v["results"].as_array().ok_or("wfl output lacks results")?;
    let ints = |key: &str| results.iter().map(|r| r[key].as_i64().unwrap_or(0)).collect();
    Ok(Peer { cpu: v["cpu"].as_f64().ok_or("wfl output lacks cpu")?, steps: ints("steps"), calls: ints("calls") })
}

/// LAMMPS `minimize` on every cell in one process.
struct Lammps {
    cpu: f64,
    evaluations: i64,
    iterations: i64,
    converged: usize,
}

impl Lammps {
    fn report(&self, ours: &Ours) {
        println!(
            "LAMMPS minimize (cg, one lmp, {SYSTEMS} cells): {:.3} s CPU ({:.2} ms per cell); {}/{SYSTEMS} stopped on ftol; {} iterations, {} force evaluations; autopara CPU / LAMMPS CPU = {:.2}",
            self.cpu,
            1e3 * self.cpu / SYSTEMS as f64,
            self.converged,
            self.iterations,
            self.evaluations,
            ours.cpu / self.cpu
        );
    }
}

fn measure_lammps(dir: &Path, systems: &[Atoms]) -> Result<Option<Lammps>, String> {
    if !super::md::have_lammps() {
        return Ok(None);
    }
    for (i, at) in systems.iter().enumerate() {
        let mut data = format!(
            "autopara minim benchmark cell {i}\n\n{} atoms\n1 atom types\n\n0 {} xlo xhi\n0 {} ylo yhi\n0 {} zlo zhi\n\nAtoms # atomic\n\n",
            at.len(),
            at.cell[0][0],
            at.cell[1][1],
            at.cell[2][2]
        );
        for (k, p) in at.positions.iter().enumerate() {
            data += &format!("{} 1 {:.17e} {:.17e} {:.17e}\n", k + 1, p[0], p[1], p[2]);
        }
        let path = dir.join(format!("cell_{}.data", i + 1));
        std::fs::write(&path, data).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let script = format!(
        "variable i loop {SYSTEMS}\nlabel loop\nclear\nunits lj\natom_style atomic\nboundary p p p\n\
         read_data cell_${{i}}.data\nmass 1 1.0\npair_style lj/cut 2.5\npair_coeff 1 1 1.0 1.0 2.5\n\
         neighbor 0.3 bin\nneigh_modify delay 0 every 1 check yes\nmin_style cg\n\
         minimize 0.0 {FMAX} 10000 100000\nnext i\njump SELF loop\n"
    );
    let input = dir.join("in.minim");
    std::fs::write(&input, script).map_err(|e| format!("{}: {e}", input.display()))?;
    let log = dir.join("log.minim");
    let mut cmd = Command::new("lmp");
    cmd.arg("-in").arg(&input).arg("-log").arg(&log).args(["-screen", "none"]).current_dir(dir);
    let (cpu, _) = util::timed(&mut cmd)?;
    let text = std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    // Each minimization reports "Iterations, force evaluations = I F".
    let (mut iterations, mut evaluations, mut converged) = (0, 0, 0);
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Iterations, force evaluations =") {
            let mut nums = rest.split_whitespace().filter_map(|x| x.parse::<i64>().ok());
            iterations += nums.next().unwrap_or(0);
            evaluations += nums.next().unwrap_or(0);
        }
        if line.starts_with("Stopping criterion = force tolerance") {
            converged += 1;
        }
    }
    Ok(Some(Lammps { cpu, evaluations, iterations, converged }))
}
