"""Domain-wall pinning at a hard/soft interface (exchange across a material interface).

A hard layer (K_h, A_h, Js_h) coupled to a soft layer (K_s = 0) along the easy axis: the wall
nucleated in the soft layer is pushed against the interface and passes it at

    mu0 H_p = (2 K_h / Js_h) (1 - eps_K eps_A) / (1 + sqrt(eps_J eps_A))^2,
    eps_K = K_s/K_h, eps_A = A_s/A_h, eps_J = Js_s/Js_h

(H. Kronmüller and D. Goll, Physica B 319, 122 (2002), eq. for the pinning of a wall at a
planar interface; H_A/4 for equal A and Js: A. Aharoni, Phys. Rev. 119, 127 (1960)).
A 1 x 1 nm prism, 0.4 nm elements along the axis, demag off: a 1D problem.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from magtwin.io.mesh_artefact import write_mesh_artefact
from magtwin.micromag.shapes import box_mesh
from tests.util import run_cli

K_H, JS_H, A_H = 4.9e6, 1.61, 8e-12
L_HARD, L_SOFT, DZ = 12.0, 15.0, 0.4


def pinning_field(js_s, a_s, k_s=0.0):
    ek, ea, ej = k_s / K_H, a_s / A_H, js_s / JS_H
    return 2 * K_H / JS_H * 4e-7 * np.pi * (1 - ek * ea) / (1 + np.sqrt(ej * ea)) ** 2


@pytest.mark.parametrize("js_s, a_s", [(1.61, 8e-12), (1.288, 4e-12)])
def test_pinning_field_at_hard_soft_interface(tmp_path, js_s, a_s):
    n = int(round((L_HARD + L_SOFT) / DZ))
    mesh = box_mesh((1.0, 1.0, L_HARD + L_SOFT), (1, 1, n), region_of_cell=lambda c: 1 + (c[:, 2] > L_HARD))
    write_mesh_artefact(tmp_path / "bilayer.h5", mesh)
    (tmp_path / "mat.yaml").write_text(
        f"grain: {{Js_T: {JS_H}, K1_J_per_m3: {K_H}, A_J_per_m: {A_H}}}\n"
        f"regions: {{2: {{Js_T: {js_s}, K1_J_per_m3: 0.0, A_J_per_m: {a_s}}}}}\n")
    out = tmp_path / "out.h5"
    # starts at -1 T: the soft layer has already reversed (exchange spring), the hard one not
    run_cli("simulate", "--mesh", tmp_path / "bilayer.h5", "--materials", tmp_path / "mat.yaml",
            "--field-start", -1.0, "--field-stop", -4.0, "--field-step", 0.25, "--angle", 0.5,
            "--no-demag", "--refine-tol", 0.005, "--torque-tol", 1e-5, "--out", out, check=True)
    with h5py.File(out) as f:
        jumps = f["curve/jumps_T"][...]
        b = f["curve/field_T"][...]
        j = f["curve/J_along_field_T"][...]
    assert len(jumps) == 1                       # one irreversible event: depinning
    h_p = -jumps[0].mean()
    assert h_p == pytest.approx(pinning_field(js_s, a_s), rel=0.02)
    # before depinning the soft layer is reversed (but for the wall) and the hard one is not
    v_h, v_s = L_HARD, L_SOFT
    sharp = (JS_H * v_h - js_s * v_s) / (v_h + v_s)
    assert sharp < j[0] < JS_H * v_h / (v_h + v_s)
    assert j[-1] == pytest.approx(-(JS_H * v_h + js_s * v_s) / (v_h + v_s), rel=0.01)
    assert np.all(np.diff(b) < 0)


def test_nonmagnetic_grain_boundary_decouples_grains(tmp_path):
    """A GB with Js = 0 (and hence A = 0) carries no magnetisation and decouples the grains:
    two 4 nm grains with easy axes 0 deg and 40 deg from the field each switch at their own
    Stoner-Wohlfarth field (demag off), and saturation is Js V_grains / V."""
    mesh = box_mesh((10.0, 4.0, 4.0), (10, 2, 2),
                    region_of_cell=lambda c: np.where(c[:, 0] < 4, 1, np.where(c[:, 0] > 6, 2, 3)))
    mesh.regions[2]["kind"] = "gb"
    write_mesh_artefact(tmp_path / "m.h5", mesh)
    t = np.radians(40.0)
    (tmp_path / "mat.yaml").write_text(
        f"grain: {{Js_T: {JS_H}, K1_J_per_m3: {K_H}}}\ngb: {{Js_T: 0.0}}\n"
        f"regions: {{2: {{easy_axis: [{np.sin(t)}, 0.0, {np.cos(t)}]}}}}\n")
    out = tmp_path / "out.h5"
    run_cli("simulate", "--mesh", tmp_path / "m.h5", "--materials", tmp_path / "mat.yaml",
            "--field-start", 0, "--field-stop", -9, "--field-step", 0.5, "--angle", 0.5,
            "--no-demag", "--refine-tol", 0.01, "--torque-tol", 1e-5, "--out", out, check=True)
    with h5py.File(out) as f:
        jumps = f["curve/jumps_T"][...]
        j = f["curve/J_along_field_T"][...]
        m_last = f[f"snapshots/{len(j) - 1}/m"][...]
    h_a = 2 * K_H / JS_H * 4e-7 * np.pi

    def sw(deg):
        r = np.radians(deg)
        return h_a / (np.cos(r) ** (2 / 3) + np.sin(r) ** (2 / 3)) ** 1.5

    # the GB interior nodes (x = 5 nm) carry no m; nodes on the GB faces belong to the grains
    x = mesh.points_nm[:, 0]
    assert np.all(np.linalg.norm(m_last[np.isclose(x, 5.0)], axis=1) == 0)
    # at -9 T each (uniform) grain sits in its Stoner-Wohlfarth minimum; GB volume counts 0
    phi = np.radians(np.linspace(90.0, 270.0, 180001))   # angle of m from z in the xz plane
    b, th_h = -9.0, np.radians(0.5)

    def j_along(axis_deg):
        e = -K_H * np.cos(phi - np.radians(axis_deg)) ** 2 - JS_H * b / (4e-7 * np.pi) * np.cos(phi - th_h)
        return np.cos(phi[np.argmin(e)] - th_h)

    expected = JS_H * (4.0 * j_along(0.0) + 4.0 * j_along(40.0)) / 10.0
    assert j[-1] == pytest.approx(expected, abs=2e-3)
    found = sorted(-jumps.mean(axis=1))
    assert len(found) == 2
    assert found[0] == pytest.approx(sw(40.0 - 0.5), rel=0.02)
    assert found[1] == pytest.approx(sw(0.5), rel=0.02)
