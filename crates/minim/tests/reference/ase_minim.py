"""Reference optimizations for autopara's minim tests and benchmark.

Reads JSON on stdin:
  {"calculator": {"type": "emt"} | {"type": "lennard_jones", "sigma": ..., ...},
   "optimizer": "PreconLBFGS" | "LBFGS" | "FIRE",
   "args": {"fmax", "smax", "steps", "pressure", "stress_mask", "keep_symmetry",
            "precon" ("auto" | "Exp" | null; absent means ASE's "auto"), "maxstep"},
   "configs": [{"numbers", "positions", "cell", "pbc", "fixed": [atom indices]}]}
PreconLBFGS runs through wfl's own optimize (wfl.generate.optimize), the peer;
LBFGS and FIRE through ASE with wfl's set-up (FixSymmetry, FrechetCellFilter).
Prints JSON: one result per config (final energy, positions, cell, steps,
status, calculator calls) and the total wall and CPU time of the optimizations.
"""
import contextlib
import json
import os
import sys
import time

# One process, one thread: BLAS threads fighting over small matrices on a
# shared machine make scipy's 6x6 solves take milliseconds.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import ase.units
import numpy as np
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.constraints import FixAtoms, FixSymmetry
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE, LBFGS

req = json.load(sys.stdin)
spec = dict(req["calculator"])
kind = spec.pop("type")
base = {"emt": EMT, "lennard_jones": LennardJones}[kind]


class Counting(base):
    """The calculator, counting its calculations."""

    calls = 0

    def calculate(self, *args, **kwargs):
        Counting.calls += 1
        super().calculate(*args, **kwargs)


args = dict(req["args"])
optimizer = req.get("optimizer", "PreconLBFGS")
results = []
total = 0.0
cpu = 0.0
for c in req["configs"]:
    at = Atoms(numbers=c["numbers"], positions=c["positions"], cell=c["cell"], pbc=c["pbc"])
    if c.get("fixed"):
        at.set_constraint(FixAtoms(indices=c["fixed"]))
    calc = Counting(**spec)
    Counting.calls = 0
    t0, c0 = time.perf_counter(), time.process_time()
    if optimizer == "PreconLBFGS":
        from wfl.generate.optimize import _run_autopara_wrappable

        kw = dict(args)
        with contextlib.redirect_stdout(sys.stderr):
            trajs = _run_autopara_wrappable([at], calc, _autopara_per_item_info=[{"rng": None}], **kw)
        # traj_subselect="last" makes the trajectory a single Atoms.
        final = trajs[0] if isinstance(trajs[0], Atoms) else trajs[0][-1]
        energy = final.info["last_op__optimize_energy"]
        steps = final.info["optimize_n_steps"]
        status = final.info["optimize_config_type"]
    else:
        at.calc = calc
        if args.get("keep_symmetry", True):
            at.set_constraint([*at.constraints, FixSymmetry(at, adjust_cell=False)])
        wrapped = at
        if args.get("pressure") is not None:
            wrapped = FrechetCellFilter(at, scalar_pressure=args["pressure"] * ase.units.GPa,
                                        mask=args.get("stress_mask"))
        cls = {"LBFGS": LBFGS, "FIRE": FIRE}[optimizer]
        opt_kw = {"maxstep": args["maxstep"]} if args.get("maxstep") is not None else {}
        opt = cls(wrapped, logfile=None, **opt_kw)
        converged = opt.run(fmax=args.get("fmax", 1e-3), steps=args.get("steps", 1000))
        final = at
        energy = at.get_potential_energy()
        steps = opt.get_number_of_steps()
        status = "optimize_last_" + ("converged" if converged else "unconverged")
    total += time.perf_counter() - t0
    cpu += time.process_time() - c0
    results.append({
        "energy": float(energy),
        "positions": np.asarray(final.positions).tolist(),
        "cell": np.asarray(final.cell).tolist(),
        "steps": int(steps),
        "status": status,
        "calls": Counting.calls,
    })
print(json.dumps({"results": results, "seconds": total, "cpu": cpu}))
