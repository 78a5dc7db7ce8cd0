//! `autopara convert`: the binary reads inputs (files, globs), writes one file
//! or one per input with tags, and reports errors on stderr with a non-zero exit.

use autopara::{Atoms, Value, extxyz};
use std::path::Path;
use std::process::{Command, Output};

fn autopara(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autopara")).args(args).output().expect("run autopara")
}

fn frames(path: &Path, xs: &[f64]) {
    let v: Vec<Atoms> = xs.iter().map(|&x| Atoms::new(vec![6], vec![[x, 0.0, 0.0]])).collect();
    extxyz::write_file(path, &v).unwrap();
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn converts_globs_with_tags_and_refuses_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    frames(&d.join("a.xyz"), &[0.0, 1.0]);
    frames(&d.join("b.xyz"), &[2.0]);
    let glob = format!("{}/*.xyz", d.display());
    let out = d.join("out/all.extxyz");
    let out_s = out.display().to_string();
    let o = autopara(&["convert", &glob, "-o", &out_s, "--tag", "config_type=train", "--tag", "weight=2.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = extxyz::read_file(&out).unwrap();
    let xs: Vec<f64> = got.iter().map(|a| a.positions[0][0]).collect();
    assert_eq!(xs, vec![0.0, 1.0, 2.0]);
    for a in &got {
        assert_eq!(a.info["config_type"], Value::Str("train".into()));
        assert_eq!(a.info["weight"], Value::Float(2.5));
    }
    // Written through the run's file sink: complete, with its record, and no
    // partial, journal or lock left beside it.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/all.extxyz.autopara.json")).unwrap()).unwrap();
    assert_eq!((&record["key"]["op"], &record["configs"]), (&serde_json::json!("convert"), &serde_json::json!(3)));
    let mut names: Vec<String> =
        std::fs::read_dir(d.join("out")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["all.extxyz", "all.extxyz.autopara.json"]);

    // An existing output is an error without --overwrite, and stays untouched.
    let o = autopara(&["convert", &glob, "-o", &out_s]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    assert_eq!(extxyz::read_file(&out).unwrap(), got);
    let o = autopara(&["convert", &format!("{}/a.xyz", d.display()), "-o", &out_s, "--overwrite"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(extxyz::read_file(&out).unwrap().len(), 2);

    // One output per input.
    let template = format!("{}/per/{{stem}}.out.xyz", d.display());
    let o = autopara(&["convert", &glob, "-o", &template]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(extxyz::read_file(d.join("per/a.out.xyz")).unwrap().len(), 2);
    assert_eq!(extxyz::read_file(d.join("per/b.out.xyz")).unwrap().len(), 1);
}

#[test]
fn errors_go_to_stderr_with_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("o.xyz").display().to_string();

    let missing = format!("{}/none-*.xyz", d.display());
    let o = autopara(&["convert", &missing, "-o", &out]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(&missing) && stderr(&o).contains("matches no files"), "{}", stderr(&o));

    let bad = d.join("bad.xyz");
    std::fs::write(&bad, "1\n\nC 0 0 0\n2\n\nC 0 0 0\nC 0 x 0\n").unwrap();
    let o = autopara(&["convert", &bad.display().to_string(), "-o", &out]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("bad.xyz") && e.contains("frame 1, line 7"), "{e}");
    assert!(!Path::new(&out).exists(), "no partial output under the final name");

    let o = autopara(&["convert", &bad.display().to_string(), "-o", &out, "--tag", "novalue"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("KEY=VALUE"), "{}", stderr(&o));
}
