//! Inputs and op constructors shared by the buildcell test suites.
#![allow(dead_code)] // each test binary uses a subset

use autopara_buildcell::{Buildcell, BuildcellArgs};
use autopara_core::KitOp;

/// wfl's `tests/test_buildcell.py` input, verbatim.
pub const LI: &str = "#TARGVOL=19-21
#SPECIES=Li%NUM=1
#NFORM={6,8,10,12,14,16,18,20,22,24}
#SYMMOPS=1-8
#SLACK=0.25
#OVERLAP=0.1
#COMPACT
#MINSEP=0.5 Li-Li=2.7
##EXTRA_INFO RSS_min_vol_per_atom=10.0";

/// The op on the input `text` with default arguments but `max_attempts`.
pub fn op_for_input(text: &str, max_attempts: usize) -> KitOp<Buildcell> {
    KitOp::new(BuildcellArgs {
        buildcell_input: Some(text.to_string()),
        buildcell_input_file: None,
        perturbation: 0.0,
        extra_info: Default::default(),
        skip_failures: true,
        symprec: 0.01,
        max_attempts,
    })
    .expect("valid buildcell input")
}
