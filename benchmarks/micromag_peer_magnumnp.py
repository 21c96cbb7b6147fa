"""Peer run for the micromagnetic benchmarks: the same problem with magnum.np (finite
differences, CPU, its MinimizerBB energy minimiser). Runs inside benchmarks/.venv-peers.

Problems: ``cube`` (one material, easy axis z; ``micromag_cube.py``) and ``multigrain`` (8
grains + 2 nm GB slabs + TJs, Js 0.8 T and K = 0 in GB/TJ, A scaled with Js^2, per-grain easy
axes from ``--config``; ``micromag_multigrain.py``).

The sweep follows magtwin's (``magtwin.micromag.curve``): start saturated along +h, step the
field down; when J.h changes by more than 5 % of <Js> the interval is bisected, every trial
relaxed from the last state before the jump and abandoned (checked every 10 field
evaluations) as soon as J.h has left the branch, until the jump is located to ``--refine`` T;
the sweep continues from the state after the jump. ``--stop-when-reversed`` ends it at the
first point with J.h < 0. Prints one JSON line: Hc, times, field evaluations, the curve.
"""

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from magnumnp import (DemagField, ExchangeField, ExternalField, Mesh, MinimizerBB, State,
                      UniaxialAnisotropyField, constants)

p = argparse.ArgumentParser()
p.add_argument("--problem", choices=("cube", "multigrain"), default="cube")
p.add_argument("--edge-nm", type=float, default=40.0)
p.add_argument("--cell-nm", type=float, default=2.0)
p.add_argument("--js", type=float, default=1.61)
p.add_argument("--k1", type=float, default=4.3e6)
p.add_argument("--a", type=float, default=7.7e-12)
p.add_argument("--js-gb", type=float, default=0.8, help="multigrain: Js of GB and TJ cells (T)")
p.add_argument("--angle", type=float, default=1.0)
p.add_argument("--start", type=float, default=0.0)
p.add_argument("--stop", type=float, default=-8.0)
p.add_argument("--step", type=float, default=0.25)
p.add_argument("--refine", type=float, default=0.002)
p.add_argument("--torque-tol-T", type=float, default=1e-4)
p.add_argument("--stop-when-reversed", action="store_true")
p.add_argument("--config", type=Path, help="JSON: {'axes': {grain id: [x, y, z]}} (multigrain)")
a = p.parse_args()
torch.set_num_threads(1)
logging.getLogger("magnum.np").setLevel(logging.WARNING)

n = int(round(a.edge_nm / a.cell_nm))
mesh = Mesh((n, n, n), (a.cell_nm * 1e-9,) * 3)
state = State(mesh)
if a.problem == "cube":
    js = np.full((n, n, n), a.js)
    state.material = {"Ms": a.js / constants.mu_0, "A": a.a, "Ku": a.k1,
                      "Ku_axis": state.Constant([0.0, 0.0, 1.0])}
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from micromag_multigrain import regions_of

    axes = json.loads(a.config.read_text())["axes"]
    c = (np.arange(n) + 0.5) * a.cell_nm
    X, Y, Z = np.meshgrid(c, c, c, indexing="ij")
    rid = regions_of(np.stack([X.ravel(), Y.ravel(), Z.ravel()], 1), a.edge_nm).reshape(n, n, n)
    grain = rid < 100
    js = np.where(grain, a.js, a.js_gb)
    axis = np.zeros((n, n, n, 3))
    axis[..., 2] = 1.0
    for r, ax in axes.items():
        axis[rid == int(r)] = ax

    def cellwise(v):
        return state.Constant(0.0) + torch.tensor(v[..., None], dtype=state.Constant(0.0).dtype)

    state.material = {"Ms": cellwise(js / constants.mu_0), "A": cellwise(a.a * (js / a.js) ** 2),
                      "Ku": cellwise(np.where(grain, a.k1, 0.0)), "Ku_axis": torch.tensor(axis)}
t = math.radians(a.angle)
hdir = [math.sin(t), 0.0, math.cos(t)]
state.m = state.Constant(hdir)
w = torch.tensor(js[..., None] / js.mean(), dtype=state.m.dtype)
js_mean = float(js.mean())
external = ExternalField(state.Constant([0.0, 0.0, 0.0]))
minimizer = MinimizerBB([DemagField(), ExchangeField(), UniaxialAnisotropyField(), external])
calls = {"h": 0}
watch = {"ref": None}
_h = minimizer.h
thresh = 0.05 * js_mean


class JumpSeen(Exception):
    pass


def jh_of(m) -> float:
    """J.h in T (mean polarisation along the field direction)."""
    mavg = (m * w).mean(dim=(0, 1, 2))
    return float(sum(mavg[i] * hdir[i] for i in range(3))) * js_mean


def counted_h(s):
    calls["h"] += 1
    if watch["ref"] is not None and calls["h"] % 10 == 0 and abs(jh_of(s.m) - watch["ref"]) > thresh:
        raise JumpSeen
    return _h(s)


minimizer.h = counted_h
dm_tol = a.torque_tol_T / constants.mu_0          # max component of m x (m x h) in A/m


def relax(b, ref=None):
    """Relax at b T; with ``ref``, abandon (return None) once J.h leaves ref by > thresh."""
    external.h = state.Constant([b / constants.mu_0 * c for c in hdir])
    watch["ref"] = ref
    try:
        minimizer.minimize(state, maxiter=20000, dm_tol=dm_tol)
    except JumpSeen:
        return None
    finally:
        watch["ref"] = None
    return jh_of(state.m)


def jumped(jh, ref):
    return jh is None or abs(jh - ref) > thresh


t0 = time.perf_counter()
grid = []
b = a.start
while b >= a.stop - 1e-9:
    grid.append(b)
    b -= a.step
pts, jumps = [], []     # (field, J.h); m of the last accepted point
m_last = None
i = 0
while i < len(grid):
    b = grid[i]
    refine = bool(pts) and pts[-1][0] - b > a.refine
    jh = relax(b, pts[-1][1]) if refine else relax(b)
    if refine and jumped(jh, pts[-1][1]):
        ha, hb, m_b, jh_b = pts[-1][0], b, state.m.clone(), jh
        while ha - hb > a.refine:
            hm = 0.5 * (ha + hb)
            state.m = m_last.clone()
            r = relax(hm, pts[-1][1])
            if jumped(r, pts[-1][1]):
                hb, m_b, jh_b = hm, state.m.clone(), r
            else:
                ha = hm
                pts.append((hm, r))
                m_last = state.m.clone()
        state.m = m_b
        if jh_b is None:    # finish the reversal that was cut short
            jh_b = relax(hb)
        if jumped(jh_b, pts[-1][1]):
            jumps.append((ha, hb))
        pts.append((hb, jh_b))
        m_last = state.m.clone()
        if hb <= b:
            i += 1
    else:
        pts.append((b, jh))
        m_last = state.m.clone()
        i += 1
    if a.stop_when_reversed and pts[-1][1] < 0:
        break
total = time.perf_counter() - t0
fb = np.array([q[0] for q in pts])
fj = np.array([q[1] for q in pts])
k = np.flatnonzero((fj[:-1] > 0) & (fj[1:] <= 0))
hc = float(-(fb[k[0]] + (fb[k[0] + 1] - fb[k[0]]) * fj[k[0]] / (fj[k[0]] - fj[k[0] + 1]))) if len(k) else None
print(json.dumps({"code": "magnum.np", "Hc_T": hc, "jumps_T": jumps, "time_total_s": total,
                  "field_evaluations": calls["h"], "cells": n ** 3, "cell_nm": a.cell_nm,
                  "curve": {"field_T": fb.tolist(), "J_along_field_T": fj.tolist()}}))
