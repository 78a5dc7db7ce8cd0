"""Calculators for autopara's ASE-bridge tests (put on the worker's sys.path
with the spec's `pythonpath`)."""

import os
import signal
import sys
import time

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT


def _record(log, what):
    with open(log, "a") as f:
        f.write(f"{what} {os.getpid()}\n")


class RecordingEMT(EMT):
    """ASE's EMT that appends `construct PID` to `log` when built and
    `calculate PID` at every calculation."""

    def __init__(self, log, **kwargs):
        super().__init__(**kwargs)
        self.log = log
        _record(log, "construct")

    def calculate(self, atoms=None, properties=["energy"], system_changes=all_changes):
        _record(self.log, "calculate")
        super().calculate(atoms, properties, system_changes)


class ThreadSettings(Calculator):
    """Reports its process's thread settings: the forces of atom k are the
    values of OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS
    (k = 0) and NUMEXPR_NUM_THREADS (k = 1, x), -1 where unset."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=["energy"], system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        get = lambda v: float(os.environ.get(v, -1))
        forces = np.zeros((len(atoms), 3))
        forces[0] = [get("OMP_NUM_THREADS"), get("OPENBLAS_NUM_THREADS"), get("MKL_NUM_THREADS")]
        forces[1, 0] = get("NUMEXPR_NUM_THREADS")
        self.results = {"energy": 0.0, "forces": forces}


class Probe(Calculator):
    """Reads what a calculator may read from the configuration, and fails on
    request. Energy: number of atoms + info["shift"] + sum of the initial
    charges; forces: x = initial magnetic moments, y = atomic numbers, z = the
    length of info["label"]; per-atom energies: the "weights" array. What
    info["fault"] says happens first: raise, exit, segv, sleep, print; before
    sleeping it creates the file `sleeping-PID` in the directory info["mark"]
    names, if any."""

    implemented_properties = ["energy", "forces", "energies"]

    def calculate(self, atoms=None, properties=["energy"], system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        fault = atoms.info.get("fault")
        if fault == "raise":
            print("probe: about to fail", file=sys.stderr)
            raise ValueError(f"refusing a config of {len(atoms)} atoms")
        if fault == "exit":
            os._exit(3)
        if fault == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        if fault == "sleep":
            if "mark" in atoms.info:
                open(os.path.join(atoms.info["mark"], f"sleeping-{os.getpid()}"), "w").close()
            time.sleep(60)
        if fault == "print":
            print("probe: noise on stdout")
            os.write(1, b"more noise on fd 1\n")
        n = len(atoms)
        forces = np.zeros((n, 3))
        forces[:, 0] = atoms.get_initial_magnetic_moments()
        forces[:, 1] = atoms.numbers
        forces[:, 2] = len(atoms.info.get("label", ""))
        self.results = {
            "energy": n + float(atoms.info.get("shift", 0.0)) + float(atoms.get_initial_charges().sum()),
            "forces": forces,
        }
        if "weights" in atoms.arrays:
            self.results["energies"] = np.asarray(atoms.arrays["weights"], dtype=float)


class ChangesLog(Calculator):
    """Appends the sorted system_changes of every calculation, one line each,
    to `log`; energy is the sum of the x coordinates, forces zero."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, log, **kwargs):
        super().__init__(**kwargs)
        self.log = log

    def calculate(self, atoms=None, properties=["energy"], system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        with open(self.log, "a") as f:
            f.write(" ".join(sorted(system_changes)) + "\n")
        self.results = {"energy": float(atoms.positions[:, 0].sum()), "forces": np.zeros((len(atoms), 3))}


def raising(**kwargs):
    """A constructor that raises."""
    raise RuntimeError(f"no model file for {sorted(kwargs)}")


def not_a_calculator(**kwargs):
    return 42
