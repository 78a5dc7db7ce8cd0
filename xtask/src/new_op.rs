//! `cargo xtask new-op NAME`: scaffolds an op crate that builds, is tested,
//! and appears in `autopara ops` at once. See docs/writing-an-op.md.
//!
//! It writes `crates/NAME/` (Cargo.toml, src/lib.rs with an arguments struct,
//! the op, its inventory registration and a test), and wires it into the root
//! Cargo.toml (workspace member and dependency, a cargo feature `NAME` on by
//! default) and the facade's src/lib.rs (`pub use autopara_NAME as NAME;`,
//! which links the registration into every binary and test).

use crate::util;
use std::path::Path;

/// Entry point.
pub fn run(args: &[String]) -> Result<(), String> {
    let [name] = args else { return Err("usage: cargo xtask new-op NAME (lowercase letters, digits, _)".into()) };
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(format!(
            "new-op: '{name}' is not a valid op name (lowercase letters, digits and _, starting with a letter)"
        ));
    }
    let root = util::root();
    scaffold(&root, name)?;
    println!(
        "new-op: created crates/{name} and the `{name}` feature; try:\n  cargo test -p autopara-{}\n  cargo run -- ops",
        name.replace('_', "-")
    );
    Ok(())
}

fn write_new(path: &Path, text: &str) -> Result<(), String> {
    if path.exists() {
        return Err(format!("new-op: {} exists already; nothing was changed", path.display()));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn edit(path: &Path, f: impl FnOnce(String) -> Result<String, String>) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, f(text)?).map_err(|e| format!("{}: {e}", path.display()))
}

fn insert_after(text: String, anchor: &str, addition: &str, file: &str) -> Result<String, String> {
    let at =
        text.find(anchor).ok_or_else(|| format!("new-op: cannot find `{}` in {file}", anchor.trim()))? + anchor.len();
    Ok(format!("{}{addition}{}", &text[..at], &text[at..]))
}

/// Writes the crate and wires it in. Checks every precondition before writing anything.
pub fn scaffold(root: &Path, name: &str) -> Result<(), String> {
    let dir = root.join("crates").join(name);
    if dir.exists() {
        return Err(format!("new-op: {} exists already; nothing was changed", dir.display()));
    }
    let package = format!("autopara-{}", name.replace('_', "-"));
    let krate = format!("autopara_{name}");
    let manifest = root.join("Cargo.toml");
    let facade = root.join("src/lib.rs");
    let cargo_text = std::fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
    if cargo_text.contains(&format!("\n{name} = [")) {
        return Err(format!("new-op: the feature `{name}` exists already; nothing was changed"));
    }
    write_new(&dir.join("Cargo.toml"), &CARGO.replace("{package}", &package).replace("{name}", name))?;
    write_new(&dir.join("src/lib.rs"), &LIB.replace("{name}", name))?;
    edit(&manifest, |t| {
        let t = insert_after(t, "members = [\n", &format!("    \"crates/{name}\",\n"), "Cargo.toml")?;
        let dep = format!("{package} = {{ path = \"crates/{name}\", version = \"0.1.0\" }}\n");
        let t = insert_after(t, "[workspace.dependencies]\n", &dep, "Cargo.toml")?;
        let t = insert_after(t, "\ndefault = [", &format!("\"{name}\", "), "Cargo.toml")?;
        let t = insert_after(t, "\n[features]\n", &format!("{name} = [\"dep:{package}\"]\n"), "Cargo.toml")?;
        let optional = format!("{package} = {{ workspace = true, optional = true }}\n");
        insert_after(t, "autopara-cli.workspace = true\n", &optional, "Cargo.toml")
    })?;
    edit(&facade, |t| {
        let anchor = "/// The command-line front end";
        let at = t.find(anchor).ok_or_else(|| format!("new-op: cannot find `{anchor}` in src/lib.rs"))?;
        Ok(format!("{}#[cfg(feature = \"{name}\")]\npub use {krate} as {name};\n\n{}", &t[..at], &t[at..]))
    })
}

const CARGO: &str = r#"[package]
name = "{package}"
description = "autopara {name} op"
version.workspace = true
edition.workspace = true
license.workspace = true
rust-version.workspace = true

[lints]
workspace = true

[dependencies]
autopara-core.workspace = true
serde.workspace = true
serde_json.workspace = true
"#;

const LIB: &str = r#"//! The `{name}` op: counts the atoms of each configuration into an info
//! key. Replace the body of `run_item` with your operation;
//! docs/writing-an-op.md explains each part.
//!
//! ```sh
//! autopara run {name} -i in.xyz -o out.xyz --args '{"key": "n_atoms"}'
//! ```

use autopara_core::prelude::*;
use serde::{Deserialize, Serialize};

/// The op's arguments (`--args` JSON/TOML). Unknown fields are errors.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// The info key that receives the atom count.
    #[serde(default = "default_key")]
    pub key: String,
}

fn default_key() -> String {
    "{name}_natoms".to_string()
}

/// The op, built from validated arguments.
#[derive(Debug)]
pub struct Op {
    args: Args,
}

impl ItemOp for Op {
    type Args = Args;

    /// Bump `version` whenever results change: it is part of the cache key.
    const INFO: &'static OpInfo = &OpInfo {
        name: "{name}",
        version: 1,
        default_chunk_size: 10,
        summary: "counts the atoms of each configuration into an info key",
        input_kind: InputKind::Configs,
    };

    fn new(args: Args) -> Result<Op, ArgError> {
        if args.key.is_empty() {
            return Err(ArgError::new("key", "must not be empty"));
        }
        Ok(Op { args })
    }

    fn args(&self) -> &Args {
        &self.args
    }

    fn run_item(&self, item: &Item, _ctx: &mut WorkerContext) -> ItemResult {
        let mut atoms = item.atoms()?.clone();
        let n = i64::try_from(atoms.len()).map_err(|e| ItemFailure::new(e.to_string()))?;
        atoms.info.insert(self.args.key.clone(), Value::Int(n));
        Ok(vec![atoms])
    }
}

autopara_core::register_op!(Op);

#[cfg(test)]
mod tests {
    use super::*;
    use autopara_core::{Payload, build_op};

    #[test]
    fn counts_atoms_and_rejects_bad_args() {
        let op = build_op("{name}", serde_json::json!({"key": "n"})).expect("registered");
        let item = Item {
            index: 0,
            location: Location::default(),
            payload: Payload::Atoms(Atoms::new(vec![1, 8, 1], vec![[0.0; 3]; 3])),
        };
        let out = op.run_chunk(&[item], &mut WorkerContext::new(0, 0, "{name}"));
        let frames = out[0].as_ref().expect("item succeeds");
        assert_eq!(frames[0].info["n"], Value::Int(3));
        let err = build_op("{name}", serde_json::json!({"key": ""})).unwrap_err();
        assert_eq!(err.to_string(), "{name}: key: must not be empty");
        assert!(build_op("{name}", serde_json::json!({"bogus": 1})).is_err());
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The scaffold wires a new crate into copies of the real manifest and
    /// facade; the manifest stays valid TOML with the crate in every place.
    #[test]
    fn scaffold_wires_the_crate_in() {
        let root = util::root();
        let dir = std::env::temp_dir().join(format!("autopara-new-op-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).expect("temp dir");
        std::fs::copy(root.join("Cargo.toml"), dir.join("Cargo.toml")).expect("copy manifest");
        std::fs::copy(root.join("src/lib.rs"), dir.join("src/lib.rs")).expect("copy facade");
        scaffold(&dir, "count_atoms").expect("scaffold");
        let manifest: toml::Table =
            std::fs::read_to_string(dir.join("Cargo.toml")).expect("read").parse().expect("valid TOML");
        let members = manifest["workspace"]["members"].as_array().expect("members");
        assert!(members.iter().any(|m| m.as_str() == Some("crates/count_atoms")));
        assert!(manifest["workspace"]["dependencies"].get("autopara-count-atoms").is_some());
        let features = &manifest["features"];
        assert!(features["default"].as_array().expect("default").iter().any(|f| f.as_str() == Some("count_atoms")));
        assert_eq!(features["count_atoms"][0].as_str(), Some("dep:autopara-count-atoms"));
        assert_eq!(manifest["dependencies"]["autopara-count-atoms"]["optional"].as_bool(), Some(true));
        let facade = std::fs::read_to_string(dir.join("src/lib.rs")).expect("read facade");
        assert!(facade.contains("#[cfg(feature = \"count_atoms\")]\npub use autopara_count_atoms as count_atoms;"));
        let lib = std::fs::read_to_string(dir.join("crates/count_atoms/src/lib.rs")).expect("lib");
        assert!(lib.contains("name: \"count_atoms\"") && !lib.contains("{name}"));
        assert!(scaffold(&dir, "count_atoms").is_err(), "a second scaffold of the same name must refuse");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
