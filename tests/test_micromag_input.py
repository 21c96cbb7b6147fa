"""Bad input to ``magtwin simulate``: one clear error line, non-zero exit, no artefact; and
the materials rules (kinds, sub-kinds, per-region overrides, misalignment)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from magtwin.errors import ConfigError
from magtwin.io.mesh_artefact import MeshData, write_mesh_artefact
from magtwin.micromag.materials import resolve_materials
from magtwin.micromag.shapes import box_mesh
from tests.util import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    mesh = box_mesh((4.0, 4.0, 4.0), (2, 2, 2))
    write_mesh_artefact(d / "mesh.h5", mesh)
    (d / "mat.yaml").write_text("grain: {}\n")
    return d


def _sim(d, *extra, mesh="mesh.h5", mat="mat.yaml", out="out.h5"):
    return run_cli("simulate", "--mesh", d / mesh, "--materials", d / mat, "--field-start", 1,
                   "--field-stop", -1, "--field-step", 0.5, "--no-demag", "--out", d / out, *extra)


def test_inverted_element(files):
    mesh = box_mesh((4.0, 4.0, 4.0), (2, 2, 2))
    write_mesh_artefact(files / "inv.h5", mesh)
    with h5py.File(files / "inv.h5", "r+") as f:   # corrupt after writing, as a foreign tool might
        t = f["mesh/tetrahedra"][...]
        t[3, [0, 1]] = t[3, [1, 0]]
        f["mesh/tetrahedra"][...] = t
    proc = _sim(files, mesh="inv.h5", out="inv_out.h5")
    assert_one_line_error(proc, "inv.h5", "inverted")
    assert not (files / "inv_out.h5").exists()


def test_region_without_material(files):
    mesh = box_mesh((4.0, 4.0, 4.0), (2, 2, 2), region_of_cell=lambda c: 1 + (c[:, 0] > 2))
    mesh.regions[1]["kind"] = "gb"
    write_mesh_artefact(files / "gb.h5", mesh)
    proc = _sim(files, mesh="gb.h5", out="gb_out.h5")
    assert_one_line_error(proc, "mat.yaml", "region 2", "no material")
    assert not (files / "gb_out.h5").exists()


@pytest.mark.parametrize("text, frag", [
    ("grain: {K1_J_per_m3: -4.9e6}\n", "grain.K1_J_per_m3"),
    ("grain: {Js_T: fast}\n", "grain.Js_T"),
    ("grain: {Ms: 1}\n", "grain.Ms"),
    ("grain: {}\ngb: {A_J_per_m: 1e-12}\nregions: {1: {Js_T: -1}}\n", "regions.1.Js_T"),
])
def test_bad_material_parameter(files, text, frag):
    (files / "badmat.yaml").write_text(text)
    proc = _sim(files, mat="badmat.yaml", out="bm_out.h5")
    assert_one_line_error(proc, "badmat.yaml", frag)
    assert not (files / "bm_out.h5").exists()


def test_angle_out_of_range(files):
    proc = _sim(files, "--angle", 120, out="ang_out.h5")
    assert_one_line_error(proc, "angle", "out of range")
    assert not (files / "ang_out.h5").exists()


def test_non_convergence_is_flagged(files):
    proc = _sim(files, "--angle", 30, "--max-iterations", 2, "--torque-tol", 1e-9, out="nc.h5")
    line = assert_one_line_error(proc, "did not converge")
    assert proc.returncode == 3
    assert not (files / "nc.h5").exists()               # nothing that looks complete
    with h5py.File(files / "nc.unconverged.h5") as f:    # the flagged curve, for inspection
        assert not f["curve/converged"][...].all()
        assert not f.attrs["all_converged"]
    assert "nc.unconverged.h5" in line


def test_missing_mesh(files):
    assert_one_line_error(_sim(files, mesh="nope.h5"), "nope.h5", "does not exist")


# -- materials rules (library level) --------------------------------------------------------
def _regions():
    return [{"id": 1, "kind": "grain"}, {"id": 2, "kind": "grain", "easy_axis": [1, 0, 0]},
            {"id": 3, "kind": "gb", "normal": [0, 0, 1]}, {"id": 4, "kind": "gb", "normal": [1, 0, 0]},
            {"id": 5, "kind": "tj", "tj_class": "thin"}, {"id": 6, "kind": "tj", "tj_class": "thick"}]


def test_material_resolution_rules():
    mat = {"grain": {"Js_T": 1.6, "A_J_per_m": 8e-12}, "gb": {"Js_T": 0.8},
           "gb_parallel": {"Js_T": 0.4}, "tj": {"Js_T": 0.5}, "tj_thin": {"Js_T": 0.1},
           "regions": {6: {"Js_T": 0.0}}}
    m = resolve_materials(mat, _regions(), [1, 2, 3, 4, 5, 6], [0, 0, 1])
    js = dict(zip(m.region_ids.tolist(), m.Js_T))
    assert js == {1: 1.6, 2: 1.6, 3: 0.8, 4: 0.4, 5: 0.1, 6: 0.0}
    a = dict(zip(m.region_ids.tolist(), m.A_J_per_m))
    assert a[3] == pytest.approx(8e-12 * (0.8 / 1.6) ** 2)      # A scaled with Js^2
    assert a[4] == pytest.approx(8e-12 * (0.4 / 1.6) ** 2)
    assert m.K1_J_per_m3[2] == 0.0 and m.K1_J_per_m3[0] == 4.9e6
    np.testing.assert_allclose(m.easy_axis[1], [1, 0, 0])        # from the region table
    np.testing.assert_allclose(m.easy_axis[0], [0, 0, 1])        # sigma 0: the alignment axis


def test_missing_js_for_gb_is_an_error():
    with pytest.raises(ConfigError, match="missing 'Js_T' for region 3"):
        resolve_materials({"grain": {}, "gb": {"K1_J_per_m3": 0}, "tj": {"Js_T": 1}},
                          _regions(), [1, 2, 3, 4, 5, 6], [0, 0, 1], source="m.yaml")


def test_misalignment_distribution_is_seeded():
    ids = np.arange(1, 2001)
    regions = [{"id": int(i), "kind": "grain"} for i in ids]
    mat = {"grain": {}, "misalignment": {"distribution": "uniform_cone", "sigma_deg": 20, "seed": 3}}
    a = resolve_materials(mat, regions, ids, [0, 0, 1]).easy_axis
    b = resolve_materials(mat, regions, ids, [0, 0, 1]).easy_axis
    np.testing.assert_array_equal(a, b)
    tilt = np.degrees(np.arccos(np.clip(a[:, 2], -1, 1)))
    assert tilt.max() <= 20 + 1e-9
    # uniform on the cap: <cos theta> = (1 + cos 20deg) / 2
    assert a[:, 2].mean() == pytest.approx((1 + np.cos(np.radians(20))) / 2, abs=2e-3)
    g = resolve_materials({"grain": {}, "misalignment": {"sigma_deg": 5, "seed": 1}}, regions, ids,
                          [0, 0, 1]).easy_axis
    # folded normal: <theta> = sigma sqrt(2/pi)
    assert np.degrees(np.arccos(g[:, 2])).mean() == pytest.approx(5 * np.sqrt(2 / np.pi), rel=0.05)


def test_output_artefact_layout_and_xdmf(files):
    """The contract the analysis stage codes against, and a ParaView-readable XDMF."""
    import meshio

    out = files / "layout.h5"
    run_cli("simulate", "--mesh", files / "mesh.h5", "--materials", files / "mat.yaml",
            "--field-start", 2, "--field-stop", -8, "--field-step", 1, "--angle", 10,
            "--out", out, check=True)
    with h5py.File(out) as f:
        assert f.attrs["magtwin_stage"] == "simulate" and f.attrs["complete"]
        b = f["curve/field_T"][...]
        k = len(b)
        assert np.all(np.diff(b) < 0) and b[0] == 2.0 and b[-1] == -8.0
        J = f["curve/J_T"][...]
        h = f.attrs["field_direction"]
        assert J.shape == (k, 3)
        np.testing.assert_allclose(f["curve/J_along_field_T"][...], J @ h, atol=1e-12)
        np.testing.assert_allclose(h, [np.sin(np.radians(10)), 0, np.cos(np.radians(10))], atol=1e-12)
        assert f.attrs["field_angle_deg"] == 10.0
        assert list(f["curve/energy_J"].attrs["terms"]) == ["exchange", "anisotropy", "zeeman", "demag"]
        assert f["curve/energy_J"].shape == (k, 4)
        assert f["curve/iterations"].shape == (k,) and f["curve/converged"][...].all()
        assert f["curve/max_torque"].shape == (k,)
        assert f.attrs["Js_mean_T"] == pytest.approx(1.61)
        assert f.attrs["magnet_volume_nm3"] == pytest.approx(64.0)
        assert "materials" in json.loads(f.attrs["parameters_json"])
        # nearly uniform at the start (a weak flower state from the demagnetising field)
        assert np.linalg.norm(J[0]) == pytest.approx(1.61, rel=1e-4)
        snaps = sorted(int(s) for s in f["snapshots"])
        assert snaps[0] == 0 and snaps[-1] == k - 1
    with meshio.xdmf.TimeSeriesReader(out.with_suffix(".xdmf")) as r:
        pts, cells = r.read_points_cells()
        assert pts.shape == (27, 3) and cells[0].data.shape == (48, 4)
        t, pd, _ = r.read_data(0)
        np.testing.assert_allclose(np.linalg.norm(pd["m"], axis=1), 1.0, atol=1e-12)
