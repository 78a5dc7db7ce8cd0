//! The frame writer.

use super::kv;
use crate::atoms::{ArrayData, Atoms, Value};
use std::fmt::Write as _;
use std::io::{self, Write};

/// Writes one frame: `Lattice` (when the cell is non-zero),
/// `Properties=species:S:1:pos:R:3:...` with the arrays in insertion order, the
/// info in insertion order, then `pbc` (always, as ASE writes it), and one
/// line per atom.
///
/// Output is deterministic and floats are written in their shortest form that
/// reads back bit for bit. Fails with [`io::ErrorKind::InvalidData`] when the
/// configuration cannot be represented (a column with the wrong number of
/// rows, a string with whitespace in a per-atom column, a reserved key).
///
/// ```
/// use autopara_core::{Atoms, extxyz};
/// let at = Atoms::new(vec![1], vec![[0.0, 0.0, 0.5]]);
/// let mut out = Vec::new();
/// extxyz::write_frame(&mut out, &at).unwrap();
/// let text = String::from_utf8(out).unwrap();
/// assert_eq!(text.lines().nth(1), Some("Properties=species:S:1:pos:R:3 pbc=\"F F F\""));
/// assert_eq!(text.lines().nth(2), Some("H               0.0              0.0              0.5"));
/// ```
pub fn write_frame<W: Write + ?Sized>(w: &mut W, atoms: &Atoms) -> io::Result<()> {
    let mut s = String::with_capacity(128 + atoms.len() * 64);
    format_frame(&mut s, atoms).map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m))?;
    w.write_all(s.as_bytes())
}

/// Characters that a per-atom string element cannot hold.
fn is_field_safe(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_whitespace)
}

/// Column names that stand for [`Atoms::numbers`] and [`Atoms::positions`]
/// (the names ASE maps: `species`/`symbols`, `Z`/`numbers`, `pos`/`positions`).
pub(crate) const RESERVED_COLUMNS: [&str; 6] = ["species", "symbols", "Z", "numbers", "pos", "positions"];

/// Checks that `name` can be a per-atom column (an entry of [`Atoms::arrays`])
/// in a file that ASE and the libAtoms parser read back under the same name.
///
/// ```
/// use autopara_core::extxyz::check_column_name;
/// assert!(check_column_name("REF_forces").is_ok());
/// assert!(check_column_name("my forces").unwrap_err().contains("whitespace"));
/// assert!(check_column_name("pos").unwrap_err().contains("reserved"));
/// ```
pub fn check_column_name(name: &str) -> Result<(), String> {
    if RESERVED_COLUMNS.contains(&name) {
        return Err(format!("'{name}' is reserved (numbers and positions are fields of Atoms)"));
    }
    if name.is_empty() {
        return Err("a column name cannot be empty".into());
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, ':' | '"' | '\'' | '{' | '}' | '[' | ']' | '=' | ',' | '\\'))
    {
        return Err(format!(
            "'{name}' cannot be an extxyz column name (no whitespace or any of : \" ' {{ }} [ ] = , \\)"
        ));
    }
    Ok(())
}

/// Checks that `key` can be an info key (a `key=value` pair of the comment
/// line): not empty and none of the keys the format itself uses (`Lattice`,
/// `pbc`, `Properties` in any case).
///
/// ```
/// use autopara_core::extxyz::check_info_key;
/// assert!(check_info_key("config_type").is_ok());
/// assert!(check_info_key("pbc").is_err());
/// assert!(check_info_key("").is_err());
/// ```
pub fn check_info_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key == "pbc" || key == "Lattice" || key.eq_ignore_ascii_case("Properties") {
        return Err(format!("info key '{key}' is reserved"));
    }
    Ok(())
}

/// Checks that `key=value` can be written on the comment line so that ASE
/// and the libAtoms parser read it back: [`check_info_key`], and for
/// `stress` and `virial` (which ASE reads only as 3x3 matrices) a numeric
/// 3x3 matrix or 6 Voigt numbers.
///
/// ```
/// use autopara_core::{Value, extxyz::check_info_entry};
/// assert!(check_info_entry("stress", &Value::floats(vec![1.0; 6])).is_ok());
/// assert!(check_info_entry("stress", &Value::Float(1.0)).is_err());
/// assert!(check_info_entry("energy", &Value::Float(1.0)).is_ok());
/// ```
pub fn check_info_entry(key: &str, value: &Value) -> Result<(), String> {
    check_info_key(key)?;
    if kv::is_matrix_key(key) {
        kv::check_matrix_value(key, value)?;
    }
    Ok(())
}

fn format_frame(s: &mut String, atoms: &Atoms) -> Result<(), String> {
    let n = atoms.len();
    if atoms.positions.len() != n {
        return Err(format!("{} atomic numbers but {} positions", n, atoms.positions.len()));
    }
    for (name, col) in &atoms.arrays {
        check_column_name(name).map_err(|m| format!("array {m}"))?;
        if col.width == 0 || col.data.len() != n * col.width {
            return Err(format!(
                "array '{name}' has {} elements, expected {} atoms x width {}",
                col.data.len(),
                n,
                col.width
            ));
        }
        if let ArrayData::Str(v) = &col.data
            && let Some(bad) = v.iter().find(|x| !is_field_safe(x))
        {
            return Err(format!("array '{name}' holds '{bad}', which is empty or contains whitespace"));
        }
    }
    if let Some(i) = atoms.positions.iter().position(|p| p.iter().any(|x| !x.is_finite())) {
        return Err(format!("position of atom {i} is not finite"));
    }
    if atoms.cell.iter().flatten().any(|x| !x.is_finite()) {
        return Err("the cell is not finite".into());
    }
    for &z in &atoms.numbers {
        if z as usize >= crate::elements::SYMBOLS.len() {
            return Err(format!("atomic number {z} has no symbol"));
        }
    }

    let _ = writeln!(s, "{n}");
    let has_cell = atoms.cell.iter().flatten().any(|&x| x != 0.0);
    if has_cell {
        s.push_str("Lattice=\"");
        for (i, x) in atoms.cell.iter().flatten().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            kv::write_float(s, *x);
        }
        s.push_str("\" ");
    }
    s.push_str("Properties=species:S:1:pos:R:3");
    for (name, col) in &atoms.arrays {
        let _ = write!(s, ":{name}:{}:{}", col.data.type_char(), col.width);
    }
    for (key, value) in &atoms.info {
        check_info_key(key)?;
        s.push(' ');
        kv::write_str(s, key);
        s.push('=');
        kv::write_value(s, key, value).map_err(|m| format!("info '{key}': {m}"))?;
    }
    // Always written, as ASE does: the libAtoms parser takes a missing pbc as periodic.
    let [a, b, c] = atoms.pbc.map(|p| if p { 'T' } else { 'F' });
    let _ = write!(s, " pbc=\"{a} {b} {c}\"");
    s.push('\n');

    for i in 0..n {
        let sym = crate::elements::symbol(atoms.numbers[i]);
        let [x, y, z] = atoms.positions[i];
        s.push_str(sym);
        if sym.len() < 2 {
            s.push(' ');
        }
        for c in [x, y, z] {
            s.push(' ');
            kv::write_float_padded(s, c, 16);
        }
        for col in atoms.arrays.values() {
            for j in i * col.width..(i + 1) * col.width {
                match &col.data {
                    ArrayData::Bool(v) => s.push_str(if v[j] { " T" } else { " F" }),
                    ArrayData::Int(v) => {
                        let _ = write!(s, " {:>8}", v[j]);
                    }
                    ArrayData::Float(v) => {
                        s.push(' ');
                        kv::write_float_padded(s, v[j], 16);
                    }
                    ArrayData::Str(v) => {
                        let _ = write!(s, " {}", v[j]);
                    }
                }
            }
        }
        s.push('\n');
    }
    Ok(())
}
