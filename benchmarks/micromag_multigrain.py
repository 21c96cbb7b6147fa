"""Benchmark: 8 Nd2Fe14B grains with a 2 nm grain-boundary phase and triple junctions,
magtwin (graded FEM mesh: 1 nm in the GB phase, up to 4 nm inside grains) versus magnum.np
(finite differences, 1 nm cells everywhere, the resolution the GB phase needs).

Geometry: a cube of edge L (80 nm; 40 nm with --quick) split into 2 x 2 x 2 grains by
three 2 nm GB slabs through its centre; where slabs cross (grain edges) the cells are TJ
regions. Grains: Js 1.61 T, K1 4.9 MJ/m^3, A 8 pJ/m, easy axes 5 deg gaussian misalignment
(seed 1); GB and TJ: Js 0.8 T, K = 0, A scaled with Js^2. Field along the alignment axis
(0.5 deg off), 0 to -8 T in 0.25 T steps, jumps refined to 0.01 T.

    python benchmarks/micromag_multigrain.py [--quick] [--ranks N] [--no-peers]

Writes ``benchmarks/out/micromag_multigrain[_quick].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from micromag_cube import ensure_peer_venv, timed  # noqa: E402

HERE = Path(__file__).resolve().parent
GB_HALF = 1.0
MATERIALS = {"grain": {"Js_T": 1.61, "K1_J_per_m3": 4.9e6, "A_J_per_m": 8e-12},
             "gb": {"Js_T": 0.8}, "tj": {"Js_T": 0.8},
             "misalignment": {"distribution": "gaussian", "sigma_deg": 5.0, "seed": 1}}
ANGLE = 0.5


def graded_axis(L: float, fine: float = 1.0, coarse: float = 4.0, growth: float = 1.5) -> np.ndarray:
    """Node coordinates 0..L: ``fine`` spacing in the central slab |x - L/2| <= GB_HALF,
    growing geometrically to ``coarse`` away from it."""
    c = L / 2
    half = [0.0]
    x = GB_HALF
    while x < GB_HALF - 1e-9:
        x += fine
    half = list(np.arange(0.0, GB_HALF + 1e-9, fine))
    h = fine
    while half[-1] < c - 1e-9:
        h = min(h * growth, coarse)
        half.append(min(half[-1] + h, c))
    half = np.array(half)
    if c - half[-2] < 0.4 * h:  # avoid a sliver cell at the edge
        half = np.delete(half, -2)
    return np.unique(np.concatenate([c - half[::-1], c + half]))


def regions_of(centres: np.ndarray, L: float) -> np.ndarray:
    """Region id per cell centre: grains 1..8 (octants), GB 101..112, TJ 201..."""
    c = L / 2
    d = centres - c
    slab = np.abs(d) < GB_HALF
    n_slab = slab.sum(axis=1)
    octant = ((d > 0) * np.array([1, 2, 4])).sum(axis=1)
    rid = 1 + octant
    one = n_slab == 1
    plane = np.argmax(slab, axis=1)
    quad = np.zeros(len(d), dtype=int)
    for k in range(3):  # quadrant in the two other coordinates
        others = [j for j in range(3) if j != k]
        sel = one & (plane == k)
        quad[sel] = ((d[sel][:, others] > 0) * np.array([1, 2])).sum(axis=1)
    rid = np.where(one, 101 + 4 * plane + quad, rid)
    many = n_slab >= 2
    code = (slab * np.array([1, 2, 4])).sum(axis=1) * 10 + ((d > 0) & ~slab).dot(np.array([1, 2, 4]))
    rid = np.where(many, 200 + code, rid)
    return rid


def build_mesh(L: float, coarse: float = 4.0):
    from magtwin.micromag.shapes import tensor_box_mesh

    ax = graded_axis(L, coarse=coarse)
    mesh = tensor_box_mesh(ax, ax, ax, region_of_cell=lambda c: regions_of(c, L))
    regions = []
    for r in np.unique(mesh.region_id):
        r = int(r)
        if r < 100:
            regions.append({"id": r, "kind": "grain", "grains": [r]})
        elif r < 200:
            k = (r - 101) // 4
            n = [0.0, 0.0, 0.0]
            n[k] = 1.0
            regions.append({"id": r, "kind": "gb", "normal": n, "grains": []})
        else:
            regions.append({"id": r, "kind": "tj", "tj_class": "thin", "grains": []})
    mesh.regions = regions
    return mesh


def run_magtwin(work: Path, L: float, ranks: int, coarse: float = 4.0) -> tuple[dict, dict]:
    import yaml

    from magtwin.io.mesh_artefact import write_mesh_artefact
    from magtwin.micromag.materials import resolve_materials

    mesh = build_mesh(L, coarse)
    write_mesh_artefact(work / "mg.h5", mesh)
    (work / "mat.yaml").write_text(yaml.safe_dump(MATERIALS))
    mats = resolve_materials(MATERIALS, mesh.regions, mesh.region_id, mesh.alignment_axis)
    axes = {int(i): a.tolist() for i, a in zip(mats.region_ids, mats.easy_axis) if i < 100}
    out = work / "out.h5"
    cmd = [sys.executable, "-m", "magtwin.cli.main", "-q", "simulate", "--mesh", str(work / "mg.h5"),
           "--materials", str(work / "mat.yaml"), "--field-start", "0", "--field-stop", "-8",
           "--field-step", "0.25", "--angle", str(ANGLE), "--refine-tol", "0.01", "--out", str(out)]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    wall, rss, proc = timed(cmd, dict(os.environ, OMPI_MCA_mpi_yield_when_idle="1"))
    if proc.returncode != 0:
        raise SystemExit(f"magtwin failed:\n{proc.stderr}")
    import h5py

    with h5py.File(out) as f:
        b, jh = f["curve/field_T"][...], f["curve/J_along_field_T"][...]
        its = int(f["curve/iterations"][...].sum())
    k = np.flatnonzero(np.diff(np.sign(jh)) != 0)
    hc = float(-(b[k[0]] + (b[k[0] + 1] - b[k[0]]) * jh[k[0]] / (jh[k[0]] - jh[k[0] + 1]))) if len(k) else None
    return ({"code": "magtwin", "Hc_T": hc, "wall_s": wall, "peak_rss_MB": rss, "iterations_on_curve": its,
             "nodes": len(mesh.points_nm), "elements": len(mesh.tetrahedra), "ranks": ranks,
             "coarse_nm": coarse}, axes)


PEER = r'''
import json, math, sys, time
import numpy as np, torch
from magnumnp import DemagField, ExchangeField, ExternalField, Mesh, MinimizerBB, State, UniaxialAnisotropyField, constants
cfg = json.loads(open(sys.argv[1]).read())
sys.path.insert(0, cfg["here"])
from micromag_multigrain import regions_of
torch.set_num_threads(1)
L, h = cfg["L"], cfg["cell"]
n = int(round(L / h))
mesh = Mesh((n, n, n), (h * 1e-9,) * 3)
state = State(mesh)
c = (np.arange(n) + 0.5) * h
X, Y, Z = np.meshgrid(c, c, c, indexing="ij")
rid = regions_of(np.stack([X.ravel(), Y.ravel(), Z.ravel()], 1), L).reshape(n, n, n)
grain = rid < 100
js = np.where(grain, 1.61, 0.8)
axis = np.zeros((n, n, n, 3)); axis[..., 2] = 1.0
for r, a in cfg["axes"].items():
    axis[rid == int(r)] = a
state.material = {"Ms": state.Constant(0.0) + torch.tensor(js[..., None] / constants.mu_0),
                  "A": state.Constant(0.0) + torch.tensor(8e-12 * (js[..., None] / 1.61) ** 2),
                  "Ku": state.Constant(0.0) + torch.tensor(np.where(grain, 4.9e6, 0.0)[..., None]),
                  "Ku_axis": torch.tensor(axis)}
t = math.radians(cfg["angle"]); hd = [math.sin(t), 0.0, math.cos(t)]
state.m = state.Constant(hd)
ext = ExternalField(state.Constant([0.0, 0.0, 0.0]))
mini = MinimizerBB([DemagField(), ExchangeField(), UniaxialAnisotropyField(), ext])
w = torch.tensor(js[..., None])
def relax(b):
    ext.h = state.Constant([b / constants.mu_0 * x for x in hd])
    mini.minimize(state, maxiter=20000, dm_tol=1e-4 / constants.mu_0)
    J = (state.m * w).mean(dim=(0, 1, 2))
    return float(sum(J[i] * hd[i] for i in range(3)))
t0 = time.perf_counter()
pts = []
b = 0.0
while b >= -8.0 - 1e-9:
    jh = relax(b)
    pts.append((b, jh))
    if jh < -0.5:
        break
    b -= 0.25
hc = None
for (b0, j0), (b1, j1) in zip(pts, pts[1:]):
    if j0 > 0 >= j1:
        hc = -(b0 + (b1 - b0) * j0 / (j0 - j1))
print(json.dumps({"code": "magnum.np", "Hc_T": hc, "time_total_s": time.perf_counter() - t0, "cells": n ** 3,
                  "note": "0.25 T steps only (no refinement)"}))
'''


def run_magnumnp(py: Path, L: float, axes: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "cfg.json"
        cfg.write_text(json.dumps({"L": L, "cell": 1.0, "angle": ANGLE, "axes": axes, "here": str(HERE)}))
        script = Path(tmp) / "peer.py"
        script.write_text(PEER)
        wall, rss, proc = timed([str(py), str(script), str(cfg)], dict(os.environ, OMP_NUM_THREADS="1", CUDA_DEVICE="-1"))
    if proc.returncode != 0:
        return {"code": "magnum.np", "error": proc.stderr.strip().splitlines()[-1:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(wall_s=wall, peak_rss_MB=rss)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="40 nm instead of 80 nm")
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--coarse-nm", type=float, default=4.0, help="largest element inside grains")
    args = p.parse_args()
    L = 40.0 if args.quick else 80.0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        res, axes = run_magtwin(Path(tmp), L, args.ranks, args.coarse_nm)
        rows.append(res)
    if not args.no_peers:
        py = ensure_peer_venv()
        rows.append(run_magnumnp(py, L, axes) if py else {"code": "magnum.np", "error": "venv failed"})
    print(f"\nmultigrain cube {L:g} nm, 8 grains, 2 nm GB (Js 0.8 T) and TJs")
    print(f"{'code':<12}{'Hc (T)':>9}{'wall (s)':>10}{'peak MB':>9}{'size':>10}")
    for r in rows:
        if "error" in r:
            print(f"{r['code']:<12}  {r['error']}")
            continue
        size = r.get("elements", r.get("cells"))
        hc = float("nan") if r["Hc_T"] is None else r["Hc_T"]
        print(f"{r['code']:<12}{hc:>9.3f}{r['wall_s']:>10.1f}{r['peak_rss_MB']:>9.0f}{size:>10}")
    outdir = HERE / "out"
    outdir.mkdir(exist_ok=True)
    name = ("micromag_multigrain_quick" if args.quick else "micromag_multigrain") + \
        ("" if args.coarse_nm == 4.0 else f"_coarse{args.coarse_nm:g}") + ".json"
    (outdir / name).write_text(json.dumps({"L_nm": L, "results": rows, "host_load": os.getloadavg()}, indent=2))
    print(f"wrote {outdir / name}")


if __name__ == "__main__":
    main()
