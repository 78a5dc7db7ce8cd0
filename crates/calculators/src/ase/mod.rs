//! Any ASE calculator, built once per worker: the `ase` calculator type.
//!
//! Each autopara worker that needs the calculator starts one long-lived
//! Python process, which imports `constructor`, calls it with `args` and
//! `kwargs` once, and then computes every configuration and every md/minim
//! step of that worker over a binary protocol on its pipes (documented in
//! `docs/ase-bridge.md`, so that a code other than Python could serve it).
//! The worker's Python code ships inside autopara: nothing is installed
//! besides ASE (with numpy) and the calculator's own package.
//!
//! ```no_run
//! use autopara_core::{Atoms, CalcResults, CalculatorSpec, Properties};
//! let spec: Box<dyn CalculatorSpec> = serde_json::from_str(
//!     r#"{"type": "ase", "constructor": "ase.calculators.emt.EMT"}"#,
//! ).unwrap();
//! let mut calc = spec.build().unwrap(); // starts Python, builds EMT()
//! let mut at = Atoms::new(vec![29, 29], vec![[0.0; 3], [2.5, 0.0, 0.0]]);
//! let mut out = CalcResults::default();
//! calc.calculate(&at, Properties::ENERGY_FORCES, &mut out).unwrap();
//! at.positions[1][0] = 2.6; // the next call sends only the new positions
//! calc.calculate(&at, Properties::ENERGY_FORCES, &mut out).unwrap();
//! assert_eq!(calc.name(), "EMT");
//! ```
//!
//! - **Interpreter**: the spec's `python`, else `$AUTOPARA_PYTHON`, else
//!   `python3` on `PATH`; `pythonpath` entries go in front of `sys.path`.
//! - **Per configuration**: atomic numbers are sent when they change, the
//!   configuration's `info` and `arrays` (initial charges and magnetic
//!   moments, per-config settings) whenever they differ from the last sent,
//!   and positions, cell and pbc with every calculation. Python keeps one
//!   `Atoms` per worker and updates it in place, so ASE's `check_state`
//!   caching works as in a Python loop.
//! - **Faults cost one configuration**: a Python exception is that
//!   calculation's error (type, message and the tail of the worker's
//!   stderr); a worker that dies (segfault, `os._exit`, a signal, the
//!   out-of-memory killer) or runs past `timeout` seconds fails the
//!   calculation and is replaced by a fresh one at the next call. A
//!   constructor that cannot be imported or raises is a
//!   [`CalcError::Construction`] from [`CalculatorSpec::build`], which ops
//!   turn into one error that stops the run.
//! - **Lifetime**: the kernel kills the worker when the thread that started
//!   it ends (`PR_SET_PDEATHSIG`), so it never outlives autopara, even one
//!   killed by a signal; dropping the calculator closes the worker's input,
//!   which makes it exit, and kills it if it has not within two seconds.
//!
//! Code other than an op's (for example the Python package) starts a worker
//! with [`Ase::start`] and drives it through the [`Calculator`] trait.

mod child;
mod wire;

use crate::{check_finite, invalid};
use autopara_core::{Atoms, CalcError, CalcResults, Calculator, CalculatorInfo, CalculatorSpec, Properties};
use child::{Fault, Process, with_tail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};
use std::ffi::OsString;
use std::time::{Duration, Instant};

/// The worker's Python code (sent to the interpreter on its stdin).
const WORKER: &str = include_str!("worker.py");

/// What the interpreter runs: reads the worker's code (its length is the
/// first argument) from stdin and executes it. Nothing is written to disk.
const BOOTSTRAP: &str = "import os,sys\n\
n=int(sys.argv[1]);b=b''\n\
while len(b)<n:\n c=os.read(0,n-len(b))\n if not c:sys.exit('autopara ase worker: input closed early')\n b+=c\n\
exec(compile(b,'autopara-ase-worker','exec'))\n";

/// The `ase` calculator spec: an ASE calculator built in a Python worker.
///
/// ```
/// use autopara_calculators::Ase;
/// use autopara_core::CalculatorSpec;
/// let spec = Ase::new("quippy.potential:Potential");
/// assert!(spec.validate().is_ok());
/// assert!(Ase::new("no_dots").validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ase {
    /// Import path of a class or factory function: `pkg.mod.Name` or `pkg.mod:name`
    /// (after a colon, dots walk attributes: `pkg.mod:Class.factory`).
    pub constructor: String,
    /// Positional arguments (JSON values). Default none.
    #[serde(default)]
    pub args: Vec<Json>,
    /// Keyword arguments (JSON values). Default none.
    #[serde(default)]
    pub kwargs: Map<String, Json>,
    /// The Python interpreter. Default: `$AUTOPARA_PYTHON`, else `python3` on `PATH`.
    #[serde(default)]
    pub python: Option<String>,
    /// Directories put in front of `sys.path`, in order. Default none.
    #[serde(default)]
    pub pythonpath: Vec<String>,
    /// Seconds one calculation may take before the worker is killed and the
    /// calculation fails. Default: no limit. Construction is not limited.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Threads of the worker's numerical libraries: `OMP_NUM_THREADS`,
    /// `OPENBLAS_NUM_THREADS`, `MKL_NUM_THREADS` and `NUMEXPR_NUM_THREADS` in
    /// its environment. Default: as autopara's environment sets them, or 1
    /// when it sets none of them (autopara runs a worker per core; see
    /// [`THREAD_VARIABLES`]).
    #[serde(default)]
    pub threads: Option<u32>,
}

/// The environment variables that set the threads of the numerical libraries
/// an ASE calculator may use (OpenMP, and through it PyTorch; OpenBLAS, as
/// numpy and scipy ship it; MKL; numexpr).
///
/// A worker gets all of them set to the spec's `threads`; without it, to 1
/// when autopara's environment sets none of them. Idle OpenBLAS threads spin
/// for the next matrix product: with its default of a thread per core, ASE's
/// EMT took 30 % more CPU per call in a worker than with one.
pub const THREAD_VARIABLES: [&str; 4] =
    ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"];

impl Ase {
    /// A spec calling `constructor()` with no arguments, with the default interpreter.
    pub fn new(constructor: impl Into<String>) -> Ase {
        Ase {
            constructor: constructor.into(),
            args: Vec::new(),
            kwargs: Map::new(),
            python: None,
            pythonpath: Vec::new(),
            timeout: None,
            threads: None,
        }
    }

    /// The thread settings this spec adds to the worker's environment (see
    /// [`THREAD_VARIABLES`]), given a lookup of autopara's own environment.
    pub fn thread_environment(&self, env: impl Fn(&str) -> Option<OsString>) -> Vec<(&'static str, String)> {
        let threads = match self.threads {
            Some(n) => n,
            None if THREAD_VARIABLES.iter().any(|v| env(v).is_some()) => return Vec::new(),
            None => 1,
        };
        THREAD_VARIABLES.iter().map(|&v| (v, threads.to_string())).collect()
    }

    /// The interpreter this spec runs: `python`, else `$AUTOPARA_PYTHON`, else `python3`.
    pub fn interpreter(&self) -> OsString {
        match &self.python {
            Some(p) => p.into(),
            None => std::env::var_os("AUTOPARA_PYTHON").filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into()),
        }
    }

    /// Starts a worker and builds the calculator in it (what [`CalculatorSpec::build`] does).
    pub fn start(&self) -> Result<AseCalculator, CalcError> {
        self.validate()?;
        let mut init = Vec::new();
        let body = json!({
            "protocol": wire::PROTOCOL,
            "constructor": self.constructor,
            "args": self.args,
            "kwargs": self.kwargs,
            "pythonpath": self.pythonpath,
        });
        wire::message(&mut init, wire::INIT, body.to_string().as_bytes());
        let (process, name) = launch(self, &init).map_err(CalcError::Construction)?;
        Ok(AseCalculator { spec: self.clone(), name, init, process: Some(process), sent: None, buf: Vec::new() })
    }
}

/// Whether `s` is `a.b.C` or `a.b:c.d` (Python identifiers).
fn valid_constructor(s: &str) -> bool {
    let ident = |p: &str| {
        let mut chars = p.chars();
        chars.next().is_some_and(|c| c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || c == '_')
    };
    let dotted = |p: &str| p.split('.').all(ident);
    match s.split_once(':') {
        Some((module, attrs)) => dotted(module) && dotted(attrs),
        None => s.contains('.') && dotted(s),
    }
}

#[typetag::serde(name = "ase")]
impl CalculatorSpec for Ase {
    fn validate(&self) -> Result<(), CalcError> {
        if !valid_constructor(&self.constructor) {
            return Err(invalid(
                "constructor",
                format!("expected an import path such as pkg.mod.Name or pkg.mod:name, got {:?}", self.constructor),
            ));
        }
        if self.python.as_ref().is_some_and(|p| p.is_empty()) {
            return Err(invalid("python", "must not be empty".into()));
        }
        if self.pythonpath.iter().any(String::is_empty) {
            return Err(invalid("pythonpath", "entries must not be empty".into()));
        }
        if let Some(t) = self.timeout
            && !(t.is_finite() && t > 0.0)
        {
            return Err(invalid("timeout", format!("must be a positive number of seconds, got {t}")));
        }
        if self.threads == Some(0) {
            return Err(invalid("threads", "must be at least 1".into()));
        }
        Ok(())
    }

    fn build(&self) -> Result<Box<dyn Calculator>, CalcError> {
        Ok(Box::new(self.start()?))
    }

    fn program(&self) -> Option<Json> {
        Some(json!({
            "type": "ase",
            "constructor": self.constructor,
            "python": self.python,
            "pythonpath": self.pythonpath,
        }))
    }
}

inventory::submit! {
    CalculatorInfo {
        name: "ase",
        aliases: &[],
        summary: "any ASE calculator, built once per worker in a long-lived Python process (binary protocol on its pipes)",
        fields: &[
            ("constructor", "string, required: import path of the calculator class or factory, pkg.mod.Name or pkg.mod:name"),
            ("args", "list, default []: positional arguments (JSON)"),
            ("kwargs", "object, default {}: keyword arguments (JSON)"),
            ("python", "string, default $AUTOPARA_PYTHON or python3: the interpreter"),
            ("pythonpath", "list of strings, default []: directories put in front of sys.path"),
            ("timeout", "float, default none: seconds per calculation before the worker is killed"),
            (
                "threads",
                "integer, default 1 unless OMP_NUM_THREADS and the like are set: the worker's OpenMP/BLAS threads",
            ),
        ],
    }
}

/// Starts a worker and sends `init`; returns it and the calculator's name.
fn launch(spec: &Ase, init: &[u8]) -> Result<(Process, String), String> {
    let python = spec.interpreter();
    let who = format!("ase calculator {}", spec.constructor);
    let env = spec.thread_environment(|v| std::env::var_os(v));
    let mut process = Process::start(&python, &env, BOOTSTRAP, WORKER).map_err(|e| {
        format!(
            "{who}: cannot start the Python interpreter {}: {e} (set the calculator's python field or AUTOPARA_PYTHON)",
            python.to_string_lossy()
        )
    })?;
    let reply = match process.exchange(init, None) {
        Ok((tag, payload)) => Ok((tag, String::from_utf8_lossy(payload).into_owned())),
        Err(fault) => Err(fault),
    };
    let failed = match reply {
        Ok((wire::REDY, text)) => {
            let ready: Json =
                serde_json::from_str(&text).map_err(|e| format!("{who}: malformed REDY ({e}): {text}"))?;
            let name = ready["name"].as_str().filter(|n| !n.is_empty()).unwrap_or("Ase").to_string();
            return Ok((process, name));
        }
        Ok((wire::FAIL, text)) => {
            let (kind, message, stage) = parse_failure(&text);
            match stage.as_str() {
                "import" => format!("{who}: cannot import it with {}: {kind}: {message}", python.to_string_lossy()),
                "construct" => format!("{who}: the constructor raised {kind}: {message}"),
                _ => format!("{who}: {kind}: {message}"),
            }
        }
        Ok((tag, _)) => format!("{who}: the worker answered INIT with {}", String::from_utf8_lossy(&tag)),
        Err(fault) => format!("{who}: {}", process.describe(&fault)),
    };
    Err(with_tail(failed, &process.stderr_tail()))
}

/// The exception type, message and stage of a `FAIL` payload.
fn parse_failure(text: &str) -> (String, String, String) {
    let v: Json = serde_json::from_str(text).unwrap_or_else(|_| json!({"type": "?", "message": text}));
    let field = |k: &str| v[k].as_str().unwrap_or("").to_string();
    (field("type"), field("message"), field("stage"))
}

/// An ASE calculator served by a Python worker process (see the [module docs](self)).
pub struct AseCalculator {
    spec: Ase,
    name: String,
    /// The `INIT` message, kept to start a fresh worker after a fault.
    init: Vec<u8>,
    /// `None` after a fault, until the next calculation starts a fresh one.
    process: Option<Process>,
    /// The numbers, info and arrays the worker holds (positions unused);
    /// `None` when it holds none yet.
    sent: Option<Atoms>,
    /// The request being built.
    buf: Vec<u8>,
}

impl std::fmt::Debug for AseCalculator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AseCalculator").field("spec", &self.spec).field("pid", &self.pid()).finish_non_exhaustive()
    }
}

impl AseCalculator {
    /// The worker's process id, while one runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::id)
    }

    /// Appends the messages that bring the worker to `atoms` and the `CALC` for `request`.
    fn request(&mut self, atoms: &Atoms, request: Properties) {
        self.buf.clear();
        let fresh = self.sent.is_none();
        let sent = self.sent.get_or_insert_with(Atoms::default);
        let new_numbers = fresh || sent.numbers != atoms.numbers;
        if new_numbers {
            wire::numbers(&mut self.buf, &atoms.numbers);
            sent.numbers.clone_from(&atoms.numbers);
        }
        let new_meta = if new_numbers {
            !(atoms.info.is_empty() && atoms.arrays.is_empty())
        } else {
            sent.info != atoms.info || sent.arrays != atoms.arrays
        };
        if new_meta {
            wire::meta(&mut self.buf, atoms);
        }
        if new_numbers || new_meta {
            sent.info.clone_from(&atoms.info);
            sent.arrays.clone_from(&atoms.arrays);
        }
        wire::calc(&mut self.buf, atoms, request);
    }
}

impl Calculator for AseCalculator {
    fn name(&self) -> &str {
        &self.name
    }

    fn calculate(&mut self, atoms: &Atoms, request: Properties, out: &mut CalcResults) -> Result<(), CalcError> {
        let who = self.name.clone();
        if self.process.is_none() {
            let (process, _) = launch(&self.spec, &self.init)
                .map_err(|e| CalcError::Other(format!("starting a fresh worker after a fault: {e}")))?;
            self.process = Some(process);
            self.sent = None;
        }
        self.request(atoms, request);
        let deadline = self.spec.timeout.map(|t| Instant::now() + Duration::from_secs_f64(t));
        let Some(process) = self.process.as_mut() else {
            return Err(CalcError::Other("ase calculator: no worker".into()));
        };
        let outcome = match process.exchange(&self.buf, deadline) {
            Ok((wire::RSLT, payload)) => {
                wire::results(payload, atoms.len(), request, out).map_err(|e| Fault::Broken(format!("bad reply: {e}")))
            }
            Ok((wire::FAIL, payload)) => {
                let (kind, message, _) = parse_failure(&String::from_utf8_lossy(payload));
                let tail = process.stderr_tail();
                // The worker goes on; it is brought to the next configuration afresh.
                self.sent = None;
                return Err(CalcError::Other(with_tail(format!("{who} raised {kind}: {message}"), &tail)));
            }
            Ok((tag, _)) => {
                Err(Fault::Broken(format!("the worker answered CALC with {}", String::from_utf8_lossy(&tag))))
            }
            Err(fault) => Err(fault),
        };
        match outcome {
            Ok(()) => check_finite(&who, out),
            Err(fault) => {
                let message = match self.spec.timeout {
                    Some(t) if matches!(fault, Fault::TimedOut) => {
                        format!("{who}: no result within the timeout of {t} s; {}", process.describe(&fault))
                    }
                    _ => format!("{who}: {}", process.describe(&fault)),
                };
                // Dropping it kills and reaps it; the next calculation starts a fresh one.
                self.process = None;
                self.sent = None;
                Err(CalcError::Other(message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructor_forms() {
        for ok in ["ase.calculators.emt.EMT", "quippy.potential:Potential", "m:Class.factory", "_p.q"] {
            assert!(valid_constructor(ok), "{ok}");
        }
        for bad in ["EMT", "", "a..b", "a.b:", ":b", "a b.c", "a:b:c", "1a.b", "a.b()"] {
            assert!(!valid_constructor(bad), "{bad}");
        }
    }

    #[test]
    fn interpreter_order() {
        let mut spec = Ase::new("a.b");
        spec.python = Some("/opt/py".into());
        assert_eq!(spec.interpreter(), "/opt/py");
    }
}
