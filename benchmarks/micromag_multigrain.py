"""Benchmark: 8 Nd2Fe14B grains with a 2 nm grain-boundary phase and triple junctions,
magtwin (graded FEM mesh: ``--fine-nm`` in the GB phase growing to ``--coarse-nm`` inside the
grains) versus magnum.np (finite differences, ``--cell-nm`` cells everywhere).

Geometry: a cube of edge L (80 nm; 40 nm with --quick) split into 2 x 2 x 2 grains by
three 2 nm GB slabs through its centre; where slabs cross (grain edges) the cells are TJ
regions. Grains: Js 1.61 T, K1 4.9 MJ/m^3, A 8 pJ/m, easy axes 5 deg gaussian misalignment
(seed 1; magnum.np gets magtwin's drawn axes); GB and TJ: Js 0.8 T, K = 0, A scaled with
Js^2 (8 pJ/m (0.8/1.61)^2 = 1.98 pJ/m). Field 0.5 deg off the alignment axis, from
``--start`` down in 0.25 T steps, every jump bisected to 0.01 T by both codes (same rules),
ending at the first point with J.h < 0: the time is the time to Hc.

    python benchmarks/micromag_multigrain.py [--quick] [--ranks N] [--no-peers]
        [--fine-nm 1 --coarse-nm 2 --cell-nm 1] [--study]

``--study``: resolution study instead (magtwin GB/grain element sizes, magnum.np cell sizes;
GB thickness 2 nm is exact on the FD grid only for cells of 1/k nm), Richardson estimate of
the converged Hc and every run's error. Writes ``benchmarks/out/micromag_multigrain[_quick]
[_study].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from micromag_peers import ensure_peer_venv, run_magnumnp, run_magtwin, sweep_args  # noqa: E402

HERE = Path(__file__).resolve().parent
GB_HALF = 1.0
MATERIALS = {"grain": {"Js_T": 1.61, "K1_J_per_m3": 4.9e6, "A_J_per_m": 8e-12},
             "gb": {"Js_T": 0.8}, "tj": {"Js_T": 0.8},
             "misalignment": {"distribution": "gaussian", "sigma_deg": 5.0, "seed": 1}}
ANGLE = 0.5
STEP, REFINE = 0.25, 0.01


def graded_axis(L: float, fine: float = 1.0, coarse: float = 4.0, growth: float = 1.5) -> np.ndarray:
    """Node coordinates 0..L: ``fine`` spacing in the central slab |x - L/2| <= GB_HALF,
    growing geometrically to ``coarse`` away from it."""
    c = L / 2
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


def build_mesh(L: float, fine: float = 1.0, coarse: float = 4.0):
    from magtwin.micromag.shapes import tensor_box_mesh

    ax = graded_axis(L, fine=fine, coarse=coarse)
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


def magtwin_case(work: Path, L: float, fine: float, coarse: float, start: float, ranks: int = 1) -> tuple[dict, dict]:
    """magtwin on the graded mesh (fine, coarse); (result row, grain easy axes {id: [x, y, z]})."""
    import yaml

    from magtwin.io.mesh_artefact import write_mesh_artefact
    from magtwin.micromag.materials import resolve_materials

    mesh = build_mesh(L, fine, coarse)
    tag = f"f{fine:g}_c{coarse:g}"
    write_mesh_artefact(work / f"mg_{tag}.h5", mesh)
    (work / "mat.yaml").write_text(yaml.safe_dump(MATERIALS))
    mats = resolve_materials(MATERIALS, mesh.regions, mesh.region_id, mesh.alignment_axis)
    axes = {int(i): a.tolist() for i, a in zip(mats.region_ids, mats.easy_axis) if i < 100}
    res = run_magtwin(work / f"mg_{tag}.h5", work / "mat.yaml", work / f"out_{tag}.h5",
                      sweep_args(start, -8.0, STEP, REFINE, ANGLE), ranks,
                      settings={"solver": {"stop_when_reversed": True}})
    res.update(nodes=len(mesh.points_nm), elements=len(mesh.tetrahedra), fine_nm=fine, coarse_nm=coarse,
               start_T=start)
    return res, axes


def magnumnp_case(py: Path, L: float, cell: float, start: float, axes: dict) -> dict:
    res = run_magnumnp(py, ["--problem", "multigrain", "--edge-nm", str(L), "--cell-nm", str(cell),
                            "--js", "1.61", "--k1", "4.9e6", "--a", "8e-12", "--js-gb", "0.8",
                            "--angle", str(ANGLE), "--start", str(start), "--step", str(STEP),
                            "--refine", str(REFINE), "--stop-when-reversed"], {"axes": axes})
    res["start_T"] = start
    return res


def richardson(h: list[float], hc: list[float], order: float = 2.0) -> float | None:
    """Hc at h -> 0 from the two finest resolutions, error ~ h^order."""
    if len(h) < 2:
        return None
    (h1, y1), (h2, y2) = sorted(zip(h, hc))[:2]
    r = (h2 / h1) ** order
    return float(y1 + (y1 - y2) / (r - 1))


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'code':<11}{'resolution':>22}{'Hc (T)':>9}{'wall (s)':>10}{'CPU (s)':>9}{'peak MB':>9}{'size':>9}{'iter/evals':>11}")
    for r in rows:
        if "error" in r:
            print(f"{r['code']:<11}  {r['error']}")
            continue
        if r["code"] == "magtwin":
            res, size, its = f"GB {r['fine_nm']:g} / grain {r['coarse_nm']:g} nm", r["nodes"], r["iterations_on_curve"]
        else:
            res, size, its = f"cells {r['cell_nm']:g} nm", r["cells"], r["field_evaluations"]
        hc = float("nan") if r["Hc_T"] is None else r["Hc_T"]
        print(f"{r['code']:<11}{res:>22}{hc:>9.3f}{r['wall_s']:>10.1f}{r.get('cpu_s', float('nan')):>9.1f}"
              f"{r['peak_rss_MB']:>9.0f}{size:>9}{its:>11}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="40 nm instead of 80 nm")
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--fine-nm", type=float, default=1.0, help="magtwin element size in the GB phase")
    p.add_argument("--coarse-nm", type=float, default=2.0, help="largest magtwin element inside grains")
    p.add_argument("--cell-nm", type=float, default=1.0, help="magnum.np cell size")
    p.add_argument("--start", type=float, default=0.0, help="first field (T)")
    p.add_argument("--study", action="store_true", help="resolution study (see the module docstring)")
    p.add_argument("--fem", nargs="*", default=["1:4", "1:3", "1:2", "1:1", "0.5:2", "0.5:1"],
                   help="study: magtwin FINE:COARSE element sizes")
    p.add_argument("--fd", nargs="*", type=float, default=[1.0, 0.5], help="study: magnum.np cell sizes")
    args = p.parse_args()
    L = 40.0 if args.quick else 80.0
    py = None if args.no_peers else ensure_peer_venv()
    rows = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        if args.study:
            axes = None
            for spec in args.fem:
                fine, coarse = map(float, spec.split(":"))
                res, axes = magtwin_case(Path(tmp), L, fine, coarse, args.start, args.ranks)
                rows.append(res)
                print_rows("(running)", rows[-1:])
            if py is not None:
                for cell in args.fd:
                    rows.append(magnumnp_case(py, L, cell, args.start, axes))
                    print_rows("(running)", rows[-1:])
        else:
            res, axes = magtwin_case(Path(tmp), L, args.fine_nm, args.coarse_nm, args.start, args.ranks)
            rows.append(res)
            if py is not None:
                rows.append(magnumnp_case(py, L, args.cell_nm, args.start, axes))
    out = {"L_nm": L, "angle_deg": ANGLE, "step_T": STEP, "refine_T": REFINE, "start_T": args.start,
           "results": rows, "elapsed_s": time.time() - t0, "host_load": os.getloadavg()}
    ok = [r for r in rows if r.get("Hc_T") is not None]
    if args.study:
        fe = [r for r in ok if r["code"] == "magtwin" and r["coarse_nm"] == min(q["coarse_nm"] for q in ok if q["code"] == "magtwin")]
        fd = [r for r in ok if r["code"] == "magnum.np"]
        out["richardson_fem_gb_T"] = richardson([r["fine_nm"] for r in fe], [r["Hc_T"] for r in fe])
        out["richardson_fd_T"] = richardson([r["cell_nm"] for r in fd], [r["Hc_T"] for r in fd])
    print_rows(f"multigrain cube {L:g} nm, 8 grains, 2 nm GB (Js 0.8 T) and TJs; time to Hc", rows)
    for k in ("richardson_fem_gb_T", "richardson_fd_T"):
        if out.get(k) is not None:
            print(f"{k}: {out[k]:.3f} T")
    outdir = HERE / "out"
    outdir.mkdir(exist_ok=True)
    name = "micromag_multigrain" + ("_quick" if args.quick else "") + ("_study" if args.study else "") + ".json"
    (outdir / name).write_text(json.dumps(out, indent=1))
    print(f"wrote {outdir / name}")


if __name__ == "__main__":
    main()
