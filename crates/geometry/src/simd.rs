//! Loops over slices compiled for the widest vector unit the CPU has
//! (AVX-512F, AVX2, else the x86-64 baseline), chosen at run time, and an
//! exponential those loops can vectorise.
//!
//! Every variant is the same Rust code, and Rust never fuses a multiply and
//! an add on its own, so all variants give bit-identical results: a
//! trajectory does not depend on the machine it ran on.
//!
//! ```
//! use autopara_geometry::simd::{self, Kernel};
//! /// Doubles every value; compiled once per vector unit.
//! struct Double<'a>(&'a mut [f64]);
//! impl Kernel for Double<'_> {
//!     type Output = ();
//!     #[inline(always)]
//!     fn run(self) {
//!         for x in self.0 {
//!             *x *= 2.0;
//!         }
//!     }
//! }
//! let mut v = vec![1.0, 2.5];
//! simd::run(Double(&mut v));
//! assert_eq!(v, [2.0, 5.0]);
//! assert_eq!(simd::exp(0.0), 1.0);
//! ```

use crate::float::ROUNDER;

/// A loop to compile once per vector unit: implement [`Kernel::run`] with
/// `#[inline(always)]` so that each variant of [`run`] gets its own copy.
pub trait Kernel {
    /// What the loop returns.
    type Output;
    /// The loop.
    fn run(self) -> Self::Output;
}

/// The vector units a kernel can be compiled for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Baseline,
    Avx2,
    Avx512,
}

/// The widest vector unit this CPU has.
fn widest() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// The vector unit kernels run on: the widest present, or a narrower one
/// named by `AUTOPARA_SIMD` (`baseline`, `avx2`, `avx512`; to compare them:
/// results are the same). A unit the CPU lacks, or any other value, leaves
/// the widest.
fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let widest = widest();
        let asked = match std::env::var("AUTOPARA_SIMD").as_deref() {
            Ok("baseline") => Level::Baseline,
            Ok("avx2") => Level::Avx2,
            _ => Level::Avx512,
        };
        asked.min(widest)
    })
}

/// Runs `kernel` compiled for the widest vector unit the CPU has, or the
/// narrower one `AUTOPARA_SIMD` names.
pub fn run<K: Kernel>(kernel: K) -> K::Output {
    match level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` never exceeds what `widest` detected on this CPU.
        #[allow(unsafe_code)]
        Level::Avx512 => unsafe { x86::avx512(kernel) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        #[allow(unsafe_code)]
        Level::Avx2 => unsafe { x86::avx2(kernel) },
        _ => kernel.run(),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Kernel;

    /// `kernel` compiled with AVX-512F (8 doubles a vector).
    #[target_feature(enable = "avx512f")]
    pub(super) fn avx512<K: Kernel>(kernel: K) -> K::Output {
        kernel.run()
    }

    /// `kernel` compiled with AVX2 (4 doubles a vector).
    #[target_feature(enable = "avx2")]
    pub(super) fn avx2<K: Kernel>(kernel: K) -> K::Output {
        kernel.run()
    }
}

/// `ln 2` split so that `n · LN2_HI` is exact for |n| < 2^21 (32 significant bits).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
/// `ln 2 − LN2_HI`.
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// `e^x` without branches or library calls, so that loops over it vectorise:
/// for −708 ≤ x ≤ 709 it agrees with glibc's `exp` (itself within an ulp of
/// the exact value) to one unit in the last place, and differs in the last
/// bit for a tenth of arguments. Below −708 it gives 0 (the true value is subnormal or
/// zero), above 709 infinity, and NaN for NaN.
///
/// `x = n ln 2 + r` with |r| ≤ ln 2 / 2, `e^r` by its Taylor series to degree
/// 13 (truncation below 10⁻¹⁷ relative), then scaled by 2^n through the
/// exponent bits.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let xc = x.clamp(-708.0, 709.0); // NaN stays NaN
    let t = xc * std::f64::consts::LOG2_E + ROUNDER;
    let n = t - ROUNDER;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    // 1/k! for k = 13 down to 2, Horner; the leading 1 + r added last.
    let mut p = 1.0 / 6_227_020_800.0;
    for c in [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
    ] {
        p = p * r + c;
    }
    let er = 1.0 + (r + r * r * p);
    // n = t's low mantissa bits minus ROUNDER's, as a two's complement
    // integer; 2^n from the biased exponent n + 1023 (1 ..= 2046 here).
    let n_bits = t.to_bits().wrapping_sub(ROUNDER.to_bits());
    let scale = f64::from_bits(n_bits.wrapping_add(1023) << 52);
    let y = er * scale;
    if x < -708.0 {
        0.0
    } else if x > 709.0 {
        f64::INFINITY
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn exp_within_one_ulp_of_std() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut worst = 0;
        for _ in 0..200_000 {
            let x: f64 = rng.random_range(-708.0..709.0);
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        for x in [0.0, -0.0, 1.0, -1.0, 1e-300, -1e-20, 0.5 * std::f64::consts::LN_2, -708.0, 709.0, -37.0] {
            worst = worst.max(ulps(exp(x), x.exp()));
        }
        assert!(worst <= 1, "{worst} ulps");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-709.0), 0.0);
        assert_eq!(exp(-f64::INFINITY), 0.0);
        assert_eq!(exp(710.0), f64::INFINITY);
        assert_eq!(exp(f64::INFINITY), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
    }

    /// Exponentials of a slice, in place.
    struct ExpAll<'a>(&'a mut [f64]);

    impl Kernel for ExpAll<'_> {
        type Output = ();
        #[inline(always)]
        fn run(self) {
            for x in self.0 {
                *x = exp(*x);
            }
        }
    }

    #[test]
    fn every_vector_unit_gives_the_same_bits() {
        let mut rng = StdRng::seed_from_u64(2);
        let xs: Vec<f64> = (0..4099).map(|_| rng.random_range(-720.0..720.0)).collect();
        let mut baseline = xs.clone();
        ExpAll(&mut baseline).run();
        let mut dispatched = xs.clone();
        run(ExpAll(&mut dispatched));
        assert_eq!(
            baseline.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            dispatched.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        #[cfg(target_arch = "x86_64")]
        for (feature, present) in [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ] {
            if !present {
                eprintln!("every_vector_unit_gives_the_same_bits: this CPU has no {feature}; not compared");
                continue;
            }
            let mut v = xs.clone();
            // SAFETY: the feature was detected just above.
            #[allow(unsafe_code)]
            unsafe {
                if feature == "avx2" { x86::avx2(ExpAll(&mut v)) } else { x86::avx512(ExpAll(&mut v)) }
            }
            assert!(v.iter().zip(&baseline).all(|(a, b)| a.to_bits() == b.to_bits()), "{feature} differs");
        }
    }
}
