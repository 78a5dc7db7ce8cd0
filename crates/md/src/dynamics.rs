//! The integrators, written as ASE 3.28 writes them (same update formulas, same
//! order of operations) against the [`Calculator`] trait.
//!
//! Units are ASE's: positions Å, momenta amu·Å/(ASE time), masses amu, forces
//! eV/Å, time in ASE units (`dt_fs * units::FS`). The hot loops work on the flat
//! `[f64; 3]` arrays of one [`State`] and reuse its buffers: a step allocates nothing.

use autopara_core::calculator::{CalcError, CalcResults, Calculator, Properties};
use autopara_core::units::KB;
use autopara_core::{Atoms, rng::ItemRng};
use autopara_geometry::vec3::norm2;
use rand_distr::{Distribution, StandardNormal};

/// Why a step did not complete.
#[derive(Debug, Clone, PartialEq)]
pub enum StepError {
    /// The calculator returned an error (other than a non-finite result).
    Calc(CalcError),
    /// Positions, momenta or energy became NaN or infinite.
    NonFinite(&'static str),
}

impl From<CalcError> for StepError {
    fn from(e: CalcError) -> StepError {
        match e {
            CalcError::NonFinite { property, .. } => StepError::NonFinite(property),
            other => StepError::Calc(other),
        }
    }
}

/// The integrated state: the working configuration (positions, cell), momenta,
/// masses and the calculator results at the current positions.
pub struct State {
    /// The configuration; its `positions` and `cell` evolve.
    pub atoms: Atoms,
    /// Masses (amu).
    pub masses: Vec<f64>,
    /// Momenta (amu·Å/ASE time).
    pub momenta: Vec<[f64; 3]>,
    /// Results (forces, energy, ...) at the current positions.
    pub results: CalcResults,
    /// Scratch for random numbers (Langevin), one triple per atom each.
    noise_a: Vec<[f64; 3]>,
    noise_b: Vec<[f64; 3]>,
}

impl State {
    /// A state with the given masses and momenta (one per atom).
    pub fn new(atoms: Atoms, masses: Vec<f64>, momenta: Vec<[f64; 3]>) -> State {
        State { atoms, masses, momenta, results: CalcResults::default(), noise_a: Vec::new(), noise_b: Vec::new() }
    }

    /// Number of atoms.
    pub fn n_atoms(&self) -> usize {
        self.masses.len()
    }

    /// Kinetic energy Σ p²/2m (eV).
    pub fn kinetic_energy(&self) -> f64 {
        self.momenta.iter().zip(&self.masses).map(|(&p, m)| norm2(p) / m).sum::<f64>() * 0.5
    }

    /// Instantaneous temperature 2 E_kin / (3 N k_B), as ASE's `get_temperature`.
    pub fn temperature(&self) -> f64 {
        2.0 * self.kinetic_energy() / (3.0 * self.n_atoms() as f64 * KB)
    }

    /// Runs the calculator at the current positions into `results`.
    pub fn compute(&mut self, calc: &mut dyn Calculator, request: Properties) -> Result<(), StepError> {
        calc.calculate(&self.atoms, request, &mut self.results)?;
        if self.results.forces.len() != self.n_atoms() {
            return Err(StepError::Calc(CalcError::Other(format!(
                "{} returned {} forces for {} atoms",
                calc.name(),
                self.results.forces.len(),
                self.n_atoms()
            ))));
        }
        if !self.results.energy.is_finite() {
            return Err(StepError::NonFinite("energy"));
        }
        Ok(())
    }

    /// `p += h F`.
    fn kick(&mut self, h: f64) {
        for (p, f) in self.momenta.iter_mut().zip(&self.results.forces) {
            kick_atom(p, f, h);
        }
    }

    /// `x += (dt p) / m`, failing when a position becomes non-finite.
    fn drift(&mut self, dt: f64) -> Result<(), StepError> {
        let mut finite = true;
        for ((x, p), &m) in self.atoms.positions.iter_mut().zip(&self.momenta).zip(&self.masses) {
            finite &= drift_atom(x, p, m, dt);
        }
        if finite { Ok(()) } else { Err(StepError::NonFinite("positions")) }
    }

    /// [`State::kick`] by `h` then [`State::drift`] by `dt`, atom by atom in
    /// one pass (velocity Verlet's first half; the same arithmetic as the
    /// two passes, with the momenta read once).
    fn kick_drift(&mut self, h: f64, dt: f64) -> Result<(), StepError> {
        let mut finite = true;
        let atoms = self.atoms.positions.iter_mut().zip(&mut self.momenta);
        for ((x, p), (&m, f)) in atoms.zip(self.masses.iter().zip(&self.results.forces)) {
            kick_atom(p, f, h);
            finite &= drift_atom(x, p, m, dt);
        }
        if finite { Ok(()) } else { Err(StepError::NonFinite("positions")) }
    }

    /// Subtracts the plain mean momentum (ASE's Berendsen `fixcm`, not mass-weighted).
    fn remove_mean_momentum(&mut self) {
        let n = self.n_atoms() as f64;
        let mut s = [0.0; 3];
        for p in &self.momenta {
            for k in 0..3 {
                s[k] += p[k];
            }
        }
        for p in &mut self.momenta {
            for k in 0..3 {
                p[k] -= s[k] / n;
            }
        }
    }

    /// Scales momenta so the temperature is exactly `t` (K): ASE's `force_temperature`.
    pub fn force_temperature(&mut self, t: f64) {
        let current = self.temperature();
        let scale = if t > 1e-12 && current > 0.0 { (t / current).sqrt() } else { 0.0 };
        for p in &mut self.momenta {
            for x in p.iter_mut() {
                *x *= scale;
            }
        }
    }

    /// Maxwell-Boltzmann momenta at `t` (K) scaled to exactly `t`, then zero total
    /// momentum keeping the temperature: ASE's `MaxwellBoltzmannDistribution(force_temp=True)`
    /// followed by `Stationary(preserve_temperature=True)`.
    pub fn maxwell_boltzmann(&mut self, t: f64, rng: &mut ItemRng) {
        let kt = KB * t;
        for (p, m) in self.momenta.iter_mut().zip(&self.masses) {
            let s = (m * kt).sqrt();
            for x in p.iter_mut() {
                let xi: f64 = StandardNormal.sample(rng);
                *x = xi * s;
            }
        }
        self.force_temperature(t);
        let t0 = self.temperature();
        let mtot: f64 = self.masses.iter().sum();
        let mut ptot = [0.0; 3];
        for p in &self.momenta {
            for k in 0..3 {
                ptot[k] += p[k];
            }
        }
        for (p, m) in self.momenta.iter_mut().zip(&self.masses) {
            for k in 0..3 {
                p[k] -= ptot[k] / mtot * m;
            }
        }
        self.force_temperature(t0);
    }

    /// Instantaneous pressure including the ideal-gas term (eV/Å³), as ASE's
    /// `-trace(get_stress(include_ideal_gas=True)) / 3`.
    pub fn pressure(&self) -> f64 {
        let s = &self.results.stress;
        -(s[0] + s[1] + s[2]) / 3.0 + 2.0 * self.kinetic_energy() / (3.0 * self.atoms.volume())
    }

    /// Scales cell and positions by `mu` (ASE's `set_cell(mu * cell, scale_atoms=True)`).
    pub fn scale_cell(&mut self, mu: f64) {
        for row in &mut self.atoms.cell {
            for x in row.iter_mut() {
                *x *= mu;
            }
        }
        for x in &mut self.atoms.positions {
            for c in x.iter_mut() {
                *c *= mu;
            }
        }
    }
}

/// One atom's `p += h F`.
#[inline(always)]
fn kick_atom(p: &mut [f64; 3], f: &[f64; 3], h: f64) {
    for k in 0..3 {
        p[k] += h * f[k];
    }
}

/// One atom's `x += (dt p) / m`; whether the position is still finite
/// (tested per coordinate, without a sum whose additions would chain).
#[inline(always)]
fn drift_atom(x: &mut [f64; 3], p: &[f64; 3], m: f64, dt: f64) -> bool {
    for k in 0..3 {
        x[k] += dt * p[k] / m;
    }
    x[0].is_finite() & x[1].is_finite() & x[2].is_finite()
}

/// Langevin coefficients (ASE's `Langevin.updatevars`); `c3`, `c5` per atom.
pub struct LangevinCoefficients {
    c1: f64,
    c2: f64,
    c3: Vec<f64>,
    c4: Vec<f64>,
    c5: Vec<f64>,
}

impl LangevinCoefficients {
    /// Coefficients for time step `dt`, temperature `t` (K) and friction `fr` (1/ASE time).
    pub fn new(dt: f64, t: f64, fr: f64, masses: &[f64]) -> LangevinCoefficients {
        let kt = KB * t;
        let sigma: Vec<f64> = masses.iter().map(|m| (2.0 * kt * fr / m).sqrt()).collect();
        let c5: Vec<f64> = sigma.iter().map(|s| dt.powf(1.5) * s / (2.0 * 3f64.sqrt())).collect();
        LangevinCoefficients {
            c1: dt / 2.0 - dt * dt * fr / 8.0,
            c2: dt * fr / 2.0 - dt * dt * fr * fr / 8.0,
            c3: sigma.iter().map(|s| dt.sqrt() * s / 2.0 - dt.powf(1.5) * fr * s / 8.0).collect(),
            c4: c5.iter().map(|c| fr / 2.0 * c).collect(),
            c5,
        }
    }
}

/// One stage's integrator.
pub enum Propagator {
    /// ASE's `VelocityVerlet` (NVE).
    VelocityVerlet,
    /// ASE's `NVTBerendsen` (fixcm=True).
    NvtBerendsen {
        /// Target temperature (K).
        temperature: f64,
        /// Coupling time (ASE time units).
        taut: f64,
    },
    /// ASE's `NPTBerendsen` (isotropic, fixcm=True).
    NptBerendsen {
        /// Target temperature (K).
        temperature: f64,
        /// Temperature coupling time (ASE time units).
        taut: f64,
        /// Target pressure (eV/Å³).
        pressure: f64,
        /// Pressure coupling time (ASE time units).
        taup: f64,
        /// Compressibility (Å³/eV).
        compressibility: f64,
    },
    /// ASE's `Langevin` (fixcm=True, its default).
    Langevin(LangevinCoefficients),
    /// ASE's `LangevinBAOAB` at fixed cell; `gamma = 0` is NVE.
    Baoab {
        /// Friction 1/T_tau (1/ASE time), 0 without thermostat.
        gamma: f64,
        /// Noise amplitude per sqrt(mass): `sqrt(kT) sqrt(1 - exp(-2 gamma dt))`.
        prefactor: f64,
    },
}

impl Propagator {
    /// ASE's `LangevinBAOAB` parameters for friction time `t_tau` (None: NVE) at `t` K.
    pub fn baoab(dt: f64, temperature: Option<f64>, t_tau: Option<f64>) -> Propagator {
        match (temperature, t_tau) {
            (Some(t), Some(tau)) => {
                let gamma = 1.0 / tau;
                let sigma = (2.0 * gamma * KB * t).sqrt();
                let prefactor = sigma / (2.0 * gamma).sqrt() * (1.0 - (-2.0 * gamma * dt).exp()).sqrt();
                Propagator::Baoab { gamma, prefactor }
            }
            _ => Propagator::Baoab { gamma: 0.0, prefactor: 0.0 },
        }
    }

    /// Advances `state` by one step of `dt`; `state.results` ends at the new positions,
    /// computed with `request` (which must include forces).
    pub fn step(
        &self,
        state: &mut State,
        dt: f64,
        calc: &mut dyn Calculator,
        request: Properties,
        rng: &mut ItemRng,
    ) -> Result<(), StepError> {
        match self {
            Propagator::VelocityVerlet => {
                state.kick_drift(0.5 * dt, dt)?;
                state.compute(calc, request)?;
                state.kick(0.5 * dt);
            }
            Propagator::NvtBerendsen { temperature, taut } => {
                berendsen_scale_velocities(state, *temperature, dt / taut);
                berendsen_verlet(state, dt, calc, request)?;
            }
            Propagator::NptBerendsen { temperature, taut, pressure, taup, compressibility } => {
                berendsen_scale_velocities(state, *temperature, dt / taut);
                let mu = 1.0 - dt / taup * compressibility / 3.0 * (pressure - state.pressure());
                state.scale_cell(mu);
                // ASE recomputes the forces after rescaling the cell (its step gets no forces).
                state.compute(calc, Properties::ENERGY_FORCES)?;
                berendsen_verlet(state, dt, calc, request)?;
            }
            Propagator::Langevin(c) => langevin_step(state, c, dt, calc, request, rng)?,
            Propagator::Baoab { gamma, prefactor } => {
                state.kick(0.5 * dt);
                state.drift(0.5 * dt)?;
                if *gamma > 0.0 {
                    let decay = (-gamma * dt).exp();
                    for (p, m) in state.momenta.iter_mut().zip(&state.masses) {
                        let s = prefactor * m.sqrt();
                        for x in p.iter_mut() {
                            let n: f64 = StandardNormal.sample(rng);
                            *x = *x * decay + s * n;
                        }
                    }
                }
                state.drift(0.5 * dt)?;
                state.compute(calc, request)?;
                state.kick(0.5 * dt);
            }
        }
        Ok(())
    }
}

/// ASE's `NVTBerendsen.scale_velocities` (scaling limited to [0.9, 1.1]).
fn berendsen_scale_velocities(state: &mut State, target: f64, dt_over_tau: f64) {
    let old = state.temperature();
    let scale = if old > 0.0 { (1.0 + (target / old - 1.0) * dt_over_tau).sqrt().clamp(0.9, 1.1) } else { 1.1 };
    for p in &mut state.momenta {
        for x in p.iter_mut() {
            *x *= scale;
        }
    }
}

/// The velocity-Verlet part of ASE's Berendsen steps (with fixcm's mean-momentum removal).
fn berendsen_verlet(
    state: &mut State,
    dt: f64,
    calc: &mut dyn Calculator,
    request: Properties,
) -> Result<(), StepError> {
    state.kick(0.5 * dt);
    state.remove_mean_momentum();
    state.drift(dt)?;
    state.compute(calc, request)?;
    state.kick(0.5 * dt);
    Ok(())
}

/// ASE 3.28's `Langevin.step` with `fixcm=True`.
fn langevin_step(
    state: &mut State,
    c: &LangevinCoefficients,
    dt: f64,
    calc: &mut dyn Calculator,
    request: Properties,
    rng: &mut ItemRng,
) -> Result<(), StepError> {
    let n = state.n_atoms();
    state.noise_a.resize(n, [0.0; 3]);
    state.noise_b.resize(n, [0.0; 3]);
    // xi then eta, as ASE draws them.
    for v in state.noise_a.iter_mut().chain(state.noise_b.iter_mut()) {
        for x in v.iter_mut() {
            *x = StandardNormal.sample(rng);
        }
    }
    // rnd_pos = c5 eta (in noise_b), rnd_vel = c3 xi - c4 eta (in noise_a).
    let mut pos_sum = [0.0; 3];
    let mut mom_sum = [0.0; 3];
    for i in 0..n {
        let (xi, eta) = (&mut state.noise_a[i], &mut state.noise_b[i]);
        for k in 0..3 {
            let e = eta[k];
            eta[k] = c.c5[i] * e;
            xi[k] = c.c3[i] * xi[k] - c.c4[i] * e;
            pos_sum[k] += eta[k];
            mom_sum[k] += xi[k] * state.masses[i];
        }
    }
    let nf = n as f64;
    // ASE's factor is infinite for one atom, whose noise the centring removes anyway.
    let factor = if n > 1 { (nf / (nf - 1.0)).sqrt() } else { 1.0 };
    for i in 0..n {
        let m = state.masses[i];
        for k in 0..3 {
            state.noise_b[i][k] = (state.noise_b[i][k] - pos_sum[k] / nf) * factor;
            state.noise_a[i][k] = (state.noise_a[i][k] - mom_sum[k] / (m * nf)) * factor;
        }
    }
    // Velocities v = p/m; v += c1 F/m - c2 v + rnd_vel; x += dt v + rnd_pos. The
    // momenta array holds v until the second half update turns it back into p.
    let mut sum = 0.0;
    for i in 0..n {
        let m = state.masses[i];
        let (p, f, x) = (&mut state.momenta[i], &state.results.forces[i], &mut state.atoms.positions[i]);
        for k in 0..3 {
            let mut v = p[k] / m;
            v += c.c1 * f[k] / m - c.c2 * v + state.noise_a[i][k];
            x[k] += dt * v + state.noise_b[i][k];
            sum += x[k];
            p[k] = v;
        }
    }
    if !sum.is_finite() {
        return Err(StepError::NonFinite("positions"));
    }
    state.compute(calc, request)?;
    for i in 0..n {
        let m = state.masses[i];
        let (p, f) = (&mut state.momenta[i], &state.results.forces[i]);
        for k in 0..3 {
            let mut v = p[k];
            v += c.c1 * f[k] / m - c.c2 * v + state.noise_a[i][k];
            p[k] = v * m;
        }
    }
    Ok(())
}
