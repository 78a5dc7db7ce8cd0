//! Job directories: what one batch job reads and writes, named by the hash of
//! its content so that a rerun finds the same directory.
//!
//! ```text
//! <jobs_dir>/<hash>/
//!   task.json        op, version, canonical args, seed, chunk size, threads, and per item
//!                    its global index, location (and counter, for generator ops)
//!   items.xyz        the job's configurations, extxyz, in item order
//!   items.json       instead of items.xyz when extxyz cannot carry the items exactly
//!   job.sh           the batch script (header, env vars, commands, worker, status)
//!   submission.json  the scheduler's job id and attempt number, written right after submitting
//!   stdout, stderr   the job's output streams
//!   results.json     the worker's per-item results, in item order
//!   status           the worker's exit code, written by the script as its last act
//! ```

use crate::error::{QueueError, Result};
use autopara_core::executor::JobSpec;
use autopara_core::{Atoms, Item, ItemResult, Location, Payload, extxyz};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Version of the job-directory format; part of the content hash.
pub(crate) const FORMAT: u32 = 1;

/// What a job computes: everything that determines its results, plus how to
/// split the work inside the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobTask {
    /// Job-directory format version.
    pub format: u32,
    /// Op name, version, canonical arguments and seed.
    pub spec: JobSpec,
    /// Items per chunk inside the job (does not change results).
    pub chunk_size: usize,
    /// Worker threads inside the job (does not change results).
    pub threads: usize,
    /// The job's items without their configurations, in order.
    pub items: Vec<ItemHeader>,
}

/// An item's identity: its configuration travels in `items.xyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemHeader {
    /// Global index over the run's inputs (the item's random stream depends on it).
    pub index: u64,
    /// Where the item came from.
    pub location: Location,
    /// The counter of a counter item (generator ops); `None` for configurations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<u64>,
}

impl JobTask {
    /// A task for `items` (their indices, locations and counters are recorded).
    pub fn new(spec: &JobSpec, chunk_size: usize, threads: usize, items: &[Item]) -> JobTask {
        JobTask {
            format: FORMAT,
            spec: spec.clone(),
            chunk_size: chunk_size.max(1),
            threads: threads.max(1),
            items: items
                .iter()
                .map(|i| ItemHeader {
                    index: i.index,
                    location: i.location.clone(),
                    counter: match i.payload {
                        Payload::Counter(n) => Some(n),
                        Payload::Atoms(_) | Payload::Frame(_) => None,
                    },
                })
                .collect(),
        }
    }

    /// The content key: blake3 of the format, op, version, canonical args, seed
    /// and the serialized items (indices, locations, payloads). Chunk size and
    /// thread count are left out: they do not change results.
    pub fn content_hash(&self, items_json: &[u8]) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"autopara queue job\0");
        h.update(&self.format.to_le_bytes());
        for part in [self.spec.op.as_bytes(), self.spec.args.to_string().as_bytes(), items_json] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(&self.spec.op_version.to_le_bytes());
        h.update(&self.spec.seed.to_le_bytes());
        h.finalize().to_hex()[..32].to_string()
    }
}

/// The submission recorded in a job directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The scheduler's job id.
    pub id: String,
    /// 1 for the first submission, +1 per resubmission.
    pub attempt: u32,
}

/// The paths of one job directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir {
    /// The directory.
    pub dir: PathBuf,
    /// The job name: `<job_name>-<first 12 hex digits of the hash>`.
    pub name: String,
}

impl JobDir {
    /// The directory for content `hash` under `jobs_dir` (absolute).
    pub fn new(jobs_dir: &Path, job_name: &str, hash: &str) -> JobDir {
        JobDir { dir: jobs_dir.join(hash), name: format!("{job_name}-{}", &hash[..hash.len().min(12)]) }
    }

    /// The content hash: the directory's name.
    pub fn hash(&self) -> &str {
        self.dir.file_name().and_then(|n| n.to_str()).unwrap_or("")
    }

    /// `task.json`.
    pub fn task(&self) -> PathBuf {
        self.dir.join("task.json")
    }
    /// `items.xyz`.
    pub fn items_xyz(&self) -> PathBuf {
        self.dir.join("items.xyz")
    }
    /// `items.json` (only when extxyz cannot carry the items exactly).
    pub fn items_json(&self) -> PathBuf {
        self.dir.join("items.json")
    }

    /// Writes the job's configurations: `items.xyz` when reading it back gives
    /// exactly `items` (the usual case: floats are written in shortest
    /// round-trip form), else `items_json`, the items' exact serialization
    /// (extxyz turns a string info value such as `"T"` into a bool).
    pub fn write_items(&self, items: &[Item], items_json: &[u8]) -> Result<()> {
        if items.iter().any(|i| matches!(i.payload, Payload::Frame(_))) {
            // Unparsed frames travel as they are; the job parses them.
            return write_atomic(&self.items_json(), items_json);
        }
        let configs: Vec<&Atoms> = items
            .iter()
            .filter_map(|i| match &i.payload {
                Payload::Atoms(a) => Some(a),
                Payload::Counter(_) | Payload::Frame(_) => None,
            })
            .collect();
        let mut text = Vec::new();
        for a in &configs {
            extxyz::write_frame(&mut text, a).map_err(|e| QueueError::io(self.items_xyz(), e))?;
        }
        let exact = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| extxyz::read_str(t).ok())
            .is_some_and(|back| back.len() == configs.len() && back.iter().zip(&configs).all(|(b, a)| b == *a));
        if exact { write_atomic(&self.items_xyz(), &text) } else { write_atomic(&self.items_json(), items_json) }
    }

    /// The job's items, from `items.json` if the driver wrote one, else from
    /// `task` and `items.xyz`.
    pub fn read_items(&self, task: &JobTask) -> Result<Vec<Item>> {
        if self.items_json().exists() {
            return read_json(&self.items_json());
        }
        let path = self.items_xyz();
        let mut frames = extxyz::read_file(&path)
            .map_err(|e| QueueError::JobFile { path: path.clone(), message: e.to_string() })?
            .into_iter();
        let mut items = Vec::with_capacity(task.items.len());
        for h in &task.items {
            let payload = match h.counter {
                Some(n) => Payload::Counter(n),
                None => Payload::Atoms(frames.next().ok_or_else(|| QueueError::JobFile {
                    path: path.clone(),
                    message: format!("fewer configurations than task.json lists ({})", task.items.len()),
                })?),
            };
            items.push(Item { index: h.index, location: h.location.clone(), payload });
        }
        if frames.next().is_some() {
            return Err(QueueError::JobFile { path, message: "more configurations than task.json lists".into() });
        }
        Ok(items)
    }
    /// `job.sh`.
    pub fn script(&self) -> PathBuf {
        self.dir.join("job.sh")
    }
    /// `submission.json`.
    pub fn submission(&self) -> PathBuf {
        self.dir.join("submission.json")
    }
    /// `results.json`.
    pub fn results(&self) -> PathBuf {
        self.dir.join("results.json")
    }
    /// `status`.
    pub fn status(&self) -> PathBuf {
        self.dir.join("status")
    }
    /// `stderr`.
    pub fn stderr(&self) -> PathBuf {
        self.dir.join("stderr")
    }
    /// `stdout`.
    pub fn stdout(&self) -> PathBuf {
        self.dir.join("stdout")
    }

    /// Opens an existing directory (the worker's side); the name is the directory's.
    pub fn open(dir: &Path) -> JobDir {
        JobDir {
            dir: dir.to_path_buf(),
            name: dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        }
    }

    /// The recorded submission, if any.
    pub fn read_submission(&self) -> Result<Option<Submission>> {
        read_json_opt(&self.submission())
    }

    /// The worker's exit code from `status`, if the script got that far.
    pub fn read_status(&self) -> Result<Option<i32>> {
        let path = self.status();
        match std::fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| QueueError::JobFile { path, message: format!("expected an exit code, found {s:?}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(QueueError::io(path, e)),
        }
    }

    /// The worker's results, one per item.
    pub fn read_results(&self) -> Result<Vec<ItemResult>> {
        read_json(&self.results())
    }

    /// The last `lines` lines of the job's stderr (empty when absent).
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.stderr()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Forgets a previous attempt's outcome before a resubmission.
    pub fn clear_attempt(&self) -> Result<()> {
        for p in [self.status(), self.results(), self.submission()] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(QueueError::io(p, e)),
            }
        }
        Ok(())
    }
}

/// What a job script is made of.
#[derive(Debug, Clone)]
pub struct ScriptParts<'a> {
    /// Header lines (`#SBATCH ...`, `#$ ...`), filled in.
    pub header: Vec<String>,
    /// Variables to export.
    pub env_vars: &'a BTreeMap<String, String>,
    /// Worker threads (`AUTOPARA_NUM_WORKERS`).
    pub threads: usize,
    /// Shell lines before the worker: the system's commands, then `pre_cmds`.
    pub commands: Vec<&'a str>,
    /// Shell lines after the worker.
    pub post_cmds: &'a [String],
    /// The `autopara` binary where the job runs.
    pub autopara_bin: &'a str,
    /// The job directory where the job runs.
    pub dir: &'a str,
}

/// The batch script of a job: header, exported variables, commands, the
/// worker, post commands, and the status file written last.
pub fn job_script(parts: &ScriptParts<'_>) -> String {
    let mut s = String::from("#!/bin/bash\n");
    for line in &parts.header {
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    for (k, v) in parts.env_vars {
        let _ = writeln!(s, "export {k}={}", shell_quote(v));
    }
    let _ = writeln!(s, "export AUTOPARA_NUM_WORKERS={}", parts.threads);
    for c in &parts.commands {
        s.push_str(c);
        s.push('\n');
    }
    let dir = shell_quote(parts.dir);
    let _ = writeln!(s, "{} worker --job-dir {dir}\nrc=$?", shell_quote(parts.autopara_bin));
    for c in parts.post_cmds {
        s.push_str(c);
        s.push('\n');
    }
    let _ = writeln!(s, "echo $rc > {dir}/status.tmp && mv -f {dir}/status.tmp {dir}/status\nexit $rc");
    s
}

/// Single-quotes `s` for POSIX shells.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers
/// never see a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| QueueError::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| QueueError::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| QueueError::io(path, e.error))?;
    Ok(())
}

/// Serializes `value` as JSON to `path` atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let bytes =
        serde_json::to_vec(value).map_err(|e| QueueError::JobFile { path: path.into(), message: e.to_string() })?;
    write_atomic(path, &bytes)
}

/// Reads JSON from `path`.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| QueueError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| QueueError::JobFile { path: path.into(), message: e.to_string() })
}

/// Reads JSON from `path`, `None` when the file does not exist.
fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    read_json(path).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use autopara_core::Value;

    #[test]
    fn script_has_header_env_commands_worker_and_status() {
        let env: BTreeMap<String, String> = [("OMP_NUM_THREADS".to_string(), "1 2'3".to_string())].into();
        let post = vec!["echo done".to_string()];
        let s = job_script(&ScriptParts {
            header: vec!["#SBATCH --job-name=emt-0123".into(), "#SBATCH --qos=short".into()],
            env_vars: &env,
            threads: 3,
            commands: vec!["module load x", "source venv"],
            post_cmds: &post,
            autopara_bin: "/opt/bin/autopara",
            dir: "/jobs/0123",
        });
        let want = "#!/bin/bash\n#SBATCH --job-name=emt-0123\n#SBATCH --qos=short\n\n\
                    export OMP_NUM_THREADS='1 2'\\''3'\nexport AUTOPARA_NUM_WORKERS=3\nmodule load x\nsource venv\n\
                    '/opt/bin/autopara' worker --job-dir '/jobs/0123'\nrc=$?\necho done\n\
                    echo $rc > '/jobs/0123'/status.tmp && mv -f '/jobs/0123'/status.tmp '/jobs/0123'/status\nexit $rc\n";
        assert_eq!(s, want);
    }

    fn item(index: u64, payload: Payload) -> Item {
        Item { index, location: Location { file: Some(1), path: vec![index as usize + 10] }, payload }
    }

    /// Writes `items` into a fresh job directory and reads them back.
    fn round_trip(items: &[Item]) -> (Vec<Item>, bool) {
        let tmp = tempfile::tempdir().unwrap();
        let job = JobDir::open(tmp.path());
        let spec = JobSpec { op: "op".into(), op_version: 1, args: serde_json::json!({}), seed: 0 };
        let task = JobTask::new(&spec, 2, 1, items);
        job.write_items(items, &serde_json::to_vec(items).unwrap()).unwrap();
        let task: JobTask = serde_json::from_slice(&serde_json::to_vec(&task).unwrap()).unwrap();
        (job.read_items(&task).unwrap(), job.items_xyz().exists())
    }

    #[test]
    fn items_travel_as_extxyz_exactly_or_as_json() {
        let mut a = Atoms::new(vec![29, 1], vec![[0.1, 1.0 / 3.0, 2e-17], [1e300, -0.0, 5.0]]);
        a.cell = [[3.6, 0.0, 0.0], [0.0, 3.6, 0.0], [0.1, 0.0, 3.6]];
        a.pbc = [true, false, true];
        a.info.insert("energy".into(), Value::Float(-1.0 / 7.0));
        let items =
            vec![item(4, Payload::Atoms(a.clone())), item(5, Payload::Counter(9)), item(6, Payload::Atoms(a.clone()))];
        assert_eq!(round_trip(&items), (items.clone(), true));
        // extxyz would read this string back as a bool: the exact JSON is used instead.
        a.info.insert("label".into(), Value::Str("T".into()));
        let items = vec![item(0, Payload::Atoms(a))];
        assert_eq!(round_trip(&items), (items.clone(), false));
    }

    #[test]
    fn hash_depends_on_content_not_chunking() {
        let spec = JobSpec { op: "op".into(), op_version: 1, args: serde_json::json!({"a": 1}), seed: 5 };
        let t = JobTask { format: FORMAT, spec: spec.clone(), chunk_size: 2, threads: 1, items: Vec::new() };
        let h = t.content_hash(b"items");
        let with = |spec: JobSpec| JobTask { spec, ..t.clone() }.content_hash(b"items");
        assert_eq!(h, JobTask { chunk_size: 9, threads: 4, ..t.clone() }.content_hash(b"items"));
        assert_ne!(h, with(JobSpec { seed: 6, ..spec.clone() }));
        assert_ne!(h, with(JobSpec { args: serde_json::json!({"a": 2}), ..spec.clone() }));
        assert_ne!(h, with(JobSpec { op_version: 2, ..spec.clone() }));
        assert_ne!(h, with(JobSpec { op: "op2".into(), ..spec.clone() }));
        assert_ne!(h, t.content_hash(b"items2"));
    }
}
