"""wfl's ``ConfigSet`` and ``OutputSpec``, on autopara's engine.

A ``ConfigSet`` is the inputs of an op: extxyz files and globs (read lazily,
with autopara's reader, as ``ase.Atoms`` equal to what ``ase.io.read``
returns), a list of ``ase.Atoms`` (nested lists allowed), or other
ConfigSets. An ``OutputSpec`` says where an op's results go: one file, one
file per input file (a ``{stem}`` template), or memory.
"""

import os
from pathlib import Path

from ase import Atoms
from ase.io.extxyz import key_val_dict_to_str

from . import _native
from ._convert import from_ase, to_ase
from .errors import ArgsError, InputError


def _resolve(path, file_root):
    path = Path(path)
    if file_root is None:
        return path
    if path.is_absolute():
        raise ArgsError(f"file_root {file_root} given with the absolute path {path}")
    return Path(file_root) / path


class ConfigSet:
    """The inputs of an op, as in wfl.

    ``items`` may be a file name or glob (``str`` or ``Path``), a list of them,
    an ``ase.Atoms``, a list (or nested lists) of ``ase.Atoms``, a
    ``ConfigSet``, a list of ConfigSets (concatenated), or ``None``/``[]``
    (empty). Globs match as on the command line (``autopara run -i``): sorted,
    and a pattern that matches nothing is an ``InputError``. Files are read
    lazily each time the set is iterated.
    """

    def __init__(self, items=None, *, file_root=None, read_kwargs=None):
        if read_kwargs not in (None, {}) and dict(read_kwargs) not in ({"index": ":"}, {"index": ":", "parallel": False}):
            raise ArgsError(f"ConfigSet: read_kwargs {read_kwargs!r} are not supported (every frame is read)")
        from .outputspec import OutputSpec

        if isinstance(items, OutputSpec):
            raise RuntimeError("ConfigSet(OutputSpec) is not allowed; use OutputSpec.to_ConfigSet()")
        self._files = None
        self._memory = None
        if items is None:
            self._memory = []
        elif isinstance(items, ConfigSet):
            self._files, self._memory = items._files, items._memory
        elif isinstance(items, Atoms):
            self._memory = [items]
        elif isinstance(items, (str, os.PathLike)):
            self._files = self._expand([items], file_root)
        else:
            items = list(items)
            if not items:
                self._memory = []
            elif all(isinstance(i, (str, os.PathLike)) for i in items):
                self._files = self._expand(items, file_root)
            elif all(isinstance(i, ConfigSet) for i in items):
                parts = [i for i in items if not i._is_empty()]
                if all(p._files is not None for p in parts) and parts:
                    self._files = [f for p in parts for f in p._files]
                elif all(p._memory is not None for p in parts):
                    self._memory = [p._memory if len(p._memory) != 1 else p._memory[0] for p in parts]
                else:
                    raise ValueError("ConfigSet: cannot combine ConfigSets in memory with ConfigSets of files")
            else:
                self._memory = self._check_nested(items)

    @staticmethod
    def _expand(patterns, file_root):
        return [Path(p) for p in _native.expand_paths([str(_resolve(p, file_root)) for p in patterns])]

    @classmethod
    def _check_nested(cls, items):
        for i in items:
            if isinstance(i, list):
                cls._check_nested(i)
            elif not isinstance(i, Atoms):
                raise InputError(f"ConfigSet: expected ase.Atoms or lists of them, got {type(i).__name__}")
        return items

    def _is_empty(self):
        return self._memory is not None and len(self._memory) == 0

    def __add__(self, other):
        return ConfigSet([self, other])

    def one_file(self):
        """The file, when the set is exactly one file; else ``False``."""
        return self._files[0] if self._files is not None and len(self._files) == 1 else False

    @property
    def files(self):
        """The input files (empty for configurations in memory)."""
        return list(self._files or [])

    def __iter__(self):
        if self._files is not None:
            for f in self._files:
                if _native.is_empty_output(f):
                    continue
                for plain in _native.FrameReader(f):
                    yield to_ase(plain)
        else:
            yield from _flatten(self._memory)

    def groups(self):
        """The top-level groups: per file when there are several files, else
        per configuration or sub-list (as ConfigSets for sub-lists and files)."""
        if self._files is not None:
            if len(self._files) == 1:
                yield from self
            else:
                for f in self._files:
                    yield ConfigSet(f)
        else:
            for g in self._memory:
                yield ConfigSet(g) if isinstance(g, list) else g

    def __repr__(self):
        if self._files is not None:
            return f"ConfigSet({[str(f) for f in self._files]!r})"
        return f"ConfigSet(<{sum(1 for _ in _flatten(self._memory))} configurations in memory>)"

    def _native_inputs(self):
        """The inputs as the extension takes them."""
        if self._files is not None:
            return ("files", [str(f) for f in self._files])
        return ("memory", _to_plain_nested(self._memory))


def _flatten(nested):
    for i in nested:
        if isinstance(i, list):
            yield from _flatten(i)
        else:
            yield i


def _to_plain_nested(nested):
    return [_to_plain_nested(i) if isinstance(i, list) else from_ase(i) for i in nested]


def tags_text(tags):
    """The comment-line text of ``tags``, as ASE writes an info dict."""
    return key_val_dict_to_str(dict(tags)) if tags else ""
