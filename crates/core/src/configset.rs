//! [`ConfigSet`]: the inputs of a run — configurations in memory (flat or
//! nested lists), extxyz files and globs, or counters for generator ops.
//!
//! Iteration is lazy: files are opened one at a time and read frame by frame.
//! A file without frames is an error naming it, except a complete autopara
//! output that its run record says is empty (a step whose items all failed
//! or produced nothing), which gives no items, so pipelines run on.
//! Every [`Item`] carries its global index and its [`Location`] (file index and
//! frame, nested list indices, or counter), so outputs map back to inputs.
//!
//! ```
//! use autopara_core::{Atoms, ConfigSet, configset::Nested};
//! let a = Atoms::new(vec![1], vec![[0.0; 3]]);
//! let cs = ConfigSet::from_nested(Nested::List(vec![
//!     Nested::Atoms(a.clone()),
//!     Nested::List(vec![Nested::Atoms(a.clone()), Nested::Atoms(a)]),
//! ]));
//! let paths: Vec<Vec<usize>> = cs.items().unwrap().map(|it| it.unwrap().location.path).collect();
//! assert_eq!(paths, vec![vec![0], vec![1, 0], vec![1, 1]]);
//! ```

use crate::atoms::Atoms;
use crate::error::{Error, Result};
use crate::extxyz;
use crate::operation::{Item, Location, Payload};
use crate::sidecar;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Configurations in memory, possibly nested in lists (wfl accepts lists of
/// lists; the nesting is kept in each item's location).
#[allow(clippy::large_enum_variant)] // built once per input set; boxing would only add indirection
#[derive(Debug, Clone, PartialEq)]
pub enum Nested {
    /// One configuration.
    Atoms(Atoms),
    /// A list of configurations or further lists.
    List(Vec<Nested>),
}

#[allow(clippy::large_enum_variant)] // one per ConfigSet
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// The configurations and how many there are (counted once: runs ask often).
    Memory(Nested, u64),
    Files(Vec<PathBuf>),
    Counters(u64),
}

/// The inputs of a run. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSet {
    source: Source,
}

impl ConfigSet {
    /// A flat list of configurations; item `i` has location path `[i]`.
    pub fn from_atoms(configs: Vec<Atoms>) -> ConfigSet {
        let n = configs.len() as u64;
        ConfigSet { source: Source::Memory(Nested::List(configs.into_iter().map(Nested::Atoms).collect()), n) }
    }

    /// Nested lists of configurations; locations are the list indices.
    pub fn from_nested(nested: Nested) -> ConfigSet {
        fn count(n: &Nested) -> u64 {
            match n {
                Nested::Atoms(_) => 1,
                Nested::List(l) => l.iter().map(count).sum(),
            }
        }
        let n = count(&nested);
        ConfigSet { source: Source::Memory(nested, n) }
    }

    /// Files and glob patterns, in the order given; each glob's matches are
    /// sorted. A glob matching nothing, or a missing file, is an error naming it.
    pub fn from_paths(patterns: &[impl AsRef<str>]) -> Result<ConfigSet> {
        let mut files = Vec::new();
        for pat in patterns {
            let pat = pat.as_ref();
            if pat.is_empty() {
                return Err(Error::Input("an input path is empty".into()));
            }
            let literal = PathBuf::from(pat);
            if literal.exists() {
                check_input_file(&literal)?;
                files.push(literal);
                continue;
            }
            if pat == "-" {
                return Err(Error::Input(
                    "'-': standard input cannot be an input; autopara reads its inputs twice (once to key the \
                     outputs, once to compute), so save it to a file first"
                        .into(),
                ));
            }
            if !pat.contains(['*', '?', '[']) {
                return Err(Error::Input(format!("{pat}: no such file")));
            }
            let matches = glob::glob(pat).map_err(|e| Error::Input(format!("{pat}: bad glob pattern: {e}")))?;
            let mut found = Vec::new();
            for m in matches {
                let p = m.map_err(|e| Error::Input(format!("{pat}: {e}")))?;
                if p.is_file() {
                    found.push(p);
                }
            }
            if found.is_empty() {
                return Err(Error::Input(format!("{pat}: glob matches no files")));
            }
            found.sort();
            files.extend(found);
        }
        if files.is_empty() {
            return Err(Error::Input("no input files given".into()));
        }
        Ok(ConfigSet { source: Source::Files(files) })
    }

    /// Exactly these files, without globbing; a missing file is reported when
    /// iteration reaches it.
    pub fn from_files(files: Vec<PathBuf>) -> ConfigSet {
        ConfigSet { source: Source::Files(files) }
    }

    /// Counters `0..n` for generator ops; item `i` has location path `[i]`.
    pub fn counters(n: u64) -> ConfigSet {
        ConfigSet { source: Source::Counters(n) }
    }

    /// The input files (empty unless the set was built from files).
    pub fn files(&self) -> &[PathBuf] {
        match &self.source {
            Source::Files(f) => f,
            _ => &[],
        }
    }

    /// True when the inputs are files.
    pub fn is_files(&self) -> bool {
        matches!(self.source, Source::Files(_))
    }

    /// True when the inputs are counters.
    pub fn is_counters(&self) -> bool {
        matches!(self.source, Source::Counters(_))
    }

    /// The number of items when known without reading files.
    pub fn len_hint(&self) -> Option<u64> {
        match &self.source {
            Source::Memory(_, n) => Some(*n),
            Source::Counters(n) => Some(*n),
            Source::Files(_) => None,
        }
    }

    /// The items in order, lazily. Fails when the first input file cannot be
    /// opened; later file and parse errors arrive as an `Err` item, after which
    /// iteration stops.
    pub fn items(&self) -> Result<Items<'_>> {
        self.items_as(false)
    }

    /// [`items`](Self::items), but the frames of files come as
    /// [`Payload::Frame`], their text not yet parsed, for the executor's
    /// workers to parse in parallel (a frame of more than
    /// [`extxyz::MAX_UNPARSED_ATOMS`] atoms comes parsed). Errors of a frame's
    /// count line arrive here; others when the frame is parsed.
    pub fn unparsed_items(&self) -> Result<Items<'_>> {
        self.items_as(true)
    }

    fn items_as(&self, unparsed: bool) -> Result<Items<'_>> {
        let inner = match &self.source {
            Source::Memory(Nested::List(l), _) => Inner::Memory { stack: vec![(l.as_slice(), 0)], single: None },
            Source::Memory(n @ Nested::Atoms(_), _) => Inner::Memory { stack: Vec::new(), single: Some(n) },
            Source::Files(files) => {
                // The first file opens now, so that a missing file fails early.
                let reader = match files.first() {
                    Some(f) => open_input(f)?.map(|r| (0, r)),
                    None => None,
                };
                Inner::Files { files, next_file: 1, reader, unparsed }
            }
            Source::Counters(n) => Inner::Counters(0..*n),
        };
        Ok(Items { inner, index: 0, failed: false })
    }
}

/// Iterator over a [`ConfigSet`]'s items (see [`ConfigSet::items`]).
pub struct Items<'a> {
    inner: Inner<'a>,
    index: u64,
    failed: bool,
}

type FileReader = extxyz::Reader<BufReader<File>>;

/// Fails, saying why, when `path` exists but is not a regular file: a
/// directory, or a named pipe, which cannot be read twice as a run needs
/// (once for the cache key, once to compute) and would block opening.
/// A missing file is left to the open that follows.
pub(crate) fn check_input_file(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::metadata(path) else { return Ok(()) };
    let what = if meta.is_file() {
        return Ok(());
    } else if meta.is_dir() {
        format!("is a directory; give the files in it (for example '{}')", path.join("*.xyz").display())
    } else if is_fifo(&meta) {
        "is a named pipe (FIFO); autopara reads its inputs twice (once to key the outputs, once to compute), so \
         save it to a file first"
            .to_string()
    } else {
        format!("is {}, not a regular file", special_file_kind(&meta))
    };
    Err(Error::Input(format!("{}: {what}", path.display())))
}

/// What a file that is neither a regular file nor a directory is, for messages
/// ("a named pipe (FIFO)", "a character device", ...).
pub(crate) fn special_file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a named pipe (FIFO)";
        } else if t.is_char_device() {
            return "a character device";
        } else if t.is_block_device() {
            return "a block device";
        } else if t.is_socket() {
            return "a socket";
        }
    }
    let _ = meta;
    "a special file"
}

#[cfg(unix)]
fn is_fifo(meta: &std::fs::Metadata) -> bool {
    std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type())
}

#[cfg(not(unix))]
fn is_fifo(_: &std::fs::Metadata) -> bool {
    false
}

/// A reader over an input file, or `None` for a complete autopara output
/// without configurations ([`sidecar::is_empty_output`]), which contributes no
/// items; any other empty file is an error when read.
fn open_input(path: &Path) -> Result<Option<FileReader>> {
    check_input_file(path)?;
    if sidecar::is_empty_output(path)? { Ok(None) } else { extxyz::open(path).map(Some) }
}

enum Inner<'a> {
    Memory { stack: Vec<(&'a [Nested], usize)>, single: Option<&'a Nested> },
    Files { files: &'a [PathBuf], next_file: usize, reader: Option<(usize, FileReader)>, unparsed: bool },
    Counters(std::ops::Range<u64>),
}

impl Inner<'_> {
    fn next_payload(&mut self) -> Option<Result<(Location, Payload)>> {
        match self {
            Inner::Memory { stack, single } => {
                if let Some(Nested::Atoms(a)) = single.take() {
                    return Some(Ok((Location { file: None, path: Vec::new() }, Payload::Atoms(a.clone()))));
                }
                loop {
                    let (list, pos) = stack.last_mut()?;
                    let Some(node) = list.get(*pos) else {
                        stack.pop();
                        continue;
                    };
                    *pos += 1;
                    match node {
                        Nested::Atoms(a) => {
                            let path = stack.iter().map(|(_, p)| p - 1).collect();
                            return Some(Ok((Location { file: None, path }, Payload::Atoms(a.clone()))));
                        }
                        Nested::List(l) => stack.push((l.as_slice(), 0)),
                    }
                }
            }
            Inner::Files { files, next_file, reader, unparsed } => loop {
                if let Some((fi, r)) = reader {
                    let frame = r.frame_index();
                    let next = if *unparsed {
                        r.next_unparsed().map(|f| {
                            f.map(|f| match f {
                                extxyz::Frame::Unparsed(raw) => Payload::Frame(raw),
                                extxyz::Frame::Parsed(a) => Payload::Atoms(a),
                            })
                        })
                    } else {
                        r.next().map(|a| a.map(Payload::Atoms))
                    };
                    match next {
                        Some(Ok(payload)) => {
                            return Some(Ok((Location { file: Some(*fi), path: vec![frame] }, payload)));
                        }
                        Some(Err(e)) => return Some(Err(e)),
                        None => *reader = None,
                    }
                }
                let path = files.get(*next_file)?;
                match open_input(path) {
                    Ok(r) => *reader = r.map(|r| (*next_file, r)),
                    Err(e) => return Some(Err(e)),
                }
                *next_file += 1;
            },
            Inner::Counters(range) => {
                range.next().map(|n| Ok((Location { file: None, path: vec![n as usize] }, Payload::Counter(n))))
            }
        }
    }
}

impl Iterator for Items<'_> {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Result<Item>> {
        if self.failed {
            return None;
        }
        match self.inner.next_payload()? {
            Ok((location, payload)) => {
                let item = Item { index: self.index, location, payload };
                self.index += 1;
                Some(Ok(item))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
