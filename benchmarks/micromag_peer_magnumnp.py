"""Peer run for benchmarks/micromag_cube.py: the same cube problem with magnum.np (finite
differences, CPU, its MinimizerBB energy minimiser). Runs inside benchmarks/.venv-peers.

Prints one JSON line: Hc, wall times, iterations. The sweep and the bisection around the
switching field follow the same rules as magtwin's (start saturated along +h, step down,
bisect between the last unswitched state and the first switched one).
"""

import argparse
import json
import math
import time

import torch
from magnumnp import (DemagField, ExchangeField, ExternalField, Mesh, MinimizerBB, State,
                      UniaxialAnisotropyField, constants)
import magnumnp.common.logging as mlog

p = argparse.ArgumentParser()
p.add_argument("--edge-nm", type=float, default=40.0)
p.add_argument("--cell-nm", type=float, default=2.0)
p.add_argument("--js", type=float, default=1.61)
p.add_argument("--k1", type=float, default=4.3e6)
p.add_argument("--a", type=float, default=7.7e-12)
p.add_argument("--angle", type=float, default=1.0)
p.add_argument("--start", type=float, default=0.0)
p.add_argument("--stop", type=float, default=-8.0)
p.add_argument("--step", type=float, default=0.25)
p.add_argument("--refine", type=float, default=0.002)
p.add_argument("--torque-tol-T", type=float, default=1e-4)
a = p.parse_args()
mlog.set_log_level(40) if hasattr(mlog, "set_log_level") else None
torch.set_num_threads(1)

n = int(round(a.edge_nm / a.cell_nm))
mesh = Mesh((n, n, n), (a.cell_nm * 1e-9,) * 3)
state = State(mesh)
ms = a.js / constants.mu_0
state.material = {"Ms": ms, "A": a.a, "Ku": a.k1, "Ku_axis": state.Constant([0.0, 0.0, 1.0])}
t = math.radians(a.angle)
hdir = [math.sin(t), 0.0, math.cos(t)]
state.m = state.Constant(hdir)
external = ExternalField(state.Constant([0.0, 0.0, 0.0]))
terms = [DemagField(), ExchangeField(), UniaxialAnisotropyField(), external]
minimizer = MinimizerBB(terms)
calls = {"h": 0}
_h = minimizer.h


def counted_h(s):
    calls["h"] += 1
    return _h(s)


minimizer.h = counted_h
dm_tol = a.torque_tol_T / constants.mu_0          # |m x m x h| in A/m


def relax(b):
    external.h = state.Constant([b / constants.mu_0 * c for c in hdir])
    ok = minimizer.minimize(state, maxiter=20000, dm_tol=dm_tol)
    mavg = state.m.mean(dim=(0, 1, 2))
    return float(sum(mavg[i] * hdir[i] for i in range(3))) * a.js, ok


t0 = time.perf_counter()
grid = []
b = a.start
while b >= a.stop - 1e-9:
    grid.append(b)
    b -= a.step
pts = []
t_steps = None
jump = None
for b in grid:
    m_prev = state.m.clone()
    jh, ok = relax(b)
    if pts and abs(jh - pts[-1][1]) > 0.05 * a.js and jump is None:
        t_steps = time.perf_counter() - t0
        ha, hb, ma = pts[-1][0], b, m_prev
        while ha - hb > a.refine:
            hm = 0.5 * (ha + hb)
            state.m = ma.clone()
            jm, _ = relax(hm)
            if abs(jm - pts[-1][1]) > 0.05 * a.js:
                hb = hm
            else:
                ha, ma = hm, state.m.clone()
                pts.append((hm, jm))
        jump = (ha, hb)
        break
    pts.append((b, jh))
total = time.perf_counter() - t0
print(json.dumps({"code": "magnum.np", "Hc_T": -0.5 * (jump[0] + jump[1]) if jump else None,
                  "time_steps_s": t_steps, "time_total_s": total, "field_evaluations": calls["h"],
                  "cells": n ** 3}))
