//! Small dense linear algebra for the cell degrees of freedom: 3x3 matrices
//! (rows as in ASE's cells), the matrix logarithm and exponential, and the
//! adjoint of the exponential's Fréchet derivative that FrechetCellFilter needs.

use crate::error::MinimError;
use nalgebra::{Matrix3, Matrix6};

/// A 3x3 matrix from rows.
pub(crate) fn mat(rows: &[[f64; 3]; 3]) -> Matrix3<f64> {
    Matrix3::from_fn(|r, c| rows[r][c])
}

/// The rows of a 3x3 matrix.
pub(crate) fn rows(m: &Matrix3<f64>) -> [[f64; 3]; 3] {
    std::array::from_fn(|r| std::array::from_fn(|c| m[(r, c)]))
}

/// Row vector times matrix: `v · m`.
pub(crate) fn vec_mat(v: &[f64; 3], m: &Matrix3<f64>) -> [f64; 3] {
    std::array::from_fn(|c| v[0] * m[(0, c)] + v[1] * m[(1, c)] + v[2] * m[(2, c)])
}

/// Inverse of a 3x3 matrix, or an error when it is singular.
pub(crate) fn inverse(m: &Matrix3<f64>, what: &str) -> Result<Matrix3<f64>, MinimError> {
    m.try_inverse()
        .filter(|i| i.iter().all(|x| x.is_finite()))
        .ok_or_else(|| MinimError::Cell(format!("{what} is singular")))
}

/// Voigt (xx yy zz yz xz xy) to a full symmetric 3x3 matrix.
pub(crate) fn voigt_to_matrix(v: &[f64; 6]) -> Matrix3<f64> {
    Matrix3::new(v[0], v[5], v[4], v[5], v[1], v[3], v[4], v[3], v[2])
}

/// Full 3x3 to Voigt (xx yy zz yz xz xy), reading the upper triangle as ASE does.
pub(crate) fn matrix_to_voigt(m: &Matrix3<f64>) -> [f64; 6] {
    [m[(0, 0)], m[(1, 1)], m[(2, 2)], m[(1, 2)], m[(0, 2)], m[(0, 1)]]
}

/// Principal matrix logarithm of a matrix with eigenvalues near the positive
/// real axis (a deformation gradient), by inverse scaling and squaring:
/// square roots (Denman–Beavers) until close to the identity, then the
/// series `log(I+A) = 2 Σ Z^(2k+1)/(2k+1)` with `Z = A (2I + A)^-1`.
pub(crate) fn logm(f: &Matrix3<f64>) -> Result<Matrix3<f64>, MinimError> {
    let id = Matrix3::identity();
    let mut y = *f;
    let mut halvings = 0;
    while (y - id).norm() > 0.05 {
        y = sqrtm(&y)?;
        halvings += 1;
        if halvings > 60 {
            return Err(MinimError::Cell(format!("matrix logarithm did not converge for {f}")));
        }
    }
    let a = y - id;
    let z = a * inverse(&(2.0 * id + a), "2I + A in the matrix logarithm")?;
    let z2 = z * z;
    let mut term = z;
    let mut sum = z;
    // ||Z|| <= 0.026, so 9 odd powers reach far below f64 rounding.
    for k in 1..10 {
        term *= z2;
        sum += term / (2 * k + 1) as f64;
    }
    Ok(sum * (2.0 * f64::powi(2.0, halvings)))
}

/// Principal square root by the Denman–Beavers iteration.
fn sqrtm(a: &Matrix3<f64>) -> Result<Matrix3<f64>, MinimError> {
    let mut y = *a;
    let mut z = Matrix3::identity();
    for _ in 0..100 {
        let yi = inverse(&y, "square-root iterate")?;
        let zi = inverse(&z, "square-root iterate")?;
        let y_next = 0.5 * (y + zi);
        z = 0.5 * (z + yi);
        let change = (y_next - y).norm();
        y = y_next;
        if change <= 1e-15 * y.norm() {
            return Ok(y);
        }
    }
    Err(MinimError::Cell(format!("matrix square root did not converge for {a}")))
}

/// Matrix exponential.
pub(crate) fn expm(x: &Matrix3<f64>) -> Matrix3<f64> {
    x.exp()
}

/// The adjoint of the Fréchet derivative of `exp` at `a`, applied to `g`:
/// the matrix `D` with `D[m][n] = Σ (d exp(a)/d a[m][n] ∘ g)`, which equals
/// `L(aᵀ, g)` (the derivative of `exp` at `aᵀ` in direction `g`), read off the
/// upper-right block of `exp([[aᵀ, g], [0, aᵀ]])`.
pub(crate) fn expm_frechet_adjoint(a: &Matrix3<f64>, g: &Matrix3<f64>) -> Matrix3<f64> {
    let at = a.transpose();
    let mut block = Matrix6::zeros();
    block.fixed_view_mut::<3, 3>(0, 0).copy_from(&at);
    block.fixed_view_mut::<3, 3>(3, 3).copy_from(&at);
    block.fixed_view_mut::<3, 3>(0, 3).copy_from(g);
    block.exp().fixed_view::<3, 3>(0, 3).into_owned()
}

/// Compensated (Neumaier) sum, standing in for ASE's 128-bit `longsum`.
pub(crate) fn long_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut sum = 0.0f64;
    let mut comp = 0.0f64;
    for v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            comp += (sum - t) + v;
        } else {
            comp += (v - t) + sum;
        }
        sum = t;
    }
    sum + comp
}

/// Plain dot product of two equal-length slices.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_inverts_exp() {
        let x = Matrix3::new(0.03, -0.02, 0.01, 0.015, -0.04, 0.002, 0.0, 0.01, 0.2);
        let back = logm(&expm(&x)).unwrap();
        assert!((back - x).norm() < 1e-14, "{back} vs {x}");
        assert_eq!(logm(&Matrix3::identity()).unwrap(), Matrix3::zeros());
    }

    #[test]
    fn frechet_adjoint_matches_finite_differences() {
        let a = Matrix3::new(0.03, -0.02, 0.01, 0.015, -0.04, 0.002, 0.0, 0.01, 0.05);
        let g = Matrix3::new(1.0, 2.0, -0.5, 0.3, -1.0, 0.7, 0.2, 0.1, 0.9);
        let d = expm_frechet_adjoint(&a, &g);
        let h = 1e-6;
        for m in 0..3 {
            for n in 0..3 {
                let mut e = Matrix3::zeros();
                e[(m, n)] = h;
                let diff = (expm(&(a + e)) - expm(&(a - e))) / (2.0 * h);
                let fd = diff.component_mul(&g).sum();
                assert!((fd - d[(m, n)]).abs() < 1e-8, "{m}{n}: {fd} vs {}", d[(m, n)]);
            }
        }
    }

    #[test]
    fn compensated_sum_keeps_small_terms() {
        assert_eq!(long_sum([1e16, 1.0, -1e16]), 1.0);
    }
}
