//! `cargo xtask bench io`: extxyz reading and writing against ASE and the
//! libAtoms C parser, on the same deterministic file in the same run.
//!
//! The file holds 10,000 frames of 64 atoms with a cell, `energy`, `stress`,
//! `config_type` and a `forces` column. Timings are the best of three runs for
//! autopara and one run for the Python peers (which take seconds). The
//! reader's speed-up on all threads over one, and `autopara convert` of the
//! file on 2 workers over 1 (the release binary, file to file), are printed
//! beside their target (1.8x on 2 cores).

use crate::util::{self, Timing, best_of};
use autopara_core::{Atoms, Column, Value, extxyz};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{BufWriter, Write};
use std::path::Path;

const FRAMES: usize = 10_000;
const ATOMS: usize = 64;

/// The benchmark configurations: random positions in a 10 Å cube, random
/// forces, energy and a symmetric stress; fixed seed.
fn configs() -> Vec<Atoms> {
    let mut rng = ChaCha8Rng::seed_from_u64(20_240_611);
    let mut r = move |scale: f64| (rng.random::<f64>() - 0.5) * scale;
    (0..FRAMES)
        .map(|i| {
            let positions: Vec<[f64; 3]> = (0..ATOMS).map(|_| [r(20.0) + 5.0, r(20.0) + 5.0, r(20.0) + 5.0]).collect();
            let forces: Vec<[f64; 3]> = (0..ATOMS).map(|_| [r(2.0), r(2.0), r(2.0)]).collect();
            let numbers = (0..ATOMS).map(|j| if j % 4 == 0 { 8 } else { 29 }).collect();
            let mut a = Atoms::new(numbers, positions);
            a.cell = [[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]];
            a.pbc = [true; 3];
            let (sxx, syy, szz, syz, sxz, sxy) = (r(0.1), r(0.1), r(0.1), r(0.01), r(0.01), r(0.01));
            a.info.insert("config_type".into(), Value::Str(format!("bench_{}", i % 7)));
            a.info.insert("energy".into(), Value::Float(-3.5 * ATOMS as f64 + r(1.0)));
            a.info.insert("stress".into(), Value::matrix3([[sxx, sxy, sxz], [sxy, syy, syz], [sxz, syz, szz]]));
            a.arrays.insert("forces".into(), Column::vec3(&forces));
            a
        })
        .collect()
}

fn write_all(path: &Path, frames: &[Atoms]) -> Result<(), String> {
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    for a in frames {
        extxyz::write_frame(&mut w, a).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

const PEER_SCRIPT: &str = r#"
import json, os, sys, time
path, out = sys.argv[1], sys.argv[2]
res = {}
def timed(name, f):
    t, c = time.perf_counter(), time.process_time()
    r = f()
    res[name] = [time.perf_counter() - t, time.process_time() - c]
    return r
try:
    import ase.io
    frames = timed("ase_read", lambda: ase.io.read(path, ":"))
    res["ase_frames"] = len(frames)
    timed("ase_write", lambda: ase.io.write(out, frames, format="extxyz"))
    res["ase_write_bytes"] = os.path.getsize(out)
except ImportError as e:
    res["ase_missing"] = str(e)
try:
    import extxyz
    res["libatoms_frames"] = len(timed("libatoms_read", lambda: extxyz.read_dicts(path)))
except ImportError as e:
    res["libatoms_missing"] = str(e)
print(json.dumps(res))
"#;

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn row(label: &str, bytes: u64, t: Timing) {
    println!("{label:<34} {:>8.3} {:>8.1} {:>8.3} {:>9.1}", t.wall, mbps(bytes, t.wall), t.cpu, mbps(bytes, t.cpu));
}

/// A peer's `[wall, cpu]` timing from the script's JSON.
fn peer(res: &serde_json::Value, key: &str) -> Option<Timing> {
    let v = res.get(key)?.as_array()?;
    Some(Timing { wall: v.first()?.as_f64()?, cpu: v.get(1)?.as_f64()? })
}

/// `autopara convert` of the file on 1 and 2 workers: best of three, each
/// into a fresh output (the release binary, as a user runs it). The previous
/// run's output and record are removed before each run, untimed: converting
/// over them would add the cost of overwriting (the old output unlinked by
/// the final rename) to two of the three runs, which is not the conversion's.
fn convert(dir: &Path, file: &Path) -> Result<[Timing; 2], String> {
    let bin = util::release_autopara(&util::root(), "")?;
    let mut times = [Timing { wall: 0.0, cpu: 0.0 }; 2];
    for (slot, workers) in times.iter_mut().zip(["1", "2"]) {
        let out = dir.join(format!("convert-{workers}.xyz"));
        let mut best = Timing { wall: f64::INFINITY, cpu: f64::INFINITY };
        for _ in 0..3 {
            util::remove_output(&out)?;
            let mut cmd = std::process::Command::new(&bin);
            cmd.arg("convert").arg(file).arg("-o").arg(&out).args(["--workers", workers]);
            cmd.stdout(std::process::Stdio::null());
            let (cpu, wall) = util::timed(&mut cmd)?;
            if wall < best.wall {
                best = Timing { wall, cpu };
            }
        }
        if std::fs::read(&out).map_err(|e| e.to_string())? != std::fs::read(file).map_err(|e| e.to_string())? {
            return Err(format!("convert on {workers} workers did not reproduce the file"));
        }
        *slot = best;
    }
    Ok(times)
}

/// Runs the benchmark (re-running itself in release mode from a debug build).
pub fn run() -> Result<(), String> {
    if super::rerun_in_release("io")? {
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("autopara-bench-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = bench(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bench(dir: &Path) -> Result<(), String> {
    let file = dir.join("bench.xyz");
    let frames = configs();
    let (t_write, ()) = best_of(3, || write_all(&file, &frames))?;
    let bytes = std::fs::metadata(&file).map_err(|e| e.to_string())?.len();
    println!("file: {FRAMES} frames x {ATOMS} atoms, {:.1} MB (energy, stress, forces, cell)", bytes as f64 / 1e6);
    util::print_load();
    println!("wall times include waiting for other processes; MB/cpu-s is throughput per CPU-second actually used");

    // The frames read are returned, so that freeing them is not timed.
    let (t_read, read) = best_of(3, || extxyz::read_file(&file).map_err(|e| e.to_string()))?;
    if read.len() != FRAMES {
        return Err(format!("read {} frames, expected {FRAMES}", read.len()));
    }
    drop(read);
    let (t_par, read) = best_of(3, || extxyz::read_file_par(&file).map_err(|e| e.to_string()))?;
    if read.len() != FRAMES {
        return Err(format!("parallel read gave {} frames, expected {FRAMES}", read.len()));
    }
    drop(read);
    let threads = rayon::current_num_threads();
    let [t_conv1, t_conv2] = convert(dir, &file)?;
    println!("{:<34} {:>8} {:>8} {:>8} {:>9}", "", "wall s", "MB/s", "cpu s", "MB/cpu-s");
    row("autopara read (1 thread)", bytes, t_read);
    row(&format!("autopara read ({threads} threads)"), bytes, t_par);
    row("autopara write (1 thread)", bytes, t_write);
    row("autopara convert (1 worker)", bytes, t_conv1);
    row("autopara convert (2 workers)", bytes, t_conv2);
    println!("read {threads} threads vs 1 thread: {:.2}x (wall; target >= 1.8x on 2)", t_read.wall / t_par.wall);
    println!("convert 2 workers vs 1: {:.2}x (wall; target >= 1.8x)", t_conv1.wall / t_conv2.wall);

    let Some(py) = crate::util::venv_python() else {
        println!("peers: SKIPPED, no .venv (run `cargo xtask deps`)");
        return Ok(());
    };
    let out = std::process::Command::new(&py)
        .arg("-c")
        .arg(PEER_SCRIPT)
        .arg(&file)
        .arg(dir.join("ase_out.xyz"))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    if !out.status.success() {
        return Err(format!("peer script failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    let res: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("peer script output is not JSON: {e}"))?;
    let ase = (peer(&res, "ase_read"), peer(&res, "ase_write"), res.get("ase_write_bytes").and_then(|v| v.as_u64()));
    let libatoms = peer(&res, "libatoms_read");
    if let (Some(r), Some(w), Some(wb)) = ase {
        row("ASE ase.io.read(f, ':')", bytes, r);
        row("ASE ase.io.write", wb, w);
    }
    if let Some(r) = libatoms {
        row("libAtoms extxyz.read_dicts (C)", bytes, r);
    }
    println!("ratios (wall | cpu), same file and same configurations:");
    match ase {
        (Some(r), Some(w), Some(_)) => {
            println!("  read 1 thread   {:>6.1}x | {:>6.1}x ASE", r.wall / t_read.wall, r.cpu / t_read.cpu);
            println!("  read {threads} threads  {:>6.1}x | {:>6.1}x ASE", r.wall / t_par.wall, r.cpu / t_par.cpu);
            println!("  write           {:>6.1}x | {:>6.1}x ASE", w.wall / t_write.wall, w.cpu / t_write.cpu);
        }
        _ => println!("  ASE: SKIPPED ({})", res.get("ase_missing").and_then(|v| v.as_str()).unwrap_or("not run")),
    }
    match libatoms {
        Some(r) => println!(
            "  read 1 thread   {:>6.2}x | {:>6.2}x the libAtoms C parser",
            r.wall / t_read.wall,
            r.cpu / t_read.cpu
        ),
        None => println!(
            "  libAtoms extxyz: SKIPPED ({})",
            res.get("libatoms_missing").and_then(|v| v.as_str()).unwrap_or("not run")
        ),
    }
    util::print_load_after();
    Ok(())
}
