//! Configurations and items that tests of several crates build the same way.
//!
//! ```
//! use autopara_testkit::fixtures::{fcc, items};
//! let cells = vec![fcc(29, 3.6, [2, 2, 2]), fcc(18, 5.3, [1, 1, 3])];
//! assert_eq!((cells[0].len(), cells[1].len()), (32, 12));
//! let items = items(cells);
//! assert_eq!(items[1].index, 1);
//! assert_eq!(items[1].location.path, [1]);
//! ```

use autopara_core::outputspec::Outputs;
use autopara_core::{Atoms, Item, Location, Payload, Value};

/// The conventional fcc cell's fractional basis.
const FCC_BASIS: [[f64; 3]; 4] = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]];

/// A periodic fcc crystal of element `z`: `reps` conventional cells of
/// lattice constant `a` (Å) along each axis, atoms cell by cell.
pub fn fcc(z: u8, a: f64, reps: [usize; 3]) -> Atoms {
    let mut pos = Vec::with_capacity(4 * reps.iter().product::<usize>());
    for i in 0..reps[0] {
        for j in 0..reps[1] {
            for k in 0..reps[2] {
                for b in &FCC_BASIS {
                    pos.push([(i as f64 + b[0]) * a, (j as f64 + b[1]) * a, (k as f64 + b[2]) * a]);
                }
            }
        }
    }
    let mut at = Atoms::new(vec![z; pos.len()], pos);
    let [l0, l1, l2] = reps.map(|n| a * n as f64);
    at.cell = [[l0, 0.0, 0.0], [0.0, l1, 0.0], [0.0, 0.0, l2]];
    at.pbc = [true; 3];
    at
}

/// `n` periodic two-atom Cu cells (cubic, 3.6 Å): in frame `i` the second
/// atom sits at `(1.8, 1.8, i * dz)`, and `info["i"] = i`.
pub fn cu_pairs(n: usize, dz: f64) -> Vec<Atoms> {
    (0..n)
        .map(|i| {
            let mut at = Atoms::new(vec![29, 29], vec![[0.0; 3], [1.8, 1.8, dz * i as f64]]);
            at.cell = [[3.6, 0.0, 0.0], [0.0, 3.6, 0.0], [0.0, 0.0, 3.6]];
            at.pbc = [true; 3];
            at.info.insert("i".into(), Value::Int(i as i64));
            at
        })
        .collect()
}

/// Item `index` of an in-memory list of configurations, located as
/// `ConfigSet::from_atoms` locates it.
pub fn item(index: u64, atoms: Atoms) -> Item {
    Item { index, location: Location { file: None, path: vec![index as usize] }, payload: Payload::Atoms(atoms) }
}

/// The items of an in-memory list of configurations, in order.
pub fn items(configs: Vec<Atoms>) -> Vec<Item> {
    configs.into_iter().enumerate().map(|(i, at)| item(i as u64, at)).collect()
}

/// Counter item `n`, as `ConfigSet::counters` gives it.
pub fn counter(n: u64) -> Item {
    Item { index: n, location: Location { file: None, path: vec![n as usize] }, payload: Payload::Counter(n) }
}

/// The counter items `0..n`.
pub fn counters(n: u64) -> Vec<Item> {
    (0..n).map(counter).collect()
}

/// The configurations of an in-memory run's outputs; panics (failing the
/// test) on file outputs.
pub fn memory_outputs(outputs: Outputs) -> Vec<Atoms> {
    match outputs {
        Outputs::Memory(v) => v,
        Outputs::Files(f) => panic!("expected memory outputs, got files {f:?}"),
    }
}
