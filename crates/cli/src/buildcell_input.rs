//! `autopara buildcell-input`: wfl's `create_input` on the command line.
//!
//! ```text
//! autopara buildcell-input --z 3 --vol-per-atom 5 --bond-lengths 2
//! autopara buildcell-input --z Li,Al --vol-per-atom 20,16.5 --bond-lengths 3,2.86 \
//!     --composition 1,1 --natom 6,16 -o LiAl.cell
//! ```

use autopara_buildcell::{Odd, create_input};
use autopara_core::{Error, Result, elements};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// wfl's `odd` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OddArg {
    /// Even atom counts only (wfl's `None`).
    No,
    /// Odd atom counts only.
    Only,
    /// Odd and even atom counts.
    Also,
}

/// Arguments of `autopara buildcell-input`, as wfl's `create_input`.
#[derive(Debug, Args)]
pub struct BuildcellInputArgs {
    /// Elements, as atomic numbers or symbols (comma-separated: `3,13` or `Li,Al`).
    #[arg(long, required = true, value_delimiter = ',', value_parser = parse_element)]
    pub z: Vec<u8>,
    /// Volume per atom of each element, Å³.
    #[arg(long, required = true, value_delimiter = ',')]
    pub vol_per_atom: Vec<f64>,
    /// Bond length of each element, Å.
    #[arg(long, required = true, value_delimiter = ',')]
    pub bond_lengths: Vec<f64>,
    /// Atoms of each element per formula unit (default: 1 for a single element).
    #[arg(long, value_delimiter = ',')]
    pub composition: Option<Vec<u32>>,
    /// `RSS_min_vol_per_atom` as a fraction of the volume per atom.
    #[arg(long = "rss-min-vol-factor", default_value_t = 0.5)]
    pub rss_min_vol_factor: f64,
    /// Volume range as factors of the target volume: `LO,HI`.
    #[arg(long, value_delimiter = ',', num_args = 1..=2, value_name = "LO,HI", default_values_t = [0.95, 1.05])]
    pub vol_range: Vec<f64>,
    /// MINSEP as a fraction of the mean bond length of each pair.
    #[arg(long, default_value_t = 0.9)]
    pub min_sep_factor: f64,
    /// Numbers of symmetry operations (`1-8`, `4`).
    #[arg(long, default_value = "1-8")]
    pub symmops: String,
    /// Range of total atom counts: `MIN,MAX`.
    #[arg(long, value_delimiter = ',', num_args = 1..=2, value_name = "MIN,MAX", default_values_t = [6, 24])]
    pub natom: Vec<u32>,
    /// Odd or even atom counts.
    #[arg(long, value_enum, default_value_t = OddArg::No)]
    pub odd: OddArg,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
}

/// An atomic number or an element symbol.
fn parse_element(s: &str) -> std::result::Result<u8, String> {
    let z = match s.parse::<u8>() {
        Ok(z) => Some(z),
        Err(_) => elements::atomic_number(s),
    };
    match z {
        Some(z) if z > 0 && elements::atomic_number(elements::symbol(z)) == Some(z) => Ok(z),
        _ => Err(format!("unknown element '{s}'")),
    }
}

fn pair<T: Copy>(v: &[T], field: &str) -> Result<(T, T)> {
    // `--vol-range 0.9,1.1` and `--vol-range 0.9 1.1` both give two values.
    match v {
        [a, b] => Ok((*a, *b)),
        _ => Err(Error::Args {
            context: "buildcell-input".into(),
            field: field.into(),
            message: format!("expected two values (LO,HI), got {}", v.len()),
        }),
    }
}

/// Executes `autopara buildcell-input`.
pub fn run(a: BuildcellInputArgs) -> Result<()> {
    let odd = match a.odd {
        OddArg::No => Odd::No,
        OddArg::Only => Odd::Only,
        OddArg::Also => Odd::Also,
    };
    let text = create_input(
        &a.z,
        &a.vol_per_atom,
        &a.bond_lengths,
        a.composition.as_deref(),
        a.rss_min_vol_factor,
        pair(&a.vol_range, "vol-range")?,
        a.min_sep_factor,
        &a.symmops,
        pair(&a.natom, "natom")?,
        odd,
    )
    .map_err(|e| Error::Args { context: "buildcell-input".into(), field: "-".into(), message: e.to_string() })?;
    match a.output {
        Some(path) => std::fs::write(&path, text).map_err(|e| Error::io(path, e)),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BuildcellInputArgs,
    }

    #[test]
    fn parses_wfl_style_arguments_and_writes_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("LiAl.cell");
        let w = Wrapper::try_parse_from([
            "x",
            "--z",
            "Li,13",
            "--vol-per-atom",
            "5,10",
            "--bond-lengths",
            "2,3",
            "--composition",
            "1,2",
            "-o",
            out.to_str().expect("utf-8 path"),
        ])
        .expect("parses");
        assert_eq!(w.args.z, vec![3, 13]);
        run(w.args).expect("runs");
        let text = std::fs::read_to_string(&out).expect("written");
        assert!(text.contains("#TARGVOL=16-18\n#SPECIES=Li%NUM=1,Al%NUM=2\n#NFORM={2,4,6,8}\n"), "{text}");
        assert!(text.contains("#MINSEP=0.5 Li-Li=1.8 Li-Al=2.2 Al-Al=2.7\n"));
    }

    #[test]
    fn rejects_unknown_elements_and_mismatched_lists() {
        assert!(Wrapper::try_parse_from(["x", "--z", "Qq", "--vol-per-atom", "5", "--bond-lengths", "2"]).is_err());
        let w =
            Wrapper::try_parse_from(["x", "--z", "3,4", "--vol-per-atom", "5", "--bond-lengths", "2"]).expect("parses");
        assert!(run(w.args).expect_err("mismatch").to_string().contains("mismatched lengths"));
    }
}
