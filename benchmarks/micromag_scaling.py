"""Benchmark: cost per minimisation iteration and memory versus mesh size, 1 and 2 ranks.

For boxes of 2 nm cells (6 tetrahedra per cell) from ~10^4 to ~10^6 tetrahedra, one
Nd2Fe14B grain with the demagnetising field (air shell included), the BB minimiser runs a
fixed number of iterations from the saturated state in a reversed field at 30 deg. Reported:
set-up time, time per iteration, node-iterations per second (magnet nodes x iterations / s),
peak memory (largest rank, from /usr/bin/time) and the 2-rank speed-up.

    python benchmarks/micromag_scaling.py [--quick] [--ranks 1 2] [--iterations 30]

Writes ``benchmarks/out/micromag_scaling[_quick].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(n: int, iterations: int) -> None:
    from mpi4py import MPI

    from magtwin.micromag.curve import Simulation
    from magtwin.micromag.minimize import minimize
    from magtwin.micromag.shapes import box_mesh

    comm = MPI.COMM_WORLD
    mesh = box_mesh((2.0 * n,) * 3, (n,) * 3)
    t0 = MPI.Wtime()
    sim = Simulation(mesh, {"grain": {}}, {"angle_deg": 30.0}, {}, comm)
    setup = MPI.Wtime() - t0
    sim.state.set_uniform([0, 0, 1])
    sim.effective.b_ext = -3.0 * sim.h
    comm.Barrier()
    t0 = MPI.Wtime()
    res = minimize(sim.effective, torque_tol_T=1e-12, max_iterations=iterations, preconditioner=sim.preconditioner)
    comm.Barrier()
    dt = MPI.Wtime() - t0
    if comm.rank == 0:
        dm = sim.effective.demag
        print(json.dumps({"cells_per_edge": n, "elements": len(mesh.tetrahedra), "nodes": len(mesh.points_nm),
                          "air_nodes": dm.n_air_nodes, "ranks": comm.size, "setup_s": setup,
                          "iterations": res.iterations, "s_per_iteration": dt / res.iterations,
                          "node_iterations_per_s": len(mesh.points_nm) * res.iterations / dt,
                          "ksp_iterations_per_iteration": dm.total_iterations / (res.iterations + 1)}))


def run(n: int, ranks: int, iterations: int) -> dict:
    fd, tfile = tempfile.mkstemp(suffix=".time")
    os.close(fd)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(n), "--iterations", str(iterations)]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    env = dict(os.environ, OMPI_MCA_mpi_yield_when_idle="1")
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-o", tfile, "-f", "%M", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"cells_per_edge": n, "ranks": ranks, "error": proc.stderr.strip().splitlines()[-1:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    try:  # /usr/bin/time reports the largest process (mpirun's children: the largest rank)
        res["peak_rss_MB"] = float(Path(tfile).read_text().split()[-1]) / 1024
    except (ValueError, IndexError):
        res["peak_rss_MB"] = float("nan")
    os.unlink(tfile)
    res["wall_s"] = wall
    res["MB_per_million_elements"] = res["peak_rss_MB"] / (res["elements"] / 1e6)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="two small sizes only")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--sizes", type=int, nargs="+", help="cells per box edge")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.iterations)
        return
    sizes = args.sizes or ([12, 20] if args.quick else [12, 25, 40, 56])
    rows = []
    print(f"{'elements':>10}{'nodes':>9}{'air':>8}{'ranks':>6}{'setup s':>9}{'s/iter':>9}{'node-it/s':>11}"
          f"{'ksp/it':>7}{'peak MB':>9}{'MB/Mtet':>9}")
    for n in sizes:
        for r in args.ranks:
            res = run(n, r, args.iterations)
            rows.append(res)
            if "error" in res:
                print(f"n={n} ranks={r}: {res['error']}")
                continue
            print(f"{res['elements']:>10}{res['nodes']:>9}{res['air_nodes']:>8}{r:>6}{res['setup_s']:>9.1f}"
                  f"{res['s_per_iteration']:>9.4f}{res['node_iterations_per_s']:>11.3g}"
                  f"{res['ksp_iterations_per_iteration']:>7.1f}{res['peak_rss_MB']:>9.0f}"
                  f"{res['MB_per_million_elements']:>9.0f}", flush=True)
    by = {(r["cells_per_edge"], r["ranks"]): r for r in rows if "error" not in r}
    for n in sizes:
        if (n, 1) in by and (n, 2) in by:
            print(f"speed-up on 2 ranks, {by[(n, 1)]['elements']} elements: "
                  f"{by[(n, 1)]['s_per_iteration'] / by[(n, 2)]['s_per_iteration']:.2f}")
    outdir = HERE / "out"
    outdir.mkdir(exist_ok=True)
    name = "micromag_scaling_quick.json" if args.quick else "micromag_scaling.json"
    (outdir / name).write_text(json.dumps({"results": rows, "host_load": os.getloadavg()}, indent=2))
    print(f"wrote {outdir / name}")


if __name__ == "__main__":
    main()
