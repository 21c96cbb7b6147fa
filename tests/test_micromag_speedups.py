"""The minimiser's speed-ups keep the physics: the anisotropy field is the energy gradient,
and a curve computed with inexact (adaptive-tolerance) demagnetising-field solves, field
extrapolation and the stop at reversal switches at the Stoner-Wohlfarth field.

h_sw(theta) = H_A / (cos^(2/3) theta + sin^(2/3) theta)^(3/2), mu0 H_A = 2 K1 / Js
(E. C. Stoner and E. P. Wohlfarth, Phil. Trans. R. Soc. A 240, 599 (1948)); a small cube
(edge below the exchange length) reverses coherently, and a cube has no shape anisotropy
(N = 1/3 along every axis; J. Appl. Phys. 83, 3432 (1998), Aharoni), so the demagnetising
field does not shift its switching field to first order.
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from magtwin.micromag.anisotropy import Anisotropy
from magtwin.micromag.curve import simulate_curve
from magtwin.micromag.materials import resolve_materials
from magtwin.micromag.shapes import box_mesh
from magtwin.micromag.state import MU0, State

K1, JS = 4.3e6, 1.5


def h_sw(theta_deg):
    t = np.radians(theta_deg)
    return 2 * K1 / JS * 4e-7 * np.pi / (np.cos(t) ** (2 / 3) + np.sin(t) ** (2 / 3)) ** 1.5


def test_anisotropy_field_is_minus_energy_gradient():
    """H_an,i = -(mu0 / (Js V)_i) dE_an/dm_i, checked by central differences (K1 and K2,
    two grains with different axes so interface nodes see both)."""
    mesh = box_mesh((4.0, 2.0, 2.0), (4, 2, 2), region_of_cell=lambda c: 1 + (c[:, 0] > 2.0))
    mats = resolve_materials({"grain": {"K2_J_per_m3": 1.2e6},
                              "regions": {2: {"easy_axis": [0.4, 0.2, 1.0], "K1_J_per_m3": 2e6}}},
                             mesh.regions, mesh.region_id, mesh.alignment_axis)
    st = State(mesh.points_nm, mesh.tetrahedra, mesh.region_id, mats, MPI.COMM_SELF)
    rng = np.random.default_rng(3)
    m = rng.normal(size=(st.n_local, 3))
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    an = Anisotropy(st)
    h = np.zeros_like(m)
    st.m_local[:] = m
    an.field(None, h)
    eps = 1e-6
    for i in (0, 7, 12, len(m) - 1):
        for c in range(3):
            mp, mm = m.copy(), m.copy()
            mp[i, c] += eps
            mm[i, c] -= eps
            grad = (an.energy(mp) - an.energy(mm)) / (2 * eps)
            assert h[i, c] == pytest.approx(-MU0 * st.inv_js_vol[i] * grad, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("angle", [1.0, 30.0])
def test_inexact_demag_curve_switches_at_stoner_wohlfarth(angle):
    mesh = box_mesh((4.0, 4.0, 4.0), (2, 2, 2))
    mats = {"grain": {"Js_T": JS, "K1_J_per_m3": K1, "A_J_per_m": 7.7e-12}}
    field = {"start_T": 0.0, "stop_T": -12.0, "step_T": 0.5, "angle_deg": angle}
    base = {"torque_tol_T": 1e-5, "refine_tol_T": 0.01, "air_sphere_subdivisions": 2,
            "air_shell_layers": 4, "stop_when_reversed": True}
    tight = simulate_curve(mesh, mats, field, {**base, "demag_rtol_loose": 1e-6, "extrapolate": False},
                           comm=MPI.COMM_SELF)
    fast = simulate_curve(mesh, mats, field, {**base, "demag_rtol_loose": 1e-2, "extrapolate": True},
                          comm=MPI.COMM_SELF)
    for c in (tight, fast):
        assert c.converged.all()
        assert c.J_along_field_T[-1] < 0 < c.J_along_field_T[-2]        # stopped at the reversal
        assert len(c.jumps) == 1
        b_sw = -0.5 * sum(c.jumps[0])
        assert b_sw == pytest.approx(h_sw(angle), rel=0.02)
    assert fast.demag_iterations < tight.demag_iterations
