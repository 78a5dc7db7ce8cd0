use super::*;
use crate::atoms::Value;
use crate::autopara_info::AutoparaInfo;
use crate::calculator::{CalcError, CalcResults, Calculator, CalculatorSpec, Properties};
use crate::operation::{InputKind, OpInfo, Payload};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Collects everything a run produces, in order.
#[derive(Default, Debug, PartialEq)]
struct Collect {
    items: Vec<(u64, Location, Vec<Atoms>)>,
    failures: Vec<FailureRecord>,
    checkpoints: Vec<u64>,
}

impl ResultSink for Collect {
    fn write_item(&mut self, index: u64, location: &Location, frames: Vec<Atoms>) -> Result<()> {
        self.items.push((index, location.clone(), frames));
        Ok(())
    }
    fn write_failure(&mut self, failure: &FailureRecord) -> Result<()> {
        self.failures.push(failure.clone());
        Ok(())
    }
    fn checkpoint(&mut self, next_index: u64, _now: bool) -> Result<()> {
        self.checkpoints.push(next_index);
        Ok(())
    }
}

static RATTLE: OpInfo =
    OpInfo { name: "rattle_test", version: 1, default_chunk_size: 4, summary: "test", input_kind: InputKind::Configs };

/// Rattles positions with the item's RNG; items whose `fail` info is "error"
/// fail and "panic" panic. Item 2 of every run emits two frames and item 3 none.
struct Rattle;

impl Operation for Rattle {
    fn info(&self) -> &'static OpInfo {
        &RATTLE
    }
    fn args(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn run_chunk(&self, items: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult> {
        items
            .iter()
            .map(|item| {
                let mut at = item.atoms()?.clone();
                match at.info.get("fail").and_then(Value::as_str) {
                    Some("error") => return Err(ItemFailure::new(format!("item {} refused", item.index))),
                    Some("fatal") => return Err(ItemFailure::stop_run("no calculator here")),
                    Some("panic") => panic!("item {} exploded", item.index),
                    _ => {}
                }
                let mut rng = ctx.rng(item);
                for p in &mut at.positions {
                    for x in p.iter_mut() {
                        *x += rng.random_range(-0.1..0.1);
                    }
                }
                Ok(match item.index {
                    2 => vec![at.clone(), at],
                    3 => vec![],
                    _ => vec![at],
                })
            })
            .collect()
    }
}

fn items(n: u64, fail: &[(u64, &str)]) -> Vec<Result<Item>> {
    (0..n)
        .map(|i| {
            let mut at = Atoms::new(vec![29, 29], vec![[0.0; 3], [1.0, 1.0, i as f64]]);
            if let Some((_, how)) = fail.iter().find(|(j, _)| *j == i) {
                at.info.insert("fail".into(), Value::Str(how.to_string()));
            }
            Ok(Item {
                index: i,
                location: Location { file: None, path: vec![i as usize] },
                payload: Payload::Atoms(at),
            })
        })
        .collect()
}

fn settings(workers: usize, chunk: usize, seed: u64, skip_failed: bool) -> super::ResolvedAutopara {
    AutoparaInfo {
        workers: Some(workers),
        chunk_size: Some(chunk),
        seed: Some(seed),
        skip_failed: Some(skip_failed),
        progress: Some(false),
        ..Default::default()
    }
    .resolve(&RATTLE)
    .unwrap()
}

fn run(n: u64, fail: &[(u64, &str)], s: &super::ResolvedAutopara) -> (Result<RunStats>, Collect) {
    let mut sink = Collect::default();
    let r = execute(&Rattle, items(n, fail), &mut sink, s, Some(n));
    (r, sink)
}

#[test]
fn identical_for_any_workers_and_chunk_size() {
    let (r, reference) = run(40, &[], &settings(1, 1, 11, true));
    let stats = r.unwrap();
    assert_eq!((stats.items, stats.frames, stats.failed), (40, 40, 0));
    assert_eq!(reference.items.iter().map(|(i, ..)| *i).collect::<Vec<_>>(), (0..40).collect::<Vec<_>>());
    for workers in [1, 2, 4] {
        for chunk in [1, 3, 7] {
            let (r, got) = run(40, &[], &settings(workers, chunk, 11, true));
            r.unwrap();
            // Bit-identical: Atoms equality compares every f64 exactly.
            assert_eq!(got.items, reference.items, "workers {workers}, chunk {chunk}");
        }
    }
    // Different items get different streams, different seeds different results.
    let pos = |c: &Collect, i: usize| c.items[i].2[0].positions[0];
    assert_ne!(pos(&reference, 0), pos(&reference, 1));
    let (_, other_seed) = run(40, &[], &settings(2, 3, 12, true));
    assert_ne!(pos(&reference, 0), pos(&other_seed, 0));
}

#[test]
fn errors_and_panics_are_isolated_per_item() {
    for (workers, chunk) in [(1, 1), (1, 5), (3, 4)] {
        let (r, got) = run(12, &[(1, "error"), (6, "panic"), (7, "panic")], &settings(workers, chunk, 0, true));
        let stats = r.unwrap();
        assert_eq!((stats.items, stats.failed), (12, 3));
        let failed: Vec<u64> = got.failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, vec![1, 6, 7]);
        assert_eq!(got.failures[0].message, "item 1 refused");
        assert!(got.failures[1].message.starts_with("panicked: item 6 exploded"), "{:?}", got.failures[1]);
        assert_eq!(got.failures[2].location, Location { file: None, path: vec![7] });
        assert_eq!(got.failures[2].op, "rattle_test");
        // Every other item is kept, with the same result as a run without failures.
        let (_, clean) = run(12, &[], &settings(1, 1, 0, true));
        let kept: Vec<_> = clean.items.into_iter().filter(|(i, ..)| !failed.contains(i)).collect();
        assert_eq!(got.items, kept, "workers {workers}, chunk {chunk}");
        assert_eq!(got.checkpoints.last(), Some(&12));
    }
}

#[test]
fn stop_at_first_failure_after_writing_what_finished() {
    for (workers, chunk) in [(1, 1), (2, 3)] {
        let (r, got) = run(30, &[(5, "error"), (9, "panic")], &settings(workers, chunk, 0, false));
        let e = r.unwrap_err();
        match &e {
            Error::ItemFailed { index, location, op, message } => {
                assert_eq!((*index, location.as_str(), op.as_str()), (5, " / 5", "rattle_test"));
                assert_eq!(message, "item 5 refused");
            }
            other => panic!("unexpected error {other}"),
        }
        assert!(e.to_string().contains("item 5"));
        assert_eq!(got.items.iter().map(|(i, ..)| *i).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert!(got.failures.is_empty());
        assert_eq!(got.checkpoints.last(), Some(&5));
    }
}

#[test]
fn a_fatal_failure_stops_the_run_even_when_failures_are_skipped() {
    for (workers, chunk) in [(1, 1), (3, 2)] {
        let (r, got) =
            run(30, &[(1, "error"), (5, "fatal"), (6, "fatal"), (9, "fatal")], &settings(workers, chunk, 0, true));
        let e = r.unwrap_err();
        assert_eq!(e.to_string(), "op rattle_test: no calculator here");
        // Items before it are written (item 1's failure recorded), nothing after; one error, no records for it.
        assert_eq!(got.items.iter().map(|(i, ..)| *i).collect::<Vec<_>>(), vec![0, 2, 3, 4]);
        assert_eq!(got.failures.iter().map(|f| f.index).collect::<Vec<_>>(), vec![1]);
        assert_eq!(got.checkpoints.last(), Some(&5));
    }
    // Serializable, and not fatal unless said.
    let text = serde_json::to_string(&ItemFailure::stop_run("m")).unwrap();
    assert!(serde_json::from_str::<ItemFailure>(&text).unwrap().fatal);
    assert!(!serde_json::from_str::<ItemFailure>(r#"{"message": "m"}"#).unwrap().fatal);
    assert!(ItemFailure::from(CalcError::Construction("x".into())).fatal);
    assert!(!ItemFailure::from(CalcError::Other("x".into())).fatal);
}

#[test]
fn empty_input_and_input_errors() {
    let (r, got) = run(0, &[], &settings(2, 3, 0, true));
    assert_eq!(r.unwrap(), RunStats::default());
    assert!(got.items.is_empty());
    let mut input = items(5, &[]);
    input.insert(3, Err(Error::Input("frame 3 is broken".into())));
    let mut sink = Collect::default();
    let e = execute(&Rattle, input, &mut sink, &settings(1, 1, 0, true), None).unwrap_err();
    assert!(e.to_string().contains("frame 3 is broken"));
    assert_eq!(sink.items.len(), 3);
}

/// Calls of the test calculator's constructor.
static BUILDS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Serialize, Deserialize)]
struct CountingSpec {
    tag: u32,
}

struct Counting;

impl Calculator for Counting {
    fn name(&self) -> &str {
        "Counting"
    }
    fn calculate(&mut self, atoms: &Atoms, _request: Properties, out: &mut CalcResults) -> Result<(), CalcError> {
        out.energy = atoms.len() as f64;
        out.computed = Properties { energy: true, ..Default::default() };
        Ok(())
    }
}

#[typetag::serde(name = "executor_test_counting")]
impl CalculatorSpec for CountingSpec {
    fn build(&self) -> Result<Box<dyn Calculator>, CalcError> {
        BUILDS.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Counting))
    }
}

static ENERGY: OpInfo =
    OpInfo { name: "energy_test", version: 1, default_chunk_size: 1, summary: "test", input_kind: InputKind::Configs };

struct Energy(CountingSpec);

impl Operation for Energy {
    fn info(&self) -> &'static OpInfo {
        &ENERGY
    }
    fn args(&self) -> serde_json::Value {
        serde_json::json!({ "calculator": crate::calculator::spec_to_json(&self.0) })
    }
    fn run_chunk(&self, items: &[Item], ctx: &mut WorkerContext) -> Vec<ItemResult> {
        items
            .iter()
            .map(|item| {
                let mut at = item.atoms()?.clone();
                let calc = ctx.calculator(&self.0)?;
                let mut res = CalcResults::default();
                calc.calculate(&at, Properties::ENERGY_FORCES, &mut res)?;
                crate::results::store_results(&mut at, "test_", &res);
                Ok(vec![at])
            })
            .collect()
    }
}

#[test]
fn calculator_built_once_per_worker_and_initializer_runs_per_worker() {
    for workers in [1usize, 3] {
        let inits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&inits);
        let info = AutoparaInfo {
            workers: Some(workers),
            chunk_size: Some(1),
            progress: Some(false),
            initializer: Some(Arc::new(move |ctx: &mut WorkerContext| {
                counter.fetch_add(1, Ordering::SeqCst);
                // Pre-building the calculator is what initializers are for.
                ctx.calculator(&CountingSpec { tag: 7 }).map(|_| ()).map_err(|e| e.to_string())
            })),
            ..Default::default()
        };
        let s = info.resolve(&ENERGY).unwrap();
        BUILDS.store(0, Ordering::SeqCst);
        let mut sink = Collect::default();
        let stats = execute(&Energy(CountingSpec { tag: 7 }), items(30, &[]), &mut sink, &s, None).unwrap();
        assert_eq!(stats.frames, 30);
        assert_eq!(sink.items[4].2[0].info_f64("test_energy"), Some(2.0));
        assert_eq!(inits.load(Ordering::SeqCst), workers, "initializer once per worker (serial too)");
        assert_eq!(BUILDS.load(Ordering::SeqCst), workers, "30 chunks, one calculator per worker");
    }
}

#[test]
fn failing_initializer_names_the_worker() {
    let info = AutoparaInfo {
        workers: Some(2),
        progress: Some(false),
        initializer: Some(Arc::new(|_: &mut WorkerContext| Err("no GPU".to_string()))),
        ..Default::default()
    };
    let s = info.resolve(&RATTLE).unwrap();
    let mut sink = Collect::default();
    let e = execute(&Rattle, items(5, &[]), &mut sink, &s, None).unwrap_err();
    assert!(e.to_string().contains("initializer failed on worker") && e.to_string().contains("no GPU"), "{e}");
}

#[test]
fn chunk_tasks_are_serializable() {
    let task = ChunkTask { chunk: 3, items: items(2, &[]).into_iter().map(|i| i.unwrap()).collect() };
    let text = serde_json::to_string(&task).unwrap();
    assert_eq!(serde_json::from_str::<ChunkTask>(&text).unwrap(), task);
    let spec = JobSpec::of(&Rattle, 9);
    let back: JobSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    let mut ctx = WorkerContext::new(0, 9, "rattle_test");
    let outcome = execute_chunk(&Rattle, &mut ctx, task);
    let text = serde_json::to_string(&outcome).unwrap();
    assert_eq!(serde_json::from_str::<ChunkOutcome>(&text).unwrap(), outcome);
}

#[test]
fn map_closure_over_items() {
    use crate::map::Map;
    let op = Map::new(|mut at: Atoms, rng: &mut crate::rng::ItemRng| -> std::result::Result<Option<Atoms>, String> {
        let x: f64 = rng.random();
        if at.positions[1][2] == 4.0 {
            return Err("z = 4 is not allowed".into());
        }
        if at.positions[1][2] == 5.0 {
            return Ok(None);
        }
        at.info.insert("x".into(), Value::Float(x));
        Ok(Some(at))
    });
    let s = AutoparaInfo { workers: Some(2), progress: Some(false), ..Default::default() }.resolve(op.info()).unwrap();
    let mut sink = Collect::default();
    let stats = execute(&op, items(8, &[]), &mut sink, &s, None).unwrap();
    assert_eq!((stats.items, stats.frames, stats.failed), (8, 6, 1));
    assert_eq!(sink.failures[0].message, "z = 4 is not allowed");
    let frames = |i: u64| &sink.items.iter().find(|(j, ..)| *j == i).unwrap().2;
    assert!(frames(5).is_empty());
    let expected: f64 = crate::rng::item_rng(0, "map", 6).random();
    assert_eq!(frames(6)[0].info_f64("x"), Some(expected));
}

/// A backend whose pool runs chunks in the calling thread, hands outcomes back
/// newest first (so the driver must reorder them), and damages them as told,
/// as a buggy remote backend might.
struct Damaging {
    /// Add a result to each outcome.
    extra_result: bool,
    /// Renumber each outcome to a chunk that was never submitted.
    renumber: bool,
}

struct DamagingPool<'a> {
    backend: &'a Damaging,
    job: &'a Job<'a>,
    ctx: WorkerContext,
    done: Vec<ChunkOutcome>,
}

impl backend::Pool for DamagingPool<'_> {
    fn capacity(&self) -> usize {
        2
    }
    fn submit(&mut self, task: ChunkTask) -> Result<()> {
        let mut outcome = execute_chunk(self.job.op, &mut self.ctx, task);
        if self.backend.extra_result {
            outcome.results.push(Ok(Vec::new()));
        }
        if self.backend.renumber {
            outcome.chunk += 5;
        }
        self.done.push(outcome);
        Ok(())
    }
    fn recv(&mut self) -> Result<ChunkOutcome> {
        self.done.pop().ok_or_else(|| Error::Other("nothing outstanding".into()))
    }
}

impl backend::Backend for Damaging {
    fn name(&self) -> &str {
        "damaging"
    }
    fn workers(&self) -> usize {
        1
    }
    fn run(&self, job: &Job<'_>, driver: &mut dyn FnMut(&mut dyn backend::Pool) -> Result<()>) -> Result<()> {
        driver(&mut DamagingPool { backend: self, job, ctx: job.worker_context(0)?, done: Vec::new() })
    }
}

#[test]
fn outcomes_that_do_not_match_their_chunk_are_errors() {
    for (extra_result, renumber, expected) in
        [(false, false, ""), (true, false, "came back with 4 results for 3 items"), (false, true, "is not outstanding")]
    {
        let mut s = settings(1, 3, 0, true);
        s.backend = Arc::new(Damaging { extra_result, renumber });
        let mut sink = Collect::default();
        let r = execute(&Rattle, items(9, &[]), &mut sink, &s, Some(9));
        match r {
            Ok(stats) => {
                assert!(expected.is_empty() && stats.items == 9, "{stats:?}");
                let (_, reference) = run(9, &[], &settings(1, 3, 0, true));
                assert_eq!(sink, reference, "reordered outcomes are written in input order");
            }
            Err(e) => assert!(!expected.is_empty() && e.to_string().contains(expected), "{e}"),
        }
    }
}

#[test]
fn parsed_frames_hand_their_text_back_for_the_reader_to_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.xyz");
    std::fs::write(&path, "1\nenergy=-1.5\nCu 0 0 0\n2\n\nH 0 0 0\nH 0 0 0.74\n").unwrap();
    let inputs = crate::configset::ConfigSet::from_files(vec![path.clone()]);
    let mut items: Vec<Item> = inputs.unparsed_items().unwrap().map(|i| i.unwrap()).collect();
    let expected = crate::extxyz::read_file(&path).unwrap();
    let mut texts = Vec::new();
    for (item, want) in items.iter_mut().zip(&expected) {
        let Payload::Frame(raw) = &item.payload else { panic!("unparsed_items should give frames") };
        let raw = raw.clone();
        texts.extend(item.parse_frame_keeping_text().unwrap());
        assert_eq!(texts.last(), Some(&raw), "the text handed back is the frame's");
        assert_eq!(item.atoms().unwrap(), want);
        assert_eq!(item.parse_frame_keeping_text().unwrap(), None, "a parsed item has no text left");
    }
    assert_eq!(texts.len(), 2);
}
