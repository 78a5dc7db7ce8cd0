//! One trajectory, as wfl's `md` runs it: initial velocities, pressure
//! sampling, temperature stages with a fresh integrator each, frames saved every
//! `traj_step_interval` steps with the MD info keys and calculator results, abort
//! checks at saved frames, and the final configuration appended when it was
//! not saved.

use crate::abort::AbortState;
use crate::args::{Integrator, MdArgs};
use crate::dynamics::{LangevinCoefficients, Propagator, State, StepError};
use crate::error::MdError;
use crate::stages::{Stage, frame_count, stages, total_steps};
use autopara_core::calculator::{Calculator, Properties};
use autopara_core::results::store_results;
use autopara_core::rng::ItemRng;
use autopara_core::units::{FS, GPA};
use autopara_core::{Atoms, Column, Value};
use autopara_geometry::cell;

/// Info key with the stage's thermostat target (K).
pub const KEY_TEMPERATURE: &str = "MD_temperature_K";
/// Info key with the sampled pressure (GPa).
pub const KEY_PRESSURE: &str = "MD_pressure_GPa";
/// Info key set on the last frame of a trajectory stopped early under
/// `skip_failures` (an abort check or a calculator error), saying why.
pub const KEY_STOPPED: &str = "MD_stopped";

/// Kinetic temperature (K) above which a trajectory has left any sensible
/// range and fails (kT = 8.6 keV per atom): 100 times the highest temperature
/// the arguments accept, so that a thermostatted run never reaches it, while a
/// blown-up integration (atoms flung to 1e100 Å with finite numbers) is caught
/// within a few steps of going wrong.
pub(crate) const MAX_KINETIC_TEMPERATURE_K: f64 = 100.0 * crate::args::MAX_TEMPERATURE_K;

/// Most memory the saved frames of one trajectory may take: they are kept
/// until the item ends, so a trajectory that would keep more fails before its
/// first step instead of exhausting memory hours later.
pub(crate) const MAX_TRAJECTORY_BYTES: u64 = 4 << 30;

/// Memory a saved frame of `atoms` atoms takes, rounded up (about 1.9 KB for
/// 2 atoms and 22 KB for 256 measured: info, results and per-atom arrays).
fn frame_bytes(atoms: usize) -> u64 {
    2048 + 96 * atoms as u64
}

/// Runs one trajectory of `atoms` and returns its saved frames.
pub fn trajectory(
    args: &MdArgs,
    atoms: &Atoms,
    calc: &mut dyn Calculator,
    rng: &mut ItemRng,
) -> Result<Vec<Atoms>, MdError> {
    let stages = stages(args);
    let interval = args.traj_step_interval;
    let kept = frame_count(&stages, interval);
    let bytes = kept.saturating_mul(frame_bytes(atoms.len()));
    if bytes > MAX_TRAJECTORY_BYTES {
        return Err(MdError::TooManyFrames { frames: kept, atoms: atoms.len(), bytes, limit: MAX_TRAJECTORY_BYTES });
    }
    let mut state = initial_state(atoms)?;
    let dt = args.dt * FS;
    // The one test for a cell with a volume (the calculators give stress only then).
    let has_cell = cell::has_volume(&state.atoms.cell);

    let mut npt = None;
    if let Some(p) = &args.pressure {
        if !has_cell {
            return Err(MdError::config("cell", "pressure needs a configuration with a 3-D cell"));
        }
        let p_gpa = p.sample("pressure", &state.atoms, rng)?;
        state.atoms.info.insert(KEY_PRESSURE.into(), Value::Float(p_gpa));
        let compressibility = match args.compressibility_au {
            Some(c) => c,
            None => estimate_compressibility(&state.atoms, calc, args.compressibility_fd_displ)?,
        };
        npt = Some((p_gpa * GPA, compressibility));
    }
    if let Some(t) = args.temperature.as_ref().and_then(|t| t.initial()) {
        state.maxwell_boltzmann(t, rng);
    }

    let total = total_steps(&stages);
    let sample_request = Properties { energy: true, forces: true, stress: has_cell, energies: true };
    let step_request = Properties { stress: npt.is_some(), ..Properties::ENERGY_FORCES };
    let capacity = usize::try_from(kept).unwrap_or(usize::MAX).min(1 << 16);
    let mut frames: Vec<Atoms> = Vec::with_capacity(capacity);
    let mut abort = args.abort_check.clone().map(AbortState::new).transpose()?;

    state.compute(calc, sample_request).map_err(|e| step_error(e, 0))?;
    let mut step = 0u64;
    let mut stopped = None;
    'stages: for (stage_i, stage) in stages.iter().enumerate() {
        if let Some(t) = stage.temperature {
            state.atoms.info.insert(KEY_TEMPERATURE.into(), Value::Float(t));
        }
        let propagator = propagator(args, stage, npt, dt, &state.masses);
        if stage_i == 0 {
            frames.push(frame(&state, 0, args));
            if let Some(why) = check_abort(&mut abort, &state, 0, args)? {
                stopped = Some(why);
                break 'stages;
            }
        }
        for _ in 0..stage.steps {
            let next = step + 1;
            let request = if next.is_multiple_of(interval) || next == total { sample_request } else { step_request };
            if let Err(e) = propagator.step(&mut state, dt, calc, request, rng) {
                match (e, args.skip_failures) {
                    (StepError::Calc(source), true) => {
                        stopped = Some(format!("calculator failed at step {next}: {source}"));
                        break 'stages;
                    }
                    (e, _) => return Err(step_error(e, next)),
                }
            }
            step = next;
            let temperature = state.temperature();
            if temperature > MAX_KINETIC_TEMPERATURE_K {
                return Err(MdError::OutOfRange { step, temperature, limit: MAX_KINETIC_TEMPERATURE_K });
            }
            if step.is_multiple_of(interval) {
                frames.push(frame(&state, step, args));
                if let Some(why) = check_abort(&mut abort, &state, step, args)? {
                    stopped = Some(why);
                    break 'stages;
                }
            }
        }
    }

    match (stopped, frames.last_mut()) {
        (Some(why), Some(last)) => {
            last.info.insert(KEY_STOPPED.into(), Value::Str(why));
        }
        _ => {
            let unsaved = frames
                .last()
                .is_none_or(|last| last.positions != state.atoms.positions || last.cell != state.atoms.cell);
            if unsaved {
                frames.push(frame(&state, step, args));
            }
        }
    }
    for f in &mut frames {
        args.update_config_type.apply(f, "MD");
    }
    Ok(frames)
}

/// Masses from a `masses` column (else standard masses) and momenta from a
/// `momenta` column (else zero), checked against the number of atoms.
fn initial_state(atoms: &Atoms) -> Result<State, MdError> {
    let n = atoms.len();
    if n == 0 {
        return Err(MdError::config("numbers", "the configuration has no atoms"));
    }
    if let Some(col) = atoms.arrays.get("masses")
        && (col.width != 1 || col.rows() != n || col.data.to_f64_vec().is_none())
    {
        return Err(MdError::config("masses", format!("expected one number per atom ({n}), got width {}", col.width)));
    }
    let masses = atoms.masses();
    if let Some((i, m)) = masses.iter().enumerate().find(|(_, m)| !(m.is_finite() && **m > 0.0)) {
        return Err(MdError::config("masses", format!("atom {i} has mass {m}; masses must be positive")));
    }
    let momenta = match atoms.arrays.get("momenta") {
        None => vec![[0.0; 3]; n],
        Some(col) => col
            .as_vec3()
            .filter(|p| p.len() == n && p.iter().flatten().all(|x| x.is_finite()))
            .ok_or_else(|| MdError::config("momenta", format!("expected {n} finite 3-vectors")))?,
    };
    let mut work = atoms.clone();
    work.arrays.shift_remove("momenta");
    Ok(State::new(work, masses, momenta))
}

/// The integrator of one stage (wfl's selection table).
fn propagator(args: &MdArgs, stage: &Stage, npt: Option<(f64, f64)>, dt: f64, masses: &[f64]) -> Propagator {
    let tau = args.temperature_tau.map(|t| t * FS);
    match (args.integrator, tau, stage.temperature) {
        (Integrator::LangevinBaoab, _, t) => Propagator::baoab(dt, t, tau),
        (Integrator::Langevin, Some(tau), Some(t)) => {
            Propagator::Langevin(LangevinCoefficients::new(dt, t, 1.0 / tau, masses))
        }
        (Integrator::Berendsen, Some(taut), Some(temperature)) => match npt {
            Some((pressure, compressibility)) => Propagator::NptBerendsen {
                temperature,
                taut,
                pressure,
                taup: args.pressure_tau.map(|t| t * FS).unwrap_or(3.0 * taut),
                compressibility,
            },
            None => Propagator::NvtBerendsen { temperature, taut },
        },
        _ => Propagator::VelocityVerlet,
    }
}

/// A saved frame: the configuration with the MD info keys, momenta and results.
fn frame(state: &State, step: u64, args: &MdArgs) -> Atoms {
    let mut f = state.atoms.clone();
    f.info.insert("MD_time_fs".into(), Value::Float(step as f64 * args.dt));
    f.info.insert("MD_step".into(), Value::Int(i64::try_from(step).unwrap_or(i64::MAX)));
    f.info.insert("MD_current_temperature".into(), Value::Float(state.temperature()));
    f.arrays.insert("momenta".into(), Column::vec3(&state.momenta));
    store_results(&mut f, &args.results_prefix, &state.results);
    f
}

/// Runs the abort check at a saved frame: `Some(reason)` to stop (with
/// `skip_failures`), an error without it; also fails on non-finite momenta.
fn check_abort(
    abort: &mut Option<AbortState>,
    state: &State,
    step: u64,
    args: &MdArgs,
) -> Result<Option<String>, MdError> {
    if !state.temperature().is_finite() {
        return Err(MdError::BlowUp { step, quantity: "momenta" });
    }
    let Some(a) = abort else { return Ok(None) };
    if !a.stop(state) {
        return Ok(None);
    }
    if args.skip_failures {
        Ok(Some(format!("abort check {} fired at step {step}", a.name())))
    } else {
        Err(MdError::Aborted { check: a.name(), step })
    }
}

fn step_error(e: StepError, step: u64) -> MdError {
    match e {
        StepError::Calc(source) => MdError::Calculator { step, source },
        StepError::NonFinite(quantity) => MdError::BlowUp { step, quantity },
    }
}

/// wfl's finite-difference compressibility: `V / ((E+ + E- - 2 E0) / d²)` with the
/// cell (and positions) scaled by `1 ± d`.
fn estimate_compressibility(atoms: &Atoms, calc: &mut dyn Calculator, d: f64) -> Result<f64, MdError> {
    let mut work = atoms.clone();
    let mut res = autopara_core::CalcResults::default();
    let mut energy_at = |scale: f64, work: &mut Atoms| {
        for (w, a) in work.cell.iter_mut().zip(&atoms.cell) {
            *w = a.map(|x| x * scale);
        }
        for (w, a) in work.positions.iter_mut().zip(&atoms.positions) {
            *w = a.map(|x| x * scale);
        }
        calc.calculate(work, Properties { energy: true, ..Properties::default() }, &mut res)
            .map(|()| res.energy)
            .map_err(|source| MdError::Calculator { step: 0, source })
    };
    let e0 = energy_at(1.0, &mut work)?;
    let ep = energy_at(1.0 + d, &mut work)?;
    let em = energy_at(1.0 - d, &mut work)?;
    let curvature = (ep + em - 2.0 * e0) / (d * d);
    let c = atoms.volume() / curvature;
    if c.is_finite() && c > 0.0 {
        Ok(c)
    } else {
        Err(MdError::config(
            "compressibility_au",
            format!("finite-difference estimate is {c} (energy curvature {curvature}); give compressibility_au"),
        ))
    }
}
