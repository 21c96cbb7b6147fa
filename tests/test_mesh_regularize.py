"""Features below the regularisation tolerance (short Laguerre edges, thin strips) and the
self-intersection check.

A tessellation whose four cells almost meet in one point has an edge of about 1e-3 nm,
three orders of magnitude below the element size: the kind of feature on which TetGen's
refinement aborted for 60-grain models. After regularisation (Quey et al., CMAME 200 (2011)
1729) the PLC has no edge below the tolerance, and the mesh is measured independently: total
volume = box volume, positive elements, conforming regions, GB thickness within 5 %."""

from __future__ import annotations

import numpy as np
import pytest

from magtwin.mesh.build import mesh_geometry
from magtwin.mesh.plc import build_plc, open_edges
from magtwin.mesh.regularize import regular_surface, regularize, self_intersections
from magtwin.model.geometry import build_geometry

from .model_helpers import face_usage, slab_thickness, tet_volumes

L = np.array([40.0, 40.0, 12.0])
# four sites on a square, one moved by 1e-3 nm: the power diagram's four-fold point splits
# into two triple points joined by an edge of ~1e-3 nm
SITES = np.array([[10.0, 10.0, 6.0], [30.0, 10.0, 6.0], [10.0, 30.0, 6.0], [30.0 + 1e-3, 30.0, 6.0]])


def _geometry():
    return build_geometry(SITES, np.zeros(4), np.arange(1, 5), [0, 0, 0], L, 2.0, 0.1, 3.0)


def _plc(geom):
    reg = np.array([p.region for p in geom.pieces])
    kept = [f for f in geom.facets if f.b < 0 or reg[f.a] != reg[f.b]]
    plc = build_plc(kept, 1e-8 * float(L.max()))
    back = np.array([reg[f.a] for f in plc.facets])
    front = np.array([reg[f.b] if f.b >= 0 else 0 for f in plc.facets])
    return plc, back, front


def _shortest_edge(points, loops):
    return min(np.linalg.norm(points[a] - points[b]) for lp in loops for a, b in zip(lp, lp[1:] + lp[:1]))


def test_regularisation_removes_edges_below_tolerance_and_keeps_the_box():
    geom = _geometry()
    plc, back, front = _plc(geom)
    assert _shortest_edge(plc.points, plc.loops) < 1e-2, "the reproducer must contain a feature far below 1 nm"
    tol = 0.2
    pts, tris, report = regular_surface(plc.points, plc.loops, back, front, np.full(len(back), 1.5),
                                              [0, 0, 0], L, tol, 1e-9 * L.max())
    assert open_edges(tris) == 0
    assert report["vertices_at_reduced_tol"] == 0 and report["remaining_intersections"] == 0
    assert report["shortest_edge_nm"] >= tol
    assert len(self_intersections(pts, tris)) == 0
    # the box surface stays exactly where it was
    for axis in range(3):
        assert pts[:, axis].min() == pytest.approx(0.0, abs=1e-12)
        assert pts[:, axis].max() == pytest.approx(L[axis], abs=1e-12)


def test_a_strip_thinner_than_the_tolerance_disappears_and_its_neighbours_meet():
    # the unit square z = 0 (a box face) cut into A | strip 0.01 wide | B
    x = [0.0, 0.5, 0.51, 1.0]
    pts = np.array([[xi, y, 0.0] for y in (0.0, 1.0) for xi in x])  # 0..3 at y = 0, 4..7 at y = 1
    loops = [[0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6]]
    reg, report = regularize(pts, loops, [1, 2, 3], [0, 0, 0], [0.2] * 3, [0, 0, 0], [1, 1, 1], 0.05)
    assert len(reg.loops) == 2 and report["merged_vertices"] == 2
    assert len(set(reg.loops[0]) & set(reg.loops[1])) == 2  # A and B now share an edge
    # nothing left the box face, and the two facets still tile the square
    used = reg.points[sorted({v for lp in reg.loops for v in lp})]
    assert np.all(used[:, 2] == 0.0)
    area = sum(0.5 * np.linalg.norm(np.sum(np.cross(reg.points[lp], np.roll(reg.points[lp], -1, axis=0)), axis=0))
               for lp in reg.loops)
    assert area == pytest.approx(1.0, rel=1e-12)


def test_model_with_a_short_laguerre_edge_meshes_conforming_and_exact():
    geom = _geometry()
    mesh, stats = mesh_geometry(geom, {"gb_size_nm": 1.5, "tj_size_nm": 1.5, "grain_size_nm": 4.0,
                                       "snap_tol_nm": 0.2})
    pts, tets = mesh.points_nm, mesh.tetrahedra
    vol = tet_volumes(pts, tets)
    assert vol.min() > 0
    assert vol.sum() == pytest.approx(np.prod(L), rel=1e-9)
    _, cnt, _ = face_usage(tets)
    assert cnt.max() == 2
    assert "tol_nm" in stats["regularisation"] and "min_dihedral_histogram" in stats["quality"]
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


def test_self_intersections_are_found_and_a_valid_surface_has_none():
    # two unit tetrahedra surfaces: apart, then pushed into each other
    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    tris = np.vstack([faces, faces + 4])
    assert len(self_intersections(np.vstack([tet, tet + 2.0]), tris)) == 0
    assert len(self_intersections(np.vstack([tet, tet + 0.2]), tris)) > 0
