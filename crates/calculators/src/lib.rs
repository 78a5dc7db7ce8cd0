//! autopara calculators: neighbour lists, Lennard-Jones, Morse, EMT and
//! external-command calculators (registered by name with serde specs), and the
//! `calculate` op (single points, wfl's `generic.calculate`).

pub mod neighbours;
