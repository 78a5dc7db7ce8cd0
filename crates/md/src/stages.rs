//! wfl's temperature stages and frame sampling.
//!
//! A temperature profile becomes a list of constant-temperature stages, each
//! run by a fresh integrator for a number of steps: a constant stage takes
//! `round(traj_frac * steps)` steps, a ramp `linspace(T_i, T_f, n_stages)`
//! sub-stages of `round(traj_frac * steps / n_stages)` steps each (numpy's
//! round: half to even). Steps are counted globally across stages; a frame is
//! saved at step 0 and at every step divisible by `traj_step_interval`, so with
//! interval 1 a run has `1 + Σ stage steps` frames.

use crate::args::MdArgs;

/// One constant-temperature stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// Thermostat target (K); `None` without a thermostat.
    pub temperature: Option<f64>,
    /// Steps in this stage.
    pub steps: u64,
}

/// The stages of a run, as wfl builds them.
pub fn stages(args: &MdArgs) -> Vec<Stage> {
    let Some(profile) = args.temperature.as_ref().filter(|_| args.thermostatted()) else {
        return vec![Stage { temperature: None, steps: args.steps }];
    };
    let total = args.steps as f64;
    let mut out = Vec::new();
    for s in profile.stages() {
        let stage_steps = s.traj_frac * total;
        if s.t_f == s.t_i {
            out.push(Stage { temperature: Some(s.t_i), steps: round_steps(stage_steps) });
        } else {
            let sub = round_steps(stage_steps / s.n_stages as f64);
            out.extend(linspace(s.t_i, s.t_f, s.n_stages).map(|t| Stage { temperature: Some(t), steps: sub }));
        }
    }
    out
}

/// numpy's `int(np.round(x))` for the non-negative step counts here.
fn round_steps(x: f64) -> u64 {
    // x is finite and >= 0 (validated); the cast saturates on absurd values.
    x.round_ties_even() as u64
}

/// numpy's `linspace(a, b, n)`: `a + k * (b - a) / (n - 1)`, the last point exactly `b`.
fn linspace(a: f64, b: f64, n: u64) -> impl Iterator<Item = f64> {
    let step = if n > 1 { (b - a) / (n - 1) as f64 } else { 0.0 };
    (0..n).map(move |k| if n > 1 && k == n - 1 { b } else { a + k as f64 * step })
}

/// The number of frames a run of `stages` saves with `interval` when nothing
/// aborts: step 0, every multiple of `interval`, and the final step when it is
/// not a multiple.
pub fn frame_count(stages: &[Stage], interval: u64) -> u64 {
    let total = total_steps(stages);
    1 + total / interval + u64::from(!total.is_multiple_of(interval))
}

/// The steps of all `stages` (at most `u64::MAX`: stages whose `traj_frac`
/// add up to more than 1 may ask for more).
pub fn total_steps(stages: &[Stage]) -> u64 {
    stages.iter().fold(0, |n, s| n.saturating_add(s.steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy() {
        let v: Vec<f64> = linspace(100.0, 500.0, 5).collect();
        assert_eq!(v, vec![100.0, 200.0, 300.0, 400.0, 500.0]);
        let one: Vec<f64> = linspace(3.0, 7.0, 1).collect();
        assert_eq!(one, vec![3.0]);
    }

    #[test]
    fn numpy_rounding_is_half_to_even() {
        assert_eq!(round_steps(7.5), 8);
        assert_eq!(round_steps(6.5), 6);
        assert_eq!(round_steps(2.4999), 2);
    }
}
