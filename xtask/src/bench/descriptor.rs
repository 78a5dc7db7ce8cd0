//! `cargo xtask bench descriptor`: SOAP per atom (r_cut 5, n_max 8, l_max 6,
//! sigma 0.5, periodic) on 1,000 fcc Cu cells of 108 atoms and 1,000
//! zincblende Si–C cells of 64 atoms with random occupancy, against dscribe
//! 2.1.2 (`n_jobs` 1 and 2) on the same structures in the same run.
//!
//! Our side is the release example `bench_descriptor` of the descriptor
//! crate: the `descriptor` op through the executor (`runner::run`, threads
//! backend, in-memory inputs and outputs, default chunk size 1). Neither side
//! reads or writes files inside the timed region. Throughput is configs per
//! CPU second on one worker / one process (per core, robust to a loaded
//! machine) and configs per wall second on 1 and 2 workers; the first
//! config's features are compared between the two as a sanity check.
//!
//! Then featomic 0.6.7 (`cargo xtask deps --peers`), the Rust SOAP of the
//! metatensor project: its `SoapPowerSpectrum` with a GTO radial basis of the
//! same size (8 radial functions, `max_radial` 7, `max_angular` 6, cutoff
//! 5 Å, Gaussian width 0.5 Å) on the Cu-108 set in memory, on one thread,
//! against our whole run from file to file (`autopara run descriptor`, one
//! worker: parsing, SOAP and writing 252 numbers per atom as text). The two
//! bases differ (featomic's GTOs and smooth cutoff are not dscribe's), so
//! their values are not compared; ours equal dscribe's (tests/ and above).

use crate::util;
use serde_json::Value as Json;
use std::path::Path;
use std::process::Command;

/// The sets and the species lists their spec uses.
const SETS: [(&str, &str); 2] = [("cu108", "['Cu']"), ("sic64", "['C', 'Si']")];

/// Runs the benchmark.
pub fn run() -> Result<(), String> {
    let root = util::root();
    util::cargo(
        &root,
        &["build", "--release", "--quiet", "-p", "autopara-descriptor", "--example", "bench_descriptor"],
    )?;
    let bin = util::target_dir(&root).join("release/examples/bench_descriptor");
    util::in_temp_dir("descriptor", |dir| run_in(&bin, dir))
}

fn run_in(bin: &Path, dir: &Path) -> Result<(), String> {
    util::print_load();
    let python = util::venv_python();
    println!("autopara side: the descriptor op through the executor (threads backend), in memory");
    let out = Command::new(bin).arg(dir).output().map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let ours: Vec<Json> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("bad line from bench_descriptor ({e}): {l}")))
        .collect::<Result<_, _>>()?;
    let peer = match &python {
        Some(py) if util::python_has(py, "dscribe") => Some(measure_dscribe(py, dir)?),
        _ => {
            println!("peer dscribe: missing (run `cargo xtask deps`); reported as absent");
            None
        }
    };
    for (set, _) in SETS {
        let get = |workers: u64, field: &str| {
            ours.iter()
                .find(|r| r["set"] == set && r["workers"] == workers)
                .and_then(|r| r[field].as_f64())
                .ok_or_else(|| format!("no {field} for {set} on {workers} workers"))
        };
        let n = ours.iter().find(|r| r["set"] == set).and_then(|r| r["configs"].as_f64()).unwrap_or(0.0);
        let (cpu1, wall1, wall2) = (get(1, "cpu_seconds")?, get(1, "seconds")?, get(2, "seconds")?);
        println!("-- {set}: {n} configs, SOAP per atom --");
        println!(
            "autopara 1 worker:  {:8.1} configs/CPU-s  {:8.1} configs/wall-s ({cpu1:.2} s CPU, {wall1:.2} s wall)",
            n / cpu1,
            n / wall1
        );
        println!("autopara 2 workers:                     {:8.1} configs/wall-s ({wall2:.2} s wall)", n / wall2);
        if let Some(peer) = &peer {
            let d = peer.iter().find(|r| r["set"] == set).ok_or_else(|| format!("no dscribe result for {set}"))?;
            let f = |k: &str| d[k].as_f64().ok_or_else(|| format!("dscribe result lacks {k}"));
            let (dn, dcpu1, dwall1, dwall2) = (f("configs")?, f("cpu1")?, f("wall1")?, f("wall2")?);
            println!(
                "dscribe n_jobs=1:   {:8.1} configs/CPU-s  {:8.1} configs/wall-s ({dcpu1:.2} s CPU, {dwall1:.2} s wall)",
                dn / dcpu1,
                dn / dwall1
            );
            println!("dscribe n_jobs=2:                       {:8.1} configs/wall-s ({dwall2:.2} s wall)", dn / dwall2);
            println!(
                "autopara / dscribe: {:.2}x per CPU-s on 1 worker (target >= 2x), {:.2}x wall on 1, {:.2}x wall on 2; first config max |diff| / max |dscribe| = {:.1e}",
                (n / cpu1) / (dn / dcpu1),
                (n / wall1) / (dn / dwall1),
                (n / wall2) / (dn / dwall2),
                f("first_config_rel_diff")?
            );
        }
    }
    against_featomic(python.as_deref(), dir)
}

/// Our `autopara run descriptor` from file to file on the Cu-108 set against
/// featomic in memory, per CPU second on one worker / one thread.
fn against_featomic(python: Option<&Path>, dir: &Path) -> Result<(), String> {
    let Some(py) = python.filter(|py| util::python_has(py, "featomic")) else {
        println!("peer featomic: missing (run `cargo xtask deps --peers`); reported as absent");
        return Ok(());
    };
    let autopara = util::release_autopara(&util::root(), "")?;
    let input = dir.join("cu108.xyz");
    let output = dir.join("cu108-soap.xyz");
    let args = r#"{"descriptor": {"type": "soap", "species": ["Cu"], "r_cut": 5.0, "n_max": 8, "l_max": 6,
                   "sigma": 0.5}, "key": "soap", "per_atom": true}"#;
    let mut cmd = Command::new(&autopara);
    cmd.args(["run", "descriptor", "-q", "--workers", "1", "--overwrite", "--args", args, "-i"])
        .arg(&input)
        .arg("-o")
        .arg(&output);
    let (cpu, wall) = util::timed(&mut cmd)?;
    let script = r#"
import json, resource, sys, time
from ase.io import read
import featomic
frames = read(sys.argv[1], index=":")
calc = featomic.SoapPowerSpectrum(
    cutoff={"radius": 5.0, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
    density={"type": "Gaussian", "width": 0.5},
    basis={"type": "TensorProduct", "max_angular": 6, "radial": {"type": "Gto", "max_radial": 7}},
)
calc.compute(frames[:2])
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
calc.compute(frames)
wall = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
print(json.dumps({"configs": len(frames), "cpu": cpu, "wall": wall}))
"#;
    let text = util::output(Command::new(py).arg("-c").arg(script).arg(&input).env("RAYON_NUM_THREADS", "1"))?;
    let peer: Json = serde_json::from_str(text.trim()).map_err(|e| format!("bad featomic line ({e}): {text}"))?;
    let f = |k: &str| peer[k].as_f64().ok_or_else(|| format!("featomic result lacks {k}"));
    let (n, fcpu, fwall) = (f("configs")?, f("cpu")?, f("wall")?);
    println!("-- cu108: {n} configs, SOAP per atom, against featomic --");
    println!("autopara file to file, 1 worker: {:8.1} configs/CPU-s ({cpu:.2} s CPU, {wall:.2} s wall)", n / cpu);
    println!("featomic in memory, 1 thread:    {:8.1} configs/CPU-s ({fcpu:.2} s CPU, {fwall:.2} s wall)", n / fcpu);
    println!("autopara / featomic: {:.2}x per CPU-s (target >= 2x)", fcpu / cpu);
    util::print_load_after();
    Ok(())
}

/// dscribe on the files `bench_descriptor` wrote: one JSON line per set.
fn measure_dscribe(py: &Path, dir: &Path) -> Result<Vec<Json>, String> {
    let sets = SETS.iter().map(|(s, sp)| format!("('{s}', {sp})")).collect::<Vec<_>>().join(", ");
    let script = format!(
        r#"
import json, resource, sys, time
import numpy as np
from ase.io import read
from dscribe.descriptors import SOAP
d = sys.argv[1]
for name, species in [{sets}]:
    configs = read(f"{{d}}/{{name}}.xyz", index=":")
    soap = SOAP(species=species, r_cut=5.0, n_max=8, l_max=6, sigma=0.5, periodic=True, rbf="gto", average="off")
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = soap.create(configs, n_jobs=1)
    wall1 = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    ref = np.asarray(out[0]).ravel()
    ours = np.asarray(json.load(open(f"{{d}}/{{name}}.first.json")))
    diff = float(np.abs(ours - ref).max() / np.abs(ref).max())
    del out
    t0 = time.perf_counter()
    out = soap.create(configs, n_jobs=2)
    wall2 = time.perf_counter() - t0
    del out
    print(json.dumps({{"set": name, "configs": len(configs), "cpu1": cpu, "wall1": wall1, "wall2": wall2,
                      "first_config_rel_diff": diff}}), flush=True)
"#
    );
    let out = Command::new(py)
        .arg("-c")
        .arg(&script)
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!("dscribe benchmark failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| format!("bad dscribe line ({e}): {l}")))
        .collect()
}
