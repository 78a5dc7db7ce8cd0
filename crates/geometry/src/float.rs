//! Branch-free rounding of doubles to integers, for loops that must not
//! branch or call libm (the neighbour search, vectorised exponentials).
//!
//! ```
//! use autopara_geometry::float::{ceil_i32, floor_i32};
//! assert_eq!((floor_i32(-1.5), floor_i32(2.0), ceil_i32(-1.5), ceil_i32(2.25)), (-2, 2, -1, 3));
//! ```

/// 1.5 · 2^52: adding it rounds a double of magnitude below 2^51 to an
/// integer, which then sits in the low bits of the sum's mantissa.
pub const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// `floor(x)` as an integer without branches or a libm call, for |x| < 2^30:
/// rounds to nearest with [`ROUNDER`] (the low mantissa bits are then the
/// integer) and steps down when that rounded up.
#[inline]
pub fn floor_i32(x: f64) -> i32 {
    let t = x + ROUNDER;
    // Truncating the bits to 32 is the trick: the low word is the integer.
    let nearest = (t.to_bits() as u32) as i32;
    nearest - i32::from(t - ROUNDER > x)
}

/// `ceil(x)` as an integer, for |x| < 2^30.
#[inline]
pub fn ceil_i32(x: f64) -> i32 {
    -floor_i32(-x)
}
