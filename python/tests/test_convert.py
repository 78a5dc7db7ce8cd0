"""ase.Atoms <-> autopara frames: what ASE reads from our files, and what we
read from ASE's, checked against ASE itself on a corpus of awkward values."""

import io

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms, FixCartesian

from autopara import ConfigSet, _native
from autopara._convert import from_ase, to_ase


def assert_same_value(a, b, where, rtol=0.0):
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__} ({a!r} vs {b!r})"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        if a.dtype.kind == "f" and rtol:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-8, err_msg=where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_value(x, y, f"{where}[{i}]", rtol)
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same_value(a[k], b[k], f"{where}.{k}", rtol)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_atoms(a, b, rtol=0.0):
    """Everything ASE keeps: numbers, positions, cell, pbc, info (types too),
    arrays (dtypes too), calculator results and constraints."""
    assert_same_value(a.numbers, b.numbers, "numbers")
    assert_same_value(a.positions, b.positions, "positions", rtol)
    assert_same_value(a.cell.array, b.cell.array, "cell")
    assert_same_value(a.pbc, b.pbc, "pbc")
    assert_same_value(a.info, b.info, "info", rtol)
    assert_same_value({k: v for k, v in a.arrays.items()}, {k: v for k, v in b.arrays.items()}, "arrays", rtol)
    assert (a.calc is None) == (b.calc is None), "calc"
    if a.calc is not None:
        assert_same_value(a.calc.results, b.calc.results, "calc.results", rtol)
    assert [c.todict() for c in a.constraints] == [c.todict() for c in b.constraints]
    assert {k: type(v) for k, v in vars(a).items()} == {k: type(v) for k, v in vars(b).items()}
    assert_same_value(a.get_celldisp(), b.get_celldisp(), "celldisp")


def corpus():
    """Configurations with the values ASE users put in files."""
    out = []
    a = Atoms("CuAu", positions=[[0, 0, 0], [1.3, 1.4, 1.5]], cell=[4, 5, 6], pbc=True)
    a.info.update({
        "config_type": "bulk", "i": 3, "x": 0.1, "big": 1e16, "flag": True, "vec": np.array([1.0, 2.5, 3.0]),
        "ivec": np.array([1, 2]), "bools": np.array([True, False]), "one": np.array([7.5]), "nine": np.arange(9.0),
        "virial": np.arange(9.0).reshape(3, 3), "m": np.arange(6.0).reshape(2, 3), "strs": ["a", "b c"],
        "d": {"a": 1}, "num_str": "12", "t_str": "T", "empty": "", "nan": float("nan"), "neg": -2,
        "quoted": 'say "hi"', "spaces": "a b  c",
    })
    a.new_array("tag_s", np.array(["x", "y"]))
    a.new_array("ints", np.array([1, -2]))
    a.new_array("flags", np.array([True, False]))
    a.new_array("vec3", np.array([[0.1, 0.2, 0.3], [1e-9, 2.0, -3.0]]))
    a.set_initial_charges([0.5, -0.5])
    a.calc = SinglePointCalculator(a, energy=-1.5, forces=np.array([[0.1, 0, 0], [-0.1, 0, 0]]),
                                   stress=np.arange(6.0) * 0.01, free_energy=-1.6)
    out.append(a)
    b = Atoms("H2O", positions=[[0, 0, 0], [0.9, 0, 0], [0, 0.9, 0]])  # no cell, not periodic
    b.set_constraint(FixAtoms(indices=[0]))
    b.info["stress"] = np.arange(9.0).reshape(3, 3)  # a 3x3 stress in info goes to the calculator
    out.append(b)
    c = Atoms("Si2", positions=[[0, 0, 0], [1.3, 1.3, 1.3]], cell=[[0, 2.7, 2.7], [2.7, 0, 2.7], [2.7, 2.7, 0]],
              pbc=[True, False, True])
    c.set_constraint(FixCartesian(1, mask=[True, False, True]))
    c.set_masses([28.0, 29.0])
    c.set_momenta([[1.0, 0, 0], [0, 1, 0]])
    c.calc = SinglePointCalculator(c, energy=2, magmom=0.5, energies=np.array([1.0, 1.0]),
                                   charges=np.array([0.1, -0.1]))
    out.append(c)
    out.append(Atoms())  # no atoms
    return out


@pytest.mark.parametrize("index", range(4))
def test_ase_reads_our_file_as_to_ase_gives(tmp_path, index):
    at = corpus()[index]
    path = tmp_path / "ours.xyz"
    _native.write_plain_frames(path, [from_ase(at)])
    expected = ase.io.read(path, format="extxyz", index=0)
    got = list(ConfigSet(path))
    assert len(got) == 1
    assert_same_atoms(got[0], expected)
    # and to_ase itself on the frame our reader gives
    assert_same_atoms(to_ase(next(iter(_native.FrameReader(path)))), expected)


# (ASE writes an empty Atoms with a `species:R:1` column, which no reader takes.)
@pytest.mark.parametrize("index", range(3))
def test_from_ase_reads_as_our_reader_reads_ase_file(tmp_path, index):
    at = corpus()[index]
    path = tmp_path / "ase.xyz"
    ase.io.write(path, at, format="extxyz")
    from_file = next(iter(_native.FrameReader(path)))
    ours = _native.roundtrip_plain(from_ase(at))
    # ASE writes per-atom floats with 8 decimals; we keep every digit.
    assert_same_atoms(to_ase(ours), to_ase(from_file), rtol=1e-7)


def test_full_precision_and_round_trip():
    at = corpus()[0]
    again = to_ase(_native.roundtrip_plain(from_ase(at)))
    assert np.array_equal(again.positions, at.positions)
    assert np.array_equal(again.arrays["vec3"], at.arrays["vec3"])
    # what ASE would read back from ASE's own file (values ASE keeps)
    buf = io.StringIO()
    ase.io.write(buf, at, format="extxyz")
    via_ase = ase.io.read(io.StringIO(buf.getvalue()), format="extxyz")
    assert_same_atoms(again, via_ase, rtol=1e-7)
