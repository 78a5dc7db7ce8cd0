//! The `calculate` op: wfl's generic-calculate semantics (keys, prefixes,
//! dropped stress, failures, per-config calculators) and bad input.

use autopara_calculators::Calculate;
use autopara_core::ItemOp;
use autopara_core::{
    Atoms, CalcResults, CalculatorSpec, Error, ItemResult, Operation, Properties, Value, WorkerContext, build_op,
};
use autopara_testkit::fixtures::items;
use serde_json::{Value as Json, json};

fn cu_cell() -> Atoms {
    let a = 3.61;
    let mut at = Atoms::new(
        vec![29; 4],
        vec![[0.0, 0.0, 0.0], [0.0, a / 2.0, a / 2.0], [a / 2.0 + 0.05, 0.0, a / 2.0], [a / 2.0, a / 2.0, 0.1]],
    );
    at.cell = [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]];
    at.pbc = [true; 3];
    at
}

fn cluster() -> Atoms {
    let mut at = cu_cell();
    at.pbc = [false; 3];
    at.cell = [[0.0; 3]; 3];
    at
}

fn run(args: Json, configs: Vec<Atoms>) -> Vec<ItemResult> {
    let op = build_op("calculate", args).expect("valid args");
    assert_eq!(op.info().default_chunk_size, 10);
    let mut ctx = WorkerContext::new(0, 0, "calculate");
    op.run_chunk(&items(configs), &mut ctx)
}

fn direct(spec: Json, at: &Atoms, request: Properties) -> CalcResults {
    let spec: Box<dyn CalculatorSpec> = serde_json::from_value(spec).unwrap();
    let mut out = CalcResults::default();
    spec.build().unwrap().calculate(at, request, &mut out).unwrap();
    out
}

fn only(r: &ItemResult) -> &Atoms {
    let frames = r.as_ref().expect("item succeeded");
    assert_eq!(frames.len(), 1);
    &frames[0]
}

fn args_error(args: Json) -> (String, String) {
    match Calculate::from_json(args) {
        Err(Error::Args { field, message, .. }) => (field, message),
        other => panic!("expected an argument error, got {other:?}"),
    }
}

#[test]
fn default_keys_match_wfl() {
    let res = run(json!({"calculator": {"type": "emt"}}), vec![cu_cell(), cluster()]);
    let want = direct(json!({"type": "emt"}), &cu_cell(), Properties::ALL);
    let at = only(&res[0]);
    assert_eq!(at.info_f64("EMT_energy"), Some(want.energy));
    assert_eq!(at.info_f64("EMT_free_energy"), Some(want.energy));
    assert_eq!(at.array_vec3("EMT_forces").unwrap(), want.forces);
    assert_eq!(at.info["EMT_stress"].to_f64_vec().unwrap(), want.stress.to_vec());
    assert!(!at.arrays.contains_key("EMT_energies"), "energies only when asked");
    assert!(!at.info.contains_key("EMT_calculation_failed"));
    // Non-periodic: stress dropped, the rest stored.
    let at = only(&res[1]);
    assert!(at.info.contains_key("EMT_energy"));
    assert!(!at.info.contains_key("EMT_stress"));
}

#[test]
fn auto_prefix_is_the_ase_class_name() {
    for (spec, prefix) in [
        (json!({"type": "lennard_jones", "sigma": 2.3}), "LennardJones_"),
        (json!({"type": "morse", "r0": 2.5}), "MorsePotential_"),
        (json!({"type": "emt"}), "EMT_"),
    ] {
        let res = run(json!({"calculator": spec, "output_prefix": "_auto_"}), vec![cu_cell()]);
        assert!(only(&res[0]).info.contains_key(&format!("{prefix}energy")), "{prefix}");
    }
    let res = run(json!({"calculator": {"type": "emt"}, "output_prefix": "REF_"}), vec![cu_cell()]);
    assert!(only(&res[0]).info.contains_key("REF_energy"));
}

#[test]
fn properties_select_what_is_stored_and_stale_keys_go() {
    let mut at = cu_cell();
    at.info.insert("EMT_stress".into(), Value::floats(vec![9.0; 6]));
    at.info.insert("EMT_calculation_failed".into(), Value::Bool(true));
    let res = run(json!({"calculator": {"type": "emt"}, "properties": ["energies", "free_energy"]}), vec![at]);
    let at = only(&res[0]);
    let want = direct(json!({"type": "emt"}), &cu_cell(), Properties::ALL);
    let energies = at.arrays["EMT_energies"].data.to_f64_vec().unwrap();
    assert_eq!(energies, want.energies);
    assert!(at.info.contains_key("EMT_energy"));
    assert!(!at.info.contains_key("EMT_stress"));
    assert!(!at.arrays.contains_key("EMT_forces"));
    assert!(!at.info.contains_key("EMT_calculation_failed"));
}

#[test]
fn failed_configs_are_still_output_and_flagged() {
    let mut si = cu_cell();
    si.numbers[2] = 14;
    let mut overlap = cu_cell();
    overlap.positions[3] = overlap.positions[1];
    let res = run(json!({"calculator": {"type": "emt"}}), vec![si.clone(), overlap.clone(), cu_cell()]);
    for (r, needle) in res.iter().zip(["Si", "overlap"]) {
        let at = only(r);
        assert_eq!(at.info["EMT_calculation_failed"], Value::Bool(true));
        let why = at.info["EMT_calculation_error"].as_str().unwrap();
        assert!(why.contains(needle), "{why}");
        assert!(!at.info.contains_key("EMT_energy") && !at.arrays.contains_key("EMT_forces"));
        assert_eq!(at.positions, if needle == "Si" { &si } else { &overlap }.positions);
    }
    assert!(only(&res[2]).info.contains_key("EMT_energy"));
    // Overlapping atoms in a pair potential: the same, never a NaN result.
    let res = run(json!({"calculator": {"type": "lennard_jones"}}), vec![overlap.clone()]);
    assert_eq!(only(&res[0]).info["LennardJones_calculation_failed"], Value::Bool(true));

    // raise_calc_exceptions: failure records naming the config and the cause.
    let res = run(json!({"calculator": {"type": "emt"}, "raise_calc_exceptions": true}), vec![cu_cell(), si, overlap]);
    assert!(res[0].is_ok());
    let e1 = res[1].as_ref().unwrap_err().message.clone();
    assert!(e1.contains("config 1") && e1.contains("Si"), "{e1}");
    let e2 = res[2].as_ref().unwrap_err().message.clone();
    assert!(e2.contains("config 2") && e2.contains("overlap"), "{e2}");
}

#[test]
fn per_config_calculator_overrides() {
    let lj = json!({"type": "lennard_jones", "sigma": 2.3, "epsilon": 0.4});
    let mut replaced = cu_cell();
    replaced.info.insert("AUTOPARA_CALCULATOR".into(), Value::Str(lj.to_string()));
    let mut merged = replaced.clone();
    merged.info.insert("AUTOPARA_CALCULATOR_KWARGS".into(), Value::Str(r#"{"rc": 4.0}"#.into()));
    let mut merged_default = cu_cell();
    merged_default.info.insert("AUTOPARA_CALCULATOR_KWARGS".into(), Value::Str(r#"{"asap_cutoff": true}"#.into()));
    let mut bad = cu_cell();
    bad.info.insert("AUTOPARA_CALCULATOR_KWARGS".into(), Value::Str(r#"{"sigma": -1}"#.into()));
    let mut wfl = cu_cell();
    wfl.info.insert("WFL_CALCULATOR_KWARGS".into(), Value::Str("{}".into()));

    let res = run(json!({"calculator": {"type": "emt"}}), vec![replaced, merged, merged_default, cu_cell(), bad, wfl]);
    let e = |r: &ItemResult| only(r).info_f64("EMT_energy").unwrap();
    // The prefix follows the op's calculator, as in wfl.
    assert_eq!(e(&res[0]), direct(lj.clone(), &cu_cell(), Properties::ALL).energy);
    let mut lj_rc = lj.clone();
    lj_rc["rc"] = json!(4.0);
    assert_eq!(e(&res[1]), direct(lj_rc, &cu_cell(), Properties::ALL).energy);
    assert_eq!(e(&res[2]), direct(json!({"type": "emt", "asap_cutoff": true}), &cu_cell(), Properties::ALL).energy);
    assert_eq!(e(&res[3]), direct(json!({"type": "emt"}), &cu_cell(), Properties::ALL).energy);
    let why = &res[4].as_ref().unwrap_err().message;
    assert!(why.contains("AUTOPARA_CALCULATOR_KWARGS") && why.contains("sigma"), "{why}");
    let why = &res[5].as_ref().unwrap_err().message;
    assert!(why.contains("WFL_CALCULATOR_KWARGS"), "{why}");
}

#[test]
fn overrides_from_input_files_run_no_program_of_their_own() {
    let marker = tempfile::tempdir().unwrap();
    let touched = marker.path().join("touched");
    let command = format!("touch {} && cp input.xyz output.xyz", touched.display());
    let external = json!({"type": "external", "command": command});
    let mut replaced = cu_cell();
    replaced.info.insert("AUTOPARA_CALCULATOR".into(), Value::Str(external.to_string()));
    let mut merged = cu_cell();
    merged.info.insert("AUTOPARA_CALCULATOR_KWARGS".into(), Value::Str(json!({"command": command}).to_string()));
    merged.info.insert("energy".into(), Value::Float(-2.0));
    // Under an LJ run it is refused; the config is failed, nothing runs.
    let res = run(json!({"calculator": {"type": "lennard_jones"}}), vec![replaced]);
    let why = &res[0].as_ref().unwrap_err().message;
    assert!(why.contains("AUTOPARA_CALCULATOR") && why.contains("would run") && why.contains("touch"), "{why}");
    assert!(!touched.exists(), "an override from an input file ran its command");
    // Under a run of that same command, a config may change its other fields.
    let own = json!({"type": "external", "command": command, "name": "Own"});
    let res = run(json!({"calculator": own, "properties": ["energy"]}), vec![merged]);
    assert_eq!(only(&res[0]).info_f64("Own_energy"), Some(-2.0));
    let mut other = cu_cell();
    other.info.insert("AUTOPARA_CALCULATOR_KWARGS".into(), Value::Str(r#"{"command": "true"}"#.into()));
    let res = run(json!({"calculator": own, "properties": ["energy"]}), vec![other]);
    assert!(res[0].as_ref().unwrap_err().message.contains("would run"));
}

#[test]
fn bad_arguments_name_the_field() {
    let (field, msg) = args_error(json!({"calculator": {"type": "emt"}, "output_prefix": ""}));
    assert_eq!(field, "output_prefix", "{msg}");
    let (field, msg) = args_error(json!({"calculator": {"type": "no_such_calculator"}}));
    assert!(field.starts_with("calculator") && msg.contains("no_such_calculator"), "{field}: {msg}");
    let (field, msg) = args_error(json!({"calculator": {"type": "emt", "cutoff": 3.0}}));
    assert!(field.starts_with("calculator") && msg.contains("cutoff"), "{field}: {msg}");
    let (field, msg) = args_error(json!({"calculator": {"type": "lennard_jones", "rc": -2.0}}));
    assert_eq!(field, "calculator.rc", "{msg}");
    let (field, _) = args_error(json!({"calculator": {"type": "lennard_jones", "rc": 0.0}}));
    assert_eq!(field, "calculator.rc");
    let (field, _) = args_error(json!({"calculator": {"type": "morse", "rcut1": 3.0, "rcut2": 2.0}}));
    assert_eq!(field, "calculator.rcut1");
    let (field, _) = args_error(json!({"calculator": {"type": "lennard_jones", "smooth": true, "ro": 5.0}}));
    assert_eq!(field, "calculator.ro");
    let (field, _) = args_error(json!({"calculator": {"type": "emt"}, "properties": ["stresses"]}));
    assert!(field.starts_with("properties"), "{field}");
    let (field, msg) = args_error(json!({"calculator": {"type": "emt"}, "colour": 1}));
    assert!(msg.contains("colour"), "{field}: {msg}");
    let (field, msg) = args_error(json!({"properties": ["energy"]}));
    assert!(msg.contains("calculator"), "{field}: {msg}");
}

#[test]
fn canonical_args_fill_defaults() {
    let op = Calculate::from_json(json!({"calculator": {"type": "lennard_jones", "sigma": 2.0}})).unwrap();
    let args = op.args();
    assert_eq!(args["calculator"]["rc"], json!(6.0));
    assert_eq!(args["calculator"]["ro"], json!(0.66 * 6.0));
    assert_eq!(args["properties"], json!(["energy", "forces", "stress"]));
    assert_eq!(args["output_prefix"], json!("_auto_"));
    assert_eq!(args["raise_calc_exceptions"], json!(false));
    // The canonical form parses back to the same op.
    assert_eq!(Calculate::from_json(args.clone()).unwrap().args(), args);
}
