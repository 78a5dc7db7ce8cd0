//! The streaming frame reader.

use super::kv::{self, RawValue};
use crate::atoms::{ArrayData, Atoms, Column, Value};
use crate::error::{Error, Result};
use indexmap::IndexMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Capacity hint limit: a count line may claim any number of atoms, so buffers
/// grow with the atom lines actually read rather than with the claim.
const MAX_PREALLOC: usize = 1 << 16;

/// Reads extxyz frames one at a time from a buffered source.
///
/// Memory holds one frame at a time, whatever the file's length. Each item is
/// a frame or the first error, which names the file, the 0-based frame and the
/// 1-based line; iteration stops after an error. A source without any frame
/// (empty, or only blank lines) is an error too.
///
/// ```
/// use autopara_core::extxyz::Reader;
/// let text = "1\nenergy=-1.5 Properties=species:S:1:pos:R:3\nH 0 0 0\n";
/// let frames: Vec<_> = Reader::new(text.as_bytes(), "<doc>").collect::<Result<_, _>>().unwrap();
/// assert_eq!(frames[0].info_f64("energy"), Some(-1.5));
/// ```
pub struct Reader<R> {
    lines: Lines<R>,
    path: PathBuf,
    frame: usize,
    done: bool,
    species: SpeciesCache,
    /// Length of the last unparsed frame (the next one's likely length).
    unparsed_len: usize,
}

impl<R: BufRead> Reader<R> {
    /// A reader over `src`; `path` names the source in errors.
    pub fn new(src: R, path: impl Into<PathBuf>) -> Reader<R> {
        Reader {
            lines: Lines { src, buf: Vec::new(), line: 0, offset: 0 },
            path: path.into(),
            frame: 0,
            done: false,
            species: SpeciesCache::default(),
            unparsed_len: 0,
        }
    }

    /// Numbers errors as if the source started at 0-based frame `frame`
    /// after `lines` lines (for a part of a larger file).
    pub(crate) fn starting_at(mut self, frame: usize, lines: usize) -> Reader<R> {
        self.frame = frame;
        self.lines.line = lines;
        self
    }

    /// The source's name as used in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes consumed so far: after a frame, the offset where the next one starts.
    pub fn bytes_read(&self) -> u64 {
        self.lines.offset
    }

    /// Index of the next frame.
    pub fn frame_index(&self) -> usize {
        self.frame
    }

    /// The next frame, `Ok(None)` at the end of input.
    fn read_frame(&mut self) -> Result<Option<Atoms>> {
        match self.read_count_line()? {
            Some((count_line, natoms)) => self.read_body(count_line, natoms).map(Some),
            None => Ok(None),
        }
    }

    /// The next frame, unparsed when it has at most [`MAX_UNPARSED_ATOMS`]
    /// atoms: its lines as they are in the file, for [`RawFrame::parse`] to
    /// parse elsewhere (on a worker) with exactly the result and errors that
    /// reading it here would give. Larger frames are parsed here, so that no
    /// frame is held twice in memory and a count line claiming more atoms than
    /// the file holds is reported without reading the rest into memory.
    /// `None` at the end of input; errors of the count line come here.
    pub fn next_unparsed(&mut self) -> Option<Result<Frame>> {
        if self.done {
            return None;
        }
        let frame = self.read_unparsed();
        self.item(frame)
    }

    /// [`Reader::next_unparsed`] before the end and errors are noted.
    fn read_unparsed(&mut self) -> Result<Option<Frame>> {
        // Room for a frame somewhat longer than the last, so that most frames
        // are copied once, not grown.
        let mut text = Vec::with_capacity(self.unparsed_len + self.unparsed_len / 8);
        let frame = match self.read_unparsed_into(&mut text)? {
            None => return Ok(None),
            Some(Unparsed::Parsed(a)) => Frame::Parsed(a),
            Some(Unparsed::Text { frame, line }) => {
                self.unparsed_len = text.len();
                Frame::Unparsed(RawFrame { text, path: self.path.clone(), frame, line })
            }
        };
        Ok(Some(frame))
    }

    /// Like [`Reader::next_unparsed`], but appends the frame's text to `text`
    /// (for many frames in one buffer, parsed with [`parse_text`]).
    pub(crate) fn next_unparsed_into(&mut self, text: &mut Vec<u8>) -> Option<Result<Unparsed>> {
        if self.done {
            return None;
        }
        let frame = self.read_unparsed_into(text);
        self.item(frame)
    }

    /// [`Reader::next_unparsed_into`] before the end and errors are noted.
    fn read_unparsed_into(&mut self, text: &mut Vec<u8>) -> Result<Option<Unparsed>> {
        let Some((count_line, natoms)) = self.read_count_line()? else { return Ok(None) };
        if natoms > MAX_UNPARSED_ATOMS {
            return self.read_body(count_line, natoms).map(|a| Some(Unparsed::Parsed(a)));
        }
        text.extend_from_slice(&self.lines.buf);
        if let Err(message) = self.lines.take_lines(natoms + 1, text) {
            return Err(Error::Parse {
                path: self.path.clone(),
                frame: self.frame,
                line: self.lines.line + 1,
                message,
            });
        }
        let frame = Unparsed::Text { frame: self.frame, line: count_line - 1 };
        self.frame += 1;
        Ok(Some(frame))
    }

    /// A frame read as an iterator item: after the end or an error, nothing more is read.
    fn item<T>(&mut self, read: Result<Option<T>>) -> Option<Result<T>> {
        let item = read.transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }

    /// The count line of the next frame (blank lines before it skipped): its
    /// line number and the atom count; `Ok(None)` at the end of input.
    fn read_count_line(&mut self) -> Result<Option<(usize, usize)>> {
        let Reader { lines, path, frame, .. } = self;
        let err = |line: usize, message: String| Error::Parse { path: path.clone(), frame: *frame, line, message };
        // Blank lines between frames (and at the end) are skipped.
        loop {
            let Some((ln, text)) = lines.next().map_err(|(l, m)| err(l, m))? else {
                if *frame == 0 {
                    // Never zero frames in silence: an empty input is almost
                    // always a mistake (see docs/extxyz.md for autopara's own
                    // empty outputs, which ConfigSet recognises by their record).
                    let what = if lines.offset == 0 { "the file is empty" } else { "the file holds only blank lines" };
                    return Err(err(1, format!("no frames: {what}")));
                }
                return Ok(None);
            };
            let t = text.trim();
            if t.is_empty() {
                continue;
            }
            return match t.parse::<usize>() {
                Ok(n) => Ok(Some((ln, n))),
                Err(_) => {
                    let shown: String = t.chars().take(40).collect();
                    let hint =
                        if *frame > 0 { " (has the previous frame more atom lines than its count?)" } else { "" };
                    Err(err(ln, format!("expected an atom count, found '{shown}'{hint}")))
                }
            };
        }
    }

    /// The comment and atom lines of a frame whose count line, at line
    /// `count_line`, says `natoms`.
    fn read_body(&mut self, count_line: usize, natoms: usize) -> Result<Atoms> {
        let Reader { lines, path, frame, species, .. } = self;
        let err = |line: usize, message: String| Error::Parse { path: path.clone(), frame: *frame, line, message };
        let header = match lines.next().map_err(|(l, m)| err(l, m))? {
            None => {
                let m = format!("file ends before the comment line of a frame with {natoms} atoms");
                return Err(err(count_line + 1, m));
            }
            Some((ln, text)) => Header::parse(text).map_err(|m| err(ln, m))?,
        };
        let mut cols = Columns::new(&header.props, natoms);
        for i in 0..natoms {
            let Some((ln, text)) = lines.next().map_err(|(l, m)| err(l, m))? else {
                let m = format!("file ends after {i} of {natoms} atom lines (frame starts at line {count_line})");
                return Err(err(lines.line + 1, m));
            };
            if let Err(m) = cols.push_line(text, &header.props, header.nfields, species) {
                return Err(err(ln, format!("atom {i}: {m}")));
            }
        }
        *frame += 1;
        Ok(cols.into_atoms(header, natoms))
    }
}

/// Frames of at most this many atoms are handed out unparsed by
/// [`Reader::next_unparsed`]; larger ones are parsed as they are read.
pub const MAX_UNPARSED_ATOMS: usize = 1 << 16;

/// A frame from [`Reader::next_unparsed_into`]: its text was appended to
/// the caller's buffer, or it was parsed (a frame too large to hold twice).
#[allow(clippy::large_enum_variant)] // returned, then moved into a batch at once; boxing would add an allocation
pub(crate) enum Unparsed {
    /// Appended: the frame's 0-based index and the lines of the file before its count line.
    Text { frame: usize, line: usize },
    /// Parsed.
    Parsed(Atoms),
}

/// Parses one frame's text (count line first) that stood in file `path` as
/// 0-based frame `frame` after `line` lines: the configuration, or the error
/// that reading it from the file gives.
pub(crate) fn parse_text(text: &[u8], path: &Path, frame: usize, line: usize) -> Result<Atoms> {
    let mut reader = Reader::new(text, path).starting_at(frame, line);
    match reader.read_count_line()? {
        Some((count_line, natoms)) => reader.read_body(count_line, natoms),
        None => Err(Error::Parse {
            path: path.to_path_buf(),
            frame,
            line: line + 1,
            message: "no frame in the text".into(),
        }),
    }
}

/// A frame from [`Reader::next_unparsed`].
#[allow(clippy::large_enum_variant)] // moved straight into an item's payload; boxing would add an allocation
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Its text, to parse elsewhere.
    Unparsed(RawFrame),
    /// Parsed (a frame too large to hold as text as well).
    Parsed(Atoms),
}

/// One extxyz frame's lines exactly as a file holds them (count line first),
/// not yet parsed, with where it was: [`RawFrame::parse`] gives the frame, or
/// the error naming the file, frame and line, that reading the file gives.
///
/// ```
/// use autopara_core::extxyz::{Frame, Reader};
/// let text = "1\nenergy=-1.5\nH 0 0 0\n\n1\n\nO 0 x 0\n";
/// let mut reader = Reader::new(text.as_bytes(), "in.xyz");
/// let Some(Ok(Frame::Unparsed(first))) = reader.next_unparsed() else { panic!() };
/// assert_eq!(first.parse().unwrap().info_f64("energy"), Some(-1.5));
/// let Some(Ok(Frame::Unparsed(second))) = reader.next_unparsed() else { panic!() };
/// assert_eq!(second.parse().unwrap_err().to_string(), "in.xyz: frame 1, line 7: atom 0: pos: 'x' is not a finite number");
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawFrame {
    /// The frame's lines, line ends included.
    pub text: Vec<u8>,
    /// The file it came from (errors name it).
    pub path: PathBuf,
    /// Its 0-based index in the file.
    pub frame: usize,
    /// The lines of the file before its count line.
    pub line: usize,
}

impl RawFrame {
    /// Parses the frame: the configuration, or the error that reading it from
    /// its file gives (an [`Error::Parse`] naming the file, frame and line).
    pub fn parse(&self) -> Result<Atoms> {
        parse_text(&self.text, &self.path, self.frame, self.line)
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Atoms>;

    fn next(&mut self) -> Option<Result<Atoms>> {
        if self.done {
            return None;
        }
        let frame = self.read_frame();
        self.item(frame)
    }
}

/// Lines of the source, with their 1-based numbers and the bytes consumed.
struct Lines<R> {
    src: R,
    buf: Vec<u8>,
    line: usize,
    offset: u64,
}

impl<R: BufRead> Lines<R> {
    /// The next line without its terminator, or `None` at the end.
    /// Errors carry the line number they concern.
    fn next(&mut self) -> std::result::Result<Option<(usize, &str)>, (usize, String)> {
        self.buf.clear();
        let n = self.src.read_until(b'\n', &mut self.buf).map_err(|e| (self.line + 1, format!("read error: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        self.offset += n as u64;
        let mut bytes = self.buf.as_slice();
        if let [rest @ .., b'\n'] = bytes {
            bytes = rest;
        }
        if let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Some((self.line, s))),
            Err(e) => Err((self.line, format!("not valid UTF-8 (at byte {} of the line)", e.valid_up_to() + 1))),
        }
    }
}

impl<R: BufRead> Lines<R> {
    /// Appends the next `n` lines to `out` as they are (line ends included),
    /// fewer when the input ends first (the parse then reports where).
    fn take_lines(&mut self, n: usize, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        let mut left = n;
        // Whether the bytes taken last end inside a line.
        let mut partial = false;
        while left > 0 {
            let buf = self.src.fill_buf().map_err(|e| format!("read error: {e}"))?;
            if buf.is_empty() {
                // A last line without its line end counts, as in `next`.
                self.line += usize::from(partial);
                return Ok(());
            }
            let (used, lines) = match memchr::memchr_iter(b'\n', buf).nth(left - 1) {
                Some(i) => (i + 1, left),
                None => (buf.len(), memchr::memchr_iter(b'\n', buf).count()),
            };
            partial = buf.get(used - 1) != Some(&b'\n');
            out.extend_from_slice(&buf[..used]);
            self.src.consume(used);
            self.offset += used as u64;
            self.line += lines;
            left -= lines;
        }
        Ok(())
    }
}

/// Element symbols seen recently, so that most atom lines skip the table search.
#[derive(Default)]
struct SpeciesCache {
    seen: Vec<(String, u8)>,
}

impl SpeciesCache {
    fn lookup(&mut self, sym: &str) -> Option<u8> {
        if let Some(&(_, z)) = self.seen.iter().find(|(s, _)| s == sym) {
            return Some(z);
        }
        // ASE capitalizes symbols before looking them up ("CU", "cu" -> Cu).
        let z = crate::elements::atomic_number(sym).or_else(|| {
            let mut c = sym.chars();
            let first = c.next()?;
            let cap: String = first.to_uppercase().chain(c.flat_map(char::to_lowercase)).collect();
            crate::elements::atomic_number(&cap)
        })?;
        if self.seen.len() < 32 {
            self.seen.push((sym.to_string(), z));
        }
        Some(z)
    }
}

/// Property column roles.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Species,
    Z,
    Pos,
    Other,
    /// A column ASE reads and then replaces by a later one of the same role
    /// (`pos` followed by `positions`): its fields are checked and dropped.
    Dropped,
}

/// One `name:type:width` entry of `Properties`.
#[derive(Debug, Clone)]
struct Prop {
    name: String,
    ty: u8,
    width: usize,
    role: Role,
}

/// The parsed comment line.
struct Header {
    info: IndexMap<String, Value>,
    cell: Option<[[f64; 3]; 3]>,
    pbc: Option<[bool; 3]>,
    props: Vec<Prop>,
    nfields: usize,
}

const DEFAULT_PROPERTIES: &str = "species:S:1:pos:R:3";

impl Header {
    fn parse(line: &str) -> std::result::Result<Header, String> {
        let mut h = Header { info: IndexMap::new(), cell: None, pbc: None, props: Vec::new(), nfields: 0 };
        let mut props_text = None;
        if !line.contains('=') {
            // A plain xyz title line.
            let t = line.trim();
            if !t.is_empty() {
                h.info.insert("comment".into(), Value::Str(t.into()));
            }
        } else {
            let pairs =
                kv::tokenize(line).map_err(|e| format!("comment line, column {}: {}", e.column + 1, e.message))?;
            for (key, raw) in pairs {
                let dup = || format!("comment line: key '{key}' appears twice");
                if key.is_empty() {
                    return Err("comment line: a key is empty (\"\"=...)".into());
                }
                if key.eq_ignore_ascii_case("Properties") {
                    let RawValue::Text(t) = raw else {
                        return Err("comment line: Properties must be name:type:width triplets".into());
                    };
                    if props_text.replace(t).is_some() {
                        return Err(dup());
                    }
                    continue;
                }
                let value = match raw {
                    RawValue::Flag => Value::Bool(true),
                    RawValue::Text(t) => kv::parse_value(&t),
                    RawValue::Braced(t) => kv::braced_value(&t),
                    RawValue::List(elems) => {
                        kv::list_value(&elems).map_err(|m| format!("comment line: key '{key}': {m}"))?
                    }
                };
                match key.as_str() {
                    "Lattice" => {
                        let cell = lattice(&value).map_err(|m| format!("comment line: Lattice {m}"))?;
                        if h.cell.replace(cell).is_some() {
                            return Err(dup());
                        }
                    }
                    "pbc" => {
                        let pbc = match &value {
                            Value::Array { shape, data: ArrayData::Bool(b) } if shape == &[3] => [b[0], b[1], b[2]],
                            _ => return Err("comment line: pbc must be three booleans, e.g. pbc=\"T T F\"".into()),
                        };
                        if h.pbc.replace(pbc).is_some() {
                            return Err(dup());
                        }
                    }
                    _ => {
                        let value = if kv::is_matrix_key(&key) {
                            let value = kv::fortran_3x3(value);
                            kv::check_matrix_value(&key, &value).map_err(|m| format!("comment line: {m}"))?;
                            value
                        } else {
                            value
                        };
                        if h.info.contains_key(&key) {
                            return Err(dup());
                        }
                        h.info.insert(key, value);
                    }
                }
            }
        }
        h.props = parse_properties(props_text.as_deref().unwrap_or(DEFAULT_PROPERTIES))?;
        h.nfields = h.props.iter().map(|p| p.width).sum();
        Ok(h)
    }
}

/// The cell from a `Lattice` value: 9 numbers (lattice vectors in turn) or a
/// new-style 3x3 matrix whose columns are the lattice vectors.
fn lattice(v: &Value) -> std::result::Result<[[f64; 3]; 3], String> {
    let (shape, f) = match v {
        Value::Array { shape, data } => (shape.as_slice(), data.to_f64_vec()),
        _ => (&[][..], None),
    };
    let Some(f) = f else {
        return Err("must be 9 numbers".into());
    };
    let mut cell = [[0.0; 3]; 3];
    match shape {
        [9] => {
            for (i, x) in f.iter().enumerate() {
                cell[i / 3][i % 3] = *x;
            }
        }
        [3, 3] => {
            for (i, x) in f.iter().enumerate() {
                cell[i % 3][i / 3] = *x;
            }
        }
        _ => return Err(format!("must be 9 numbers, found {}", f.len())),
    }
    if f.iter().any(|x| !x.is_finite()) {
        return Err("holds a non-finite number".into());
    }
    Ok(cell)
}

/// Parses `name:type:width[:...]`.
///
/// Column names map as ASE maps them: `species` and `symbols` are the
/// elements, `Z` and `numbers` the atomic numbers, `pos` and `positions` the
/// positions; of two columns with the same role the later wins (ASE keeps the
/// last), so the earlier is dropped. Without a position column the positions
/// are zero, and without an element column the atoms are `X` (Z = 0), as in
/// ASE. Other names must be ones the writer can write back.
fn parse_properties(text: &str) -> std::result::Result<Vec<Prop>, String> {
    let fields: Vec<&str> = text.split(':').collect();
    let bad = |m: String| format!("Properties={text}: {m}");
    if !fields.len().is_multiple_of(3) {
        return Err(bad("expected name:type:width triplets".into()));
    }
    let mut props: Vec<Prop> = Vec::with_capacity(fields.len() / 3);
    let mut total: usize = 0;
    for t in fields.chunks_exact(3) {
        let (name, ty, width) = (t[0], t[1], t[2]);
        if name.is_empty() {
            return Err(bad("empty column name".into()));
        }
        let ty = match ty {
            "S" | "I" | "R" | "L" => ty.as_bytes()[0],
            _ => return Err(bad(format!("column '{name}' has unknown type '{ty}' (expected S, I, R or L)"))),
        };
        let width: usize = width
            .parse()
            .ok()
            .filter(|&w| w > 0)
            .ok_or_else(|| bad(format!("column '{name}' has invalid width '{width}'")))?;
        total = total.checked_add(width).ok_or_else(|| bad("total width overflows".into()))?;
        let role = match name {
            "species" | "symbols" => Role::Species,
            "Z" | "numbers" => Role::Z,
            "pos" | "positions" => Role::Pos,
            _ => Role::Other,
        };
        let expected = match role {
            Role::Species => Some((b'S', 1)),
            Role::Z => Some((b'I', 1)),
            Role::Pos => Some((b'R', 3)),
            Role::Other | Role::Dropped => None,
        };
        // Integer positions are read as numbers, as ASE reads them.
        let ty_ok = |ety: u8| ety == ty || (role == Role::Pos && ty == b'I');
        if let Some((ety, ew)) = expected
            && (!ty_ok(ety) || ew != width)
        {
            return Err(bad(format!("column '{name}' must be {}:{ew}", ety as char)));
        }
        if role == Role::Other {
            super::writer::check_column_name(name).map_err(|m| bad(format!("column {m}")))?;
        }
        if props.iter().any(|p| p.name == name) {
            return Err(bad(format!("column '{name}' appears twice")));
        }
        if role != Role::Other
            && let Some(earlier) = props.iter_mut().find(|p| p.role == role)
        {
            earlier.role = Role::Dropped;
        }
        props.push(Prop { name: name.to_string(), ty, width, role });
    }
    Ok(props)
}

/// Per-frame column buffers, filled line by line.
struct Columns {
    numbers: Vec<u8>,
    z: Vec<u8>,
    positions: Vec<[f64; 3]>,
    other: Vec<ArrayData>,
}

impl Columns {
    fn new(props: &[Prop], natoms: usize) -> Columns {
        let n = natoms.min(MAX_PREALLOC);
        let other = props
            .iter()
            .filter(|p| p.role == Role::Other)
            .map(|p| {
                let cap = n.saturating_mul(p.width.min(16));
                match p.ty {
                    b'L' => ArrayData::Bool(Vec::with_capacity(cap)),
                    b'I' => ArrayData::Int(Vec::with_capacity(cap)),
                    b'R' => ArrayData::Float(Vec::with_capacity(cap)),
                    _ => ArrayData::Str(Vec::with_capacity(cap)),
                }
            })
            .collect();
        let has_z = props.iter().any(|p| p.role == Role::Z);
        Columns {
            numbers: Vec::with_capacity(n),
            z: Vec::with_capacity(if has_z { n } else { 0 }),
            positions: Vec::with_capacity(n),
            other,
        }
    }

    fn push_line(
        &mut self,
        line: &str,
        props: &[Prop],
        nfields: usize,
        species: &mut SpeciesCache,
    ) -> std::result::Result<(), String> {
        let mut toks = line.split_ascii_whitespace();
        let mut other = self.other.iter_mut();
        let missing = || format!("expected {nfields} fields, found {}", line.split_ascii_whitespace().count());
        for p in props {
            match p.role {
                Role::Species => {
                    let t = toks.next().ok_or_else(missing)?;
                    self.numbers.push(species.lookup(t).ok_or_else(|| format!("unknown element '{t}'"))?);
                }
                Role::Z => {
                    let t = toks.next().ok_or_else(missing)?;
                    let z = t
                        .parse::<u8>()
                        .ok()
                        .filter(|&z| (z as usize) < crate::elements::SYMBOLS.len())
                        .ok_or_else(|| format!("{}: invalid atomic number '{t}'", p.name))?;
                    self.z.push(z);
                }
                Role::Pos => {
                    let mut xyz = [0.0; 3];
                    for x in &mut xyz {
                        let t = toks.next().ok_or_else(missing)?;
                        *x = kv::parse_float(t)
                            .filter(|x| x.is_finite())
                            .ok_or_else(|| format!("{}: '{t}' is not a finite number", p.name))?;
                    }
                    self.positions.push(xyz);
                }
                Role::Dropped => {
                    for _ in 0..p.width {
                        let t = toks.next().ok_or_else(missing)?;
                        let ok = match p.ty {
                            b'L' => kv::parse_bool(t).is_some(),
                            b'I' => kv::parse_int(t).is_some(),
                            b'R' => kv::parse_float(t).is_some(),
                            _ => true,
                        };
                        if !ok {
                            return Err(format!("{}: '{t}' is not {}", p.name, type_name(p.ty)));
                        }
                    }
                }
                Role::Other => {
                    let Some(buf) = other.next() else { return Err("internal: column buffers out of step".into()) };
                    for _ in 0..p.width {
                        let t = toks.next().ok_or_else(missing)?;
                        let bad = || format!("{}: '{t}' is not {}", p.name, type_name(p.ty));
                        match buf {
                            ArrayData::Bool(v) => v.push(kv::parse_bool(t).ok_or_else(bad)?),
                            ArrayData::Int(v) => v.push(kv::parse_int(t).ok_or_else(bad)?),
                            ArrayData::Float(v) => v.push(kv::parse_float(t).ok_or_else(bad)?),
                            ArrayData::Str(v) => v.push(t.to_string()),
                        }
                    }
                }
            }
        }
        if toks.next().is_some() {
            return Err(missing());
        }
        Ok(())
    }

    fn into_atoms(self, header: Header, natoms: usize) -> Atoms {
        let has = |role: Role| header.props.iter().any(|p| p.role == role);
        // `Z` wins over `species` when both are given, as in ASE; without
        // either the atoms are ASE's dummy element `X`.
        let numbers = if has(Role::Z) {
            self.z
        } else if has(Role::Species) {
            self.numbers
        } else {
            vec![0; natoms]
        };
        // Without a position column ASE's positions are zero.
        let positions = if has(Role::Pos) { self.positions } else { vec![[0.0; 3]; natoms] };
        let arrays = header
            .props
            .iter()
            .filter(|p| p.role == Role::Other)
            .zip(self.other)
            .map(|(p, data)| (p.name.clone(), Column { width: p.width, data }))
            .collect();
        let pbc = header.pbc.unwrap_or(if header.cell.is_some() { [true; 3] } else { [false; 3] });
        Atoms { numbers, positions, cell: header.cell.unwrap_or_default(), pbc, info: header.info, arrays }
    }
}

fn type_name(ty: u8) -> &'static str {
    match ty {
        b'L' => "a boolean (T/F)",
        b'I' => "an integer",
        b'R' => "a number",
        _ => "a string",
    }
}
