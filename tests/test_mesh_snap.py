"""Features below the snapping tolerance (short Laguerre edges) and TetGen's PLC check.

A tessellation whose four cells almost meet in one point has an edge of about 1e-3 nm,
three orders of magnitude below the element size: the kind of feature on which TetGen's
refinement aborted for 60-grain models. After snapping the surface has no edge and no
triangle height below the tolerance, and the mesh is measured independently: total volume =
box volume, positive elements, conforming regions, GB thickness within 5 %."""

from __future__ import annotations

import numpy as np
import pytest

from magtwin.errors import InputError
from magtwin.mesh.build import mesh_geometry
from magtwin.mesh.plc import build_plc, open_edges, orient_triangles, triangulate
from magtwin.mesh.snap import snap_surface
from magtwin.mesh.tetmesh import check_surface
from magtwin.model.geometry import build_geometry

from .model_helpers import face_usage, slab_thickness, tet_volumes

L = np.array([40.0, 40.0, 12.0])
# four sites on a square, one moved by 1e-3 nm: the power diagram's four-fold point splits
# into two triple points joined by an edge of ~1e-3 nm
SITES = np.array([[10.0, 10.0, 6.0], [30.0, 10.0, 6.0], [10.0, 30.0, 6.0], [30.0 + 1e-3, 30.0, 6.0]])


def _geometry():
    return build_geometry(SITES, np.zeros(4), np.arange(1, 5), [0, 0, 0], L, 2.0, 0.1, 3.0)


def _surface(geom, h):
    reg = np.array([p.region for p in geom.pieces])
    kept = [f for f in geom.facets if f.b < 0 or reg[f.a] != reg[f.b]]
    plc = build_plc(kept, 1e-8 * float(L.max()))
    pts, tris, owner = triangulate(plc, np.full(len(plc.facets), h))
    tris, front, back = orient_triangles(geom, plc, pts, tris, owner, reg)
    return pts, tris, front, back


def _edges_heights(pts, tris):
    q = pts[tris]
    e = np.linalg.norm(q[:, [1, 2, 0]] - q, axis=2)
    area2 = np.linalg.norm(np.cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]), axis=1)
    return e.min(axis=1), area2 / e.max(axis=1)


def test_snapping_removes_features_below_tolerance_and_keeps_the_box():
    geom = _geometry()
    pts, tris, front, back = _surface(geom, 1.5)
    e0, _ = _edges_heights(pts, tris)
    assert e0.min() < 1e-2, "the reproducer must contain a feature far below the element size"
    tol = 0.05
    p2, t2, f2, b2, report = snap_surface(pts, tris, front, back, [0, 0, 0], L, tol, 1e-9 * L.max())
    assert open_edges(t2) == 0
    e1, h1 = _edges_heights(p2, t2)
    assert e1.min() >= tol and h1.min() >= tol, report
    # every region's boundary is closed and oriented: the divergence theorem gives each
    # region's volume from its boundary triangles alone, and they add up to the box
    vol = {}
    for tri, f, b in zip(t2, f2, b2):
        a, bb, c = p2[tri]
        v = np.dot(a, np.cross(bb, c)) / 6.0  # normal points into ``f``, out of ``b``
        vol[b] = vol.get(b, 0.0) + v
        vol[f] = vol.get(f, 0.0) - v
    total = sum(v for r, v in vol.items() if r != 0)
    assert total == pytest.approx(np.prod(L), rel=1e-9)
    assert all(v > 0 for r, v in vol.items() if r != 0)
    # no vertex left the box surface it was on
    for axis in range(3):
        assert p2[:, axis].min() == pytest.approx(0.0, abs=1e-12)
        assert p2[:, axis].max() == pytest.approx(L[axis], abs=1e-12)
    check_surface(p2, t2)  # TetGen -d: no self-intersection


def test_model_with_a_short_laguerre_edge_meshes_conforming_and_exact():
    geom = _geometry()
    mesh, stats = mesh_geometry(geom, {"gb_size_nm": 1.5, "tj_size_nm": 1.5, "grain_size_nm": 4.0,
                                       "snap_tol_nm": 0.05})
    pts, tets = mesh.points_nm, mesh.tetrahedra
    vol = tet_volumes(pts, tets)
    assert vol.min() > 0
    assert vol.sum() == pytest.approx(np.prod(L), rel=1e-9)
    _, cnt, _ = face_usage(tets)
    assert cnt.max() == 2
    assert "tol_nm" in stats["snap"] and "min_dihedral_histogram" in stats["quality"]
    # the four long GB slabs: thickness measured on the mesh nodes within 5 % of 2 nm
    checked = 0
    for r in mesh.regions:
        if r["kind"] != "gb":
            continue
        nodes = pts[np.unique(tets[mesh.region_id == r["id"]])]
        sv = np.linalg.svd(nodes - nodes.mean(axis=0), compute_uv=False)
        if sv[1] < 4 * sv[2]:
            continue
        assert slab_thickness(nodes) == pytest.approx(2.0, rel=0.05)
        checked += 1
    assert checked >= 4


def test_check_surface_reports_self_intersection():
    # two unit tetrahedra surfaces pushed into each other
    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    pts = np.vstack([tet, tet + 0.2])
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    tris = np.vstack([faces, faces + 4])
    with pytest.raises(InputError, match="intersects itself"):
        check_surface(pts, tris, "model.h5")
