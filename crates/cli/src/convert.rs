//! `autopara convert IN... -o OUT [--tag KEY=VALUE]... [--overwrite]`: reads
//! extxyz inputs (files or globs) and writes them to an output file, or to one
//! file per input with a `{stem}` template, adding tags to every configuration.

use crate::run::parse_tag;
use autopara_core::{ConfigSet, Error, OutputSpec, Result, outputspec::Outputs};

/// Arguments of `autopara convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Input files or globs (quote globs so the shell leaves them alone).
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Output file, or a template with `{stem}` for one output per input file.
    #[arg(short, long)]
    pub output: String,
    /// Info entries added to every configuration; VALUE is typed as on an
    /// extxyz comment line (`3` int, `2.5` float, `T` bool, else string).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Replace existing output files.
    #[arg(long)]
    pub overwrite: bool,
}

/// Runs the conversion; prints what was written.
pub fn run(args: &ConvertArgs) -> Result<()> {
    let inputs = ConfigSet::from_paths(&args.inputs)?;
    let mut spec = OutputSpec::from_arg(&args.output).overwrite(args.overwrite);
    for t in &args.tags {
        let (k, v) = parse_tag(t)?;
        spec = spec.with_tag(k, v);
    }
    let mut writer = spec.writer(&inputs)?;
    let mut n = 0u64;
    for item in inputs.items()? {
        let item = item?;
        let atoms = item.atoms().map_err(|e| Error::Other(e.message))?;
        writer.write(&item.location, std::slice::from_ref(atoms))?;
        n += 1;
    }
    if let Outputs::Files(files) = writer.finish()? {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        println!("convert: {n} configurations from {} files -> {}", inputs.files().len(), names.join(", "));
    }
    Ok(())
}
