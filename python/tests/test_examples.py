"""The examples in examples/python run, and give what their wfl originals would."""

import subprocess
import sys

import ase.io
import numpy as np

from conftest import ROOT


def run(script, workdir):
    proc = subprocess.run([sys.executable, str(ROOT / "examples/python" / script), str(workdir)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_wfl_first_example(tmp_path):
    proc = run("wfl_first_example.py", tmp_path)
    lines = proc.stdout.splitlines()
    assert len(lines) == 20 and all(l.startswith("optimize_last_converged") for l in lines)  # every MD frame relaxed
    assert "reusing" not in proc.stderr
    again = run("wfl_first_example.py", tmp_path)
    assert again.stdout == proc.stdout
    assert again.stderr.count("reusing") == 3
    md = ase.io.read(tmp_path / "md.xyz", ":")
    assert len(md) == 4 * 5 and {a.info["MD_step"] for a in md} == {0, 50, 100, 150, 200}


def test_autoparallelized_function_example(tmp_path):
    proc = run("autoparallelized_function.py", tmp_path)
    assert proc.stdout.strip() == "100 configurations shifted"
    before = ase.io.read(tmp_path / "molecules.xyz", ":")
    after = ase.io.read(tmp_path / "shifted.xyz", ":")
    assert [a.info["label"] for a in after] == ["shifted"] * 100
    np.testing.assert_allclose(after[0].positions[:, 0], before[0].positions[:, 0] + 0.1)
    assert "chunk size 10" in proc.stderr
