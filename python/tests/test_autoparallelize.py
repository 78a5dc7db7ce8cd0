"""autoparallelize: the user's function in worker processes, with autopara's
ordering, cache, resume, per-item failures and random streams."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest

from autopara import (
    ArgsError,
    AutoparaInfo,
    CacheError,
    ConfigSet,
    ItemFailedError,
    OutputSpec,
    _native,
    autoparallelize,
)

from conftest import rattled_cu


def shift(atoms, dx, scale=1.0):
    out = []
    for at in atoms:
        at = at.copy()
        at.positions[:, 0] += dx * scale
        at.info["pid"] = os.getpid()
        out.append(at)
    return out


def fail_on(atoms, bad):
    out = []
    for at in atoms:
        if at.info["config_i"] in bad:
            raise ValueError(f"config {at.info['config_i']} is bad")
        out.append(at)
    return out


def die_on(atoms, bad):
    for at in atoms:
        if at.info["config_i"] in bad:
            os._exit(3)
    return atoms


def draw(atoms, _autopara_per_item_info):
    out = []
    for at, info in zip(atoms, _autopara_per_item_info):
        at.info["draw"] = float(info["rng"].normal())
        at.info["item_i"] = info["item_i"]
        out.append(at)
    return out


def frames(path):
    return ase.io.read(path, ":")


def test_outputs_in_input_order_across_workers(tmp_path, cu_file):
    out = autoparallelize(shift, ConfigSet(cu_file), OutputSpec(tmp_path / "out.xyz"), 0.5,
                          autopara_info={"num_python_subprocesses": 2, "num_inputs_per_python_subprocess": 1})
    got = frames(tmp_path / "out.xyz")
    inp = frames(cu_file)
    assert [a.info["config_i"] for a in got] == list(range(6))
    for a, b in zip(got, inp):
        np.testing.assert_allclose(a.positions[:, 0], b.positions[:, 0] + 0.5)
    assert len({a.info["pid"] for a in got}) == 2  # two worker processes did the work
    assert os.getpid() not in {a.info["pid"] for a in got}
    assert [a.info["config_i"] for a in out] == list(range(6))


def test_lambdas_closures_and_main_functions_are_pickled_by_value(tmp_path):
    configs = rattled_cu(4, size=1)
    k = 7

    def closure(atoms):
        for at in atoms:
            at.info["k"] = k
        return atoms

    got = list(autoparallelize(closure, configs, OutputSpec(), autopara_info={"workers": 2}))
    assert [a.info["k"] for a in got] == [7] * 4
    got = list(autoparallelize(lambda ats: [None if a.info["config_i"] == 1 else a for a in ats], configs,
                               OutputSpec(), autopara_info={"workers": 2}))
    assert [a.info["config_i"] for a in got] == [0, 2, 3]
    script = tmp_path / "main_script.py"
    script.write_text(textwrap.dedent(f"""
        from autopara import autoparallelize, ConfigSet, OutputSpec
        from ase.build import bulk
        def triple(atoms):
            return [[a, a, a] for a in atoms]
        if __name__ == "__main__":
            out = autoparallelize(triple, [bulk("Cu")] * 5, OutputSpec({str(tmp_path / 'm.xyz')!r}),
                                  autopara_info={{"workers": 2}})
            print(len(list(out)))
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "15"


def test_only_the_failing_items_fail(tmp_path, cu_file):
    out = tmp_path / "out.xyz"
    autoparallelize(fail_on, ConfigSet(cu_file), OutputSpec(out), {1, 4},
                    autopara_info={"workers": 2, "chunk_size": 3})
    assert [a.info["config_i"] for a in frames(out)] == [0, 2, 3, 5]
    failures = [json.loads(l) for l in (tmp_path / "out.xyz.failures.jsonl").read_text().splitlines()]
    assert [f["index"] for f in failures] == [1, 4]
    assert "ValueError: config 1 is bad" in failures[0]["message"]
    assert "test_autoparallelize.py" in failures[0]["message"]
    with pytest.raises(ItemFailedError, match="config 1 is bad"):
        autoparallelize(fail_on, ConfigSet(cu_file), OutputSpec(tmp_path / "stop.xyz"), {1},
                        autopara_info={"workers": 2, "skip_failed": False})


def test_a_dying_worker_fails_only_its_item(tmp_path, cu_file):
    out = tmp_path / "out.xyz"
    autoparallelize(die_on, ConfigSet(cu_file), OutputSpec(out), {2},
                    autopara_info={"workers": 2, "chunk_size": 3})
    assert [a.info["config_i"] for a in frames(out)] == [0, 1, 3, 4, 5]
    failures = [json.loads(l) for l in (tmp_path / "out.xyz.failures.jsonl").read_text().splitlines()]
    assert [f["index"] for f in failures] == [2]
    assert "exited with status 3" in failures[0]["message"]


def counting(atoms, log):
    with open(log, "a") as f:
        for _ in atoms:
            f.write("x\n")
    return atoms


def test_cache_reuses_refuses_and_versions(tmp_path, cu_file):
    out, log = tmp_path / "out.xyz", tmp_path / "calls.log"
    autoparallelize(counting, ConfigSet(cu_file), OutputSpec(out), str(log), autopara_info={"workers": 2})
    assert len(log.read_text().split()) == 6
    autoparallelize(counting, ConfigSet(cu_file), OutputSpec(out), str(log), autopara_info={"workers": 2})
    assert len(log.read_text().split()) == 6  # reused: the function did not run
    with pytest.raises(CacheError, match="args"):
        autoparallelize(counting, ConfigSet(cu_file), OutputSpec(out), str(tmp_path / "other.log"))
    with pytest.raises(CacheError, match="version 1 -> 2"):
        autoparallelize(counting, ConfigSet(cu_file), OutputSpec(out), str(log), version=2)
    autoparallelize(counting, ConfigSet(cu_file), OutputSpec(out, overwrite=True), str(log), version=2)
    assert len(log.read_text().split()) == 12


def test_per_item_generators_depend_on_seed_label_and_index_only(tmp_path, cu_file):
    def run(chunk, workers, seed):
        return [(a.info["item_i"], a.info["draw"]) for a in
                autoparallelize(draw, ConfigSet(cu_file), OutputSpec(),
                                autopara_info={"workers": workers, "chunk_size": chunk, "seed": seed})]

    a = run(1, 2, 5)
    assert a == run(4, 1, 5) == run(3, 0, 5)
    assert a != run(1, 2, 6)
    label = f"{draw.__module__}.{draw.__qualname__}"
    for i, x in a:
        assert x == np.random.default_rng(_native.item_seed(5, label, i)).normal()


def record_pid(path):
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


def pid_of_item(atoms):
    for a in atoms:
        a.info["pid"] = os.getpid()
    return atoms


def test_initializer_runs_once_per_worker(tmp_path):
    log = tmp_path / "init.log"
    configs = rattled_cu(20, size=1)
    got = autoparallelize(pid_of_item, configs, OutputSpec(),
                          autopara_info=AutoparaInfo(workers=2, chunk_size=1, initializer=(record_pid, [str(log)])))
    inits = log.read_text().split()
    assert len(inits) == 2
    assert {str(a.info["pid"]) for a in got} <= set(inits)


def test_counters_and_default_chunk_size(tmp_path):
    from ase import Atoms

    def make(ns):
        return [Atoms("H", positions=[[n, 0, 0]]) for n in ns]

    def autopara_make(*args, **kwargs):
        return autoparallelize(make, *args, def_num_inputs_per_python_subprocess=4, **kwargs)

    got = list(autopara_make(range(10), OutputSpec(), autopara_info={"workers": 2}))
    assert [a.positions[0, 0] for a in got] == list(range(10))


def test_errors_before_work(tmp_path, cu_file):
    import threading

    lock = threading.Lock()
    with pytest.raises(ArgsError, match="cannot be pickled"):
        autoparallelize(shift, ConfigSet(cu_file), OutputSpec(), lock, autopara_info={"workers": 2})
    with pytest.raises(ArgsError, match="inputs and outputs"):
        autoparallelize(shift, ConfigSet(cu_file))


def children_of(pid):
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def workers_of(pid):
    """Live autopara worker processes started by `pid`."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                env = (d / "environ").read_bytes().split(b"\0")
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if f"AUTOPARA_WORKER_PARENT={pid}".encode() in env and ") Z" not in stat:
                out.append(int(d.name))
    return out


SLOW_SCRIPT = """
import sys, time
from autopara import autoparallelize, ConfigSet, OutputSpec
def slow(atoms):
    time.sleep(0.05 * len(atoms))
    return atoms
if __name__ == "__main__":
    autoparallelize(slow, ConfigSet(sys.argv[1]), OutputSpec(sys.argv[2]),
                    autopara_info={"workers": 2, "chunk_size": 1})
"""


def big_input(tmp_path, n=200):
    path = tmp_path / "many.xyz"
    ase.io.write(path, rattled_cu(n, size=1), format="extxyz")
    return path


def test_no_worker_outlives_the_run(tmp_path, cu_file):
    autoparallelize(shift, ConfigSet(cu_file), OutputSpec(), 0.1, autopara_info={"workers": 2})
    assert workers_of(os.getpid()) == []
    # killed parent: its workers die with it
    script = tmp_path / "slow.py"
    script.write_text(SLOW_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(big_input(tmp_path)), str(tmp_path / "o.xyz")])
    journal = tmp_path / ".o.xyz.autopara-journal"
    deadline = time.time() + 120
    while not (journal.exists() and len(workers_of(proc.pid)) == 2) and time.time() < deadline:
        time.sleep(0.05)
    assert len(workers_of(proc.pid)) == 2
    proc.kill()
    proc.wait()
    deadline = time.time() + 60
    while workers_of(proc.pid) and time.time() < deadline:
        time.sleep(0.05)
    assert workers_of(proc.pid) == []


def test_interrupt_then_resume(tmp_path):
    inp, out = big_input(tmp_path), tmp_path / "o.xyz"
    script = tmp_path / "slow.py"
    script.write_text(SLOW_SCRIPT)
    env = dict(os.environ, AUTOPARA_CHECKPOINT_INTERVAL="0")
    proc = subprocess.Popen([sys.executable, str(script), str(inp), str(out)], env=env,
                            stderr=subprocess.PIPE, text=True)
    journal = tmp_path / ".o.xyz.autopara-journal"
    deadline = time.time() + 60
    while time.time() < deadline and not (journal.exists() and len(journal.read_text().splitlines()) > 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert workers_of(proc.pid) == []
    assert not out.exists()
    proc = subprocess.run([sys.executable, str(script), str(inp), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "continuing from item" in proc.stderr
    reference = tmp_path / "ref.xyz"
    proc = subprocess.run([sys.executable, str(script), str(inp), str(reference)], capture_output=True, text=True)
    assert out.read_bytes() == reference.read_bytes()
