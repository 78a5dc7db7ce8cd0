//! `cargo xtask same-outputs REV`: shows that a change leaves every output
//! file byte-identical. Builds the release binary of the work tree and of git
//! revision `REV`, runs both on a corpus that exercises every op (several
//! calculators, integrators, optimizers, descriptors; periodic, mixed-species,
//! cluster and planar inputs; `convert` with tags) and compares every file
//! they write, sidecars included, byte for byte.

use crate::util;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The corpus pipeline; `{cluster}` is a non-periodic input written beside it.
const CORPUS: &str = r#"
[settings]
seed = 11

[[step]]
name = "structures"
op = "buildcell"
count = 12
output = "structures.xyz"
args = { buildcell_input = """
#TARGVOL=22-26
#SPECIES=Cu%NUM=1,Au%NUM=1
#NFORM={2,3,4}
#SYMMOPS=1-4
#SLACK=0.25
#OVERLAP=0.1
#COMPACT
#MINSEP=0.5 Cu-Cu=2.2 Au-Au=2.4 Cu-Au=2.3
""", perturbation = 0.02 }

[[step]]
name = "emt"
op = "calculate"
inputs = ["@structures", "cluster.xyz"]
output = "emt.xyz"
args = { calculator = { type = "emt" }, properties = ["energy", "forces", "stress", "energies"] }

[[step]]
name = "lj"
op = "calculate"
inputs = ["@structures"]
output = "lj.xyz"
args = { calculator = { type = "lennard_jones", sigma = 2.3, epsilon = 0.4, rc = 6.0 }, output_prefix = "lj_" }

[[step]]
name = "morse"
op = "calculate"
inputs = ["cluster.xyz"]
output = "morse.xyz"
args = { calculator = { type = "morse", epsilon = 0.35, rho0 = 6.0, r0 = 2.6 } }

[[step]]
name = "relaxed"
op = "minim"
inputs = ["@structures"]
output = "relaxed.xyz"
args = { calculator = { type = "emt" }, fmax = 0.05, steps = 60, pressure = 0.0 }

[[step]]
name = "fire"
op = "minim"
inputs = ["cluster.xyz"]
output = "fire.xyz"
args = { calculator = { type = "emt" }, fmax = 0.05, steps = 40, optimizer = "FIRE" }

[[step]]
name = "langevin"
op = "md"
inputs = ["@relaxed"]
output = "langevin.xyz"
args = { calculator = { type = "emt" }, steps = 30, dt = 2.0, temperature = 500.0, temperature_tau = 20.0, integrator = "Langevin", traj_step_interval = 10 }

[[step]]
name = "npt"
op = "md"
inputs = ["@structures"]
output = "npt.xyz"
args = { calculator = { type = "emt" }, steps = 20, dt = 1.0, temperature = 300.0, temperature_tau = 20.0, pressure = 0.5, traj_step_interval = 5 }

[[step]]
name = "nve"
op = "md"
inputs = ["cluster.xyz"]
output = "nve.xyz"
args = { calculator = { type = "lennard_jones", sigma = 2.3, epsilon = 0.4, rc = 6.0 }, steps = 25, dt = 1.0, temperature = 200.0 }

[[step]]
name = "soap"
op = "descriptor"
inputs = ["@relaxed"]
output = "soap.xyz"
args = { descriptor = { type = "soap", species = ["Cu", "Au"], r_cut = 4.5, n_max = 4, l_max = 3, sigma = 0.5, periodic = true }, key = "soap", per_atom = true }

[[step]]
name = "acsf"
op = "descriptor"
inputs = ["cluster.xyz"]
output = "acsf.xyz"
args = { descriptor = { "29" = { type = "acsf", species = ["Cu", "Au"], r_cut = 5.0, g2_params = [[1.0, 2.0], [0.5, 3.0]], g4_params = [[0.01, 1.0, 1.0]] }, "79" = { type = "acsf", species = ["Cu", "Au"], r_cut = 4.0, g2_params = [[0.8, 2.5]] } }, key = "mixed", per_atom = true }
"#;

/// A non-periodic Cu-Au cluster with one atom nearly in the plane of three
/// others (a flat patch), deterministic positions.
fn cluster_xyz() -> String {
    let mut lines = Vec::new();
    let mut n = 0;
    for i in 0..3 {
        for j in 0..3 {
            for k in 0..2 {
                let (x, y, z) = (i as f64 * 2.55, j as f64 * 2.55, k as f64 * 2.55);
                let wobble = ((i * 7 + j * 3 + k * 5) % 11) as f64 * 0.013;
                let el = if (i + j + k) % 4 == 0 { "Au" } else { "Cu" };
                lines.push(format!("{el} {:.6} {:.6} {:.6}", x + wobble, y - wobble, z + 0.5 * wobble));
                n += 1;
            }
        }
    }
    format!("{n}\nProperties=species:S:1:pos:R:3 pbc=\"F F F\" config_type=cluster\n{}\n", lines.join("\n"))
}

/// Entry point.
pub fn run(args: &[String]) -> Result<(), String> {
    let [rev] = args else { return Err("usage: cargo xtask same-outputs REV (a git revision to compare with)".into()) };
    let root = util::root();
    let scratch = std::env::temp_dir().join(format!("autopara-same-outputs-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let result = compare(&root, rev, &scratch);
    // Best effort: the scratch directory holds only copies and outputs.
    let _ = Command::new("git")
        .args(["worktree", "remove", "--force"])
        .arg(scratch.join("rev"))
        .current_dir(&root)
        .status();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn compare(root: &Path, rev: &str, scratch: &Path) -> Result<(), String> {
    let ours = copy_binary(&util::release_autopara(root, "")?, &scratch.join("autopara-ours"))?;
    let tree = scratch.join("rev");
    util::run(Command::new("git").args(["worktree", "add", "--detach"]).arg(&tree).arg(rev).current_dir(root))?;
    // The same target directory, so dependencies are not built again.
    let target = util::target_dir(root);
    util::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet", "-p", "autopara", "--bin", "autopara"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&tree),
    )?;
    let theirs = copy_binary(&target.join("release/autopara"), &scratch.join("autopara-rev"))?;
    let mut dirs = Vec::new();
    for (name, binary) in [("rev", &theirs), ("ours", &ours)] {
        let dir = scratch.join(format!("out-{name}"));
        write_corpus(&dir)?;
        let pipeline = dir.join("corpus.toml");
        util::run(Command::new(binary).arg("pipeline").arg(&pipeline).arg("--dir").arg(&dir).arg("--quiet"))?;
        util::run(
            Command::new(binary)
                .args(["convert"])
                .arg(dir.join("emt.xyz"))
                .arg(dir.join("cluster.xyz"))
                .arg("-o")
                .arg(dir.join("converted.xyz"))
                .args(["--tag", "source=corpus", "--tag", "round=2"]),
        )?;
        dirs.push(dir);
    }
    let (a, b) = (files(&dirs[0])?, files(&dirs[1])?);
    // A sidecar (run record, failure records) one side writes and the other
    // does not is reported, not fatal: `convert` gained its run record when it
    // moved onto the executor's sink. Every output file must be on both sides.
    let only = |x: &[String], y: &[String]| x.iter().filter(|f| !y.contains(f)).cloned().collect::<Vec<_>>();
    let (only_rev, only_ours) = (only(&a, &b), only(&b, &a));
    let is_sidecar = |f: &String| f.ends_with(".autopara.json") || f.ends_with(".failures.jsonl");
    if !only_rev.iter().chain(&only_ours).all(is_sidecar) {
        return Err(format!(
            "same-outputs: different files written:\n  only {rev}: {only_rev:?}\n  only work tree: {only_ours:?}"
        ));
    }
    for (side, names) in [(rev, &only_rev), ("the work tree", &only_ours)] {
        if !names.is_empty() {
            println!("same-outputs: sidecars only {side} writes: {}", names.join(", "));
        }
    }
    let a: Vec<String> = a.into_iter().filter(|f| b.contains(f)).collect();
    let mut differ = Vec::new();
    for name in &a {
        let (x, y) = (read(&dirs[0].join(name))?, read(&dirs[1].join(name))?);
        if x != y {
            differ.push(name.clone());
        }
    }
    if !differ.is_empty() {
        return Err(format!("same-outputs: these files differ from {rev}'s: {}", differ.join(", ")));
    }
    println!("same-outputs: all {} files byte-identical to {rev}'s: {}", a.len(), a.join(", "));
    Ok(())
}

fn write_corpus(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(dir.join("corpus.toml"), CORPUS).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("cluster.xyz"), cluster_xyz()).map_err(|e| e.to_string())
}

fn copy_binary(from: &Path, to: &PathBuf) -> Result<PathBuf, String> {
    std::fs::copy(from, to).map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))?;
    Ok(to.clone())
}

/// Every file under `dir` (recursively, hidden ones included), relative, sorted.
fn files(dir: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}
