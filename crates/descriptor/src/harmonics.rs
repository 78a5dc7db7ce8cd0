//! Real spherical harmonics by recursion.
//!
//! SOAP's power spectrum sums products over `m` within each `l`, so any
//! orthonormal real basis gives the same features; we use the usual one
//! (`Y_l0 ∝ P_l`, `Y_lm ∝ cos(mφ)`, `Y_l,-m ∝ sin(mφ)`), stored at index
//! `l² + l + m`.

use std::f64::consts::PI;

/// Precomputed recursion coefficients for real spherical harmonics up to `l_max`.
#[derive(Debug, Clone)]
pub(crate) struct RealHarmonics {
    l_max: usize,
    /// `sqrt((2l+1)/4π (l-m)!/(l+m)!)`, times `√2` for `m > 0`, at `l(l+1)/2 + m`.
    norm: Vec<f64>,
    /// `(2m-1)!!`, the start of each `m` column of the Legendre recursion.
    double_factorial: Vec<f64>,
    /// Recursion coefficients `((2l-1)/(l-m), (l+m-1)/(l-m))` at `l(l+1)/2 + m`
    /// (so the hot loop has no division).
    recursion: Vec<(f64, f64)>,
}

impl RealHarmonics {
    /// Coefficients for all `l <= l_max`.
    pub(crate) fn new(l_max: usize) -> RealHarmonics {
        let mut norm = vec![0.0; (l_max + 1) * (l_max + 2) / 2];
        for l in 0..=l_max {
            for m in 0..=l {
                // (l-m)!/(l+m)! as a product, which stays in range for l <= 20.
                let ratio: f64 = ((l - m + 1)..=(l + m)).map(|k| 1.0 / k as f64).product();
                let mut n = ((2 * l + 1) as f64 / (4.0 * PI) * ratio).sqrt();
                if m > 0 {
                    n *= std::f64::consts::SQRT_2;
                }
                norm[l * (l + 1) / 2 + m] = n;
            }
        }
        let mut double_factorial = vec![1.0; l_max + 1];
        for m in 1..=l_max {
            double_factorial[m] = double_factorial[m - 1] * (2 * m - 1) as f64;
        }
        let mut recursion = vec![(0.0, 0.0); norm.len()];
        for l in 0..=l_max {
            for m in 0..l {
                let d = (l - m) as f64;
                recursion[l * (l + 1) / 2 + m] = ((2 * l - 1) as f64 / d, (l + m - 1) as f64 / d);
            }
        }
        RealHarmonics { l_max, norm, double_factorial, recursion }
    }

    /// Number of `(l, m)` values: `(l_max + 1)²`.
    pub(crate) fn len(&self) -> usize {
        (self.l_max + 1) * (self.l_max + 1)
    }
}

/// Per-neighbour recursion state of [`RealHarmonics::eval_many`], kept to
/// avoid allocating per call.
#[derive(Debug, Default)]
pub(crate) struct HarmonicScratch {
    c: Vec<f64>,
    s: Vec<f64>,
    q: Vec<f64>,
    q_prev: Vec<f64>,
}

impl RealHarmonics {
    /// `Y_lm` of many unit vectors at once, given by their components
    /// `[x, y, z]` (equal lengths `k`): `out[(l² + l + m) k + j]`
    /// (`out.len() >= self.len() k`). The recursion runs over all vectors
    /// together, one per vector lane, and each lane's operations are those of
    /// one vector alone, so the values do not depend on `k`.
    #[inline(always)]
    pub(crate) fn eval_many(&self, [x, y, z]: [&[f64]; 3], out: &mut [f64], scratch: &mut HarmonicScratch) {
        let k = x.len();
        let (y, z) = (&y[..k], &z[..k]);
        let HarmonicScratch { c, s, q, q_prev } = scratch;
        for v in [&mut *c, &mut *s, &mut *q, &mut *q_prev] {
            v.resize(k, 0.0);
        }
        // cos(mφ) sinᵐθ and sin(mφ) sinᵐθ as Re/Im of (x + iy)^m.
        c.fill(1.0);
        s.fill(0.0);
        for m in 0..=self.l_max {
            // Associated Legendre polynomial without the sinᵐθ factor, by
            // upward recursion in l at fixed m.
            q_prev.fill(0.0);
            q.fill(self.double_factorial[m]);
            for l in m..=self.l_max {
                let at = l * (l + 1) / 2 + m;
                if l > m {
                    let (a, b) = self.recursion[at];
                    for ((qj, pj), &zj) in q.iter_mut().zip(q_prev.iter_mut()).zip(z) {
                        let next = a * zj * *qj - b * *pj;
                        *pj = *qj;
                        *qj = next;
                    }
                }
                let norm = self.norm[at];
                let centre = l * l + l;
                if m == 0 {
                    for (o, &qj) in out[centre * k..][..k].iter_mut().zip(q.iter()) {
                        *o = norm * qj;
                    }
                } else {
                    let (lower, upper) = out.split_at_mut((centre + m) * k);
                    let minus = &mut lower[(centre - m) * k..][..k];
                    for ((((p, n), &qj), &cj), &sj) in
                        upper[..k].iter_mut().zip(minus).zip(q.iter()).zip(c.iter()).zip(s.iter())
                    {
                        let v = norm * qj;
                        *p = v * cj;
                        *n = v * sj;
                    }
                }
            }
            for (((cj, sj), &xj), &yj) in c.iter_mut().zip(s.iter_mut()).zip(x).zip(y) {
                let c_next = xj * *cj - yj * *sj;
                *sj = xj * *sj + yj * *cj;
                *cj = c_next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harmonics of one unit vector.
    fn one(h: &RealHarmonics, [x, y, z]: [f64; 3]) -> Vec<f64> {
        let mut out = vec![0.0; h.len()];
        h.eval_many([&[x], &[y], &[z]], &mut out, &mut HarmonicScratch::default());
        out
    }

    /// Closed forms (the same table dscribe writes out by hand for l = 2, 3).
    #[test]
    fn matches_closed_forms() {
        let h = RealHarmonics::new(3);
        let v: [f64; 3] = [0.3, -0.5, 0.7];
        let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        let [x, y, z] = v.map(|c| c / r);
        let out = one(&h, [x, y, z]);
        let expect = [
            (0, 0.5 / PI.sqrt()),
            (2, (3.0 / (4.0 * PI)).sqrt() * z),
            (3, (3.0 / (4.0 * PI)).sqrt() * x),
            (1, (3.0 / (4.0 * PI)).sqrt() * y),
            (4, 1.09254843059208 * x * y),
            (5, 1.09254843059208 * y * z),
            (6, 0.31539156525252 * (2.0 * z * z - x * x - y * y)),
            (7, 1.09254843059208 * x * z),
            (8, 0.54627421529604 * (x * x - y * y)),
            (9, 0.590043589926644 * y * (3.0 * x * x - y * y)),
            (10, 2.89061144264055 * x * y * z),
            (11, 0.457045799464466 * y * (4.0 * z * z - x * x - y * y)),
            (12, 0.373176332590115 * z * (2.0 * z * z - 3.0 * x * x - 3.0 * y * y)),
        ];
        for (i, e) in expect {
            assert!((out[i] - e).abs() < 1e-12, "Y[{i}] = {} != {e}", out[i]);
        }
    }

    /// Many vectors at once give the same bits as one at a time.
    #[test]
    fn many_at_once_equal_one_at_a_time() {
        let h = RealHarmonics::new(9);
        let vs: Vec<[f64; 3]> = (0..13)
            .map(|i| {
                let v = [(i as f64 * 0.7).sin(), (i as f64 * 1.3).cos(), 0.4 - 0.1 * i as f64];
                let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                v.map(|c| c / r)
            })
            .collect();
        let comp = |d: usize| vs.iter().map(|v| v[d]).collect::<Vec<_>>();
        let (x, y, z) = (comp(0), comp(1), comp(2));
        let mut many = vec![0.0; h.len() * vs.len()];
        h.eval_many([&x, &y, &z], &mut many, &mut HarmonicScratch::default());
        for (j, &v) in vs.iter().enumerate() {
            let alone = one(&h, v);
            for lm in 0..h.len() {
                assert_eq!(alone[lm].to_bits(), many[lm * vs.len() + j].to_bits(), "vector {j}, lm {lm}");
            }
        }
    }

    /// Σ_m Y_lm(a) Y_lm(b) = (2l+1)/4π P_l(a·b) for every l: orthonormality
    /// and completeness within each l, which is what the power spectrum uses.
    #[test]
    fn addition_theorem() {
        let l_max = 12;
        let h = RealHarmonics::new(l_max);
        let norm = |v: [f64; 3]| {
            let r = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            v.map(|c| c / r)
        };
        let a = norm([0.2, 0.9, -0.4]);
        let b = norm([-0.7, 0.1, 0.3]);
        let (ya, yb) = (one(&h, a), one(&h, b));
        let t = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        let (mut p_prev, mut p) = (0.0, 1.0);
        for l in 0..=l_max {
            if l > 0 {
                let next = ((2 * l - 1) as f64 * t * p - (l - 1) as f64 * p_prev) / l as f64;
                p_prev = p;
                p = next;
            }
            let sum: f64 = (l * l..(l + 1) * (l + 1)).map(|i| ya[i] * yb[i]).sum();
            let expect = (2 * l + 1) as f64 / (4.0 * PI) * p;
            assert!((sum - expect).abs() < 1e-11, "l={l}: {sum} != {expect}");
        }
    }
}
