//! autopara core: the data model, the op kit and the engine that runs ops.
//!
//! # For op authors
//!
//! `use autopara_core::prelude::*;` brings what an op needs: [`Atoms`] and
//! its values, [`ItemOp`] (the kit), [`ArgError`], the item and
//! [`WorkerContext`] types, and the calculator seam. Beyond the prelude an op
//! may use the modules [`kit`], [`args`], [`calculator`], [`results`], [`rng`],
//! [`units`], [`elements`], [`wfl_args`] and [`extxyz`] (to hand frames to an
//! external program) (ARCHITECTURE.md, rule 3; the
//! test `tests/architecture.rs` checks it). `docs/writing-an-op.md` opens with
//! a complete op.
//!
//! # The engine (for the CLI, backends and the Python package)
//!
//! Inputs [`configset`], outputs [`outputspec`], run settings
//! [`autopara_info`], the op [`registry`], the [`executor`] and its backends,
//! the content-keyed [`cache`] with the files it keeps beside an output
//! ([`sidecar`]), the [`runner`] that prepares and carries out a run, closure
//! maps ([`map`]). Modules form layers: none imports one
//! that imports it back.
//!
//! See `docs/` in the repository for the user guide.

pub mod args;
pub mod atoms;
pub mod autopara_info;
pub mod cache;
pub mod calculator;
pub mod configset;
pub mod elements;
pub mod error;
pub mod executor;
pub mod extxyz;
pub mod kit;
pub mod map;
pub mod operation;
pub mod outputspec;
pub mod registry;
pub mod results;
pub mod rng;
pub mod runner;
pub mod sidecar;
pub mod units;
pub mod wfl_args;

pub use args::ArgError;
pub use atoms::{ArrayData, Atoms, Column, Value};
pub use autopara_info::AutoparaInfo;
pub use calculator::{CalcError, CalcResults, Calculator, CalculatorInfo, CalculatorSpec, Properties};
pub use configset::ConfigSet;
pub use error::{Error, Result};
pub use kit::{ItemOp, KitOp};
pub use operation::{InputKind, Item, ItemFailure, ItemResult, Location, OpInfo, Operation, Payload, WorkerContext};
pub use outputspec::OutputSpec;
pub use registry::{OpRegistration, build_op, find_op, registered_ops};

/// What an op crate needs, in one import: `use autopara_core::prelude::*;`.
pub mod prelude {
    pub use crate::args::ArgError;
    pub use crate::atoms::{ArrayData, Atoms, Column, Value};
    pub use crate::calculator::{CalcError, CalcResults, Calculator, CalculatorSpec, Properties};
    pub use crate::kit::ItemOp;
    pub use crate::operation::{InputKind, Item, ItemFailure, ItemResult, Location, OpInfo, WorkerContext};
}

// Re-exported so op crates register without naming these crates themselves.
pub use inventory;
pub use typetag;
