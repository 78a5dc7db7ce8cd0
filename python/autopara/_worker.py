"""The Python side of autoparallelize's chunks.

``ChunkRunner`` applies the user's function to one chunk of items, wfl's way
(``func(list_of_inputs, *args, **kwargs)`` returning one entry per input:
``Atoms``, a list of ``Atoms`` or ``None``), retrying item by item when the
chunk raises so that only the items that raise fail. It runs in this process
(zero workers) or, pickled, in the worker processes of ``autopara._workerproc``.
"""

import inspect
import os
import traceback

from ase import Atoms

from . import _native
from ._convert import from_ase, to_ase


def _describe(exc):
    """``ValueError: message (file.py:12 in op)``: the exception and where it was raised."""
    where = ""
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        frame = tb[-1]
        where = f" ({os.path.basename(frame.filename)}:{frame.lineno} in {frame.name})"
    return f"{type(exc).__name__}: {exc}{where}"


def accepts_per_item_info(func):
    """Whether ``func`` takes wfl's ``_autopara_per_item_info`` argument."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return "_autopara_per_item_info" in params


class ChunkRunner:
    """Calls ``func(inputs, *args, **kwargs)`` on chunks of ``(index, item)``.

    Items are plain frames (converted to ``ase.Atoms``) or counters (ints).
    With ``per_item_info``, the call also gets wfl's
    ``_autopara_per_item_info``: per input ``{"item_i": index, "rng":
    numpy.random.Generator}``, the generator seeded from (seed, label, index).
    """

    def __init__(self, func, args, kwargs, seed, label, per_item_info, initializer=None):
        self.func = func
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.seed = seed
        self.label = label
        self.per_item_info = per_item_info
        self.initializer = initializer

    def _per_item_info(self, indices):
        import numpy as np

        return [
            {"item_i": i, "rng": np.random.default_rng(_native.item_seed(self.seed, self.label, i))} for i in indices
        ]

    def _call(self, inputs, indices):
        kwargs = self.kwargs
        if self.per_item_info:
            kwargs = dict(kwargs, _autopara_per_item_info=self._per_item_info(indices))
        out = self.func(inputs, *self.args, **kwargs)
        if out is None:
            raise TypeError(f"returned None for {len(inputs)} inputs (expected a list with one entry per input)")
        out = list(out)
        if len(out) != len(inputs):
            raise ValueError(f"returned {len(out)} results for {len(inputs)} inputs")
        return out

    @staticmethod
    def _frames(result):
        if result is None:
            return []
        if isinstance(result, Atoms):
            return [from_ase(result)]
        if isinstance(result, (list, tuple)) and all(isinstance(a, Atoms) for a in result):
            return [from_ase(a) for a in result]
        raise TypeError(
            f"returned a {type(result).__name__} for an input; expected ase.Atoms, a list of ase.Atoms or None"
        )

    def __call__(self, items):
        """Per item ``(True, [plain frames])`` or ``(False, message)``."""
        indices = [i for i, _ in items]
        inputs = [to_ase(p) if isinstance(p, tuple) else p for _, p in items]
        try:
            out = self._call(inputs, indices)
            return [(True, self._frames(r)) for r in out]
        except Exception as exc:  # noqa: BLE001 - any error of the user's function fails its items
            if len(items) == 1:
                return [(False, _describe(exc))]
        results = []
        for index, item in items:
            try:
                one = self._call([to_ase(item) if isinstance(item, tuple) else item], [index])
                results.append((True, self._frames(one[0])))
            except Exception as exc:  # noqa: BLE001
                results.append((False, _describe(exc)))
        return results

    def setup(self):
        """Prepares a worker process: runs the initializer."""
        if self.initializer is not None:
            func, args = self.initializer
            func(*args)
