"""wfl's first example in autopara: single points, then MD, then a
relaxation, chained through OutputSpec files.

    python examples/python/wfl_first_example.py [WORKDIR]

Run it twice: the second run reuses every output.
"""

import os
import sys

import ase.io
from ase.build import bulk

from autopara import ConfigSet, OutputSpec, calculate, md, optimize

workdir = sys.argv[1] if len(sys.argv) > 1 else "wfl-first-example"
os.makedirs(workdir, exist_ok=True)
os.chdir(workdir)

if not os.path.exists("structures.xyz"):
    cells = []
    for i in range(4):
        at = bulk("Cu", cubic=True).repeat(2)
        at.rattle(0.05, seed=i)
        cells.append(at)
    ase.io.write("structures.xyz", cells)

inputs = ConfigSet("structures.xyz")
single = calculate(inputs, OutputSpec("single.xyz"), "emt", output_prefix="EMT_")
traj = md(single, OutputSpec("md.xyz"), "emt", steps=200, dt=1.0, temperature=300, temperature_tau=100,
          traj_step_interval=50, autopara_info={"seed": 7})
relaxed = optimize(traj, OutputSpec("relaxed.xyz"), "emt", fmax=0.01, traj_subselect="last")
for atoms in relaxed:  # ase.Atoms, as ase.io.read("relaxed.xyz", ":") gives them
    print(atoms.info["optimize_config_type"], atoms.info["last_op__optimize_energy"])
