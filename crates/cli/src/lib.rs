//! The `autopara` command line. The binary lives in the facade package (so it
//! links every enabled op crate); this crate holds the commands.

pub mod convert;
pub mod remote;
pub mod worker;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(feature = "buildcell")]
pub mod buildcell_input;
pub mod pipeline;
pub mod run;

/// Apply operations to many atomic configurations in parallel.
#[derive(Debug, Parser)]
#[command(name = "autopara", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List registered ops: name, version, default chunk size, summary.
    Ops,
    /// List registered calculators and their spec fields.
    Calculators,
    /// Read extxyz files (or globs) and write them to OUT, adding tags.
    Convert(convert::ConvertArgs),
    /// Run one batch job's items (used by the job scripts of the queue backend).
    Worker {
        /// The job directory written by the driver.
        #[arg(long)]
        job_dir: PathBuf,
    },
    /// Run one op over inputs into outputs (cached, resumable).
    Run(run::RunArgs),
    /// Write buildcell input text for a random structure search (wfl's `create_input`).
    #[cfg(feature = "buildcell")]
    BuildcellInput(buildcell_input::BuildcellInputArgs),
    /// Run the steps of a pipeline file (TOML), each cached and resumed.
    Pipeline(pipeline::PipelineArgs),
}

/// Why this process must not run when the binary has no MPI backend: the
/// environment asks for MPI (`AUTOPARA_MPI`, `WFL_MPIPOOL`), or an MPI
/// launcher (`mpirun`, `srun`) started more than one rank, each of which would
/// run the whole job. `None` when neither holds. The binary calls this before
/// any work when it was built without the `mpi` feature.
pub fn mpi_missing() -> Option<String> {
    use autopara_core::autopara_info::{mpi_launch, mpi_requested};
    let env = |k: &str| std::env::var(k).ok();
    let why = match (mpi_requested(env), mpi_launch(env)) {
        (Some(var), _) => format!("{var} asks for the MPI backend"),
        (None, Some(var)) => {
            format!("it was started as one of several MPI ranks ({var}), and every rank would run the whole job")
        }
        (None, None) => return None,
    };
    Some(format!(
        "this autopara was built without MPI, but {why}. Build it with MPI: `cargo install --path . --features mpi` \
         (needs an MPI library and libclang; on Debian: apt-get install libopenmpi-dev openmpi-bin libclang-dev), \
         or run it as a single process without AUTOPARA_MPI/WFL_MPIPOOL"
    ))
}

/// Runs the CLI with the process arguments; errors go to stderr with exit status 1.
pub fn main() -> ExitCode {
    main_with_args(std::env::args_os())
}

/// Runs the CLI with these arguments (the first is the program name), as
/// `main` does; tests use it to act as the binary with extra ops registered.
pub fn main_with_args<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autopara: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Executes a parsed command line.
pub fn run(cli: Cli) -> autopara_core::Result<()> {
    match cli.command {
        Command::Ops => {
            println!("{:<14} {:>7} {:>6}  summary", "op", "version", "chunk");
            for r in autopara_core::registered_ops() {
                let i = r.info;
                println!("{:<14} {:>7} {:>6}  {}", i.name, i.version, i.default_chunk_size, i.summary);
            }
            Ok(())
        }
        Command::Calculators => {
            for c in autopara_core::calculator::registered_calculators() {
                let aliases =
                    if c.aliases.is_empty() { String::new() } else { format!(" (also {})", c.aliases.join(", ")) };
                println!("{}{aliases}: {}", c.name, c.summary);
                for (f, help) in c.fields {
                    println!("    {f}: {help}");
                }
            }
            Ok(())
        }
        Command::Convert(args) => convert::run(&args),
        Command::Worker { job_dir } => worker::run(&job_dir),
        Command::Run(args) => run::run(args),
        #[cfg(feature = "buildcell")]
        Command::BuildcellInput(args) => buildcell_input::run(args),
        Command::Pipeline(args) => pipeline::run_pipeline(&args).map(|_| ()),
    }
}
