//! [`Map`]: apply an arbitrary Rust closure to every configuration of a
//! [`ConfigSet`](crate::ConfigSet), in parallel, like wfl's `wfl.map.map`.
//!
//! The closure gets each configuration (by value) and the item's random
//! generator, and returns anything [`IntoItemResult`]: an [`Atoms`], an
//! `Option<Atoms>` (none drops the item), a `Vec<Atoms>`, or a `Result` of
//! those (an error becomes a failure record). A panic is caught and recorded
//! like an error.
//!
//! A closure's code cannot be hashed, so a map's cache identity (for file
//! outputs) is the closure's type name, which names where it is defined, plus
//! the [`Map::key`] you give it: change the key when you edit the closure, as
//! an op bumps its version.

use crate::atoms::Atoms;
use crate::operation::{InputKind, Item, ItemFailure, ItemResult, OpInfo, Operation, WorkerContext};
use crate::rng::ItemRng;
use std::fmt::Display;

/// Converts what a map closure returns into an item's result.
pub trait IntoItemResult {
    /// The item's result: zero, one or many configurations, or a failure.
    fn into_item_result(self) -> ItemResult;
}

impl IntoItemResult for Atoms {
    fn into_item_result(self) -> ItemResult {
        Ok(vec![self])
    }
}

impl IntoItemResult for Option<Atoms> {
    fn into_item_result(self) -> ItemResult {
        Ok(self.into_iter().collect())
    }
}

impl IntoItemResult for Vec<Atoms> {
    fn into_item_result(self) -> ItemResult {
        Ok(self)
    }
}

impl<T: IntoItemResult, E: Display> IntoItemResult for Result<T, E> {
    fn into_item_result(self) -> ItemResult {
        self.map_err(|e| ItemFailure::new(e.to_string()))?.into_item_result()
    }
}

/// The op facts of every map. Chunks of 10 keep per-item overhead low while
/// balancing uneven closures.
pub static MAP_INFO: OpInfo = OpInfo {
    name: "map",
    version: 1,
    default_chunk_size: 10,
    summary: "apply a Rust closure to every configuration (API only)",
    input_kind: InputKind::Configs,
};

/// A closure wrapped as an [`Operation`], with a cache identity.
pub struct Map<F> {
    f: F,
    key: serde_json::Value,
}

impl<F, R> Map<F>
where
    F: Fn(Atoms, &mut ItemRng) -> R + Send + Sync,
    R: IntoItemResult,
{
    /// Wraps `f`.
    pub fn new(f: F) -> Map<F> {
        Map { f, key: serde_json::Value::Null }
    }

    /// Sets the cache identity recorded with file outputs (any JSON: a name,
    /// parameters, a version). Outputs written under one key are reused only
    /// by a map with the same key.
    pub fn key(mut self, key: serde_json::Value) -> Map<F> {
        self.key = key;
        self
    }
}

impl<F, R> Operation for Map<F>
where
    F: Fn(Atoms, &mut ItemRng) -> R + Send + Sync,
    R: IntoItemResult,
{
    fn info(&self) -> &'static OpInfo {
        &MAP_INFO
    }

    fn args(&self) -> serde_json::Value {
        serde_json::json!({ "closure": std::any::type_name::<F>(), "key": self.key })
    }

    fn run_chunk(&self, items: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult> {
        items
            .iter()
            .map(|item| {
                let atoms = item.atoms()?.clone();
                let mut rng = ctx.rng(item);
                (self.f)(atoms, &mut rng).into_item_result()
            })
            .collect()
    }
}
