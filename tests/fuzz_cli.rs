//! Fuzzing the binary: mutations of valid extxyz files through
//! `autopara convert` and `autopara run calculate` (Lennard-Jones and EMT),
//! each process under a memory limit and a time limit. No input may abort
//! the process, panic, exhaust memory or hang: every run ends with exit 0 or
//! an error (exit 1) and no panic message.
//!
//! A fixed number of cases from a fixed seed (`AUTOPARA_FUZZ_CASES`,
//! `AUTOPARA_FUZZ_SEED` change them for longer searches); new cases stop
//! being started after `AUTOPARA_FUZZ_SECONDS` (default 60) so that CI time
//! stays bounded on a slow machine. The inputs and arguments fuzzing found
//! are kept as fixed cases.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_autopara");

/// Address space per process (6 GiB): above what one item may use by design
/// (a neighbour list is refused beyond 25 million pairs, which with EMT's
/// per-pair arrays is about 4 GB), far below what an allocation sized by a
/// hostile number asks for.
const MEMORY_LIMIT: &str = "6442450944";

/// A process that writes nothing for this long hangs (with chunks of one
/// item it writes after every item; the slowest item takes about 20 s).
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// A process still writing after this long is stopped and passes: a mutant
/// of thousands of costly items is slow, not stuck.
const TIME_LIMIT: Duration = Duration::from_secs(120);

/// Valid files the mutations start from: periodic and open cells, several
/// species, property columns of every type, info scalars and arrays.
const SEEDS: &[&str] = &[
    "4\nLattice=\"3.61 0.0 0.0 0.0 3.61 0.0 0.0 0.0 3.61\" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1.5 \
     stress=\"0.1 0.0 0.0 0.0 0.1 0.0 0.0 0.0 0.1\" config_type=bulk pbc=\"T T T\"\n\
     Cu 0.0 0.0 0.0 0.1 0.0 0.0\nCu 1.805 1.805 0.0 0.0 0.1 0.0\nCu 1.805 0.0 1.805 0.0 0.0 0.1\n\
     Cu 0.0 1.805 1.805 0.0 0.0 0.0\n\
     2\nLattice=\"4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0\" Properties=species:S:1:pos:R:3 pbc=\"T T F\"\n\
     Cu 0.0 0.0 0.0\nAu 2.0 2.0 1.0\n",
    "3\nProperties=species:S:1:pos:R:3:Z:I:1:fixed:L:1:label:S:1 name=water n=3 v=\"1 2 3\" pbc=\"F F F\"\n\
     O 0.0 0.0 0.0 8 T a\nH 0.757 0.586 0.0 1 F b\nH -0.757 0.586 0.0 1 F c\n",
    "6\nLattice=\"2.46 0.0 0.0 -1.23 2.13 0.0 0.0 0.0 10.0\" Properties=species:S:1:pos:R:3:masses:R:1 \
     energy=-9.2 pbc=\"T T F\"\n\
     C 0.0 0.0 5.0 12.0\nC 1.23 0.71 5.0 12.0\nC 0.0 0.0 6.5 12.0\nC 1.23 0.71 6.5 12.0\n\
     Ni 0.6 0.3 3.0 58.7\nAl 0.6 1.3 8.0 27.0\n",
];

/// Numbers a mutation puts in place of a number of the file.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "3",
    "9",
    "1e-7",
    "1e-3",
    "0.5",
    "1e3",
    "1e6",
    "-1e6",
    "1e9",
    "1e12",
    "1e15",
    "1e18",
    "3e38",
    "1e300",
    "1e308",
    "-1e308",
    "1e-320",
    "5e-324",
    "nan",
    "inf",
    "-inf",
    "4294967297",
    "2147483648",
    "9223372036854775807",
    "18446744073709551615",
    "99999999999999999999999",
    "100000",
    "1000000",
    "250000000",
];

/// Bytes an insertion or replacement uses.
const BYTES: &[u8] = b"0123456789 \n\t\"'{}[]=,:\\.-+eETFdXx#\xff\xc3";

/// Inputs grow by repetition up to about this size.
const MAX_GROWTH: usize = 1 << 20;

/// Applies one random mutation to `text`.
fn mutate(rng: &mut StdRng, text: &mut Vec<u8>) {
    if text.is_empty() {
        text.extend_from_slice(b"1\n\nH 0 0 0\n");
    }
    let len = text.len();
    let at = rng.random_range(0..len);
    let line_start = text[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line_end = text[at..].iter().position(|&b| b == b'\n').map_or(len, |i| at + i + 1);
    match rng.random_range(0..13) {
        // A number replaced by an extreme one (atom counts, widths, positions,
        // cell entries, info values alike).
        0..=3 => {
            let numbers: Vec<(usize, usize)> = number_spans(text);
            if let Some(&(s, e)) = numbers.get(rng.random_range(0..numbers.len().max(1))) {
                let n = NUMBERS[rng.random_range(0..NUMBERS.len())];
                text.splice(s..e, n.bytes());
            }
        }
        4 => {
            let n = rng.random_range(1..8).min(len - at);
            text.drain(at..at + n);
        }
        5 => {
            let k = rng.random_range(1..6);
            let bytes: Vec<u8> = (0..k).map(|_| BYTES[rng.random_range(0..BYTES.len())]).collect();
            text.splice(at..at, bytes);
        }
        6 => text[at] = BYTES[rng.random_range(0..BYTES.len())],
        // A line repeated (up to a few thousand times: big frames, long
        // comment lines).
        7 => {
            let line = text[line_start..line_end].to_vec();
            let times = if rng.random_bool(0.2) { rng.random_range(100..3000) } else { 1 };
            for _ in 0..times.min(MAX_GROWTH / line.len().max(1)) {
                text.splice(line_end..line_end, line.iter().copied());
            }
        }
        8 => text.truncate(at),
        // Every cell scaled (to tiny, huge or flat cells), or made singular.
        9 => {
            let Some(lattice) = find(text, b"Lattice=\"") else { return };
            let spans: Vec<(usize, usize)> = number_spans(text).into_iter().filter(|s| s.0 > lattice).take(9).collect();
            let factor = [1e-9, 1e-4, 1e-2, 0.3, 3.0, 1e3, 1e8, 0.0][rng.random_range(0..8)];
            let row = rng.random_range(0..3);
            for (k, &(s, e)) in spans.iter().enumerate().rev() {
                let x: f64 = String::from_utf8_lossy(&text[s..e]).parse().unwrap_or(1.0);
                let scaled = if rng.random_bool(0.5) || k / 3 == row { x * factor } else { x };
                text.splice(s..e, format!("{scaled}").bytes());
            }
        }
        // A frame replaced by one of up to thousands of atoms, scattered in a
        // box of random size, of random species.
        10 => {
            let n = [1, 2, 10, 100, 1000, 3000][rng.random_range(0..6)];
            let size = [1e-6, 0.1, 3.0, 20.0, 1e4][rng.random_range(0..5)];
            let species = ["H", "Cu", "Au", "Ni", "Al", "C", "O", "X", "Og"];
            let cell = if rng.random_bool(0.5) {
                format!("Lattice=\"{size} 0 0 0 {size} 0 0 0 {size}\" ")
            } else {
                String::new()
            };
            let mut frame = format!("{n}\n{cell}Properties=species:S:1:pos:R:3 pbc=\"T T T\"\n");
            for _ in 0..n {
                let p: [f64; 3] = std::array::from_fn(|_| rng.random_range(0.0..size));
                let sp = species[rng.random_range(0..species.len())];
                frame += &format!("{sp} {} {} {}\n", p[0], p[1], p[2]);
            }
            *text = frame.into_bytes();
        }
        // The whole file repeated (many items).
        11 => {
            let copy = text.clone();
            for _ in 0..rng.random_range(1..100).min(MAX_GROWTH / copy.len()) {
                text.extend_from_slice(&copy);
            }
        }
        // Periodic directions switched.
        _ => {
            let flags = ["T T T", "F F F", "T F T", "F T F", "T T F"];
            let pbc = flags[rng.random_range(0..flags.len())];
            let s = String::from_utf8_lossy(text).into_owned();
            let replaced = flags.iter().fold(s, |s, f| s.replace(f, pbc));
            *text = replaced.into_bytes();
        }
    }
}

/// Where `needle` starts in `text`.
fn find(text: &[u8], needle: &[u8]) -> Option<usize> {
    text.windows(needle.len()).position(|w| w == needle)
}

/// Byte ranges of the numbers in `text`.
fn number_spans(text: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let starts = text[i].is_ascii_digit()
            || (matches!(text[i], b'-' | b'.') && text.get(i + 1).is_some_and(u8::is_ascii_digit));
        let boundary = i == 0 || matches!(text[i - 1], b' ' | b'\n' | b'"' | b':' | b'=');
        if starts && boundary {
            let e = text[i..]
                .iter()
                .position(|b| !(b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')))
                .map_or(text.len(), |k| i + k);
            spans.push((i, e));
            i = e;
        } else {
            i += 1;
        }
    }
    spans
}

/// Total size of the files in `dir` (outputs, partial files, journals).
fn written(dir: &Path) -> u64 {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries.filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
}

/// Runs `autopara ARGS` in `dir` under the memory and time limits: its exit
/// code and standard error (`None` when stopped, still writing, after
/// [`TIME_LIMIT`]), or what went wrong (killed by a signal, a panic or
/// allocation failure message, an exit code other than 0 or 1, nothing
/// written for [`STALL_LIMIT`]).
fn run_limited(dir: &Path, args: &[&str]) -> Result<(Option<i32>, String), String> {
    let mut child = Command::new("prlimit")
        .arg(format!("--as={MEMORY_LIMIT}"))
        .arg("--")
        .arg(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("AUTOPARA_NUM_WORKERS")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the fuzzed processes");
    // Read standard error while the process runs (a full pipe would stall it).
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr_pipe, &mut text);
        text
    });
    let start = Instant::now();
    let (mut size, mut last_change) = (written(dir), start);
    let mut polls = 0u32;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        polls += 1;
        if polls.is_multiple_of(256) {
            let now = written(dir);
            if now != size {
                (size, last_change) = (now, Instant::now());
            }
            let stalled = last_change.elapsed() > STALL_LIMIT;
            if stalled || start.elapsed() > TIME_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                if stalled {
                    return Err(format!("nothing written for {} s", STALL_LIMIT.as_secs()));
                }
                break None;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stderr = reader.join().unwrap();
    let bad_text = ["panicked", "memory allocation", "stack overflow", "RUST_BACKTRACE"];
    if bad_text.iter().any(|t| stderr.contains(t)) {
        return Err(format!("{status:?}: {}", stderr.trim()));
    }
    match status.map(|s| (s, s.code())) {
        None => Ok((None, stderr)),
        Some((_, Some(code @ (0 | 1)))) => Ok((Some(code), stderr)),
        Some((status, _)) => Err(format!("{status}: {}", stderr.trim())),
    }
}

/// The commands every mutant goes through.
fn commands() -> Vec<Vec<&'static str>> {
    let calculate = |calculator: &'static str| {
        vec![
            "run",
            "calculate",
            "-i",
            "in.xyz",
            "-o",
            "calc.xyz",
            "--overwrite",
            "-q",
            "--workers",
            "1",
            "--chunk-size",
            "1",
            "--args",
            calculator,
        ]
    };
    vec![
        vec!["convert", "in.xyz", "-o", "conv.xyz", "--overwrite"],
        calculate(r#"{"calculator": {"type": "lennard_jones", "sigma": 2.3, "epsilon": 0.4}}"#),
        calculate(r#"{"calculator": {"type": "emt"}}"#),
    ]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn mutated_inputs_never_abort_panic_exhaust_memory_or_hang() {
    let cases: usize = env_or("AUTOPARA_FUZZ_CASES", 200);
    let seed: u64 = env_or("AUTOPARA_FUZZ_SEED", 18);
    let budget = Duration::from_secs(env_or("AUTOPARA_FUZZ_SECONDS", 60));
    let root = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let slowest = Mutex::new((Duration::ZERO, 0));
    let commands = commands();
    std::thread::scope(|s| {
        for worker in 0..2 {
            let (root, next, failures, slowest, commands) = (root.path(), &next, &failures, &slowest, &commands);
            s.spawn(move || {
                let dir = root.join(format!("w{worker}"));
                std::fs::create_dir(&dir).unwrap();
                loop {
                    let case = next.fetch_add(1, Ordering::Relaxed);
                    if case >= cases || start.elapsed() > budget {
                        break;
                    }
                    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(case as u64));
                    let mut text = SEEDS[case % SEEDS.len()].as_bytes().to_vec();
                    for _ in 0..rng.random_range(1..4) {
                        mutate(&mut rng, &mut text);
                    }
                    std::fs::write(dir.join("in.xyz"), &text).unwrap();
                    let case_start = Instant::now();
                    for cmd in commands {
                        if let Err(what) = run_limited(&dir, cmd) {
                            let keep = root.join(format!("failing-{case}.xyz"));
                            std::fs::write(&keep, &text).unwrap();
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("case {case}, autopara {}: {what}", cmd[..2].join(" ")));
                        }
                    }
                    let took = case_start.elapsed();
                    let mut slowest = slowest.lock().unwrap();
                    if took > slowest.0 {
                        *slowest = (took, case);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let done = next.load(Ordering::Relaxed).min(cases);
    let (took, case) = slowest.into_inner().unwrap();
    eprintln!(
        "{done} cases in {:.1} s; slowest: case {case}, {:.1} s",
        start.elapsed().as_secs_f64(),
        took.as_secs_f64()
    );
    assert!(done >= cases.min(20), "only {done} cases ran");
    if !failures.is_empty() {
        // Keep the inputs for a look.
        let kept = root.keep();
        panic!(
            "{} of {done} fuzzed inputs broke autopara (inputs in {}):\n{}",
            failures.len(),
            kept.display(),
            failures.join("\n")
        );
    }
}

/// Inputs and arguments fuzzing found, each with its exit code and what its
/// error or failure record says: all once aborted or panicked.
#[test]
fn inputs_and_arguments_fuzzing_found_end_in_results_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let emt = r#"{"calculator": {"type": "emt"}}"#;
    let cu = |a: f64| format!("1\nLattice=\"{a} 0 0 0 {a} 0 0 0 {a}\" pbc=\"T T T\"\nCu 0 0 0\n");
    std::fs::write(d.join("cu.xyz"), cu(3.61)).unwrap();
    // One atom in a 0.025 Å cell: more than 25 million EMT pairs, refused
    // (the search once held every image within the cutoff first: 12 GB).
    std::fs::write(d.join("tiny.xyz"), cu(0.025)).unwrap();
    // A cell 1e-7 Å thin along b: one row of images held 7-13 GB.
    let thin = "2\nLattice=\"3610 0 0 0 1e-7 0 0 0 3610\" pbc=\"T T T\"\nCu 0 0 0\nCu 1.805 0 1.805\n";
    std::fs::write(d.join("thin.xyz"), thin).unwrap();
    // 3.6e-9 Å thin: the range of images along a overflowed i32 (a panic),
    // and then tested 1.6e9 images in 46 s before the first pair was kept.
    let thinner = "4\nLattice=\"0.00000000361 0 0 0 3.61 0 0 0 99999999999999999999999\" pbc=\"T T T\"\n\
                   Cu 0 0 0\nCu 1.805 1.805 0\nCu 1.805 0 1.805\nCu 0 1.805 1.805\n";
    std::fs::write(d.join("thinner.xyz"), thinner).unwrap();
    let calculate = |input: &'static str, extra: &'static [&'static str]| {
        let mut args = vec!["run", "calculate", "-i", input, "-o", "out.xyz", "--overwrite", "-q", "--args", emt];
        args.extend(extra);
        args
    };
    // (arguments, exit code, what standard error says, what the output says)
    let refused = "EMT_calculation_error=\"neighbour list: more than 25000000 neighbour pairs";
    let cases: [(Vec<&str>, i32, &str, &str); 6] = [
        (calculate("tiny.xyz", &["--workers", "1"]), 0, "", refused),
        (calculate("thin.xyz", &["--workers", "1"]), 0, "", refused),
        (calculate("thinner.xyz", &["--workers", "1"]), 0, "", refused),
        // A chunk size of 2^64 - 1 once reserved room for that many items.
        (calculate("cu.xyz", &["--workers", "1", "--chunk-size", "18446744073709551615"]), 0, "", "EMT_energy="),
        (calculate("cu.xyz", &["--workers", "2", "--chunk-size", "4000000000"]), 0, "", "EMT_energy="),
        // More workers than threads can be started once panicked.
        (calculate("cu.xyz", &["--workers", "100000"]), 1, "ask for fewer workers", ""),
    ];
    for (args, code, says, out_says) in cases {
        let _ = std::fs::remove_file(d.join("out.xyz"));
        let (got, stderr) = run_limited(d, &args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(got, Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: expected '{says}' in: {stderr}");
        if code == 0 {
            let out = std::fs::read_to_string(d.join("out.xyz")).unwrap();
            assert!(out.contains(out_says), "{args:?}: expected '{out_says}' in: {out}");
        }
    }
}
