//! Malformed extxyz: every case is an error naming the file, the 0-based frame
//! and the 1-based line, never a panic; random mutations of valid files never
//! panic either.

use autopara_core::{Atoms, Error, extxyz};
use proptest::prelude::*;
use std::path::PathBuf;

const PROPS_F: &str = "Properties=species:S:1:pos:R:3:forces:R:3";

/// (what, file bytes, frame, line)
fn cases() -> Vec<(&'static str, Vec<u8>, usize, usize)> {
    let s = |t: &str| t.as_bytes().to_vec();
    let good = "2\nLattice=\"4 0 0 0 4 0 0 0 4\" energy=-1.0\nCu 0 0 0\nCu 2 2 0\n";
    vec![
        ("truncated last frame", s("3\n\nH 0 0 0\nH 0 0 1\n"), 0, 5),
        ("truncated after the count line", s("2\n"), 0, 2),
        ("fewer atom lines than the count", s("3\n\nH 0 0 0\n2\n\nH 0 0 0\nH 0 0 0\n"), 0, 4),
        ("more atom lines than the count", s("1\n\nH 0 0 0\nH 1 1 1\n"), 1, 4),
        ("non-numeric count", s("three\n\nH 0 0 0\n"), 0, 1),
        ("negative count", s("-1\n\n"), 0, 1),
        ("count overflowing usize", s("99999999999999999999999\n\n"), 0, 1),
        ("huge count, short file", s("1000000000000\n\nH 0 0 0\n"), 0, 4),
        ("bad float in pos", s("1\n\nH 0 zero 0\n"), 0, 3),
        ("bad float in a column", s(&format!("1\n{PROPS_F}\nH 0 0 0 1.0 x 2.0\n")), 0, 3),
        ("bad int in an I column", s("1\nProperties=species:S:1:pos:R:3:tags:I:1\nH 0 0 0 1.5\n"), 0, 3),
        ("bad bool in an L column", s("1\nProperties=species:S:1:pos:R:3:fixed:L:1\nH 0 0 0 yes\n"), 0, 3),
        ("unknown property type", s("1\nProperties=species:S:1:pos:R:3:foo:X:1\nH 0 0 0 1\n"), 0, 2),
        ("Properties not in triplets", s("1\nProperties=species:S:1:pos:R\nH 0 0 0\n"), 0, 2),
        (
            "Properties width overflow",
            s("1\nProperties=species:S:1:pos:R:3:foo:R:99999999999999999999999\nH 0 0 0\n"),
            0,
            2,
        ),
        ("Properties width zero", s("1\nProperties=species:S:1:pos:R:3:foo:R:0\nH 0 0 0\n"), 0, 2),
        ("a column name the writer cannot write", s("1\nProperties=species:S:1:pos:R:3:a{b:R:1\nH 0 0 0 1\n"), 0, 2),
        ("a column name with a space", s("1\nProperties=\"species:S:1:pos:R:3:a b:R:1\"\nH 0 0 0 1\n"), 0, 2),
        ("an empty info key", s("1\nenergy=1.0 \"\"=2\nH 0 0 0\n"), 0, 2),
        ("stress as one number", s("1\nstress=1.5\nH 0 0 0\n"), 0, 2),
        ("stress as 4 numbers", s("1\nstress=\"1 2 3 4\"\nH 0 0 0\n"), 0, 2),
        ("virial as text", s("1\nvirial=high\nH 0 0 0\n"), 0, 2),
        ("positions of type S", s("1\nProperties=species:S:1:positions:S:3\nH 0 0 0\n"), 0, 2),
        ("pos of width 2", s("1\nProperties=species:S:1:pos:R:2\nH 0 0\n"), 0, 2),
        ("duplicate property", s("1\nProperties=species:S:1:pos:R:3:q:R:1:q:R:1\nH 0 0 0 1 2\n"), 0, 2),
        ("fewer fields than Properties", s(&format!("1\n{PROPS_F}\nH 0 0 0 1 2\n")), 0, 3),
        ("more fields than Properties", s(&format!("1\n{PROPS_F}\nH 0 0 0 1 2 3 4\n")), 0, 3),
        ("blank atom line", s("2\n\nH 0 0 0\n\n"), 0, 4),
        ("Lattice with 8 numbers", s("1\nLattice=\"1 0 0 0 1 0 0 0\"\nH 0 0 0\n"), 0, 2),
        ("Lattice not numbers", s("1\nLattice=\"a b c d e f g h i\"\nH 0 0 0\n"), 0, 2),
        ("Lattice with nan", s("1\nLattice=\"nan 0 0 0 1 0 0 0 1\"\nH 0 0 0\n"), 0, 2),
        ("pbc with two values", s("1\npbc=\"T T\"\nH 0 0 0\n"), 0, 2),
        ("unterminated quote", s("1\nconfig_type=\"bulk energy=1\nH 0 0 0\n"), 0, 2),
        ("unterminated new-style array", s("1\nv=[1, 2\nH 0 0 0\n"), 0, 2),
        ("ragged matrix", s("1\nm=[[1, 2], [3]]\nH 0 0 0\n"), 0, 2),
        ("duplicate key", s("1\nenergy=1.0 energy=2.0\nH 0 0 0\n"), 0, 2),
        ("duplicate Lattice", s("1\nLattice=\"1 0 0 0 1 0 0 0 1\" Lattice=\"1 0 0 0 1 0 0 0 1\"\nH 0 0 0\n"), 0, 2),
        ("non-UTF-8 atom line", b"1\n\nH 0 \xff 0\n".to_vec(), 0, 3),
        ("non-UTF-8 comment line", b"1\nname=\"\xc3\x28\"\nH 0 0 0\n".to_vec(), 0, 2),
        ("nan position", s("1\n\nH nan 0 0\n"), 0, 3),
        ("inf position", s("1\n\nH 0 -inf 0\n"), 0, 3),
        ("unknown element", s("1\n\nQq 0 0 0\n"), 0, 3),
        ("atomic number out of range", s("1\nProperties=Z:I:1:pos:R:3\n200 0 0 0\n"), 0, 3),
        ("error in a later frame", s(&format!("{good}{good}2\n\nCu 0 0 0\nCu 2 2 x\n")), 2, 12),
        ("count line after a blank line in a later frame", s(&format!("{good}\n\n2.5\n")), 1, 7),
        ("empty file", s(""), 0, 1),
        ("only blank lines", s("\n  \n\t\n"), 0, 1),
        ("only a newline", s("\n"), 0, 1),
    ]
}

/// The frames as a run gets them: cut out unparsed as the file is read
/// ([`extxyz::Reader::next_unparsed`]), then parsed on their own (in a worker).
fn read_unparsed(bytes: &[u8], path: &str) -> Result<Vec<Atoms>, Error> {
    let mut reader = extxyz::Reader::new(bytes, path);
    let mut frames = Vec::new();
    while let Some(frame) = reader.next_unparsed() {
        frames.push(match frame? {
            extxyz::Frame::Unparsed(raw) => raw.parse()?,
            extxyz::Frame::Parsed(a) => a,
        });
    }
    Ok(frames)
}

#[test]
fn every_malformed_input_names_file_frame_and_line() {
    let cases = cases();
    assert!(cases.len() >= 20);
    let path = PathBuf::from("malformed.xyz");
    for (what, bytes, frame, line) in cases {
        let got: Result<Vec<_>, _> = extxyz::Reader::new(bytes.as_slice(), &path).collect();
        match got {
            Err(Error::Parse { path: p, frame: f, line: l, message }) => {
                assert_eq!((&p, f, l), (&path, frame, line), "{what}: {message}");
                assert!(!message.is_empty(), "{what}");
                let shown = Error::Parse { path: p, frame: f, line: l, message }.to_string();
                assert!(shown.starts_with(&format!("malformed.xyz: frame {frame}, line {line}: ")), "{what}: {shown}");
            }
            other => panic!("{what}: expected a parse error, got {other:?}"),
        }
        // Frames parsed apart from the reading report the same error.
        let sequential = extxyz::Reader::new(bytes.as_slice(), &path).collect::<Result<Vec<_>, _>>();
        assert_eq!(format!("{:?}", read_unparsed(&bytes, "malformed.xyz")), format!("{sequential:?}"), "{what}");
        // The parallel reader reports the same error.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.xyz");
        std::fs::write(&file, &bytes).unwrap();
        match extxyz::read_file_par(&file) {
            Err(Error::Parse { path: p, frame: f, line: l, .. }) => {
                assert_eq!((p, f, l), (file, frame, line), "{what}")
            }
            other => panic!("{what}: parallel reader: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn empty_files_say_so_and_blank_lines_between_frames_are_skipped() {
    for (text, what) in [("", "the file is empty"), (" \n\n", "the file holds only blank lines")] {
        let e = extxyz::read_str(text).unwrap_err().to_string();
        assert_eq!(e, format!("<string>: frame 0, line 1: no frames: {what}"));
    }
    assert_eq!(extxyz::read_str("\n1\n\nH 0 0 0\n\n\n1\n\nH 0 0 0\n\n").unwrap().len(), 2);
}

#[test]
fn read_file_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.extxyz");
    std::fs::write(&file, "1\n\nH 0 0\n").unwrap();
    let e = extxyz::read_file(&file).unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}: frame 0, line 3: ", file.display())), "{e}");
    let missing = dir.path().join("missing.xyz");
    assert!(matches!(extxyz::read_file(&missing), Err(Error::Io { path, .. }) if path == missing));
}

const SEEDS: [&str; 3] = [
    "2\nLattice=\"5.0 0.0 0.0 0.3 4.0 0.0 0.1 0.2 7.0\" Properties=species:S:1:pos:R:3:forces:R:3:tags:I:1:fixed:L:1:kind:S:1 \
     energy=-12.5 stress=\"1 0.5 0.25 0.5 2 0.125 0.25 0.125 3\" config_type=\"bulk \\\"x\\\"\" names=\"_JSON [\\\"a\\\", \\\"b\\\"]\" \
     v=[1, 2, 3] m=[[1, 2], [3, 4]] flag pbc=\"T F T\"\n\
     Cu 0.0 0.0 0.0 0.1 0.2 0.3 1 T a\nO 1.5 1.5 0.0 -0.1 0.0 1e-3 2 F b\n",
    "3\nwater molecule\nO 0.0 0.0 0.0\nH 0.76 0.59 0.0\nH -0.76 0.59 0.0\n",
    "1\nProperties=Z:I:1:pos:R:3 x={1 2 3} s='q' e=nan d=1.5d-3\n29 0 0 0\n0\n\n",
];

/// One random edit of a file's bytes.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Replace(usize, u8),
    DuplicateLine(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let special = prop::sample::select(b"0123456789 \n\t\"'{}[]=,:\\.-+eETFdXx#\xff\xc3".to_vec());
    prop_oneof![
        (any::<usize>(), 1usize..8).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), prop::collection::vec(special.clone(), 1..6)).prop_map(|(p, b)| Edit::Insert(p, b)),
        (any::<usize>(), special).prop_map(|(p, b)| Edit::Replace(p, b)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, e: &Edit) {
    if bytes.is_empty() {
        return;
    }
    let at = |p: usize| p % bytes.len();
    match e {
        Edit::Delete(p, n) => {
            let s = at(*p);
            let end = (s + n).min(bytes.len());
            bytes.drain(s..end);
        }
        Edit::Insert(p, b) => {
            let s = at(*p);
            bytes.splice(s..s, b.iter().copied());
        }
        Edit::Replace(p, b) => {
            let s = at(*p);
            bytes[s] = *b;
        }
        Edit::DuplicateLine(p) => {
            let s = at(*p);
            let start = bytes[..s].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let end = bytes[s..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| s + i + 1);
            let line = bytes[start..end].to_vec();
            bytes.splice(end..end, line);
        }
        Edit::Truncate(p) => bytes.truncate(at(*p)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Reading a mutated file never panics; whatever reads also writes
    /// (or is refused with an error) and reads back.
    #[test]
    fn mutated_files_never_panic(seed in 0usize..SEEDS.len(), edits in prop::collection::vec(edit(), 1..5)) {
        let mut bytes = SEEDS[seed].as_bytes().to_vec();
        for e in &edits {
            apply(&mut bytes, e);
        }
        let read: Result<Vec<_>, _> = extxyz::Reader::new(bytes.as_slice(), "mutated.xyz").collect();
        // Parsing frames apart from the reading gives the same frames or error.
        prop_assert_eq!(format!("{:?}", read_unparsed(&bytes, "mutated.xyz")), format!("{read:?}"));
        if let Ok(frames) = read
            && let Ok(text) = extxyz::to_string(&frames)
        {
            prop_assert!(extxyz::read_str(&text).is_ok(), "rewritten file does not read back:\n{}", text);
        }
    }
}

#[test]
fn seeds_are_valid_and_round_trip() {
    for s in SEEDS {
        let frames = extxyz::read_str(s).unwrap();
        assert!(!frames.is_empty());
        let again = extxyz::read_str(&extxyz::to_string(&frames).unwrap()).unwrap();
        // Debug text compares NaN equal to itself.
        assert_eq!(format!("{again:?}"), format!("{frames:?}"));
    }
}
