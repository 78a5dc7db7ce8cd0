//! Physical units in ASE's system (eV, Å, amu; time in Å·sqrt(amu/eV)).
//!
//! The values equal `ase.units` (CODATA 2014, ASE's default) to the last digit,
//! so integrators and thermostats agree with ASE bit for bit where the
//! arithmetic does.

/// One femtosecond in ASE time units (`ase.units.fs`).
pub const FS: f64 = 0.09822694788464063;
/// One gigapascal in eV/Å³ (`ase.units.GPa`).
pub const GPA: f64 = 0.006241509125883258;
/// One bar in eV/Å³ (`ase.units.bar`).
pub const BAR: f64 = 6.241509125883258e-07;
/// Boltzmann's constant in eV/K (`ase.units.kB`).
pub const KB: f64 = 8.617330337217213e-05;
