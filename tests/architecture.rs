//! The rules of ARCHITECTURE.md, checked on the sources: which autopara
//! crates each crate may depend on, what of core an op crate may name, no
//! `thread_local!` state in op crates, and no import circles between core's
//! modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The op crates (one op each, or calculators and `calculate`).
const OP_CRATES: &[&str] = &["calculators", "md", "minim", "descriptor", "buildcell"];

/// What each crate may name under `[dependencies]` (ARCHITECTURE.md's table).
const ALLOWED_DEPENDENCIES: &[(&str, &[&str])] = &[
    ("geometry", &[]),
    ("core", &["geometry"]),
    ("calculators", &["core", "geometry"]),
    ("md", &["core", "geometry"]),
    ("minim", &["core", "geometry"]),
    ("descriptor", &["core", "geometry"]),
    ("buildcell", &["core", "geometry"]),
    ("mpi", &["core"]),
    ("queue", &["core"]),
    ("cli", &["core", "queue", "mpi", "buildcell"]),
    ("testkit", &["core"]),
];

/// Core's modules that are the engine (for the CLI, backends and the Python
/// package), not the op author's surface (rule 3).
const ENGINE_MODULES: &[&str] =
    &["executor", "cache", "runner", "configset", "outputspec", "autopara_info", "sidecar", "registry", "map"];

/// Root re-exports that belong to the engine.
const ENGINE_NAMES: &[&str] =
    &["ConfigSet", "OutputSpec", "AutoparaInfo", "OpRegistration", "build_op", "find_op", "registered_ops", "KitOp"];

/// The `autopara-*` crates named in the `[dependencies]` table of a manifest.
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut section = String::new();
    let mut deps = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
        } else if section == "[dependencies]"
            && let Some(rest) = line.strip_prefix("autopara-")
        {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            deps.insert(name);
        }
    }
    deps
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A source file's code as built outside tests: comment lines dropped, and
/// nothing from an inline `#[cfg(test)] mod tests` on; `None` for a test
/// module's own file (`tests.rs`).
fn code(path: &Path) -> Option<String> {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return None;
    }
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    Some(text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n"))
}

/// The identifiers that follow `prefix` in `text` (`crate::` -> module names).
fn names_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.match_indices(prefix)
        .filter(|(at, _)| !text[..*at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
        .map(|(at, _)| {
            let rest = &text[at + prefix.len()..];
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn crates_depend_only_downwards() {
    for (name, allowed) in ALLOWED_DEPENDENCIES {
        let deps = dependencies(&root().join("crates").join(name).join("Cargo.toml"));
        let extra: Vec<_> = deps.iter().filter(|d| !allowed.contains(&d.as_str())).collect();
        assert!(extra.is_empty(), "crates/{name} depends on {extra:?}; ARCHITECTURE.md allows only {allowed:?}");
    }
    let listed: BTreeSet<&str> = ALLOWED_DEPENDENCIES.iter().map(|(n, _)| *n).collect();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name != "python" {
            assert!(listed.contains(name.as_str()), "crates/{name} is not in ARCHITECTURE.md's table (nor here)");
        }
    }
}

/// `path` names something of the engine through `crate_name::`.
fn engine_uses(code: &str, crate_name: &str) -> Vec<String> {
    let prefix = format!("{crate_name}::");
    let mut found = Vec::new();
    for name in names_after(code, &prefix) {
        if ENGINE_MODULES.contains(&name) || ENGINE_NAMES.contains(&name) {
            found.push(name.to_string());
        }
    }
    // `use autopara_core::{...}` groups.
    for (at, _) in code.match_indices(&format!("{prefix}{{")) {
        let group = &code[at + prefix.len() + 1..];
        let group = &group[..group.find('}').unwrap_or(group.len())];
        for name in group.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if ENGINE_MODULES.contains(&name) || ENGINE_NAMES.contains(&name) {
                found.push(name.to_string());
            }
        }
    }
    found
}

#[test]
fn op_crates_use_only_the_op_author_surface() {
    for name in OP_CRATES {
        for path in sources(&root().join("crates").join(name).join("src")) {
            let Some(code) = code(&path) else { continue };
            let found = engine_uses(&code, "autopara_core");
            assert!(
                found.is_empty(),
                "{} names core's engine ({found:?}); op crates use the prelude, kit, args, calculator, results, extxyz, \
                 rng, units, elements, wfl_args (ARCHITECTURE.md rule 3)",
                path.display()
            );
            assert!(
                !code.contains("thread_local!"),
                "{}: per-worker state belongs in WorkerContext::state, not thread_local! (rule 4)",
                path.display()
            );
        }
    }
}

#[test]
fn engine_detection_is_not_vacuous() {
    assert_eq!(engine_uses("use autopara_core::cache::FileSink;", "autopara_core"), ["cache"]);
    assert_eq!(engine_uses("use autopara_core::{Atoms, ConfigSet};", "autopara_core"), ["ConfigSet"]);
    assert!(engine_uses("use autopara_core::prelude::*; my_autopara_core::cache", "autopara_core").is_empty());
    let graph =
        BTreeMap::from([("a".to_string(), BTreeSet::from(["b".to_string()])), ("b".into(), ["a".into()].into())]);
    assert!(!circles(&graph).is_empty());
}

/// The modules of core (top-level files and directories under `src/`) and
/// the modules each names through `crate::`.
fn core_modules() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("crates/core/src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" {
            continue;
        }
        let files = if path.is_dir() { sources(&path) } else { vec![path.clone()] };
        let mut uses = BTreeSet::new();
        for file in files {
            let Some(code) = code(&file) else { continue };
            uses.extend(names_after(&code, "crate::").into_iter().map(str::to_string));
        }
        uses.remove(&name);
        graph.insert(name, uses);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|m| modules.contains(m));
    }
    graph
}

/// Every edge `a -> b` from which `a` is reached again.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            if m == to {
                return true;
            }
            if seen.insert(m.clone()) {
                stack.extend(graph.get(&m).into_iter().flatten().cloned());
            }
        }
        false
    };
    let mut found = Vec::new();
    for (a, uses) in graph {
        for b in uses {
            if reaches(b, a) {
                found.push(format!("{a} -> {b} -> ... -> {a}"));
            }
        }
    }
    found
}

#[test]
fn core_has_no_import_circles() {
    let graph = core_modules();
    assert!(graph.len() > 10 && graph["runner"].contains("cache"), "the module graph was not read: {graph:?}");
    let found = circles(&graph);
    assert!(found.is_empty(), "import circles between core's modules:\n{}", found.join("\n"));
}
