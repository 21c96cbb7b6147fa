"""Shared helpers of the micromagnetic benchmarks (``micromag_cube.py``,
``micromag_multigrain.py``): timing a command, the peer venv, running magtwin through its CLI
and magnum.np through ``micromag_peer_magnumnp.py``, and the coercive field of a curve.

Both codes follow the same sweep (start saturated along +h, fixed field steps, every jump of
J.h larger than 5 % of <Js> bisected from the last state before it down to ``refine`` T), so
their Hc and times compare like with like.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venv-peers"


def timed(cmd: list[str], env=None) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run ``cmd`` under /usr/bin/time: (wall s, peak RSS MB, process); the process's CPU time
    (user + system, s, children included) is ``process.cpu_s`` (less disturbed than the wall
    time by other jobs on a loaded machine)."""
    fd, tfile = tempfile.mkstemp(suffix=".time")
    os.close(fd)
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-o", tfile, "-f", "%M %U %S", *cmd], capture_output=True,
                          text=True, env=env)
    wall = time.perf_counter() - t0
    try:
        rss, usr, sys_ = Path(tfile).read_text().split()[-3:]
        rss_mb, proc.cpu_s = float(rss) / 1024, float(usr) + float(sys_)
    except (ValueError, IndexError):
        rss_mb, proc.cpu_s = float("nan"), float("nan")
    os.unlink(tfile)
    return wall, rss_mb, proc


def ensure_peer_venv() -> Path | None:
    """Python of ``benchmarks/.venv-peers`` (created with torch==2.13.0 magnumnp when missing)."""
    py = PEER_VENV / "bin" / "python"
    ok = py.exists() and subprocess.run([py, "-c", "import magnumnp"], capture_output=True).returncode == 0
    if not ok:
        print("creating benchmarks/.venv-peers with torch==2.13.0 magnumnp ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", PEER_VENV], check=True)
        r = subprocess.run([py, "-m", "pip", "install", "-q", "torch==2.13.0", "magnumnp"])
        if r.returncode != 0:
            return None
    return py


def coercive_field(field_T: np.ndarray, jh_T: np.ndarray) -> float | None:
    """mu0 Hc (T, positive): first sign change of J.h along the (descending) curve, linearly
    interpolated between the two points around it (they are ``refine`` apart at a jump)."""
    b, jh = np.asarray(field_T, float), np.asarray(jh_T, float)
    k = np.flatnonzero((jh[:-1] > 0) & (jh[1:] <= 0))
    if not len(k):
        return None
    k = k[0]
    return float(-(b[k] + (b[k + 1] - b[k]) * jh[k] / (jh[k] - jh[k + 1])))


def sweep_args(start: float, stop: float, step: float, refine: float, angle: float) -> list[str]:
    return ["--field-start", str(start), "--field-stop", str(stop), "--field-step", str(step),
            "--angle", str(angle), "--refine-tol", str(refine)]


def run_magtwin(mesh_path: Path, materials_path: Path, out: Path, sweep: list[str], ranks: int = 1,
                settings: dict | None = None) -> dict:
    """Run ``magtwin simulate`` (``mpirun -n ranks`` when > 1); wall time, peak RSS and the curve."""
    import h5py
    import yaml

    cmd = [sys.executable, "-m", "magtwin.cli.main", "-q", "simulate", "--mesh", str(mesh_path),
           "--materials", str(materials_path), *sweep, "--out", str(out)]
    if settings:
        sp = out.with_suffix(".settings.yaml")
        sp.write_text(yaml.safe_dump(settings))
        cmd += ["--settings", str(sp)]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    wall, rss, proc = timed(cmd, dict(os.environ, OMPI_MCA_mpi_yield_when_idle="1"))
    if proc.returncode != 0:
        raise SystemExit(f"magtwin failed:\n{proc.stderr}")
    with h5py.File(out) as f:
        b, jh = f["curve/field_T"][...], f["curve/J_along_field_T"][...]
        its = f["curve/iterations"][...]
    return {"code": "magtwin", "Hc_T": coercive_field(b, jh), "wall_s": wall, "cpu_s": proc.cpu_s, "peak_rss_MB": rss,
            "iterations_on_curve": int(its.sum()), "points": len(b), "ranks": ranks,
            "curve": {"field_T": b.tolist(), "J_along_field_T": jh.tolist(), "iterations": its.tolist()}}


def run_magnumnp(py: Path, args: list[str], cfg: dict | None = None) -> dict:
    """Run ``micromag_peer_magnumnp.py args`` in the peer venv (``cfg``: extra JSON config,
    passed as ``--config FILE``); its JSON result plus wall time and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(py), str(HERE / "micromag_peer_magnumnp.py"), *args]
        if cfg is not None:
            cp = Path(tmp) / "cfg.json"
            cp.write_text(json.dumps(cfg))
            cmd += ["--config", str(cp)]
        wall, rss, proc = timed(cmd, dict(os.environ, OMP_NUM_THREADS="1", CUDA_DEVICE="-1"))
    if proc.returncode != 0:
        return {"code": "magnum.np", "error": proc.stderr.strip().splitlines()[-1:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(wall_s=wall, cpu_s=proc.cpu_s, peak_rss_MB=rss)
    return res
