"""Checkpoint and resume of a curve computation.

A checkpoint (``OUT.ckpt``, HDF5, written atomically by rank 0) holds the sweep position at the
last *safe point* (after an accepted field point, never inside a jump bisection): the points
so far (without their m), the grid index, the jumps, the snapshots taken so far, the
magnetisation of the last point (input node order, so a restart may use another number of
ranks) and a fingerprint of mesh + materials + field + solver settings. A checkpoint whose
fingerprint differs is refused. It is written every ``checkpoint_interval_s`` seconds and
when SIGTERM or SIGUSR1 arrives (what SLURM sends before the time limit); the run then stops
with :class:`Interrupted` (non-zero exit) and the same command resumes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import h5py
import numpy as np
from mpi4py import MPI

from magtwin.errors import ArtefactError, MagtwinError

#: solver settings that do not change the result (excluded from the fingerprint)
NEUTRAL_KEYS = ("checkpoint_interval_s",)


class Interrupted(MagtwinError):
    """Stopped by a signal after writing a checkpoint."""

    exit_code = 75  # EX_TEMPFAIL: try again


def fingerprint(mesh, materials_table, field: dict, solver: dict) -> str:
    h = hashlib.sha256()
    for a in (mesh.points_nm, mesh.tetrahedra, mesh.region_id):
        h.update(np.ascontiguousarray(a).tobytes())
    s = {k: v for k, v in solver.items() if k not in NEUTRAL_KEYS}
    h.update(json.dumps([materials_table, field, s], sort_keys=True, default=str).encode())
    return h.hexdigest()


class SignalFlag:
    """Records SIGTERM/SIGUSR1 instead of dying; ``pending(comm)`` agrees across ranks."""

    def __init__(self):
        self.signum = 0
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self._old[s] = signal.signal(s, self._handler)
            except ValueError:  # not the main thread
                pass
        return self

    def _handler(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False

    def pending(self, comm) -> int:
        return int(comm.allreduce(self.signum, op=MPI.MAX))


def write_checkpoint(path: Path, fp: str, meta: dict, m_full: np.ndarray, snapshots: dict) -> None:
    """Rank 0: atomically write the checkpoint file."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with h5py.File(tmp, "w") as f:
        f.attrs["fingerprint"] = fp
        f.attrs["meta_json"] = json.dumps(meta)
        f.create_dataset("m", data=m_full)
        for k, m in snapshots.items():
            f.create_dataset(f"snapshots/{k}", data=m)
    os.replace(tmp, path)


def read_checkpoint(path: Path, fp: str) -> tuple[dict, np.ndarray, dict]:
    """(meta, m, snapshots) of a checkpoint; ArtefactError if unreadable or of another run."""
    try:
        with h5py.File(path, "r") as f:
            got = str(f.attrs["fingerprint"])
            if got != fp:
                raise ArtefactError(
                    "checkpoint belongs to a different mesh or parameter set; delete it to start "
                    "afresh", path)
            meta = json.loads(f.attrs["meta_json"])
            m = f["m"][...]
            snaps = {int(k): v[...] for k, v in f["snapshots"].items()} if "snapshots" in f else {}
    except (OSError, KeyError):
        raise ArtefactError("unreadable checkpoint (delete it to start afresh)", path) from None
    return meta, m, snaps
