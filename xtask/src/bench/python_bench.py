"""`cargo xtask bench python`: autoparallelize's per-item overhead against wfl's,
and native ops called from Python against the same op from the command line.

Usage: python python_bench.py WORKDIR AUTOPARA_BINARY
"""

import json
import os
import resource
import subprocess
import sys
import time

import ase.io
import numpy as np
from ase import Atoms
from ase.build import bulk

N_SMALL = 10_000
CHUNK = 10
REPEATS = 3


def trivial(atoms):
    """The trivial function both frameworks parallelise."""
    for at in atoms:
        at.info["seen"] = 1
    return atoms


def cpu_seconds():
    """CPU seconds of this process and its finished children (the workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best(f, with_cpu=False):
    """The best wall time of REPEATS runs (and the best CPU time, all processes)."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        c0, t0 = cpu_seconds(), time.perf_counter()
        f()
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
    return (min(walls), min(cpus)) if with_cpu else min(walls)


def main():
    workdir, binary = sys.argv[1], sys.argv[2]
    os.chdir(workdir)
    rng = np.random.default_rng(0)
    small = [Atoms("H2", positions=[[0, 0, 0], [0.74 + 0.01 * rng.random(), 0, 0]]) for _ in range(N_SMALL)]
    ase.io.write("small.xyz", small)

    import autopara
    from wfl.autoparallelize import autoparallelize as wfl_autoparallelize
    from wfl.configset import ConfigSet as WflConfigSet, OutputSpec as WflOutputSpec

    def ours():
        autopara.autoparallelize(trivial, autopara.ConfigSet("small.xyz"),
                                 autopara.OutputSpec("ours.xyz", overwrite=True),
                                 autopara_info={"num_python_subprocesses": 2, "num_inputs_per_python_subprocess": CHUNK,
                                                "progress": False})

    def wfl():
        for f in ("wfl.xyz",):
            if os.path.exists(f):
                os.remove(f)
        wfl_autoparallelize(trivial, WflConfigSet("small.xyz"), WflOutputSpec("wfl.xyz"),
                            autopara_info={"num_python_subprocesses": 2, "num_inputs_per_python_subprocess": CHUNK})

    (t_ours, c_ours), (t_wfl, c_wfl) = best(ours, True), best(wfl, True)
    assert len(ase.io.read("ours.xyz", ":")) == N_SMALL
    print(f"-- autoparallelize: trivial function over {N_SMALL} 2-atom configurations, 2 workers, chunks of {CHUNK} "
          "(file in, file out, worker start-up included; best of 3) --")
    for name, t, c in (("autopara", t_ours, c_ours), ("wfl", t_wfl, c_wfl)):
        print(f"{name + ':':9} {t:.2f} s wall, {1e6 * t / N_SMALL:.0f} us per item; "
              f"{c:.2f} CPU s (all processes), {1e6 * c / N_SMALL:.0f} us per item")
    print(f"per-item overhead: wfl / autopara = {t_wfl / t_ours:.1f}x wall, {c_wfl / c_ours:.1f}x CPU (target >= 3x)")

    cells = []
    for i in range(200):
        at = bulk("Cu", cubic=True).repeat(3)
        at.rattle(0.05, seed=i)
        cells.append(at)
    ase.io.write("cells.xyz", cells)
    ops = [
        ("calculate", {"calculator": {"type": "emt"}},
         lambda out: autopara.calculate(autopara.ConfigSet("cells.xyz"), autopara.OutputSpec(out, overwrite=True),
                                        {"type": "emt"}, autopara_info={"workers": 2, "progress": False})),
        ("md", {"calculator": {"type": "emt"}, "steps": 50, "dt": 1.0},
         lambda out: autopara.md(autopara.ConfigSet("cells.xyz"), autopara.OutputSpec(out, overwrite=True),
                                 {"type": "emt"}, steps=50, dt=1.0, autopara_info={"workers": 2, "progress": False})),
    ]
    print("-- native ops: from Python against `autopara run` (200 rattled 108-atom Cu cells, EMT, 2 workers; "
          "best of 3) --")
    for name, args, call in ops:
        t_py = best(lambda: call(f"py_{name}.xyz"))
        t_cli = best(lambda: subprocess.run(
            [binary, "run", name, "-i", "cells.xyz", "-o", f"cli_{name}.xyz", "--workers", "2", "--overwrite", "-q",
             "--args", json.dumps(args)], check=True))
        same = open(f"py_{name}.xyz", "rb").read() == open(f"cli_{name}.xyz", "rb").read()
        print(f"{name}: Python {t_py:.3f} s, CLI {t_cli:.3f} s, Python/CLI = {t_py / t_cli:.3f} (target <= 1.10); "
              f"outputs {'byte-identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
