"""Failure handling for sub-commands that run on several MPI ranks.

When every rank raises the same error (input checks are made collectively: one rank reads,
the verdict is broadcast), rank 0 reports it as one line and all ranks exit with its code.
When only some ranks fail (a rank-local I/O error while writing a checkpoint or snapshot, a
bug), the others would wait forever in their next collective call; the failing rank then
reports its error and calls ``MPI_Abort``, which ends the whole job with a non-zero status
instead of leaving it hanging until the wall-time limit.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback

from magtwin.errors import MagtwinError

#: Seconds a failing rank waits for the others to fail alike before it aborts the job.
GRACE_S = float(os.environ.get("MAGTWIN_MPI_GRACE_S", "10"))


@contextlib.contextmanager
def ranks_fail_together(comm=None, grace_s: float | None = None):
    """Run the ``with`` body on every rank of ``comm`` (default ``MPI.COMM_WORLD``).

    A rank whose body raises waits up to ``grace_s`` seconds for all ranks to fail too
    (non-blocking barrier on a private duplicate of ``comm``, so it cannot match a
    collective of the body). If they do, rank 0 re-raises (the CLI prints the one line) and
    the other ranks exit silently with the same code. Otherwise it prints
    ``rank k: <error>`` and aborts the job with the error's exit code.
    """
    from mpi4py import MPI

    comm = comm or MPI.COMM_WORLD
    if comm.Get_size() == 1:
        yield
        return
    guard = comm.Dup()
    try:
        yield
    except Exception as exc:
        code = exc.exit_code if isinstance(exc, MagtwinError) else 1
        req = guard.Ibarrier()
        deadline = time.monotonic() + (GRACE_S if grace_s is None else grace_s)
        while not req.Test():
            if time.monotonic() > deadline:
                what = str(exc) if isinstance(exc, MagtwinError) else traceback.format_exc()
                print(f"magtwin: error on MPI rank {comm.Get_rank()} only (aborting all "
                      f"{comm.Get_size()} ranks): {what}", file=sys.stderr, flush=True)
                comm.Abort(code)
            time.sleep(0.01)
        if comm.Get_rank() != 0:
            raise SystemExit(code) from None
        raise
