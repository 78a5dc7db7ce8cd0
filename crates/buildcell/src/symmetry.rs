//! Space groups for symmetric structure generation: AIRSS's choice of groups
//! for a number of operations, and each group's operations and Wyckoff orbits
//! in its primitive cell, taken from moyo's tables.

use moyo::data::{Centering, HallSymbol, Setting, hall_symbol_entry, iter_wyckoff_positions_from_hall_number};
use nalgebra::{Matrix3, Vector3};
use rand::Rng;

/// The space-group numbers AIRSS's buildcell picks from for `nops` symmetry
/// operations (the order of the point group, i.e. operations per primitive cell).
///
/// ```
/// use autopara_buildcell::symmetry::space_groups_with_ops;
/// assert_eq!(space_groups_with_ops(3), vec![143, 144, 145, 146]);
/// assert_eq!(space_groups_with_ops(48).len(), 10);
/// assert!(space_groups_with_ops(5).is_empty());
/// ```
pub fn space_groups_with_ops(nops: usize) -> Vec<i32> {
    let ranges: &[std::ops::RangeInclusive<i32>] = match nops {
        1 => &[1..=1],
        2 => &[2..=9],
        3 => &[143..=146],
        4 => &[10..=46, 75..=82],
        6 => &[147..=161, 168..=174],
        8 => &[47..=74, 83..=122],
        12 => &[162..=167, 175..=190, 195..=199],
        16 => &[123..=142],
        24 => &[200..=220],
        48 => &[221..=230],
        _ => &[],
    };
    ranges.iter().flat_map(|r| r.clone()).collect()
}

/// An affine map `u ↦ a u + b` from a Wyckoff position's free parameters to
/// one atom's fractional coordinates in the primitive cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Affine {
    /// Linear part.
    pub a: Matrix3<f64>,
    /// Translation part.
    pub b: Vector3<f64>,
}

/// A Wyckoff position of a group, as orbits in the primitive cell.
#[derive(Debug, Clone)]
pub struct Site {
    /// Wyckoff letter.
    pub letter: char,
    /// Atoms per primitive cell in one orbit.
    pub multiplicity: usize,
    /// True when the position has no free parameter (a single point).
    pub fixed: bool,
    /// One map per atom of the orbit.
    pub images: Vec<Affine>,
}

/// A space group ready for structure generation, in its primitive cell.
#[derive(Debug, Clone)]
pub struct SpaceGroupModel {
    /// International number.
    pub number: i32,
    /// Rotations of the conventional cell (fractional), to symmetrize the metric.
    conventional_rotations: Vec<Matrix3<f64>>,
    /// Columns: the primitive basis vectors in conventional fractional coordinates.
    primitive_in_conventional: Matrix3<f64>,
    /// Operations `(W, t)` on primitive fractional coordinates, one per point-group element.
    pub operations: Vec<(Matrix3<i32>, Vector3<f64>)>,
    /// Wyckoff positions, general position first.
    pub sites: Vec<Site>,
}

/// A generic point for telling apart the distinct images of a Wyckoff position.
const GENERIC: [f64; 3] = [0.123_456_7, 0.371_113_5, 0.638_921_3];

/// Parses moyo's Wyckoff coordinate triplets (`x,1/4,-x+1/2`, `2x,x,z`).
fn parse_wyckoff(coords: &str) -> Option<(Matrix3<f64>, Vector3<f64>)> {
    let compact: String = coords.chars().filter(|c| !c.is_whitespace()).collect();
    let terms: Vec<&str> = compact.split(',').collect();
    if terms.len() != 3 {
        return None;
    }
    let mut lin = Matrix3::zeros();
    let mut origin = Vector3::zeros();
    for (row, term) in terms.iter().enumerate() {
        let mut tokens: Vec<(f64, String)> = Vec::new();
        let mut sign = 1.0;
        let mut tok = String::new();
        for c in term.chars() {
            if c == '+' || c == '-' {
                if !tok.is_empty() {
                    tokens.push((sign, std::mem::take(&mut tok)));
                }
                sign = if c == '-' { -1.0 } else { 1.0 };
            } else {
                tok.push(c);
            }
        }
        if !tok.is_empty() {
            tokens.push((sign, tok));
        }
        for (sign, tok) in tokens {
            let last = tok.chars().last()?;
            if let Some(col) = "xyz".find(last) {
                let coeff_text = &tok[..tok.len() - 1];
                let coeff: f64 = if coeff_text.is_empty() { 1.0 } else { coeff_text.parse().ok()? };
                lin[(row, col)] += sign * coeff;
            } else {
                let value = match tok.split_once('/') {
                    Some((n, d)) => n.parse::<f64>().ok()? / d.parse::<f64>().ok()?,
                    None => tok.parse::<f64>().ok()?,
                };
                origin[row] += sign * value;
            }
        }
    }
    Some((lin, origin))
}

/// Wraps a fractional vector into [0, 1).
pub fn wrap(v: &Vector3<f64>) -> Vector3<f64> {
    v.map(|x| x - x.floor())
}

/// True when `a` and `b` are the same point modulo lattice translations.
pub fn same_mod_lattice(a: &Vector3<f64>, b: &Vector3<f64>, tol: f64) -> bool {
    let d = a - b;
    d.iter().all(|x| (x - x.round()).abs() < tol)
}

impl SpaceGroupModel {
    /// The group with international number `number` in moyo's standard setting.
    pub fn new(number: i32) -> Option<SpaceGroupModel> {
        let hall_number = Setting::Standard.hall_number(number)?;
        let entry = hall_symbol_entry(hall_number)?;
        let hall = HallSymbol::from_hall_number(hall_number)?;
        let conventional_ops = hall.traverse();
        let centering: Centering = entry.centering;
        let to_primitive = centering.linear().map(f64::from);
        let primitive_in_conventional = to_primitive.try_inverse()?;

        let conventional_rotations: Vec<Matrix3<f64>> =
            conventional_ops.iter().map(|op| op.rotation.map(f64::from)).collect();
        let operations = conventional_ops
            .iter()
            .map(|op| {
                let w = to_primitive * op.rotation.map(f64::from) * primitive_in_conventional;
                (w.map(|x| x.round() as i32), wrap(&(to_primitive * op.translation)))
            })
            .collect();

        let mut sites = Vec::new();
        for wp in iter_wyckoff_positions_from_hall_number(hall_number) {
            let Some((lin, origin)) = parse_wyckoff(wp.coordinates) else { continue };
            let u = Vector3::from(GENERIC);
            let mut images: Vec<Affine> = Vec::new();
            let mut points: Vec<Vector3<f64>> = Vec::new();
            for op in &conventional_ops {
                let w = op.rotation.map(f64::from);
                let a = to_primitive * w * lin;
                let b = to_primitive * (w * origin + op.translation);
                let x = wrap(&(a * u + b));
                if !points.iter().any(|p| same_mod_lattice(p, &x, 1e-6)) {
                    points.push(x);
                    images.push(Affine { a, b });
                }
            }
            // Guards against any mismatch between the tables: the orbit must have
            // the tabulated size in the primitive cell.
            if images.len() * centering.order() != wp.multiplicity {
                continue;
            }
            sites.push(Site {
                letter: wp.letter,
                multiplicity: images.len(),
                fixed: lin.iter().all(|&x| x == 0.0),
                images,
            });
        }
        Some(SpaceGroupModel { number, conventional_rotations, primitive_in_conventional, operations, sites })
    }

    /// A random metric tensor of the primitive cell, invariant under the group:
    /// a random metric (lengths within a factor of 4, angles 60–120°) of the
    /// conventional cell averaged over the rotations, then expressed in the
    /// primitive basis. Scale is arbitrary.
    pub fn random_metric<R: Rng>(&self, rng: &mut R) -> Option<Matrix3<f64>> {
        let len: [f64; 3] = std::array::from_fn(|_| rng.random_range(0.2..0.8));
        let cos: [f64; 3] = std::array::from_fn(|_| rng.random_range(60.0f64..120.0).to_radians().cos());
        // cos[0] = cos(alpha) between b and c, cos[1] = cos(beta) a-c, cos[2] = cos(gamma) a-b.
        let g0 = Matrix3::new(
            len[0] * len[0],
            len[0] * len[1] * cos[2],
            len[0] * len[2] * cos[1],
            len[0] * len[1] * cos[2],
            len[1] * len[1],
            len[1] * len[2] * cos[0],
            len[0] * len[2] * cos[1],
            len[1] * len[2] * cos[0],
            len[2] * len[2],
        );
        let n = self.conventional_rotations.len() as f64;
        let g_conv = self.conventional_rotations.iter().map(|w| w.transpose() * g0 * w).sum::<Matrix3<f64>>() / n;
        let m = self.primitive_in_conventional;
        let g = m.transpose() * g_conv * m;
        // A metric from lengths/angles that cannot close a cell is rejected here.
        (g.determinant() > 1e-12 * g.trace().powi(3)).then_some(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_airss_group_builds_with_the_right_order_and_a_general_position() {
        for nops in crate::input::CRYSTAL_SYMMOPS {
            for number in space_groups_with_ops(nops) {
                let g = SpaceGroupModel::new(number).unwrap_or_else(|| panic!("group {number}"));
                assert_eq!(g.operations.len(), nops, "group {number}");
                let general = &g.sites[0];
                assert_eq!(general.multiplicity, nops, "group {number}");
                assert!(!general.fixed);
                // Every Wyckoff position of the table survived the size check.
                let tabulated =
                    iter_wyckoff_positions_from_hall_number(Setting::Standard.hall_number(number).unwrap_or_default())
                        .count();
                assert_eq!(g.sites.len(), tabulated, "group {number}");
            }
        }
    }

    #[test]
    fn wyckoff_parser_reads_moyo_forms() {
        let (lin, origin) = parse_wyckoff("-x+y,2x,1/4").unwrap_or_default();
        assert_eq!(lin, Matrix3::new(-1.0, 1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0));
        assert_eq!(origin, Vector3::new(0.0, 0.0, 0.25));
    }
}
