//! Small helpers on 3-vectors `[f64; 3]`, each evaluated in one fixed order
//! (so every crate that uses them gets the same bits).
//!
//! ```
//! use autopara_geometry::vec3::{cross, dot, norm};
//! let (x, y) = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
//! assert_eq!(cross(x, y), [0.0, 0.0, 1.0]);
//! assert_eq!(dot(x, y), 0.0);
//! assert_eq!(norm([3.0, 4.0, 0.0]), 5.0);
//! ```

/// `a · b`, as `a0 b0 + a1 b1 + a2 b2`.
#[inline]
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// `|a|²`, as `a0² + a1² + a2²`.
#[inline]
pub fn norm2(a: [f64; 3]) -> f64 {
    dot(a, a)
}

/// `|a|`.
#[inline]
pub fn norm(a: [f64; 3]) -> f64 {
    norm2(a).sqrt()
}

/// `a × b`.
#[inline]
pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// `a / |a|` (not finite for the zero vector).
#[inline]
pub fn unit(a: [f64; 3]) -> [f64; 3] {
    let n = norm(a);
    [a[0] / n, a[1] / n, a[2] / n]
}

/// `a − b`.
#[inline]
pub fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
