//! autopara core: the data model ([`Atoms`]), extxyz I/O, inputs
//! ([`ConfigSet`]) and outputs ([`OutputSpec`]), the [`Operation`] trait and
//! its registry, the calculator seam, reproducible per-item randomness, the
//! executor, and argument forms shared with wfl ([`wfl_args`]).
//!
//! See `docs/` in the repository for the user guide.

pub mod atoms;
pub mod autopara_info;
pub mod cache;
pub mod calculator;
pub mod configset;
pub mod elements;
pub mod error;
pub mod executor;
pub mod extxyz;
pub mod map;
pub mod operation;
pub mod outputspec;
pub mod registry;
pub mod results;
pub mod rng;
pub mod runner;
pub mod units;
pub mod wfl_args;

pub use atoms::{ArrayData, Atoms, Column, Value};
pub use autopara_info::AutoparaInfo;
pub use calculator::{CalcError, CalcResults, Calculator, CalculatorInfo, CalculatorSpec, Properties};
pub use configset::ConfigSet;
pub use error::{Error, Result};
pub use operation::{InputKind, Item, ItemFailure, ItemResult, Location, OpInfo, Operation, Payload, WorkerContext};
pub use outputspec::OutputSpec;
pub use registry::{OpRegistration, build_op, find_op, parse_args, registered_ops};

// Re-exported so op crates register without naming these crates themselves.
pub use inventory;
pub use typetag;
