//! Storing calculator results in an [`Atoms`] the way wfl does, so existing
//! analysis scripts read our files: `info[<prefix>energy]`,
//! `arrays[<prefix>forces]`, `info[<prefix>stress]` (Voigt 6, ASE order),
//! `arrays[<prefix>energies]`.

use crate::atoms::{Atoms, Column, Value};
use crate::calculator::CalcResults;

/// The keys [`store_results`] writes, without a prefix: ASE's own result
/// names, as ASE writes a calculator's results.
pub const RESULT_KEYS: [&str; 5] = ["energy", "free_energy", "stress", "forces", "energies"];

/// Removes stale result keys before new ones are stored: every key starting with
/// `prefix`, and when the prefix has a `__` group (wfl's `last_op__md_`) every
/// key of that group (`last_op__*`), as wfl's `save_calc_results` does. With
/// an empty prefix (results under ASE's own names) only [`RESULT_KEYS`] go.
pub fn clear_results(atoms: &mut Atoms, prefix: &str) {
    if prefix.is_empty() {
        atoms.info.retain(|k, _| !RESULT_KEYS.contains(&k.as_str()));
        atoms.arrays.retain(|k, _| !RESULT_KEYS.contains(&k.as_str()));
        return;
    }
    let group = prefix.find("__").map(|i| &prefix[..i + 2]);
    let stale = |k: &str| k.starts_with(prefix) || group.is_some_and(|g| k.starts_with(g));
    atoms.info.retain(|k, _| !stale(k));
    atoms.arrays.retain(|k, _| !stale(k));
}

/// Checks that the keys [`store_results`] writes under `prefix` can be written
/// to extxyz and read back (a prefix with whitespace or quotes cannot name a
/// column), so that a bad prefix is refused with the arguments, not when the
/// output is written.
///
/// ```
/// use autopara_core::results::check_prefix;
/// assert!(check_prefix("last_op__md_").is_ok());
/// assert!(check_prefix("my md ").is_err());
/// ```
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    for key in ["energy", "free_energy", "stress"] {
        crate::extxyz::check_info_key(&format!("{prefix}{key}"))?;
    }
    for column in ["forces", "energies"] {
        crate::extxyz::check_column_name(&format!("{prefix}{column}"))?;
    }
    Ok(())
}

/// Stores the computed fields of `res` under `prefix` after [`clear_results`].
/// `free_energy` is written beside `energy`: the calculator's own when it
/// reports one, else `energy` (as ASE's classical calculators report it).
pub fn store_results(atoms: &mut Atoms, prefix: &str, res: &CalcResults) {
    clear_results(atoms, prefix);
    let c = res.computed;
    if c.energy {
        atoms.info.insert(format!("{prefix}energy"), Value::Float(res.energy));
        atoms.info.insert(format!("{prefix}free_energy"), Value::Float(res.free_energy.unwrap_or(res.energy)));
    }
    if c.stress {
        atoms.info.insert(format!("{prefix}stress"), Value::floats(res.stress.to_vec()));
    }
    if c.forces {
        atoms.arrays.insert(format!("{prefix}forces"), Column::vec3(&res.forces));
    }
    if c.energies {
        atoms.arrays.insert(format!("{prefix}energies"), Column::scalars(res.energies.clone()));
    }
}

/// Appends `suffix` to `config_type` (`"MD"` → `"MD:MD"`), or sets it when absent,
/// as wfl's `update_config_type="append"`.
pub fn append_config_type(atoms: &mut Atoms, suffix: &str) {
    let new = match atoms.info.get("config_type").and_then(Value::as_str) {
        Some(old) if !old.is_empty() => format!("{old}:{suffix}"),
        _ => suffix.to_string(),
    };
    atoms.info.insert("config_type".into(), Value::Str(new));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calculator::Properties;

    #[test]
    fn last_op_group_is_replaced() {
        let mut at = Atoms::new(vec![1], vec![[0.0; 3]]);
        at.info.insert("last_op__md_energy".into(), Value::Float(1.0));
        at.info.insert("REF_energy".into(), Value::Float(2.0));
        let res = CalcResults {
            computed: Properties::ENERGY_FORCES,
            energy: 3.0,
            forces: vec![[0.0; 3]],
            ..Default::default()
        };
        store_results(&mut at, "last_op__optimize_", &res);
        assert!(!at.info.contains_key("last_op__md_energy"));
        assert_eq!(at.info_f64("last_op__optimize_energy"), Some(3.0));
        assert_eq!(at.info_f64("REF_energy"), Some(2.0));
        append_config_type(&mut at, "MD");
        append_config_type(&mut at, "MD");
        assert_eq!(at.info["config_type"].as_str(), Some("MD:MD"));
    }
}
