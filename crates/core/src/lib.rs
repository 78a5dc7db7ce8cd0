//! autopara core: the data model ([`Atoms`]), extxyz I/O, inputs
//! ([`ConfigSet`]) and outputs ([`OutputSpec`]), the [`Operation`] trait and
//! its registry, the calculator seam, reproducible per-item randomness, the
//! executor, and argument forms shared with wfl ([`wfl_args`]).
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
