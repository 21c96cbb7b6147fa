"""Helpers shared by the tests (run the CLI, check one-line errors)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, check=False, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run ``magtwin ARGS`` in a subprocess (as a user would), capturing output."""
    cmd = [sys.executable, "-m", "magtwin.cli.main", *map(str, args)]
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"magtwin {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """The command failed with a single error line (no traceback) containing ``fragments``."""
    assert proc.returncode != 0, f"expected failure, got rc=0; stdout={proc.stdout!r}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert len(lines) == 1, proc.stderr
    for frag in fragments:
        assert frag in lines[0], f"{frag!r} not in {lines[0]!r}"
    return lines[0]


def run_mpi(n: int, *args, timeout=600, env=None) -> subprocess.CompletedProcess:
    """Run ``mpirun -n N python ARGS`` (ranks yield the core while waiting: the test
    machine has 2 cores shared with other jobs)."""
    cmd = ["mpirun", "-n", str(n), sys.executable, *map(str, args)]
    full_env = dict(os.environ, OMPI_MCA_mpi_yield_when_idle="1", **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT)


def write_ingest(path, stack, voxel_size_nm=(10.0, 5.0, 5.0)):
    """Write ``stack`` (z, y, x) as an ingest-stage artefact at ``path`` (returned)."""
    from magtwin.io.artefact import ArtefactWriter

    with ArtefactWriter(path, "ingest", {"test": True}) as w:
        v = w.create_volume("volume", stack.shape, stack.dtype)
        for k in range(stack.shape[0]):
            v[k] = stack[k]
        w.h5.attrs["voxel_size_nm"] = tuple(float(x) for x in voxel_size_nm)
    return path
