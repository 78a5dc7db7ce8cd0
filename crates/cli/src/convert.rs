//! `autopara convert IN... -o OUT [--tag KEY=VALUE]... [--overwrite]`: reads
//! extxyz inputs (files or globs) and writes them to an output file, or to one
//! file per input with a `{stem}` template, adding tags to every configuration.

use autopara_core::{ConfigSet, Error, OutputSpec, Result, Value, extxyz, outputspec::Outputs};

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
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, Value)>,
    /// Replace existing output files.
    #[arg(long)]
    pub overwrite: bool,
}

/// Parses `KEY=VALUE` (a `--tag` argument).
pub fn parse_tag(arg: &str) -> std::result::Result<(String, Value), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), extxyz::parse_value(v))),
        _ => Err(format!("'{arg}' is not KEY=VALUE")),
    }
}

/// Runs the conversion; prints what was written.
pub fn run(args: &ConvertArgs) -> Result<()> {
    let inputs = ConfigSet::from_paths(&args.inputs)?;
    let mut spec = OutputSpec::from_arg(&args.output).overwrite(args.overwrite);
    for (k, v) in &args.tags {
        spec = spec.with_tag(k.clone(), v.clone());
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
