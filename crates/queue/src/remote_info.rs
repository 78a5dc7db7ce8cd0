//! [`RemoteInfo`]: how an op's chunks are sent to a batch system (which
//! system, resources, job script contents, polling, failure policy), from the
//! API, a pipeline file or `AUTOPARA_REMOTE_INFO`. The fields are wfl's
//! `RemoteInfo` fields, so a `WFL_EXPYRE_INFO` entry translates field for field.

use crate::error::{QueueError, Result};
use crate::resources::Resources;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment variable holding remote info: JSON or TOML text, or the
/// path of a `.json`/`.toml` file, keyed by op label (wfl's `WFL_EXPYRE_INFO`).
pub const REMOTE_INFO_ENV: &str = "AUTOPARA_REMOTE_INFO";

/// The info key set to `true` on the input configurations of a failed job
/// when [`RemoteInfo::ignore_failed_jobs`] is on; the same key as wfl, so
/// existing scripts that filter on it keep working.
pub const JOB_FAILED_KEY: &str = "EXPYRE_REMOTE_JOB_FAILED";

/// Variables exported in a job: a table, or wfl's list of `"NAME=value"` strings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EnvVarsForm", into = "BTreeMap<String, String>")]
pub struct EnvVars(pub BTreeMap<String, String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum EnvVarsForm {
    Table(BTreeMap<String, String>),
    List(Vec<String>),
}

impl TryFrom<EnvVarsForm> for EnvVars {
    type Error = String;
    fn try_from(form: EnvVarsForm) -> std::result::Result<EnvVars, String> {
        match form {
            EnvVarsForm::Table(t) => Ok(EnvVars(t)),
            EnvVarsForm::List(l) => l
                .into_iter()
                .map(|s| match s.split_once('=') {
                    Some((k, v)) => Ok((k.to_string(), v.to_string())),
                    None => Err(format!("{s:?} is not NAME=value")),
                })
                .collect::<std::result::Result<_, _>>()
                .map(EnvVars),
        }
    }
}

impl From<EnvVars> for BTreeMap<String, String> {
    fn from(e: EnvVars) -> BTreeMap<String, String> {
        e.0
    }
}

/// How one op's items are run as batch jobs.
///
/// Every field has a default, so `{}` is valid: one-core jobs on this
/// machine's Slurm. Nothing here is part of a job's content key: changing
/// resources (say a longer `max_time`) and rerunning re-attaches to, or
/// resubmits, the same jobs.
///
/// ```
/// use autopara_queue::RemoteInfo;
/// let info = RemoteInfo::from_toml_str(
///     "job_name = \"emt\"\nresources = { num_cores = 4, max_time = \"2h\" }\npre_cmds = [\"module load foo\"]",
///     "example",
/// )
/// .unwrap();
/// assert_eq!(info.resources.num_cores, Some(4));
/// assert_eq!(info.num_inputs_per_queued_job, -100);
/// assert_eq!(info.items_per_job(10), 1000);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteInfo {
    /// The system (a `[systems.NAME]` of the systems file) the jobs go to; wfl's
    /// `sys_name` is accepted. Absent: this machine's Slurm.
    #[serde(alias = "sys_name")]
    pub system: Option<String>,
    /// Prefix of every job name (`<job_name>-<content hash>`): not starting with
    /// a digit, without whitespace, quotes or `/ : @ \ * ?`.
    pub job_name: String,
    /// What each job asks for: `max_time`, `num_nodes` or `num_cores`, memory, `partitions`.
    pub resources: Resources,
    /// Items per job; a negative value `-n` means `n` times the chunk size (as in wfl).
    pub num_inputs_per_queued_job: i64,
    /// Shell lines run before the worker (after the system's `commands`).
    pub pre_cmds: Vec<String>,
    /// Shell lines run after the worker (before the status file is written).
    pub post_cmds: Vec<String>,
    /// Environment variables exported in the job script: a table, or wfl's
    /// list of `"NAME=value"` strings.
    pub env_vars: EnvVars,
    /// Extra header lines (templates, as the system's `header`), after the
    /// system's (`"#SBATCH --qos=short"`).
    pub header_extra: Vec<String>,
    /// With partitions: `num_cores` must be whole nodes (as in wfl).
    pub exact_fit: bool,
    /// With partitions: a job may take part of a node (as in wfl).
    pub partial_node: bool,
    /// Seconds between scheduler polls.
    pub check_interval: f64,
    /// Seconds the driver waits for all jobs before giving up (the jobs keep running).
    pub timeout: f64,
    /// Failed or dead jobs become items flagged with [`JOB_FAILED_KEY`] instead of an error.
    pub ignore_failed_jobs: bool,
    /// Jobs that died (time limit, cancelled, node failure) are resubmitted, once per driver run.
    pub resubmit_killed_jobs: bool,
    /// The `autopara` binary the job script runs as `<autopara_bin> worker
    /// --job-dir DIR` (default: the system's, else `autopara`).
    pub autopara_bin: Option<String>,
    /// Where the driver keeps its job directories (relative paths are taken from
    /// the driver's working directory and made absolute). Jobs run there too,
    /// unless the system has a `rundir` or a `host`: then they are copied there.
    pub jobs_dir: PathBuf,
}

impl Default for RemoteInfo {
    fn default() -> RemoteInfo {
        RemoteInfo {
            system: None,
            job_name: "autopara".into(),
            resources: Resources::default(),
            num_inputs_per_queued_job: -100,
            pre_cmds: Vec::new(),
            post_cmds: Vec::new(),
            env_vars: EnvVars::default(),
            header_extra: Vec::new(),
            exact_fit: true,
            partial_node: false,
            check_interval: 30.0,
            timeout: 3600.0,
            ignore_failed_jobs: false,
            resubmit_killed_jobs: false,
            autopara_bin: None,
            jobs_dir: PathBuf::from("_autopara_jobs"),
        }
    }
}

/// The field names of [`RemoteInfo`] (and wfl's `sys_name`), to tell a bare
/// `RemoteInfo` from a map keyed by op label.
const FIELDS: &[&str] = &[
    "system",
    "sys_name",
    "job_name",
    "resources",
    "num_inputs_per_queued_job",
    "pre_cmds",
    "post_cmds",
    "env_vars",
    "header_extra",
    "exact_fit",
    "partial_node",
    "check_interval",
    "timeout",
    "ignore_failed_jobs",
    "resubmit_killed_jobs",
    "autopara_bin",
    "jobs_dir",
];

impl RemoteInfo {
    /// Parses and validates a JSON object; `origin` names the source in errors.
    pub fn from_json_str(text: &str, origin: &str) -> Result<RemoteInfo> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(origin, "-", e))?;
        RemoteInfo::from_value(value, origin)
    }

    /// Parses and validates a TOML table (a pipeline file's `remote_info` table).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<RemoteInfo> {
        let value: serde_json::Value = toml::from_str(text).map_err(|e| bad(origin, "-", e))?;
        RemoteInfo::from_value(value, origin)
    }

    /// Deserializes and validates a JSON value, naming the offending field on error.
    pub fn from_value(value: serde_json::Value, origin: &str) -> Result<RemoteInfo> {
        let info: RemoteInfo = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            bad(origin, if path == "." { "-" } else { &path }, e.into_inner())
        })?;
        info.validate(origin)?;
        Ok(info)
    }

    /// The remote info for an op call from `spec`: JSON or TOML text, or the path
    /// of a file holding it. `spec` is either a bare `RemoteInfo` (used for every
    /// call) or a table keyed by label: the first of `labels` present wins (a
    /// pipeline passes its step name, then the op name), then `"*"`.
    /// `Ok(None)` means no entry matches: the op runs locally (as in wfl).
    pub fn select(spec: &str, origin: &str, labels: &[&str]) -> Result<Option<RemoteInfo>> {
        let (value, origin) = parse_spec(spec, origin)?;
        RemoteInfo::select_value(value, &origin, labels)
    }

    /// [`RemoteInfo::select`] on a parsed value (a pipeline file's `remote_info` table).
    pub fn select_value(value: serde_json::Value, origin: &str, labels: &[&str]) -> Result<Option<RemoteInfo>> {
        let serde_json::Value::Object(map) = value else {
            return Err(bad(origin, "-", "expected a table/object"));
        };
        let keyed = labels.iter().chain(&["*"]).find_map(|l| map.get(*l).map(|v| (*l, v.clone())));
        let (label, entry) = if let Some(found) = keyed {
            found
        } else if !map.is_empty() && map.keys().all(|k| FIELDS.contains(&k.as_str())) {
            ("*", serde_json::Value::Object(map))
        } else {
            return Ok(None);
        };
        RemoteInfo::from_value(entry, &format!("{origin}, label {label}")).map(Some)
    }

    /// The remote info for an op call from [`REMOTE_INFO_ENV`], if it is set and
    /// has an entry for one of `labels` (see [`RemoteInfo::select`]).
    pub fn from_env(labels: &[&str]) -> Result<Option<RemoteInfo>> {
        match std::env::var(REMOTE_INFO_ENV) {
            Ok(spec) if !spec.trim().is_empty() => RemoteInfo::select(&spec, REMOTE_INFO_ENV, labels),
            _ => Ok(None),
        }
    }

    /// Items per job for an executor chunk size (`num_inputs_per_queued_job`,
    /// negative meaning a multiple of `chunk_size`); at least 1.
    pub fn items_per_job(&self, chunk_size: usize) -> usize {
        let n = self.num_inputs_per_queued_job;
        let per = if n < 0 { (n.unsigned_abs() as usize).saturating_mul(chunk_size.max(1)) } else { n as usize };
        per.max(1)
    }

    /// Checks values that serde cannot: names, counts, intervals, resources.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let name_ok = self.job_name.chars().next().is_some_and(|c| !c.is_ascii_digit())
            && !self.job_name.chars().any(|c| c.is_whitespace() || "/'\":@\\*?".contains(c));
        if !name_ok {
            return Err(bad(
                origin,
                "job_name",
                "must be non-empty, not start with a digit, and hold no whitespace, quotes or / : @ \\ * ? (Grid Engine refuses them)",
            ));
        }
        if self.num_inputs_per_queued_job == 0 {
            return Err(bad(origin, "num_inputs_per_queued_job", "must not be 0"));
        }
        if !(self.check_interval.is_finite() && self.check_interval > 0.0) {
            return Err(bad(origin, "check_interval", "must be a positive number of seconds"));
        }
        if !(self.timeout.is_finite() && self.timeout >= 0.0) {
            return Err(bad(origin, "timeout", "must be a non-negative number of seconds"));
        }
        if let Some(bad_name) = self.env_vars.0.keys().find(|k| !is_shell_name(k)) {
            return Err(bad(origin, &format!("env_vars.{bad_name}"), "not a valid variable name"));
        }
        if self.header_extra.iter().chain(&self.pre_cmds).chain(&self.post_cmds).any(|a| a.contains('\n')) {
            return Err(bad(origin, "header_extra/pre_cmds/post_cmds", "an entry contains a newline"));
        }
        if self.system.as_deref().is_some_and(str::is_empty) {
            return Err(bad(origin, "system", "must not be empty"));
        }
        if self.autopara_bin.as_deref().is_some_and(|b| b.is_empty() || b.contains('\n')) {
            return Err(bad(origin, "autopara_bin", "must be a path"));
        }
        self.resources.validate().map_err(|(field, message)| bad(origin, &field, message))
    }
}

/// Reads `spec` as JSON text, a file path, or TOML text, in that order.
fn parse_spec(spec: &str, origin: &str) -> Result<(serde_json::Value, String)> {
    let trimmed = spec.trim();
    if trimmed.starts_with('{') {
        let v = serde_json::from_str(trimmed).map_err(|e| bad(origin, "-", e))?;
        return Ok((v, origin.to_string()));
    }
    let path = Path::new(trimmed);
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| QueueError::io(path, e))?;
        let origin = format!("{origin}: {}", path.display());
        let v = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| bad(&origin, "-", e))?
        } else {
            toml::from_str(&text).map_err(|e| bad(&origin, "-", e))?
        };
        return Ok((v, origin));
    }
    match toml::from_str(trimmed) {
        Ok(v) => Ok((v, origin.to_string())),
        Err(e) => Err(bad(origin, "-", format!("not an existing file, nor JSON or TOML text: {e}"))),
    }
}

fn is_shell_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn bad(origin: &str, field: &str, message: impl ToString) -> QueueError {
    QueueError::RemoteInfo { origin: origin.to_string(), field: field.to_string(), message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_wfl() {
        let info = RemoteInfo::from_json_str("{}", "t").unwrap();
        assert_eq!(info, RemoteInfo::default());
        assert_eq!(info.items_per_job(7), 700);
        let info = RemoteInfo { num_inputs_per_queued_job: 5, ..RemoteInfo::default() };
        assert_eq!(info.items_per_job(7), 5);
    }

    #[test]
    fn unknown_and_bad_fields_are_named() {
        let e = RemoteInfo::from_json_str(r#"{"job_nme": "x"}"#, "t").unwrap_err().to_string();
        assert!(e.contains("job_nme"), "{e}");
        let e = RemoteInfo::from_json_str(r#"{"resources": {"num_cores": "four"}}"#, "t").unwrap_err().to_string();
        assert!(e.contains("resources.num_cores"), "{e}");
        let e = RemoteInfo::from_json_str(r#"{"resources": {"num_nodes": 1, "num_cores": 2}}"#, "t").unwrap_err();
        assert!(e.to_string().contains("resources.num_cores"), "{e}");
        let e = RemoteInfo::from_json_str(r#"{"job_name": "a b"}"#, "t").unwrap_err().to_string();
        assert!(e.contains("job_name"), "{e}");
        let e = RemoteInfo::from_json_str(r#"{"check_interval": 0}"#, "t").unwrap_err().to_string();
        assert!(e.contains("check_interval"), "{e}");
        let e = RemoteInfo::from_json_str(r#"{"env_vars": {"A-B": "1"}}"#, "t").unwrap_err().to_string();
        assert!(e.contains("env_vars.A-B"), "{e}");
    }

    #[test]
    fn select_by_label_wildcard_or_bare() {
        let keyed = r#"{"md": {"job_name": "m", "resources": {"num_cores": 2}}, "*": {"job_name": "any"}}"#;
        assert_eq!(RemoteInfo::select(keyed, "t", &["md"]).unwrap().unwrap().job_name, "m");
        assert_eq!(RemoteInfo::select(keyed, "t", &["calculate"]).unwrap().unwrap().job_name, "any");
        let only_md = r#"{"md": {"job_name": "m"}}"#;
        assert_eq!(RemoteInfo::select(only_md, "t", &["calculate"]).unwrap(), None);
        let bare = "job_name = \"b\"\ntimeout = 5.0";
        let info = RemoteInfo::select(bare, "t", &["md"]).unwrap().unwrap();
        assert_eq!((info.job_name.as_str(), info.timeout), ("b", 5.0));
        let e = RemoteInfo::select(r#"{"md": {"timeout": -1}}"#, "t", &["md"]).unwrap_err().to_string();
        // A pipeline step: its name first, then its op.
        let steps = r#"{"relax": {"job_name": "r"}, "minim": {"job_name": "m"}, "*": {"job_name": "any"}}"#;
        assert_eq!(RemoteInfo::select(steps, "t", &["relax", "minim"]).unwrap().unwrap().job_name, "r");
        assert_eq!(RemoteInfo::select(steps, "t", &["other", "minim"]).unwrap().unwrap().job_name, "m");
        assert!(e.contains("label md") && e.contains("timeout"), "{e}");
        assert!(RemoteInfo::select("no such file and not toml", "t", &["md"]).is_err());
    }

    #[test]
    fn a_wfl_expyre_info_entry_reads_field_for_field() {
        let wfl = r#"{"md": {"sys_name": "cluster", "job_name": "md", "env_vars": ["OMP_NUM_THREADS=1", "A=b=c"],
            "resources": {"max_time": "4h", "num_nodes": 1, "partitions": ["standard", "highmem"]},
            "num_inputs_per_queued_job": -10, "pre_cmds": ["source env.sh"], "partial_node": true,
            "check_interval": 60, "timeout": 7200, "ignore_failed_jobs": true, "resubmit_killed_jobs": true}}"#;
        let info = RemoteInfo::select(wfl, "t", &["md"]).unwrap().unwrap();
        assert_eq!(info.system.as_deref(), Some("cluster"));
        assert_eq!(info.env_vars.0["A"], "b=c");
        assert_eq!(info.resources.max_time_seconds("t").unwrap(), Some(4 * 3600));
        assert!(info.partial_node && info.ignore_failed_jobs && info.resubmit_killed_jobs);
        assert_eq!(info.items_per_job(5), 50);
        let e = RemoteInfo::from_json_str(r#"{"env_vars": ["NOVALUE"]}"#, "t").unwrap_err().to_string();
        assert!(e.contains("env_vars") && e.contains("NAME=value"), "{e}");
    }

    #[test]
    fn select_reads_files() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("remote.toml");
        std::fs::write(&toml_path, "[calculate]\njob_name = \"c\"\nenv_vars = { OMP_NUM_THREADS = \"1\" }\n").unwrap();
        let info = RemoteInfo::select(toml_path.to_str().unwrap(), "t", &["calculate"]).unwrap().unwrap();
        assert_eq!(info.env_vars.0["OMP_NUM_THREADS"], "1");
        let json_path = dir.path().join("remote.json");
        std::fs::write(&json_path, r#"{"calculate": {"num_inputs_per_queued_job": 3}}"#).unwrap();
        let info = RemoteInfo::select(json_path.to_str().unwrap(), "t", &["calculate"]).unwrap().unwrap();
        assert_eq!(info.items_per_job(10), 3);
    }
}
