//! The comment line: a tokenizer for `key=value` pairs and the rules that turn
//! value text into typed [`Value`]s, plus the inverse formatting.
//!
//! Grammar (the union of what ASE and the libAtoms parser accept):
//! - pairs are separated by whitespace; spaces around `=` are allowed;
//! - a key is a bare word (no whitespace, `=` or `"`) or a `"quoted string"`;
//!   a key without `=` is a flag and means `True`;
//! - a value is a bare word, a `"quoted"` or `'quoted'` string, an old-style
//!   `{...}` group, or a new-style `[...]` array (nested once for matrices,
//!   elements separated by commas, elements bare or quoted);
//! - inside quotes `\"`, `\\` and `\n` are escapes, and a backslash before any
//!   other character stands for that character (as in bare words).
//!
//! Interpretation of bare, quoted and `{}` values (ASE's rules): the text is
//! split on whitespace and commas; if every piece is an integer the value is an
//! int (one piece) or an int array, else if every piece is a number a float or
//! float array, else if every piece is `T`/`F`/`True`/`False`/`true`/`false`/
//! `TRUE`/`FALSE` a bool or bool array, else the whole text is a string.
//! Strings starting with `_JSON ` (how ASE stores other objects) are decoded
//! when they hold a number, bool, string or rectangular array of them.

use crate::atoms::{ArrayData, Value};
use std::fmt::Write as _;

/// A value as written on the comment line, before interpretation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue {
    /// A key without `=`: a flag meaning `True`.
    Flag,
    /// Bare or quoted text (escapes resolved).
    Text(String),
    /// The inside of an old-style `{...}` group.
    Braced(String),
    /// A new-style `[...]` array.
    List(Vec<Elem>),
}

/// An element of a new-style array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Elem {
    /// A bare element (typed by its text).
    Bare(String),
    /// A quoted element (always a string).
    Quoted(String),
    /// A nested array (a matrix row).
    List(Vec<Elem>),
}

/// A syntax error on the comment line, at a 0-based character column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    /// Character offset in the line.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

type Parsed<T> = Result<T, SyntaxError>;

/// Splits a comment line into `(key, raw value)` pairs, in order.
pub(crate) fn tokenize(line: &str) -> Parsed<Vec<(String, RawValue)>> {
    let mut p = Cursor { chars: line.char_indices().collect(), pos: 0 };
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        let Some(c) = p.peek() else { break };
        let key = match c {
            '"' => p.quoted('"')?,
            '=' => return Err(p.error("'=' without a key")),
            _ => p.bare(|c| c == '"' || c == '=')?,
        };
        p.skip_ws();
        if p.peek() != Some('=') {
            out.push((key, RawValue::Flag));
            continue;
        }
        p.pos += 1;
        p.skip_ws();
        let value = match p.peek() {
            None => return Err(p.error(&format!("key '{key}' has '=' but no value"))),
            Some(q @ ('"' | '\'')) => RawValue::Text(p.quoted(q)?),
            Some('{') => RawValue::Braced(p.braced()?),
            Some('[') => RawValue::List(p.list(0)?),
            Some(_) => RawValue::Text(p.bare(|_| false)?),
        };
        out.push((key, value));
    }
    Ok(out)
}

struct Cursor {
    chars: Vec<(usize, char)>,
    pos: usize,
}

impl Cursor {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn error(&self, message: &str) -> SyntaxError {
        SyntaxError { column: self.pos, message: message.to_string() }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// A bare word: up to whitespace or a character `stop` accepts; a
    /// backslash keeps the next character literally.
    fn bare(&mut self, stop: impl Fn(char) -> bool) -> Parsed<String> {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || stop(c) {
                break;
            }
            self.pos += 1;
            if c == '\\' {
                match self.peek() {
                    Some(n) => {
                        s.push(n);
                        self.pos += 1;
                    }
                    None => return Err(self.error("backslash at end of line")),
                }
            } else {
                s.push(c);
            }
        }
        if s.is_empty() {
            return Err(self.error("expected a word"));
        }
        Ok(s)
    }

    /// A string in `q` quotes starting at the cursor; resolves escapes.
    fn quoted(&mut self, q: char) -> Parsed<String> {
        let start = self.pos;
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(SyntaxError { column: start, message: format!("unterminated {q}quoted{q} string") });
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('n') => s.push('\n'),
                        Some(c) => s.push(c),
                        None => {
                            return Err(SyntaxError {
                                column: start,
                                message: format!("unterminated {q}quoted{q} string"),
                            });
                        }
                    }
                    self.pos += 1;
                }
                Some(c) if c == q => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// An old-style `{...}` group (no nesting; `\}` escapes).
    fn braced(&mut self) -> Parsed<String> {
        let start = self.pos;
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(SyntaxError { column: start, message: "unterminated '{' group".into() }),
                Some('\\') => {
                    self.pos += 1;
                    if let Some(c) = self.peek() {
                        s.push(c);
                        self.pos += 1;
                    }
                }
                Some('}') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some('{') => return Err(self.error("'{' inside a '{}' group")),
                Some(c) => {
                    s.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A new-style `[a, b, ...]` array; `depth` limits nesting to matrices.
    fn list(&mut self, depth: usize) -> Parsed<Vec<Elem>> {
        let start = self.pos;
        self.pos += 1;
        let mut elems = Vec::new();
        self.skip_ws();
        if self.peek() == Some(']') {
            self.pos += 1;
            return Ok(elems);
        }
        loop {
            self.skip_ws();
            let elem = match self.peek() {
                None => return Err(SyntaxError { column: start, message: "unterminated '[' array".into() }),
                Some('[') if depth == 0 => Elem::List(self.list(depth + 1)?),
                Some('[') => return Err(self.error("arrays nest at most two deep")),
                Some(q @ ('"' | '\'')) => Elem::Quoted(self.quoted(q)?),
                Some(',') => return Err(self.error("empty array element")),
                Some(']') => return Err(self.error("trailing ',' in array")),
                Some(_) => Elem::Bare(self.bare(|c| matches!(c, ',' | ']' | '[' | '"' | '{' | '}'))?),
            };
            elems.push(elem);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {
                    self.pos += 1;
                    return Ok(elems);
                }
                None => return Err(SyntaxError { column: start, message: "unterminated '[' array".into() }),
                Some(c) => return Err(self.error(&format!("expected ',' or ']' in array, found '{c}'"))),
            }
        }
    }
}

/// The words accepted as booleans.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "T" | "True" | "true" | "TRUE" => Some(true),
        "F" | "False" | "false" | "FALSE" => Some(false),
        _ => None,
    }
}

/// An integer as Python's `int()` reads it (optional sign, decimal digits).
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    s.parse().ok()
}

/// A float, also accepting Fortran's `d`/`D` exponent and `nan`/`inf`.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    match s.parse() {
        Ok(x) => Some(x),
        Err(_) if s.bytes().any(|b| b == b'd' || b == b'D') => s.replace(['d', 'D'], "e").parse().ok(),
        Err(_) => None,
    }
}

/// Typed scalar pieces, promoted to the narrowest common type.
fn typed_pieces(pieces: &[&str]) -> Option<ArrayData> {
    if let Some(v) = pieces.iter().map(|s| parse_int(s)).collect::<Option<Vec<_>>>() {
        return Some(ArrayData::Int(v));
    }
    if let Some(v) = pieces.iter().map(|s| parse_float(s)).collect::<Option<Vec<_>>>() {
        return Some(ArrayData::Float(v));
    }
    pieces.iter().map(|s| parse_bool(s)).collect::<Option<Vec<_>>>().map(ArrayData::Bool)
}

fn scalar_of(data: ArrayData) -> Value {
    match data {
        ArrayData::Int(v) if v.len() == 1 => Value::Int(v[0]),
        ArrayData::Float(v) if v.len() == 1 => Value::Float(v[0]),
        ArrayData::Bool(v) if v.len() == 1 => Value::Bool(v[0]),
        ArrayData::Str(mut v) if v.len() == 1 => Value::Str(v.swap_remove(0)),
        data => Value::Array { shape: vec![data.len()], data },
    }
}

fn pieces(text: &str) -> Vec<&str> {
    text.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()).collect()
}

/// Interprets bare or quoted text (ASE's rules, see the module docs): a
/// number, bool, or array of them, else a string (`_JSON` decoded).
///
/// ```
/// use autopara_core::{Value, extxyz::parse_value};
/// assert_eq!(parse_value("3"), Value::Int(3));
/// assert_eq!(parse_value("1.5d0"), Value::Float(1.5));
/// assert_eq!(parse_value("T"), Value::Bool(true));
/// assert_eq!(parse_value("1 2.5"), Value::floats(vec![1.0, 2.5]));
/// assert_eq!(parse_value("a b"), Value::Str("a b".into()));
/// ```
pub fn parse_value(text: &str) -> Value {
    let pieces = pieces(text);
    if !pieces.is_empty()
        && let Some(data) = typed_pieces(&pieces)
    {
        return scalar_of(data);
    }
    if let Some(json) = text.strip_prefix("_JSON ")
        && let Some(v) = from_json(json)
    {
        return v;
    }
    Value::Str(text.to_string())
}

/// Interprets an old-style `{...}` group as the libAtoms parser does: like
/// quoted text, except that several words make a string array.
pub(crate) fn braced_value(text: &str) -> Value {
    let pieces = pieces(text);
    match pieces.as_slice() {
        [] => Value::Str(String::new()),
        [one] => parse_value(one),
        many => match typed_pieces(many) {
            Some(data) => scalar_of(data),
            None => scalar_of(ArrayData::Str(many.iter().map(|s| s.to_string()).collect())),
        },
    }
}

/// Parses a whole `key=value ...` line (the grammar above) into typed values in
/// order, as ASE's `key_val_str_to_dict` does; a flag without `=` is `True`.
/// Used for text that carries extxyz-style pairs outside a file, such as wfl's
/// `##EXTRA_INFO` lines.
///
/// ```
/// use autopara_core::{Value, extxyz::parse_key_values};
/// let kv = parse_key_values(r#"a=1 b="x y" c=1.5 flag"#).unwrap();
/// assert_eq!(kv[0], ("a".to_string(), Value::Int(1)));
/// assert_eq!(kv[1].1, Value::Str("x y".into()));
/// assert_eq!(kv[3].1, Value::Bool(true));
/// ```
pub fn parse_key_values(line: &str) -> Result<Vec<(String, Value)>, String> {
    let pairs = tokenize(line).map_err(|e| format!("column {}: {}", e.column + 1, e.message))?;
    pairs
        .into_iter()
        .map(|(key, raw)| {
            let value = match raw {
                RawValue::Flag => Value::Bool(true),
                RawValue::Text(t) => parse_value(&t),
                RawValue::Braced(t) => braced_value(&t),
                RawValue::List(elems) => list_value(&elems).map_err(|m| format!("key '{key}': {m}"))?,
            };
            Ok((key, value))
        })
        .collect()
}

/// Interprets a new-style array: a vector, or a matrix when every element is a row.
pub(crate) fn list_value(elems: &[Elem]) -> Result<Value, String> {
    if elems.iter().all(|e| matches!(e, Elem::List(_))) && !elems.is_empty() {
        let mut rows = Vec::with_capacity(elems.len());
        for e in elems {
            if let Elem::List(row) = e {
                rows.push(list_data(row)?);
            }
        }
        let ncol = rows.first().map_or(0, ArrayData::len);
        if rows.iter().any(|r| r.len() != ncol) {
            return Err("matrix rows have different lengths".into());
        }
        let data = concat_rows(rows);
        return Ok(Value::Array { shape: vec![elems.len(), ncol], data });
    }
    if elems.iter().any(|e| matches!(e, Elem::List(_))) {
        return Err("array mixes rows and scalars".into());
    }
    let data = list_data(elems)?;
    Ok(Value::Array { shape: vec![data.len()], data })
}

/// One row of a new-style array: quoted elements make it a string row.
fn list_data(elems: &[Elem]) -> Result<ArrayData, String> {
    let mut texts = Vec::with_capacity(elems.len());
    let mut any_quoted = false;
    for e in elems {
        match e {
            Elem::Bare(s) => texts.push(s.as_str()),
            Elem::Quoted(s) => {
                any_quoted = true;
                texts.push(s.as_str());
            }
            Elem::List(_) => return Err("array mixes rows and scalars".into()),
        }
    }
    if texts.is_empty() {
        return Ok(ArrayData::Int(Vec::new()));
    }
    if !any_quoted && let Some(d) = typed_pieces(&texts) {
        return Ok(d);
    }
    Ok(ArrayData::Str(texts.into_iter().map(String::from).collect()))
}

/// Stacks rows of one type (ints promote to floats when mixed with floats).
fn concat_rows(rows: Vec<ArrayData>) -> ArrayData {
    let all = |f: fn(&ArrayData) -> bool| rows.iter().all(f);
    if all(|r| matches!(r, ArrayData::Int(_))) {
        ArrayData::Int(rows.into_iter().flat_map(|r| if let ArrayData::Int(v) = r { v } else { Vec::new() }).collect())
    } else if all(|r| matches!(r, ArrayData::Int(_) | ArrayData::Float(_))) {
        ArrayData::Float(rows.iter().flat_map(|r| r.to_f64_vec().unwrap_or_default()).collect())
    } else if all(|r| matches!(r, ArrayData::Bool(_))) {
        ArrayData::Bool(
            rows.into_iter().flat_map(|r| if let ArrayData::Bool(v) = r { v } else { Vec::new() }).collect(),
        )
    } else {
        ArrayData::Str(rows.iter().flat_map(data_texts).collect())
    }
}

/// Elements as text (for promotion of mixed rows to strings).
fn data_texts(d: &ArrayData) -> Vec<String> {
    match d {
        ArrayData::Bool(v) => v.iter().map(|&b| if b { "T" } else { "F" }.to_string()).collect(),
        ArrayData::Int(v) => v.iter().map(i64::to_string).collect(),
        ArrayData::Float(v) => v.iter().map(|x| format!("{x:?}")).collect(),
        ArrayData::Str(v) => v.clone(),
    }
}

/// Decodes ASE's `_JSON` payload when it is a scalar or rectangular array of
/// numbers, bools or strings; `None` otherwise (the text stays a string).
fn from_json(json: &str) -> Option<Value> {
    let v: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        // Python's json writes NaN/Infinity, which serde_json refuses: the
        // new-style array grammar reads those (and nothing deeper than 2-D).
        Err(_) => {
            let mut p = Cursor { chars: json.trim().char_indices().collect(), pos: 0 };
            if p.peek() != Some('[') {
                return None;
            }
            let elems = p.list(0).ok()?;
            p.skip_ws();
            return if p.peek().is_none() { list_value(&elems).ok() } else { None };
        }
    };
    let mut shape = Vec::new();
    let mut cur = &v;
    while let serde_json::Value::Array(a) = cur {
        shape.push(a.len());
        cur = a.first()?;
    }
    let mut leaves = Vec::new();
    collect_leaves(&v, &shape, &mut leaves)?;
    if shape.is_empty() {
        return leaf_scalar(leaves.first()?);
    }
    let data = if leaves.iter().all(|l| l.is_i64()) {
        ArrayData::Int(leaves.iter().filter_map(|l| l.as_i64()).collect())
    } else if leaves.iter().all(|l| l.is_number()) {
        ArrayData::Float(leaves.iter().filter_map(|l| l.as_f64()).collect())
    } else if leaves.iter().all(|l| l.is_boolean()) {
        ArrayData::Bool(leaves.iter().filter_map(|l| l.as_bool()).collect())
    } else if leaves.iter().all(|l| l.is_string()) {
        ArrayData::Str(leaves.iter().filter_map(|l| l.as_str().map(String::from)).collect())
    } else {
        return None;
    };
    Some(Value::Array { shape, data })
}

fn leaf_scalar(l: &serde_json::Value) -> Option<Value> {
    Some(match l {
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::Str(s.clone()),
        _ => return None,
    })
}

/// Leaves of a rectangular nested array of the given shape, row-major.
fn collect_leaves<'a>(v: &'a serde_json::Value, shape: &[usize], out: &mut Vec<&'a serde_json::Value>) -> Option<()> {
    match (v, shape.split_first()) {
        (serde_json::Value::Array(a), Some((&n, rest))) if a.len() == n => {
            a.iter().try_for_each(|x| collect_leaves(x, rest, out))
        }
        (serde_json::Value::Array(_) | serde_json::Value::Object(_) | serde_json::Value::Null, _) => None,
        (leaf, None) => {
            out.push(leaf);
            Some(())
        }
        _ => None,
    }
}

/// Keys whose 9-element values are 3x3 matrices in Fortran (column-major) order.
pub(crate) fn is_matrix_key(key: &str) -> bool {
    matches!(key, "stress" | "virial")
}

/// Reshapes a 9-element numeric vector (Fortran order) to a row-major 3x3 matrix.
pub(crate) fn fortran_3x3(v: Value) -> Value {
    match v {
        Value::Array { shape, data } if shape == [9] && matches!(data, ArrayData::Int(_) | ArrayData::Float(_)) => {
            let t = |i: usize| (i % 3) * 3 + i / 3;
            let data = match data {
                ArrayData::Int(x) => ArrayData::Int((0..9).map(|i| x[t(i)]).collect()),
                ArrayData::Float(x) => ArrayData::Float((0..9).map(|i| x[t(i)]).collect()),
                other => other,
            };
            Value::Array { shape: vec![3, 3], data }
        }
        other => other,
    }
}

/// Checks that a `stress` or `virial` value is one ASE reads and writes: a
/// numeric 3x3 matrix, or 6 numbers in Voigt order (xx yy zz yz xz xy), which
/// are written as the full symmetric matrix as ASE's writer does.
pub(crate) fn check_matrix_value(key: &str, v: &Value) -> Result<(), String> {
    match v {
        Value::Array { shape, data } if !matches!(data, ArrayData::Str(_) | ArrayData::Bool(_)) => {
            if shape == &[3, 3] || shape == &[6] {
                return Ok(());
            }
            Err(format!("{key} must be 9 numbers (a 3x3 matrix) or 6 (Voigt order), got shape {shape:?}"))
        }
        _ => Err(format!("{key} must be 9 numbers (a 3x3 matrix) or 6 (Voigt order)")),
    }
}

/// The element of a Voigt 6-vector at row-major 3x3 position `i`.
fn voigt_element(i: usize) -> usize {
    const FULL: [usize; 9] = [0, 5, 4, 5, 1, 3, 4, 3, 2];
    FULL[i]
}

/// True when `s` can be written bare and reads back as the same word.
fn is_bare_safe(s: &str) -> bool {
    !s.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '{' | '}' | '[' | ']' | '=' | ',' | '\\'))
}

/// Writes a string, quoted and escaped when needed.
pub(crate) fn write_str(out: &mut String, s: &str) {
    if is_bare_safe(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a float so that it reads back bit for bit and always as a float,
/// right-aligned in `width` characters.
pub(crate) fn write_float_padded(out: &mut String, x: f64, width: usize) {
    // The shortest digits that round-trip (`0.1`, `0.00001`, `1e+16`), always with a `.` or an exponent so that ASE, which tries int()
    // first, reads a float; `NaN`, `inf`, `-inf` for the special values.
    let mut buf = zmij::Buffer::new();
    let s = buf.format(x);
    for _ in s.len()..width {
        out.push(' ');
    }
    out.push_str(s);
}

/// [`write_float_padded`] without padding.
pub(crate) fn write_float(out: &mut String, x: f64) {
    write_float_padded(out, x, 0);
}

/// A float for JSON: Python's json reads `NaN`, `Infinity`, `-Infinity`.
fn write_json_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("NaN");
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        write_float(out, x);
    }
}

/// Writes one element of `data` at `i` in the old-style (space separated) form.
fn write_elem(out: &mut String, data: &ArrayData, i: usize) {
    match data {
        ArrayData::Bool(v) => out.push(if v[i] { 'T' } else { 'F' }),
        ArrayData::Int(v) => {
            let _ = write!(out, "{}", v[i]);
        }
        ArrayData::Float(v) => write_float(out, v[i]),
        ArrayData::Str(v) => write_str(out, &v[i]),
    }
}

/// Writes nested JSON arrays of `data` with `shape`, from element `offset`.
fn write_json(out: &mut String, data: &ArrayData, shape: &[usize], offset: usize) {
    let Some((&n, rest)) = shape.split_first() else {
        match data {
            ArrayData::Bool(v) => out.push_str(if v[offset] { "true" } else { "false" }),
            ArrayData::Int(v) => {
                let _ = write!(out, "{}", v[offset]);
            }
            ArrayData::Float(v) => write_json_float(out, v[offset]),
            ArrayData::Str(v) => out.push_str(&serde_json::Value::from(v[offset].as_str()).to_string()),
        }
        return;
    };
    let stride: usize = rest.iter().product();
    out.push('[');
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        write_json(out, data, rest, offset + i * stride);
    }
    out.push(']');
}

/// Writes a value as ASE writes it (see the module docs), so that both ASE
/// and this reader read it back. `key` selects the 3x3 matrix convention.
/// Fails (with a message) when an array's data does not match its shape.
pub(crate) fn write_value(out: &mut String, key: &str, v: &Value) -> Result<(), String> {
    match v {
        Value::Bool(b) => out.push(if *b { 'T' } else { 'F' }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(x) => write_float(out, *x),
        Value::Str(s) => write_str(out, s),
        Value::Array { shape, data } => {
            if shape.iter().product::<usize>() != data.len() {
                return Err(format!("array of shape {shape:?} holds {} elements", data.len()));
            }
            let numeric = !matches!(data, ArrayData::Str(_));
            if is_matrix_key(key) {
                check_matrix_value(key, v)?;
                // Nine numbers in Fortran order; a Voigt 6-vector as its full
                // symmetric matrix (ASE reads nothing else for these keys).
                let voigt = shape == &[6];
                out.push('"');
                for i in 0..9 {
                    if i > 0 {
                        out.push(' ');
                    }
                    write_elem(out, data, if voigt { voigt_element(i) } else { (i % 3) * 3 + i / 3 });
                }
                out.push('"');
            } else if shape.len() == 1 && numeric && shape[0] >= 2 && shape[0] != 9 {
                out.push('"');
                for i in 0..shape[0] {
                    if i > 0 {
                        out.push(' ');
                    }
                    write_elem(out, data, i);
                }
                out.push('"');
            } else if shape.len() == 1 && numeric {
                // New style for one element (ASE's old style reads back as a
                // scalar) and for nine (the libAtoms parser reads nine old-style
                // numbers as a 3x3 matrix). ASE reads `[a, b]` as a vector too.
                out.push('[');
                for i in 0..shape[0] {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_elem(out, data, i);
                }
                out.push(']');
            } else {
                let mut json = String::from("_JSON ");
                write_json(&mut json, data, shape, 0);
                write_str(out, &json);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(line: &str) -> Vec<(String, RawValue)> {
        tokenize(line).unwrap_or_else(|e| panic!("{line}: {e:?}"))
    }

    fn text(s: &str) -> RawValue {
        RawValue::Text(s.into())
    }

    #[test]
    fn tokenizes_pairs_flags_and_quotes() {
        assert_eq!(
            kv(r#"a=1 b = "x y" flag c={1 2} "k k"='q' e=\"z"#),
            vec![
                ("a".into(), text("1")),
                ("b".into(), text("x y")),
                ("flag".into(), RawValue::Flag),
                ("c".into(), RawValue::Braced("1 2".into())),
                ("k k".into(), text("q")),
                ("e".into(), text("\"z")),
            ]
        );
        assert_eq!(kv(r#"s="a \"b\" c\\d\ne""#), vec![("s".into(), text("a \"b\" c\\d\ne"))]);
        assert_eq!(
            kv("m=[[1, 2], [3,4]]"),
            vec![(
                "m".into(),
                RawValue::List(vec![
                    Elem::List(vec![Elem::Bare("1".into()), Elem::Bare("2".into())]),
                    Elem::List(vec![Elem::Bare("3".into()), Elem::Bare("4".into())]),
                ])
            )]
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "a=\"x",
            "a={1 2",
            "a=[1, 2",
            "a=[1, 2,]",
            "a=[, 2]",
            "a=[[1, 2] [3, 4]]",
            "a=",
            "=1",
            "a=[[[1]]]",
            "k=\"abc\\\"def",
        ] {
            assert!(tokenize(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn interprets_values() {
        assert_eq!(parse_value("12"), Value::Int(12));
        assert_eq!(parse_value("-012"), Value::Int(-12));
        assert_eq!(parse_value("1."), Value::Float(1.0));
        assert_eq!(parse_value("-12.0D+02"), Value::Float(-1200.0));
        assert_eq!(parse_value("nan").as_f64().map(f64::is_nan), Some(true));
        assert_eq!(parse_value("T"), Value::Bool(true));
        assert_eq!(parse_value("1.3k7"), Value::Str("1.3k7".into()));
        assert_eq!(parse_value("1 2.0 3"), Value::floats(vec![1.0, 2.0, 3.0]));
        assert_eq!(
            parse_value("T F True FALSE"),
            Value::Array { shape: vec![4], data: ArrayData::Bool(vec![true, false, true, false]) }
        );
        assert_eq!(parse_value("_JSON [[1, 2], [3, 4]]").to_f64_vec(), Some(vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(
            parse_value(r#"_JSON ["a", "b"]"#),
            Value::Array { shape: vec![2], data: ArrayData::Str(vec!["a".into(), "b".into()]) }
        );
        assert_eq!(parse_value(r#"_JSON {"a": 1}"#), Value::Str(r#"_JSON {"a": 1}"#.into()));
    }

    #[test]
    fn fortran_order_reshape() {
        let v = fortran_3x3(parse_value("1 2 3 4 5 6 7 8 9"));
        assert_eq!(v, Value::Array { shape: vec![3, 3], data: ArrayData::Int(vec![1, 4, 7, 2, 5, 8, 3, 6, 9]) });
        let mut s = String::new();
        write_value(&mut s, "stress", &v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s, "\"1 2 3 4 5 6 7 8 9\"");
    }
}

#[cfg(test)]
mod float_tests {
    use super::*;

    /// The float text reads back bit for bit, and as a float.
    #[test]
    fn floats_match_debug_and_round_trip() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut samples =
            vec![0.0, -0.0, 1.0, 0.1, 1e15, 1e16, 1e-5, 1e-7, 123456.789, f64::MAX, f64::MIN_POSITIVE, 5e-324];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(f64::from_bits(x));
        }
        for v in samples.into_iter().filter(|v| v.is_finite()) {
            let mut s = String::new();
            write_float(&mut s, v);
            assert_eq!(s.parse::<f64>().map(f64::to_bits), Ok(v.to_bits()));
            assert!(parse_int(&s).is_none(), "{s} would read as an int");
        }
        let mut s = String::new();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            write_float(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "NaN inf -inf ");
    }
}
