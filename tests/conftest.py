"""Shared fixtures: a real single-node SLURM cluster for the ``slurm`` tests.

The cluster (munged, slurmctld, slurmd; see tools/slurm/cluster.py) is started once per test
session, in a fresh state directory, by the first test that asks for ``slurm_cluster``, and
stopped at the end (each daemon by its pid, also when tests fail). Where it cannot run (not
root, SLURM/munge packages missing) the tests are skipped with the reason; under CI as root
that is a failure instead, because ``./run.sh`` installs the packages there.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_cluster_module():
    spec = importlib.util.spec_from_file_location("magtwin_slurm_cluster", ROOT / "tools/slurm/cluster.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_env() -> dict[str, str]:
    """Environment for Snakemake/sbatch: this interpreter's venv first on PATH (jobs inherit
    it through ``sbatch --export=ALL``), Open MPI allowed to run as root, one thread per rank."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    env.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MPLBACKEND", "Agg")
    if "PETSC_DIR" not in env and not Path("/usr/lib/petsc").exists():
        for d in sorted(Path("/usr/lib/petscdir").glob("petsc3.*/*-real")):
            env["PETSC_DIR"] = str(d)
    for var in [v for v in env if v.startswith(("SLURM_", "SBATCH_", "SRUN_"))]:
        del env[var]  # not from an enclosing job
    return env


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node SLURM cluster (object with ``.node``, ``.dir``, ``.conf``)."""
    mod = _load_cluster_module()
    reason = mod.cannot_run_reason()
    if reason:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(f"SLURM cluster cannot run under CI: {reason}")
        print(f"\nSLURM tests skipped: {reason}", file=sys.stderr)
        pytest.skip(f"SLURM tests skipped: {reason}")
    running = mod.SYSTEM_CONF.is_symlink() and mod.SYSTEM_CONF.resolve().exists()
    if running:
        other = mod.Cluster(mod.SYSTEM_CONF.resolve().parent)
        if all(other.running().values()):
            # A cluster started by hand (tools/slurm/cluster.py start): use it, leave it running.
            other.node = _node_name()
            yield other
            return
    state = Path(tempfile.mkdtemp(prefix="magtwin-slurm-", dir="/tmp"))  # short: munge socket path
    cluster = mod.Cluster(state, ctld_port=_free_port(), slurmd_port=_free_port())
    try:
        cluster.start()
    except mod.ClusterError as exc:
        shutil.rmtree(state, ignore_errors=True)
        pytest.fail(f"could not start the test SLURM cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)


def _node_name() -> str:
    import subprocess

    return subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True).stdout.split()[0]
