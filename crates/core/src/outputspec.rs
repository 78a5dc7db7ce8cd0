//! [`OutputSpec`]: where a run's results go — memory, one extxyz file, or one
//! file per input file (a `{stem}` template) — with `tags` added to every
//! output configuration and an `overwrite` switch.
//!
//! Every writer goes through the executor's sinks (see [`crate::runner`]):
//! file outputs are written by [`crate::cache::FileSink`], so they appear
//! under their final name only when complete, with a run record beside them.
//!
//! ```
//! use autopara_core::{Atoms, AutoparaInfo, ConfigSet, OutputSpec, Value, outputspec::Outputs, runner};
//! let inputs = ConfigSet::from_atoms(vec![Atoms::new(vec![1], vec![[0.0; 3]])]);
//! let spec = OutputSpec::memory().with_tag("config_type", Value::Str("test".into()));
//! let info = AutoparaInfo { workers: Some(1), progress: Some(false), ..Default::default() };
//! let done = runner::map(&inputs, &spec, &info, |at: Atoms, _rng: &mut _| at).unwrap();
//! let Outputs::Memory(out) = done.outputs else { unreachable!() };
//! assert_eq!(out[0].info["config_type"], Value::Str("test".into()));
//! ```

use crate::atoms::{Atoms, Value};
use crate::configset::ConfigSet;
use crate::error::{Error, Result};
use crate::operation::Location;
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// The placeholder replaced by each input file's stem in per-input templates.
pub const STEM: &str = "{stem}";

/// Where outputs go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Returned in memory.
    Memory,
    /// One extxyz file.
    File(PathBuf),
    /// One extxyz file per input file: the template with `{stem}` replaced by
    /// the input file's name without its last extension (`a.xyz` → `a`).
    PerInput(String),
}

/// The outputs of a run. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    /// Where outputs go.
    pub target: Target,
    /// Info entries written into every output configuration.
    pub tags: IndexMap<String, Value>,
    /// Replace existing output files.
    pub overwrite: bool,
}

impl OutputSpec {
    fn new(target: Target) -> OutputSpec {
        OutputSpec { target, tags: IndexMap::new(), overwrite: false }
    }

    /// Outputs returned in memory.
    pub fn memory() -> OutputSpec {
        OutputSpec::new(Target::Memory)
    }

    /// All outputs in one file.
    pub fn file(path: impl Into<PathBuf>) -> OutputSpec {
        OutputSpec::new(Target::File(path.into()))
    }

    /// One output file per input file, from a template holding `{stem}`
    /// (`out/{stem}.md.xyz`).
    pub fn per_input(template: impl Into<String>) -> OutputSpec {
        OutputSpec::new(Target::PerInput(template.into()))
    }

    /// A command-line `-o` argument: a template when it holds `{stem}`, else a file.
    pub fn from_arg(arg: &str) -> OutputSpec {
        if arg.contains(STEM) { OutputSpec::per_input(arg) } else { OutputSpec::file(arg) }
    }

    /// Adds (or replaces) a tag.
    pub fn with_tag(mut self, key: impl Into<String>, value: Value) -> OutputSpec {
        self.tags.insert(key.into(), value);
        self
    }

    /// Sets whether existing output files may be replaced.
    pub fn overwrite(mut self, overwrite: bool) -> OutputSpec {
        self.overwrite = overwrite;
        self
    }

    /// The output files for these inputs (empty for memory). Fails when a
    /// per-input template meets inputs that are not files, lacks `{stem}`,
    /// when two inputs map to one output, or when an output is also an input.
    pub fn resolve(&self, inputs: &ConfigSet) -> Result<Vec<PathBuf>> {
        let outs = match &self.target {
            Target::Memory => return Ok(Vec::new()),
            Target::File(p) => vec![p.clone()],
            Target::PerInput(template) => {
                if !template.contains(STEM) {
                    return Err(Error::Output(format!("per-input template '{template}' has no {STEM}")));
                }
                if !inputs.is_files() {
                    return Err(Error::Output(format!(
                        "'{template}' names one output per input file, but the inputs are not files"
                    )));
                }
                let mut outs = Vec::with_capacity(inputs.files().len());
                for (i, f) in inputs.files().iter().enumerate() {
                    let stem = f.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
                    let out = PathBuf::from(template.replace(STEM, &stem));
                    if let Some(j) = outs.iter().position(|o| o == &out) {
                        return Err(Error::Output(format!(
                            "inputs {} and {} both map to output {}",
                            inputs.files()[j].display(),
                            inputs.files()[i].display(),
                            out.display()
                        )));
                    }
                    outs.push(out);
                }
                outs
            }
        };
        for out in &outs {
            check_output_path(out)?;
            if let Some(inp) = inputs.files().iter().find(|i| same_file(i, out)) {
                return Err(Error::Output(format!("output {} is also an input ({})", out.display(), inp.display())));
            }
        }
        Ok(outs)
    }

    /// The index (into [`OutputSpec::resolve`]'s list) of the output that an
    /// item from `loc` goes to: 0 for memory and single files, the input file's
    /// index for per-input outputs.
    pub fn output_index(&self, loc: &Location) -> Result<usize> {
        match &self.target {
            Target::Memory | Target::File(_) => Ok(0),
            Target::PerInput(t) => {
                loc.file.ok_or_else(|| Error::Output(format!("item at{loc} is not from a file, but '{t}' needs one")))
            }
        }
    }

    /// Fails when an output file exists and `overwrite` is not set.
    pub fn check_existing(&self, outputs: &[PathBuf]) -> Result<()> {
        if self.overwrite {
            return Ok(());
        }
        match outputs.iter().find(|p| p.exists()) {
            Some(p) => Err(Error::Output(format!("{} exists; set overwrite to replace it", p.display()))),
            None => Ok(()),
        }
    }
}

/// Fails, saying why, when `out` cannot name an output file: empty, `-`, a
/// directory, or an existing file that is not a regular file (a pipe, a
/// device), which the final rename would replace.
fn check_output_path(out: &Path) -> Result<()> {
    if out.as_os_str().is_empty() {
        return Err(Error::Output("the output path is empty; give a file name (for example -o out.xyz)".into()));
    }
    if out.as_os_str() == "-" {
        return Err(Error::Output(
            "'-': standard output cannot be an output; autopara writes each output as a file that appears only \
             when complete, so give a file name (for example -o out.xyz)"
                .into(),
        ));
    }
    if out.is_dir() || out.file_name().is_none() || out.to_string_lossy().ends_with(std::path::MAIN_SEPARATOR) {
        return Err(Error::Output(format!(
            "{} names a directory; give a file name in it (for example {})",
            out.display(),
            out.join("out.xyz").display()
        )));
    }
    if let Ok(meta) = std::fs::metadata(out)
        && !meta.is_file()
    {
        return Err(Error::Output(format!(
            "{} is {}, not a regular file; autopara writes each output to a file beside it and renames that into \
             place, which would replace it, so give a regular file's name",
            out.display(),
            crate::configset::special_file_kind(&meta)
        )));
    }
    Ok(())
}

/// True when `a` and `b` name the same file (by canonical path when both exist).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outputs {
    /// The configurations, in input order.
    Memory(Vec<Atoms>),
    /// The files written, in output order.
    Files(Vec<PathBuf>),
}

impl Outputs {
    /// The outputs as inputs for a next step.
    pub fn into_config_set(self) -> ConfigSet {
        match self {
            Outputs::Memory(v) => ConfigSet::from_atoms(v),
            Outputs::Files(f) => ConfigSet::from_files(f),
        }
    }
}
