"""autopara's native ops under wfl's names and signatures.

Each call runs the op exactly as ``autopara run OP`` does (same arguments,
seed and inputs give byte-identical output files and the same cache record,
so a Python call reuses a CLI run's output and the other way round) and
returns a ``ConfigSet`` over its outputs. The GIL is released while the op
runs; Ctrl-C stops it, and the next call resumes a file output.
"""

import json
import os
import sys

import numpy as np

from . import _native
from .autoparainfo import AutoparaInfo
from .configset import ConfigSet
from .errors import ArgsError
from .outputspec import OutputSpec, result_configset


def _jsonable(value, where):
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ArgsError(f"{where}: a {type(value).__name__} cannot be an op argument (give numbers, strings, lists, dicts)")


def calculator_spec(calculator):
    """The calculator spec (JSON) of a calculator argument: a spec dict
    (``{"type": "emt"}``), a native name (``"emt"``), wfl's ``(constructor,
    args, kwargs)`` tuple or an ASE calculator class. The last two are ASE
    calculators built in Python, which run in autopara's persistent ASE
    workers (the ``ase`` calculator type): ``constructor`` is imported by its
    module and name there, and ``args``/``kwargs`` must be JSON values."""
    if isinstance(calculator, dict):
        return _jsonable(calculator, "calculator")
    if isinstance(calculator, str):
        return {"type": calculator}
    if isinstance(calculator, (tuple, list)) and len(calculator) == 3 and callable(calculator[0]):
        ctor, args, kwargs = calculator
        return _ase_spec(ctor, args or [], kwargs or {})
    if isinstance(calculator, type):
        return _ase_spec(calculator, [], {})
    raise ArgsError(
        f"calculator: a {type(calculator).__name__} object cannot be sent to workers; give a spec dict "
        "({'type': 'emt'}), a native name, or wfl's (constructor, args, kwargs) tuple"
    )


def _ase_spec(ctor, args, kwargs):
    if "ase" not in _native.calculator_names():
        raise ArgsError(
            f"calculator: {ctor.__module__}.{ctor.__qualname__} is a Python calculator, which needs autopara's "
            "'ase' calculator (persistent ASE workers); this build does not have it. Use a native calculator "
            f"({', '.join(_native.calculator_names())})"
        )
    if "<locals>" in ctor.__qualname__ or ctor.__module__ == "__main__":
        raise ArgsError(
            f"calculator: {ctor.__qualname__} must be importable by module and name (not defined in __main__ or "
            "inside a function): ASE workers import it"
        )
    return {
        "type": "ase",
        "constructor": f"{ctor.__module__}:{ctor.__qualname__}",
        "args": _jsonable(list(args), "calculator args"),
        "kwargs": _jsonable(dict(kwargs), "calculator kwargs"),
        # The workers run in this interpreter, which imported the calculator
        # (AUTOPARA_PYTHON, when set, still decides, as on the command line).
        **({} if os.environ.get("AUTOPARA_PYTHON") else {"python": sys.executable}),
    }


def _notice(op, names):
    print(f"autopara: {op}: {', '.join(names)} has no effect here (accepted for wfl's scripts)", file=sys.stderr)


def seed_from(info, rng):
    """The run's seed: ``autopara_info``'s, else one drawn from wfl's ``rng``
    (a ``numpy.random.Generator``; every call draws, cached or not, as wfl
    spawns), else 0."""
    if rng is not None:
        drawn = int(rng.integers(0, 2**63))
        if info.seed is not None:
            raise ArgsError("give either rng= or autopara_info seed, not both")
        return drawn
    return info.seed


def run_native(op, args, inputs, outputs, autopara_info=None, rng=None, mode="run"):
    """Runs native op ``op`` with ``args`` (as ``autopara run OP --args``);
    returns the outputs' ConfigSet (``None`` when ``outputs`` is ``None``)."""
    info = AutoparaInfo.coerce(autopara_info)
    seed = seed_from(info, rng)
    if info.remote_label is not None:
        raise ArgsError("autopara_info: remote_label: entries of remote_info are keyed by op name (md, minim, ...)")
    if info.initializer is not None:
        raise ArgsError("autopara_info: initializer applies to autoparallelize'd Python functions, not native ops")
    if isinstance(inputs, range):
        if inputs.start != 0 or inputs.step != 1:
            raise ArgsError(f"{op}: a counter input must be range(N), got {inputs!r}")
        native_inputs = ("counters", len(inputs))
    else:
        native_inputs = (inputs if isinstance(inputs, ConfigSet) else ConfigSet(inputs))._native_inputs()
    spec = outputs if outputs is not None else OutputSpec()
    if not isinstance(spec, OutputSpec):
        raise ArgsError(f"outputs must be an OutputSpec or None, not {type(outputs).__name__}")
    settings = info._native()
    if info.remote_info is not None:
        r = info.remote_info
        settings["remote_info"] = r if isinstance(r, str) else json.dumps(_jsonable(r, "remote_info"))
    if seed is not None:
        settings["seed"] = seed
    text = json.dumps(_jsonable({k: v for k, v in args.items() if v is not None}, "args"))
    result = _native.run_op(op, text, native_inputs, spec._native_outputs(), settings, mode)
    if mode == "explain":
        return result["explanation"]
    if outputs is None:
        return None
    return result_configset(spec, result)


def calculate(inputs, outputs, calculator, properties=None, output_prefix="_auto_", verbose=False,
              raise_calc_exceptions=False, autopara_info=None):
    """wfl's ``generic.calculate``: single points, results under ``output_prefix``."""
    if verbose:
        _notice("calculate", ["verbose"])
    args = {"calculator": calculator_spec(calculator), "properties": properties, "output_prefix": output_prefix,
            "raise_calc_exceptions": raise_calc_exceptions}
    return run_native("calculate", args, inputs, outputs, autopara_info)


def md(inputs, outputs, calculator, steps, dt, *, rng=None, autopara_info=None, **kwargs):
    """wfl's ``md.md``: molecular dynamics, one trajectory per input. Keyword
    arguments keep wfl's names (``integrator``, ``temperature``,
    ``temperature_tau``, ``pressure``, ``traj_step_interval``, ...; see
    docs/ops/md.md); ``rng`` (wfl's generator) or ``autopara_info={"seed": S}``
    seeds the per-item streams."""
    args = dict(kwargs, calculator=calculator_spec(calculator), steps=steps, dt=dt)
    return run_native("md", args, inputs, outputs, autopara_info, rng)


def optimize(inputs, outputs, calculator, *, rng=None, autopara_info=None, **kwargs):
    """wfl's ``optimize.optimize`` (autopara's ``minim`` op): relaxations with
    wfl's arguments (``fmax``, ``steps``, ``pressure``, ``keep_symmetry``,
    ``traj_subselect``, ...; see docs/ops/minim.md)."""
    args = dict(kwargs, calculator=calculator_spec(calculator))
    return run_native("minim", args, inputs, outputs, autopara_info, rng)


def descriptor(inputs, outputs, descs, key, per_atom, normalize=True, composition_weight=True, force=False,
               verbose=False, autopara_info=None):
    """wfl's ``descriptors.quippy.calculate`` with autopara's SOAP/ACSF specs
    (``descs`` is a spec dict; see docs/ops/descriptor.md)."""
    if verbose:
        _notice("descriptor", ["verbose"])
    args = {"descriptor": descs, "key": key, "per_atom": per_atom, "normalize": normalize,
            "composition_weight": composition_weight, "force": force}
    return run_native("descriptor", args, inputs, outputs, autopara_info)


def buildcell(inputs, outputs, buildcell_input, buildcell_cmd=None, extra_info=None, perturbation=0.0,
              skip_failures=True, symprec=0.01, verbose=False, *, rng=None, autopara_info=None, **kwargs):
    """wfl's ``buildcell.buildcell`` over ``range(N)``: random structures from
    buildcell input text, generated natively (no AIRSS binary)."""
    ignored = [n for n, v in (("buildcell_cmd", buildcell_cmd), ("verbose", verbose)) if v]
    if ignored:
        _notice("buildcell", ignored)
    args = dict(kwargs, buildcell_input=buildcell_input, extra_info=extra_info, perturbation=perturbation,
                skip_failures=skip_failures, symprec=symprec)
    return run_native("buildcell", args, inputs, outputs, autopara_info, rng)


def create_input(z, vol_per_atom, bond_lengths, composition=None, RSS_min_vol_factor=0.5, vol_range=(0.95, 1.05),
                 min_sep_factor=0.9, symmops="1-8", natom=(6, 24), odd=None, verbose=False):
    """wfl's ``buildcell.create_input``: the buildcell input text (same keys
    and values as wfl's for the same arguments)."""
    as_list = lambda x: list(x) if isinstance(x, (list, tuple, np.ndarray)) else [x]  # noqa: E731
    return _native.create_input(
        [int(v) for v in as_list(z)],
        [float(v) for v in as_list(vol_per_atom)],
        [float(v) for v in as_list(bond_lengths)],
        None if composition is None else [int(v) for v in as_list(composition)],
        float(RSS_min_vol_factor),
        tuple(float(v) for v in vol_range),
        float(min_sep_factor),
        str(symmops),
        tuple(int(v) for v in natom),
        odd,
    )
