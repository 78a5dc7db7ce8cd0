//! The op registry: op crates `inventory::submit!` an [`OpRegistration`]; the
//! CLI, pipelines and remote workers find ops by name here.
//!
//! An op crate contributes only if the final binary names it (see the facade's
//! `src/lib.rs`).

use crate::error::{Error, Result};
use crate::operation::{OpInfo, Operation};

/// One registered op: its static facts and a constructor from JSON arguments.
pub struct OpRegistration {
    /// Name, version, default chunk size, summary.
    pub info: &'static OpInfo,
    /// Builds the op from its arguments (JSON object), validating them.
    pub build: fn(serde_json::Value) -> Result<Box<dyn Operation>>,
}

inventory::collect!(OpRegistration);

/// All registered ops, sorted by name.
pub fn registered_ops() -> Vec<&'static OpRegistration> {
    let mut v: Vec<_> = inventory::iter::<OpRegistration>.into_iter().collect();
    v.sort_by_key(|r| r.info.name);
    v
}

/// Finds an op by name; the error lists what exists.
pub fn find_op(name: &str) -> Result<&'static OpRegistration> {
    let ops = registered_ops();
    ops.iter().find(|r| r.info.name == name).copied().ok_or_else(|| Error::Unknown {
        kind: "op",
        name: name.to_string(),
        known: ops.iter().map(|r| r.info.name).collect::<Vec<_>>().join(", "),
    })
}

/// Builds an op by name from JSON arguments.
pub fn build_op(name: &str, args: serde_json::Value) -> Result<Box<dyn Operation>> {
    (find_op(name)?.build)(args)
}
