"""Benchmark: time and peak memory of the model + mesh stages versus grain count.

Grains: a jittered-lattice Laguerre tessellation (random weights) of ``n`` grains of about
``--grain-nm`` nm, GB thickness 2 nm (the default), element size ``--gb-size-nm`` in GB/TJ.
Each size runs in a fresh subprocess so that the peak resident memory (which includes
TetGen's C allocations) belongs to that size alone.

    python benchmarks/model_mesh.py            # 30, 100, 300 grains
    python benchmarks/model_mesh.py --quick    # 30 grains only

Prints a table and writes ``benchmarks/out/model_mesh.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def one(n: int, grain_nm: float, gb_size: float, seed: int) -> dict:
    from magtwin.mesh.build import mesh_geometry
    from magtwin.model.geometry import build_geometry

    rng = np.random.default_rng(seed)
    k = int(np.ceil(n ** (1 / 3)))
    side = k * grain_nm
    g = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] + 0.5
    sites = (g + rng.uniform(-0.3, 0.3, g.shape)) * grain_nm
    hi = np.array([side, side, np.ceil(n / k**2) * grain_nm])
    weights = rng.uniform(0, 0.1 * grain_nm**2, n)
    t0 = time.perf_counter()
    geom = build_geometry(sites, weights, np.arange(1, n + 1), [0, 0, 0], hi, 2.0, 0.3, 3.0)
    t1 = time.perf_counter()
    mesh, stats = mesh_geometry(geom, {"gb_size_nm": gb_size, "tj_size_nm": gb_size,
                                       "grain_size_nm": 4 * gb_size, "max_elements": 50_000_000})
    t2 = time.perf_counter()
    return {
        "grains": n, "box_nm": hi.tolist(), "model_s": t1 - t0, "mesh_s": t2 - t1,
        "mesh_breakdown_s": stats["time_s"], "elements": stats["elements"], "nodes": stats["nodes"],
        "elements_per_kind": {k: v["elements"] for k, v in stats["per_kind"].items()},
        "regions": {k: v["regions"] for k, v in stats["per_kind"].items()},
        "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "min_dihedral_deg": stats["quality"]["min_dihedral_deg"],
        "fraction_min_dihedral_below_5deg": float(sum(stats["quality"]["min_dihedral_histogram"]["counts"][:3])
                                                  / stats["elements"]),
        "fraction_radius_edge_above_2": stats["quality"]["radius_edge_ratio_fraction_above_2"],
        "min_dihedral_histogram": stats["quality"]["min_dihedral_histogram"],
        "radius_edge_ratio_histogram": stats["quality"]["radius_edge_ratio_histogram"],
        "regularisation": stats["regularisation"], "improvement": stats["improvement"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 grains only")
    ap.add_argument("--grains", type=int, nargs="*", default=None)
    ap.add_argument("--grain-nm", type=float, default=15.0, help="grain size (nm)")
    ap.add_argument("--gb-size-nm", type=float, default=1.5, help="element size in GB/TJ (nm)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.grain_nm, a.gb_size_nm, 0)))
        return
    sizes = a.grains or ([30] if a.quick else [30, 100, 300])
    rows = []
    for n in sizes:
        r = subprocess.run([sys.executable, __file__, "--one", str(n), "--grain-nm", str(a.grain_nm),
                            "--gb-size-nm", str(a.gb_size_nm)], capture_output=True, text=True)
        if r.returncode != 0:
            lines = [ln for ln in r.stderr.strip().splitlines() if "Error" in ln] or r.stderr.strip().splitlines()
            rows.append({"grains": n, "error": lines[-1] if lines else f"exit code {r.returncode}"})
        else:
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"{'grains':>6} {'model s':>8} {'mesh s':>8} {'elements':>10} {'GB el':>9} {'TJ el':>9} "
          f"{'peak MB':>8} {'<5deg':>7} {'RE>2':>7}")
    for r in rows:
        if "error" in r:
            print(f"{r['grains']:>6} error: {r['error']}")
            continue
        e = r["elements_per_kind"]
        print(f"{r['grains']:>6} {r['model_s']:8.1f} {r['mesh_s']:8.1f} {r['elements']:>10} {e['gb']:>9} "
              f"{e['tj']:>9} {r['peak_rss_MB']:8.0f} {r['fraction_min_dihedral_below_5deg']:7.4f} "
              f"{r['fraction_radius_edge_above_2']:7.4f}")
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "model_mesh.json").write_text(json.dumps({"grain_nm": a.grain_nm, "gb_size_nm": a.gb_size_nm,
                                                      "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
