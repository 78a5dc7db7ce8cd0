//! The `minim` op's contract: argument errors naming the field, wfl's frames
//! and keys, fixed atoms, symmetry, and failures confined to their item.

mod common;

use autopara_calculators as _; // links the calculators' registrations
use autopara_core::rng::item_rng;
use autopara_core::units::GPA;
use autopara_core::wfl_args::Pressure;
use autopara_core::{
    ArrayData, Atoms, CalcError, CalcResults, Calculator, CalculatorSpec, Column, Error, Item, Properties, Value,
    WorkerContext, build_op,
};
use autopara_minim::{Status, minimize};
use autopara_testkit::fixtures::{fcc, item};
use common::{args, rattle, run};
use serde::{Deserialize, Serialize};
use serde_json::json;

fn arg_error_field(v: serde_json::Value) -> (String, String) {
    match build_op("minim", v) {
        Err(Error::Args { field, message, .. }) => (field, message),
        Err(other) => panic!("expected an argument error, got {other}"),
        Ok(_) => panic!("arguments accepted"),
    }
}

#[test]
fn bad_arguments_name_the_field() {
    let emt = json!({"type": "emt"});
    assert_eq!(arg_error_field(json!({"calculator": emt, "optimizer": "BFGS"})).0, "optimizer");
    assert_eq!(arg_error_field(json!({"calculator": emt, "fmax": 0.0})).0, "fmax");
    assert_eq!(arg_error_field(json!({"calculator": emt, "fmax": -1.0})).0, "fmax");
    let (field, message) = arg_error_field(json!({"calculator": emt, "pressure": 1.0, "stress_mask": [1, 1, 0]}));
    assert_eq!(field, "stress_mask");
    assert!(message.contains("6 Voigt entries"), "{message}");
    assert_eq!(
        arg_error_field(json!({"calculator": emt, "pressure": 1.0, "stress_mask": [[1, 1], [1, 1], [1, 1]]})).0,
        "stress_mask"
    );
    assert_eq!(arg_error_field(json!({"calculator": emt, "traj_subselect": "first"})).0, "traj_subselect");
    assert_eq!(arg_error_field(json!({"calculator": emt, "maxstep": 1.5})).0, "maxstep");
    assert_eq!(arg_error_field(json!({"calculator": emt, "optimizer": "FIRE", "precon": "Exp"})).0, "precon");
    assert_eq!(arg_error_field(json!({"calculator": emt, "update_config_type": "prepend"})).0, "update_config_type");
    let (_, message) = arg_error_field(json!({"calculator": emt, "fmx": 0.1}));
    assert!(message.contains("fmx"), "{message}");
    assert!(
        arg_error_field(json!({"calculator": {"type": "lennard_jones", "sigma": -1.0}})).0.starts_with("calculator")
    );
}

#[test]
fn defaults_are_wfls() {
    let op = build_op("minim", json!({"calculator": {"type": "emt"}})).unwrap();
    let a = op.args();
    assert_eq!(op.info().name, "minim");
    assert_eq!(op.info().default_chunk_size, 10);
    assert_eq!(a["fmax"], 1e-3);
    assert_eq!(a["steps"], 1000);
    assert_eq!(a["keep_symmetry"], true);
    assert_eq!(a["results_prefix"], "last_op__optimize_");
    assert_eq!(a["optimizer"], "PreconLBFGS");
    assert_eq!(a["precon"], "auto");
    assert_eq!(a["update_config_type"], "append");
}

#[test]
fn pressure_on_a_molecule_fails_only_that_item() {
    let op = build_op("minim", json!({"calculator": {"type": "emt"}, "pressure": 1.0, "fmax": 0.05})).unwrap();
    let molecule = Atoms::new(vec![29, 29], vec![[0.0; 3], [2.3, 0.0, 0.0]]);
    let mut bulk = fcc(29, 3.6, [1; 3]);
    rattle(&mut bulk, 0.02, 1);
    let mut ctx = WorkerContext::new(0, 0, "minim");
    let out = op.run_chunk(&[item(0, molecule), item(1, bulk)], &mut ctx);
    let err = out[0].as_ref().unwrap_err();
    assert!(err.message.contains("pressure"), "{}", err.message);
    let frames = out[1].as_ref().unwrap();
    assert_eq!(frames.last().unwrap().info["optimize_config_type"].as_str(), Some("optimize_last_converged"));
    assert_eq!(frames[0].info_f64("optimize_pressure_GPa"), Some(1.0));
}

#[test]
fn bad_pressure_forms_name_the_field() {
    let emt = json!({"type": "emt"});
    for p in [json!(["gaussian", 1.0]), json!(["uniform", 2.0, 1.0]), json!(["normal_positive", -1.0, 0.0]), json!("1")]
    {
        let (field, message) = arg_error_field(json!({"calculator": emt, "pressure": p}));
        assert_eq!(field, "pressure", "{p}: {message}");
    }
}

#[test]
fn sampled_pressure_is_drawn_per_item_used_and_reported() {
    // smax well below the spread of the draws: the relaxed stress shows which pressure was used.
    let spec = json!(["uniform", 0.5, 3.0]);
    let op = build_op("minim", json!({"calculator": {"type": "emt"}, "pressure": spec, "fmax": 1e-4, "smax": 1e-6}))
        .unwrap();
    let items: Vec<Item> = (0..3)
        .map(|i| {
            let mut at = fcc(29, 3.6, [1; 3]);
            rattle(&mut at, 0.02, i);
            item(i, at)
        })
        .collect();
    let mut ctx = WorkerContext::new(0, 5, "minim");
    let out = op.run_chunk(&items, &mut ctx);
    let expected: Pressure = serde_json::from_value(spec).unwrap();
    let mut used = Vec::new();
    for (it, frames) in items.iter().zip(&out) {
        let frames = frames.as_ref().unwrap();
        // The item's own draw: the same generator the op got for this item.
        let p = expected.sample("pressure", it.atoms().unwrap(), &mut ctx.rng(it)).unwrap();
        assert!((0.5..3.0).contains(&p), "{p}");
        for f in frames {
            assert_eq!(f.info_f64("optimize_pressure_GPa"), Some(p));
        }
        let last = frames.last().unwrap();
        assert_eq!(last.info["optimize_config_type"].as_str(), Some("optimize_last_converged"));
        // Relaxed under p: the stress is -p on the diagonal (eV/A^3), zero off it.
        let Some(Value::Array { data: ArrayData::Float(stress), .. }) = last.info.get("last_op__optimize_stress")
        else {
            panic!("no stress in {:?}", last.info.keys().collect::<Vec<_>>());
        };
        for (k, s) in stress.iter().enumerate() {
            let target = if k < 3 { -p * GPA } else { 0.0 };
            assert!((s - target).abs() < 2e-6, "item {}: stress[{k}] {s}, target {target}", it.index);
        }
        used.push(p);
    }
    assert!(used[0] != used[1] && used[1] != used[2], "draws {used:?}");
    // The same seed draws the same pressures again.
    let again = op.run_chunk(&items[..1], &mut WorkerContext::new(1, 5, "minim"));
    assert_eq!(again[0].as_ref().unwrap()[0].info_f64("optimize_pressure_GPa"), Some(used[0]));
}

#[test]
fn info_pressure_is_read_per_config() {
    let op = build_op("minim", json!({"calculator": {"type": "emt"}, "pressure": ["info", "target_P"], "fmax": 1e-2}))
        .unwrap();
    let mut low = fcc(29, 3.6, [1; 3]);
    low.info.insert("target_P".into(), Value::Float(0.5));
    let mut high = fcc(29, 3.6, [1; 3]);
    high.info.insert("target_P".into(), Value::Str("[\"uniform\", 4.0, 5.0]".into()));
    let missing = fcc(29, 3.6, [1; 3]);
    let out = op.run_chunk(&[item(0, low), item(1, high), item(2, missing)], &mut WorkerContext::new(0, 0, "minim"));
    let reported = |k: usize| out[k].as_ref().unwrap()[0].info_f64("optimize_pressure_GPa").unwrap();
    assert_eq!(reported(0), 0.5);
    assert!((4.0..5.0).contains(&reported(1)), "{}", reported(1));
    let err = out[2].as_ref().unwrap_err();
    assert!(err.message.starts_with("pressure: target_P: pressure from info: missing"), "{}", err.message);
}

fn lj_cell(seed: u64) -> Atoms {
    let mut at = fcc(18, 1.6796, [2; 3]);
    rattle(&mut at, 0.05, seed);
    at
}

fn lj_args(extra: serde_json::Value) -> autopara_minim::MinimArgs {
    let mut v = json!({"calculator": {"type": "lennard_jones", "sigma": 1.0, "epsilon": 1.0, "rc": 2.5}});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    args(v)
}

fn config_types(frames: &[Atoms]) -> Vec<&str> {
    frames.iter().map(|f| f.info["optimize_config_type"].as_str().unwrap()).collect()
}

#[test]
fn frames_and_keys_follow_wfl() {
    let mut at = lj_cell(1);
    at.info.insert("config_type".into(), Value::Str("bulk".into()));
    at.info.insert("last_op__md_energy".into(), Value::Float(1.0));
    let m = run(&lj_args(json!({"steps": 2})), &at);
    assert_eq!(m.status, Status::Unconverged);
    assert_eq!(config_types(&m.frames), ["optimize_initial", "optimize_mid", "optimize_last_unconverged"]);
    assert_eq!(m.frames[2].info["config_type"].as_str(), Some("bulk:optimize_last_unconverged"));
    assert_eq!(m.frames[0].info["config_type"].as_str(), Some("bulk:optimize_initial"));
    assert_eq!(m.frames[2].info["optimize_n_steps"].as_i64(), Some(2));
    assert!(!m.frames[1].info.contains_key("optimize_n_steps"));
    assert_eq!(m.frames[2].info["optimize_n_evaluations"].as_i64(), Some(m.evaluations as i64));
    for f in &m.frames {
        assert!(!f.info.contains_key("last_op__md_energy"), "stale last_op__ key kept");
        assert!(f.info.contains_key("last_op__optimize_energy"));
        assert!(f.info.contains_key("last_op__optimize_stress"));
        assert_eq!(f.arrays["last_op__optimize_forces"].width, 3);
        assert_eq!(f.info["optimize_symmetry_initial"].as_str(), Some("1 P1 @ 0.01"));
    }
    // Energies go down along the trajectory.
    let e: Vec<f64> = m.frames.iter().map(|f| f.info_f64("last_op__optimize_energy").unwrap()).collect();
    assert!(e[2] < e[1] && e[1] < e[0], "{e:?}");

    // Sub-selection.
    assert!(run(&lj_args(json!({"steps": 2, "traj_subselect": "last_converged"})), &at).frames.is_empty());
    let last = run(&lj_args(json!({"steps": 2, "traj_subselect": "last"})), &at).frames;
    assert_eq!(config_types(&last), ["optimize_last_unconverged"]);

    // Every other step, plus the final geometry.
    let sparse = run(&lj_args(json!({"steps": 3, "traj_step_interval": 2})), &at);
    assert_eq!(sparse.frames.len(), 3);

    // A relaxed input converges at step 0: one frame, initial and last at once.
    let relaxed = run(&lj_args(json!({"fmax": 1e-3})), &at).frames.pop().unwrap();
    let again = run(&lj_args(json!({"fmax": 1e-3, "update_config_type": false})), &relaxed);
    assert_eq!(config_types(&again.frames), ["optimize_last_converged"]);
    assert_eq!(again.steps, 0);
    assert_eq!(
        again.frames[0].info["config_type"].as_str(),
        relaxed.info["config_type"].as_str(),
        "update_config_type = false keeps config_type"
    );
    let over = run(&lj_args(json!({"fmax": 1e-3, "update_config_type": "overwrite"})), &relaxed);
    assert_eq!(over.frames[0].info["config_type"].as_str(), Some("optimize_last_converged"));
}

#[test]
fn fixed_atoms_stay_put_and_move_mask_is_written_back() {
    for optimizer in ["PreconLBFGS", "LBFGS", "FIRE"] {
        let mut at = fcc(29, 3.6, [2; 3]);
        rattle(&mut at, 0.1, 5);
        let fixed: Vec<bool> = at.positions.iter().map(|p| p[2] < 0.5).collect();
        let mask: Vec<bool> = fixed.iter().map(|f| !f).collect();
        at.arrays.insert("move_mask".into(), Column { width: 1, data: ArrayData::Bool(mask) });
        let m = run(&args(json!({"calculator": {"type": "emt"}, "optimizer": optimizer, "fmax": 1e-3})), &at);
        assert_eq!(m.status, Status::Converged, "{optimizer}");
        let last = m.frames.last().unwrap();
        assert_eq!(last.arrays["move_mask"], at.arrays["move_mask"], "{optimizer}");
        let mut moved_free = 0.0f64;
        for (i, f) in fixed.iter().enumerate() {
            let d: f64 = (0..3).map(|k| (last.positions[i][k] - at.positions[i][k]).abs()).sum();
            if *f {
                assert!(d < 1e-10, "{optimizer}: fixed atom {i} moved {d}");
            } else {
                moved_free = moved_free.max(d);
            }
        }
        assert!(moved_free > 1e-2, "{optimizer}: free atoms did not relax");
    }
    // Fix the x component of atom 1 only, through a per-component (width 3) mask.
    let mut at = fcc(29, 3.6, [2; 3]);
    rattle(&mut at, 0.1, 6);
    let mut mask = vec![true; 3 * at.len()];
    mask[3] = false; // atom 1, x
    at.arrays.insert("move_mask".into(), Column { width: 3, data: ArrayData::Bool(mask) });
    let m = run(&args(json!({"calculator": {"type": "emt"}, "fmax": 1e-3})), &at);
    let last = m.frames.last().unwrap();
    assert!((last.positions[1][0] - at.positions[1][0]).abs() < 1e-10);
    assert!((last.positions[1][1] - at.positions[1][1]).abs() > 1e-4);

    let mut bad = fcc(29, 3.6, [1; 3]);
    bad.arrays.insert("move_mask".into(), Column { width: 2, data: ArrayData::Bool(vec![true; 8]) });
    let err =
        minimize(&args(json!({"calculator": {"type": "emt"}})), &mut NeverCalled, &bad, &mut item_rng(0, "minim", 0))
            .unwrap_err();
    assert!(err.to_string().contains("move_mask"), "{err}");
}

/// A calculator that must not be reached.
struct NeverCalled;
impl Calculator for NeverCalled {
    fn name(&self) -> &str {
        "NeverCalled"
    }
    fn calculate(&mut self, _: &Atoms, _: Properties, _: &mut CalcResults) -> Result<(), CalcError> {
        Err(CalcError::Other("called".into()))
    }
}

#[test]
fn symmetry_survives_a_variable_cell_relaxation() {
    // bcc is a saddle for EMT copper (the Bain path leads to fcc); a rattle
    // below symprec is refined away and symmetrised forces and stress keep
    // the cubic group all the way.
    let a = 2.87;
    let mut at = Atoms::new(vec![29; 16], Vec::new());
    for i in 0..2 {
        for j in 0..2 {
            for k in 0..2 {
                for b in [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]] {
                    at.positions.push([(i as f64 + b[0]) * a, (j as f64 + b[1]) * a, (k as f64 + b[2]) * a]);
                }
            }
        }
    }
    at.cell = [[2.0 * a, 0.0, 0.0], [0.0, 2.0 * a, 0.0], [0.0, 0.0, 2.0 * a]];
    at.pbc = [true; 3];
    rattle(&mut at, 0.002, 9);
    let m = run(&args(json!({"calculator": {"type": "emt"}, "pressure": 0.0, "fmax": 1e-4})), &at);
    assert_eq!(m.status, Status::Converged);
    let last = m.frames.last().unwrap();
    assert_eq!(last.info["optimize_symmetry_initial"].as_str(), Some("229 Im-3m @ 0.01"));
    let inv = nalgebra::Matrix3::from_fn(|r, c| last.cell[r][c]).try_inverse().unwrap();
    let frac = last
        .positions
        .iter()
        .map(|p| {
            let f = nalgebra::RowVector3::from(*p) * inv;
            nalgebra::Vector3::new(f[0], f[1], f[2])
        })
        .collect();
    let cell = moyo::base::Cell::new(moyo::base::Lattice::from_basis(last.cell), frac, vec![29; last.len()]);
    assert_eq!(moyo::MoyoDataset::with_default(&cell, 1e-6).unwrap().number, 229, "Im-3m to 1e-6 A");
    let c = last.cell;
    assert!((c[0][0] - c[1][1]).abs() < 1e-8 && (c[1][1] - c[2][2]).abs() < 1e-8, "cell {c:?}");
    assert!((c[0][0] - 2.0 * a).abs() > 1e-3, "the cell relaxed");
}

/// EMT that fails from its `calls`-th call on (registered for the op tests).
#[derive(Debug, Serialize, Deserialize)]
struct FailingEmt {
    calls: usize,
}

struct Failing {
    inner: Box<dyn Calculator>,
    left: usize,
}

impl Calculator for Failing {
    fn name(&self) -> &str {
        "FailingEmt"
    }
    fn calculate(&mut self, at: &Atoms, p: Properties, out: &mut CalcResults) -> Result<(), CalcError> {
        if self.left == 0 {
            return Err(CalcError::Other("injected failure".into()));
        }
        self.left -= 1;
        self.inner.calculate(at, p, out)
    }
}

#[typetag::serde(name = "test_failing_emt")]
impl CalculatorSpec for FailingEmt {
    fn build(&self) -> Result<Box<dyn Calculator>, CalcError> {
        let emt: Box<dyn CalculatorSpec> =
            serde_json::from_value(json!({"type": "emt"})).map_err(|e| CalcError::Other(e.to_string()))?;
        Ok(Box::new(Failing { inner: emt.build()?, left: self.calls }))
    }
}

#[test]
fn calculator_failure_ends_the_item_not_the_run() {
    let mut at = fcc(29, 3.6, [2; 3]);
    rattle(&mut at, 0.1, 2);
    let m = run(&args(json!({"calculator": {"type": "test_failing_emt", "calls": 4}, "fmax": 1e-4})), &at);
    assert!(matches!(&m.status, Status::Exception(msg) if msg.contains("injected failure")), "{:?}", m.status);
    let last = m.frames.last().unwrap();
    assert_eq!(last.info["optimize_config_type"].as_str(), Some("optimize_last_exception"));
    assert!(last.info["optimize_exception"].as_str().unwrap().contains("injected failure"));
    assert!(m.frames.len() >= 2);

    // Through the op: one failing item among good ones.
    let mut ctx = WorkerContext::new(0, 0, "minim");
    let good = json!({"type": "emt"});
    for (skip, expect_ok) in [(true, true), (false, false)] {
        let op = build_op(
            "minim",
            json!({"calculator": {"type": "test_failing_emt", "calls": 4}, "fmax": 1e-4, "skip_failures": skip}),
        )
        .unwrap();
        let out = op.run_chunk(&[item(0, at.clone())], &mut ctx);
        assert_eq!(out[0].is_ok(), expect_ok, "skip_failures = {skip}");
        if let Err(e) = &out[0] {
            assert!(e.message.contains("injected failure"), "{}", e.message);
        }
        let op = build_op("minim", json!({"calculator": good, "fmax": 0.05, "skip_failures": skip})).unwrap();
        assert!(op.run_chunk(&[item(1, at.clone())], &mut ctx)[0].is_ok());
    }
}

#[test]
fn two_input_files_give_two_output_files() {
    use autopara_core::{AutoparaInfo, ConfigSet, OutputSpec, extxyz, runner};
    // wfl's test_mult_files: 2 configs in f1, 1 in f2, EMT, fmax 1e-2, no
    // preconditioner, pressure -1.1215 GPa: each output holds its own inputs' trajectories.
    let dir = tempfile::tempdir().unwrap();
    let mut base = fcc(29, 3.6, [1; 3]);
    rattle(&mut base, 0.05, 11);
    for (name, n) in [("f1", 2), ("f2", 1)] {
        let frames: Vec<Atoms> = (0..n)
            .map(|i| {
                let mut at = base.clone();
                at.info.insert("source".into(), Value::Str(format!("{name}/{i}")));
                at
            })
            .collect();
        extxyz::write_file(dir.path().join(format!("{name}.xyz")), &frames).unwrap();
    }
    let inputs = ConfigSet::from_paths(&[dir.path().join("f*.xyz").to_str().unwrap()]).unwrap();
    let op =
        build_op("minim", json!({"calculator": {"type": "emt"}, "fmax": 1e-2, "precon": null, "pressure": -1.1215}))
            .unwrap();
    let template = format!("{}/{{stem}}.out.xyz", dir.path().display());
    let info = AutoparaInfo { workers: Some(2), chunk_size: Some(1), progress: Some(false), ..Default::default() };
    runner::run(op.as_ref(), &inputs, &OutputSpec::per_input(&template), &info).unwrap();
    let f1 = extxyz::read_file(dir.path().join("f1.out.xyz")).unwrap();
    let f2 = extxyz::read_file(dir.path().join("f2.out.xyz")).unwrap();
    assert!(f2.len() > 1, "a whole trajectory");
    assert_eq!(f1.len(), 2 * f2.len());
    assert!(f1.iter().all(|f| f.info["source"].as_str().unwrap().starts_with("f1/")));
    assert!(f2.iter().all(|f| f.info["source"].as_str() == Some("f2/0")));
    let last = f2.last().unwrap();
    assert_eq!(last.info["optimize_config_type"].as_str(), Some("optimize_last_converged"));
    assert_eq!(last.info_f64("optimize_pressure_GPa"), Some(-1.1215));
}
