"""Native ops from Python: same bytes, cache and lock as `autopara run`; errors
are AutoparaError subclasses with the CLI's messages; the GIL is released."""

import json
import os
import subprocess
import sys
import time

import ase.io
import pytest

import autopara
from autopara import (
    ArgsError,
    AutoparaError,
    CacheError,
    ConfigSet,
    InputError,
    OutputError,
    OutputSpec,
    _native,
    calculate,
    md,
    optimize,
)

from test_convert import assert_same_atoms

EMT = {"type": "emt"}


def cli_error(cli, *args):
    proc = cli(*args, check=False)
    assert proc.returncode != 0
    line = [l for l in proc.stderr.splitlines() if l.startswith("autopara: error: ")][-1]
    return line[len("autopara: error: "):]


def test_errors_carry_the_cli_message(tmp_path, cli, cu_file):
    missing = tmp_path / "missing.xyz"
    with pytest.raises(InputError) as e:
        calculate(ConfigSet(str(missing)), OutputSpec(tmp_path / "o.xyz"), EMT)
    assert str(e.value) == cli_error(cli, "run", "calculate", "-i", missing, "-o", tmp_path / "o.xyz", "--args",
                                     json.dumps({"calculator": EMT}))
    bad = {"type": "lennard_jones", "sigma": -1.0}
    with pytest.raises(ArgsError) as e:
        calculate(ConfigSet(cu_file), OutputSpec(tmp_path / "o.xyz"), bad)
    assert str(e.value) == cli_error(cli, "run", "calculate", "-i", cu_file, "-o", tmp_path / "o.xyz", "--args",
                                     json.dumps({"calculator": bad}))
    assert isinstance(e.value, ValueError) and isinstance(e.value, AutoparaError)
    with pytest.raises(ArgsError, match="unknown variant `no_such_calculator`"):
        calculate(ConfigSet(cu_file), OutputSpec(tmp_path / "o.xyz"), "no_such_calculator")


def test_no_panic_crosses_into_python():
    with pytest.raises(AutoparaError, match="internal error"):
        _native._guard_self_test()


def run_both(cli, tmp_path, op, py_call, args, seed, inputs):
    """Runs `op` from Python and from the CLI into two files; returns their bytes."""
    py_out, cli_out = tmp_path / f"py_{op}.xyz", tmp_path / f"cli_{op}.xyz"
    result = py_call(py_out)
    cli("run", op, "-i", inputs, "-o", cli_out, "--seed", seed, "--args", json.dumps(args), "-q")
    return result, py_out.read_bytes(), cli_out.read_bytes()


def test_same_bytes_as_the_cli_and_what_ase_reads(tmp_path, cli, cu_file):
    inputs = ConfigSet(cu_file)
    res, py, ref = run_both(cli, tmp_path, "calculate", lambda o: calculate(inputs, OutputSpec(o), "emt"),
                            {"calculator": EMT}, 0, cu_file)
    assert py == ref and len(py) > 0
    expected = ase.io.read(tmp_path / "py_calculate.xyz", ":")
    got = list(res)
    assert len(got) == len(expected) == 6
    for g, e in zip(got, expected):
        assert_same_atoms(g, e)
    args = {"calculator": EMT, "steps": 20, "dt": 1.0, "temperature": 300, "temperature_tau": 50,
            "integrator": "Langevin", "traj_step_interval": 10}
    _, py, ref = run_both(
        cli, tmp_path, "md",
        lambda o: md(inputs, OutputSpec(o), EMT, steps=20, dt=1.0, temperature=300, temperature_tau=50,
                     integrator="Langevin", traj_step_interval=10, autopara_info={"seed": 11}),
        args, 11, cu_file)
    assert py == ref
    _, py, ref = run_both(cli, tmp_path, "minim",
                          lambda o: optimize(inputs, OutputSpec(o), EMT, fmax=0.05, steps=30),
                          {"calculator": EMT, "fmax": 0.05, "steps": 30}, 0, cu_file)
    assert py == ref


def test_reruns_reuse_or_refuse_as_the_cli(tmp_path, cli, cu_file, capfd):
    out = tmp_path / "out.xyz"
    args = {"calculator": EMT, "output_prefix": "x_"}
    cli("run", "calculate", "-i", cu_file, "-o", out, "--args", json.dumps(args), "-q")
    before = out.stat().st_mtime_ns
    capfd.readouterr()
    calculate(ConfigSet(cu_file), OutputSpec(out), EMT, output_prefix="x_")
    assert "reusing" in capfd.readouterr().err
    assert out.stat().st_mtime_ns == before
    with pytest.raises(CacheError) as e:
        calculate(ConfigSet(cu_file), OutputSpec(out), EMT, output_prefix="y_")
    assert str(e.value) == cli_error(cli, "run", "calculate", "-i", cu_file, "-o", out, "--args",
                                     json.dumps({"calculator": EMT, "output_prefix": "y_"}))
    assert 'args.output_prefix: "x_" -> "y_"' in str(e.value)
    calculate(ConfigSet(cu_file), OutputSpec(out, overwrite=True), EMT, output_prefix="y_")
    # the CLI now reuses what Python wrote
    proc = cli("run", "calculate", "-i", cu_file, "-o", out, "--args",
               json.dumps({"calculator": EMT, "output_prefix": "y_"}))
    assert "reusing" in proc.stderr


def test_python_and_cli_share_the_lock(tmp_path, cli, cu_file):
    out = tmp_path / "md.xyz"
    # Few frames kept: a trajectory of every step would be refused before it starts.
    args = {"calculator": EMT, "steps": 1000000, "dt": 1.0, "traj_step_interval": 1000000}
    proc = subprocess.Popen([str(_cli_binary()), "run", "md", "-i", str(cu_file), "-o", str(out),
                             "--workers", "1", "-q", "--args", json.dumps(args)])
    try:
        lock = tmp_path / ".md.xyz.autopara-lock"
        deadline = time.time() + 120
        while not (lock.exists() and lock.read_text().strip()) and time.time() < deadline:
            time.sleep(0.05)
        with pytest.raises(OutputError, match="lock"):
            md(ConfigSet(cu_file), OutputSpec(out), EMT, steps=1000000, dt=1.0, traj_step_interval=1000000)
    finally:
        proc.kill()
        proc.wait()


def _cli_binary():
    from conftest import cli_path

    return cli_path()


GIL_SCRIPT = """
import sys, threading, time
from pathlib import Path
from autopara import ConfigSet, OutputSpec, calculate
flag, script, inputs = map(Path, sys.argv[1:])
errors = []
def run():
    try:
        calculate(ConfigSet(str(inputs)), OutputSpec(), {"type": "external", "command": str(script)},
                  autopara_info={"num_python_subprocesses": 1})
    except Exception as exc:
        errors.append(exc)
t = threading.Thread(target=run)
t.start()
time.sleep(0.2)
flag.touch()  # needs the GIL while the op waits for this file
t.join()
assert not errors, errors
"""


def test_gil_is_released_while_an_op_runs(tmp_path, cu_file):
    """The op's external calculator waits for a file that only the calling
    interpreter's main thread creates: with the GIL held during the op, that
    interpreter would deadlock (here: time out)."""
    flag = tmp_path / "go"
    script = tmp_path / "calc.sh"
    script.write_text(f"#!/bin/sh\nwhile [ ! -e {flag} ]; do sleep 0.01; done\nexit 1\n")
    script.chmod(0o755)
    driver = tmp_path / "driver.py"
    driver.write_text(GIL_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(driver), str(flag), str(script), str(cu_file)])
    try:
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
        proc.wait()


def test_wfl_environment_variable(tmp_path, cu_file, capfd, monkeypatch):
    monkeypatch.delenv("AUTOPARA_NUM_WORKERS", raising=False)
    monkeypatch.setenv("WFL_NUM_PYTHON_SUBPROCESSES", "3")
    calculate(ConfigSet(cu_file), OutputSpec(), EMT)
    assert "with 3 workers" in capfd.readouterr().err
    monkeypatch.setenv("AUTOPARA_NUM_WORKERS", "2")
    calculate(ConfigSet(cu_file), OutputSpec(), EMT, autopara_info={"num_inputs_per_python_subprocess": 4})
    assert "with 2 workers, chunk size 4" in capfd.readouterr().err


def test_autopara_info_names():
    info = autopara.AutoparaInfo(num_python_subprocesses=2, num_inputs_per_python_subprocess=5, skip_failed=False)
    assert (info.workers, info.chunk_size, info.skip_failed) == (2, 5, False)
    with pytest.raises(ArgsError, match="unknown field 'bogus'"):
        autopara.AutoparaInfo(bogus=1)
    with pytest.raises(ValueError):
        autopara.AutoparaInfo(workers=1, num_python_subprocesses=2)


def test_memory_inputs_and_outputs(tmp_path):
    from conftest import rattled_cu

    configs = rattled_cu(3)
    nested = [configs[:2], [configs[2]]]
    out = calculate(ConfigSet(nested), OutputSpec(), "emt", output_prefix="m_")
    got = list(out)
    assert len(got) == 3 and all("m_energy" in a.info for a in got)
    groups = list(out.groups())
    assert len(groups) == 2 and len(list(groups[0])) == 2
    # in-memory trajectories group per input
    traj = md(configs[:2], OutputSpec(), "emt", steps=4, dt=1.0, traj_step_interval=2)
    assert [len(list(g)) for g in traj.groups()] == [3, 3]


def test_create_input_matches_wfl():
    from wfl.generate.buildcell import create_input as wfl_create_input

    kw = dict(z=[3, 13], vol_per_atom=[5, 10], bond_lengths=[2, 3], composition=[1, 2])
    assert autopara.create_input(**kw) == wfl_create_input(**kw)


def test_python_calculators_go_through_the_ase_workers(tmp_path, cu_file):
    """wfl's (constructor, args, kwargs) tuple and an ASE calculator class become
    the `ase` calculator spec (persistent ASE workers); without that calculator
    in the build the call says so before any work."""
    from ase.calculators.emt import EMT

    from autopara.ops import calculator_spec

    spec = {"type": "ase", "constructor": "ase.calculators.emt:EMT", "args": [], "kwargs": {}}
    if not os.environ.get("AUTOPARA_PYTHON"):
        spec["python"] = sys.executable  # the workers run in this interpreter
    if "ase" not in _native.calculator_names():
        with pytest.raises(ArgsError, match="needs autopara's 'ase' calculator"):
            calculate(ConfigSet(cu_file), OutputSpec(), (EMT, [], {}))
        return
    assert calculator_spec((EMT, None, None)) == spec == calculator_spec(EMT)
    got = list(calculate(ConfigSet(cu_file), OutputSpec(), (EMT, [], {}), output_prefix="x_"))
    for at, ref in zip(got, ase.io.read(cu_file, ":")):
        ref.calc = EMT()
        assert abs(at.info["x_energy"] - ref.get_potential_energy()) <= 1e-12 * abs(ref.get_potential_energy())


def test_remote_info_is_the_clis(tmp_path, cli, cu_file):
    """remote_info reaches the same queue backend as `autopara run --remote-info`
    (here: an entry for another op, refused with the CLI's message)."""
    remote = {"md": {"sys_name": "local", "job_name": "x"}}
    with pytest.raises(ArgsError) as e:
        calculate(ConfigSet(cu_file), OutputSpec(tmp_path / "o.xyz"), EMT, autopara_info={"remote_info": remote})
    assert "no entry for op label 'calculate'" in str(e.value)
    assert str(e.value) == cli_error(cli, "run", "calculate", "-i", cu_file, "-o", tmp_path / "o.xyz", "--args",
                                     json.dumps({"calculator": EMT}), "--remote-info", json.dumps(remote))
