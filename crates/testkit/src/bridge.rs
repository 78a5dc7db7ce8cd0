//! Support for tests of the `ase` calculator: the directory of the test
//! calculators module (`bridge_test_calculators.py`: `RecordingEMT`,
//! `Probe`, failing constructors), the log `RecordingEMT` writes, and
//! stand-in interpreters.

use std::collections::BTreeMap;
use std::path::Path;

/// The directory holding `bridge_test_calculators.py`, for a spec's `pythonpath`.
pub fn modules() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python").to_string_lossy().into_owned()
}

/// Writes `text` to `path` as an executable for its owner only (a stand-in
/// interpreter for a spec's `python`).
pub fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// What a `RecordingEMT` log holds: per process id, its constructions and calculations.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recorded {
    /// Constructions per process id.
    pub constructed: BTreeMap<u32, usize>,
    /// Calculations per process id.
    pub calculated: BTreeMap<u32, usize>,
}

impl Recorded {
    /// Reads the log at `path` (empty when it does not exist).
    pub fn read(path: &Path) -> Recorded {
        let mut out = Recorded::default();
        for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
            let (what, pid) = line.split_once(' ').unwrap_or_else(|| panic!("malformed log line {line:?}"));
            let pid: u32 = pid.parse().unwrap_or_else(|_| panic!("malformed log line {line:?}"));
            let map = if what == "construct" { &mut out.constructed } else { &mut out.calculated };
            *map.entry(pid).or_default() += 1;
        }
        out
    }

    /// Calculations in all processes.
    pub fn calculations(&self) -> usize {
        self.calculated.values().sum()
    }

    /// Checks that each of at most `workers` processes built the calculator
    /// exactly once and did all the calculating (`calls` calculations in
    /// all), and that none of them still runs.
    pub fn assert_once_per_worker(&self, what: &str, workers: usize, calls: usize) {
        let all = format!("{what}: {self:?}");
        assert!(!self.constructed.is_empty() && self.constructed.len() <= workers, "{all}");
        assert!(self.constructed.values().all(|&n| n == 1), "a worker built its calculator twice: {all}");
        assert!(self.constructed.keys().eq(self.calculated.keys()), "{all}");
        assert_eq!(self.calculations(), calls, "{all}");
        assert!(self.constructed.keys().all(|&pid| !alive(pid)), "a worker outlived the run: {all}");
    }
}

/// Whether process `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}
