//! The buildcell input text: the AIRSS `#KEY=value` lines that wfl's
//! `create_input` writes, parsed and checked before any structure is built.
//!
//! ```
//! use autopara_buildcell::BuildcellInput;
//! let input = BuildcellInput::parse(
//!     "#TARGVOL=19-21\n#SPECIES=Li%NUM=1\n#NFORM={6,8}\n#SYMMOPS=1-8\n#SLACK=0.25\n#OVERLAP=0.1\n\
//!      #COMPACT\n#MINSEP=0.5 Li-Li=2.7\n##EXTRA_INFO RSS_min_vol_per_atom=10.0\n",
//! )
//! .unwrap();
//! assert_eq!(input.nform, vec![6, 8]);
//! assert_eq!(input.symmops, vec![1, 2, 3, 4, 6, 8]);
//! assert_eq!(input.minsep(3, 3), 2.7);
//! ```

use crate::error::InputError;
use autopara_core::{Value, elements, extxyz};
use std::f64::consts::PI;

/// Numbers of symmetry operations a crystal's space group can have (AIRSS's list).
pub const CRYSTAL_SYMMOPS: [usize; 10] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 48];

/// Densest packing fraction of equal spheres (Kepler, proved by Hales): a
/// rigorous bound used to reject MINSEP/TARGVOL combinations no structure meets.
pub const MAX_PACKING_FRACTION: f64 = 0.740_480_489_693_061;

/// One `#SPECIES` entry: an element and its atoms per formula unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Species {
    /// Atomic number.
    pub z: u8,
    /// Atoms of this element per formula unit (`%NUM=`, default 1).
    pub num: u32,
}

/// A parsed, validated buildcell input.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildcellInput {
    /// `#TARGVOL=lo-hi`: volume per `SPECIES` entry, Å³ (AIRSS scales it by
    /// atoms per entry, so the cell volume is `TARGVOL × atoms / entries`).
    pub targvol: (f64, f64),
    /// `#SPECIES=`, in input order.
    pub species: Vec<Species>,
    /// `#NFORM=`: the formula-unit counts to choose from (one per structure).
    pub nform: Vec<u32>,
    /// `#SYMMOPS=`: the numbers of symmetry operations to choose from.
    pub symmops: Vec<usize>,
    /// `#SLACK=`: separations may fall to `(1 - SLACK) × MINSEP` when the push
    /// cannot reach `MINSEP` (see [`crate::generate`]).
    pub slack: f64,
    /// `#OVERLAP=` (read and checked; see docs/ops/buildcell.md).
    pub overlap: f64,
    /// `#COMPACT` was given.
    pub compact: bool,
    /// `#MINSEP=` default separation, Å.
    pub minsep_default: f64,
    /// `#MINSEP=` per-pair separations `(Z_a, Z_b, d)`, Å.
    pub minsep_pairs: PairSeparations,
    /// `##EXTRA_INFO key=value` pairs, in order, typed as ASE's `key_val_str_to_dict` does
    /// (the extxyz comment-line rules of [`autopara_core::extxyz::parse_key_values`]).
    pub extra_info: Vec<(String, Value)>,
}

/// Most atoms one structure may have: the generator is meant for the small
/// cells of random structure searches, and its neighbour lists are rebuilt from
/// all pairs.
pub const MAX_ATOMS: u64 = 1000;

/// Per-pair minimum separations `(Z_a, Z_b, d)` with `Z_a ≤ Z_b`.
type PairSeparations = Vec<(u8, u8, f64)>;

/// Where a key was found, for error messages.
#[derive(Debug, Clone)]
struct Seen {
    line: usize,
    text: String,
}

fn line_error(seen: &Seen, message: impl Into<String>) -> InputError {
    InputError::Line { line: seen.line, text: seen.text.clone(), message: message.into() }
}

fn parse_f64(s: &str, what: &str, seen: &Seen) -> Result<f64, InputError> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(line_error(seen, format!("{what} `{}` is not a non-negative number", s.trim()))),
    }
}

fn parse_u32(s: &str, what: &str, seen: &Seen) -> Result<u32, InputError> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| line_error(seen, format!("{what} `{}` is not a non-negative integer", s.trim())))
}

fn parse_element(s: &str, seen: &Seen) -> Result<u8, InputError> {
    match elements::atomic_number(s.trim()) {
        Some(z) if z > 0 => Ok(z),
        _ => Err(line_error(seen, format!("unknown element `{}`", s.trim()))),
    }
}

/// `lo-hi` or a single value.
fn parse_range(s: &str, what: &str, seen: &Seen) -> Result<(f64, f64), InputError> {
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (parse_f64(a, what, seen)?, parse_f64(b, what, seen)?),
        None => {
            let v = parse_f64(s, what, seen)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(line_error(seen, format!("{what} range `{s}` has its minimum above its maximum")));
    }
    Ok((lo, hi))
}

fn parse_nform(value: &str, seen: &Seen) -> Result<Vec<u32>, InputError> {
    let v = value.trim();
    let list: Vec<u32> = if let Some(inner) = v.strip_prefix('{') {
        let inner = inner.strip_suffix('}').ok_or_else(|| line_error(seen, "`{` without a closing `}`".to_string()))?;
        if inner.trim().is_empty() {
            return Err(line_error(seen, "empty NFORM: no formula-unit count to choose from"));
        }
        inner.split(',').map(|n| parse_u32(n, "NFORM entry", seen)).collect::<Result<_, _>>()?
    } else if let Some((a, b)) = v.split_once('-') {
        let (a, b) = (parse_u32(a, "NFORM", seen)?, parse_u32(b, "NFORM", seen)?);
        if a > b {
            return Err(line_error(seen, "NFORM range has its minimum above its maximum"));
        }
        if u64::from(b) > MAX_ATOMS {
            return Err(line_error(seen, format!("NFORM above {MAX_ATOMS} formula units")));
        }
        (a..=b).collect()
    } else {
        vec![parse_u32(v, "NFORM", seen)?]
    };
    if list.contains(&0) {
        return Err(line_error(seen, "NFORM entries must be at least 1"));
    }
    Ok(list)
}

fn parse_symmops(value: &str, seen: &Seen) -> Result<Vec<usize>, InputError> {
    let check = |s: &str| -> Result<usize, InputError> {
        let n = parse_u32(s, "SYMMOPS", seen)? as usize;
        if CRYSTAL_SYMMOPS.contains(&n) {
            Ok(n)
        } else {
            Err(line_error(
                seen,
                format!("{n} symmetry operations is not possible for a crystal; use one of {CRYSTAL_SYMMOPS:?}"),
            ))
        }
    };
    let (lo, hi) = match value.split_once('-') {
        Some((a, b)) => (check(a)?, check(b)?),
        None => {
            let n = check(value)?;
            (n, n)
        }
    };
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    Ok(CRYSTAL_SYMMOPS.iter().copied().filter(|n| (lo..=hi).contains(n)).collect())
}

fn parse_species(value: &str, seen: &Seen) -> Result<Vec<Species>, InputError> {
    let mut out: Vec<Species> = Vec::new();
    for entry in value.split(',') {
        let (sym, modifiers) = match entry.split_once('%') {
            Some((s, m)) => (s, Some(m)),
            None => (entry, None),
        };
        let z = parse_element(sym, seen)?;
        let num = match modifiers {
            None => 1,
            Some(m) => {
                let m = m.trim();
                let n = m
                    .strip_prefix("NUM=")
                    .ok_or_else(|| line_error(seen, format!("species modifier `{m}` is not supported (only NUM=n)")))?;
                parse_u32(n, "NUM", seen)?
            }
        };
        if out.iter().any(|s| s.z == z) {
            return Err(line_error(seen, format!("species `{}` listed twice", sym.trim())));
        }
        out.push(Species { z, num });
    }
    if out.iter().all(|s| s.num == 0) {
        return Err(line_error(seen, "no atoms: every NUM is 0"));
    }
    Ok(out)
}

fn parse_minsep(value: &str, seen: &Seen) -> Result<(f64, PairSeparations), InputError> {
    let mut tokens = value.split_whitespace();
    let first = tokens.next().ok_or_else(|| line_error(seen, "MINSEP needs a default separation"))?;
    let default = parse_f64(first, "MINSEP default", seen)?;
    let mut pairs: PairSeparations = Vec::new();
    for tok in tokens {
        let (pair, d) =
            tok.split_once('=').ok_or_else(|| line_error(seen, format!("`{tok}` is not of the form A-B=distance")))?;
        let (a, b) =
            pair.split_once('-').ok_or_else(|| line_error(seen, format!("`{pair}` is not of the form A-B")))?;
        let (za, zb) = (parse_element(a, seen)?, parse_element(b, seen)?);
        let d = parse_f64(d, &format!("MINSEP {pair}"), seen)?;
        let key = (za.min(zb), za.max(zb));
        if pairs.iter().any(|&(x, y, _)| (x, y) == key) {
            return Err(line_error(seen, format!("pair `{pair}` given twice")));
        }
        pairs.push((key.0, key.1, d));
    }
    Ok((default, pairs))
}

impl BuildcellInput {
    /// Parses and validates the input text. Errors quote the offending line.
    pub fn parse<'a>(text: &'a str) -> Result<BuildcellInput, InputError> {
        let mut targvol: Option<((f64, f64), Seen)> = None;
        let mut species: Option<(Vec<Species>, Seen)> = None;
        let mut nform: Option<(Vec<u32>, Seen)> = None;
        let mut symmops: Option<Vec<usize>> = None;
        let mut slack: Option<f64> = None;
        let mut overlap: Option<f64> = None;
        let mut compact = false;
        let mut minsep: Option<((f64, PairSeparations), Seen)> = None;
        let mut extra_info: Vec<(String, Value)> = Vec::new();
        let mut keys_seen: Vec<String> = Vec::new();

        for (i, raw) in text.lines().enumerate() {
            let seen = Seen { line: i + 1, text: raw.to_string() };
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("##") {
                // `##` comments a line out in AIRSS; wfl reads `##EXTRA_INFO` lines itself.
                if let Some(kv) = rest.strip_prefix("EXTRA_INFO") {
                    let pairs = extxyz::parse_key_values(kv).map_err(|m| line_error(&seen, m))?;
                    for (key, v) in pairs {
                        extxyz::check_info_entry(&key, &v).map_err(|m| line_error(&seen, m))?;
                        extra_info.retain(|(k, _)| *k != key);
                        extra_info.push((key, v));
                    }
                }
                continue;
            }
            let Some(body) = line.strip_prefix('#') else {
                return Err(line_error(&seen, "not a buildcell `#KEY=value` line"));
            };
            let (key, value) = match body.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_uppercase(), Some(v.trim())),
                None => (body.trim().to_ascii_uppercase(), None),
            };
            if keys_seen.contains(&key) {
                return Err(line_error(&seen, format!("key {key} given twice")));
            }
            keys_seen.push(key.clone());
            let need = |v: Option<&'a str>| -> Result<&'a str, InputError> {
                v.ok_or_else(|| line_error(&seen, format!("{key} needs a value (`#{key}=...`)")))
            };
            match key.as_str() {
                "TARGVOL" => targvol = Some((parse_range(need(value)?, "TARGVOL", &seen)?, seen.clone())),
                "SPECIES" => species = Some((parse_species(need(value)?, &seen)?, seen.clone())),
                "NFORM" => nform = Some((parse_nform(need(value)?, &seen)?, seen.clone())),
                "SYMMOPS" => symmops = Some(parse_symmops(need(value)?, &seen)?),
                "SLACK" | "OVERLAP" => {
                    let x = parse_f64(need(value)?, &key, &seen)?;
                    if x >= 1.0 {
                        return Err(line_error(&seen, format!("{key} must be below 1")));
                    }
                    if key == "SLACK" { slack = Some(x) } else { overlap = Some(x) }
                }
                "COMPACT" => {
                    if value.is_some() {
                        return Err(line_error(&seen, "COMPACT takes no value"));
                    }
                    compact = true;
                }
                "MINSEP" => minsep = Some((parse_minsep(need(value)?, &seen)?, seen.clone())),
                other => {
                    return Err(line_error(
                        &seen,
                        format!(
                            "unknown key {other}; supported: TARGVOL, SPECIES, NFORM, SYMMOPS, SLACK, OVERLAP, COMPACT, MINSEP, ##EXTRA_INFO"
                        ),
                    ));
                }
            }
        }

        let (targvol, targvol_seen) = targvol.ok_or(InputError::Missing { key: "TARGVOL" })?;
        let (species, species_seen) = species.ok_or(InputError::Missing { key: "SPECIES" })?;
        let ((minsep_default, minsep_pairs), minsep_seen) =
            minsep.unwrap_or_else(|| ((0.0, Vec::new()), species_seen.clone()));
        if targvol.0 <= 0.0 {
            return Err(line_error(&targvol_seen, "TARGVOL must be positive"));
        }
        let (nform, nform_seen) = nform.unwrap_or_else(|| (vec![1], species_seen.clone()));
        let most_atoms =
            u64::from(nform.iter().copied().max().unwrap_or(1)) * species.iter().map(|s| u64::from(s.num)).sum::<u64>();
        if most_atoms > MAX_ATOMS {
            return Err(line_error(
                &nform_seen,
                format!("up to {most_atoms} atoms per structure; at most {MAX_ATOMS} are supported"),
            ));
        }
        let input = BuildcellInput {
            targvol,
            species,
            nform,
            symmops: symmops.unwrap_or_else(|| vec![1]),
            slack: slack.unwrap_or(0.0),
            overlap: overlap.unwrap_or(0.0),
            compact,
            minsep_default,
            minsep_pairs,
            extra_info,
        };
        input.check_packing(&targvol_seen, &minsep_seen)?;
        Ok(input)
    }

    /// The minimum separation between elements `za` and `zb`, Å.
    pub fn minsep(&self, za: u8, zb: u8) -> f64 {
        let key = (za.min(zb), za.max(zb));
        self.minsep_pairs.iter().find(|&&(a, b, _)| (a, b) == key).map_or(self.minsep_default, |&(_, _, d)| d)
    }

    /// Atoms per formula unit (the sum of `NUM`).
    pub fn atoms_per_formula_unit(&self) -> u32 {
        self.species.iter().map(|s| s.num).sum()
    }

    /// The cell volume range for `nform` formula units: AIRSS scales `TARGVOL`
    /// by the atoms per `SPECIES` entry and by the formula units.
    pub fn volume_range(&self, nform: u32) -> (f64, f64) {
        let scale = f64::from(self.atoms_per_formula_unit()) / self.species.len() as f64 * f64::from(nform);
        (self.targvol.0 * scale, self.targvol.1 * scale)
    }

    /// Rejects inputs where even the largest target volume cannot hold the atoms
    /// at the closest separations a structure may have, `(1 - SLACK) × MINSEP`
    /// (densest sphere packing bound), per element and for all atoms at the
    /// smallest separation. `MINSEP` itself is a target the atoms are pushed
    /// towards, so an input it overfills is fine within `SLACK` (wfl's own test
    /// inputs are such).
    fn check_packing(&self, targvol: &Seen, minsep: &Seen) -> Result<(), InputError> {
        self.packing_conflict(1.0 - self.slack).map_or(Ok(()), |message| {
            Err(InputError::Conflict {
                message,
                line_a: minsep.line,
                text_a: minsep.text.clone(),
                line_b: targvol.line,
                text_b: targvol.text.clone(),
            })
        })
    }

    /// True unless the densest packing of spheres of diameter `MINSEP` cannot
    /// fit the largest target volume: then no structure meets `MINSEP` in full
    /// and the generator takes the first one within `SLACK` of it.
    pub fn minsep_can_fit(&self) -> bool {
        self.packing_conflict(1.0).is_none()
    }

    /// Why spheres of diameter `soft × MINSEP` cannot fit the largest target
    /// volume, if they cannot.
    fn packing_conflict(&self, soft: f64) -> Option<String> {
        let sphere = |d: f64| PI / 6.0 * (soft * d).powi(3);
        // Per formula unit; volume and atom counts both scale with NFORM.
        let (_, v_max) = self.volume_range(1);
        let capacity = MAX_PACKING_FRACTION * v_max;
        let present: Vec<&Species> = self.species.iter().filter(|s| s.num > 0).collect();
        for s in &present {
            let need = f64::from(s.num) * sphere(self.minsep(s.z, s.z));
            if need > capacity {
                return Some(format!(
                    "MINSEP makes the target volume impossible: {} {} atoms per formula unit need at least {:.3} Å³ \
                     (spheres of diameter {} = (1 - SLACK) x MINSEP packed as densely as possible), TARGVOL allows \
                     at most {:.3} Å³",
                    s.num,
                    elements::symbol(s.z),
                    need / MAX_PACKING_FRACTION,
                    soft * self.minsep(s.z, s.z),
                    v_max
                ));
            }
        }
        let d_min =
            present.iter().flat_map(|a| present.iter().map(|b| self.minsep(a.z, b.z))).fold(f64::INFINITY, f64::min);
        let need = f64::from(self.atoms_per_formula_unit()) * sphere(d_min);
        if need > capacity {
            return Some(format!(
                "MINSEP makes the target volume impossible: {} atoms per formula unit at separations of at least {} \
                 = (1 - SLACK) x {d_min} need at least {:.3} Å³, TARGVOL allows at most {:.3} Å³",
                self.atoms_per_formula_unit(),
                soft * d_min,
                need / MAX_PACKING_FRACTION,
                v_max
            ));
        }
        None
    }
}
