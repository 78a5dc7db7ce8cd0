//! A calculator that runs a user command per configuration, like wfl's
//! file-based calculators: each call makes a fresh run directory, writes the
//! configuration there as extxyz, runs `command` with `sh -c` inside it, and
//! reads the results from the extxyz file the command writes.
//!
//! The output's first frame must have the same number of atoms; results are
//! read from its `energy` (info), `forces` (per-atom, 3 columns), `stress`
//! (info, Voigt 6 or a 3x3 matrix as ASE writes it, ASE's sign) and `energies`
//! (per-atom) keys, each with `results_prefix` in front, so a Python script
//! ending in `ase.io.write("output.xyz", atoms)` with a calculator attached
//! works as is. A requested property missing from the output is an error.
//!
//! The command sees `AUTOPARA_INPUT` and `AUTOPARA_OUTPUT` (the file names)
//! in its environment; its stdout and stderr go to `stdout.txt` and
//! `stderr.txt` in the run directory. A non-zero exit status, a missing or
//! unreadable output, or running past `timeout` seconds (the command is then
//! killed) fail the calculation. `keep_files` decides which run directories
//! survive: `never`, `on_failure` (the default; the error names the
//! directory) or `always`.
//!
//! ```
//! use autopara_core::{Atoms, CalcResults, CalculatorSpec, Properties};
//! let spec: Box<dyn CalculatorSpec> = serde_json::from_str(
//!     r#"{"type": "external", "command": "cp input.xyz output.xyz", "timeout": 10}"#,
//! ).unwrap();
//! let mut calc = spec.build().unwrap();
//! let mut at = Atoms::new(vec![1], vec![[0.0; 3]]);
//! at.info.insert("energy".into(), autopara_core::Value::Float(-1.5));
//! let mut out = CalcResults::default();
//! let request = Properties { energy: true, ..Default::default() };
//! calc.calculate(&at, request, &mut out).unwrap();
//! assert_eq!(out.energy, -1.5);
//! ```

use crate::{check_finite, invalid};
use autopara_core::{
    Atoms, CalcError, CalcResults, Calculator, CalculatorInfo, CalculatorSpec, Properties, Value, extxyz,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Which run directories to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepFiles {
    /// Remove every run directory.
    Never,
    /// Keep the directories of failed calculations (the error names them).
    #[default]
    OnFailure,
    /// Keep every run directory.
    Always,
}

/// The `external` calculator spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct External {
    /// Shell command (run with `sh -c` in the run directory).
    pub command: String,
    /// File the configuration is written to. Default `input.xyz`.
    #[serde(default = "defaults::input_file")]
    pub input_file: String,
    /// File the command writes its results to. Default `output.xyz`.
    #[serde(default = "defaults::output_file")]
    pub output_file: String,
    /// Prefix of the result keys in the output file. Default none (`energy`, `forces`, ...).
    #[serde(default)]
    pub results_prefix: String,
    /// Which run directories to keep. Default `on_failure`.
    #[serde(default)]
    pub keep_files: KeepFiles,
    /// Seconds before the command is killed and the calculation fails. Default: no limit.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Directory in which run directories are made. Default: the system's temporary directory.
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// Name used for the `_auto_` output prefix. Default `External`.
    #[serde(default = "defaults::name")]
    pub name: String,
}

mod defaults {
    pub(super) fn input_file() -> String {
        "input.xyz".into()
    }
    pub(super) fn output_file() -> String {
        "output.xyz".into()
    }
    pub(super) fn name() -> String {
        "External".into()
    }
}

/// A file name inside the run directory: one plain component.
fn plain_file_name(field: &str, name: &str) -> Result<(), CalcError> {
    let p = Path::new(name);
    let plain = p.components().count() == 1 && p.file_name().is_some_and(|f| f == p.as_os_str());
    if plain { Ok(()) } else { Err(invalid(field, format!("must be a plain file name, got {name:?}"))) }
}

#[typetag::serde(name = "external")]
impl CalculatorSpec for External {
    fn validate(&self) -> Result<(), CalcError> {
        if self.command.trim().is_empty() {
            return Err(invalid("command", "must not be empty".into()));
        }
        plain_file_name("input_file", &self.input_file)?;
        plain_file_name("output_file", &self.output_file)?;
        if let Some(t) = self.timeout
            && !(t.is_finite() && t > 0.0)
        {
            return Err(invalid("timeout", format!("must be a positive number of seconds, got {t}")));
        }
        if self.name.is_empty() {
            return Err(invalid("name", "must not be empty".into()));
        }
        Ok(())
    }

    fn build(&self) -> Result<Box<dyn Calculator>, CalcError> {
        self.validate()?;
        Ok(Box::new(ExternalCalculator { spec: self.clone() }))
    }

    fn program(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({"type": "external", "command": self.command}))
    }
}

inventory::submit! {
    CalculatorInfo {
        name: "external",
        aliases: &[],
        summary: "runs a command per config in a fresh directory: config written as extxyz, results read from its extxyz output",
        fields: &[
            ("command", "string, required: shell command run in the run directory"),
            ("input_file", "string, default input.xyz: where the config is written"),
            ("output_file", "string, default output.xyz: where the command writes energy/forces/stress"),
            ("results_prefix", "string, default \"\": prefix of the result keys in the output"),
            ("keep_files", "never | on_failure | always, default on_failure: which run directories to keep"),
            ("timeout", "float, default none: seconds before the command is killed"),
            ("workdir", "path, default system temp dir: where run directories are made"),
            ("name", "string, default External: name for the _auto_ output prefix"),
        ],
    }
}

struct ExternalCalculator {
    spec: External,
}

impl Calculator for ExternalCalculator {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn calculate(&mut self, atoms: &Atoms, request: Properties, out: &mut CalcResults) -> Result<(), CalcError> {
        let parent = self.spec.workdir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new().prefix("autopara-external-").tempdir_in(&parent).map_err(|e| {
            CalcError::Other(format!("external: cannot make a run directory in {}: {e}", parent.display()))
        })?;
        let result = self.run_in(dir.path(), atoms, request, out);
        let keep = match self.spec.keep_files {
            KeepFiles::Never => false,
            KeepFiles::OnFailure => result.is_err(),
            KeepFiles::Always => true,
        };
        if keep {
            let path = dir.keep();
            result.map_err(|e| CalcError::Other(format!("{e} (run directory kept: {})", path.display())))
        } else {
            // Removal failures leave a stray temporary directory, not a wrong result.
            let _ = dir.close();
            result
        }
    }
}

impl ExternalCalculator {
    fn run_in(&self, dir: &Path, atoms: &Atoms, request: Properties, out: &mut CalcResults) -> Result<(), CalcError> {
        let fail = |what: String| CalcError::Other(format!("external command `{}`: {what}", self.spec.command));
        let input = dir.join(&self.spec.input_file);
        extxyz::write_file(&input, std::slice::from_ref(atoms)).map_err(|e| fail(format!("writing input: {e}")))?;
        let stdout = std::fs::File::create(dir.join("stdout.txt")).map_err(|e| fail(format!("stdout.txt: {e}")))?;
        let stderr = std::fs::File::create(dir.join("stderr.txt")).map_err(|e| fail(format!("stderr.txt: {e}")))?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.spec.command)
            .current_dir(dir)
            .env("AUTOPARA_INPUT", &self.spec.input_file)
            .env("AUTOPARA_OUTPUT", &self.spec.output_file)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| fail(format!("cannot start: {e}")))?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(fail(format!("waiting: {e}"))),
            }
            if let Some(limit) = self.spec.timeout
                && start.elapsed().as_secs_f64() > limit
            {
                // Kill and reap; errors here mean it already ended.
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("timed out after {limit} s")));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        };
        if !status.success() {
            let tail = std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
            let tail: String =
                tail.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            return Err(fail(format!("failed with {status}; stderr ends:\n{tail}")));
        }
        let output = dir.join(&self.spec.output_file);
        let frames = extxyz::read_file(&output).map_err(|e| fail(format!("reading output: {e}")))?;
        let frame = frames.first().ok_or_else(|| fail(format!("{} holds no configuration", self.spec.output_file)))?;
        if frame.len() != atoms.len() {
            return Err(fail(format!("output has {} atoms, input {}", frame.len(), atoms.len())));
        }
        self.read_results(frame, request, out).map_err(fail)?;
        check_finite(&self.spec.name, out)
    }

    /// Copies the requested results out of the command's output frame.
    fn read_results(&self, frame: &Atoms, request: Properties, out: &mut CalcResults) -> Result<(), String> {
        let p = &self.spec.results_prefix;
        let n = frame.len();
        let missing = |key: String| format!("output has no {key}");
        out.computed = Properties::default();
        if request.energy {
            let key = format!("{p}energy");
            out.energy = frame.info_f64(&key).ok_or_else(|| missing(key))?;
            out.computed.energy = true;
        }
        if request.forces {
            let key = format!("{p}forces");
            let f = frame.array_vec3(&key).filter(|f| f.len() == n).ok_or_else(|| missing(key))?;
            out.forces = f;
            out.computed.forces = true;
        }
        if request.stress {
            let key = format!("{p}stress");
            out.stress = frame.info.get(&key).and_then(voigt).ok_or_else(|| missing(key))?;
            out.computed.stress = true;
        }
        if request.energies {
            let key = format!("{p}energies");
            let e = frame
                .arrays
                .get(&key)
                .filter(|c| c.width == 1 && c.rows() == n)
                .and_then(|c| c.data.to_f64_vec())
                .ok_or_else(|| missing(key))?;
            out.energies = e;
            out.computed.energies = true;
        }
        Ok(())
    }
}

/// A stress value as Voigt 6 (xx yy zz yz xz xy): given as 6 numbers, or a
/// 3x3 matrix (ASE writes that), whose off-diagonal pairs are averaged as
/// ASE's `full_3x3_to_voigt_6_stress` does.
fn voigt(v: &Value) -> Option<[f64; 6]> {
    let x = v.to_f64_vec()?;
    match *x.as_slice() {
        [a, b, c, d, e, f] => Some([a, b, c, d, e, f]),
        [m00, m01, m02, m10, m11, m12, m20, m21, m22] => {
            Some([m00, m11, m22, 0.5 * (m12 + m21), 0.5 * (m02 + m20), 0.5 * (m01 + m10)])
        }
        _ => None,
    }
}
