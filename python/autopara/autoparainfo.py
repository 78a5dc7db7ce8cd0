"""wfl's ``AutoparaInfo``: how a call is parallelised."""

import os

from .errors import ArgsError

# wfl's name -> autopara's.
_ALIASES = {
    "num_python_subprocesses": "workers",
    "num_inputs_per_python_subprocess": "chunk_size",
}
_FIELDS = ("workers", "chunk_size", "seed", "skip_failed", "initializer", "remote_info", "remote_label", "progress")
_WFL_ONLY = {"iterable_arg": 0}


class AutoparaInfo:
    """How a call runs, with wfl's field names or autopara's.

    - ``num_python_subprocesses`` / ``workers``: number of workers. Default:
      ``AUTOPARA_NUM_WORKERS``, else wfl's ``WFL_NUM_PYTHON_SUBPROCESSES``,
      else all cores. ``0`` runs a Python function serially in this process
      (as wfl does); native ops treat 0 and 1 alike.
    - ``num_inputs_per_python_subprocess`` / ``chunk_size``: items per call of
      the op (default: the op's, or ``default_chunk_size`` of
      ``autoparallelize``).
    - ``seed``: seed of the per-item random streams (default 0; the same seed
      as ``autopara run --seed`` gives the same outputs).
    - ``skip_failed``: record failed items and go on (default ``True``), or
      stop at the first with ``ItemFailedError``.
    - ``initializer``: ``(func, args)`` or a callable, run once in each worker
      process before its first chunk.
    - ``remote_info``: run a native op's chunks as batch jobs: a dict, or
      JSON/TOML text or a file, as ``autopara run --remote-info`` takes it
      (default: ``AUTOPARA_REMOTE_INFO``); see docs/queue.md.
    - ``progress``: progress output on stderr (default: on unless
      ``AUTOPARA_PROGRESS=0``).

    Unknown names are an ``ArgsError``. Resolving never changes this object
    (wfl fills its defaults in, so a reused object leaks one op's defaults
    into the next).
    """

    def __init__(self, **kwargs):
        given = {}
        for k, v in kwargs.items():
            name = _ALIASES.get(k, k)
            if name in _WFL_ONLY:
                if v != _WFL_ONLY[name]:
                    raise ArgsError(f"AutoparaInfo: {k}={v!r} is not supported (the inputs are always the first argument)")
                continue
            if name not in _FIELDS:
                raise ArgsError(f"AutoparaInfo: unknown field '{k}'; known: {', '.join(sorted(_FIELDS + tuple(_ALIASES)))}")
            if name in given:
                raise ArgsError(f"AutoparaInfo: '{k}' given twice (wfl's and autopara's name)")
            given[name] = v
        for name in _FIELDS:
            setattr(self, name, given.get(name))

    @classmethod
    def coerce(cls, value):
        """An AutoparaInfo from ``None``, a dict of fields, or an AutoparaInfo."""
        if value is None:
            return cls()
        if isinstance(value, AutoparaInfo):
            return value
        if isinstance(value, dict):
            return cls(**value)
        raise ArgsError(f"autopara_info must be an AutoparaInfo, a dict or None, not {type(value).__name__}")

    def merged(self, defaults):
        """A copy with unset fields taken from ``defaults`` (an AutoparaInfo)."""
        out = AutoparaInfo()
        for name in _FIELDS:
            mine = getattr(self, name)
            setattr(out, name, mine if mine is not None else getattr(defaults, name))
        return out

    def in_process(self):
        """True when a Python function should run in this process: zero
        workers given here or in ``WFL_NUM_PYTHON_SUBPROCESSES``/``AUTOPARA_NUM_WORKERS``."""
        if self.workers is not None:
            return int(self.workers) == 0
        for var in ("AUTOPARA_NUM_WORKERS", "WFL_NUM_PYTHON_SUBPROCESSES"):
            value = os.environ.get(var)
            if value is not None:
                return value.strip() == "0"
        return False

    def _native(self):
        """The settings the extension takes (it reads the environment itself)."""
        out = {}
        for name in ("workers", "chunk_size", "seed", "skip_failed", "progress"):
            v = getattr(self, name)
            if v is not None:
                out[name] = v
        if self.workers is not None and int(self.workers) == 0:
            out["workers"] = 1
        return out

    def __repr__(self):
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in _FIELDS if getattr(self, n) is not None)
        return f"AutoparaInfo({fields})"
