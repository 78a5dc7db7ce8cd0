//! `autopara run OP -i IN... -o OUT ...`: one op over inputs into outputs.

use autopara_core::autopara_info::AutoparaInfo;
use autopara_core::{ConfigSet, Error, OutputSpec, Result, runner};
use clap::Args;
use std::path::Path;

/// Arguments of `autopara run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The op (see `autopara ops`).
    pub op: String,
    /// Input files or globs (several allowed).
    #[arg(short = 'i', long = "inputs", num_args = 1.., value_name = "IN")]
    pub inputs: Vec<String>,
    /// Output file, or a template with `{stem}` for one output per input file.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: String,
    /// The op's arguments: JSON text, or @FILE.json / @FILE.toml.
    #[arg(long, value_name = "JSON|@FILE")]
    pub args: Option<String>,
    /// Feed counters 0..N to a generator op (instead of inputs).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Number of workers (default: $AUTOPARA_NUM_WORKERS, else all cores).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Items per chunk (default: the op's).
    #[arg(long, value_name = "N")]
    pub chunk_size: Option<usize>,
    /// Seed of the per-item random streams (default 0).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Recompute even when the output exists (stale, foreign or current).
    #[arg(long)]
    pub overwrite: bool,
    /// Record failed items and go on (true, the default) or stop at the first.
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
    pub skip_failed: Option<bool>,
    /// Info entry added to every output configuration (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// No start line, progress or summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Say whether the output would be reused, resumed or computed, and why; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rerun only the items recorded as failed in the complete output, and merge them in.
    #[arg(long, conflicts_with = "overwrite")]
    pub retry_failed: bool,
    /// Run the chunks as batch jobs: remote info as JSON or TOML text or a file,
    /// bare or keyed by op name (default: $AUTOPARA_REMOTE_INFO). See docs/queue.md.
    #[arg(long, value_name = "JSON|TOML|FILE")]
    pub remote_info: Option<String>,
}

/// Parses `--args`: JSON text, `@FILE.json` or `@FILE.toml`; absent means `{}`.
pub fn parse_op_args(text: Option<&str>) -> Result<serde_json::Value> {
    let Some(text) = text else { return Ok(serde_json::json!({})) };
    let bad = |source: &str, message: String| Error::Args { context: "--args".into(), field: source.into(), message };
    match text.strip_prefix('@') {
        Some(file) => {
            let path = Path::new(file);
            let content = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            match path.extension().and_then(|e| e.to_str()) {
                Some("toml") => toml::from_str(&content).map_err(|e| bad(file, e.to_string())),
                Some("json") => serde_json::from_str(&content).map_err(|e| bad(file, e.to_string())),
                _ => Err(bad(file, "expected a .json or .toml file".into())),
            }
        }
        None => serde_json::from_str(text).map_err(|e| bad("-", format!("invalid JSON: {e}"))),
    }
}

/// Parses `KEY=VALUE` into a tag; the value is typed as in extxyz (`1` int, `T` bool, ...).
pub fn parse_tag(text: &str) -> Result<(String, autopara_core::Value)> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => {
            let value = autopara_core::extxyz::parse_value(v);
            autopara_core::extxyz::check_info_entry(k, &value).map_err(|message| Error::Args {
                context: "--tag".into(),
                field: text.into(),
                message,
            })?;
            Ok((k.to_string(), value))
        }
        _ => Err(Error::Args { context: "--tag".into(), field: text.into(), message: "expected KEY=VALUE".into() }),
    }
}

/// Executes `autopara run`.
pub fn run(a: RunArgs) -> Result<()> {
    // Report an unknown op first, then bad inputs, then bad arguments.
    let registration = autopara_core::find_op(&a.op)?;
    let inputs = match (a.count, a.inputs.is_empty()) {
        (Some(n), true) => ConfigSet::counters(n),
        (None, false) => ConfigSet::from_paths(&a.inputs)?,
        (Some(_), false) => return Err(Error::Input("give either inputs (-i) or --count, not both".into())),
        (None, true) => return Err(Error::Input("no inputs: give -i IN... (or --count N for generator ops)".into())),
    };
    runner::check_input_kind(registration.info, &inputs)?;
    let op = (registration.build)(parse_op_args(a.args.as_deref())?)?;
    let mut outputs = OutputSpec::from_arg(&a.output).overwrite(a.overwrite);
    for t in &a.tags {
        let (k, v) = parse_tag(t)?;
        outputs = outputs.with_tag(k, v);
    }
    let backend = crate::remote::backend(a.remote_info.as_deref(), op.info().name, a.retry_failed)?;
    let info = AutoparaInfo {
        backend,
        workers: a.workers,
        chunk_size: a.chunk_size,
        seed: a.seed,
        skip_failed: a.skip_failed,
        progress: a.quiet.then_some(false),
        ..Default::default()
    };
    if a.dry_run {
        println!("{}", runner::explain(op.as_ref(), &inputs, &outputs, &info)?);
        return Ok(());
    }
    if a.retry_failed {
        runner::retry_failed(op.as_ref(), &inputs, &outputs, &info)?;
    } else {
        runner::run(op.as_ref(), &inputs, &outputs, &info)?;
    }
    Ok(())
}
