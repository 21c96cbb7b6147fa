"""Model -> mesh stages end to end through their artefacts and the CLI; exports readable by
meshio; user-mesh import (gmsh physical groups, meshio) and its bad inputs; rendering."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import meshio
import numpy as np
import pytest

from magtwin.errors import InputError
from magtwin.io.mesh_artefact import read_mesh_artefact
from magtwin.mesh.importers import run_import

from .model_helpers import face_usage, jittered_sites, laguerre_labels, tet_volumes, write_labels


def _magtwin(*args):
    return subprocess.run([sys.executable, "-m", "magtwin.cli.main", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    d = tmp_path_factory.mktemp("mm")
    shape, vox = (12, 30, 30), (2.0, 1.0, 1.0)
    labels = laguerre_labels(shape, vox, jittered_sites((2, 2, 1), (30, 30, 24), seed=2), np.zeros(4))
    src = d / "labels.h5"
    write_labels(src, labels, vox, alignment_axis=np.array([0.0, 0.0, 1.0]))
    r = _magtwin("model", src, "-o", d / "06_model.h5", "--set", "fit_iterations=20")
    assert r.returncode == 0, r.stderr
    r = _magtwin("mesh", d / "06_model.h5", "-o", d / "07_mesh.h5", "--xdmf", d / "mesh.xdmf",
                 "--vtu", d / "mesh.vtu", "--set", "gb_size_nm=1.5", "--set", "tj_size_nm=1.5",
                 "--set", "grain_size_nm=5")
    assert r.returncode == 0, r.stderr
    return d


def test_mesh_artefact_is_complete_and_measured_independently(pipeline):
    mesh = read_mesh_artefact(pipeline / "07_mesh.h5")
    vol = tet_volumes(mesh.points_nm, mesh.tetrahedra)
    assert vol.min() > 0
    assert vol.sum() == pytest.approx(30 * 30 * 24, rel=1e-9)
    _, cnt, _ = face_usage(mesh.tetrahedra)
    assert cnt.max() == 2
    kinds = {r["kind"] for r in mesh.regions}
    assert kinds == {"grain", "gb", "tj"}
    for r in mesh.regions:
        assert r["volume_nm3"] == pytest.approx(vol[mesh.region_id == r["id"]].sum(), rel=1e-9)
        if r["kind"] == "gb":
            assert len(r["normal"]) == 3 and 0 <= r["angle_to_axis_deg"] <= 90
        if r["kind"] == "tj":
            assert r["tj_class"] in ("thin", "thick")
    np.testing.assert_allclose(mesh.alignment_axis, [0, 0, 1])
    with h5py.File(pipeline / "07_mesh.h5") as f:
        stats = json.loads(f.attrs["statistics_json"])
    assert stats["elements"] == len(mesh.tetrahedra)
    assert sum(v["elements"] for v in stats["per_kind"].values()) == len(mesh.tetrahedra)
    with h5py.File(pipeline / "06_model.h5") as f:
        fit = json.loads(f.attrs["fit_json"])
    assert fit["voxel_accuracy"] >= 0.9


@pytest.mark.parametrize("name", ["mesh.xdmf", "mesh.vtu"])
def test_exports_read_back_with_region_ids(pipeline, name):
    mesh = read_mesh_artefact(pipeline / "07_mesh.h5")
    m = meshio.read(pipeline / name)
    assert len(m.cells_dict["tetra"]) == len(mesh.tetrahedra)
    np.testing.assert_array_equal(m.cell_data["region_id"][0], mesh.region_id)


def test_render_png(pipeline, tmp_path):
    from magtwin.mesh.render import run_render

    png = tmp_path / "model.png"
    run_render(pipeline / "07_mesh.h5", png)
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[0] > 100 and img[..., :3].std() > 0.05  # not a blank picture


def test_cli_bad_labels_one_line_error_and_no_artefact(tmp_path):
    src = tmp_path / "one.h5"
    write_labels(src, np.ones((6, 6, 6), np.uint32), (1.0, 1.0, 1.0))
    r = _magtwin("model", src, "-o", tmp_path / "m.h5")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and str(src) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.h5").exists()


# -- import of a user's mesh --------------------------------------------------------------

def _cube_tets(n=3, offset=(0, 0, 0)):
    """A cube [0, n]^3 of unit cubes split into 6 tetrahedra each (Kuhn triangulation)."""
    g = np.stack(np.meshgrid(*[np.arange(n + 1)] * 3, indexing="ij"), -1).reshape(-1, 3).astype(float)
    idx = lambda i, j, k: (i * (n + 1) + j) * (n + 1) + k  # noqa: E731
    tets = []
    perms = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    for i in range(n):
        for j in range(n):
            for k in range(n):
                for p in perms:
                    v = [np.array([i, j, k])]
                    for ax in p:
                        nxt = v[-1].copy()
                        nxt[ax] += 1
                        v.append(nxt)
                    tets.append([idx(*x) for x in v])
    return g + np.asarray(offset, float), np.array(tets)


def _write_msh(path, pts, tets, tags=None, names=None, with_tets=True):
    cells = [("tetra", tets)] if with_tets else [("triangle", tets[:, :3])]
    cell_data = {}
    if tags is not None:
        cell_data = {"gmsh:physical": [tags], "gmsh:geometrical": [tags]}
    m = meshio.Mesh(pts, cells, cell_data=cell_data)
    if names:
        m.field_data = {n: np.array([t, 3]) for n, t in names.items()}
    meshio.write(path, m, file_format="gmsh22", binary=False)


def test_import_gmsh_physical_groups_to_regions(tmp_path):
    pts, tets = _cube_tets(3)
    centre_x = pts[tets].mean(axis=1)[:, 0]
    tags = np.where(centre_x < 1, 1, np.where(centre_x < 2, 2, 3)).astype(int)
    _write_msh(tmp_path / "u.msh", pts, tets, tags, names={"left": 1, "slab": 2, "right": 3})
    stats = run_import(tmp_path / "u.msh", tmp_path / "07_mesh.h5",
                       {"kinds": {"slab": "gb"}, "scale_to_nm": 10.0})
    mesh = read_mesh_artefact(tmp_path / "07_mesh.h5")
    kinds = {r["id"]: r["kind"] for r in mesh.regions}
    assert kinds == {1: "grain", 2: "gb", 3: "grain"}
    assert tet_volumes(mesh.points_nm, mesh.tetrahedra).sum() == pytest.approx(30.0**3)
    assert stats["per_kind"]["gb"]["volume_nm3"] == pytest.approx(10 * 30 * 30)


def test_import_meshio_vtu_and_fixes_orientation(tmp_path):
    pts, tets = _cube_tets(2)
    tets = tets.copy()
    tets[::2] = tets[::2][:, [0, 2, 1, 3]]  # half of them inverted
    meshio.write(tmp_path / "u.vtu", meshio.Mesh(pts, [("tetra", tets)]))
    run_import(tmp_path / "u.vtu", tmp_path / "m.h5", {})
    mesh = read_mesh_artefact(tmp_path / "m.h5")
    assert tet_volumes(mesh.points_nm, mesh.tetrahedra).min() > 0


@pytest.mark.parametrize("case,message", [
    ("no_physical", "physical groups"), ("no_tets", "no tetrahedra"),
    ("overlap", "overlapping"), ("nonconvex", "not convex")])
def test_import_bad_meshes(tmp_path, case, message):
    pts, tets = _cube_tets(2)
    path = tmp_path / "bad.msh"
    if case == "no_physical":
        _write_msh(path, pts, tets)
    elif case == "no_tets":
        _write_msh(path, pts, tets, None, with_tets=False)
    elif case == "overlap":
        # a second copy of the cube, shifted by a fraction of a cell: elements overlap
        p2, t2 = _cube_tets(2, offset=(0.3, 0.4, 0.45))
        _write_msh(path, np.vstack([pts, p2]), np.vstack([tets, t2 + len(pts)]), np.ones(2 * len(tets), int))
    elif case == "nonconvex":
        keep = pts[tets].mean(axis=1)
        sel = ~((keep[:, 0] > 1) & (keep[:, 1] > 1))  # an L-shaped body
        _write_msh(path, pts, tets[sel], np.ones(int(sel.sum()), int))
    out = tmp_path / "m.h5"
    with pytest.raises(InputError, match=message) as exc:
        run_import(path, out, {})
    assert str(path) in str(exc.value)
    assert not out.exists()
    r = _magtwin("import-mesh", path, "-o", out)
    assert r.returncode != 0 and "Traceback" not in r.stderr and not out.exists()
