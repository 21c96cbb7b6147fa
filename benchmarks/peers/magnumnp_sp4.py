"""µMAG standard problem #4 with magnum.np (finite differences, FFT demag), for comparison.

Run with the peers' venv (see benchmarks/dynamics_sp4.py), never with the project's:
    python magnumnp_sp4.py CELL_NM FIELD(1|2) THREADS OUT.json
Relaxes the s-state in zero field (BB minimiser), applies the field and integrates LLG
(magnum.np's default adaptive RKF45) in 1 ps output steps until <mx> first crosses zero;
writes the crossing (linearly interpolated) and the wall times as JSON.
"""

import json
import sys
import time

import torch
from magnumnp import (DemagField, ExchangeField, ExternalField, LLGSolver, Mesh, MinimizerBB, State,
                      constants)

cell, field, threads, out = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
torch.set_default_dtype(torch.float64)
b = {1: (-24.6e-3, 4.3e-3, 0.0), 2: (-35.5e-3, -6.3e-3, 0.0)}[field]
t0 = time.perf_counter()
n = (int(round(500 / cell)), int(round(125 / cell)), 1)
state = State(Mesh(n, (500e-9 / n[0], 125e-9 / n[1], 3e-9)))
state.material = {"Ms": 8e5, "A": 1.3e-11, "alpha": 0.02}
demag, exchange = DemagField(), ExchangeField()
state.m = state.Constant([1.0, 0.0, 0.0])
state.m[0, :, :, :] = torch.tensor([0.0, 1.0, 0.0])      # ends along y: relaxes into the s-state
state.m[-1, :, :, :] = torch.tensor([0.0, 1.0, 0.0])
MinimizerBB([demag, exchange]).minimize(state)
t_relax = time.perf_counter() - t0
m0 = state.m.mean(dim=(0, 1, 2)).tolist()
llg = LLGSolver([demag, exchange, ExternalField([c / constants.mu_0 for c in b])])
prev_t, prev_m = 0.0, m0
cross = None
series = [[0.0] + m0]
while state.t < 1e-9 and cross is None:
    llg.step(state, 1e-12)
    t = float(state.t)
    m = state.m.mean(dim=(0, 1, 2)).tolist()
    series.append([t * 1e9] + m)
    if m[0] <= 0.0 < prev_m[0]:
        w = prev_m[0] / (prev_m[0] - m[0])
        cross = {"t_ns": 1e9 * (prev_t + w * (t - prev_t)),
                 "m_mean": [p + w * (q - p) for p, q in zip(prev_m, m)]}
    prev_t, prev_m = t, m
json.dump({"code": "magnum.np", "cell_nm": cell, "field": field, "threads": threads, "cells": n,
           "m_relaxed": m0, "crossing": cross, "wall_relax_s": t_relax,
           "wall_total_s": time.perf_counter() - t0, "series": series}, open(out, "w"))
