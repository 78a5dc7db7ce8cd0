//! The descriptor seam: serializable specs ([`DescriptorSpec`], tagged by
//! `"type"`), the built [`Descriptor`] they make, a listable registry
//! ([`DescriptorInfo`]) and the [`Species`] list they share.
//!
//! A new crate adds a descriptor by implementing [`DescriptorSpec`] with
//! `#[typetag::serde(name = "...")]` and submitting a [`DescriptorInfo`]
//! whose `parse` is [`parse_spec::<TheSpec>`](parse_spec); the `descriptor`
//! op then accepts `{"type": "<name>", ...}` with no change here:
//!
//! ```
//! use autopara_core::{Atoms, ItemOp};
//! use autopara_descriptor::{Descriptor, DescriptorError, DescriptorInfo, DescriptorSpec, Lists, parse_spec};
//! use serde::{Deserialize, Serialize};
//!
//! /// The number of atoms within `r_cut` of each centre (ignoring periodicity).
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct CountSpec { r_cut: f64 }
//!
//! #[typetag::serde(name = "count")]
//! impl DescriptorSpec for CountSpec {
//!     fn build(&self) -> Result<Box<dyn Descriptor>, DescriptorError> {
//!         Ok(Box::new(Count(self.r_cut)))
//!     }
//! }
//!
//! #[derive(Debug)]
//! struct Count(f64);
//!
//! impl Descriptor for Count {
//!     fn name(&self) -> &'static str { "count" }
//!     fn species(&self) -> &[u8] { &[] }
//!     fn n_features(&self) -> usize { 1 }
//!     fn averaged(&self) -> bool { false }
//!     fn compute(&self, atoms: &Atoms, centers: &[usize], out: &mut [f64], _: &mut Lists) -> Result<(), DescriptorError> {
//!         for (&i, o) in centers.iter().zip(out.iter_mut()) {
//!             let near = |p: &[f64; 3]| (0..3).map(|k| (p[k] - atoms.positions[i][k]).powi(2)).sum::<f64>() < self.0 * self.0;
//!             *o = atoms.positions.iter().filter(|p| near(p)).count() as f64 - 1.0;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! inventory::submit! {
//!     DescriptorInfo { name: "count", summary: "neighbour count", fields: &[("r_cut", "float")], parse: parse_spec::<CountSpec> }
//! }
//!
//! let op = autopara_descriptor::DescriptorOp::from_json(serde_json::json!({
//!     "descriptor": {"type": "count", "r_cut": 1.5}, "key": "n", "per_atom": true, "normalize": false
//! })).unwrap();
//! let mut at = Atoms::new(vec![1, 1, 1], vec![[0.0; 3], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]]);
//! op.apply(&mut at).unwrap();
//! assert_eq!(at.arrays["n"].data, autopara_core::ArrayData::Float(vec![1.0, 1.0, 0.0]));
//! ```

use crate::error::DescriptorError;
use crate::neighbours::Lists;
use autopara_core::Atoms;
use autopara_core::Error;
use autopara_core::elements;
use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt::{self, Debug};

/// A serializable descriptor constructor, tagged by `"type"` in JSON/TOML,
/// with dscribe's field names.
#[typetag::serde(tag = "type")]
pub trait DescriptorSpec: Debug + Send + Sync {
    /// Checks the values and precomputes what the descriptor needs (basis
    /// functions, tables), naming the offending field on error.
    fn build(&self) -> Result<Box<dyn Descriptor>, DescriptorError>;
}

/// A built descriptor: maps a configuration and a set of centre atoms to features.
///
/// Built once per op and shared by all workers, so it is immutable (`Sync`);
/// per-configuration scratch lives inside [`Descriptor::compute`].
pub trait Descriptor: Debug + Send + Sync {
    /// The `"type"` tag (`soap`, `acsf`), for messages.
    fn name(&self) -> &'static str;

    /// Elements the descriptor knows, ascending atomic numbers.
    fn species(&self) -> &[u8];

    /// Features per row.
    fn n_features(&self) -> usize;

    /// True when the descriptor averages over its centres (one row per call),
    /// false when it gives one row per centre.
    fn averaged(&self) -> bool;

    /// Computes the features of `atoms` at the atoms `centers` (indices) into
    /// `out`: `centers.len()` rows of [`Descriptor::n_features`] values, or one
    /// row when [`Descriptor::averaged`]. `out` must have that length.
    /// `lists` are the worker's kept neighbour lists, for reuse of their buffers.
    fn compute(
        &self,
        atoms: &Atoms,
        centers: &[usize],
        out: &mut [f64],
        lists: &mut Lists,
    ) -> Result<(), DescriptorError>;
}

/// A registered descriptor type, for listings, error messages and parsing
/// with field paths (typetag can neither list its tags nor report the path
/// of a bad field inside an internally tagged value).
#[derive(Debug)]
pub struct DescriptorInfo {
    /// The `"type"` tag.
    pub name: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
    /// Its fields: `(name, "type, default: meaning")`.
    pub fields: &'static [(&'static str, &'static str)],
    /// Parses the spec's fields (the `"type"` tag removed); use [`parse_spec`].
    pub parse: fn(serde_json::Value) -> autopara_core::Result<Box<dyn DescriptorSpec>>,
}

/// [`DescriptorInfo::parse`] for a spec type `T`: deserializes it, naming the
/// path of an offending field.
pub fn parse_spec<T: DescriptorSpec + DeserializeOwned + 'static>(
    fields: serde_json::Value,
) -> autopara_core::Result<Box<dyn DescriptorSpec>> {
    Ok(Box::new(autopara_core::args::parse::<T>(fields).map_err(|e| e.in_context("descriptor"))?))
}

/// Parses a `{"type": ..., ...}` spec through the registry, naming the
/// offending field (`r_cut`, `species[1]`) or the unknown type and the known ones.
pub fn spec_from_json(value: serde_json::Value) -> autopara_core::Result<Box<dyn DescriptorSpec>> {
    let args =
        |field: &str, message: String| Error::Args { context: "descriptor".into(), field: field.into(), message };
    let serde_json::Value::Object(mut map) = value else {
        return Err(args("-", format!("expected an object with a \"type\", got {value}")));
    };
    let name = match map.remove("type") {
        Some(serde_json::Value::String(name)) => name,
        Some(other) => return Err(args("type", format!("expected a string, got {other}"))),
        None => return Err(args("type", "missing; one of the registered descriptor types is needed".into())),
    };
    let known = registered_descriptors();
    let info = known.iter().find(|d| d.name == name).ok_or_else(|| Error::Unknown {
        kind: "descriptor",
        name: name.clone(),
        known: known.iter().map(|d| d.name).collect::<Vec<_>>().join(", "),
    })?;
    (info.parse)(serde_json::Value::Object(map))
}

inventory::collect!(DescriptorInfo);

/// All registered descriptor types, sorted by name.
pub fn registered_descriptors() -> Vec<&'static DescriptorInfo> {
    let mut v: Vec<_> = inventory::iter::<DescriptorInfo>.into_iter().collect();
    v.sort_by_key(|d| d.name);
    v
}

/// The elements a descriptor covers: given as atomic numbers or chemical
/// symbols (`[29]`, `["Cu"]`), kept sorted and without duplicates as dscribe
/// does, which fixes the order of the species blocks in the features.
/// Serialized as symbols.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Species(Vec<u8>);

impl Species {
    /// Sorted, deduplicated atomic numbers.
    pub fn new(mut numbers: Vec<u8>) -> Species {
        numbers.sort_unstable();
        numbers.dedup();
        Species(numbers)
    }

    /// The atomic numbers, ascending.
    pub fn numbers(&self) -> &[u8] {
        &self.0
    }

    /// Comma-separated symbols, for messages.
    pub fn describe(numbers: &[u8]) -> String {
        numbers.iter().map(|&z| elements::symbol(z)).collect::<Vec<_>>().join(", ")
    }

    /// Checks that the list is not empty, naming `descriptor`.
    pub(crate) fn require_nonempty(&self, descriptor: &'static str) -> Result<(), DescriptorError> {
        if self.0.is_empty() {
            return Err(DescriptorError::InvalidSpec {
                descriptor,
                field: "species".into(),
                message: "must list at least one element".into(),
            });
        }
        Ok(())
    }
}

/// Maps each atom of `atoms` to the index of its element in `species`
/// (ascending atomic numbers), or names the first element that is not listed.
pub(crate) fn index_atoms(
    descriptor: &'static str,
    species: &[u8],
    atoms: &Atoms,
) -> Result<Vec<usize>, DescriptorError> {
    let mut lookup = [usize::MAX; 256];
    for (i, &z) in species.iter().enumerate() {
        lookup[z as usize] = i;
    }
    atoms
        .numbers
        .iter()
        .map(|&z| match lookup[z as usize] {
            usize::MAX => Err(DescriptorError::UnknownSpecies {
                descriptor,
                z,
                symbol: elements::symbol(z),
                species: Species::describe(species),
            }),
            i => Ok(i),
        })
        .collect()
}

impl Serialize for Species {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|&z| elements::symbol(z)))
    }
}

impl<'de> Deserialize<'de> for Species {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Species, D::Error> {
        d.deserialize_seq(SpeciesVisitor)
    }
}

struct SpeciesVisitor;

impl<'de> Visitor<'de> for SpeciesVisitor {
    type Value = Species;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of atomic numbers or chemical symbols")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Species, A::Error> {
        let mut numbers = Vec::new();
        while let Some(Element(z)) = seq.next_element()? {
            numbers.push(z);
        }
        Ok(Species::new(numbers))
    }
}

/// One element of a species list: an atomic number or a symbol.
struct Element(u8);

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Element, D::Error> {
        struct ElementVisitor;
        impl Visitor<'_> for ElementVisitor {
            type Value = Element;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an atomic number (1-118) or a chemical symbol")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
                match u8::try_from(v) {
                    Ok(z) if (1..=118).contains(&z) => Ok(Element(z)),
                    _ => Err(E::custom(format!("{v} is not an atomic number (1-118)"))),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!("{v} is not an atomic number (1-118)"))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
                elements::atomic_number(v)
                    .filter(|&z| z > 0)
                    .map(Element)
                    .ok_or_else(|| E::custom(format!("'{v}' is not a chemical symbol")))
            }
        }
        d.deserialize_any(ElementVisitor)
    }
}

/// Whether a descriptor uses periodic images for `atoms`: as `periodic` says
/// when it is given, else as the configuration's own `pbc` (any periodic
/// direction). An explicit `true` on a configuration with no periodic
/// direction, or whose cell has no volume, is an error as in dscribe, which
/// refuses periodic descriptors there.
pub(crate) fn use_periodic(
    descriptor: &'static str,
    periodic: Option<bool>,
    atoms: &Atoms,
) -> Result<bool, DescriptorError> {
    match periodic {
        None => Ok(atoms.any_pbc()),
        Some(false) => Ok(false),
        Some(true) if !atoms.any_pbc() => Err(DescriptorError::Geometry {
            descriptor,
            message: "periodic is true but the configuration has no periodic direction (pbc is F F F); \
                      leave periodic out to follow each configuration's pbc"
                .into(),
        }),
        Some(true) if atoms.volume() == 0.0 => Err(DescriptorError::Geometry {
            descriptor,
            message: "periodic is true but the cell has zero volume (dscribe refuses this too)".into(),
        }),
        Some(true) => Ok(true),
    }
}

/// Checks a strictly positive, finite spec value.
pub(crate) fn require_positive(descriptor: &'static str, field: &str, value: f64) -> Result<(), DescriptorError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(DescriptorError::InvalidSpec {
            descriptor,
            field: field.into(),
            message: format!("must be > 0, got {value}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn species_from_numbers_or_symbols() {
        let s: Species = serde_json::from_value(serde_json::json!(["Si", 6, "C", 14])).unwrap();
        assert_eq!(s.numbers(), &[6, 14]);
        assert_eq!(serde_json::to_value(&s).unwrap(), serde_json::json!(["C", "Si"]));
        let bad = serde_json::from_value::<Species>(serde_json::json!(["Xx"])).unwrap_err();
        assert!(bad.to_string().contains("'Xx' is not a chemical symbol"), "{bad}");
        let bad = serde_json::from_value::<Species>(serde_json::json!([0])).unwrap_err();
        assert!(bad.to_string().contains("not an atomic number"), "{bad}");
    }
}
