//! [`create_input`]: wfl's `wfl.generate.buildcell.create_input`, writing the
//! same keys and values for the same arguments.

use crate::error::CreateInputError;
use crate::pyfmt::{python_float_repr, round_sig_figs};
use autopara_core::elements;

/// Which total atom counts `NFORM` may produce (wfl's `odd` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Odd {
    /// wfl's `odd=None`: even atom counts only.
    #[default]
    No,
    /// wfl's `odd='only'`: odd atom counts only.
    Only,
    /// wfl's `odd='also'`: odd and even atom counts.
    Also,
}

/// wfl's `create_input(z, vol_per_atom, bond_lengths, composition=None,
/// RSS_min_vol_factor=0.5, vol_range=(0.95, 1.05), min_sep_factor=0.9,
/// symmops='1-8', natom=(6, 24), odd=None)`: the buildcell input text for a
/// random structure search.
///
/// `z`, `vol_per_atom`, `bond_lengths` and `composition` (default `[1]`) have one
/// entry per species. As in wfl, `#TARGVOL` is the composition-averaged volume
/// per atom times the number of species with nonzero composition (AIRSS scales
/// `TARGVOL` by atoms per `SPECIES` entry), and numbers are written with two
/// significant figures except `RSS_min_vol_per_atom`, which is Python's `str`.
///
/// ```
/// use autopara_buildcell::{create_input, Odd};
/// let text = create_input(&[3], &[5.0], &[2.0], None, 0.5, (0.95, 1.05), 0.9, "1-8", (6, 24), Odd::No).unwrap();
/// assert!(text.contains("#TARGVOL=4.8-5.2\n"));
/// assert!(text.contains("#NFORM={6,8,10,12,14,16,18,20,22,24}\n"));
/// assert!(text.contains("#MINSEP=0.5 Li-Li=1.8\n"));
/// assert!(text.ends_with("##EXTRA_INFO RSS_min_vol_per_atom=2.5\n"));
/// ```
#[allow(clippy::too_many_arguments)] // wfl's signature, argument for argument
pub fn create_input(
    z: &[u8],
    vol_per_atom: &[f64],
    bond_lengths: &[f64],
    composition: Option<&[u32]>,
    rss_min_vol_factor: f64,
    vol_range: (f64, f64),
    min_sep_factor: f64,
    symmops: &str,
    natom: (u32, u32),
    odd: Odd,
) -> Result<String, CreateInputError> {
    let default_composition = [1u32];
    let composition = composition.unwrap_or(&default_composition);
    if z.len() != composition.len() || z.len() != vol_per_atom.len() || z.len() != bond_lengths.len() {
        return Err(CreateInputError::MismatchedLengths {
            z: z.len(),
            composition: composition.len(),
            vol_per_atom: vol_per_atom.len(),
            bond_lengths: bond_lengths.len(),
        });
    }
    let symbols = z
        .iter()
        .map(|&zi| {
            if zi == 0 || elements::atomic_number(elements::symbol(zi)) != Some(zi) {
                Err(CreateInputError::UnknownAtomicNumber(zi))
            } else {
                Ok(elements::symbol(zi))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut min_sep = String::from("0.5");
    for (i, (&z1, &b1)) in z.iter().zip(bond_lengths).enumerate() {
        for (j, (&z2, &b2)) in z.iter().zip(bond_lengths).enumerate() {
            if z1 <= z2 {
                let d = round_sig_figs(min_sep_factor * 0.5 * (b1 + b2), 2);
                min_sep.push_str(&format!(" {}-{}={d}", symbols[i], symbols[j]));
            }
        }
    }
    let species: Vec<String> = symbols.iter().zip(composition).map(|(s, n)| format!("{s}%NUM={n}")).collect();

    // numpy sums left to right, as here; Python's `sum(composition)` is exact.
    let vol_per_formula_unit: f64 = vol_per_atom.iter().zip(composition).map(|(&v, &n)| v * f64::from(n)).sum();
    let atoms_per_formula_unit: u32 = composition.iter().sum();
    let vol_per_atom = vol_per_formula_unit / f64::from(atoms_per_formula_unit);
    let nonzero_species = composition.iter().filter(|&&n| n != 0).count();
    let target_volume = vol_per_atom * nonzero_species as f64;

    if atoms_per_formula_unit == 0 {
        return Err(CreateInputError::EmptyComposition);
    }
    let mut nform = Vec::new();
    for nat in natom.0..=natom.1 {
        let even = nat % 2 == 0;
        let parity_ok = match odd {
            Odd::No => even,
            Odd::Only => !even,
            Odd::Also => true,
        };
        if nat % atoms_per_formula_unit == 0 && parity_ok {
            nform.push((nat / atoms_per_formula_unit).to_string());
        }
    }

    Ok(format!(
        "#TARGVOL={}-{}\n#SPECIES={}\n#NFORM={{{}}}\n#SYMMOPS={symmops}\n#SLACK=0.25\n#OVERLAP=0.1\n#COMPACT\n\
         #MINSEP={min_sep}\n##EXTRA_INFO RSS_min_vol_per_atom={}\n",
        round_sig_figs(target_volume * vol_range.0, 2),
        round_sig_figs(target_volume * vol_range.1, 2),
        species.join(","),
        nform.join(","),
        python_float_repr(rss_min_vol_factor * vol_per_atom),
    ))
}
