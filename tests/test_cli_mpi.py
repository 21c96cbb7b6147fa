"""Failures of MPI-parallel sub-commands end the job with one clear message instead of a hang.

Real ``mpirun -n 2``: a failure on one rank only must not leave the other rank waiting in a
collective call forever (on a cluster: until the wall-time limit), and a failure on all ranks
(the usual case for bad input) must print exactly one line.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.util import assert_one_line_error, run_mpi

pytestmark = pytest.mark.mpi

ONE_RANK_FAILS = textwrap.dedent("""
    from mpi4py import MPI
    from magtwin.cli._mpi import ranks_fail_together
    from magtwin.errors import InputError
    comm = MPI.COMM_WORLD
    with ranks_fail_together(grace_s=2):
        if comm.rank == 1:
            raise InputError("cannot write the checkpoint", "/scratch/ckpt.h5")
        comm.allreduce(1)            # rank 0 waits here for rank 1, which never comes
""")


def test_failure_on_one_rank_aborts_the_job(tmp_path):
    script = tmp_path / "one_rank.py"
    script.write_text(ONE_RANK_FAILS)
    proc = run_mpi(2, script, timeout=120)
    assert proc.returncode != 0
    assert "rank 1 only" in proc.stderr
    assert "/scratch/ckpt.h5: cannot write the checkpoint" in proc.stderr


def test_failure_on_all_ranks_is_one_line(tmp_path):
    (tmp_path / "mat.yaml").write_text("grain: {Js_T: 1.61}\n")
    proc = run_mpi(2, "-m", "magtwin.cli.main", "simulate", "--mesh", tmp_path / "missing.h5",
                   "--materials", tmp_path / "mat.yaml", "--out", tmp_path / "out.h5", timeout=120)
    assert_one_line_error(proc, "missing.h5")
    assert proc.returncode == 2
    assert "aborting all" not in proc.stderr and not (tmp_path / "out.h5").exists()
