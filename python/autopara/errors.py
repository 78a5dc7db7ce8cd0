"""The exceptions autopara raises. Each carries the message the ``autopara``
command line prints after ``autopara: error:`` for the same problem.

A Rust panic inside the extension (a bug) arrives as ``AutoparaError`` too,
never as a crash or a ``PanicException``.
"""


class AutoparaError(Exception):
    """Base of every autopara error."""


class InputError(AutoparaError, ValueError):
    """Inputs that cannot be found or read, or that do not fit the op."""


class OutputError(AutoparaError):
    """Outputs that cannot be written: an output that is also an input, a lock held by another run, ..."""


class ArgsError(AutoparaError, ValueError):
    """Invalid arguments of an op, a calculator or a setting; the message names the field."""


class CacheError(AutoparaError):
    """An existing output this call may not reuse (other arguments, inputs or code, or modified);
    ``OutputSpec(..., overwrite=True)`` recomputes it."""


class ItemFailedError(AutoparaError):
    """An item failed and ``skip_failed`` is false; a rerun resumes from it."""


class FileError(AutoparaError, OSError):
    """A file that cannot be opened, written or parsed (the message names file, frame and line)."""
