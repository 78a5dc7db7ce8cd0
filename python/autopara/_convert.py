"""Conversion between ``ase.Atoms`` and the plain frames of ``autopara._native``.

``to_ase`` gives the ``Atoms`` that ``ase.io.read`` returns for the extxyz file
autopara writes for a frame: the same info (numpy scalars, ASE's 3x3 matrices,
``_JSON`` values decoded), the same arrays and dtypes, calculator results in a
``SinglePointCalculator``, ``move_mask`` as constraints. ``from_ase`` gives the
frame autopara reads from the file ``ase.io.write`` writes for an ``Atoms``
(calculator results stored under their plain names, ASE's own text for the
info), except that numbers keep every digit (ASE writes per-atom floats with 8
decimals).
"""

import json

import numpy as np
from ase import Atoms
from ase.cell import Cell
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms, FixCartesian
from ase.io.extxyz import (
    key_val_dict_to_str,
    per_atom_properties,
    per_config_properties,
)
from ase.calculators.calculator import all_properties
from ase.stress import voigt_6_to_full_3x3_stress

_ALL_PROPERTIES = frozenset(all_properties)
_PER_CONFIG = frozenset(per_config_properties)
_PER_ATOM = frozenset(per_atom_properties)
# ASE reads these 9-number info values as 3x3 matrices in Fortran order.
_SPECIAL_3_3 = frozenset(("Lattice", "virial", "stress"))
_DTYPES = {"f": "<f8", "i": "<i8"}


def _array(dtype, payload, count):
    if dtype == "s":
        return list(payload)
    if dtype == "b":
        return np.frombuffer(payload, dtype=np.uint8, count=count).astype(bool)
    return np.frombuffer(payload, dtype=_DTYPES[dtype], count=count).copy()


def _ase_text_value(s):
    """What ASE's reader makes of a string value autopara writes."""
    if s == "":
        return np.array([], dtype=int)
    if s.startswith("_JSON "):
        try:
            d = json.loads(s[6:])
        except ValueError:
            return s
        v = np.array(d)
        return v if v.dtype.kind in "ifb" else d
    # ASE's reader turns the escape of a line break into the letter n.
    return s.replace("\n", "n")


def _info_value(key, tag, value):
    if tag == "b":
        return value
    if tag == "i":
        return np.int64(value)
    if tag == "f":
        return np.float64(value)
    if tag == "s":
        return _ase_text_value(value)
    shape, dtype, payload = value
    n = int(np.prod(shape)) if shape else 1
    if dtype == "s" or len(shape) != 1 and not (shape == (3, 3) and key in _SPECIAL_3_3):
        # Written as _JSON: json.loads, then an array when numeric or bool.
        data = _array(dtype, payload, n)
        nested = np.asarray(data, dtype=object if dtype == "s" else None).reshape(shape).tolist()
        v = np.array(nested)
        return v if v.dtype.kind in "ifb" else nested
    data = _array(dtype, payload, n)
    if shape == (3, 3):
        return data.reshape(3, 3)
    if n == 0:
        return np.array([], dtype=int)
    if n == 1:
        x = data[0]
        return bool(x) if dtype == "b" else x
    if n == 9 and key in _SPECIAL_3_3:
        return np.asarray(data).reshape((3, 3), order="F")
    if dtype == "b":
        return [bool(x) for x in data]
    return data


def _new_atoms(numbers, positions, cell, pbc, info):
    """``Atoms(numbers=, positions=, cell=, pbc=, info=)`` without the
    constructor's checks and conversions (most of the cost of a small
    configuration), setting what it sets; ``test_convert`` compares the
    result with ``ase.io.read``'s, attributes included."""
    atoms = Atoms.__new__(Atoms)
    atoms._cellobj = Cell(np.array(cell, dtype=float))
    atoms._pbc = np.array(pbc, dtype=bool)
    atoms.arrays = {"numbers": numbers, "positions": positions}
    atoms._celldisp = np.zeros((3, 1))
    atoms._constraints = []
    atoms._calc = None
    atoms.info = info
    return atoms


def to_ase(plain):
    """The ``ase.Atoms`` ASE reads from the file autopara writes for ``plain``."""
    numbers, positions, cell, pbc, info_items, array_items = plain
    n = len(numbers)
    info = {}
    for key, tag, value in info_items:
        info[key] = _info_value(key, tag, value)
    arrays = {}
    cons = None
    charges = None
    for name, dtype, width, payload in array_items:
        data = _array(dtype, payload, n * width)
        if dtype == "s":
            data = np.array(data, dtype=object)
        elif dtype == "i":
            data = data.astype(np.int32)
        if width != 1:
            data = data.reshape(n, width)
        if name == "charge":
            name = "charges"
        if name == "move_mask":
            mask = data.astype(bool)
            if width == 3:
                cons = [FixCartesian(a, mask=~mask[a, :]) for a in range(n)]
            elif width == 1:
                cons = FixAtoms(mask=~mask)
            continue
        if name == "initial_charges":
            charges = data
            continue
        arrays[name] = data
    atoms = _new_atoms(
        np.frombuffer(numbers, dtype=np.uint8).astype(int),
        np.frombuffer(positions, dtype="<f8").reshape(n, 3).copy(),
        np.frombuffer(cell, dtype="<f8").reshape(3, 3),
        pbc,
        info,
    )
    if charges is not None:
        atoms.set_initial_charges(charges)
    if cons is not None:
        atoms.set_constraint(cons)
    results = {}
    for name, data in arrays.items():
        if name in _ALL_PROPERTIES:
            results[name] = data
        else:
            atoms.new_array(name, data)
    for key in list(atoms.info):
        if key in _PER_CONFIG:
            results[key] = atoms.info.pop(key)
            if key == "stress" and np.shape(results[key]) == (3, 3):
                s = results[key]
                results[key] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    if results:
        atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def _column(name, value, n):
    a = np.asarray(value)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim not in (1, 2) or a.shape[0] != n:
        raise ValueError(f"array '{name}' has shape {a.shape}, expected ({n},) or ({n}, k)")
    width = 1 if a.ndim == 1 else a.shape[1]
    kind = a.dtype.kind
    if kind == "f":
        return (name, "f", width, np.ascontiguousarray(a, dtype="<f8").tobytes())
    if kind in "iu":
        return (name, "i", width, np.ascontiguousarray(a, dtype="<i8").tobytes())
    if kind == "b":
        return (name, "b", width, np.ascontiguousarray(a, dtype=np.uint8).tobytes())
    if kind in "OSU":
        return (name, "s", width, [str(x) for x in a.reshape(-1)])
    raise ValueError(f"array '{name}' has dtype {a.dtype}, which extxyz cannot hold")


def _move_mask(atoms):
    cons = [c for c in atoms.constraints if isinstance(c, (FixAtoms, FixCartesian))]
    if not cons:
        return None
    n = len(atoms)
    cartesian = any(isinstance(c, FixCartesian) for c in cons)
    mask = np.ones((n, 3) if cartesian else (n,), dtype=bool)
    for c in cons:
        if isinstance(c, FixAtoms):
            mask[c.index] = False
        else:
            mask[c.index] = ~c.mask & mask[c.index]
    return None if mask.all() else mask


def from_ase(atoms):
    """The plain frame autopara reads from the file ASE writes for ``atoms``."""
    if not isinstance(atoms, Atoms):
        raise TypeError(f"expected ase.Atoms, got {type(atoms).__name__}")
    n = len(atoms)
    info = dict(atoms.info)
    arrays = dict(atoms.arrays)
    calc = atoms.calc
    if calc is not None:
        for prop, value in calc.results.items():
            if prop in _PER_CONFIG:
                if prop in info:
                    raise KeyError(f"calculator result '{prop}' is also in atoms.info")
                info[prop] = value
            elif prop in _PER_ATOM:
                if prop in arrays:
                    raise KeyError(f"calculator result '{prop}' is also in atoms.arrays")
                arrays[prop] = value
        stress = info.get("stress")
        if stress is not None and np.shape(stress) == (6,):
            info["stress"] = voigt_6_to_full_3x3_stress(stress)
    info["pbc"] = atoms.get_pbc()
    comment = key_val_dict_to_str(info)
    columns = []
    mask = _move_mask(atoms)
    if mask is not None:
        columns.append(_column("move_mask", mask, n))
    for name, value in arrays.items():
        if name in ("numbers", "positions", "symbols", "species", "pos"):
            continue
        columns.append(_column("charge" if name == "charges" else name, value, n))
    numbers = atoms.numbers
    if n and (numbers.min() < 0 or numbers.max() > 255):
        raise ValueError("atomic numbers must be between 0 and 255")
    return (
        numbers.astype(np.uint8).tobytes(),
        np.ascontiguousarray(atoms.positions, dtype="<f8").tobytes(),
        np.ascontiguousarray(atoms.cell.array, dtype="<f8").tobytes(),
        tuple(bool(p) for p in atoms.pbc),
        comment,
        columns,
    )
