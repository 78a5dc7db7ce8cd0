//! The cache key of a run ([`RunKey::of`]), the inputs' content digest it
//! holds ([`input_digest`]), and how two keys differ.

use crate::atoms::Value;
use crate::configset::ConfigSet;
use crate::error::{Error, Result};
use crate::operation::Operation;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

/// The version of autopara that wrote an output: part of the key, so an
/// upgrade never serves results computed by older code.
pub const AUTOPARA_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything that determines a run's output. Two runs with equal keys write
/// byte-identical files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunKey {
    /// Op name.
    pub op: String,
    /// Op version (bumped by the op's authors whenever results change).
    pub op_version: u32,
    /// Canonical arguments (defaults filled in, calculator spec included, keys sorted).
    pub args: serde_json::Value,
    /// Seed of the per-item random streams.
    pub seed: u64,
    /// `blake3:<hex>` of the input content (see [`input_digest`]).
    pub inputs: String,
    /// Tags written into every output configuration (values as plain JSON).
    pub tags: BTreeMap<String, serde_json::Value>,
    /// autopara's version.
    pub autopara_version: String,
}

/// The inputs' content digest and, when it can be told, their number of items.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDigest {
    /// `blake3:<hex>`.
    pub digest: String,
    /// Items (frames of all files, in-memory configurations or counters);
    /// `None` when a file's frame headers are not plain counts.
    pub items: Option<u64>,
}

/// Counts extxyz frames from their atom-count lines while bytes stream by.
#[derive(Default)]
struct FrameCounter {
    frames: u64,
    /// Lines left in the current frame (comment and atoms).
    lines_left: u64,
    /// The atom-count line read so far.
    count_line: Vec<u8>,
    unreadable: bool,
}

impl FrameCounter {
    fn end_count_line(&mut self) {
        let text = String::from_utf8_lossy(&self.count_line);
        match text.trim().parse::<u64>() {
            Ok(n) => {
                self.frames += 1;
                self.lines_left = n.saturating_add(1);
            }
            Err(_) if text.trim().is_empty() => {}
            Err(_) => self.unreadable = true,
        }
        self.count_line.clear();
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.lines_left > 0 {
                // Skip the frame's remaining lines (memchr: this pass runs
                // before any work starts, on every input byte).
                let mut seen = 0u64;
                let end = memchr::memchr_iter(b'\n', bytes).find(|_| {
                    seen += 1;
                    seen == self.lines_left
                });
                match end {
                    Some(i) => {
                        self.lines_left = 0;
                        bytes = bytes.get(i + 1..).unwrap_or_default();
                    }
                    None => {
                        self.lines_left -= seen;
                        return;
                    }
                }
            } else {
                let (line, rest) = match memchr::memchr(b'\n', bytes) {
                    Some(i) => (&bytes[..i], Some(bytes.get(i + 1..).unwrap_or_default())),
                    None => (bytes, None),
                };
                let room = 64usize.saturating_sub(self.count_line.len());
                self.count_line.extend_from_slice(line.get(..room.min(line.len())).unwrap_or_default());
                match rest {
                    Some(rest) => {
                        self.end_count_line();
                        bytes = rest;
                    }
                    None => return,
                }
            }
        }
    }

    fn finish(mut self) -> Option<u64> {
        if !self.count_line.is_empty() {
            self.end_count_line();
        }
        (!self.unreadable).then_some(self.frames)
    }
}

/// How [`input_digest`] passes over input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestPass {
    /// Threads for the pass: from 2, one reads the files while another hashes them.
    pub threads: usize,
    /// Count the files' frames (for a progress bar's total); without it
    /// [`InputDigest::items`] is `None` for files.
    pub count_items: bool,
}

impl Default for DigestPass {
    /// One thread, counting frames.
    fn default() -> DigestPass {
        DigestPass { threads: 1, count_items: true }
    }
}

/// Bytes read from an input file at a time by [`input_digest`].
const DIGEST_BLOCK: usize = 1 << 20;

/// The digest of the inputs' content: the bytes of every input file (with
/// its length, so file boundaries count), the JSON of every in-memory item
/// (with its location), or the counter range. Chunking and workers play no
/// part; `pass` says how many threads read and hash the files and whether
/// their frames are counted (for progress).
pub fn input_digest(inputs: &ConfigSet, pass: DigestPass) -> Result<InputDigest> {
    let mut h = blake3::Hasher::new();
    let mut items = inputs.len_hint();
    if inputs.is_files() {
        h.update(b"files\0");
        items = digest_files(inputs.files(), pass, &mut h)?;
    } else if inputs.is_counters() {
        h.update(b"counters\0");
        h.update(&inputs.len_hint().unwrap_or(0).to_le_bytes());
    } else {
        h.update(b"memory\0");
        for item in inputs.items()? {
            let item = item?;
            let text = serde_json::to_vec(&(&item.location, &item.payload)).map_err(|e| Error::Other(e.to_string()))?;
            h.update(&(text.len() as u64).to_le_bytes());
            h.update(&text);
        }
    }
    Ok(InputDigest { digest: format!("blake3:{}", h.finalize().to_hex()), items })
}

/// Hashes `files` into `h` (each file's length, then its bytes) and, when
/// `pass` asks, counts their frames (`None` when not asked or a frame
/// header is not a plain count).
fn digest_files(files: &[PathBuf], pass: DigestPass, h: &mut blake3::Hasher) -> Result<Option<u64>> {
    if pass.threads < 2 {
        return read_files(files, pass.count_items, |block| {
            h.update(&block);
            block
        });
    }
    // This thread reads (and counts) the next block while another hashes the
    // last; blocks go back and forth, so at most four are ever allocated.
    let (to_hasher, blocks) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let (to_reader, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let hasher = s.spawn(move || {
            for block in blocks {
                h.update(&block);
                // The reader may have stopped on an error: nothing to give back then.
                let _ = to_reader.send(block);
            }
        });
        let items = read_files(files, pass.count_items, |block| {
            // A send fails only when the hasher has gone, which its join reports.
            let _ = to_hasher.send(block);
            spare.try_recv().unwrap_or_default()
        });
        drop(to_hasher);
        hasher.join().map_err(|_| Error::Other("the input digest's hashing thread panicked".into()))?;
        items
    })
}

/// Reads `files` block by block, handing each file's length and then its
/// bytes to `feed`, which returns a buffer for the next block; counts the
/// frames when `count` (see [`digest_files`]).
fn read_files(files: &[PathBuf], count: bool, mut feed: impl FnMut(Vec<u8>) -> Vec<u8>) -> Result<Option<u64>> {
    let mut total = Some(0u64);
    let mut buf = Vec::new();
    for path in files {
        crate::configset::check_input_file(path)?;
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        buf.clear();
        buf.extend_from_slice(&len.to_le_bytes());
        buf = feed(buf);
        let mut counter = FrameCounter::default();
        loop {
            buf.resize(DIGEST_BLOCK, 0);
            let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if count {
                counter.feed(&buf);
            }
            buf = feed(buf);
        }
        total = total.zip(counter.finish()).map(|(a, b)| a + b);
    }
    Ok(total.filter(|_| count))
}

/// `value` with every object's keys sorted, so equal arguments serialize equally.
pub fn canonical_json(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), canonical_json(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(canonical_json).collect()),
        other => other.clone(),
    }
}

/// Differences between JSON values as `path: old -> new` lines (`args.steps: 1000 -> 2000`).
fn json_diff(path: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value::{Array, Object};
    match (old, new) {
        (Object(a), Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => json_diff(&sub, x, y, out),
                    (Some(x), None) => out.push(format!("{sub}: {x} -> (absent)")),
                    (None, Some(y)) => out.push(format!("{sub}: (absent) -> {y}")),
                    (None, None) => {}
                }
            }
        }
        (Array(a), Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                json_diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

impl RunKey {
    /// The key of running `op` with `seed` on inputs with `digest`, tagging
    /// every output configuration with `tags`.
    pub fn of(op: &dyn Operation, seed: u64, digest: &InputDigest, tags: &IndexMap<String, Value>) -> RunKey {
        let info = op.info();
        RunKey {
            op: info.name.to_string(),
            op_version: info.version,
            args: canonical_json(&op.args()),
            seed,
            inputs: digest.digest.clone(),
            tags: tags.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
            autopara_version: AUTOPARA_VERSION.to_string(),
        }
    }

    /// What changed from `old` to `self`, one entry per part
    /// (`op md version 2 -> 3`, `args.steps: 1000 -> 2000`, `input digest differs`).
    /// Empty when the keys are equal.
    pub fn changes_from(&self, old: &RunKey) -> Vec<String> {
        let mut out = Vec::new();
        if old.op != self.op {
            out.push(format!("op {} -> {}", old.op, self.op));
        } else if old.op_version != self.op_version {
            out.push(format!("op {} version {} -> {}", self.op, old.op_version, self.op_version));
        }
        json_diff("args", &old.args, &self.args, &mut out);
        if old.seed != self.seed {
            out.push(format!("seed {} -> {}", old.seed, self.seed));
        }
        if old.inputs != self.inputs {
            out.push("input digest differs (the input files or configurations changed)".to_string());
        }
        if old.tags != self.tags {
            let as_object = |t: &BTreeMap<String, serde_json::Value>| {
                serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            };
            json_diff("tags", &as_object(&old.tags), &as_object(&self.tags), &mut out);
        }
        if old.autopara_version != self.autopara_version {
            out.push(format!("autopara version {} -> {}", old.autopara_version, self.autopara_version));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> RunKey {
        RunKey {
            op: "md".into(),
            op_version: 2,
            args: canonical_json(&json!({"steps": 1000, "calculator": {"type": "emt"}, "dt": 1.0})),
            seed: 0,
            inputs: "blake3:aa".into(),
            tags: BTreeMap::new(),
            autopara_version: AUTOPARA_VERSION.into(),
        }
    }

    #[test]
    fn every_part_of_a_change_is_named() {
        assert!(key().changes_from(&key()).is_empty());
        let mut new = key();
        new.op_version = 3;
        new.args = canonical_json(&json!({"steps": 2000, "calculator": {"type": "lennard_jones"}, "dt": 1.0, "x": 1}));
        new.seed = 5;
        new.inputs = "blake3:bb".into();
        new.tags.insert("run".into(), json!("b"));
        new.autopara_version = "9.9.9".into();
        let changes = new.changes_from(&key());
        assert_eq!(
            changes,
            vec![
                "op md version 2 -> 3",
                "args.calculator.type: \"emt\" -> \"lennard_jones\"",
                "args.steps: 1000 -> 2000",
                "args.x: (absent) -> 1",
                "seed 0 -> 5",
                "input digest differs (the input files or configurations changed)",
                "tags.run: (absent) -> \"b\"",
                &format!("autopara version {AUTOPARA_VERSION} -> 9.9.9"),
            ]
        );
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let a = canonical_json(&json!({"b": 1, "a": {"d": 2, "c": [ {"z": 1, "y": 2} ]}}));
        assert_eq!(a.to_string(), r#"{"a":{"c":[{"y":2,"z":1}],"d":2},"b":1}"#);
    }

    #[test]
    fn input_digest_counts_frames_and_ignores_file_names() {
        use crate::atoms::Atoms;
        let digest = |inputs: &ConfigSet| input_digest(inputs, DigestPass::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<Atoms> = (1..=4).map(|n| Atoms::new(vec![1; n], vec![[0.0; 3]; n])).collect();
        let (a, b) = (dir.path().join("a.xyz"), dir.path().join("b.xyz"));
        crate::extxyz::write_file(&a, &frames).unwrap();
        crate::extxyz::write_file(&b, &frames[..1]).unwrap();
        let both = digest(&ConfigSet::from_files(vec![a.clone(), b.clone()]));
        assert_eq!(both.items, Some(5));
        let moved = dir.path().join("moved.xyz");
        std::fs::copy(&a, &moved).unwrap();
        let one = digest(&ConfigSet::from_files(vec![a.clone()]));
        assert_eq!(one, digest(&ConfigSet::from_files(vec![moved])));
        assert_ne!(one.digest, both.digest);
        std::fs::write(&b, "not a count\nx\n").unwrap();
        assert_eq!(digest(&ConfigSet::from_files(vec![b])).items, None);
        let mem = digest(&ConfigSet::from_atoms(frames.clone()));
        assert_eq!(mem.items, Some(4));
        assert_ne!(mem.digest, digest(&ConfigSet::from_atoms(frames[..3].to_vec())).digest);
        assert_eq!(digest(&ConfigSet::counters(7)).items, Some(7));
    }

    #[test]
    fn input_digest_is_the_same_on_two_threads_and_without_counting() {
        let dir = tempfile::tempdir().unwrap();
        let frame = |i: usize| format!("1\nn={i}\nH 0 0 {i}\n");
        let (big, small) = (dir.path().join("big.xyz"), dir.path().join("small.xyz"));
        // More than two blocks, ending mid-block; then a file of one frame.
        std::fs::write(&big, (0..150_000).map(frame).collect::<String>()).unwrap();
        assert!(std::fs::metadata(&big).unwrap().len() > 2 * DIGEST_BLOCK as u64 + 1000);
        std::fs::write(&small, frame(7)).unwrap();
        let inputs = ConfigSet::from_files(vec![big, small]);
        let one = input_digest(&inputs, DigestPass::default()).unwrap();
        assert_eq!(one.items, Some(150_001));
        let two = input_digest(&inputs, DigestPass { threads: 2, count_items: true }).unwrap();
        assert_eq!(two, one);
        for threads in [1, 2] {
            let uncounted = input_digest(&inputs, DigestPass { threads, count_items: false }).unwrap();
            assert_eq!((uncounted.digest.as_str(), uncounted.items), (one.digest.as_str(), None));
        }
        // Unreadable input stops either pass with the file's name.
        let missing = ConfigSet::from_files(vec![dir.path().join("missing.xyz")]);
        for threads in [1, 2] {
            let err = input_digest(&missing, DigestPass { threads, count_items: true }).unwrap_err().to_string();
            assert!(err.contains("missing.xyz"), "{err}");
        }
    }

    #[test]
    fn frame_counter_gives_the_same_count_however_the_bytes_arrive() {
        let text = b"2\nx\nH 0 0 0\nH 0 0 1\n\n  1 \r\n\nH 0 0 0\n0\nempty\n1\nlast\nH 0 0 0";
        let whole = |bytes: &[&[u8]]| {
            let mut c = FrameCounter::default();
            bytes.iter().for_each(|b| c.feed(b));
            c.finish()
        };
        assert_eq!(whole(&[text]), Some(4));
        for cut in 0..text.len() {
            assert_eq!(whole(&[&text[..cut], &text[cut..]]), Some(4), "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(whole(&bytes), Some(4));
        assert_eq!(whole(&[b"2\nx\nH 0 0 0\nH 0 0 1\nnot a count\n"]), None);
        let long = format!("1\n\n{}\n{}\n", "x".repeat(200), "9".repeat(100));
        assert_eq!(whole(&[long.as_bytes()]), None);
    }
}
