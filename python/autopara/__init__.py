"""autopara for Python: wfl's ``ConfigSet``, ``OutputSpec``, ``AutoparaInfo``,
ops and ``autoparallelize``, run by autopara's Rust engine.

    from autopara import ConfigSet, OutputSpec, calculate, md, optimize

    single = calculate(ConfigSet("structures.xyz"), OutputSpec("single.xyz"), {"type": "emt"})
    traj = md(single, OutputSpec("md.xyz"), "emt", steps=100, dt=1.0, temperature=300,
              temperature_tau=100, autopara_info={"seed": 7})
    relaxed = optimize(traj, OutputSpec("relaxed.xyz"), "emt", fmax=0.01)

See docs/python.md in the repository.
"""

from . import _native
from .autoparainfo import AutoparaInfo
from .autoparallelize import autoparallelize, autoparallelize_docstring
from .configset import ConfigSet
from .errors import (
    ArgsError,
    AutoparaError,
    CacheError,
    FileError,
    InputError,
    ItemFailedError,
    OutputError,
)
from .ops import buildcell, calculate, create_input, descriptor, md, optimize
from .outputspec import OutputSpec

__version__ = _native.VERSION

__all__ = [
    "ArgsError",
    "AutoparaError",
    "AutoparaInfo",
    "CacheError",
    "ConfigSet",
    "FileError",
    "InputError",
    "ItemFailedError",
    "OutputError",
    "OutputSpec",
    "autoparallelize",
    "autoparallelize_docstring",
    "buildcell",
    "calculate",
    "create_input",
    "descriptor",
    "md",
    "optimize",
]
