//! [`Resources`]: what one job asks the scheduler for, in wfl/ExPyRe's terms
//! (`max_time`, `num_nodes` or `num_cores`, memory, `partitions` regexps), and
//! the choice of a partition from a system's table of node types
//! ([`Resources::allocate`], ExPyRe's `find_nodes`).

use crate::systems::Partition;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// A job's resources. Every field may be left out: without `num_nodes` and
/// `num_cores` a job takes one core (one whole node when the system lists
/// partitions).
///
/// ```
/// use autopara_queue::resources::Resources;
/// let r: Resources = toml::from_str("max_time = \"2h\"\nnum_cores = 4\npartitions = \"standard|short\"").unwrap();
/// assert_eq!(r.max_time_seconds("t").unwrap(), Some(7200));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// Wall-time limit: seconds (an integer), `"<N>[smhd]"` (`"30m"`, `"2h"`), or
    /// `"[days-][[hours:]minutes:]seconds"` (`"1-12:00:00"`, `"90:00"`), as ExPyRe reads it.
    pub max_time: Option<TimeSpec>,
    /// Whole nodes per job (exclusive with `num_cores`). A job runs one worker
    /// process on one node, so only 1 is accepted.
    pub num_nodes: Option<u32>,
    /// Cores per job (exclusive with `num_nodes`); the worker runs this many threads.
    pub num_cores: Option<u32>,
    /// Memory for the whole job: kB (an integer) or `"<N>[kmgt]b?"` (`"4GB"`).
    pub max_mem_tot: Option<MemSpec>,
    /// Memory per core, in the same forms (exclusive with `max_mem_tot`).
    pub max_mem_per_core: Option<MemSpec>,
    /// Partitions (Slurm) or queues (SGE) the job may use: one regular
    /// expression or a list, each matching a whole name in the system's
    /// `partitions`; without a system table, a single plain name is used as is.
    #[serde(alias = "queues")]
    pub partitions: Option<OneOrMany>,
}

/// A time limit as given: seconds or text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TimeSpec {
    /// Seconds.
    Seconds(u64),
    /// `"30m"`, `"2h"`, `"1-00:00:00"`, `"90:00"`.
    Text(String),
}

/// A memory amount as given: kB or text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MemSpec {
    /// kB.
    Kb(u64),
    /// `"4GB"`, `"500m"`.
    Text(String),
}

/// One string or a list of strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings.
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// What a job gets: the chosen partition and its node counts, as the header
/// templates see them (`{partition}`, `{num_nodes}`, `{num_cores}`,
/// `{num_cores_per_node}`, `{max_time}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The partition or queue, if any.
    pub partition: Option<String>,
    /// Nodes.
    pub num_nodes: u32,
    /// Cores in all (the worker's threads).
    pub num_cores: u32,
    /// Cores per node.
    pub num_cores_per_node: u32,
    /// Wall-time limit in seconds.
    pub max_time: Option<u64>,
    /// Memory: (kB, per core?).
    pub memory: Option<(u64, bool)>,
}

/// Parses an ExPyRe time: `"<N>[smhd]"` or `"[days-][[h:]m:]s"`, to seconds.
pub fn parse_time(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    if let Some(unit) = t.chars().last().filter(|c| "smhd".contains(*c)) {
        let scale = match unit {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => 86400.0,
        };
        let n: f64 = t[..t.len() - 1].trim().parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
        return Some((n * scale) as u64);
    }
    let (days, hms) = match t.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, t.as_str()),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let seconds = parts.iter().try_fold(0u64, |acc, p| acc.checked_mul(60)?.checked_add(p.parse().ok()?))?;
    days.checked_mul(86400)?.checked_add(seconds)
}

/// Parses an ExPyRe memory amount `"<N>[kmgt]b?"` to kB.
pub fn parse_mem(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let unit = t.chars().last().filter(|c| "kmgt".contains(*c))?;
    let scale = match unit {
        'k' => 1.0,
        'm' => 1024.0,
        'g' => 1024.0 * 1024.0,
        _ => 1024.0 * 1024.0 * 1024.0,
    };
    let n: f64 = t[..t.len() - 1].trim().parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    Some((n * scale) as u64)
}

/// `H:MM:SS` (hours may exceed 24), as Slurm's `--time` and SGE's `h_rt` take it.
pub fn hms(seconds: u64) -> String {
    format!("{}:{:02}:{:02}", seconds / 3600, (seconds / 60) % 60, seconds % 60)
}

impl TimeSpec {
    fn seconds(&self) -> Option<u64> {
        match self {
            TimeSpec::Seconds(s) => Some(*s),
            TimeSpec::Text(t) => parse_time(t),
        }
    }
}

impl MemSpec {
    fn kb(&self) -> Option<u64> {
        match self {
            MemSpec::Kb(k) => Some(*k),
            MemSpec::Text(t) => parse_mem(t),
        }
    }
}

/// Parses an optional time field; `origin` and `field` name it in errors.
pub(crate) fn time_field(spec: Option<&TimeSpec>, field: &str) -> Result<Option<u64>, String> {
    spec.map(|t| {
        t.seconds().ok_or_else(|| format!("{field}: {t:?} is not a time (seconds, \"30m\", \"2h\", \"1-00:00:00\")"))
    })
    .transpose()
}

/// Parses an optional memory field.
pub(crate) fn mem_field(spec: Option<&MemSpec>, field: &str) -> Result<Option<u64>, String> {
    spec.map(|m| m.kb().ok_or_else(|| format!("{field}: {m:?} is not a memory amount (kB, \"4GB\", \"500m\")")))
        .transpose()
}

impl Resources {
    /// The time limit in seconds; the error names `origin`.
    pub fn max_time_seconds(&self, origin: &str) -> Result<Option<u64>, String> {
        time_field(self.max_time.as_ref(), "resources.max_time").map_err(|e| format!("{origin}: {e}"))
    }

    /// Checks what can be checked without a system: exclusive fields, counts,
    /// formats, and that the regular expressions compile.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((format!("resources.{f}"), m));
        if self.num_nodes.is_some() && self.num_cores.is_some() {
            return bad("num_cores", "give num_nodes or num_cores, not both".into());
        }
        if self.max_mem_tot.is_some() && self.max_mem_per_core.is_some() {
            return bad("max_mem_per_core", "give max_mem_tot or max_mem_per_core, not both".into());
        }
        match self.num_nodes {
            Some(0) => return bad("num_nodes", "must be 1".into()),
            Some(n) if n > 1 => {
                return bad(
                    "num_nodes",
                    format!(
                        "{n} nodes: a job runs one worker process on one node; use more jobs (smaller num_inputs_per_queued_job) instead"
                    ),
                );
            }
            _ => {}
        }
        if self.num_cores == Some(0) {
            return bad("num_cores", "must be at least 1".into());
        }
        time_field(self.max_time.as_ref(), "max_time").map_err(|e| ("resources.max_time".to_string(), e))?;
        mem_field(self.max_mem_tot.as_ref(), "max_mem_tot").map_err(|e| ("resources.max_mem_tot".to_string(), e))?;
        mem_field(self.max_mem_per_core.as_ref(), "max_mem_per_core")
            .map_err(|e| ("resources.max_mem_per_core".to_string(), e))?;
        for p in self.partitions.iter().flat_map(OneOrMany::items) {
            if let Err(e) = regex::Regex::new(&format!("^(?:{p})$")) {
                return bad("partitions", format!("{p:?} is not a regular expression: {e}"));
            }
        }
        Ok(())
    }

    /// Chooses a partition from `partitions` (a system's table; empty for none)
    /// and the node counts, as ExPyRe's `find_nodes`: a partition must match one
    /// of the `partitions` regexps (whole name), allow `max_time`, have enough
    /// memory, hold the job on one node, and (with `exact_fit` and whole nodes)
    /// take `num_cores` in whole nodes; of several, the first in the table that
    /// fits exactly, else the one wasting fewest cores. `partial_node` lets a job take part of a node. Call
    /// [`Resources::validate`] first.
    pub fn allocate(
        &self,
        partitions: &IndexMap<String, Partition>,
        exact_fit: bool,
        partial_node: bool,
    ) -> Result<Allocation, String> {
        let max_time = time_field(self.max_time.as_ref(), "max_time")?;
        let memory = match (&self.max_mem_tot, &self.max_mem_per_core) {
            (Some(m), _) => mem_field(Some(m), "max_mem_tot")?.map(|k| (k, false)),
            (None, Some(m)) => mem_field(Some(m), "max_mem_per_core")?.map(|k| (k, true)),
            (None, None) => None,
        };
        let patterns: Vec<regex::Regex> = self
            .partitions
            .iter()
            .flat_map(OneOrMany::items)
            .map(|p| regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("partitions: {p:?}: {e}")))
            .collect::<Result<_, _>>()?;
        if partitions.is_empty() {
            // No node table: a plain partition name is used as is, cores as asked.
            let names = self.partitions.as_ref().map(OneOrMany::items).unwrap_or_default();
            if names.len() > 1 {
                return Err("partitions: several names need the system's partitions table to choose from".into());
            }
            if self.num_nodes.is_some() {
                return Err("num_nodes needs the system's partitions table (cores per node); give num_cores".into());
            }
            let cores = self.num_cores.unwrap_or(1);
            return Ok(Allocation {
                partition: names.first().map(|s| s.to_string()),
                num_nodes: 1,
                num_cores: cores,
                num_cores_per_node: cores,
                max_time,
                memory,
            });
        }
        let exact_fit = exact_fit && !partial_node;
        // (name, num_nodes, num_cores, cores per node)
        let mut fitting: Vec<(&str, u32, u32, u32)> = Vec::new();
        let mut rejected = Vec::new();
        for (name, p) in partitions {
            let per_node = p.num_cores;
            let (nodes, cores) = match (self.num_nodes, self.num_cores) {
                (Some(n), _) => (n, n * per_node),
                (None, Some(c)) => (c.div_ceil(per_node), c),
                (None, None) => (1, per_node),
            };
            let why = if !patterns.is_empty() && !patterns.iter().any(|r| r.is_match(name)) {
                Some("not in partitions".to_string())
            } else if nodes > 1 {
                Some(format!("{cores} cores need {nodes} nodes of {per_node}, and a job runs on one node"))
            } else if let (Some(want), Some(limit)) = (max_time, p.max_time_seconds()) {
                (want > limit).then(|| format!("max_time {} > {}", hms(want), hms(limit)))
            } else {
                None
            }
            .or_else(|| {
                (exact_fit && self.num_nodes.is_none() && self.num_cores.is_some() && cores % per_node != 0)
                    .then(|| format!("{cores} cores are not whole nodes of {per_node} (exact_fit)"))
            })
            .or_else(|| {
                let (kb, per_core) = memory?;
                let node_kb = p.max_mem_kb()?;
                let too_much =
                    if per_core { kb > node_kb / u64::from(per_node) } else { kb > node_kb * u64::from(nodes) };
                too_much.then(|| "not enough memory".to_string())
            });
            match why {
                Some(why) => rejected.push(format!("{name}: {why}")),
                None => fitting.push((name.as_str(), nodes, cores, per_node)),
            }
        }
        let excess = |&(_, _, cores, per_node): &(&str, u32, u32, u32)| (per_node - cores % per_node) % per_node;
        let chosen = fitting
            .iter()
            .find(|f| excess(f) == 0)
            .or_else(|| fitting.iter().min_by_key(|f| excess(f)))
            .ok_or_else(|| format!("no partition fits ({})", rejected.join("; ")))?;
        let &(name, nodes, cores, per_node) = chosen;
        let (num_cores, num_cores_per_node) = if partial_node {
            if cores > per_node {
                return Err(format!("partial_node: {cores} cores do not fit on one node of {name} ({per_node})"));
            }
            (cores, cores)
        } else {
            (nodes * per_node, per_node)
        };
        Ok(Allocation {
            partition: Some(name.to_string()),
            num_nodes: nodes,
            num_cores,
            num_cores_per_node,
            max_time,
            memory,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_memory_as_expyre_reads_them() {
        assert_eq!(parse_time("30m"), Some(1800));
        assert_eq!(parse_time("2H"), Some(7200));
        assert_eq!(parse_time("1.5h"), Some(5400));
        assert_eq!(parse_time("1d"), Some(86400));
        assert_eq!(parse_time("90"), Some(90));
        assert_eq!(parse_time("90:00"), Some(5400));
        assert_eq!(parse_time("1:00:00"), Some(3600));
        assert_eq!(parse_time("2-01:00:05"), Some(2 * 86400 + 3605));
        assert_eq!(parse_time("soon"), None);
        assert_eq!(parse_time("1:2:3:4"), None);
        assert_eq!(parse_mem("4GB"), Some(4 * 1024 * 1024));
        assert_eq!(parse_mem("500m"), Some(500 * 1024));
        assert_eq!(parse_mem("1.5tb"), Some((1.5 * 1024.0 * 1024.0 * 1024.0) as u64));
        assert_eq!(parse_mem("lots"), None);
        assert_eq!(hms(90061), "25:01:01");
    }

    fn table() -> IndexMap<String, Partition> {
        let p = |cores: u32, time: Option<&str>, mem: Option<&str>| Partition {
            num_cores: cores,
            max_time: time.map(|t| TimeSpec::Text(t.into())),
            max_mem: mem.map(|m| MemSpec::Text(m.into())),
        };
        [
            ("debug".to_string(), p(40, Some("1h"), Some("120GB"))),
            ("node16".to_string(), p(16, None, Some("60GB"))),
            ("node36".to_string(), p(36, None, Some("180GB"))),
            ("standard".to_string(), p(40, Some("168h"), Some("120GB"))),
        ]
        .into_iter()
        .collect()
    }

    fn resources(toml_text: &str) -> Resources {
        let r: Resources = toml::from_str(toml_text).unwrap();
        r.validate().unwrap();
        r
    }

    #[test]
    fn partitions_are_chosen_as_expyre_does() {
        let t = table();
        // Whole nodes: 32 cores fit node16 exactly (2 nodes), but one node of
        // node16 is the only exact fit for 16; 36 only node36.
        let a = resources("num_cores = 36").allocate(&t, true, false).unwrap();
        assert_eq!(
            (a.partition.as_deref(), a.num_nodes, a.num_cores, a.num_cores_per_node),
            (Some("node36"), 1, 36, 36)
        );
        let a = resources("num_nodes = 1\npartitions = \"node.*\"").allocate(&t, true, false).unwrap();
        assert_eq!((a.partition.as_deref(), a.num_cores), (Some("node16"), 16));
        // A time limit rules out debug; a regexp picks among the rest.
        let a = resources("num_nodes = 1\nmax_time = \"2h\"\npartitions = [\"debug\", \"standard\"]")
            .allocate(&t, true, false)
            .unwrap();
        assert_eq!((a.partition.as_deref(), a.max_time), (Some("standard"), Some(7200)));
        // Four cores are no whole node anywhere, unless partial nodes are allowed.
        let e = resources("num_cores = 4").allocate(&t, true, false).unwrap_err();
        assert!(e.contains("no partition fits") && e.contains("exact_fit"), "{e}");
        let a = resources("num_cores = 4\npartitions = \"node36\"").allocate(&t, true, true).unwrap();
        assert_eq!((a.num_cores, a.num_cores_per_node), (4, 4));
        // Without exact_fit the least wasteful whole node is taken.
        let a = resources("num_cores = 30").allocate(&t, false, false).unwrap();
        assert_eq!((a.partition.as_deref(), a.num_cores), (Some("node36"), 36));
        // Memory per core rules out the small nodes.
        let a = resources("num_nodes = 1\nmax_mem_per_core = \"4GB\"").allocate(&t, true, false).unwrap();
        assert_eq!(a.partition.as_deref(), Some("node36"));
        let e = resources("num_nodes = 1\nmax_mem_tot = \"2TB\"").allocate(&t, true, false).unwrap_err();
        assert!(e.contains("not enough memory"), "{e}");
    }

    #[test]
    fn without_a_table_names_and_cores_are_taken_as_given() {
        let a =
            resources("num_cores = 3\npartitions = \"short\"\nmax_time = 600").allocate(&IndexMap::new(), true, false);
        let a = a.unwrap();
        assert_eq!((a.partition.as_deref(), a.num_cores, a.max_time), (Some("short"), 3, Some(600)));
        let a = Resources::default().allocate(&IndexMap::new(), true, false).unwrap();
        assert_eq!((a.partition, a.num_cores), (None, 1));
        assert!(resources("num_nodes = 1").allocate(&IndexMap::new(), true, false).is_err());
    }

    #[test]
    fn bad_resources_are_named() {
        let check = |text: &str, field: &str| {
            let r: Resources = toml::from_str(text).unwrap();
            let (f, m) = r.validate().unwrap_err();
            assert_eq!(f, field, "{m}");
        };
        check("num_nodes = 1\nnum_cores = 2", "resources.num_cores");
        check("num_nodes = 2", "resources.num_nodes");
        check("max_time = \"tomorrow\"", "resources.max_time");
        check("max_mem_tot = \"lots\"", "resources.max_mem_tot");
        check("partitions = \"(\"", "resources.partitions");
    }
}
