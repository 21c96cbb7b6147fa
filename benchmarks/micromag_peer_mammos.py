"""Peer run for the cube benchmark with mammos-mumag (finite elements, esys-escript assembly,
JAX energy minimiser on the CPU).

mammos-mumag 0.11.0 (PyPI) still needs esys-escript: its simulation scripts (``scripts/loop.py``
etc.) read the ``.fly`` mesh and assemble the FE matrices with escript, are started through
``run-escript`` and then minimise with JAX. Debian's ``python3-escript`` 5.6 is built for
/usr/bin/python3 and NumPy 1.24 (it segfaults with NumPy 2), so ``benchmarks/.venv-mammos`` is
made from /usr/bin/python3 with numpy pinned to the system's 1.24.2, hence jax 0.4.38 (the last
JAX release that accepts it) instead of the jax 0.10 a plain ``pip install mammos-mumag`` pulls.

Three roles in one file:

* :func:`run_mammos` (project venv, used by ``micromag_cube.py``): builds the mesh (magtwin's
  structured 6-tet cube, the same elements magtwin solves on, plus an air sphere and a spherical
  shell mapped to infinity, the layout of mammos-mumag's own ``cube*_singlegrain`` meshes: air to
  1.04 x the magnet's circumradius, shell to 1.8 x that) and writes it as a finley ``.fly``
  (tags 1 magnet, 2 air, 3 shell), then runs the ``--worker`` under /usr/bin/time.
* ``--worker`` (``.venv-mammos``): writes the ``.krn`` materials and ``.p2`` parameters with
  mammos-mumag's own ``Materials``/``Parameters`` classes and starts ``run-escript`` on this file.
* ``--escript`` (under ``run-escript``): assembles with mammos-mumag's ``escript2arrays`` and
  relaxes every field point with its ``loop.minimize`` (Hestenes-Stiefel NCG, its default
  tolerance ``tol_fun`` = 1e-10), driving the sweep of ``micromag_peer_magnumnp.py``: start along
  +h, 0.25 T steps, a jump of J.h by more than 5 % of Js bisected from the state before it down to
  ``refine`` T, stop at the first point with J.h < 0. (mammos-mumag's own ``loop.py`` only does
  fixed steps, and its jitted minimiser cannot abandon a trial early as magnum.np's can.)

    python benchmarks/micromag_peer_mammos.py [--cell-nm 2] [--refine 0.002]

prints the result row as JSON (also written to ``benchmarks/out/micromag_peer_mammos_<cell>nm.json``). JAX is held to one thread (as magnum.np and magtwin on 1 rank).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-mammos"
SYSTEM_PY = "/usr/bin/python3"            # the Python Debian's python3-escript is built for
RUN_ESCRIPT = "run-escript3"
PINS = ["numpy==1.24.2", "scipy==1.10.1", "jax[cpu]<0.5", "mammos-mumag==0.11.0"]
EDGE, JS, K1, A, ANGLE = 40.0, 1.61, 4.3e6, 7.7e-12, 1.0
AIR_RATIO, SHELL_RATIO = 18.0 / (10.0 * math.sqrt(3.0)), 1.8   # as mammos-mumag's cube20 mesh
ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _site_packages() -> Path:
    return next((VENV / "lib").glob("python3*/site-packages"))


def ensure_mammos_venv() -> tuple[Path | None, str]:
    """Python of ``benchmarks/.venv-mammos`` (created when missing); (None, why) if impossible."""
    py = VENV / "bin" / "python"
    if not Path(SYSTEM_PY).exists() or subprocess.run(["which", RUN_ESCRIPT], capture_output=True).returncode:
        return None, "needs esys-escript: Debian python3-escript (run-escript3) is not installed"
    ok = py.exists() and subprocess.run([py, "-c", "import mammos_mumag, jax"], capture_output=True).returncode == 0
    if not ok:
        print("creating benchmarks/.venv-mammos (/usr/bin/python3, numpy 1.24, mammos-mumag) ...", flush=True)
        subprocess.run([SYSTEM_PY, "-m", "venv", VENV], check=True)
        r = subprocess.run([py, "-m", "pip", "install", "-q", *PINS], capture_output=True, text=True)
        if r.returncode != 0:
            return None, "pip install of mammos-mumag into .venv-mammos failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return py, ""


# ---------------------------------------------------------------- project venv: mesh and run
def write_cube_fly(path: Path, cell_nm: float) -> tuple[int, int, int]:
    """Cube of EDGE nm centred at 0 (~cell_nm elements) + air + shell as finley ``.fly``;
    returns (magnet elements, magnet nodes, all nodes)."""
    import numpy as np

    from magtwin.micromag.airshell import build_air
    from magtwin.micromag.shapes import box_mesh

    n = int(round(EDGE / cell_nm))
    mag = box_mesh((EDGE,) * 3, (n,) * 3, origin_nm=(-EDGE / 2,) * 3)   # shell map is about 0
    air = build_air(mag.points_nm, mag.tetrahedra, inner_ratio=AIR_RATIO, shell_ratio=SHELL_RATIO)
    pts = np.concatenate([mag.points_nm, air.points])
    r_c = np.linalg.norm(pts[air.tets].mean(axis=1), axis=1)
    tags = np.concatenate([np.ones(len(mag.tetrahedra), int), np.where(r_c > air.r_inner, 3, 2)])
    tets = np.concatenate([mag.tetrahedra, air.tets]) + 1
    with open(path, "w") as f:
        f.write(f"magtwin cube {EDGE:g} nm\n3D-nodes {len(pts)}\n")
        ids = np.arange(1, len(pts) + 1)
        np.savetxt(f, np.column_stack([ids, ids, np.zeros(len(pts)), pts]),
                   fmt=["%d", "%d", "%d", "%.16e", "%.16e", "%.16e"])
        f.write(f"Tet4 {len(tets)}\n")
        np.savetxt(f, np.column_stack([np.arange(1, len(tets) + 1), tags, tets]), fmt="%d")
        f.write("Tri3 0\nTri3_Contact 0\nPoint1 0\nTags\n")
    return len(mag.tetrahedra), len(mag.points_nm), len(pts)


def run_mammos(cell_nm: float = 2.0, refine_T: float = 0.002, step_T: float = 0.25, stop_T: float = -8.0,
               angle_deg: float = ANGLE) -> dict:
    """The cube with mammos-mumag: the result row (``Hc_T``, ``wall_s``, ``cpu_s``,
    ``peak_rss_MB``, ``iterations`` (NCG), ``field_evaluations``, ``elements``/``nodes`` of the
    magnet, ``nodes_total`` with air, ...) or ``{"code": "mammos-mumag", "error": why}``."""
    sys.path.insert(0, str(HERE))
    from micromag_peers import timed

    py, why = ensure_mammos_venv()
    if py is None:
        return {"code": "mammos-mumag", "error": why}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        elements, nodes, nodes_total = write_cube_fly(work / "cube.fly", cell_nm)
        cmd = [str(py), str(Path(__file__).resolve()), "--worker", "--dir", str(work), "--refine", str(refine_T),
               "--step", str(step_T), "--stop", str(stop_T), "--angle", str(angle_deg)]
        env = dict(os.environ, OMP_NUM_THREADS="1", XLA_FLAGS=ONE_THREAD, JAX_PLATFORMS="cpu")
        env.pop("PYTHONPATH", None)
        wall, rss, proc = timed(cmd, env)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return {"code": "mammos-mumag", "error": (lines or ["failed without a message"])[-1][:300]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(wall_s=wall, cpu_s=proc.cpu_s, peak_rss_MB=rss, elements=elements, nodes=nodes,
               nodes_total=nodes_total, cell_nm=cell_nm, refine_T=refine_T,
               note=f"mammos-mumag 0.11.0 (jax 0.4.38, numpy 1.24, esys-escript 5.6), 1 thread; magtwin's cube "
                    f"mesh + air/shell to {AIR_RATIO:.2f}/{AIR_RATIO * SHELL_RATIO:.2f} x circumradius; "
                    "wall includes escript assembly and JIT")
    return res


# ---------------------------------------------------------------- .venv-mammos: input files
def worker(a) -> None:
    import mammos_mumag
    import mammos_units as u
    from mammos_mumag.materials import MaterialDomain, Materials
    from mammos_mumag.parameters import Parameters

    work = Path(a.dir)
    t = math.radians(a.angle)
    hdir = [math.sin(t), 0.0, math.cos(t)]
    eq = u.magnetic_flux_field()
    tesla = lambda b: (b * u.T).to(u.A / u.m, equivalencies=eq)    # noqa: E731
    magnet = MaterialDomain(Ms=tesla(JS), A=A, K1=K1, theta=0.0, phi=0.0)   # easy axis z
    Materials(domains=[magnet, MaterialDomain(), MaterialDomain()]).write_krn(work / "cube.krn")
    Parameters(h_start=tesla(0.0), h_final=tesla(a.stop), h_step=tesla(-a.step), h_vect=hdir, m_vect=hdir,
               m_final=tesla(0.0)).write_p2(work / "cube.p2")
    # run-escript starts /usr/bin/python3: give it this venv's packages (jax, mammos_*).
    env = dict(os.environ, PYTHONPATH=f"{mammos_mumag._scripts_directory}:{_site_packages()}")
    cmd = [RUN_ESCRIPT, str(Path(__file__).resolve()), "--escript", "--dir", str(work), "--refine", str(a.refine)]
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("run-escript failed: " + ((r.stderr.strip().splitlines() or ["?"])[-1]))
    print(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- run-escript: the sweep
def escript_sweep(a) -> None:
    t_start = time.perf_counter()
    os.chdir(a.dir)
    import h5py  # noqa: F401  (before escript: the wheel's HDF5 must be loaded first)
    import jax.numpy as jnp
    import loop as L          # mammos_mumag/scripts/loop.py (on PYTHONPATH)
    from mapping import escript2arrays
    from tools import get_memory_usage, read_params

    m0, pars, _ = escript2arrays("cube", 0)
    L.m = m0      # loop.M_inv reads the module global m (set by loop.py's __main__ the same way)
    (_size, _scale), _mag, (hdir, start, stop, step), _, _ = read_params("cube")
    js_mean = JS
    thresh = 0.05 * js_mean
    mh_args = (jnp.asarray(hdir), pars["meas"], pars["volume"])
    count = {"it": 0, "calls": 0, "relax": 0}
    t_setup = time.perf_counter() - t_start

    def relax(b, state):
        """Minimise at b T from state (m, alt_args): (J.h in T, new state)."""
        m, alt = state
        _, m, cg_iter, alt, calls = L.minimize(m, b, pars, alt, 0)
        count["it"] += int(cg_iter)
        count["calls"] += int(calls)
        count["relax"] += 1
        if count["relax"] == 1:
            count["first_s"] = time.perf_counter() - t0      # includes JAX compilation
        return float(L.compute_mh(m, mh_args)[0]), (m, alt)

    def jumped(jh, ref):
        return abs(jh - ref) > thresh

    n_dof = len(m0)
    state = (m0, (jnp.zeros(n_dof // 3), jnp.zeros(n_dof)))
    grid, b = [], start
    while b >= stop - 1e-9:
        grid.append(b)
        b += step                  # step < 0
    pts, jumps, last = [], [], None
    t0 = time.perf_counter()
    for b in grid:
        jh, new = relax(b, state)
        if jh < 0 and "steps_s" not in count:    # where a steps-only sweep would have stopped
            count["steps_s"] = time.perf_counter() - t0
        if pts and pts[-1][0] - b > a.refine and jumped(jh, pts[-1][1]):
            ha, hb, after = pts[-1][0], b, (jh, new)
            while ha - hb > a.refine:          # bisect from the last state before the jump
                hm = 0.5 * (ha + hb)
                r, s = relax(hm, last)
                if jumped(r, pts[-1][1]):
                    hb, after = hm, (r, s)
                else:
                    ha, last = hm, s
                    pts.append((hm, r))
            jumps.append((ha, hb))
            jh, new = after
            if hb > b and jh >= 0:             # jump located above the grid point: go on to it
                pts.append((hb, jh))
                jh, new = relax(b, new)
            else:
                b = hb
        pts.append((b, jh))
        state = last = new
        if jh < 0:
            break
    solve_s = time.perf_counter() - t0
    fb = [p[0] for p in pts]
    fj = [p[1] for p in pts]
    hc = None
    for k in range(len(fj) - 1):
        if fj[k] > 0 >= fj[k + 1]:
            hc = -(fb[k] + (fb[k + 1] - fb[k]) * fj[k] / (fj[k] - fj[k + 1]))
            break
    print(json.dumps({"code": "mammos-mumag", "Hc_T": hc, "jumps_T": jumps, "iterations": count["it"],
                      "field_evaluations": count["calls"], "minimisations": count["relax"],
                      "setup_s": t_setup, "first_minimisation_s": count.get("first_s"), "solve_s": solve_s,
                      "solve_steps_only_s": count.get("steps_s"), "rss_escript_MB": get_memory_usage(),
                      "curve": {"field_T": fb, "J_along_field_T": fj}}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--escript", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--cell-nm", type=float, default=2.0, help="element size (nm) of the 40 nm cube")
    p.add_argument("--refine", type=float, default=0.002, help="bisect the switching field down to this (T)")
    p.add_argument("--step", type=float, default=0.25, help="field step (T)")
    p.add_argument("--stop", type=float, default=-8.0, help="last field (T)")
    p.add_argument("--angle", type=float, default=ANGLE, help="field angle from the easy axis (deg)")
    a = p.parse_args()
    if a.escript:
        escript_sweep(a)
    elif a.worker:
        worker(a)
    else:
        row = run_mammos(a.cell_nm, a.refine, a.step, a.stop, a.angle)
        print(json.dumps({k: v for k, v in row.items() if k != "curve"}))
        (HERE / "out").mkdir(exist_ok=True)
        out = HERE / "out" / f"micromag_peer_mammos_{a.cell_nm:g}nm.json"
        out.write_text(json.dumps(dict(row, host_load=os.getloadavg()), indent=2))


if __name__ == "__main__":
    main()
