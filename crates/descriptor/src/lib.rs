//! autopara's `descriptor` op: SOAP and ACSF descriptors equal to dscribe
//! 2.1.2's, stored as wfl's `descriptors.calculate` stores them.
//!
//! ```
//! use autopara_core::{Atoms, ItemOp};
//! use autopara_descriptor::DescriptorOp;
//! let op = DescriptorOp::from_json(serde_json::json!({
//!     "descriptor": {"type": "soap", "species": ["Cu"], "r_cut": 4.0, "n_max": 4, "l_max": 3,
//!                    "sigma": 0.5, "periodic": true, "average": "inner"},
//!     "key": "soap", "per_atom": false,
//! })).unwrap();
//! let mut at = Atoms::new(vec![29; 4], vec![[0.0; 3], [1.8, 1.8, 0.0], [1.8, 0.0, 1.8], [0.0, 1.8, 1.8]]);
//! at.cell = [[3.6, 0.0, 0.0], [0.0, 3.6, 0.0], [0.0, 0.0, 3.6]];
//! at.pbc = [true; 3];
//! op.apply(&mut at).unwrap();
//! let v = at.info["soap"].to_f64_vec().unwrap();
//! assert_eq!(v.len(), 4 * 5 / 2 * 4);
//! assert!((v.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12); // L2-normalised
//! ```
//!
//! Descriptors are serde specs tagged by `"type"` ([`DescriptorSpec`]) with
//! dscribe's field names; a crate adds one by implementing the trait with
//! `#[typetag::serde(name = "...")]` and submitting a [`DescriptorInfo`]
//! (see [`spec`]).

pub mod acsf;
pub mod error;
mod harmonics;
mod neighbours;
pub mod op;
pub mod soap;
pub mod spec;

pub use acsf::{Acsf, AcsfSpec};
pub use error::DescriptorError;
pub use neighbours::Lists;
pub use op::{DescriptorArgs, DescriptorOp, DescriptorSet};
pub use soap::{Average, Soap, SoapSpec};
pub use spec::{
    Descriptor, DescriptorInfo, DescriptorSpec, Species, parse_spec, registered_descriptors, spec_from_json,
};
