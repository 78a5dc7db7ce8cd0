//! Systems: the clusters jobs can go to, named in a TOML file as ExPyRe's
//! `config.json` names them. `RemoteInfo::system` picks one; without it jobs
//! go to the Slurm of this machine.
//!
//! ```toml
//! [systems.archer]
//! host = "me@login.archer2.ac.uk"     # ssh; empty or absent: this machine
//! scheduler = "slurm"                 # or "sge"
//! rundir = "/work/e89/me/autopara"    # where jobs run there (relative: to the home directory)
//! autopara_bin = "/work/e89/me/bin/autopara"
//! commands = ["module load PrgEnv-gnu"]          # run first in every job
//! header = ["#SBATCH --account=e89", "#SBATCH --qos=standard"]
//! ssh_options = ["Port=22", "IdentityFile=~/.ssh/id_archer"]
//!
//! [systems.archer.partitions.standard]
//! num_cores = 128                     # cores per node
//! max_time = "24h"
//! max_mem = "256GB"
//! ```
//!
//! The file is `$AUTOPARA_SYSTEMS`, else `$XDG_CONFIG_HOME/autopara/systems.toml`,
//! else `~/.config/autopara/systems.toml`.

use crate::error::{QueueError, Result};
use crate::resources::{MemSpec, TimeSpec, mem_field, time_field};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment variable naming the systems file.
pub const SYSTEMS_ENV: &str = "AUTOPARA_SYSTEMS";

/// The batch system of a cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// Slurm (`sbatch`, `squeue`, `scancel`, `sacct`).
    #[default]
    Slurm,
    /// Grid Engine (`qsub`, `qstat`, `qdel`, `qacct`).
    Sge,
}

/// A node type of a cluster: ExPyRe's partition (or queue) properties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Cores per node.
    pub num_cores: u32,
    /// The longest job it takes (seconds, `"48h"`, `"2-00:00:00"`); absent: no limit.
    pub max_time: Option<TimeSpec>,
    /// Memory per node (kB, `"256GB"`); absent: not checked.
    pub max_mem: Option<MemSpec>,
}

impl Partition {
    /// `max_time` in seconds (validated when the file is read).
    pub fn max_time_seconds(&self) -> Option<u64> {
        time_field(self.max_time.as_ref(), "max_time").ok().flatten()
    }

    /// `max_mem` in kB (validated when the file is read).
    pub fn max_mem_kb(&self) -> Option<u64> {
        mem_field(self.max_mem.as_ref(), "max_mem").ok().flatten()
    }
}

/// One cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct System {
    /// `[user@]host` reached with ssh (passwordless, its host key already in
    /// `known_hosts`); empty: this machine.
    pub host: String,
    /// The batch system (`slurm` or `sge`).
    pub scheduler: SchedulerKind,
    /// Where job directories live on the host (relative paths: from the home
    /// directory there). For this machine it defaults to the run's `jobs_dir`
    /// (nothing is copied); for a remote host to `autopara-jobs`.
    pub rundir: Option<String>,
    /// Shell lines run at the start of every job (module loads, environment setup).
    pub commands: Vec<String>,
    /// Header lines added after the default ones; `{num_nodes}`, `{num_cores}`,
    /// `{num_cores_per_node}`, `{partition}` (or `{queue}`), `{max_time}`
    /// (`H:MM:SS`) and `{id}` (the job name) are filled in, `{{`/`}}` are braces.
    pub header: Vec<String>,
    /// Only `header`: no default lines (job name, output files, resources).
    pub no_default_header: bool,
    /// Node types by partition (Slurm) or queue (SGE) name, in order of preference.
    #[serde(alias = "queues")]
    pub partitions: IndexMap<String, Partition>,
    /// The `autopara` binary on the host (default: `autopara` on its `PATH`);
    /// `RemoteInfo::autopara_bin` overrides it.
    pub autopara_bin: Option<String>,
    /// Extra ssh options, each as `Key=Value` (`Port=2222`,
    /// `IdentityFile=~/.ssh/id_cluster`, `ProxyJump=gateway`). Host-key
    /// checking stays on: `StrictHostKeyChecking` other than `yes`, and the
    /// options autopara sets itself (`BatchMode`, `ControlMaster`,
    /// `ControlPath`, `ControlPersist`), are refused.
    pub ssh_options: Vec<String>,
}

/// The header template keys.
const TEMPLATE_KEYS: &[&str] =
    &["num_nodes", "num_cores", "num_cores_per_node", "partition", "queue", "max_time", "id"];

/// Fills `{key}` placeholders of `line` from `values`; `{{` and `}}` are
/// braces. An unknown key is an error naming it.
pub fn render_template(line: &str, values: &BTreeMap<&str, String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push(tail.as_bytes()[0] as char);
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            return Err(format!("unmatched '}}' in {line:?}"));
        } else {
            let end = tail.find('}').ok_or_else(|| format!("unclosed '{{' in {line:?}"))?;
            let key = &tail[1..end];
            let value = values.get(key).ok_or_else(|| {
                format!("unknown placeholder {{{key}}} in {line:?} (known: {})", TEMPLATE_KEYS.join(", "))
            })?;
            out.push_str(value);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// ssh options autopara sets itself or that would turn host-key checking off.
fn check_ssh_option(option: &str) -> std::result::Result<(), String> {
    let (key, value) = option
        .split_once(['=', ' '])
        .map(|(k, v)| (k.trim(), v.trim()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| format!("{option:?}: expected Key=Value"))?;
    if option.contains(['\'', '"', '\n']) {
        return Err(format!("{option:?}: quotes and newlines are not allowed"));
    }
    let k = key.to_ascii_lowercase();
    if k == "stricthostkeychecking" && !value.eq_ignore_ascii_case("yes") {
        return Err(format!("{option:?}: host-key checking stays on (add the host's key to known_hosts instead)"));
    }
    if ["batchmode", "controlmaster", "controlpath", "controlpersist"].contains(&k.as_str()) {
        return Err(format!("{option:?}: autopara sets {key} itself"));
    }
    Ok(())
}

impl System {
    /// Checks the fields: names `origin` (the file and system) in errors.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |field: &str, message: String| QueueError::Systems {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        };
        if self.host.chars().any(|c| c.is_whitespace() || c == '\'') || self.host.starts_with('-') {
            return Err(bad("host", "must be [user@]host, without whitespace or quotes".into()));
        }
        if self.rundir.as_deref().is_some_and(|d| d.is_empty() || d.chars().any(|c| c.is_whitespace() || c == '\'')) {
            return Err(bad("rundir", "must be non-empty, without whitespace or quotes".into()));
        }
        let sample: BTreeMap<&str, String> = TEMPLATE_KEYS.iter().map(|k| (*k, "1".to_string())).collect();
        for line in &self.header {
            render_template(line, &sample).map_err(|e| bad("header", e))?;
        }
        for (name, p) in &self.partitions {
            if p.num_cores == 0 {
                return Err(bad(&format!("partitions.{name}.num_cores"), "must be at least 1".into()));
            }
            time_field(p.max_time.as_ref(), "max_time").map_err(|e| bad(&format!("partitions.{name}"), e))?;
            mem_field(p.max_mem.as_ref(), "max_mem").map_err(|e| bad(&format!("partitions.{name}"), e))?;
        }
        for o in &self.ssh_options {
            check_ssh_option(o).map_err(|e| bad("ssh_options", e))?;
        }
        Ok(())
    }

    /// Whether jobs go over ssh.
    pub fn is_remote(&self) -> bool {
        !self.host.is_empty()
    }
}

/// The systems file: `[systems.NAME]` tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Systems {
    /// The systems by name.
    #[serde(default)]
    pub systems: BTreeMap<String, System>,
    /// Where they were read from (not in the file).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

impl Systems {
    /// Parses and validates a systems file's text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Systems> {
        let systems: Systems = toml::from_str(text).map_err(|e| QueueError::Systems {
            origin: origin.to_string(),
            field: "-".into(),
            message: e.to_string(),
        })?;
        for (name, s) in &systems.systems {
            s.validate(&format!("{origin}, system '{name}'"))?;
        }
        Ok(systems)
    }

    /// Reads the file at `path`.
    pub fn read(path: &Path) -> Result<Systems> {
        let text = std::fs::read_to_string(path).map_err(|e| QueueError::io(path, e))?;
        let mut systems = Systems::from_toml_str(&text, &path.display().to_string())?;
        systems.path = Some(path.to_path_buf());
        Ok(systems)
    }

    /// Where the systems file is looked for: `$AUTOPARA_SYSTEMS`, else
    /// `$XDG_CONFIG_HOME/autopara/systems.toml`, else `~/.config/autopara/systems.toml`.
    pub fn default_path() -> Option<PathBuf> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        var(SYSTEMS_ENV)
            .or_else(|| var("XDG_CONFIG_HOME").map(|d| d.join("autopara/systems.toml")))
            .or_else(|| var("HOME").map(|h| h.join(".config/autopara/systems.toml")))
    }

    /// The systems of the default file; none when it does not exist (unless
    /// `$AUTOPARA_SYSTEMS` names it: then it must).
    pub fn load() -> Result<Systems> {
        match Systems::default_path() {
            Some(p) if p.exists() || std::env::var_os(SYSTEMS_ENV).is_some_and(|v| !v.is_empty()) => Systems::read(&p),
            p => Ok(Systems { systems: BTreeMap::new(), path: p }),
        }
    }

    /// The system called `name`, or an error saying where it was looked for.
    pub fn get(&self, name: &str) -> Result<&System> {
        self.systems.get(name).ok_or_else(|| {
            let place = match &self.path {
                Some(p) if p.exists() => format!(
                    "{} has no [systems.{name}] (it has: {})",
                    p.display(),
                    self.systems.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                Some(p) => format!("there is no systems file at {} (set {SYSTEMS_ENV} or create it)", p.display()),
                None => format!("no systems file (set {SYSTEMS_ENV})"),
            };
            QueueError::Systems { origin: "system".into(), field: name.into(), message: place }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r##"
[systems.cluster]
host = "me@login.example.org"
scheduler = "slurm"
rundir = "autopara-jobs"
commands = ["module load gcc"]
header = ["#$ -pe smp {num_cores}", "#$ -P {{project}}"]
ssh_options = ["Port=2222", "IdentityFile=~/.ssh/id_cluster"]

[systems.cluster.queues."all.q"]
num_cores = 16
max_time = "48h"
max_mem = "64GB"

[systems.here]
scheduler = "slurm"
"##;

    #[test]
    fn a_systems_file_reads_as_expyre_config() {
        let s = Systems::from_toml_str(FILE, "t").unwrap();
        let c = s.get("cluster").unwrap();
        assert!(c.is_remote() && c.scheduler == SchedulerKind::Slurm);
        assert_eq!(c.partitions["all.q"].num_cores, 16);
        assert_eq!(c.partitions["all.q"].max_time_seconds(), Some(48 * 3600));
        assert_eq!(c.partitions["all.q"].max_mem_kb(), Some(64 * 1024 * 1024));
        let here = s.get("here").unwrap();
        assert!(!here.is_remote() && here.rundir.is_none());
        let e = s.get("elsewhere").unwrap_err().to_string();
        assert!(e.contains("elsewhere"), "{e}");
    }

    #[test]
    fn templates_fill_known_keys() {
        let values: BTreeMap<&str, String> = [("num_cores", "8".to_string()), ("id", "j-1".to_string())].into();
        assert_eq!(render_template("#$ -pe smp {num_cores} # {{x}}", &values).unwrap(), "#$ -pe smp 8 # {x}");
        assert!(render_template("{nope}", &values).unwrap_err().contains("unknown placeholder {nope}"));
        assert!(render_template("{num_cores", &values).is_err());
    }

    #[test]
    fn bad_systems_are_named() {
        let check = |text: &str, field: &str| {
            let e = Systems::from_toml_str(text, "f.toml").unwrap_err().to_string();
            assert!(e.contains("f.toml") && e.contains(field), "{e}");
        };
        check("[systems.a]\nscheduler = \"pbs\"", "scheduler");
        assert_eq!(
            Systems::from_toml_str("[systems.a]\nscheduler = \"sge\"", "f").unwrap().systems["a"].scheduler,
            SchedulerKind::Sge
        );
        check("[systems.a]\nheader = [\"#SBATCH -n {cores}\"]", "header");
        check("[systems.a]\nssh_options = [\"StrictHostKeyChecking=no\"]", "host-key checking stays on");
        check("[systems.a]\nssh_options = [\"ControlPath=/tmp/x\"]", "ssh_options");
        check("[systems.a]\nrundir = \"my jobs\"", "rundir");
        check("[systems.a.partitions.p]\nnum_cores = 0", "partitions.p.num_cores");
        check("[systems.a.partitions.p]\nnum_cores = 4\nmax_time = \"forever\"", "partitions.p");
        check("[systems.a]\nhots = \"x\"", "hots");
    }
}
