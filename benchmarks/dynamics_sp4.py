"""µMAG standard problem #4: time to solution of ``magtwin dynamics`` versus magnum.np.

Both codes, on this machine in the same run: relax the s-state in zero field, apply field 1
(µ0H = (-24.6, 4.3, 0) mT) or field 2 ((-35.5, -6.3, 0) mT) and integrate LLG (alpha = 0.02,
gamma = 2.211e5 m/(A s)) until <mx> first crosses zero (the SP4 observable). magtwin runs
its P1 FEM on a structured tetrahedral mesh of the same cell size as magnum.np's
finite-difference grid (FFT demag), one element across the thickness, with the hybrid FEM/BEM
demag by default (``--demag-method airshell`` for the air shell, whose 5 nm in-plane
demagnetising factors of this film are 25 % low).

magnum.np (with torch) is installed into a separate venv ``benchmarks/.venv-peers`` on first
use (``pip install torch==2.13.0 magnumnp``), never into the project's ``.venv``.

    python benchmarks/dynamics_sp4.py [--quick] [--cell-nm 5] [--fields 1,2] [--ranks 1]
                                      [--methods rk5dp,arkimex] [--demag-method fembem]

prints a table and writes ``benchmarks/out/dynamics_sp4[_quick][_rN].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / ".venv-peers"
FIELDS_MT = {1: "-24.6,4.3,0", 2: "-35.5,-6.3,0"}
GAMMA = 2.211e5 / (4e-7 * np.pi)        # SP4's gamma0 = 2.211e5 m/(A s), in rad/(s T)
JS = 8e5 * 4e-7 * np.pi                 # Ms = 8e5 A/m


def peers_python() -> Path:
    py = PEERS / "bin" / "python"
    if not py.exists():
        # a venv made from a venv's python is based on the base interpreter, not on .venv
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(PEERS / "bin" / "pip"), "install", "-q", "torch==2.13.0", "magnumnp"], check=True)
    return py


def run_magtwin(work: Path, cell: float, field: int, ranks: int, method: str, demag: str) -> dict:
    from magtwin.io.mesh_artefact import write_mesh_artefact
    from magtwin.micromag.shapes import box_mesh

    n = (int(round(500 / cell)), int(round(125 / cell)), 1)
    mesh = box_mesh((500.0, 125.0, 3.0), n)
    write_mesh_artefact(work / "mesh.h5", mesh)
    (work / "mat.yaml").write_text(f"grain: {{K1_J_per_m3: 0.0, Js_T: {JS!r}, A_J_per_m: 1.3e-11}}\n")
    x = mesh.points_nm[:, 0]
    m0 = np.where(((x < 1e-6) | (x > 500 - 1e-6))[:, None], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0])
    with h5py.File(work / "init.h5", "w") as f:   # ends along y: relaxes into the s-state
        f["snapshots/0/m"] = m0
    out = work / f"magtwin_f{field}_{method}_{demag}.h5"
    cmd = ([] if ranks == 1 else ["mpirun", "-n", str(ranks)]) + [
        sys.executable, "-m", "magtwin.cli.main", "-q", "dynamics", "--mesh", str(work / "mesh.h5"),
        "--materials", str(work / "mat.yaml"), "--alpha", "0.02", "--gamma", repr(GAMMA),
        "--t-end-ns", "1.0", f"--field={FIELDS_MT[field]}", "--field-unit", "mT", "--initial",
        str(work / "init.h5"), "--relax", "--relax-torque", "1e-5", "--stop-crossing", "x:0",
        "--demag-rtol", "1e-6", "--demag-method", demag, "--method", method, "--out", str(out)]
    if method == "arkimex":
        cmd[-2:-2] = ["--rtol", "1e-4", "--atol", "1e-4", "--dt-max-ns", "0.002"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"magtwin failed:\n{proc.stderr}")
    with h5py.File(out) as f:
        cross = json.loads(f.attrs["crossing_json"])
        stats = json.loads(f.attrs["stats_json"])
        m_relaxed = f["timeseries/m_mean"][0].tolist()
    return {"code": f"magtwin {method} {demag}", "cell_nm": cell, "field": field, "ranks": ranks, "nodes": len(mesh.points_nm),
            "m_relaxed": m_relaxed, "crossing": cross, "wall_total_s": wall, "stats": stats}


def run_magnumnp(work: Path, cell: float, field: int, threads: int) -> dict:
    py = peers_python()
    out = work / f"magnumnp_f{field}.json"
    t0 = time.perf_counter()
    proc = subprocess.run([str(py), str(HERE / "peers" / "magnumnp_sp4.py"), repr(cell), str(field),
                           str(threads), str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"magnum.np failed:\n{proc.stderr[-2000:]}")
    d = json.loads(out.read_text())
    d.pop("series", None)
    d["wall_process_s"] = wall
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 nm cells, field 1 only")
    ap.add_argument("--cell-nm", type=float, default=5.0)
    ap.add_argument("--fields", default="1,2")
    ap.add_argument("--ranks", type=int, default=1, help="MPI ranks for magtwin = torch threads for magnum.np")
    ap.add_argument("--methods", default="rk5dp,arkimex", help="magtwin integrators to time")
    ap.add_argument("--demag-method", default="fembem", help="magtwin demag: fembem, airshell or both 'fembem,airshell'")
    ap.add_argument("--no-peer", action="store_true", help="skip magnum.np")
    a = ap.parse_args()
    cell = 10.0 if a.quick else a.cell_nm
    fields = [1] if a.quick else [int(f) for f in a.fields.split(",")]
    work = HERE / "out" / "sp4"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for fld in fields:
        for method in a.methods.split(","):
            for demag in a.demag_method.split(","):
                rows.append(run_magtwin(work, cell, fld, a.ranks, method, demag))
        if not a.no_peer:
            rows.append(run_magnumnp(work, cell, fld, a.ranks))
    print(f"µMAG SP4, cell {cell:g} nm, {a.ranks} rank(s)/thread(s); first zero crossing of <mx>")
    print(f"{'code':24s} {'field':>5s} {'<mx>0':>7s} {'<my>0':>7s} {'t_cross ns':>10s} {'<my>':>7s} "
          f"{'<mz>':>7s} {'wall s':>8s} {'/peer':>6s}")
    peer_wall = {r["field"]: r["wall_total_s"] for r in rows if not r["code"].startswith("magtwin")}
    for r in rows:
        c = r["crossing"] or {"t_ns": float("nan"), "m_mean": [np.nan] * 3}
        r["wall_ratio_to_peer"] = r["wall_total_s"] / peer_wall[r["field"]] if r["field"] in peer_wall else None
        ratio = f"{r['wall_ratio_to_peer']:6.2f}" if r["wall_ratio_to_peer"] is not None else "     -"
        print(f"{r['code']:24s} {r['field']:5d} {r['m_relaxed'][0]:7.4f} {r['m_relaxed'][1]:7.4f} "
              f"{c['t_ns']:10.5f} {c['m_mean'][1]:7.4f} {c['m_mean'][2]:7.4f} {r['wall_total_s']:8.1f} {ratio}")
    res = {"cell_nm": cell, "ranks": a.ranks, "machine_cores": os.cpu_count(), "runs": rows}
    name = "dynamics_sp4" + ("_quick" if a.quick else "") + (f"_r{a.ranks}" if a.ranks > 1 else "") + ".json"
    (HERE / "out" / name).write_text(json.dumps(res, indent=1))
    print(f"wrote {HERE / 'out' / name}")


if __name__ == "__main__":
    main()
