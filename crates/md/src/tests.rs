//! Unit tests of the op's machinery, mostly with the test trap calculator
//! (physics against ASE lives in `tests/`).

use crate::Md;
use autopara_calculators as _; // links the calculators' registrations
use autopara_core::units::KB;
use autopara_core::{Atoms, Column, ItemOp, ItemResult, Operation, Value, WorkerContext};
use autopara_testkit::fixtures::items;
use rand::Rng;
use serde_json::{Value as Json, json};

fn cluster(n: usize, seed: u64) -> Atoms {
    let mut rng = autopara_core::rng::item_rng(seed, "test cluster", 0);
    let positions = (0..n).map(|_| std::array::from_fn(|_| rng.random_range(-1.0..1.0))).collect();
    let mut at = Atoms::new(vec![29; n], positions);
    at.info.insert("config_type".into(), Value::Str("cluster".into()));
    at
}

fn trap_args(extra: Json) -> Json {
    let mut a = json!({"calculator": {"type": "test_trap", "k": 1.0}, "steps": 300, "dt": 1.0});
    if let (Some(a), Some(e)) = (a.as_object_mut(), extra.as_object()) {
        a.extend(e.clone());
    }
    a
}

/// Runs the op over `configs` in chunks of the given sizes, one fresh worker context per chunk.
fn run_chunked(args: Json, configs: Vec<Atoms>, chunks: &[usize], seed: u64) -> Vec<ItemResult> {
    let op = Md::from_json(args).expect("valid args");
    let all = items(configs);
    let mut out = Vec::new();
    let mut start = 0;
    for (w, &c) in chunks.iter().enumerate() {
        let mut ctx = WorkerContext::new(w, seed, "md");
        out.extend(op.run_chunk(&all[start..start + c], &mut ctx));
        start += c;
    }
    assert_eq!(start, all.len());
    out
}

fn run_one(args: Json, at: Atoms) -> Result<Vec<Atoms>, String> {
    run_chunked(args, vec![at], &[1], 1).remove(0).map_err(|e| e.message)
}

fn arg_error(args: Json) -> (String, String) {
    match Md::from_json(args) {
        Err(autopara_core::Error::Args { field, message, .. }) => (field, message),
        other => panic!("expected an argument error, got {other:?}"),
    }
}

fn f(at: &Atoms, key: &str) -> f64 {
    at.info_f64(key).unwrap_or_else(|| panic!("missing info {key}"))
}

#[test]
fn registered_with_chunk_size() {
    let reg = autopara_core::find_op("md").expect("md registered");
    assert_eq!(reg.info.default_chunk_size, Md::INFO.default_chunk_size);
    assert!((reg.build)(trap_args(json!({}))).is_ok());
    let err = (reg.build)(trap_args(json!({"dt": 0.0}))).err().expect("dt 0 rejected").to_string();
    assert!(err.contains("dt"), "{err}");
}

#[test]
fn interval_one_gives_steps_plus_one_frames() {
    let traj = run_one(trap_args(json!({"temperature": 300.0})), cluster(8, 1)).unwrap();
    assert_eq!(traj.len(), 301);
    for (i, fr) in traj.iter().enumerate() {
        assert_eq!(fr.info["MD_step"].as_i64(), Some(i as i64));
        assert!((f(fr, "MD_time_fs") - i as f64).abs() < 1e-12);
        assert_eq!(fr.info["config_type"].as_str(), Some("cluster:MD"));
        assert!(fr.info.contains_key("last_op__md_energy"));
        assert_eq!(fr.arrays["last_op__md_forces"].rows(), 8);
        assert_eq!(fr.arrays["momenta"].rows(), 8);
        assert!(!fr.info.contains_key("MD_temperature_K"), "NVE has no target temperature");
    }
}

#[test]
fn stages_give_306_frames_with_stage_temperatures() {
    let temperature = json!([
        {"T_i": 100.0, "T_f": 500.0, "traj_frac": 0.5},
        {"T_i": 500.0, "T_f": 500.0, "traj_frac": 0.25},
        {"T_i": 500.0, "T_f": 300.0, "traj_frac": 0.25, "n_stages": 10},
    ]);
    let args = trap_args(json!({"temperature": temperature, "temperature_tau": 50.0}));
    let traj = run_one(args.clone(), cluster(8, 2)).unwrap();
    assert_eq!(traj.len(), 306);
    let md = Md::from_json(args).unwrap();
    let st = crate::stages(md.inner().args());
    let steps: Vec<u64> = st.iter().map(|s| s.steps).collect();
    // 10 ramp stages of 15 steps, one of 75, 10 of round(7.5) = 8 steps.
    assert_eq!(steps, [vec![15; 10], vec![75], vec![8; 10]].concat());
    assert_eq!(crate::frame_count(&st, 1), 306);
    // Frame k belongs to the stage that ran step k (step 0: the first stage).
    assert_eq!(f(&traj[0], "MD_temperature_K"), 100.0);
    assert_eq!(f(&traj[15], "MD_temperature_K"), 100.0);
    assert!((f(&traj[16], "MD_temperature_K") - (100.0 + 400.0 / 9.0)).abs() < 1e-9);
    assert_eq!(f(&traj[150], "MD_temperature_K"), 500.0);
    assert_eq!(f(&traj[305], "MD_temperature_K"), 300.0);
    assert_eq!(traj[305].info["MD_step"].as_i64(), Some(305));
}

#[test]
fn final_frame_appended_when_not_sampled() {
    let traj = run_one(trap_args(json!({"steps": 20, "traj_step_interval": 7})), cluster(4, 3)).unwrap();
    let steps: Vec<i64> = traj.iter().filter_map(|fr| fr.info["MD_step"].as_i64()).collect();
    assert_eq!(steps, vec![0, 7, 14, 20]);
    assert!((f(&traj[3], "MD_time_fs") - 20.0).abs() < 1e-12);
    // The final frame carries complete results too.
    assert!(traj[3].arrays.contains_key("last_op__md_energies"));
    let traj = run_one(trap_args(json!({"steps": 21, "traj_step_interval": 7})), cluster(4, 3)).unwrap();
    assert_eq!(traj.len(), 4);
}

#[test]
fn bad_arguments_name_their_field() {
    assert_eq!(arg_error(trap_args(json!({"integrator": "Nose"}))).0, "integrator");
    assert_eq!(arg_error(trap_args(json!({"dt": -1.0}))).0, "dt");
    assert_eq!(arg_error(trap_args(json!({"steps": 0}))).0, "steps");
    assert_eq!(arg_error(trap_args(json!({"steps": -3}))).0, "steps");
    assert_eq!(arg_error(trap_args(json!({"temperature": "hot"}))).0, "temperature");
    assert_eq!(arg_error(trap_args(json!({"temperature": [1.0, 2.0, 3.0, 4.0]}))).0, "temperature");
    assert_eq!(arg_error(trap_args(json!({"temperature": [300.0, 500.0]}))).0, "temperature", "ramp needs a tau");
    let (field, _) = arg_error(trap_args(json!({
        "temperature": [{"T_i": 1.0, "T_f": 2.0, "traj_frac": -0.5}], "temperature_tau": 10.0
    })));
    assert_eq!(field, "temperature[0].traj_frac");
    assert_eq!(arg_error(trap_args(json!({"temperature_tau": 10.0}))).0, "temperature_tau");
    let (field, message) = arg_error(trap_args(json!({
        "integrator": "Langevin", "temperature": 300.0, "temperature_tau": 10.0, "pressure": 1.0
    })));
    assert_eq!(field, "pressure");
    assert!(message.contains("Langevin"), "{message}");
    // LangevinBAOAB's barostat is not implemented: pressure is refused with or without a thermostat.
    for thermostat in [json!({"temperature": 300.0, "temperature_tau": 10.0}), json!({})] {
        let mut extra = json!({"integrator": "LangevinBAOAB", "pressure": 1.0});
        extra.as_object_mut().unwrap().extend(thermostat.as_object().unwrap().clone());
        let (field, message) = arg_error(trap_args(extra));
        assert_eq!(field, "pressure");
        assert!(message.contains("LangevinBAOAB"), "{message}");
    }
    let without_pressure = json!({"integrator": "LangevinBAOAB", "temperature": 300.0, "temperature_tau": 10.0});
    assert!(Md::from_json(trap_args(without_pressure)).is_ok(), "BAOAB itself is accepted");
    let (field, message) = arg_error(trap_args(json!({"pressure": 1.0})));
    assert_eq!(
        (field.as_str(), message.as_str()),
        ("pressure", "integrator Berendsen got pressure but no temperature_tau")
    );
    let (field, _) = arg_error(trap_args(json!({
        "temperature": 300.0, "temperature_tau": 10.0, "pressure": 1.0, "hydrostatic": false
    })));
    assert_eq!(field, "hydrostatic");
    assert_eq!(
        arg_error(trap_args(json!({"pressure": ["uniform", 2.0, 1.0], "temperature": 1.0, "temperature_tau": 1.0}))).0,
        "pressure"
    );
    assert_eq!(arg_error(trap_args(json!({"pressure": ["gaussian", 1.0]}))).0, "pressure");
    assert_eq!(arg_error(trap_args(json!({"traj_step_interval": 0}))).0, "traj_step_interval");
    assert_eq!(arg_error(trap_args(json!({"update_config_type": "prepend"}))).0, "update_config_type");
    assert_eq!(arg_error(trap_args(json!({"results_prefix": ""}))).0, "results_prefix");
    assert_eq!(
        arg_error(trap_args(json!({"abort_check": {"type": "collision", "collision_radius": -1.0}}))).0,
        "abort_check.collision_radius"
    );
    let (_, message) = arg_error(trap_args(json!({"temprature": 300.0})));
    assert!(message.contains("temprature"), "{message}");
}

#[test]
fn wfl_argument_forms_parse_and_round_trip() {
    let args = trap_args(json!({
        "integrator": "LangevinBAOAB", "temperature": [300, 600, 4], "temperature_tau": 20,
        "update_config_type": false, "abort_check": {"type": "low_energy", "delta_E_per_atom": 0.5},
    }));
    let md = Md::from_json(args).unwrap();
    let canonical = Operation::args(&md);
    let again = Md::from_json(canonical.clone()).unwrap();
    assert_eq!(Operation::args(&again), canonical);
    assert_eq!(canonical["temperature"], json!([300.0, 600.0, 4]));
    assert_eq!(canonical["update_config_type"], json!(false));
    assert_eq!(canonical["results_prefix"], json!("last_op__md_"));
    assert_eq!(canonical["traj_step_interval"], json!(1));
    let p = Md::from_json(trap_args(json!({
        "pressure": ["normal_positive", 1.0, 0.5], "temperature": 300.0, "temperature_tau": 10.0
    })))
    .unwrap();
    assert_eq!(Operation::args(&p)["pressure"], json!(["normal_positive", 1.0, 0.5]));
}

#[test]
fn initial_velocities_have_exact_temperature_zero_momentum_and_use_masses() {
    let mut at = cluster(10, 4);
    let masses: Vec<f64> = (0..10).map(|i| 1.0 + 7.0 * i as f64).collect();
    at.arrays.insert("masses".into(), Column::scalars(masses.clone()));
    let traj = run_one(trap_args(json!({"steps": 1, "temperature": 450.0})), at).unwrap();
    let p = traj[0].array_vec3("momenta").unwrap();
    let ptot: [f64; 3] = std::array::from_fn(|k| p.iter().map(|v| v[k]).sum());
    assert!(ptot.iter().all(|x| x.abs() < 1e-12), "{ptot:?}");
    let ekin: f64 = p.iter().zip(&masses).map(|(v, m)| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) / (2.0 * m)).sum();
    let t = 2.0 * ekin / (3.0 * 10.0 * KB);
    assert!((t - 450.0).abs() < 1e-9, "{t}");
    assert!((f(&traj[0], "MD_current_temperature") - 450.0).abs() < 1e-9);
    assert_eq!(traj[0].arrays["masses"].rows(), 10, "the masses column is kept");
}

#[test]
fn momenta_come_from_the_config_without_temperature() {
    let mut at = cluster(3, 5);
    let p0 = vec![[0.1, 0.0, 0.0], [0.0, -0.2, 0.0], [0.0, 0.0, 0.3]];
    at.arrays.insert("momenta".into(), Column::vec3(&p0));
    let traj = run_one(trap_args(json!({"steps": 1})), at.clone()).unwrap();
    assert_eq!(traj[0].array_vec3("momenta").unwrap(), p0);
    at.arrays.shift_remove("momenta");
    let traj = run_one(trap_args(json!({"steps": 1})), at).unwrap();
    assert_eq!(traj[0].array_vec3("momenta").unwrap(), vec![[0.0; 3]; 3]);
    let mut bad = cluster(3, 5);
    bad.arrays.insert("momenta".into(), Column::scalars(vec![1.0; 3]));
    let err = run_one(trap_args(json!({"steps": 1})), bad).unwrap_err();
    assert!(err.starts_with("momenta:"), "{err}");
}

#[test]
fn same_seed_same_trajectories_for_any_chunking() {
    let configs: Vec<Atoms> = (0..6).map(|i| cluster(6, 10 + i)).collect();
    let args = trap_args(json!({
        "steps": 40, "integrator": "Langevin", "temperature": 300.0, "temperature_tau": 20.0,
        "traj_step_interval": 10
    }));
    let a = run_chunked(args.clone(), configs.clone(), &[6], 7);
    let b = run_chunked(args.clone(), configs.clone(), &[1, 1, 1, 1, 1, 1], 7);
    let c = run_chunked(args.clone(), configs.clone(), &[2, 4], 7);
    assert_eq!(a, b);
    assert_eq!(a, c);
    let d = run_chunked(args, configs, &[6], 8);
    assert_ne!(a, d, "another seed gives other trajectories");
    // Items with identical configs still get different velocities.
    let same = vec![cluster(6, 1), cluster(6, 1)];
    let r = run_chunked(trap_args(json!({"steps": 1, "temperature": 300.0})), same, &[2], 7);
    let p0 = r[0].as_ref().unwrap()[0].array_vec3("momenta");
    let p1 = r[1].as_ref().unwrap()[0].array_vec3("momenta");
    assert_ne!(p0, p1);
}

#[test]
fn per_config_overrides() {
    let mut hot = cluster(5, 6);
    hot.info.insert("WFL_MD_KWARGS".into(), Value::Str(r#"{"temperature": 900.0, "traj_step_interval": 5}"#.into()));
    let mut fixed = cluster(5, 6);
    fixed.info.insert("WFL_MD_KWARGS".into(), Value::Str(r#"{"steps": 3}"#.into()));
    let mut both = cluster(5, 6);
    both.info.insert("WFL_MD_KWARGS".into(), Value::Str("{}".into()));
    both.info.insert("AUTOPARA_MD_ARGS".into(), Value::Str("{}".into()));
    let mut typo = cluster(5, 6);
    typo.info.insert("AUTOPARA_MD_ARGS".into(), Value::Str(r#"{"temperature": "warm"}"#.into()));
    let r = run_chunked(
        trap_args(json!({"steps": 10, "temperature": 300.0})),
        vec![cluster(5, 6), hot, fixed, both, typo],
        &[5],
        3,
    );
    let plain = r[0].as_ref().unwrap();
    assert_eq!(plain.len(), 11);
    assert!((f(&plain[0], "MD_current_temperature") - 300.0).abs() < 1e-9);
    let hot = r[1].as_ref().unwrap();
    assert_eq!(hot.len(), 3);
    assert!((f(&hot[0], "MD_current_temperature") - 900.0).abs() < 1e-9);
    let msg = |i: usize| r[i].as_ref().unwrap_err().message.clone();
    assert!(msg(2).contains("WFL_MD_KWARGS") && msg(2).contains("steps"), "{}", msg(2));
    assert!(msg(3).contains("one key"), "{}", msg(3));
    assert!(msg(4).contains("AUTOPARA_MD_ARGS") && msg(4).contains("temperature"), "{}", msg(4));
}

#[test]
fn blow_up_fails_the_item_and_others_go_on() {
    let calm = cluster(4, 7);
    let mut wild = cluster(4, 7);
    wild.arrays.insert("momenta".into(), Column::vec3(&[[500.0, 0.0, 0.0], [0.0; 3], [0.0; 3], [0.0; 3]]));
    let args = json!({"calculator": {"type": "test_trap", "k": 1.0, "nan_above": 5.0}, "steps": 50, "dt": 1.0});
    let r = run_chunked(args, vec![calm, wild], &[2], 1);
    assert_eq!(r[0].as_ref().unwrap().len(), 51);
    let msg = &r[1].as_ref().unwrap_err().message;
    assert!(msg.contains("blew up") && msg.contains("energy"), "{msg}");
}

#[test]
fn non_finite_positions_fail_the_item_and_others_go_on() {
    // The wild item starts with an atom past x = 5, where the calculator adds a
    // finite force of 1e300 eV/Å on it. With masses of 1e-12 amu the first drift
    // moves it by about dt² F / m (3/4 of that after Berendsen removes the mean momentum) = (0.098 ASE time)² 1e300 / 1e-12 > f64::MAX: the
    // positions overflow to inf while energy, forces and momenta are still finite.
    // Every integrator checks its positions (velocity Verlet, Berendsen and BAOAB
    // in their drift, Langevin in its own position update).
    use crate::testcalc::HUGE_FORCE;
    let dt = autopara_core::units::FS;
    let tiny = 1e-12;
    assert!(HUGE_FORCE.is_finite() && 0.5 * dt * dt * HUGE_FORCE / tiny == f64::INFINITY);
    let mut wild = cluster(4, 11);
    wild.positions[2][0] = 6.0;
    wild.arrays.insert("masses".into(), Column::scalars(vec![tiny; 4]));
    let calc = json!({"type": "test_trap", "k": 1.0, "huge_force_above": 5.0});
    let thermostats = [
        json!({}),
        json!({"integrator": "Berendsen", "temperature": 300.0, "temperature_tau": 20.0}),
        json!({"integrator": "Langevin", "temperature": 300.0, "temperature_tau": 20.0}),
        json!({"integrator": "LangevinBAOAB", "temperature": 300.0, "temperature_tau": 20.0}),
    ];
    for thermostat in thermostats {
        let mut args = json!({"calculator": calc, "steps": 40, "dt": 1.0});
        args.as_object_mut().unwrap().extend(thermostat.as_object().unwrap().clone());
        let r = run_chunked(args, vec![cluster(4, 12), wild.clone(), cluster(4, 13)], &[3], 1);
        let msg = &r[1].as_ref().unwrap_err().message;
        assert_eq!(msg, "trajectory blew up at MD step 1: non-finite positions", "{thermostat}");
        for i in [0, 2] {
            let traj = r[i].as_ref().unwrap_or_else(|e| panic!("{thermostat}: item {i} failed: {e:?}"));
            assert_eq!(traj.len(), 41, "{thermostat}");
            assert!(traj.iter().all(|fr| !fr.info.contains_key(crate::KEY_STOPPED)), "{thermostat}");
            assert!(traj[40].positions.iter().flatten().all(|x| x.is_finite() && x.abs() < 5.0), "{thermostat}");
        }
    }
}

#[test]
fn calculator_failure_keeps_frames_or_fails() {
    let mut at = cluster(4, 8);
    at.arrays.insert("momenta".into(), Column::vec3(&[[200.0, 0.0, 0.0], [0.0; 3], [0.0; 3], [0.0; 3]]));
    let calc = json!({"type": "test_trap", "k": 1.0, "fail_above": 5.0});
    let kept = run_one(json!({"calculator": calc, "steps": 50, "dt": 1.0}), at.clone()).unwrap();
    assert!(kept.len() > 1 && kept.len() < 51, "{}", kept.len());
    let why = kept.last().unwrap().info[crate::KEY_STOPPED].as_str().unwrap().to_string();
    assert!(why.contains("calculator failed"), "{why}");
    let err = run_one(json!({"calculator": calc, "steps": 50, "dt": 1.0, "skip_failures": false}), at).unwrap_err();
    assert!(err.contains("calculator failed at MD step"), "{err}");
}

#[test]
fn abort_checks_stop_early() {
    // Two atoms released at x = ±1 meet at the origin after a quarter period.
    let mut pair = Atoms::new(vec![1, 1], vec![[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]);
    pair.info.insert("config_type".into(), Value::Str("pair".into()));
    let collision = json!({"type": "collision", "collision_radius": 0.5, "n_failed_steps": 2});
    let traj = run_one(trap_args(json!({"steps": 200, "abort_check": collision})), pair.clone()).unwrap();
    assert!(traj.len() < 201);
    let last = traj.last().unwrap();
    let d = (last.positions[1][0] - last.positions[0][0]).abs();
    assert!(d < 0.5, "stopped with the atoms {d} apart");
    let prev = &traj[traj.len() - 2];
    assert!((prev.positions[1][0] - prev.positions[0][0]).abs() < 0.5, "two failing frames in a row");
    assert!(last.info[crate::KEY_STOPPED].as_str().unwrap().contains("collision"));
    let err = run_one(trap_args(json!({"steps": 200, "abort_check": collision, "skip_failures": false})), pair.clone())
        .unwrap_err();
    assert!(err.contains("abort check collision"), "{err}");
    // Released from rest, the potential energy falls as the atoms speed up.
    let low = json!({"type": "low_energy", "delta_E_per_atom": 0.1});
    let traj = run_one(trap_args(json!({"steps": 200, "abort_check": low})), pair).unwrap();
    let e = |fr: &Atoms| f(fr, "last_op__md_energy") / 2.0;
    let n = traj.len();
    assert!(e(&traj[0]) - e(&traj[n - 1]) > 0.1);
    assert!(e(&traj[0]) - e(&traj[n - 2]) <= 0.1);
}

#[test]
fn results_replace_older_last_op_keys() {
    let mut at = cluster(3, 9);
    at.info.insert("last_op__optimize_energy".into(), Value::Float(1.0));
    at.info.insert("REF_energy".into(), Value::Float(2.0));
    let traj = run_one(trap_args(json!({"steps": 2, "update_config_type": "overwrite"})), at).unwrap();
    for fr in &traj {
        assert!(!fr.info.contains_key("last_op__optimize_energy"));
        assert_eq!(f(fr, "REF_energy"), 2.0);
        assert_eq!(fr.info["config_type"].as_str(), Some("MD"));
        let e: f64 = fr.positions.iter().map(|p| 0.5 * (p[0] * p[0] + p[1] * p[1] + p[2] * p[2])).sum();
        assert!((f(fr, "last_op__md_energy") - e).abs() < 1e-12);
    }
}

#[test]
fn a_trajectory_continues_from_its_last_frame_read_back_from_extxyz() {
    // Plain velocity Verlet (no temperature: the config's momenta are used as
    // they are) on 32 rattled EMT Cu atoms: 100 steps in one run must end exactly
    // where 50 steps, written to extxyz, read back, and 50 more steps end. Floats
    // are written in their shortest round-trip form, the continuation's first
    // forces are computed from bitwise the same positions, and nothing else
    // carries over between steps, so the equality is bitwise.
    let mut at = autopara_testkit::fixtures::fcc(29, 3.61, [2; 3]);
    let mut rng = autopara_core::rng::item_rng(5, "continuation", 0);
    for p in &mut at.positions {
        for x in p.iter_mut() {
            *x += rng.random_range(-0.05..0.05);
        }
    }
    let p0: Vec<[f64; 3]> = (0..at.len()).map(|_| std::array::from_fn(|_| rng.random_range(-1.0..1.0))).collect();
    at.arrays.insert("momenta".into(), Column::vec3(&p0));
    let args = |steps: u64| json!({"calculator": {"type": "emt"}, "steps": steps, "dt": 1.0});
    let whole = run_one(args(100), at.clone()).unwrap();
    let first = run_one(args(50), at).unwrap();
    assert_eq!((whole.len(), first.len()), (101, 51));
    let text = autopara_core::extxyz::to_string(&first).unwrap();
    let last = autopara_core::extxyz::read_str(&text).unwrap().pop().unwrap();
    assert_eq!(last.info["MD_step"].as_i64(), Some(50));
    let second = run_one(args(50), last).unwrap();
    let (end, cont) = (&whole[100], &second[50]);
    assert_eq!(cont.positions, end.positions);
    assert_eq!(cont.array_vec3("momenta"), end.array_vec3("momenta"));
    // Not trivially equal: the atoms moved and the momenta changed in the second half.
    let mid = &whole[50];
    let moved = end.positions.iter().zip(&mid.positions).map(|(a, b)| (a[0] - b[0]).abs()).fold(0.0, f64::max);
    assert!(moved > 1e-2, "{moved}");
    assert_ne!(end.array_vec3("momenta"), mid.array_vec3("momenta"));
    assert_ne!(mid.array_vec3("momenta").unwrap(), p0);
}

#[test]
fn physically_senseless_arguments_are_refused_naming_the_field() {
    let cases = [
        (json!({"dt": 1000.0}), "dt", "beyond any stable time step"),
        (json!({"dt": 1e300}), "dt", "beyond any stable time step"),
        (json!({"temperature": 1e30}), "temperature", "above any sensible temperature"),
        (
            json!({"temperature": [{"T_i": 300.0, "T_f": 1e9, "traj_frac": 1.0}], "temperature_tau": 100.0}),
            "temperature[0].T_f",
            "above any sensible temperature",
        ),
        (json!({"temperature": 300.0, "temperature_tau": 0.5}), "temperature_tau", "shorter than the time step"),
        (
            json!({"temperature": 300.0, "temperature_tau": 100.0, "pressure": 1e9}),
            "pressure",
            "beyond any sensible pressure",
        ),
        (
            json!({"temperature": 300.0, "temperature_tau": 100.0, "pressure": ["uniform", 0.0, 1e12]}),
            "pressure",
            "beyond any sensible pressure",
        ),
    ];
    for (extra, field, what) in cases {
        let (f, m) = arg_error(trap_args(extra.clone()));
        assert_eq!(f, field, "{extra}: {m}");
        assert!(m.contains(what), "{extra}: {m}");
    }
    // The bounds themselves, and Langevin's friction faster than a step, are fine.
    for ok in [
        json!({"dt": 100.0}),
        json!({"temperature": 1e6}),
        json!({"integrator": "Langevin", "temperature": 300.0, "temperature_tau": 0.5}),
        json!({"temperature": 300.0, "temperature_tau": 1.0, "pressure": -1e5}),
    ] {
        Md::from_json(trap_args(ok.clone())).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

/// Two Lennard-Jones atoms 0.05 Å apart repel with 1e31 eV/Å: the first step
/// flings them 1e30 Å apart, where they drift on with finite numbers. The item
/// fails at that step instead of giving a trajectory at 1e30 Å; a sane item
/// beside it is unaffected.
#[test]
fn a_trajectory_flung_out_of_any_sensible_range_fails_its_item() {
    let lj = json!({"calculator": {"type": "lennard_jones", "sigma": 3.4, "epsilon": 0.0104, "rc": 8.0},
                    "steps": 20, "dt": 1.0});
    let crushed = Atoms::new(vec![18, 18], vec![[0.0; 3], [0.05, 0.0, 0.0]]);
    let sane = Atoms::new(vec![18, 18], vec![[0.0; 3], [3.8, 0.0, 0.0]]);
    let r = run_chunked(lj, vec![crushed, sane], &[2], 1);
    let msg = &r[0].as_ref().expect_err("the crushed dimer must fail").message;
    assert!(msg.starts_with("trajectory blew up at MD step 1: kinetic temperature"), "{msg}");
    assert!(msg.contains("above any sensible range"), "{msg}");
    let traj = r[1].as_ref().expect("the sane dimer runs");
    assert_eq!(traj.len(), 21);
    assert!(traj.iter().all(|fr| fr.positions.iter().flatten().all(|x| x.abs() < 10.0)));
}

#[test]
fn wfl_logger_and_verbose_arguments_are_ignored_without_changing_the_key() {
    let plain = Md::from_json(trap_args(json!({"temperature": 300.0}))).expect("plain");
    let wfl = Md::from_json(trap_args(json!({"temperature": 300.0, "logger_interval": 10,
        "logger_kwargs": {"logfile": "md.log"}, "verbose": true})))
    .expect("wfl's logger and verbose arguments are accepted");
    assert_eq!(Operation::args(&plain), Operation::args(&wfl));
    let traj =
        |op: &dyn Operation| op.run_chunk(&items(vec![cluster(4, 3)]), &mut WorkerContext::new(0, 5, "md")).remove(0);
    assert_eq!(traj(&plain).unwrap(), traj(&wfl).unwrap());
}

/// Arguments that size memory: a trajectory that would keep more frames than
/// fit in memory fails its item before the first step (it ran until the
/// allocation failed and aborted the process);
/// millions of ramp sub-stages are refused naming the field (they were
/// allocated up front: an abort); stages whose steps add up past `u64::MAX`
/// no longer overflow (a panic).
#[test]
fn arguments_that_size_memory_are_bounded() {
    let args = trap_args(json!({"steps": 100_000_000_000u64}));
    let r = run_chunked(args, vec![cluster(4, 1)], &[1], 1);
    let msg = &r[0].as_ref().expect_err("1e11 frames cannot be kept").message;
    assert!(msg.starts_with("the trajectory would keep 100000000001 frames of 4 atoms in memory"), "{msg}");
    assert!(msg.contains("a larger traj_step_interval"), "{msg}");

    let ramp = json!({"temperature": [100.0, 300.0, 100_000_000_000_000u64], "temperature_tau": 100.0});
    let (field, message) = arg_error(trap_args(ramp));
    assert_eq!(field, "temperature");
    assert!(message.contains("at most 1000000"), "{message}");

    let over = json!({"steps": u64::MAX, "temperature_tau": 100.0, "traj_step_interval": u64::MAX,
                      "temperature": [{"T_i": 100.0, "T_f": 100.0, "traj_frac": 0.9},
                                      {"T_i": 100.0, "T_f": 100.0, "traj_frac": 0.9}]});
    Md::from_json(trap_args(over.clone())).unwrap();
    let args: crate::args::MdArgs = serde_json::from_value(trap_args(over)).unwrap();
    let stages = crate::stages::stages(&args);
    assert_eq!(crate::stages::total_steps(&stages), u64::MAX);
    assert_eq!(crate::stages::frame_count(&stages, u64::MAX), 2);
}
