//! [`OutputSpec`]: where a run's results go — memory, one extxyz file, or one
//! file per input file (a `{stem}` template) — with `tags` added to every
//! output configuration and an `overwrite` switch.
//!
//! Files appear under their final name only when complete: [`AtomicFile`]
//! writes `<dir>/.<name>.autopara-tmp` and renames it on [`AtomicFile::commit`].
//! An existing output is never replaced unless `overwrite` is set.
//!
//! ```
//! use autopara_core::{Atoms, ConfigSet, OutputSpec, Value, outputspec::Outputs};
//! let inputs = ConfigSet::from_atoms(vec![Atoms::new(vec![1], vec![[0.0; 3]])]);
//! let spec = OutputSpec::memory().with_tag("config_type", Value::Str("test".into()));
//! let mut w = spec.writer(&inputs).unwrap();
//! for item in inputs.items().unwrap() {
//!     let item = item.unwrap();
//!     w.write(&item.location, &[item.atoms().unwrap().clone()]).unwrap();
//! }
//! let Outputs::Memory(out) = w.finish().unwrap() else { unreachable!() };
//! assert_eq!(out[0].info["config_type"], Value::Str("test".into()));
//! ```

use crate::atoms::{Atoms, Value};
use crate::configset::ConfigSet;
use crate::error::{Error, Result};
use crate::extxyz;
use crate::operation::Location;
use indexmap::IndexMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
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

    /// A writer for these inputs' outputs (checks existing files first).
    pub fn writer(&self, inputs: &ConfigSet) -> Result<OutputWriter> {
        let paths = self.resolve(inputs)?;
        let sink = match self.target {
            Target::Memory => Sink::Memory(Vec::new()),
            _ => {
                self.check_existing(&paths)?;
                Sink::Files { paths, current: None, next: 0 }
            }
        };
        Ok(OutputWriter { spec: self.clone(), sink })
    }
}

/// True when `a` and `b` name the same file (by canonical path when both exist).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// A file written under a temporary name and renamed into place on
/// [`commit`](AtomicFile::commit); dropped uncommitted, the temporary is removed.
pub struct AtomicFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<File>>,
    written: u64,
}

impl AtomicFile {
    /// The temporary name for `path`: `<dir>/.<name>.autopara-tmp`.
    pub fn temp_path(path: &Path) -> PathBuf {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        path.with_file_name(format!(".{name}.autopara-tmp"))
    }

    /// Starts writing `path` afresh (creating parent directories).
    pub fn create(path: impl Into<PathBuf>) -> Result<AtomicFile> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let temp = AtomicFile::temp_path(&path);
        let f = File::create(&temp).map_err(|e| Error::io(&temp, e))?;
        Ok(AtomicFile { path, temp, file: Some(BufWriter::new(f)), written: 0 })
    }

    /// Continues an interrupted write of `path`: opens its existing temporary,
    /// cuts it to `len` bytes (the end of the last complete record) and appends.
    pub fn resume(path: impl Into<PathBuf>, len: u64) -> Result<AtomicFile> {
        let path = path.into();
        let temp = AtomicFile::temp_path(&path);
        let mut f = OpenOptions::new().write(true).open(&temp).map_err(|e| Error::io(&temp, e))?;
        let have = f.metadata().map_err(|e| Error::io(&temp, e))?.len();
        if have < len {
            return Err(Error::Output(format!("{} holds {have} bytes, fewer than the {len} to keep", temp.display())));
        }
        f.set_len(len).map_err(|e| Error::io(&temp, e))?;
        f.seek(SeekFrom::Start(len)).map_err(|e| Error::io(&temp, e))?;
        Ok(AtomicFile { path, temp, file: Some(BufWriter::new(f)), written: len })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary path being written.
    pub fn temp(&self) -> &Path {
        &self.temp
    }

    /// Bytes in the file so far (including a resumed prefix).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    fn take(&mut self) -> Result<File> {
        let w = self.file.take().ok_or_else(|| Error::Output(format!("{} already closed", self.temp.display())))?;
        w.into_inner().map_err(|e| Error::io(&self.temp, e.into_error()))
    }

    /// Flushes, syncs and renames the temporary to the final path.
    pub fn commit(mut self) -> Result<()> {
        let f = self.take()?;
        f.sync_all().map_err(|e| Error::io(&self.temp, e))?;
        drop(f);
        std::fs::rename(&self.temp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        // Make the rename itself durable where the platform allows it.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Flushes and leaves the temporary in place (for a later
    /// [`resume`](AtomicFile::resume)); returns its path.
    pub fn keep_temp(mut self) -> Result<PathBuf> {
        let f = self.take()?;
        f.sync_all().map_err(|e| Error::io(&self.temp, e))?;
        Ok(self.temp.clone())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let w = self.file.as_mut().ok_or_else(|| std::io::Error::other("write after close"))?;
        let n = w.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// What a finished [`OutputWriter`] produced.
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

enum Sink {
    Memory(Vec<Atoms>),
    /// `current` is the open output; outputs before `next` are committed.
    Files {
        paths: Vec<PathBuf>,
        current: Option<(usize, AtomicFile)>,
        next: usize,
    },
}

/// Writes configurations to an [`OutputSpec`], in input order. Per-input files
/// are committed as soon as writing moves past them; [`finish`](Self::finish)
/// commits the rest (an input without results gets an empty file). Dropped
/// without `finish`, uncommitted files are discarded.
pub struct OutputWriter {
    spec: OutputSpec,
    sink: Sink,
}

impl OutputWriter {
    /// Writes the results of the item at `loc`, adding the spec's tags.
    pub fn write(&mut self, loc: &Location, configs: &[Atoms]) -> Result<()> {
        let index = self.spec.output_index(loc)?;
        match &mut self.sink {
            Sink::Memory(out) => {
                out.extend(configs.iter().cloned().map(|mut a| {
                    for (k, v) in &self.spec.tags {
                        a.info.insert(k.clone(), v.clone());
                    }
                    a
                }));
                Ok(())
            }
            Sink::Files { paths, current, next } => {
                let file = open_output(paths, current, next, index)?;
                for a in configs {
                    extxyz::write_frame_with(file, a, &self.spec.tags).map_err(|e| Error::io(file.path(), e))?;
                }
                Ok(())
            }
        }
    }

    /// Commits every output and returns what was written.
    pub fn finish(mut self) -> Result<Outputs> {
        match &mut self.sink {
            Sink::Memory(out) => Ok(Outputs::Memory(std::mem::take(out))),
            Sink::Files { paths, current, next } => {
                if let Some(last) = paths.len().checked_sub(1) {
                    open_output(paths, current, next, last)?;
                }
                if let Some((_, f)) = current.take() {
                    f.commit()?;
                }
                Ok(Outputs::Files(std::mem::take(paths)))
            }
        }
    }
}

/// The open file for output `index`, committing (and creating, when empty)
/// every earlier output first. Outputs must be visited in order.
fn open_output<'a>(
    paths: &[PathBuf],
    current: &'a mut Option<(usize, AtomicFile)>,
    next: &mut usize,
    index: usize,
) -> Result<&'a mut AtomicFile> {
    if index >= paths.len() {
        return Err(Error::Output(format!("output index {index} out of range ({} outputs)", paths.len())));
    }
    if current.as_ref().is_some_and(|(i, _)| *i != index)
        && let Some((_, f)) = current.take()
    {
        f.commit()?;
    }
    if current.is_none() {
        if index < *next {
            return Err(Error::Output(format!(
                "{} is already complete: results must be written in input order",
                paths[index].display()
            )));
        }
        for p in &paths[*next..index] {
            AtomicFile::create(p)?.commit()?;
        }
        *current = Some((index, AtomicFile::create(&paths[index])?));
        *next = index + 1;
    }
    match current {
        Some((_, f)) => Ok(f),
        None => Err(Error::Output("no open output".into())),
    }
}
