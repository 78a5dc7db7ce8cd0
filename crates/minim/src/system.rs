//! The function being minimized: a configuration with its calculator,
//! constraints (fixed atoms from `move_mask`, symmetry) and, with a pressure,
//! the cell degrees of freedom of ASE's `FrechetCellFilter`.
//!
//! Degrees of freedom are rows of 3: one per atom, plus three cell rows with a
//! variable cell, flattened row-major. Without a cell filter they are the
//! Cartesian positions; with it, the positions in the undeformed reference
//! cell and `exp_cell_factor · log(F)` for the deformation gradient `F`
//! (cell = reference cell · Fᵀ).

use crate::error::MinimError;
use crate::linalg::{expm, expm_frechet_adjoint, inverse, logm, mat, matrix_to_voigt, rows, vec_mat, voigt_to_matrix};
use crate::symmetry::Symmetry;
use autopara_core::atoms::ArrayData;
use autopara_core::{Atoms, CalcResults, Calculator, Properties};
use autopara_geometry::vec3::norm;
use nalgebra::Matrix3;

/// The extxyz column ASE writes for `FixAtoms` (width 1) and `FixCartesian` (width 3).
pub const MOVE_MASK: &str = "move_mask";

/// Fixed atoms and symmetry, applied to steps, forces and stress in ASE's
/// order (fixed atoms first, then symmetry).
#[derive(Debug, Clone, Default)]
pub(crate) struct Constraints {
    /// Per atom and Cartesian component: may it move? `None` when all may.
    movable: Option<Vec<[bool; 3]>>,
    /// Atoms fixed as a whole by a width-1 `move_mask` (ASE's `FixAtoms`),
    /// which the Exp preconditioner decouples.
    pub fixed_atoms: Vec<usize>,
    /// The space group kept by `keep_symmetry`.
    pub symmetry: Option<Symmetry>,
}

impl Constraints {
    /// True when nothing is constrained.
    pub(crate) fn is_empty(&self) -> bool {
        self.movable.is_none() && self.symmetry.is_none()
    }

    /// Reads `arrays["move_mask"]`: width 1 fixes whole atoms, width 3 single
    /// components (`false` = fixed), booleans or 0/1 integers.
    pub(crate) fn from_move_mask(atoms: &Atoms) -> Result<Constraints, MinimError> {
        let Some(col) = atoms.arrays.get(MOVE_MASK) else { return Ok(Constraints::default()) };
        let bad = |message: String| MinimError::BadColumn { key: MOVE_MASK, message };
        let flags: Vec<bool> = match &col.data {
            ArrayData::Bool(v) => v.clone(),
            ArrayData::Int(v) => v.iter().map(|&x| x != 0).collect(),
            other => return Err(bad(format!("expected booleans, got type {}", other.type_char()))),
        };
        if col.width != 1 && col.width != 3 {
            return Err(bad(format!("expected 1 or 3 values per atom, got {}", col.width)));
        }
        if flags.len() != atoms.len() * col.width {
            return Err(bad(format!("{} values for {} atoms of width {}", flags.len(), atoms.len(), col.width)));
        }
        let movable: Vec<[bool; 3]> = if col.width == 1 {
            flags.iter().map(|&m| [m; 3]).collect()
        } else {
            flags.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
        };
        let fixed_atoms = if col.width == 1 {
            flags.iter().enumerate().filter(|(_, m)| !**m).map(|(i, _)| i).collect()
        } else {
            vec![]
        };
        let any_fixed = movable.iter().flatten().any(|m| !m);
        Ok(Constraints { movable: any_fixed.then_some(movable), fixed_atoms, symmetry: None })
    }

    /// Zeroes fixed components, then symmetrises: ASE's `adjust_forces` (and,
    /// applied to a step, `adjust_positions`).
    fn adjust_vectors(&self, cell: &[[f64; 3]; 3], v: &mut [[f64; 3]], scratch: &mut Vec<[f64; 3]>) {
        if let Some(movable) = &self.movable {
            for (vi, m) in v.iter_mut().zip(movable) {
                for d in 0..3 {
                    if !m[d] {
                        vi[d] = 0.0;
                    }
                }
            }
        }
        if let Some(sym) = &self.symmetry {
            // A singular cell has no symmetry to keep; the vectors stay as they are.
            let _ = sym.symmetrize_vectors(cell, v, scratch);
        }
    }
}

/// ASE's `FrechetCellFilter` settings.
#[derive(Debug, Clone)]
pub(crate) struct CellFilter {
    /// The reference (undeformed) cell, rows as lattice vectors.
    reference: Matrix3<f64>,
    reference_inv: Matrix3<f64>,
    /// Multiplies the virial (and so the cell step) element-wise.
    mask: Matrix3<f64>,
    /// Whether any mask entry differs from 1 (ASE skips the product otherwise).
    masked: bool,
    /// Scalar pressure (eV/Å³).
    pub pressure: f64,
    /// `exp_cell_factor`: the number of atoms.
    factor: f64,
}

impl CellFilter {
    /// A filter whose reference is `cell`.
    pub(crate) fn new(
        cell: &[[f64; 3]; 3],
        mask: [[f64; 3]; 3],
        pressure: f64,
        natoms: usize,
    ) -> Result<Self, MinimError> {
        let reference = mat(cell);
        let mask = mat(&mask);
        Ok(CellFilter {
            reference,
            reference_inv: inverse(&reference, "cell")?,
            masked: mask.iter().any(|&m| m != 1.0),
            mask,
            pressure,
            factor: natoms as f64,
        })
    }

    /// `F` with cell = reference · Fᵀ.
    fn deformation(&self, cell: &[[f64; 3]; 3]) -> Matrix3<f64> {
        (self.reference_inv * mat(cell)).transpose()
    }
}

/// A configuration, its calculator and constraints, evaluated lazily.
pub(crate) struct System<'c> {
    calc: &'c mut dyn Calculator,
    /// The configuration being relaxed (positions and cell change).
    pub atoms: Atoms,
    request: Properties,
    /// Raw calculator results at the current geometry (stored in frames, as wfl).
    pub raw: CalcResults,
    evaluated: bool,
    /// Constraint-adjusted forces.
    forces: Vec<[f64; 3]>,
    /// Constraint-adjusted stress (Voigt).
    stress: [f64; 6],
    /// Fixed atoms and symmetry.
    pub constraints: Constraints,
    /// The variable-cell filter, if any.
    pub filter: Option<CellFilter>,
    /// Gradient of `value` with respect to the degrees of freedom.
    gradient: Vec<f64>,
    /// Energy, plus pressure times volume with a cell filter.
    value: f64,
    /// The filter's stress for the convergence test (Voigt, pressure included, masked).
    filter_stress: [f64; 6],
    /// Calculator calls so far.
    pub evaluations: usize,
    scratch: Vec<[f64; 3]>,
    new_positions: Vec<[f64; 3]>,
}

impl<'c> System<'c> {
    /// Wraps `atoms`; stress is requested when the cell is full rank and some direction periodic.
    pub(crate) fn new(
        calc: &'c mut dyn Calculator,
        atoms: Atoms,
        constraints: Constraints,
        filter: Option<CellFilter>,
    ) -> System<'c> {
        let stress = atoms.any_pbc() && atoms.volume() > 0.0;
        let n = atoms.len();
        let rows = n + if filter.is_some() { 3 } else { 0 };
        System {
            calc,
            atoms,
            request: Properties { energy: true, forces: true, stress, energies: false },
            raw: CalcResults::default(),
            evaluated: false,
            forces: vec![[0.0; 3]; n],
            stress: [0.0; 6],
            constraints,
            filter,
            gradient: vec![0.0; 3 * rows],
            value: 0.0,
            filter_stress: [0.0; 6],
            evaluations: 0,
            scratch: Vec::with_capacity(n),
            new_positions: Vec::with_capacity(n),
        }
    }

    /// Number of atoms.
    pub(crate) fn natoms(&self) -> usize {
        self.atoms.len()
    }

    /// Rows of degrees of freedom: atoms, plus 3 with a cell filter (ASE's `len(filter)`).
    pub(crate) fn rows(&self) -> usize {
        self.natoms() + if self.filter.is_some() { 3 } else { 0 }
    }

    /// Number of degrees of freedom.
    pub(crate) fn ndof(&self) -> usize {
        3 * self.rows()
    }

    /// Whether results match the current geometry.
    pub(crate) fn is_evaluated(&self) -> bool {
        self.evaluated
    }

    /// Current degrees of freedom into `x` (length [`Self::ndof`]).
    pub(crate) fn get_x(&self, x: &mut [f64]) -> Result<(), MinimError> {
        let n = self.natoms();
        match &self.filter {
            None => {
                for (xi, p) in x.chunks_exact_mut(3).zip(&self.atoms.positions) {
                    xi.copy_from_slice(p);
                }
            }
            Some(f) => {
                let def = f.deformation(&self.atoms.cell);
                let def_inv_t = inverse(&def, "deformation gradient")?.transpose();
                for (xi, p) in x.chunks_exact_mut(3).zip(&self.atoms.positions) {
                    xi.copy_from_slice(&vec_mat(p, &def_inv_t));
                }
                let log = logm(&def)? * f.factor;
                for (r, xi) in x[3 * n..].chunks_exact_mut(3).enumerate() {
                    for c in 0..3 {
                        xi[c] = log[(r, c)];
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves to degrees of freedom `x`, applying the constraints as ASE's
    /// `set_positions` (and `set_cell(scale_atoms=True)` with a filter) do.
    /// Results stay valid when the geometry does not change.
    pub(crate) fn set_x(&mut self, x: &[f64]) -> Result<(), MinimError> {
        let n = self.natoms();
        let mut new = std::mem::take(&mut self.new_positions);
        new.clear();
        let mut new_cell = self.atoms.cell;
        match &self.filter {
            None => new.extend(x.chunks_exact(3).take(n).map(|c| [c[0], c[1], c[2]])),
            Some(f) => {
                let mut log = Matrix3::zeros();
                for (r, xi) in x[3 * n..].chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        log[(r, c)] = xi[c] / f.factor;
                    }
                }
                let id = Matrix3::identity();
                let deform = (expm(&log) - id).transpose().component_mul(&f.mask);
                let cell = f.reference * (id + deform);
                // set_cell(scale_atoms=True) moves every atom with the cell first,
                // so fixed atoms keep their fractional coordinates.
                new_cell = rows(&cell);
                if new_cell != self.atoms.cell {
                    let scale = inverse(&mat(&self.atoms.cell), "cell")? * cell;
                    for p in &mut self.atoms.positions {
                        *p = vec_mat(p, &scale);
                    }
                    self.atoms.cell = new_cell;
                    self.evaluated = false;
                }
                let to_cart = id + deform;
                new.extend(x.chunks_exact(3).take(n).map(|c| vec_mat(&[c[0], c[1], c[2]], &to_cart)));
            }
        }
        if self.constraints.is_empty() {
            if new != self.atoms.positions {
                self.atoms.positions.copy_from_slice(&new);
                self.evaluated = false;
            }
        } else {
            // Constraints act on the step from the current positions.
            for (s, p) in new.iter_mut().zip(&self.atoms.positions) {
                *s = [s[0] - p[0], s[1] - p[1], s[2] - p[2]];
            }
            self.constraints.adjust_vectors(&new_cell, &mut new, &mut self.scratch);
            for (p, s) in self.atoms.positions.iter_mut().zip(&new) {
                let moved = [p[0] + s[0], p[1] + s[1], p[2] + s[2]];
                if moved != *p {
                    *p = moved;
                    self.evaluated = false;
                }
            }
        }
        self.new_positions = new;
        Ok(())
    }

    /// Calls the calculator if the geometry changed since the last call, then
    /// applies the constraints and the cell filter to its results.
    pub(crate) fn evaluate(&mut self) -> Result<(), MinimError> {
        if self.evaluated {
            return Ok(());
        }
        let evaluations = self.evaluations;
        self.evaluations += 1;
        let calc_err = |source| MinimError::Calculator { evaluations, source };
        self.calc.calculate(&self.atoms, self.request, &mut self.raw).map_err(calc_err)?;
        let n = self.natoms();
        let nonfinite = |property| {
            calc_err(autopara_core::CalcError::NonFinite { calculator: self.calc.name().to_string(), property })
        };
        if !self.raw.energy.is_finite() {
            return Err(nonfinite("energy"));
        }
        if self.raw.forces.len() != n || self.raw.forces.iter().flatten().any(|f| !f.is_finite()) {
            return Err(nonfinite("forces"));
        }
        self.forces.copy_from_slice(&self.raw.forces);
        self.constraints.adjust_vectors(&self.atoms.cell, &mut self.forces, &mut self.scratch);
        self.stress = self.raw.stress;
        if self.request.stress
            && let Some(sym) = &self.constraints.symmetry
        {
            let _ = sym.symmetrize_stress(&self.atoms.cell, &mut self.stress);
        }
        self.value = self.raw.energy;
        match &self.filter {
            None => {
                for (g, f) in self.gradient.chunks_exact_mut(3).zip(&self.forces) {
                    for d in 0..3 {
                        g[d] = -f[d];
                    }
                }
            }
            Some(filter) => {
                if !self.raw.computed.stress {
                    return Err(calc_err(autopara_core::CalcError::Unsupported {
                        calculator: self.calc.name().to_string(),
                        property: "stress",
                        reason: "a variable cell (pressure) needs the stress".into(),
                    }));
                }
                if self.stress.iter().any(|s| !s.is_finite()) {
                    return Err(nonfinite("stress"));
                }
                let volume = self.atoms.volume();
                self.value += filter.pressure * volume;
                let def = filter.deformation(&self.atoms.cell);
                let mut virial =
                    -volume * (voigt_to_matrix(&self.stress) + Matrix3::from_diagonal_element(filter.pressure));
                if filter.masked {
                    virial.component_mul_assign(&filter.mask);
                }
                let ucf_grad = virial * inverse(&def.transpose(), "deformation gradient")?;
                let cell_force = expm_frechet_adjoint(&logm(&def)?, &ucf_grad) / filter.factor;
                for (g, f) in self.gradient.chunks_exact_mut(3).zip(&self.forces) {
                    let fd = vec_mat(f, &def);
                    for d in 0..3 {
                        g[d] = -fd[d];
                    }
                }
                for (r, g) in self.gradient[3 * n..].chunks_exact_mut(3).enumerate() {
                    for c in 0..3 {
                        g[c] = -cell_force[(r, c)];
                    }
                }
                self.filter_stress = matrix_to_voigt(&(-virial / volume));
            }
        }
        self.evaluated = true;
        Ok(())
    }

    /// The objective (energy, plus p·V with a cell filter). Call [`Self::evaluate`] first.
    pub(crate) fn value(&self) -> f64 {
        self.value
    }

    /// The gradient of [`Self::value`]. Call [`Self::evaluate`] first.
    pub(crate) fn gradient(&self) -> &[f64] {
        &self.gradient
    }

    /// ASE PreconLBFGS's test: largest per-atom force below `fmax` (forces as the
    /// optimizer sees them), and with a cell filter every stress component below `smax`.
    pub(crate) fn converged_forces_and_stress(&self, fmax: f64, smax: f64) -> bool {
        let n = self.natoms();
        let fmax_sq =
            self.gradient[..3 * n].chunks_exact(3).map(|g| g.iter().map(|x| x * x).sum::<f64>()).fold(0.0, f64::max);
        let forces_ok = fmax_sq < fmax * fmax;
        match &self.filter {
            None => forces_ok,
            Some(_) => forces_ok && self.filter_stress.iter().map(|s| s * s).fold(0.0, f64::max) < smax * smax,
        }
    }

    /// ASE's `Optimizable.gradient_norm`: the largest norm of a row of 3.
    pub(crate) fn max_row_norm(v: &[f64]) -> f64 {
        v.as_chunks::<3>().0.iter().map(|&g| norm(g)).fold(0.0, f64::max)
    }

    /// The gradient of the objective at `x` for a fresh filter whose reference
    /// is the current cell, at zero pressure with a full mask (what ASE's
    /// `estimate_mu` evaluates), leaving this system's state untouched.
    pub(crate) fn probe_gradient(&mut self, x: &[f64], out: &mut [f64]) -> Result<(), MinimError> {
        let saved_atoms = (self.atoms.positions.clone(), self.atoms.cell);
        let saved_results = (self.raw.clone(), self.forces.clone(), self.stress, self.gradient.clone());
        let saved_state = (self.value, self.filter_stress, self.evaluated);
        let saved_filter = self.filter.clone();
        if let Some(f) = &mut self.filter {
            *f = CellFilter::new(&self.atoms.cell, [[1.0; 3]; 3], 0.0, self.atoms.len())?;
        }
        let result = self.set_x(x).and_then(|()| self.evaluate());
        out.copy_from_slice(&self.gradient);
        (self.atoms.positions, self.atoms.cell) = saved_atoms;
        (self.raw, self.forces, self.stress, self.gradient) = saved_results;
        (self.value, self.filter_stress, self.evaluated) = saved_state;
        self.filter = saved_filter;
        result
    }
}
