//! The `descriptor` op: wfl's `descriptors.calculate` with dscribe-equal
//! SOAP and ACSF. See `docs/ops/descriptor.md` for the user guide.

use crate::error::DescriptorError;
use crate::neighbours::Lists;
use crate::spec::{Descriptor, DescriptorSpec, spec_from_json};
use autopara_core::elements;
use autopara_core::prelude::*;
use autopara_core::{Error, args::nested};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// The descriptors to compute: one list for all centres, or one list per
/// centre element (wfl's dict keyed by `Zcenter`).
///
/// In JSON: a spec (`{"type": "soap", ...}`), a list of specs (concatenated),
/// or an object keyed by centre element (`{"14": spec-or-list, "C": ...}`).
#[derive(Debug)]
pub enum DescriptorSet {
    /// Descriptors applied to every atom, concatenated.
    All(Vec<Box<dyn DescriptorSpec>>),
    /// Per centre element (atomic number, ascending), descriptors concatenated.
    ByCenter(BTreeMap<u8, Vec<Box<dyn DescriptorSpec>>>),
}

impl DescriptorSet {
    /// Parses the `descriptor` argument, naming the offending field relative
    /// to it (`[1].r_cut`, `14.type`) on error.
    pub fn from_json(value: serde_json::Value) -> Result<DescriptorSet, ArgError> {
        match value {
            serde_json::Value::Object(map) if !map.contains_key("type") => {
                let mut by_center = BTreeMap::new();
                for (k, v) in map {
                    let z = k
                        .parse::<u8>()
                        .ok()
                        .filter(|z| (1..=118).contains(z))
                        .or_else(|| elements::atomic_number(&k).filter(|&z| z > 0))
                        .ok_or_else(|| {
                            ArgError::new(&k, "keys must be atomic numbers or chemical symbols of centre elements")
                        })?;
                    if by_center.insert(z, specs_from_json(&k, v)?).is_some() {
                        return Err(ArgError::new(&k, format!("element {} given twice", elements::symbol(z))));
                    }
                }
                if by_center.is_empty() {
                    return Err(ArgError::whole("no centre elements given"));
                }
                Ok(DescriptorSet::ByCenter(by_center))
            }
            other => Ok(DescriptorSet::All(specs_from_json("-", other)?)),
        }
    }
}

impl Serialize for DescriptorSet {
    /// Canonical form: a single spec as itself, several as a list; centre
    /// keys as atomic numbers.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DescriptorSet::All(specs) => OneOrList(specs).serialize(s),
            DescriptorSet::ByCenter(map) => {
                let mut m = s.serialize_map(Some(map.len()))?;
                for (z, specs) in map {
                    m.serialize_entry(&z.to_string(), &OneOrList(specs))?;
                }
                m.end()
            }
        }
    }
}

/// Serializes one spec as itself and several as a list.
struct OneOrList<'a>(&'a [Box<dyn DescriptorSpec>]);

impl Serialize for OneOrList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

/// The path of spec `i` of `n` under `prefix` in messages: `descriptor` for a
/// single spec, `descriptor[i]` in a list.
fn spec_path(prefix: &str, i: usize, n: usize) -> String {
    if n == 1 { prefix.to_string() } else { format!("{prefix}[{i}]") }
}

/// A spec or a list of specs at `path` (relative to the `descriptor` argument).
fn specs_from_json(path: &str, value: serde_json::Value) -> Result<Vec<Box<dyn DescriptorSpec>>, ArgError> {
    let items: Vec<(String, serde_json::Value)> = match value {
        serde_json::Value::Array(list) => {
            let path = if path == "-" { "" } else { path };
            list.into_iter().enumerate().map(|(i, v)| (format!("{path}[{i}]"), v)).collect()
        }
        one => vec![(path.to_string(), one)],
    };
    if items.is_empty() {
        return Err(ArgError::new(path, "no descriptors given"));
    }
    items
        .into_iter()
        .map(|(at, v)| {
            spec_from_json(v).map_err(|e| match e {
                Error::Args { field, message, .. } => ArgError::new(field, message).within(&at),
                Error::Unknown { name, known, .. } => {
                    ArgError::new("type", format!("unknown descriptor type '{name}'; registered: {known}")).within(&at)
                }
                other => ArgError::new(&at, other.to_string()),
            })
        })
        .collect()
}

/// Parses the `descriptor` argument with field paths below it.
fn descriptor_set<'de, D: Deserializer<'de>>(d: D) -> Result<DescriptorSet, D::Error> {
    nested(d, DescriptorSet::from_json)
}

/// The op's arguments, named as wfl's `descriptors.calculate`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorArgs {
    /// What to compute.
    #[serde(deserialize_with = "descriptor_set")]
    pub descriptor: DescriptorSet,
    /// The `info` (per config) or `arrays` (per atom) key.
    pub key: String,
    /// Per-atom rows in `arrays[key]` (true) or one vector per config in `info[key]` (false).
    pub per_atom: bool,
    /// L2-normalise each row (per atom) or the vector (per config); default true.
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Weight per-centre-element blocks by composition fraction (per config); default true.
    #[serde(default = "yes")]
    pub composition_weight: bool,
    /// Overwrite an existing key instead of failing; default false.
    #[serde(default)]
    pub force: bool,
}

fn yes() -> bool {
    true
}

/// Built descriptors, each with the path of its spec for messages.
type Built = Vec<(String, Box<dyn Descriptor>)>;

/// The `descriptor` op, built and validated.
#[derive(Debug)]
pub struct DescriptorOp {
    args: DescriptorArgs,
    /// `(centre element or None for all, descriptors)`, ascending elements.
    groups: Vec<(Option<u8>, Built)>,
}

impl ItemOp for DescriptorOp {
    type Args = DescriptorArgs;
    /// Chunk size 1 as wfl: one configuration is milliseconds of work, far more
    /// than the per-chunk cost, and small chunks balance uneven configurations.
    const INFO: &'static OpInfo = &OpInfo {
        name: "descriptor",
        version: 1,
        default_chunk_size: 1,
        summary: "SOAP / ACSF descriptors (equal to dscribe) into info or arrays, as wfl's descriptors.calculate",
        input_kind: InputKind::Configs,
    };

    const WFL_IGNORED: &'static [autopara_core::wfl_args::Ignored] = &[autopara_core::wfl_args::VERBOSE];

    /// Builds every descriptor, checking that each gives the rows the op
    /// needs: one per atom for `per_atom`, one averaged row otherwise.
    fn new(args: DescriptorArgs) -> Result<DescriptorOp, ArgError> {
        if args.key.is_empty() {
            return Err(ArgError::new("key", "must not be empty"));
        }
        // The key must be one the output file can hold and ASE read back.
        let writable = if args.per_atom {
            autopara_core::extxyz::check_column_name(&args.key)
        } else {
            autopara_core::extxyz::check_info_entry(&args.key, &Value::floats(vec![0.0; 2]))
        };
        writable.map_err(|m| ArgError::new("key", m))?;
        let build = |path: String, spec: &dyn DescriptorSpec| -> Result<(String, Box<dyn Descriptor>), ArgError> {
            let d = spec.build().map_err(|e| match e {
                DescriptorError::InvalidSpec { field, message, .. } => {
                    ArgError::new(format!("{path}.{field}"), message)
                }
                other => ArgError::new(path.clone(), other.to_string()),
            })?;
            if d.n_features() == 0 {
                return Err(ArgError::new(path, format!("{} has no features", d.name())));
            }
            if d.averaged() == args.per_atom {
                let message = if args.per_atom {
                    format!(
                        "{} averages over centres; per_atom=true needs one row per atom (average \"off\")",
                        d.name()
                    )
                } else {
                    format!(
                        "{} gives one row per atom; per_atom=false needs an averaged descriptor (soap with average \"inner\" or \"outer\")",
                        d.name()
                    )
                };
                return Err(ArgError::new(path, message));
            }
            Ok((path, d))
        };
        let indexed = |prefix: &str, specs: &[Box<dyn DescriptorSpec>]| -> Result<Built, ArgError> {
            specs.iter().enumerate().map(|(i, s)| build(spec_path(prefix, i, specs.len()), s.as_ref())).collect()
        };
        let groups = match &args.descriptor {
            DescriptorSet::All(specs) => vec![(None, indexed("descriptor", specs)?)],
            DescriptorSet::ByCenter(map) => map
                .iter()
                .map(|(&z, specs)| Ok((Some(z), indexed(&format!("descriptor.{z}"), specs)?)))
                .collect::<Result<_, ArgError>>()?,
        };
        Ok(DescriptorOp { args, groups })
    }

    fn args(&self) -> &DescriptorArgs {
        &self.args
    }

    fn run_item(&self, item: &Item, ctx: &mut WorkerContext) -> ItemResult {
        let mut atoms = item.atoms()?.clone();
        self.apply_with(&mut atoms, ctx.state())
            .map_err(|e| ItemFailure::new(format!("config {}{}: {}", item.index, item.location, e.message)))?;
        Ok(vec![atoms])
    }
}

autopara_core::register_op!(DescriptorOp);

impl DescriptorOp {
    /// Computes the descriptors of `atoms` and stores them under the op's key.
    pub fn apply(&self, atoms: &mut Atoms) -> Result<(), ItemFailure> {
        self.apply_with(atoms, &mut Lists::default())
    }

    /// [`DescriptorOp::apply`] reusing a worker's neighbour lists.
    pub fn apply_with(&self, atoms: &mut Atoms, lists: &mut Lists) -> Result<(), ItemFailure> {
        if self.args.per_atom { self.apply_per_atom(atoms, lists) } else { self.apply_per_config(atoms, lists) }
    }

    fn apply_per_config(&self, atoms: &mut Atoms, lists: &mut Lists) -> Result<(), ItemFailure> {
        let key = &self.args.key;
        if atoms.info.contains_key(key) {
            if !self.args.force {
                return Err(ItemFailure::new(format!("info key '{key}' already exists; pass force=true to overwrite")));
            }
            atoms.info.shift_remove(key);
        }
        let mut vector = Vec::new();
        for (z, descriptors) in &self.groups {
            let centers = centers_of(atoms, *z);
            let weight = match z {
                Some(_) if self.args.composition_weight && !atoms.is_empty() => {
                    centers.len() as f64 / atoms.len() as f64
                }
                _ => 1.0,
            };
            for (path, d) in descriptors {
                let start = vector.len();
                vector.resize(start + d.n_features(), 0.0);
                d.compute(atoms, &centers, &mut vector[start..], lists).map_err(|e| failure(path, e))?;
                vector[start..].iter_mut().for_each(|x| *x *= weight);
            }
        }
        if self.args.normalize {
            normalize(&mut vector);
        }
        atoms.info.insert(key.clone(), Value::floats(vector));
        Ok(())
    }

    fn apply_per_atom(&self, atoms: &mut Atoms, lists: &mut Lists) -> Result<(), ItemFailure> {
        let key = &self.args.key;
        let is_ours = |k: &str| {
            k.strip_prefix(key.as_str()).is_some_and(|rest| {
                rest.is_empty()
                    || rest.strip_prefix("_Z_").is_some_and(|z| !z.is_empty() && z.bytes().all(|b| b.is_ascii_digit()))
            })
        };
        if atoms.arrays.keys().any(|k| is_ours(k)) {
            if !self.args.force {
                return Err(ItemFailure::new(format!(
                    "arrays key '{key}' already exists (perhaps with a _Z_<Z> suffix); pass force=true to overwrite"
                )));
            }
            atoms.arrays.retain(|k, _| !is_ours(k));
        }
        let n_atoms = atoms.len();
        let mut block = Vec::new();
        for (z, descriptors) in &self.groups {
            let centers = centers_of(atoms, *z);
            if z.is_some() && centers.is_empty() {
                // wfl writes nothing for a centre element the config lacks.
                continue;
            }
            let width: usize = descriptors.iter().map(|(_, d)| d.n_features()).sum();
            let mut rows = vec![0.0; n_atoms * width];
            let mut offset = 0;
            let direct = matches!((descriptors.as_slice(), z), ([_], None));
            if let (true, [(path, d)]) = (direct, descriptors.as_slice()) {
                // All atoms, one descriptor: its rows are the array.
                d.compute(atoms, &centers, &mut rows, lists).map_err(|e| failure(path, e))?;
            }
            for (path, d) in descriptors.iter().filter(|_| !direct) {
                let nf = d.n_features();
                block.resize(centers.len() * nf, 0.0);
                d.compute(atoms, &centers, &mut block, lists).map_err(|e| failure(path, e))?;
                for (&i, src) in centers.iter().zip(block.chunks_exact(nf)) {
                    rows[i * width + offset..][..nf].copy_from_slice(src);
                }
                offset += nf;
            }
            if self.args.normalize && width > 0 {
                rows.chunks_exact_mut(width).for_each(normalize);
            }
            let name = match z {
                Some(z) => format!("{key}_Z_{z}"),
                None => key.clone(),
            };
            atoms.arrays.insert(name, Column { width, data: ArrayData::Float(rows) });
        }
        Ok(())
    }
}

/// The centre atoms: all, or those of element `z`.
fn centers_of(atoms: &Atoms, z: Option<u8>) -> Vec<usize> {
    match z {
        None => (0..atoms.len()).collect(),
        Some(z) => atoms.numbers.iter().enumerate().filter(|&(_, &n)| n == z).map(|(i, _)| i).collect(),
    }
}

/// Divides by the L2 norm when it exceeds 1e-8 (wfl's threshold).
fn normalize(v: &mut [f64]) {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 1e-8 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

fn failure(path: &str, e: DescriptorError) -> ItemFailure {
    ItemFailure::new(format!("{path}: {e}"))
}
