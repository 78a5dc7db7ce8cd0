"""wfl's "creating auto-parallelized functions" example in autopara: a
function `op(atoms, *args)` wrapped with autoparallelize, with a default of
10 inputs per call, run in parallel worker processes.

    python examples/python/autoparallelized_function.py [WORKDIR]
"""

import os
import sys

import ase.io
from ase.build import molecule

from autopara import ConfigSet, OutputSpec, autoparallelize, autoparallelize_docstring


def op(atoms, dx, label):
    """Shifts every configuration by `dx` along x and labels it."""
    output_ats = []
    for at in atoms:
        at.positions[:, 0] += dx
        at.info["label"] = label
        output_ats.append(at)
    return output_ats


def autopara_op(*args, **kwargs):
    return autoparallelize(op, *args, def_num_inputs_per_python_subprocess=10, **kwargs)


autopara_op.__doc__ = autoparallelize_docstring(op.__doc__, "Atoms")

if __name__ == "__main__":
    workdir = sys.argv[1] if len(sys.argv) > 1 else "autoparallelized-function"
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    ase.io.write("molecules.xyz", [molecule("H2O") for _ in range(100)])
    shifted = autopara_op(ConfigSet("molecules.xyz"), OutputSpec("shifted.xyz"), 0.1, "shifted",
                          autopara_info={"num_python_subprocesses": 2})
    print(sum(1 for _ in shifted), "configurations shifted")
