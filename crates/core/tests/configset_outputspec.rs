//! ConfigSet inputs and OutputSpec outputs: locations, globs, per-input
//! templates, tags on file and memory outputs, existing outputs.

use autopara_core::configset::Nested;
use autopara_core::operation::{Location, Payload};
use autopara_core::outputspec::Outputs;
use autopara_core::{Atoms, AutoparaInfo, ConfigSet, Error, OutputSpec, Value, extxyz, runner};
use std::path::Path;

fn h(x: f64) -> Atoms {
    Atoms::new(vec![1], vec![[x, 0.0, 0.0]])
}

fn write(path: &Path, xs: &[f64]) {
    let frames: Vec<Atoms> = xs.iter().map(|&x| h(x)).collect();
    extxyz::write_file(path, &frames).unwrap();
}

fn locations(cs: &ConfigSet) -> Vec<(u64, Location)> {
    cs.items().unwrap().map(|i| i.unwrap()).map(|i| (i.index, i.location)).collect()
}

fn loc(file: Option<usize>, path: &[usize]) -> Location {
    Location { file, path: path.to_vec() }
}

#[test]
fn memory_flat_nested_and_counters() {
    let cs = ConfigSet::from_atoms(vec![h(0.0), h(1.0)]);
    assert_eq!(locations(&cs), vec![(0, loc(None, &[0])), (1, loc(None, &[1]))]);
    assert_eq!(cs.len_hint(), Some(2));
    assert!(!cs.is_files());

    let nested = ConfigSet::from_nested(Nested::List(vec![
        Nested::List(vec![Nested::Atoms(h(0.0)), Nested::List(vec![]), Nested::Atoms(h(1.0))]),
        Nested::Atoms(h(2.0)),
        Nested::List(vec![Nested::List(vec![Nested::Atoms(h(3.0))])]),
    ]));
    let items: Vec<_> = nested.items().unwrap().map(|i| i.unwrap()).collect();
    let got: Vec<_> = items.iter().map(|i| (i.index, i.location.clone())).collect();
    assert_eq!(
        got,
        vec![(0, loc(None, &[0, 0])), (1, loc(None, &[0, 2])), (2, loc(None, &[1])), (3, loc(None, &[2, 0, 0]))]
    );
    let xs: Vec<f64> = items.iter().map(|i| i.atoms().unwrap().positions[0][0]).collect();
    assert_eq!(xs, vec![0.0, 1.0, 2.0, 3.0]);

    let single = ConfigSet::from_nested(Nested::Atoms(h(5.0)));
    assert_eq!(locations(&single), vec![(0, loc(None, &[]))]);

    let counters = ConfigSet::counters(3);
    let items: Vec<_> = counters.items().unwrap().map(|i| i.unwrap()).collect();
    assert_eq!(items.len(), 3);
    assert_eq!(items[2].payload, Payload::Counter(2));
    assert_eq!(items[2].location, loc(None, &[2]));
    assert!(counters.is_counters());
}

#[test]
fn files_and_globs_in_order_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("b.xyz"), &[2.0, 3.0]);
    write(&dir.path().join("a.xyz"), &[0.0, 1.0]);
    write(&dir.path().join("c.extxyz"), &[9.0]);
    let glob = format!("{}/*.xyz", dir.path().display());
    let single = dir.path().join("c.extxyz").display().to_string();
    let cs = ConfigSet::from_paths(&[single, glob]).unwrap();
    let names: Vec<_> = cs.files().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["c.extxyz", "a.xyz", "b.xyz"]);
    assert!(cs.is_files());
    assert_eq!(cs.len_hint(), None);
    let items: Vec<_> = cs.items().unwrap().map(|i| i.unwrap()).collect();
    let got: Vec<_> = items.iter().map(|i| (i.index, i.location.clone(), i.atoms().unwrap().positions[0][0])).collect();
    assert_eq!(
        got,
        vec![
            (0, loc(Some(0), &[0]), 9.0),
            (1, loc(Some(1), &[0]), 0.0),
            (2, loc(Some(1), &[1]), 1.0),
            (3, loc(Some(2), &[0]), 2.0),
            (4, loc(Some(2), &[1]), 3.0),
        ]
    );

    let empty_glob = format!("{}/*.nothing", dir.path().display());
    let e = ConfigSet::from_paths(std::slice::from_ref(&empty_glob)).unwrap_err();
    assert!(matches!(&e, Error::Input(m) if m.contains(&empty_glob) && m.contains("matches no files")), "{e}");
    let missing = format!("{}/missing.xyz", dir.path().display());
    let e = ConfigSet::from_paths(std::slice::from_ref(&missing)).unwrap_err();
    assert!(e.to_string().contains(&missing), "{e}");
}

#[test]
fn file_parse_error_stops_iteration_with_context() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("a.xyz");
    let bad = dir.path().join("b.xyz");
    write(&good, &[0.0]);
    std::fs::write(&bad, "1\n\nH 0 0 0\n1\n\nH 0 zero 0\n").unwrap();
    let cs = ConfigSet::from_files(vec![good, bad.clone()]);
    let items: Vec<_> = cs.items().unwrap().collect();
    assert_eq!(items.len(), 3);
    match &items[2] {
        Err(Error::Parse { path, frame, line, .. }) => assert_eq!((path, *frame, *line), (&bad, 1, 6)),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn per_input_template_resolves_and_rejects_clashes() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["x", "y"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
        write(&dir.path().join(d).join("a.xyz"), &[0.0]);
    }
    write(&dir.path().join("x/b.xyz"), &[0.0]);
    let t = format!("{}/out/{{stem}}.md.xyz", dir.path().display());
    let inputs = ConfigSet::from_paths(&[format!("{}/x/*.xyz", dir.path().display())]).unwrap();
    let outs = OutputSpec::per_input(&t).resolve(&inputs).unwrap();
    assert_eq!(outs, vec![dir.path().join("out/a.md.xyz"), dir.path().join("out/b.md.xyz")]);
    assert_eq!(OutputSpec::from_arg(&t), OutputSpec::per_input(&t));
    assert_eq!(OutputSpec::per_input(&t).output_index(&loc(Some(1), &[4])).unwrap(), 1);
    assert_eq!(OutputSpec::file("o.xyz").output_index(&loc(Some(1), &[4])).unwrap(), 0);

    let clash = ConfigSet::from_paths(&[format!("{}/*/a.xyz", dir.path().display())]).unwrap();
    let e = OutputSpec::per_input(&t).resolve(&clash).unwrap_err();
    assert!(e.to_string().contains("both map to output"), "{e}");

    let e = OutputSpec::per_input(&t).resolve(&ConfigSet::from_atoms(vec![h(0.0)])).unwrap_err();
    assert!(e.to_string().contains("not files"), "{e}");
    let e = OutputSpec::per_input("out.xyz").resolve(&inputs).unwrap_err();
    assert!(e.to_string().contains("{stem}"), "{e}");

    let input = dir.path().join("x/a.xyz");
    let e = OutputSpec::file(&input).resolve(&inputs).unwrap_err();
    assert!(e.to_string().contains("also an input"), "{e}");
}

/// Runs a map that doubles each configuration (and drops those far out, as
/// an op may) into `spec`.
fn run(spec: &OutputSpec, inputs: &ConfigSet) -> autopara_core::Result<Outputs> {
    let info = AutoparaInfo { workers: Some(2), chunk_size: Some(1), progress: Some(false), ..Default::default() };
    let double = |a: Atoms, _: &mut autopara_core::rng::ItemRng| {
        if a.positions[0][0] >= 100.0 { vec![] } else { vec![a.clone(), a] }
    };
    Ok(runner::map(inputs, spec, &info, double)?.outputs)
}

#[test]
fn tags_reach_file_and_memory_outputs_alike_and_existing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.xyz");
    let b = dir.path().join("b.xyz");
    let c = dir.path().join("c.xyz");
    write(&a, &[0.0, 1.0]);
    write(&b, &[100.0]);
    write(&c, &[2.0]);
    let inputs = ConfigSet::from_files(vec![a, b, c]);
    let t = format!("{}/out/{{stem}}.o.xyz", dir.path().display());
    let spec = OutputSpec::per_input(&t).with_tag("config_type", Value::Str("tagged".into()));
    let Outputs::Files(files) = run(&spec, &inputs).unwrap() else { panic!("expected files") };
    assert_eq!(files.len(), 3);
    // An input without results still gets its (empty) output file, which its
    // run record marks as complete and empty for the next step.
    assert_eq!(std::fs::read(&files[1]).unwrap(), b"");
    assert!(matches!(extxyz::read_file(&files[1]), Err(Error::Parse { frame: 0, line: 1, .. })));
    assert_eq!(ConfigSet::from_files(vec![files[1].clone()]).items().unwrap().count(), 0);
    let per_file: Vec<Vec<Atoms>> = [&files[0], &files[2]].iter().map(|f| extxyz::read_file(f).unwrap()).collect();
    assert_eq!(per_file.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 2]);
    for at in per_file.iter().flatten() {
        assert_eq!(at.info["config_type"], Value::Str("tagged".into()));
    }
    assert_eq!(per_file[1][0].positions[0][0], 2.0);
    // Outputs and their records; no temporaries left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["a.o.xyz", "a.o.xyz.autopara.json", "b.o.xyz", "b.o.xyz.autopara.json", "c.o.xyz", "c.o.xyz.autopara.json"]
    );

    let e = spec.check_existing(&files).unwrap_err();
    assert!(matches!(&e, Error::Output(m) if m.contains("exists") && m.contains("a.o.xyz")), "{e}");
    spec.clone().overwrite(true).check_existing(&files).unwrap();

    // One file for all inputs, and memory, get the same tags.
    let single = dir.path().join("all.xyz");
    let spec = OutputSpec::file(&single).with_tag("t", Value::Int(7));
    assert_eq!(run(&spec, &inputs).unwrap(), Outputs::Files(vec![single.clone()]));
    let all = extxyz::read_file(&single).unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|a| a.info["t"] == Value::Int(7)));
    let Outputs::Memory(mem) = run(&OutputSpec::memory().with_tag("t", Value::Int(7)), &inputs).unwrap() else {
        panic!("expected memory")
    };
    assert_eq!(mem, all);
}
