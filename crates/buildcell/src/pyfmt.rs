//! Python's float formatting, reproduced so that [`crate::create_input()`] writes
//! byte-for-byte what wfl writes: `'{:.Ng}'` / `'{:g}'` (C's `%g`) and
//! `str(float)` (the shortest round-trip representation).

/// Splits Rust's `{:.*e}` / `{:e}` output (`"1.25e-3"`) into digits and exponent.
fn split_exp(s: &str) -> (&str, i32) {
    match s.split_once('e') {
        // Rust always prints a valid integer exponent after `e`.
        Some((m, e)) => (m, e.parse().unwrap_or(0)),
        None => (s, 0),
    }
}

/// Removes trailing zeros after a decimal point, and the point itself if nothing follows.
fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

/// C's exponent suffix: `e+06`, `e-05` (sign always, at least two digits).
fn c_exponent(exp: i32) -> String {
    format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// Python's `'{:.{p}g}'.format(x)` (C's `%.pg`, trailing zeros removed).
///
/// ```
/// use autopara_buildcell::pyfmt::format_g;
/// assert_eq!(format_g(4.75, 2), "4.8");
/// assert_eq!(format_g(1234567.0, 2), "1.2e+06");
/// assert_eq!(format_g(0.0001234, 2), "0.00012");
/// assert_eq!(format_g(1.0e-5, 6), "1e-05");
/// ```
pub fn format_g(x: f64, precision: usize) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let p = precision.max(1);
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // The exponent after rounding to p significant digits decides the style.
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = split_exp(&sci);
    if exp < -4 || exp >= p as i32 {
        format!("{}{}", strip_fraction_zeros(mantissa), c_exponent(exp))
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_fraction_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

/// wfl's `round_sig_figs(value, n)`: `'{:g}'.format(float('{:.{n}g}'.format(value)))`.
///
/// ```
/// use autopara_buildcell::pyfmt::round_sig_figs;
/// assert_eq!(round_sig_figs(4.75, 2), "4.8");
/// assert_eq!(round_sig_figs(16.625, 2), "17");
/// assert_eq!(round_sig_figs(1.8, 2), "1.8");
/// ```
pub fn round_sig_figs(value: f64, n_sig_figs: usize) -> String {
    let rounded = format_g(value, n_sig_figs);
    // `format_g` output always parses back (Rust accepts `1.2e+06`).
    let back: f64 = rounded.parse().unwrap_or(value);
    format_g(back, 6)
}

/// Python's `str(x)` / `repr(x)` for a float: shortest round-trip digits,
/// positional for exponents in `-4..16`, else `1e-05` / `1e+16` style.
///
/// ```
/// use autopara_buildcell::pyfmt::python_float_repr;
/// assert_eq!(python_float_repr(2.5), "2.5");
/// assert_eq!(python_float_repr(10.0), "10.0");
/// assert_eq!(python_float_repr(25.0 / 6.0), "4.166666666666667");
/// assert_eq!(python_float_repr(1e-5), "1e-05");
/// assert_eq!(python_float_repr(1e16), "1e+16");
/// ```
pub fn python_float_repr(x: f64) -> String {
    if !x.is_finite() {
        return format_g(x, 1);
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = split_exp(&sci);
    if (-4..16).contains(&exp) {
        let digits = mantissa.chars().filter(char::is_ascii_digit).count() as i32;
        let decimals = (digits - 1 - exp).max(0) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        format!("{mantissa}{}", c_exponent(exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_formatting_edge_cases() {
        assert_eq!(format_g(0.0, 2), "0");
        assert_eq!(format_g(100.0, 2), "1e+02");
        assert_eq!(format_g(99.0, 2), "99");
        assert_eq!(format_g(-0.5, 2), "-0.5");
        assert_eq!(format_g(1200000.0, 6), "1.2e+06");
        assert_eq!(format_g(120000.0, 6), "120000");
    }

    #[test]
    fn repr_edge_cases() {
        assert_eq!(python_float_repr(0.1), "0.1");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(-123.0), "-123.0");
        assert_eq!(python_float_repr(1.5e300), "1.5e+300");
        assert_eq!(python_float_repr(0.01), "0.01");
    }
}
