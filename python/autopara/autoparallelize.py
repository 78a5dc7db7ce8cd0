"""wfl's ``autoparallelize`` for your own Python function, on autopara's engine.

``autoparallelize(op, inputs, outputs, *args, **kwargs)`` calls
``op(chunk_of_inputs, *args, **kwargs)`` on chunks of the inputs in long-lived
Python worker processes (one per worker) and writes what it returns per
input (an ``ase.Atoms``, a list of them, or ``None`` for nothing) in input
order, with autopara's guarantees: bounded memory, a content-keyed cache
(reuse, refuse with the difference, ``overwrite=True``), resume after a kill,
failure records for exactly the inputs that raise, per-item random generators.

The cache key covers the function's module, qualified name and source code,
its default arguments and closure values, the arguments of the call, the
inputs, the seed and ``version``. It cannot see code the function calls (a
helper function, a library upgrade) or globals it reads: bump ``version``
when those change what it computes.
"""

import hashlib
import inspect
import json
import math
import pickle
import sys

import numpy as np
from ase import Atoms

from . import _native
from ._worker import ChunkRunner, accepts_per_item_info
from .autoparainfo import AutoparaInfo
from .configset import ConfigSet
from .errors import ArgsError, InputError
from .ops import seed_from
from .outputspec import OutputSpec, result_configset

#: How many elements of an array argument the key records verbatim (larger ones by digest).
_SMALL_ARRAY = 64


def _digest(data):
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _code_identity(func):
    """The function's source (digest), or its bytecode and constants when there is no source."""
    try:
        return {"source": _digest(inspect.getsource(func).encode())}
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        if code is None:
            return {"source": None}
        return {"bytecode": _digest(code.co_code + repr(code.co_consts).encode())}


def function_identity(func):
    """What the cache key records about a callable."""
    if hasattr(func, "func") and hasattr(func, "args") and hasattr(func, "keywords"):  # functools.partial
        return {"partial": function_identity(func.func), "args": canonical(list(func.args)),
                "keywords": canonical(dict(func.keywords))}
    if inspect.isclass(func) or inspect.isfunction(func) or inspect.ismethod(func) or inspect.isbuiltin(func):
        ident = {"name": f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"}
        target = func.__func__ if inspect.ismethod(func) else func
        ident.update(_code_identity(target))
        if inspect.isfunction(target):
            if target.__defaults__:
                ident["defaults"] = canonical(list(target.__defaults__))
            if target.__kwdefaults__:
                ident["kwdefaults"] = canonical(dict(target.__kwdefaults__))
            if target.__closure__:
                ident["closure"] = [canonical(_cell(c)) for c in target.__closure__]
        return ident
    return {"object": f"{type(func).__module__}.{type(func).__qualname__}", "pickle": _pickle_digest(func)}


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def _pickle_digest(value):
    import cloudpickle

    try:
        return _digest(cloudpickle.dumps(value))
    except Exception as exc:  # noqa: BLE001
        raise ArgsError(f"autoparallelize: an argument of type {type(value).__name__} cannot be pickled: {exc}") from exc


def canonical(value):
    """A JSON value standing for ``value`` in the cache key: equal for equal
    arguments, and readable in the messages that say what changed."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: canonical(v) for k, v in value.items()}
        return {"dict": sorted(([canonical(k), canonical(v)] for k, v in value.items()), key=repr)}
    if isinstance(value, np.generic):
        return canonical(value.item())
    if isinstance(value, np.ndarray):
        out = {"ndarray": value.dtype.str, "shape": list(value.shape)}
        if value.size <= _SMALL_ARRAY and value.dtype.kind in "biuf":
            out["data"] = canonical(value.tolist())
        else:
            out["digest"] = _pickle_digest(value)
        return out
    if isinstance(value, Atoms):
        from ._convert import from_ase

        return {"atoms": _digest(pickle.dumps(from_ase(value)))}
    if callable(value):
        return function_identity(value)
    return {"object": f"{type(value).__module__}.{type(value).__qualname__}", "pickle": _pickle_digest(value)}


def _split_inputs_outputs(args, kwargs):
    if "inputs" in kwargs:
        if "outputs" not in kwargs:
            raise ArgsError("autoparallelize: inputs= given as a keyword, so outputs= must be one too")
        return kwargs.pop("inputs"), kwargs.pop("outputs"), list(args)
    if len(args) < 2:
        raise ArgsError("autoparallelize(func, inputs, outputs, *args, **kwargs): inputs and outputs are required")
    return args[0], args[1], list(args[2:])


def _native_inputs(inputs):
    if isinstance(inputs, ConfigSet):
        return inputs._native_inputs()
    if isinstance(inputs, range):
        if inputs.start != 0 or inputs.step != 1:
            raise InputError(f"autoparallelize: a counter input must be range(N), got {inputs!r}")
        return ("counters", len(inputs))
    if isinstance(inputs, (str, Atoms)) or hasattr(inputs, "__fspath__"):
        return ConfigSet(inputs)._native_inputs()
    items = list(inputs)
    if items and all(isinstance(i, int) for i in items) and items == list(range(len(items))):
        return ("counters", len(items))
    return ConfigSet(items)._native_inputs()


def autoparallelize(func, *args, autopara_info=None, default_autopara_info=None, default_chunk_size=None,
                    def_num_inputs_per_python_subprocess=None, version=None, rng=None, **kwargs):
    """Runs ``func(chunk, *args, **kwargs)`` over ``inputs`` in parallel; returns
    the outputs' ``ConfigSet`` (``None`` when ``outputs`` is ``None``).

    Called as ``autoparallelize(func, inputs, outputs, *args, **kwargs)`` (or
    ``inputs=``/``outputs=`` keywords), like wfl's. ``inputs`` is a
    ``ConfigSet``, anything ``ConfigSet`` takes, or ``range(N)`` (the items are
    then the integers). ``func`` gets a list of ``ase.Atoms`` (or ints) and
    returns one entry per input: ``ase.Atoms``, a list of them, or ``None``.
    If ``func`` has a ``_autopara_per_item_info`` parameter it also gets wfl's
    per-item info: for each input ``{"item_i": global index, "rng":
    numpy.random.Generator}``, the generator a function of (seed, the
    function's name, item index) only.

    ``autopara_info`` (an ``AutoparaInfo`` or a dict) sets workers, chunk size,
    seed, ``skip_failed`` and a per-worker ``initializer``.
    ``default_chunk_size`` (or wfl's ``def_num_inputs_per_python_subprocess``,
    or ``default_autopara_info``) is the chunk size when the caller does not
    set one. ``version`` is part of the cache key: bump it when code the key
    cannot see changes. ``rng``, wfl's generator, seeds the run when given.

    Functions, arguments and initializers go to the workers pickled with
    cloudpickle (by value when defined in ``__main__``, as lambdas or as
    closures); pickles pass only between this process and its workers.
    """
    inputs, outputs, op_args = _split_inputs_outputs(args, kwargs)
    if default_chunk_size is not None and def_num_inputs_per_python_subprocess is not None:
        raise ArgsError("give default_chunk_size or def_num_inputs_per_python_subprocess, not both")
    chunk = default_chunk_size if default_chunk_size is not None else def_num_inputs_per_python_subprocess
    defaults = AutoparaInfo.coerce(default_autopara_info)
    if chunk is not None:
        defaults.chunk_size = chunk
    info = AutoparaInfo.coerce(autopara_info).merged(defaults)
    if info.remote_info is not None or info.remote_label is not None:
        raise ArgsError("autopara_info: remote_info: Python functions run on this machine's workers only")
    seed = seed_from(info, rng)
    seed = 0 if seed is None else seed
    name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', type(func).__name__)}"
    op_version, key = 1, {"function": function_identity(func), "args": canonical(op_args),
                          "kwargs": canonical(kwargs)}
    if isinstance(version, int) and not isinstance(version, bool) and 0 <= version < 2**32:
        op_version = version
    elif version is not None:
        key["version"] = canonical(version)
    initializer = info.initializer
    if initializer is not None and not isinstance(initializer, tuple):
        initializer = (initializer, [])
    if initializer is not None:
        key_initializer = canonical([initializer[0], list(initializer[1])])
        key["initializer"] = key_initializer
    runner = ChunkRunner(func, op_args, kwargs, seed, name, accepts_per_item_info(func), initializer)
    in_process = info.in_process()
    payload = b""
    if not in_process:
        import cloudpickle

        try:
            payload = pickle.dumps((list(sys.path), cloudpickle.dumps(runner)))
        except Exception as exc:  # noqa: BLE001
            raise ArgsError(
                f"autoparallelize: {name}, its arguments or initializer cannot be pickled for the worker processes "
                f"({type(exc).__name__}: {exc}); pass what cannot be pickled as a constructor and its arguments, or "
                "run in this process with num_python_subprocesses=0"
            ) from exc
    spec = outputs if outputs is not None else OutputSpec()
    if not isinstance(spec, OutputSpec):
        raise ArgsError(f"autoparallelize: outputs must be an OutputSpec or None, not {type(outputs).__name__}")
    settings = info._native()
    settings["seed"] = seed
    result = _native.run_function(
        name, op_version, int(info.chunk_size or 1), json.dumps(key), runner, payload,
        sys.executable, _native_inputs(inputs), spec._native_outputs(), settings, in_process,
    )
    if outputs is None:
        return None
    return result_configset(spec, result)


def autoparallelize_docstring(wrapper_or_doc, wrapped=None, input_iterable_type="Atoms"):
    """A docstring for an autoparallelized wrapper, as wfl's: the wrapped
    function's docstring followed by the arguments autoparallelize adds. Takes
    wfl's ``(wrapper, wrapped, type)`` or its older ``(doc, type)`` form."""
    if isinstance(wrapped, str) or wrapped is None:
        doc, input_iterable_type = wrapper_or_doc, wrapped or input_iterable_type
    else:
        doc = getattr(wrapped, "__doc__", None)
    doc = inspect.cleandoc(doc or "")
    added = (
        f"\n\nAutoparallelized (autopara): called as f(inputs, outputs, *args, autopara_info=None, **kwargs).\n\n"
        f"inputs: iterable of {input_iterable_type} (a ConfigSet, files, a list of Atoms or range(N))\n"
        "outputs: OutputSpec, or None to run for side effects only\n"
        "autopara_info: AutoparaInfo or dict (num_python_subprocesses, num_inputs_per_python_subprocess, "
        "skip_failed, initializer, seed)"
    )
    if isinstance(wrapper_or_doc, str) or wrapped is None:
        return doc + added
    wrapper_or_doc.__doc__ = doc + added
    return wrapper_or_doc.__doc__
