//! `autopara pipeline FILE.toml`: several ops in a row, each step cached and
//! resumed like `autopara run`.
//!
//! ```toml
//! [settings]            # defaults for every step: workers, chunk_size, seed, skip_failed
//! seed = 7
//!
//! [[step]]
//! name = "structures"
//! op = "buildcell"
//! count = 100           # counters for generator ops
//! output = "structures.xyz"
//! args = { buildcell_input = "#TARGVOL=19-21\n#SPECIES=Li%NUM=1\n#NFORM={8}\n#MINSEP=0.5 Li-Li=2.7\n" }
//!
//! [[step]]
//! name = "relaxed"
//! op = "minim"
//! inputs = ["@structures"]   # a previous step's output, or files and globs
//! output = "relaxed.xyz"
//! args = { calculator = { type = "emt" }, fmax = 0.05 }
//! settings = { chunk_size = 4 }
//! ```
//!
//! Relative paths resolve against `--dir` (default: the pipeline file's
//! directory). Rerunning a finished pipeline does no work (every step is
//! reused). When a step's key changed (its arguments, or its inputs because an
//! earlier step changed), that step is recomputed, replacing the output it
//! wrote earlier: a pipeline file states what its outputs should be. A file
//! that autopara did not write is still refused unless `--overwrite`.

use autopara_core::autopara_info::AutoparaInfo;
use autopara_core::runner::{Action, PreparedRun};
use autopara_core::{ConfigSet, Error, OutputSpec, Result, build_op, cache};
use clap::Args;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Arguments of `autopara pipeline`.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The pipeline file (TOML).
    pub file: PathBuf,
    /// Directory that relative paths resolve against (default: the file's directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Recompute every step, replacing existing outputs (also files autopara did not write).
    #[arg(long)]
    pub overwrite: bool,
    /// Say what each step would do (reuse, resume, compute), run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Number of workers for every step (overrides the file).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// No start lines or progress.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Execution settings of a step, or defaults for all steps.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSettings {
    /// Number of workers.
    pub workers: Option<usize>,
    /// Items per chunk.
    pub chunk_size: Option<usize>,
    /// Seed of the per-item random streams.
    pub seed: Option<u64>,
    /// Record failed items and go on (default) or stop at the first.
    pub skip_failed: Option<bool>,
}

impl StepSettings {
    /// `self` where set, else `defaults`.
    fn or(&self, defaults: &StepSettings) -> StepSettings {
        StepSettings {
            workers: self.workers.or(defaults.workers),
            chunk_size: self.chunk_size.or(defaults.chunk_size),
            seed: self.seed.or(defaults.seed),
            skip_failed: self.skip_failed.or(defaults.skip_failed),
        }
    }
}

/// One step of a pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique name; later steps use `@name` as an input.
    pub name: String,
    /// The registered op.
    pub op: String,
    /// Files, globs, or `@step` references. Empty for generator ops.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Counters 0..count for generator ops.
    pub count: Option<u64>,
    /// Output file, or a `{stem}` template.
    pub output: String,
    /// The op's arguments.
    #[serde(default = "empty_table")]
    pub args: toml::Value,
    /// Info entries added to every output configuration.
    #[serde(default)]
    pub tags: toml::Table,
    /// Per-step execution settings.
    #[serde(default)]
    pub settings: StepSettings,
    /// Run this step as batch jobs: a `RemoteInfo` table (see docs/queue.md);
    /// without it the pipeline's `remote_info` (or else `AUTOPARA_REMOTE_INFO`)
    /// may name the step or its op.
    pub remote_info: Option<toml::Value>,
}

fn empty_table() -> toml::Value {
    toml::Value::Table(toml::Table::new())
}

/// A pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Defaults for every step.
    #[serde(default)]
    pub settings: StepSettings,
    /// Remote info for the steps without their own, as `AUTOPARA_REMOTE_INFO`
    /// holds it: keyed by step name or op (`[remote_info.relax]`,
    /// `[remote_info."*"]`), or one bare `RemoteInfo` for every step. It
    /// replaces the environment's; a step it has no entry for runs locally.
    pub remote_info: Option<toml::Value>,
    /// The steps, run in order.
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

impl Pipeline {
    /// Reads and parses a pipeline file.
    pub fn load(path: &Path) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| Error::Args {
            context: path.display().to_string(),
            field: "-".into(),
            message: e.to_string(),
        })
    }
}

/// What a step did, for the caller's summary.
#[derive(Debug)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
    /// Reused, resumed, computed.
    pub action: Action,
    /// The output files.
    pub outputs: Vec<PathBuf>,
    /// Items processed in this invocation.
    pub items: u64,
    /// Items that failed in this invocation.
    pub failed: u64,
}

/// One input of a planned step.
enum Input {
    /// A file or glob (resolved against the pipeline's directory).
    Path(String),
    /// The outputs of the earlier step with this index: one file, or one per
    /// input file for a `{stem}` template, known once that step has run.
    Step(usize),
}

/// A step with everything resolved, checked before any step runs.
struct Planned<'a> {
    step: &'a Step,
    inputs: Vec<Input>,
    output: String,
    args: serde_json::Value,
    settings: StepSettings,
    /// The step's queue backend, when it runs as batch jobs.
    backend: Option<std::sync::Arc<dyn autopara_core::executor::backend::Backend>>,
}

fn step_error(step: &Step, field: &str, message: impl Into<String>) -> Error {
    Error::Args { context: format!("pipeline step '{}'", step.name), field: field.into(), message: message.into() }
}

/// Resolves references and paths, builds every op (validating its
/// arguments) and every step's queue backend (its system and resources)
/// before anything runs.
fn plan<'a>(pipeline: &'a Pipeline, dir: &Path, cli_workers: Option<usize>) -> Result<Vec<Planned<'a>>> {
    let resolve = |p: &str| -> String {
        if Path::new(p).is_absolute() { p.to_string() } else { dir.join(p).to_string_lossy().into_owned() }
    };
    let mut planned: Vec<Planned<'a>> = Vec::new();
    for step in &pipeline.steps {
        if planned.iter().any(|p| p.step.name == step.name) {
            return Err(step_error(step, "name", "another step has the same name"));
        }
        let mut inputs = Vec::new();
        for input in &step.inputs {
            match input.strip_prefix('@') {
                Some(name) => {
                    let earlier = planned
                        .iter()
                        .position(|p| p.step.name == name)
                        .ok_or_else(|| step_error(step, "inputs", format!("'@{name}' is not an earlier step")))?;
                    inputs.push(Input::Step(earlier));
                }
                None => inputs.push(Input::Path(resolve(input))),
            }
        }
        if inputs.is_empty() == step.count.is_none() {
            return Err(step_error(step, "inputs", "give either `inputs` or `count` (for generator ops), not both"));
        }
        let args = serde_json::to_value(&step.args).map_err(|e| step_error(step, "args", e.to_string()))?;
        build_op(&step.op, args.clone()).map_err(|e| step_error(step, "op", e.to_string()))?;
        let mut settings = step.settings.or(&pipeline.settings);
        settings.workers = cli_workers.or(settings.workers);
        let remote_info =
            crate::remote::step_info(step.remote_info.as_ref(), pipeline.remote_info.as_ref(), &step.name, &step.op)?;
        let backend = crate::remote::step_backend(remote_info.as_ref(), &step.name)?;
        planned.push(Planned { step, inputs, output: resolve(&step.output), args, settings, backend });
    }
    Ok(planned)
}

/// Runs (or, with `dry_run`, explains) a pipeline; returns one report per step.
pub fn run_pipeline(args: &PipelineArgs) -> Result<Vec<StepReport>> {
    let pipeline = Pipeline::load(&args.file)?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => args.file.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let planned = plan(&pipeline, &dir, args.workers)?;
    let mut reports = Vec::new();
    // Each step's output files once known (a `{stem}` template resolves
    // against that step's inputs), for later steps' `@name` inputs.
    let mut resolved: Vec<Option<Vec<PathBuf>>> = Vec::new();
    for p in &planned {
        let op = build_op(&p.step.op, p.args.clone())?;
        let mut paths_in = Vec::new();
        for input in &p.inputs {
            match input {
                Input::Path(path) => paths_in.push(path.clone()),
                Input::Step(i) => match &resolved[*i] {
                    Some(files) => paths_in.extend(files.iter().map(|f| f.to_string_lossy().into_owned())),
                    // Only in a dry run: the earlier step's inputs do not exist yet.
                    None => paths_in.push(planned[*i].output.clone()),
                },
            }
        }
        resolved.push(None);
        let inputs = match p.step.count {
            Some(n) => ConfigSet::counters(n),
            None if args.dry_run && paths_in.iter().any(|i| !Path::new(i).exists() && !i.contains(['*', '?', '['])) => {
                println!("step {}: compute: its inputs do not exist yet", p.step.name);
                continue;
            }
            None => ConfigSet::from_paths(&paths_in)?,
        };
        let mut outputs = OutputSpec::from_arg(&p.output);
        for (k, v) in &p.step.tags {
            let value =
                toml_to_value(v).ok_or_else(|| step_error(p.step, "tags", format!("{k}: unsupported value")))?;
            autopara_core::extxyz::check_info_entry(k, &value)
                .map_err(|m| step_error(p.step, &format!("tags.{k}"), m))?;
            outputs = outputs.with_tag(k.clone(), value);
        }
        let info = AutoparaInfo {
            backend: p.backend.clone(),
            workers: p.settings.workers,
            chunk_size: p.settings.chunk_size,
            seed: p.settings.seed,
            skip_failed: p.settings.skip_failed,
            progress: if args.quiet { Some(false) } else { None },
            ..Default::default()
        };
        let mut run = PreparedRun::new(op.as_ref(), &inputs, &outputs, &info)?;
        let paths = run.paths().to_vec();
        if let Some(last) = resolved.last_mut() {
            *last = Some(paths.clone());
        }
        // A step whose earlier output (ours, keyed) no longer matches is recomputed.
        let ours = paths.iter().all(|path| !path.exists() || cache::read_record(path).is_ok_and(|r| r.is_some()));
        let stale = matches!(run.plan(), Err(Error::Cache(_)));
        run.set_overwrite(args.overwrite || (stale && ours));
        if args.dry_run {
            let text = run.explain()?;
            let why =
                if stale && ours && !args.overwrite { " (the step changed since its output was written)" } else { "" };
            println!("step {}: {text}{why}", p.step.name);
            continue;
        }
        let summary = run.execute().map_err(|e| Error::Other(format!("pipeline step '{}': {e}", p.step.name)))?;
        let report = StepReport {
            name: p.step.name.clone(),
            action: summary.action,
            outputs: paths,
            items: summary.stats.items,
            failed: summary.stats.failed,
        };
        println!("{}", describe(&report));
        reports.push(report);
    }
    Ok(reports)
}

/// One line per finished step.
pub fn describe(r: &StepReport) -> String {
    let files = r.outputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    let what = match &r.action {
        Action::Reused => "reused".to_string(),
        Action::Resumed { from } => format!("resumed from item {from}"),
        Action::Computed => "computed".to_string(),
        Action::RetriedFailed { retried } => format!("retried {retried} failed items"),
    };
    format!("step {}: {what}: {} items, {} failed -> {files}", r.name, r.items, r.failed)
}

/// A TOML scalar or array as an info value.
fn toml_to_value(v: &toml::Value) -> Option<autopara_core::Value> {
    use autopara_core::Value;
    Some(match v {
        toml::Value::String(s) => Value::Str(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        _ => return None,
    })
}
