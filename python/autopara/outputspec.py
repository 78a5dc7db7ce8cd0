"""wfl's ``OutputSpec``: where an op's results go."""

import os
from pathlib import Path

from .configset import ConfigSet, _resolve, tags_text
from .errors import ArgsError

STEM = "{stem}"


class OutputSpec:
    """Where an op's results go, as in wfl.

    ``files=None`` keeps the results in memory (never cached). A file name
    writes every result into that extxyz file; a name holding ``{stem}``
    (``"out/{stem}.md.xyz"``) writes one file per input file, named after it.
    ``tags`` are added to the info of every output configuration. An existing
    output is reused only when it was written by the same op with the same
    arguments, seed and inputs; otherwise it is refused with what changed
    unless ``overwrite=True``. ``flush`` is accepted for wfl's scripts and has
    no effect: outputs appear complete, and an interrupted run resumes.
    """

    def __init__(self, files=None, *, file_root=None, overwrite=False, flush=True, write_kwargs=None, tags=None):
        if write_kwargs and dict(write_kwargs) != {"format": "extxyz"}:
            raise ArgsError(f"OutputSpec: write_kwargs {write_kwargs!r}: autopara writes extxyz only")
        if files is None:
            self._target = None
        elif isinstance(files, (str, os.PathLike)):
            self._target = str(_resolve(files, file_root))
        else:
            files = list(files)
            if len(files) == 1:
                self._target = str(_resolve(files[0], file_root))
            else:
                raise ArgsError(
                    "OutputSpec: for one output per input file give a template holding {stem}, "
                    "e.g. OutputSpec('out/{stem}.xyz')"
                )
        self.overwrite = bool(overwrite)
        self.tags = dict(tags or {})
        self.flush = flush

    @property
    def per_input(self):
        """True for one output file per input file (a ``{stem}`` template)."""
        return self._target is not None and STEM in self._target

    @property
    def in_memory(self):
        """True when results stay in memory."""
        return self._target is None

    def _native_outputs(self):
        kind = "memory" if self._target is None else ("per_input" if self.per_input else "file")
        return (kind, self._target or "", self.overwrite, tags_text(self.tags))

    def files_for(self, inputs):
        """The output files for ``inputs`` (a ConfigSet)."""
        if self._target is None:
            return []
        if not self.per_input:
            return [Path(self._target)]
        return [Path(self._target.replace(STEM, Path(f).stem)) for f in inputs.files]

    def __repr__(self):
        return f"OutputSpec({self._target!r}, overwrite={self.overwrite}, tags={self.tags!r})"


def result_configset(outputs, result):
    """The ConfigSet an op returns: its output files, or the results in
    memory nested as the inputs were (one entry per input item: its
    configuration, or the list of them when it gave several)."""
    if result.get("files"):
        return ConfigSet(result["files"])
    from ._convert import to_ase

    nested = []
    for path, ok, value in result.get("items", []):
        if not ok:
            continue
        frames = [to_ase(p) for p in value]
        entry = frames[0] if len(frames) == 1 else frames
        place = nested
        for k in path[:-1]:
            while len(place) <= k:
                place.append([])
            if not isinstance(place[k], list):
                place[k] = [place[k]]
            place = place[k]
        k = path[-1] if path else 0
        while len(place) <= k:
            place.append([])
        place[k] = entry
    return ConfigSet(_prune(nested))


def _prune(nested):
    return [(_prune(i) if isinstance(i, list) else i) for i in nested]
