//! The cache key of a run, and how two keys differ.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of autopara that wrote an output: part of the key, so an
/// upgrade never serves results computed by older code.
pub const AUTOPARA_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything that determines a run's output. Two runs with equal keys write
/// byte-identical files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunKey {
    /// Op name.
    pub op: String,
    /// Op version (bumped by the op's authors whenever results change).
    pub op_version: u32,
    /// Canonical arguments (defaults filled in, calculator spec included, keys sorted).
    pub args: serde_json::Value,
    /// Seed of the per-item random streams.
    pub seed: u64,
    /// `blake3:<hex>` of the input content (see [`crate::runner::input_digest`]).
    pub inputs: String,
    /// Tags written into every output configuration (values as plain JSON).
    pub tags: BTreeMap<String, serde_json::Value>,
    /// autopara's version.
    pub autopara_version: String,
}

/// `value` with every object's keys sorted, so equal arguments serialize equally.
pub fn canonical_json(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), canonical_json(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(canonical_json).collect()),
        other => other.clone(),
    }
}

/// Differences between JSON values as `path: old -> new` lines (`args.steps: 1000 -> 2000`).
fn json_diff(path: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value::{Array, Object};
    match (old, new) {
        (Object(a), Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => json_diff(&sub, x, y, out),
                    (Some(x), None) => out.push(format!("{sub}: {x} -> (absent)")),
                    (None, Some(y)) => out.push(format!("{sub}: (absent) -> {y}")),
                    (None, None) => {}
                }
            }
        }
        (Array(a), Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                json_diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

impl RunKey {
    /// What changed from `old` to `self`, one entry per part
    /// (`op md version 2 -> 3`, `args.steps: 1000 -> 2000`, `input digest differs`).
    /// Empty when the keys are equal.
    pub fn changes_from(&self, old: &RunKey) -> Vec<String> {
        let mut out = Vec::new();
        if old.op != self.op {
            out.push(format!("op {} -> {}", old.op, self.op));
        } else if old.op_version != self.op_version {
            out.push(format!("op {} version {} -> {}", self.op, old.op_version, self.op_version));
        }
        json_diff("args", &old.args, &self.args, &mut out);
        if old.seed != self.seed {
            out.push(format!("seed {} -> {}", old.seed, self.seed));
        }
        if old.inputs != self.inputs {
            out.push("input digest differs (the input files or configurations changed)".to_string());
        }
        if old.tags != self.tags {
            let as_object = |t: &BTreeMap<String, serde_json::Value>| {
                serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            };
            json_diff("tags", &as_object(&old.tags), &as_object(&self.tags), &mut out);
        }
        if old.autopara_version != self.autopara_version {
            out.push(format!("autopara version {} -> {}", old.autopara_version, self.autopara_version));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> RunKey {
        RunKey {
            op: "md".into(),
            op_version: 2,
            args: canonical_json(&json!({"steps": 1000, "calculator": {"type": "emt"}, "dt": 1.0})),
            seed: 0,
            inputs: "blake3:aa".into(),
            tags: BTreeMap::new(),
            autopara_version: AUTOPARA_VERSION.into(),
        }
    }

    #[test]
    fn every_part_of_a_change_is_named() {
        assert!(key().changes_from(&key()).is_empty());
        let mut new = key();
        new.op_version = 3;
        new.args = canonical_json(&json!({"steps": 2000, "calculator": {"type": "lennard_jones"}, "dt": 1.0, "x": 1}));
        new.seed = 5;
        new.inputs = "blake3:bb".into();
        new.tags.insert("run".into(), json!("b"));
        new.autopara_version = "9.9.9".into();
        let changes = new.changes_from(&key());
        assert_eq!(
            changes,
            vec![
                "op md version 2 -> 3",
                "args.calculator.type: \"emt\" -> \"lennard_jones\"",
                "args.steps: 1000 -> 2000",
                "args.x: (absent) -> 1",
                "seed 0 -> 5",
                "input digest differs (the input files or configurations changed)",
                "tags.run: (absent) -> \"b\"",
                &format!("autopara version {AUTOPARA_VERSION} -> 9.9.9"),
            ]
        );
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a = canonical_json(&json!({"b": 1, "a": {"d": 2, "c": [ {"z": 1, "y": 2} ]}}));
        assert_eq!(a.to_string(), r#"{"a":{"c":[{"y":2,"z":1}],"d":2},"b":1}"#);
    }
}
