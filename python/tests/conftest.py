"""Shared fixtures: the `autopara` command line (to compare with), small structures."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

ROOT = Path(__file__).resolve().parents[2]


def cli_path():
    """The `autopara` binary: $AUTOPARA_CLI, else the debug build in the target dir."""
    if os.environ.get("AUTOPARA_CLI"):
        return Path(os.environ["AUTOPARA_CLI"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "autopara"


@pytest.fixture(scope="session")
def cli():
    """Runs `autopara ARGS...`; returns the CompletedProcess (text)."""
    path = cli_path()
    if not path.exists():
        if os.environ.get("AUTOPARA_REQUIRE_REFERENCES"):
            pytest.fail(f"the autopara binary {path} is missing (cargo build --bin autopara)")
        pytest.skip(f"the autopara binary {path} is missing")

    def run(*args, check=True, cwd=None, env=None):
        proc = subprocess.run([str(path), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                              env=None if env is None else {**os.environ, **env})
        if check and proc.returncode != 0:
            raise AssertionError(f"autopara {' '.join(map(str, args))} failed:\n{proc.stderr}")
        return proc

    return run


def rattled_cu(n, size=2, seed=0, amplitude=0.05):
    """`n` rattled fcc Cu cells of size^3 primitive... conventional cells."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        at = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((size, size, size))
        at.positions += rng.normal(scale=amplitude, size=at.positions.shape)
        at.info["config_i"] = i
        out.append(at)
    return out


@pytest.fixture
def cu_file(tmp_path):
    """An extxyz file of 6 rattled 32-atom Cu cells, written by ASE."""
    import ase.io

    path = tmp_path / "cu.xyz"
    ase.io.write(path, rattled_cu(6), format="extxyz")
    return path
