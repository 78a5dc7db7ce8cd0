//! Reproducible per-item randomness.
//!
//! Each item's generator is ChaCha20 seeded with
//! `blake3("autopara item rng v1" | seed | label | index)`: a pure function of
//! the run's seed, the op label and the item's global index, so outputs are
//! bit-identical whatever the backend, worker count or chunk size, and
//! portable across platforms.
//!
//! ```
//! use autopara_core::rng::item_rng;
//! use rand::Rng;
//! let a: f64 = item_rng(7, "md", 3).random();
//! let b: f64 = item_rng(7, "md", 3).random();
//! let c: f64 = item_rng(7, "md", 4).random();
//! assert_eq!(a, b);
//! assert_ne!(a, c);
//! ```

use rand::SeedableRng;

/// The generator handed to ops for one item.
pub type ItemRng = rand_chacha::ChaCha20Rng;

/// The generator for item `index` of an op labelled `label` in a run with `seed`.
pub fn item_rng(seed: u64, label: &str, index: u64) -> ItemRng {
    let mut h = blake3::Hasher::new();
    h.update(b"autopara item rng v1\0");
    h.update(&seed.to_le_bytes());
    h.update(&(label.len() as u64).to_le_bytes());
    h.update(label.as_bytes());
    h.update(&index.to_le_bytes());
    ItemRng::from_seed(*h.finalize().as_bytes())
}
