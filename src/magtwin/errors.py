"""Errors that reach the user as one clear line.

Every stage raises :class:`MagtwinError` (or a subclass) for problems with the user's data or
configuration; the CLI prints ``magtwin: error: <file>: <problem>`` and exits non-zero
instead of a traceback from deep inside a library.
"""

from __future__ import annotations

import os


class MagtwinError(Exception):
    """A problem the user can fix, optionally tied to a file.

    Parameters
    ----------
    problem : str
        What is wrong, one sentence.
    path : str or os.PathLike, optional
        The file (or folder) the problem is about; printed first.
    """

    exit_code = 2

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


class InputError(MagtwinError):
    """Input data (image stack, labels, mesh, CSV) is unusable."""


class ConfigError(MagtwinError):
    """A configuration value is wrong (type, range, unknown key, missing file)."""


class ArtefactError(MagtwinError):
    """An HDF5 artefact is of the wrong stage or schema, or incomplete."""


class ConvergenceError(MagtwinError):
    """A solver did not converge within its budget."""

    exit_code = 3
