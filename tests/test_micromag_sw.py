"""Stoner-Wohlfarth switching of a small exchange-dominated particle, run through the CLI.

h_sw(theta) = H_A / (cos^(2/3) theta + sin^(2/3) theta)^(3/2), mu0 H_A = 2 K1 / Js
(E. C. Stoner and E. P. Wohlfarth, Phil. Trans. R. Soc. A 240, 599 (1948)).
A 4 nm cube (below the exchange length) reverses coherently; demag off (a sphere's shape
anisotropy vanishes, and the cube's is zero to first order).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from magtwin.io.mesh_artefact import write_mesh_artefact
from magtwin.micromag.shapes import box_mesh
from tests.util import run_cli

K1, JS = 4.3e6, 1.5
MU0_HA = 2 * K1 / JS * 4e-7 * np.pi


def h_sw(theta_deg):
    t = np.radians(theta_deg)
    return MU0_HA / (np.cos(t) ** (2 / 3) + np.sin(t) ** (2 / 3)) ** 1.5


@pytest.fixture(scope="module")
def particle(tmp_path_factory):
    d = tmp_path_factory.mktemp("sw")
    mesh = box_mesh((4.0, 4.0, 4.0), (2, 2, 2), origin_nm=(1.0, 2.0, 3.0))
    write_mesh_artefact(d / "mesh.h5", mesh)
    (d / "mat.yaml").write_text(f"grain: {{Js_T: {JS}, K1_J_per_m3: {K1}, A_J_per_m: 7.7e-12}}\n")
    return d


@pytest.mark.parametrize("angle", [1.0, 20.0, 45.0, 70.0])
def test_switching_field_vs_angle(particle, angle):
    out = particle / f"sw{angle:g}.h5"
    run_cli("simulate", "--mesh", particle / "mesh.h5", "--materials", particle / "mat.yaml",
            "--field-start", 1, "--field-stop", -12, "--field-step", 0.5, "--angle", angle,
            "--no-demag", "--refine-tol", 0.005, "--torque-tol", 1e-5, "--out", out, check=True)
    with h5py.File(out) as f:
        b = f["curve/field_T"][...]
        jh = f["curve/J_along_field_T"][...]
        assert f["curve/converged"][...].all()
        assert np.all(np.diff(b) < 0)
    drop = np.diff(jh)
    k = int(np.argmin(drop))                  # the irreversible jump
    assert drop[k] < -0.1 * JS
    b_sw = 0.5 * (b[k] + b[k + 1])
    assert -b_sw == pytest.approx(h_sw(angle), rel=0.02)
    assert b[k] - b[k + 1] <= 0.0051
