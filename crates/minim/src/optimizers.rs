//! The optimizers, step for step as ASE 3.28's: `PreconLBFGS` (Armijo line
//! search, optional Exp preconditioner), `LBFGS` (fixed initial Hessian
//! 1/70, no line search) and `FIRE`. Buffers are allocated once per
//! optimization; a step allocates nothing.

use crate::args::OptimizerKind;
use crate::error::MinimError;
use crate::linalg::{dot, long_sum};
use crate::precon::ExpPrecon;
use crate::system::System;
use std::collections::VecDeque;

/// ASE's L-BFGS memory.
const MEMORY: usize = 100;

/// The L-BFGS history `(s, y, rho)`, oldest first, recycling its vectors.
struct History {
    s: VecDeque<Vec<f64>>,
    y: VecDeque<Vec<f64>>,
    rho: VecDeque<f64>,
    spare: Vec<Vec<f64>>,
    alphas: Vec<f64>,
}

impl History {
    fn new() -> History {
        History { s: VecDeque::new(), y: VecDeque::new(), rho: VecDeque::new(), spare: Vec::new(), alphas: Vec::new() }
    }

    /// Appends `s = x - x0`, `y = f0 - f` (the gradient change) and `rho = 1/(y·s)`,
    /// dropping the oldest entry beyond the memory.
    fn push(&mut self, x: &[f64], x0: &[f64], f: &[f64], f0: &[f64]) {
        let mut s = self.spare.pop().unwrap_or_default();
        let mut y = self.spare.pop().unwrap_or_default();
        s.clear();
        s.extend(x.iter().zip(x0).map(|(a, b)| a - b));
        y.clear();
        y.extend(f0.iter().zip(f).map(|(a, b)| a - b));
        self.rho.push_back(1.0 / dot(&y, &s));
        self.s.push_back(s);
        self.y.push_back(y);
        if self.y.len() > MEMORY {
            self.rho.pop_front();
            if let (Some(s), Some(y)) = (self.s.pop_front(), self.y.pop_front()) {
                self.spare.push(s);
                self.spare.push(y);
            }
        }
    }

    fn clear(&mut self) {
        self.spare.extend(self.s.drain(..));
        self.spare.extend(self.y.drain(..));
        self.rho.clear();
    }

    /// The two-loop recursion: turns `q` (the gradient, consumed) into
    /// `z = H q`, with `apply_h0` the initial inverse Hessian.
    fn two_loop(
        &mut self,
        q: &mut [f64],
        z: &mut [f64],
        apply_h0: impl FnOnce(&[f64], &mut [f64]) -> Result<(), MinimError>,
    ) -> Result<(), MinimError> {
        let m = self.y.len();
        self.alphas.clear();
        self.alphas.resize(m, 0.0);
        for i in (0..m).rev() {
            let a = self.rho[i] * dot(&self.s[i], q);
            self.alphas[i] = a;
            for (qk, yk) in q.iter_mut().zip(&self.y[i]) {
                *qk -= a * yk;
            }
        }
        apply_h0(q, z)?;
        for i in 0..m {
            let b = self.rho[i] * dot(&self.y[i], z);
            let c = self.alphas[i] - b;
            for (zk, sk) in z.iter_mut().zip(&self.s[i]) {
                *zk += sk * c;
            }
        }
        Ok(())
    }
}

/// Buffers shared by the optimizers, sized to the degrees of freedom.
struct Buffers {
    x: Vec<f64>,
    x0: Vec<f64>,
    f: Vec<f64>,
    f0: Vec<f64>,
    q: Vec<f64>,
    p: Vec<f64>,
    trial: Vec<f64>,
}

impl Buffers {
    fn new(ndof: usize) -> Buffers {
        let v = || vec![0.0; ndof];
        Buffers { x: v(), x0: v(), f: v(), f0: v(), q: v(), p: v(), trial: v() }
    }

    /// Reads the current point and forces (minus the gradient) from `sys`.
    fn read(&mut self, sys: &mut System<'_>) -> Result<(), MinimError> {
        sys.evaluate()?;
        sys.get_x(&mut self.x)?;
        for (f, g) in self.f.iter_mut().zip(sys.gradient()) {
            *f = -g;
        }
        Ok(())
    }
}

/// An optimizer's state for one configuration.
pub(crate) struct Optimizer {
    kind: Kind,
    buf: Buffers,
    maxstep: f64,
}

enum Kind {
    Precon(Box<PreconLbfgs>),
    Lbfgs(Lbfgs),
    Fire(Fire),
}

/// ASE's `PreconLBFGS` state.
struct PreconLbfgs {
    history: History,
    precon: Option<ExpPrecon>,
    just_reset: bool,
    /// Objective at the start of the previous line search (ASE's `e0`).
    e_previous: Option<f64>,
    /// Objective at the end of the previous line search (ASE's `e1`).
    e_last: Option<f64>,
}

/// ASE's `LBFGS` state.
struct Lbfgs {
    history: History,
    iteration: usize,
}

/// ASE's `FIRE` state.
struct Fire {
    velocity: Option<Vec<f64>>,
    dt: f64,
    alpha: f64,
    n_positive: usize,
}

/// Why a line search gave up (ASE's `ValueError`/`RuntimeError` inside it).
enum SearchFailure {
    Gave(String),
    Fatal(MinimError),
}

impl From<MinimError> for SearchFailure {
    fn from(e: MinimError) -> Self {
        SearchFailure::Fatal(e)
    }
}

impl Optimizer {
    /// An optimizer for `sys`; `use_precon` picks the Exp preconditioner for PreconLBFGS.
    pub(crate) fn new(kind: OptimizerKind, use_precon: bool, maxstep: f64, sys: &System<'_>) -> Optimizer {
        let kind = match kind {
            OptimizerKind::PreconLbfgs => Kind::Precon(Box::new(PreconLbfgs {
                history: History::new(),
                precon: use_precon.then(ExpPrecon::new),
                just_reset: true,
                e_previous: None,
                e_last: None,
            })),
            OptimizerKind::Lbfgs => Kind::Lbfgs(Lbfgs { history: History::new(), iteration: 0 }),
            OptimizerKind::Fire => Kind::Fire(Fire { velocity: None, dt: 0.1, alpha: 0.1, n_positive: 0 }),
        };
        Optimizer { kind, buf: Buffers::new(sys.ndof()), maxstep }
    }

    /// ASE's convergence test for this optimizer. `sys` must be evaluated.
    pub(crate) fn converged(&self, sys: &System<'_>, fmax: f64, smax: f64) -> bool {
        match self.kind {
            Kind::Precon(_) => sys.converged_forces_and_stress(fmax, smax),
            Kind::Lbfgs(_) | Kind::Fire(_) => System::max_row_norm(sys.gradient()) < fmax,
        }
    }

    /// One optimizer step (ASE's `step()`); the geometry may be left unevaluated.
    pub(crate) fn step(&mut self, sys: &mut System<'_>) -> Result<(), MinimError> {
        let buf = &mut self.buf;
        buf.read(sys)?;
        match &mut self.kind {
            Kind::Precon(opt) => opt.step(sys, buf, self.maxstep),
            Kind::Lbfgs(opt) => opt.step(sys, buf, self.maxstep),
            Kind::Fire(opt) => opt.step(sys, buf, self.maxstep),
        }
    }
}

impl PreconLbfgs {
    fn step(&mut self, sys: &mut System<'_>, buf: &mut Buffers, maxstep: f64) -> Result<(), MinimError> {
        let previously_reset = self.just_reset;
        if !self.just_reset {
            self.history.push(&buf.x, &buf.x0, &buf.f, &buf.f0);
        }
        self.just_reset = false;
        for (q, f) in buf.q.iter_mut().zip(&buf.f) {
            *q = -f;
        }
        let precon = &mut self.precon;
        self.history.two_loop(&mut buf.q, &mut buf.p, |q, z| match precon {
            Some(pc) => {
                pc.update(sys)?;
                pc.solve(q, z)
            }
            None => {
                z.copy_from_slice(q);
                Ok(())
            }
        })?;
        for p in &mut buf.p {
            *p = -*p;
        }
        let e = match self.e_last {
            Some(e) => e,
            None => {
                sys.evaluate()?;
                sys.value()
            }
        };
        // ASE rescales a vanishing direction up to a minimum length.
        let floor = (sys.rows() as f64 * 1e-10).sqrt();
        let p_size = dot(&buf.p, &buf.p).sqrt();
        if p_size <= floor {
            for p in &mut buf.p {
                *p /= p_size / floor;
            }
        }
        match self.armijo(sys, buf, e, maxstep) {
            Ok((_step, value)) => {
                self.e_previous = Some(e);
                self.e_last = Some(value);
            }
            Err(SearchFailure::Fatal(err)) => return Err(err),
            Err(SearchFailure::Gave(reason)) => {
                if previously_reset {
                    return Err(MinimError::LineSearch { reason });
                }
                // Throw the history away and try again from wherever the search stopped.
                self.history.clear();
                self.just_reset = true;
            }
        }
        std::mem::swap(&mut buf.x0, &mut buf.x);
        std::mem::swap(&mut buf.f0, &mut buf.f);
        Ok(())
    }

    /// ASE's `LineSearchArmijo.run`: backtracking with quadratic interpolation
    /// until `phi(a) <= phi(0) + c1 a phi'(0)`. Leaves `sys` at the accepted point.
    fn armijo(
        &self,
        sys: &mut System<'_>,
        buf: &mut Buffers,
        e: f64,
        maxstep: f64,
    ) -> Result<(f64, f64), SearchFailure> {
        const C1: f64 = 0.23;
        const A_MAX: f64 = 2.0;
        const A_MIN: f64 = 1e-10;
        let slope = long_sum(buf.f.iter().zip(&buf.p).map(|(f, p)| -f * p));
        if slope >= 0.0 || slope.is_nan() {
            return Err(SearchFailure::Gave(format!("direction is not downhill (slope {slope:e})")));
        }
        if slope.is_infinite() {
            return Err(SearchFailure::Gave("gradient and direction are too big".into()));
        }
        let mut a1 = match self.e_previous {
            Some(e0) => 2.0 * (e - e0) / slope,
            None => 1.0,
        };
        // ASE also resets below its tolerance 1e-14, which A_MIN covers.
        if !(A_MIN..=A_MAX).contains(&a1) {
            a1 = 1.0;
        }
        let longest = System::max_row_norm(&buf.p) * a1.abs();
        if longest >= maxstep {
            a1 *= maxstep / longest;
        }
        if (a1 - 1.0).abs() <= 0.5 {
            a1 = 1.0;
        }
        loop {
            if !a1.is_finite() {
                return Err(SearchFailure::Gave(format!("step length became {a1}")));
            }
            for ((t, x), p) in buf.trial.iter_mut().zip(&buf.x).zip(&buf.p) {
                *t = x + a1 * p;
            }
            sys.set_x(&buf.trial)?;
            sys.evaluate()?;
            let phi = sys.value();
            let sufficient = phi <= e + C1 * a1 * slope;
            if a1 < A_MIN {
                return Err(SearchFailure::Gave(format!("step length {a1:e} below the minimum {A_MIN:e}")));
            }
            if sufficient {
                return Ok((a1, phi));
            }
            let quadratic_min = -(slope * a1) / (2.0 * ((phi - e) / a1 - slope));
            // Python's max(quadratic_min, a1 / 10).
            a1 = if a1 / 10.0 > quadratic_min { a1 / 10.0 } else { quadratic_min };
        }
    }
}

impl Lbfgs {
    /// ASE's initial inverse Hessian, 1/alpha with alpha = 70.
    const H0: f64 = 1.0 / 70.0;

    fn step(&mut self, sys: &mut System<'_>, buf: &mut Buffers, maxstep: f64) -> Result<(), MinimError> {
        if self.iteration > 0 {
            self.history.push(&buf.x, &buf.x0, &buf.f, &buf.f0);
        }
        for (q, f) in buf.q.iter_mut().zip(&buf.f) {
            *q = -f;
        }
        self.history.two_loop(&mut buf.q, &mut buf.p, |q, z| {
            for (zk, qk) in z.iter_mut().zip(q) {
                *zk = Self::H0 * qk;
            }
            Ok(())
        })?;
        // Step -z, scaled so that no row moves more than maxstep.
        let longest = System::max_row_norm(&buf.p);
        let scale = if longest >= maxstep { maxstep / longest } else { 1.0 };
        for ((t, x), z) in buf.trial.iter_mut().zip(&buf.x).zip(&buf.p) {
            *t = x + (-z * scale);
        }
        sys.set_x(&buf.trial)?;
        self.iteration += 1;
        std::mem::swap(&mut buf.x0, &mut buf.x);
        std::mem::swap(&mut buf.f0, &mut buf.f);
        Ok(())
    }
}

impl Fire {
    const DT_MAX: f64 = 1.0;
    const N_MIN: usize = 5;
    const F_INC: f64 = 1.1;
    const F_DEC: f64 = 0.5;
    const A_START: f64 = 0.1;
    const F_A: f64 = 0.99;

    fn step(&mut self, sys: &mut System<'_>, buf: &mut Buffers, maxstep: f64) -> Result<(), MinimError> {
        let g = &buf.f;
        match &mut self.velocity {
            None => self.velocity = Some(vec![0.0; g.len()]),
            Some(v) => {
                let vf = dot(g, v);
                if vf > 0.0 {
                    let g_norm = dot(g, g).sqrt();
                    let v_norm = dot(v, v).sqrt();
                    for (vk, gk) in v.iter_mut().zip(g) {
                        *vk = (1.0 - self.alpha) * *vk + self.alpha * gk / g_norm * v_norm;
                    }
                    if self.n_positive > Self::N_MIN {
                        self.dt = (self.dt * Self::F_INC).min(Self::DT_MAX);
                        self.alpha *= Self::F_A;
                    }
                    self.n_positive += 1;
                } else {
                    v.fill(0.0);
                    self.alpha = Self::A_START;
                    self.dt *= Self::F_DEC;
                    self.n_positive = 0;
                }
            }
        }
        let Some(v) = &mut self.velocity else { return Ok(()) };
        for (vk, gk) in v.iter_mut().zip(g) {
            *vk += self.dt * gk;
        }
        for (d, vk) in buf.p.iter_mut().zip(v.iter()) {
            *d = self.dt * vk;
        }
        let norm = dot(&buf.p, &buf.p).sqrt();
        let scale = if norm > maxstep { maxstep / norm } else { 1.0 };
        for ((t, x), d) in buf.trial.iter_mut().zip(&buf.x).zip(&buf.p) {
            *t = x + d * scale;
        }
        sys.set_x(&buf.trial)
    }
}
