//! extxyz: our writer's output reads back to identical values (bit for bit),
//! and hand-written files in the forms ASE and libAtoms produce read as expected.

mod common;

use autopara_core::{ArrayData, Atoms, Column, Value, extxyz};

/// A configuration with every kind of info value and per-atom column.
fn varied() -> Atoms {
    let mut a = common::varied_frame();
    a.info.insert("config_type".into(), Value::Str("bulk fcc \"quoted\" a\\b".into()));
    a.info.insert("empty".into(), Value::Str(String::new()));
    a.info.insert("stress".into(), Value::matrix3([[1.0, 0.5, 0.25], [0.6, 2.0, 0.125], [0.3, 0.2, 3.0]]));
    a.info.insert("one".into(), Value::floats(vec![2.5]));
    a.info.insert("nan_energy".into(), Value::Float(f64::NAN));
    a.info.insert("inf".into(), Value::Float(f64::NEG_INFINITY));
    a.info.insert("REF_virial".into(), Value::matrix3([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]));
    a
}

/// Equality that treats NaN as equal to NaN (bit for bit for floats).
fn same(a: &Atoms, b: &Atoms) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn write_then_read_is_identical() {
    let frames = vec![varied(), Atoms::new(vec![2], vec![[0.0; 3]]), Atoms::default()];
    let text = extxyz::to_string(&frames).unwrap();
    let back = extxyz::read_str(&text).unwrap();
    assert_eq!(back.len(), 3);
    for (a, b) in frames.iter().zip(&back) {
        assert!(same(a, b), "wrote\n{a:?}\nread\n{b:?}\ntext:\n{text}");
    }
    // Deterministic: writing what we read gives the same bytes.
    assert_eq!(extxyz::to_string(&back).unwrap(), text);
}

#[test]
fn writes_the_expected_comment_line() {
    let mut a = Atoms::new(vec![14], vec![[0.0, 0.0, 0.0]]);
    a.cell = [[5.43, 0.0, 0.0], [0.0, 5.43, 0.0], [0.0, 0.0, 5.43]];
    a.pbc = [true, true, true];
    a.info.insert("energy".into(), Value::Float(-1.0));
    a.info.insert("stress".into(), Value::matrix3([[1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [3.0, 5.0, 6.0]]));
    a.arrays.insert("forces".into(), Column::vec3(&[[0.0, 0.0, 0.0]]));
    let text = extxyz::to_string(&[a]).unwrap();
    let comment = text.lines().nth(1).unwrap();
    assert_eq!(
        comment,
        "Lattice=\"5.43 0.0 0.0 0.0 5.43 0.0 0.0 0.0 5.43\" Properties=species:S:1:pos:R:3:forces:R:3 \
         energy=-1.0 stress=\"1.0 2.0 3.0 2.0 4.0 5.0 3.0 5.0 6.0\" pbc=\"T T T\""
    );
}

#[test]
fn reads_plain_xyz_and_defaults() {
    let text = "3\nwater molecule\nO 0.0 0.0 0.0\nH 0.76 0.59 0.0\nh -0.76 0.59 0.0\n\n";
    let f = &extxyz::read_str(text).unwrap()[0];
    assert_eq!(f.numbers, vec![8, 1, 1]);
    assert_eq!(f.info["comment"], Value::Str("water molecule".into()));
    assert_eq!(f.pbc, [false; 3]);
    assert_eq!(f.cell, [[0.0; 3]; 3]);
    // An empty comment line and zero atoms are valid.
    let f = &extxyz::read_str("0\n\n").unwrap()[0];
    assert!(f.is_empty() && f.info.is_empty());
}

#[test]
fn reads_columns_in_any_order_and_z_numbers() {
    let text = "2\nProperties=REF_forces:R:3:Z:I:1:fixed:L:1:label:S:1:pos:R:3 pbc=\"T F T\" is_bulk\n\
                1 2 3 29 T a 0.5 0.6 0.7\n4 5 6 8 False b.c 1.5 1.6 1.7\n";
    let f = &extxyz::read_str(text).unwrap()[0];
    assert_eq!(f.numbers, vec![29, 8]);
    assert_eq!(f.positions, vec![[0.5, 0.6, 0.7], [1.5, 1.6, 1.7]]);
    assert_eq!(f.pbc, [true, false, true]);
    assert_eq!(f.info["is_bulk"], Value::Bool(true));
    assert_eq!(f.array_vec3("REF_forces").unwrap(), vec![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    assert_eq!(f.arrays["fixed"].data, ArrayData::Bool(vec![true, false]));
    assert_eq!(f.arrays["label"].data, ArrayData::Str(vec!["a".into(), "b.c".into()]));
    assert_eq!(f.arrays.keys().collect::<Vec<_>>(), vec!["REF_forces", "fixed", "label"]);
}

#[test]
fn lattice_forms_and_matrix_keys() {
    let old = "1\nLattice=\"1 2 3 4 5 6 7 8 9\" virial={1 2 3 4 5 6 7 8 9} Properties=species:S:1:pos:R:3\nSi 0 0 0\n";
    let f = &extxyz::read_str(old).unwrap()[0];
    assert_eq!(f.cell, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]);
    assert_eq!(f.pbc, [true; 3], "Lattice without pbc means periodic");
    assert_eq!(
        f.info["virial"],
        Value::Array { shape: vec![3, 3], data: ArrayData::Int(vec![1, 4, 7, 2, 5, 8, 3, 6, 9]) }
    );
    let new = "1\nProperties=species:S:1:pos:R:3 Lattice=[[1, 2, 3], [4, 5, 6], [7, 8, 9]] pbc=[F, F, T]\nSi 0 0 0\n";
    let f = &extxyz::read_str(new).unwrap()[0];
    assert_eq!(f.cell, [[1.0, 4.0, 7.0], [2.0, 5.0, 8.0], [3.0, 6.0, 9.0]]);
    assert_eq!(f.pbc, [false, false, true]);
}

mod random {
    //! Random configurations read back exactly what was written.

    use super::*;
    use proptest::prelude::*;

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => any::<f64>(),
            1 => prop::sample::select(vec![0.0, -0.0, 1.0, 0.1, 1e-300, 5e-324, f64::MAX, f64::NAN, f64::INFINITY]),
        ]
    }

    fn finite() -> impl Strategy<Value = f64> {
        float().prop_filter("finite", |x| x.is_finite())
    }

    fn key() -> impl Strategy<Value = String> {
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}".prop_filter("reserved", |k| {
            !["lattice", "properties", "pbc", "species", "pos", "z", "stress", "virial"]
                .contains(&k.to_ascii_lowercase().as_str())
        })
    }

    /// Strings that are strings on the comment line (not numbers, bools or `_JSON`).
    fn text() -> impl Strategy<Value = String> {
        "[ -~\n]{0,12}"
            .prop_filter("reads as a string", |s| s.is_empty() || extxyz::parse_value(s) == Value::Str(s.clone()))
    }

    fn array(n: usize) -> impl Strategy<Value = ArrayData> {
        prop_oneof![
            prop::collection::vec(any::<bool>(), n).prop_map(ArrayData::Bool),
            prop::collection::vec(any::<i64>(), n).prop_map(ArrayData::Int),
            prop::collection::vec(float(), n).prop_map(ArrayData::Float),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            float().prop_map(Value::Float),
            text().prop_filter("non-empty", |s| !s.is_empty()).prop_map(Value::Str),
            (1usize..11).prop_flat_map(array).prop_map(|d| Value::Array { shape: vec![d.len()], data: d }),
            prop::collection::vec("[ -~]{0,6}", 1..4)
                .prop_map(|v| Value::Array { shape: vec![v.len()], data: ArrayData::Str(v) }),
            (1usize..4, 1usize..4)
                .prop_flat_map(|(r, c)| array(r * c).prop_map(move |d| Value::Array { shape: vec![r, c], data: d })),
        ]
    }

    fn column(n: usize) -> impl Strategy<Value = Column> {
        (1usize..5).prop_flat_map(move |w| {
            prop_oneof![
                array(n * w).prop_map(move |data| Column { width: w, data }),
                prop::collection::vec("[!-~]{1,6}", n * w)
                    .prop_map(move |v| Column { width: w, data: ArrayData::Str(v) }),
            ]
        })
    }

    fn atoms() -> impl Strategy<Value = Atoms> {
        (0usize..5).prop_flat_map(|n| {
            (
                prop::collection::vec(0u8..=118, n),
                prop::collection::vec([finite(), finite(), finite()], n),
                prop_oneof![
                    Just([[0.0; 3]; 3]),
                    [[finite(), finite(), finite()], [finite(), finite(), finite()], [finite(), finite(), finite()]]
                ],
                any::<[bool; 3]>(),
                prop::collection::vec((key(), value()), 0..6),
                prop::collection::vec((key(), column(n)), 0..4),
            )
                .prop_map(|(numbers, positions, cell, pbc, info, arrays)| Atoms {
                    numbers,
                    positions,
                    cell,
                    pbc,
                    info: info.into_iter().collect(),
                    arrays: arrays.into_iter().collect(),
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn written_frames_read_back_bit_for_bit(frames in prop::collection::vec(atoms(), 1..4)) {
            let text = extxyz::to_string(&frames).unwrap();
            let back = extxyz::read_str(&text).unwrap();
            // Debug text compares floats exactly (and NaN equal to NaN).
            prop_assert_eq!(format!("{back:?}"), format!("{frames:?}"), "file:\n{}", text);
        }
    }
}

/// An endless source of frames: a reader that needed the whole input first
/// (or kept every frame) would never finish or would run out of memory.
struct Endless {
    frame: Vec<u8>,
    pos: usize,
    served: u64,
}

impl std::io::Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.frame.len() - self.pos);
        buf[..n].copy_from_slice(&self.frame[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.frame.len();
        self.served += n as u64;
        Ok(n)
    }
}

#[test]
fn reading_streams_frame_by_frame() {
    let frame = extxyz::to_string(&[varied()]).unwrap().into_bytes();
    let len = frame.len() as u64;
    let mut src = std::io::BufReader::with_capacity(4096, Endless { frame, pos: 0, served: 0 });
    let reader = extxyz::Reader::new(&mut src, "<endless>");
    let n = reader.take(5_000).map(|f| f.unwrap()).filter(|a| a.len() == 3).count();
    assert_eq!(n, 5_000);
    // At most one buffer beyond the frames returned was read from the source.
    assert!(src.get_ref().served <= 5_000 * len + 4096, "read ahead {} bytes", src.get_ref().served - 5_000 * len);
}
