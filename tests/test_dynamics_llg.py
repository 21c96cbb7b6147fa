"""LLG dynamics against analytic solutions, through the CLI.

* Macrospin precession: a uniformly magnetised body with exchange only (the exchange field of
  a uniform state is zero) in a constant field B along z follows the analytic solution of the
  LLG equation (e.g. Mallinson, IEEE Trans. Magn. 23, 2003 (1987)):

      phi(t) = gamma' B t,   tan(theta/2) = tan(theta0/2) exp(-alpha gamma' B t),
      gamma' = gamma / (1 + alpha^2),

  i.e. precession at f = gamma B / (2 pi (1 + alpha^2)) and relaxation time
  1 / (alpha gamma' B).
* Dynamic switching under a slow ramp of a single-domain particle (one mesh cell, exchange
  keeps it uniform): switching starts at the Stoner-Wohlfarth field
  h_sw = (cos^(2/3) psi + sin^(2/3) psi)^(-3/2) 2 K1 / Js (Stoner & Wohlfarth, Phil. Trans.
  R. Soc. A 240, 599 (1948)); with a slow ramp the crossing <m>.u = 0 comes just after it.
"""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from magtwin.io.mesh_artefact import write_mesh_artefact
from magtwin.micromag.llg import GAMMA_E
from magtwin.micromag.shapes import box_mesh
from tests.util import run_cli


def macrospin(t_ns, b, alpha, theta0, gamma=GAMMA_E):
    g = gamma / (1 + alpha ** 2)
    t = np.asarray(t_ns) * 1e-9
    th = 2 * np.arctan(np.tan(theta0 / 2) * np.exp(-alpha * g * b * t))
    ph = g * b * t
    return np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], axis=1)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    d = tmp_path_factory.mktemp("cube")
    write_mesh_artefact(d / "mesh.h5", box_mesh((4.0, 4.0, 4.0), (2, 2, 2)))
    (d / "mat.yaml").write_text("grain: {K1_J_per_m3: 0.0, Js_T: 1.0}\n")
    return d


@pytest.mark.parametrize("method,rtol,t_end,tol", [
    ("rk5dp", 1e-7, 0.2, 1e-5),
    ("rk3bs", 1e-6, 0.1, 1e-4),
    ("arkimex", 1e-5, 0.05, 2e-3),
    ("bdf", 1e-4, 0.02, 2e-2),
])
def test_macrospin_precession_and_relaxation(cube, method, rtol, t_end, tol):
    alpha, b, theta0 = 0.1, 1.0, math.radians(30.0)
    out = cube / f"prec_{method}.h5"
    run_cli("dynamics", "--mesh", cube / "mesh.h5", "--materials", cube / "mat.yaml", "--no-demag",
            "--alpha", alpha, "--t-end-ns", t_end, "--field", "0,0,1", "--method", method,
            "--rtol", rtol, "--atol", rtol, "--initial-m", f"{math.sin(theta0)},0,{math.cos(theta0)}",
            "--out", out, check=True)
    with h5py.File(out) as f:
        t = f["timeseries/t_ns"][...]
        m = f["timeseries/m_mean"][...]
        assert f.attrs["stop_reason"] == "time"
        assert f.attrs["magtwin_stage"] == "dynamics"
    assert t[-1] == pytest.approx(t_end, rel=1e-12)
    np.testing.assert_allclose(m, macrospin(t, b, alpha, theta0), atol=tol)
    if method == "rk5dp":
        # Larmor frequency from the zero crossings of m_x (upward), and the relaxation time
        f_ref = GAMMA_E * b / (2 * math.pi * (1 + alpha ** 2)) * 1e-9        # 1/ns
        mx = m[:, 0]
        up = np.flatnonzero((mx[:-1] < 0) & (mx[1:] >= 0))
        tc = t[up] - mx[up] * (t[up + 1] - t[up]) / (mx[up + 1] - mx[up])
        f_num = (len(tc) - 1) / (tc[-1] - tc[0])
        assert f_num == pytest.approx(f_ref, rel=1e-4)
        tau_ref = (1 + alpha ** 2) / (alpha * GAMMA_E * b) * 1e9            # ns
        th = 2 * np.arctan(np.sqrt(m[:, 0] ** 2 + m[:, 1] ** 2) / (1 + m[:, 2]))
        slope = np.polyfit(t, np.log(np.tan(th / 2)), 1)[0]
        assert -1 / slope == pytest.approx(tau_ref, rel=1e-4)


def test_ramp_switching_approaches_stoner_wohlfarth(tmp_path):
    # One 5 nm cell of Nd2Fe14B, easy axis z, field at psi = 30 deg from -z, ramped up.
    write_mesh_artefact(tmp_path / "mesh.h5", box_mesh((5.0, 5.0, 5.0), (1, 1, 1)))
    (tmp_path / "mat.yaml").write_text("grain: {}\n")            # Js 1.61 T, K1 4.9 MJ/m^3
    js, k1, psi = 1.61, 4.9e6, math.radians(30.0)
    b_a = 2 * k1 * 4e-7 * math.pi / js
    h_sw = (math.cos(psi) ** (2 / 3) + math.sin(psi) ** (2 / 3)) ** -1.5
    d = np.array([-math.sin(psi), 0.0, -math.cos(psi)])
    (tmp_path / "ramp.yaml").write_text(json.dumps({
        "type": "ramp", "direction": d.tolist(), "field_T": 3.7, "rate_T_per_s": 2.0e9}))
    out = tmp_path / "sw.h5"
    run_cli("dynamics", "--mesh", tmp_path / "mesh.h5", "--materials", tmp_path / "mat.yaml", "--no-demag",
            "--alpha", 1.0, "--t-end-ns", 1.0, "--field-file", tmp_path / "ramp.yaml", "--initial-m", "0,0,1",
            "--stop-crossing", "z:0", "--out", out, check=True)
    with h5py.File(out) as f:
        assert f.attrs["stop_reason"] == "crossing"
        c = json.loads(f.attrs["crossing_json"])
    b_cross = float(np.linalg.norm(c["field_T"]))
    assert abs(c["m_mean"][2]) < 1e-9
    # switching after (never before) the SW field, and within 2 % of it for 2 T/ns
    assert h_sw * b_a < b_cross < 1.02 * h_sw * b_a


def test_stop_when_torque_below_tolerance(cube):
    # alpha = 1: relaxation time (1 + alpha^2) / (alpha gamma B) = 11 ps at 1 T; from 30 deg the
    # torque B sin(theta) falls below 1e-2 T after ln(tan(15 deg) / tan(asin(1e-2) / 2)) * 11 ps.
    # (The exchange torque of the integration error, ~ 20 T x atol here, must stay well below.)
    out = cube / "torque.h5"
    run_cli("dynamics", "--mesh", cube / "mesh.h5", "--materials", cube / "mat.yaml", "--no-demag",
            "--alpha", 1.0, "--t-end-ns", 10, "--field", "0,0,1", "--initial-m", "0.5,0,0.8660254",
            "--stop-torque", 1e-2, "--rtol", 1e-8, "--atol", 1e-8, "--out", out, check=True)
    with h5py.File(out) as f:
        assert f.attrs["stop_reason"] == "torque"
        t, tq = f["timeseries/t_ns"][...], f["timeseries/max_torque_T"][...]
    tau = 2 / (GAMMA_E * 1.0) * 1e9
    t_expected = tau * math.log(math.tan(math.radians(15)) / math.tan(math.asin(1e-2) / 2))
    assert tq[-1] < 1e-2 <= tq[-2]
    assert t[-2] <= t_expected * (1 + 1e-3) and t[-1] >= t_expected * (1 - 1e-3)
