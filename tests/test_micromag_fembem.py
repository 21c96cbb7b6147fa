"""Hybrid FEM/BEM (Fredkin-Koehler) demagnetising field against analytic results for uniformly
magnetised bodies, against the air-shell method, and on 1 vs 2 MPI ranks."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from magtwin.errors import ConfigError
from magtwin.io.mesh_artefact import write_mesh_artefact
from magtwin.micromag.curve import Simulation
from magtwin.micromag.fembem import FemBem, SurfaceMesh, double_layer_weights
from magtwin.micromag.shapes import box_mesh, sphere_mesh
from magtwin.micromag.state import MU0, NM3
from tests.util import assert_one_line_error, run_cli, run_mpi

JS = 1.61


def aharoni_nz(lx: float, ly: float, lz: float) -> float:
    """Demagnetising factor along z of a uniformly magnetised rectangular prism lx x ly x lz:
    A. Aharoni, J. Appl. Phys. 83, 3432 (1998), eq. (1) (a, b, c are the half edges)."""
    a, b, c = lx / 2, ly / 2, lz / 2
    r = np.sqrt(a * a + b * b + c * c)
    ab, bc, ac = np.hypot(a, b), np.hypot(b, c), np.hypot(a, c)
    s = ((b * b - c * c) / (2 * b * c) * np.log((r - a) / (r + a))
         + (a * a - c * c) / (2 * a * c) * np.log((r - b) / (r + b))
         + b / (2 * c) * np.log((ab + a) / (ab - a)) + a / (2 * c) * np.log((ab + b) / (ab - b))
         + c / (2 * a) * np.log((bc - b) / (bc + b)) + c / (2 * b) * np.log((ac - a) / (ac + a))
         + 2 * np.arctan(a * b / (c * r)) + (a ** 3 + b ** 3 - 2 * c ** 3) / (3 * a * b * c)
         + (a * a + b * b - 2 * c * c) / (3 * a * b * c) * r + c / (a * b) * (ac + bc)
         - (ab ** 3 + bc ** 3 + ac ** 3) / (3 * a * b * c))
    return float(s / np.pi)


def _mean_field(mesh, direction, solver):
    """Volume-averaged demagnetising field (3,) in T and energy (J) of uniform m."""
    sim = Simulation(mesh, {"grain": {"Js_T": JS}}, {"angle_deg": 0.0}, {"demag": True, **solver})
    st = sim.state
    st.set_uniform(direction)
    ef = sim.effective
    ef.compute()
    h = st.comm.allreduce((st.vol[:, None] * ef.h["demag"]).sum(axis=0)) / st.total_volume
    return h, ef.energies()["demag"], st.total_volume, sim


def test_lindholm_weights_match_quadrature():
    """The analytic double-layer weights of a triangle (Lindholm 1984) equal a fine midpoint
    quadrature of (1/4pi) int phi_k (x-y).n / |x-y|^3 dS, and sum to the solid angle / 4pi
    (-1 for an observer inside the closed surface: Gauss)."""
    surf = SurfaceMesh(*(lambda m: (m.points_nm, m.tetrahedra))(box_mesh((2.0, 1.5, 1.0), (1, 1, 1))))
    obs = np.array([[0.3, 0.4, 0.2], [3.0, -1.0, 0.5], [0.5, 0.5, 1.01]])
    w, omega = double_layer_weights(surf, obs - surf.centre)
    n = 300
    a, b = np.meshgrid((np.arange(n) + 1 / 3) / n, (np.arange(n) + 1 / 3) / n)
    keep = a + b < 1
    bary = np.stack([1 - a[keep] - b[keep], a[keep], b[keep]], axis=1)
    for p, x in enumerate(obs):
        for f, tri in enumerate(surf.tri):
            y = bary @ (surf.pts[tri] + surf.centre)
            ker = (x - y) @ surf.normal[f] / np.linalg.norm(x - y, axis=1) ** 3
            ref = (bary * ker[:, None]).sum(axis=0) * surf.area[f] / len(y) / (4 * np.pi)
            np.testing.assert_allclose(w[:, p, f], ref, atol=0.01 * np.abs(ref).max() + 1e-6)
    np.testing.assert_allclose(w.sum(axis=(0, 2)), [-1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(omega.sum(axis=1) / (4 * np.pi), [-1.0, 0.0, 0.0], atol=1e-12)


def test_sphere_field_is_minus_js_over_3():
    """Uniformly magnetised sphere: mu0 H_d = -Js m / 3, E_d = Js^2 V / (6 mu0)
    (J. A. Osborn, Phys. Rev. 67, 351 (1945)); no air mesh."""
    m = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
    h, e, v, sim = _mean_field(sphere_mesh(10.0, 1.5), m, {"demag_method": "fembem"})
    assert sim.effective.demag.n_air_nodes == 0
    assert np.linalg.norm(h + JS / 3 * m) < 0.01 * JS / 3
    assert e / (JS ** 2 * v * NM3 / (6 * MU0)) == pytest.approx(1.0, rel=0.01)   # ratio: approx has abs=1e-12


def test_cube_one_third_and_agrees_with_air_shell():
    """Cube: N = 1/3 along any direction (Aharoni 1998); FEM/BEM and the air-shell method agree
    within their discretisation errors on this 1 nm mesh (FEM/BEM 1.5 %, air shell 4 %)."""
    mesh = box_mesh((10.0, 10.0, 10.0), (10, 10, 10), origin_nm=(-3.0, 2.0, 1.0))
    assert aharoni_nz(10, 10, 10) == pytest.approx(1 / 3, abs=1e-12)
    d = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
    factors = {}
    for method, extra in (("fembem", {}), ("airshell", {"air_shell_layers": 16, "air_max_volume_nm3": 0.5})):
        h, e, v, _ = _mean_field(mesh, d, {"demag_method": method, **extra})
        e0 = JS ** 2 * v * NM3 / (2 * MU0)                 # E_d = N Js^2 V / (2 mu0)
        factors[method] = e / e0
        assert -h @ d / JS == pytest.approx(factors[method], rel=1e-9)   # E_d = -1/2 <H>.J V / mu0
    assert factors["fembem"] == pytest.approx(1 / 3, rel=0.015)
    assert factors["airshell"] == pytest.approx(1 / 3, rel=0.04)
    assert factors["fembem"] == pytest.approx(factors["airshell"], rel=0.04)


def test_sp4_film_demag_factors():
    """µMAG standard problem 4 film 500 x 125 x 3 nm, 5 nm cells: in-plane demagnetising factors
    Nx = 0.00918, Ny = 0.03818 (Aharoni 1998). With three element layers across the thickness
    FEM/BEM is within 3 % (measured -2.1 % / -1.7 %; the air-shell method is 18 % low there: its
    P1 air cannot resolve the 3 nm-scale field at the film edges). With one layer, P1
    interpolation across the thickness of the end faces' potential leaves FEM/BEM 11 % low
    (air shell 25 %); not asserted here to keep the test short."""
    nx, ny = aharoni_nz(125, 3, 500), aharoni_nz(3, 500, 125)
    nz = aharoni_nz(500, 125, 3)
    assert nx + ny + nz == pytest.approx(1.0, abs=1e-9)
    mesh = box_mesh((500.0, 125.0, 3.0), (100, 25, 3))
    sim = Simulation(mesh, {"grain": {"Js_T": 1.0}}, {}, {"demag_method": "fembem"})
    st, ef = sim.state, sim.effective
    for d, ref in (([1, 0, 0], nx), ([0, 1, 0], ny)):
        st.set_uniform(d)
        ef.compute()
        n = -(st.vol @ ef.h["demag"])[np.flatnonzero(d)[0]] / st.total_volume
        assert n == pytest.approx(ref, rel=0.03), d


def test_matrix_too_large_is_refused(tmp_path):
    """Models whose dense boundary matrix would exceed the bound are refused with a one-line
    ConfigError pointing to the air shell; an unknown method is a ConfigError too."""
    mesh = box_mesh((4.0, 4.0, 4.0), (2, 2, 2))
    sim = Simulation(mesh, {"grain": {}}, {}, {"demag": False})
    with pytest.raises(ConfigError, match="airshell"):
        FemBem(sim.state, {"max_matrix_mb": 1e-3}, source="mesh.h5")
    with pytest.raises(ConfigError, match="demag_method"):
        Simulation(mesh, {"grain": {}}, {}, {"demag_method": "fmm"})
    write_mesh_artefact(tmp_path / "mesh.h5", mesh)
    (tmp_path / "mat.yaml").write_text("grain: {}\n")
    proc = run_cli("simulate", "--mesh", tmp_path / "mesh.h5", "--materials", tmp_path / "mat.yaml",
                   "--demag-method", "bem", "--out", tmp_path / "out.h5")
    assert proc.returncode != 0 and "invalid choice" in proc.stderr
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.mpi
def test_one_and_two_ranks_identical(tmp_path):
    """The same curve through ``magtwin simulate --demag-method fembem`` on 1 and 2 ranks
    (non-uniform states: two grains with different easy axes)."""
    mesh = box_mesh((12.0, 6.0, 6.0), (6, 3, 3), region_of_cell=lambda c: 1 + (c[:, 0] > 6.0))
    write_mesh_artefact(tmp_path / "mesh.h5", mesh)
    (tmp_path / "mat.yaml").write_text(
        "grain: {}\nregions: {2: {easy_axis: [0.3, 0.0, 1.0], K1_J_per_m3: 3.0e6}}\n")
    args = ["simulate", "--mesh", tmp_path / "mesh.h5", "--materials", tmp_path / "mat.yaml",
            "--field-start", 0, "--field-stop", -8, "--field-step", 2.0, "--angle", 5,
            "--refine-tol", 0.5, "--torque-tol", 1e-5, "--demag-method", "fembem"]
    run_cli(*args, "--out", tmp_path / "one.h5", check=True)
    proc = run_mpi(2, "-m", "magtwin.cli.main", *args, "--out", tmp_path / "two.h5")
    assert proc.returncode == 0, proc.stderr
    with h5py.File(tmp_path / "one.h5") as a, h5py.File(tmp_path / "two.h5") as b:
        assert a["curve/converged"][...].all() and b["curve/converged"][...].all()
        np.testing.assert_allclose(a["curve/field_T"][...], b["curve/field_T"][...], atol=1e-12)
        np.testing.assert_allclose(a["curve/J_T"][...], b["curve/J_T"][...], atol=2e-4)
        ea, eb = a["curve/energy_J"][...], b["curve/energy_J"][...]
        np.testing.assert_allclose(ea, eb, atol=1e-3 * np.abs(ea).max())
