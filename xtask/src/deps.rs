//! `cargo xtask deps [--peers]`: the reference environment, idempotently.
//!
//! - a git-ignored `.venv` with pinned references: ase==3.28.0, numpy<2,
//!   dscribe==2.1.2, extxyz (the libAtoms C parser), wfl==0.3.5 (with its
//!   spglib: tests compare with wfl's `create_input`, optimize and spglib's
//!   symmetry; wfl is also the benchmarks' peer), quippy-ase==0.10.1 (its
//!   Stillinger-Weber potential checks the `ase` calculator), and what the
//!   Python package's build and tests need: maturin, pytest and cloudpickle;
//! - Debian's OpenMPI and libclang (the MPI backend), `slurm-wlm` and `munge`
//!   (the queue backend's tests start a private single-node cluster, and
//!   reach it through a private sshd on a loopback port: `openssh-server`,
//!   `openssh-client`, `rsync`; they also start a private single-node Grid
//!   Engine: `gridengine-master`, `gridengine-exec`, `gridengine-client`),
//!   and `strace` (tests/fault_injection.rs injects I/O faults with it);
//! - with `--peers`, the benchmarks' speed peers: Debian's `lammps`, and in
//!   the venv ASAP3 (`asap3`, the C++ EMT; it builds from source in about a
//!   minute) and featomic (the Rust SOAP of the metatensor project).
//!
//! A stamp file records what was installed, so a second run does nothing.

use crate::util::{root, run as run_cmd};
use std::process::Command;

/// Pinned reference packages, and the Python package's build and test tools.
const REFERENCES: &[&str] = &[
    "ase==3.28.0",
    "numpy<2",
    "dscribe==2.1.2",
    "extxyz==0.4.6",
    "wfl==0.3.5",
    "quippy-ase==0.10.1",
    "maturin==1.16.0",
    "pytest==9.2.0",
    "cloudpickle==3.1.3",
];
/// Debian packages the test suites need.
const APT_TEST: &[&str] = &[
    "libopenmpi-dev",
    "openmpi-bin",
    "libclang-dev",
    "slurm-wlm",
    "munge",
    "openssh-server",
    "openssh-client",
    "rsync",
    "gridengine-master",
    "gridengine-exec",
    "gridengine-client",
    "strace",
];
/// Debian packages for benchmark peers.
const APT_PEERS: &[&str] = &["lammps"];
/// Python packages for benchmark peers (ASAP3 compiles with the system MPI
/// compiler wrappers, which `APT_TEST` installs).
const PIP_PEERS: &[&str] = &["asap3==3.13.11", "featomic==0.6.7"];

/// Installs the environment.
pub fn run_deps(peers: bool) -> Result<(), String> {
    let mut apt: Vec<&str> = APT_TEST.to_vec();
    if peers {
        apt.extend(APT_PEERS);
    }
    apt_install(&apt)?;
    let mut pip: Vec<&str> = REFERENCES.to_vec();
    if peers {
        pip.extend(PIP_PEERS);
    }
    venv(&pip)
}

/// Entry point for `cargo xtask deps`.
pub fn run(args: &[String]) -> Result<(), String> {
    let peers = args.iter().any(|a| a == "--peers");
    if let Some(bad) = args.iter().find(|a| *a != "--peers") {
        return Err(format!("deps: unknown argument '{bad}' (expected --peers)"));
    }
    run_deps(peers)
}

fn apt_install(packages: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask deps: apt-get install {}", missing.join(" "));
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let mut update = Command::new(sudo.first().copied().unwrap_or("apt-get"));
    if !sudo.is_empty() {
        update.arg("apt-get");
    }
    update.args(["update", "-qq"]).env("DEBIAN_FRONTEND", "noninteractive");
    run_cmd(&mut update)?;
    let mut install = Command::new(sudo.first().copied().unwrap_or("apt-get"));
    if !sudo.is_empty() {
        install.arg("apt-get");
    }
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_cmd(&mut install)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn venv(packages: &[&str]) -> Result<(), String> {
    let dir = root().join(".venv");
    let stamp = dir.join("autopara-stamp");
    let want = packages.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| packages.iter().all(|p| s.lines().any(|l| l == *p))) {
        return Ok(());
    }
    if !dir.join("bin/python").exists() {
        eprintln!("xtask deps: creating {}", dir.display());
        run_cmd(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    }
    eprintln!("xtask deps: pip install {}", packages.join(" "));
    run_cmd(
        Command::new(dir.join("bin/python"))
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(packages),
    )?;
    std::fs::write(&stamp, want).map_err(|e| format!("{}: {e}", stamp.display()))
}
