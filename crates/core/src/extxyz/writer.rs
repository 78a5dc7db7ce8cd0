//! The frame writer.

use super::kv;
use crate::atoms::{ArrayData, Atoms};
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

/// Characters that a per-atom column name or string element cannot hold.
fn is_field_safe(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_whitespace)
}

fn is_column_name_ok(s: &str) -> bool {
    is_field_safe(s) && !s.chars().any(|c| matches!(c, ':' | '"' | '\'' | '{' | '}' | '[' | ']' | '=' | ',' | '\\'))
}

fn format_frame(s: &mut String, atoms: &Atoms) -> Result<(), String> {
    let n = atoms.len();
    if atoms.positions.len() != n {
        return Err(format!("{} atomic numbers but {} positions", n, atoms.positions.len()));
    }
    for (name, col) in &atoms.arrays {
        if matches!(name.as_str(), "species" | "pos" | "Z") {
            return Err(format!("array '{name}' is reserved (numbers and positions are fields of Atoms)"));
        }
        if !is_column_name_ok(name) {
            return Err(format!("array name '{name}' cannot be an extxyz column name"));
        }
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
        if key.is_empty() || key == "pbc" || key == "Lattice" || key.eq_ignore_ascii_case("Properties") {
            return Err(format!("info key '{key}' is reserved"));
        }
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
