//! `cargo xtask demo`: the README's main command. A small random-structure
//! search on the built-in potentials, as a pipeline (`demo/pipeline.toml`):
//! buildcell (random Cu cells) → minim (EMT, variable cell) → md (EMT,
//! 300 K) → descriptor (SOAP). Writes everything under the git-ignored
//! `demo-out/`, prints a summary and draws `demo-out/energy_volume.svg`.
//!
//! `cargo xtask run FILE` runs any pipeline file with the release binary.

use crate::util;
use autopara_core::{Atoms, extxyz};
use plotters::prelude::*;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Runs a pipeline file with the release binary (`cargo xtask run FILE [ARGS...]`).
pub fn run_file(args: &[String]) -> Result<(), String> {
    let Some(file) = args.first() else { return Err("usage: cargo xtask run FILE.toml [pipeline options]".into()) };
    let root = util::root();
    let bin = util::release_autopara(&root, "")?;
    util::run(Command::new(bin).arg("pipeline").arg(file).args(&args[1..]))
}

/// Runs the demo pipeline and reports on it.
pub fn demo(args: &[String]) -> Result<(), String> {
    let root = util::root();
    let out = root.join("demo-out");
    let bin = util::release_autopara(&root, "")?;
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let t0 = Instant::now();
    util::run(
        Command::new(bin).arg("pipeline").arg(root.join("demo/pipeline.toml")).arg("--dir").arg(&out).args(args),
    )?;
    let seconds = t0.elapsed().as_secs_f64();
    summarize(&out, seconds)
}

fn read(path: &Path) -> Result<Vec<Atoms>, String> {
    extxyz::read_file(path).map_err(|e| e.to_string())
}

fn summarize(out: &Path, seconds: f64) -> Result<(), String> {
    let structures = read(&out.join("structures.xyz"))?;
    let relaxed = read(&out.join("relaxed.xyz"))?;
    let md = read(&out.join("md.xyz"))?;
    let described = read(&out.join("descriptors.xyz"))?;
    let converged = relaxed
        .iter()
        .filter(|a| a.info.get("optimize_config_type").and_then(|v| v.as_str()) == Some("optimize_last_converged"))
        .count();
    // (volume per atom, energy per atom) of every relaxed structure.
    let points: Vec<(f64, f64)> = relaxed
        .iter()
        .filter_map(|a| {
            let n = a.len() as f64;
            Some((a.volume() / n, a.info_f64("last_op__optimize_energy")? / n))
        })
        .collect();
    let (emin, imin) = points
        .iter()
        .enumerate()
        .map(|(i, p)| (p.1, i))
        .fold((f64::INFINITY, 0), |best, cur| if cur.0 < best.0 { cur } else { best });
    let soap_len =
        described.first().and_then(|a| a.info.get("soap")).and_then(|v| v.to_f64_vec()).map_or(0, |v| v.len());
    println!("\nautopara demo: finished in {seconds:.1} s");
    println!("  {} random Cu structures (buildcell)   -> {}", structures.len(), out.join("structures.xyz").display());
    println!(
        "  {} relaxed with EMT at 0 GPa, {converged} converged (minim) -> {}",
        relaxed.len(),
        out.join("relaxed.xyz").display()
    );
    if let Some((v, _)) = points.get(imin) {
        println!("     lowest energy {emin:.4} eV/atom at {v:.2} A^3/atom");
    }
    let mut symmetries: Vec<(String, usize)> = Vec::new();
    for a in &relaxed {
        let s = a.info.get("optimize_symmetry_initial").and_then(|v| v.as_str()).unwrap_or("unknown").to_string();
        match symmetries.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => symmetries.push((s, 1)),
        }
    }
    symmetries.sort_by_key(|s| std::cmp::Reverse(s.1));
    let top: Vec<String> = symmetries.iter().take(3).map(|(s, n)| format!("{n} x {s}")).collect();
    println!("     most common space groups (kept while relaxing): {}", top.join(", "));
    println!("  {} md frames at 300 K (md)   -> {}", md.len(), out.join("md.xyz").display());
    println!(
        "  {} SOAP vectors of length {soap_len} (descriptor) -> {}",
        described.len(),
        out.join("descriptors.xyz").display()
    );
    let svg = out.join("energy_volume.svg");
    plot(&points, &svg)?;
    println!("  plot: energy per atom against volume per atom of the relaxed structures -> {}", svg.display());
    Ok(())
}

fn plot(points: &[(f64, f64)], path: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("plot {}: {e}", path.display());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if points.is_empty() {
        return Err("no relaxed structures to plot".into());
    }
    let pad = |lo: f64, hi: f64| {
        let d = (hi - lo).max(1e-3) * 0.05;
        (lo - d)..(hi + d)
    };
    let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Random Cu structures relaxed with EMT (autopara demo)", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(pad(x0, x1), pad(y0, y1))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("volume per atom (A^3)")
        .y_desc("energy per atom (eV)")
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(points.iter().map(|&(x, y)| Circle::new((x, y), 4, BLUE.mix(0.6).filled())))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
