"""Regression: the minimiser converges on meshes with sliver elements.

Tomography meshes contain slivers (nodes whose lumped volume is 1e-8 of their neighbours'),
whose exchange stiffness is up to 1e8 times the bulk's. A 4 nm Stoner–Wohlfarth cube is
meshed with layers of 1e-4 nm and 1e-3 nm cells (stiffness ratio ~1e8); physically these
change nothing, so the particle must still reverse coherently at the Stoner–Wohlfarth field
h_sw(theta) = H_A / (cos^(2/3) theta + sin^(2/3) theta)^(3/2), mu0 H_A = 2 K1 / Js
(E. C. Stoner and E. P. Wohlfarth, Phil. Trans. R. Soc. A 240, 599 (1948)), and every field
point must converge within a modest iteration budget (a Jacobi-preconditioned minimiser did
not converge within 5000 iterations per point here).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from magtwin.io.mesh_artefact import write_mesh_artefact
from magtwin.micromag.shapes import tensor_box_mesh
from tests.util import run_cli

K1, JS, ANGLE = 4.3e6, 1.5, 20.0
MU0_HA = 2 * K1 / JS * 4e-7 * np.pi


def test_sliver_mesh_switches_at_stoner_wohlfarth(tmp_path):
    ax = np.array([0.0, 1e-4, 2.0, 4.0 - 1e-3, 4.0])
    mesh = tensor_box_mesh(ax, ax.copy(), np.array([0.0, 2.0, 4.0]))
    vol = np.abs(np.linalg.det(mesh.points_nm[mesh.tetrahedra[:, 1:]] - mesh.points_nm[mesh.tetrahedra[:, :1]])) / 6
    assert vol.max() / vol.min() > 1e6                       # the mesh really has slivers
    write_mesh_artefact(tmp_path / "mesh.h5", mesh)
    (tmp_path / "mat.yaml").write_text(f"grain: {{Js_T: {JS}, K1_J_per_m3: {K1}, A_J_per_m: 7.7e-12}}\n")
    out = tmp_path / "out.h5"
    run_cli("simulate", "--mesh", tmp_path / "mesh.h5", "--materials", tmp_path / "mat.yaml",
            "--field-start", 1, "--field-stop", -8, "--field-step", 0.5, "--angle", ANGLE,
            "--no-demag", "--refine-tol", 0.005, "--torque-tol", 1e-5, "--max-iterations", 5000,
            "--out", out, check=True, timeout=300)
    with h5py.File(out) as f:
        b = f["curve/field_T"][...]
        jh = f["curve/J_along_field_T"][...]
        assert f["curve/converged"][...].all()
    k = int(np.argmin(np.diff(jh)))
    t = np.radians(ANGLE)
    h_sw = MU0_HA / (np.cos(t) ** (2 / 3) + np.sin(t) ** (2 / 3)) ** 1.5
    assert -0.5 * (b[k] + b[k + 1]) == pytest.approx(h_sw, rel=0.02)
