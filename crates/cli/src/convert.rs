//! `autopara convert IN... -o OUT [--tag KEY=VALUE]... [--overwrite] [--workers N]`: reads
//! extxyz inputs (files or globs) and writes them to an output file, or to one
//! file per input with a `{stem}` template, adding tags to every configuration.
//!
//! It is a run of the `convert` op (each configuration unchanged) through the
//! same executor and file sink as `autopara run`, so its outputs appear only
//! when complete, with a run record beside them. Unlike `run`, an existing
//! output is an error without `--overwrite`, never reused.

use crate::run::parse_tag;
use autopara_core::autopara_info::AutoparaInfo;
use autopara_core::runner::PreparedRun;
use autopara_core::{ConfigSet, InputKind, Item, ItemResult, OpInfo, Operation, OutputSpec, Result, WorkerContext};

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
    /// Threads that parse and write the configurations (default:
    /// $AUTOPARA_NUM_WORKERS, else all cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

/// The op behind `autopara convert`: every configuration as it is (tags are
/// added by the output). Not registered: it runs only here.
static CONVERT_INFO: OpInfo = OpInfo {
    name: "convert",
    version: 1,
    default_chunk_size: 64,
    summary: "copy configurations unchanged",
    input_kind: InputKind::Configs,
};

struct Convert;

impl Operation for Convert {
    fn info(&self) -> &'static OpInfo {
        &CONVERT_INFO
    }

    fn args(&self) -> serde_json::Value {
        serde_json::json!({})
    }

    fn run_chunk(&self, items: &[Item], _ctx: &mut WorkerContext) -> Vec<ItemResult> {
        items.iter().map(|item| Ok(vec![item.atoms()?.clone()])).collect()
    }
}

/// Runs the conversion; prints what was written.
pub fn run(args: &ConvertArgs) -> Result<()> {
    let inputs = ConfigSet::from_paths(&args.inputs)?;
    let mut spec = OutputSpec::from_arg(&args.output).overwrite(args.overwrite);
    for t in &args.tags {
        let (k, v) = parse_tag(t)?;
        spec = spec.with_tag(k, v);
    }
    spec.check_existing(&spec.resolve(&inputs)?)?;
    // The workers parse the input frames and write the output ones, which is
    // all the work. Nothing fails per item, and a bad input frame stops the
    // run with its error.
    let info =
        AutoparaInfo { workers: args.workers, skip_failed: Some(false), progress: Some(false), ..Default::default() };
    let run = PreparedRun::new(&Convert, &inputs, &spec, &info)?;
    let names: Vec<String> = run.paths().iter().map(|f| f.display().to_string()).collect();
    // Counted from the records: a resumed conversion reports every configuration.
    let n: u64 = run.execute()?.records.iter().map(|r| r.configs).sum();
    println!("convert: {n} configurations from {} files -> {}", inputs.files().len(), names.join(", "));
    Ok(())
}
