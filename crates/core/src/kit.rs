//! The op kit: write an op as typed arguments, static facts, a validating
//! constructor and a per-item function; [`KitOp`] turns that into an
//! [`Operation`] and [`register_op!`](crate::register_op) registers it.
//!
//! ```
//! use autopara_core::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! /// Arguments: serde, unknown fields refused.
//! #[derive(Debug, Serialize, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct ShiftArgs {
//!     /// Added to every x coordinate (Å).
//!     pub dx: f64,
//! }
//!
//! /// The op: what `new` validated and prepared.
//! pub struct Shift {
//!     args: ShiftArgs,
//! }
//!
//! impl ItemOp for Shift {
//!     type Args = ShiftArgs;
//!     const INFO: &'static OpInfo = &OpInfo {
//!         name: "shift_doc",
//!         version: 1,
//!         default_chunk_size: 10,
//!         summary: "moves every atom along x",
//!         input_kind: InputKind::Configs,
//!     };
//!
//!     fn new(args: ShiftArgs) -> Result<Shift, ArgError> {
//!         if !args.dx.is_finite() {
//!             return Err(ArgError::new("dx", "must be finite"));
//!         }
//!         Ok(Shift { args })
//!     }
//!
//!     fn args(&self) -> &ShiftArgs {
//!         &self.args
//!     }
//!
//!     fn run_item(&self, item: &Item, _ctx: &mut WorkerContext) -> ItemResult {
//!         let mut atoms = item.atoms()?.clone();
//!         atoms.positions.iter_mut().for_each(|p| p[0] += self.args.dx);
//!         Ok(vec![atoms])
//!     }
//! }
//!
//! autopara_core::register_op!(Shift);
//!
//! let op = autopara_core::build_op("shift_doc", serde_json::json!({"dx": 0.5})).unwrap();
//! assert_eq!(op.args(), serde_json::json!({"dx": 0.5}));
//! let err = autopara_core::build_op("shift_doc", serde_json::json!({"dx": "far"})).err().unwrap();
//! assert_eq!(err.to_string(), "shift_doc: dx: invalid type: string \"far\", expected f64");
//! ```
//!
//! Argument errors ([`ArgError`]) carry a field path that composes: a
//! calculator field parsed with [`calculator::deserialize`](crate::calculator::deserialize)
//! (or any [`nested`](crate::args::nested) parser) reports `calculator.sigma`,
//! and [`ArgError::within`] prefixes a path for values validated by hand.

use crate::args::{ArgError, parse};
use crate::error::Result;
use crate::operation::{Item, ItemResult, OpInfo, Operation, WorkerContext};
use crate::registry::OpRegistration;
use crate::wfl_args::Ignored;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use std::fmt;

/// An op written with the kit: typed arguments, static facts, a validating
/// constructor and a function of one item. See the [module docs](self).
pub trait ItemOp: Send + Sync + Sized + 'static {
    /// The arguments as JSON/TOML give them (`#[serde(deny_unknown_fields)]`);
    /// serialized, with defaults filled in, they are the op's canonical
    /// arguments and part of every cache key.
    type Args: DeserializeOwned + Serialize;

    /// Name, version, default chunk size, summary, input kind.
    const INFO: &'static OpInfo;

    /// wfl arguments the op accepts and ignores (`verbose`, md's
    /// `logger_interval`): [`KitOp::from_json`] removes them before parsing,
    /// with a notice ([`drop_ignored`](crate::wfl_args::drop_ignored)), so they
    /// change neither the outputs nor the canonical arguments.
    const WFL_IGNORED: &'static [Ignored] = &[];

    /// Validates the arguments and prepares the op; errors name the field.
    fn new(args: Self::Args) -> Result<Self, ArgError>;

    /// The arguments the op was built from.
    fn args(&self) -> &Self::Args;

    /// Computes one item: zero, one or many configurations, or a failure.
    /// Per-worker state (calculators, buffers) lives in `ctx`.
    fn run_item(&self, item: &Item, ctx: &mut WorkerContext) -> ItemResult;

    /// Parses, validates and builds the op from JSON arguments, as the
    /// registry does (errors read `op: field.path: message`).
    fn from_json(value: Json) -> Result<KitOp<Self>> {
        KitOp::from_json(value)
    }
}

/// An [`ItemOp`] as an [`Operation`]: parsed with field paths, canonical
/// arguments computed once, chunks run item by item.
pub struct KitOp<O> {
    op: O,
    canonical: Json,
}

impl<O: ItemOp> KitOp<O> {
    /// Parses and validates `value` as `O`'s arguments and builds the op.
    pub fn from_json(mut value: Json) -> Result<KitOp<O>> {
        crate::wfl_args::drop_ignored(O::INFO.name, &mut value, O::WFL_IGNORED);
        let args = parse::<O::Args>(value).map_err(|e| e.in_context(O::INFO.name))?;
        KitOp::new(args)
    }

    /// Builds the op from typed arguments.
    pub fn new(args: O::Args) -> Result<KitOp<O>> {
        let op = O::new(args).map_err(|e| e.in_context(O::INFO.name))?;
        let canonical =
            serde_json::to_value(op.args()).map_err(|e| ArgError::whole(e.to_string()).in_context(O::INFO.name))?;
        Ok(KitOp { op, canonical })
    }

    /// The op itself.
    pub fn inner(&self) -> &O {
        &self.op
    }

    /// The registry's constructor for `O`.
    pub fn build(value: Json) -> Result<Box<dyn Operation>> {
        Ok(Box::new(KitOp::<O>::from_json(value)?))
    }
}

/// The op itself, for its own methods (`op.apply(...)`).
impl<O> std::ops::Deref for KitOp<O> {
    type Target = O;
    fn deref(&self) -> &O {
        &self.op
    }
}

impl<O> fmt::Debug for KitOp<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KitOp").field("args", &self.canonical).finish_non_exhaustive()
    }
}

impl<O: ItemOp> Operation for KitOp<O> {
    fn info(&self) -> &'static OpInfo {
        O::INFO
    }

    fn args(&self) -> Json {
        self.canonical.clone()
    }

    fn run_chunk(&self, items: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult> {
        items.iter().map(|item| self.op.run_item(item, ctx)).collect()
    }
}

impl OpRegistration {
    /// The registration of a kit op (what [`register_op!`](crate::register_op) submits).
    pub const fn of<O: ItemOp>() -> OpRegistration {
        OpRegistration { info: O::INFO, build: KitOp::<O>::build }
    }
}

/// Registers an [`ItemOp`] by name, so the CLI, pipelines and remote workers
/// find it: `autopara_core::register_op!(MyOp);`.
#[macro_export]
macro_rules! register_op {
    ($op:ty) => {
        $crate::inventory::submit! { $crate::OpRegistration::of::<$op>() }
    };
}
