"""Mesh improvement after TetGen (magtwin.mesh.collapse, magtwin.mesh.flips,
magtwin.mesh.split, magtwin.mesh.improve): each operation must keep a valid conforming mesh, keep interfaces and
region volumes, and raise the smallest dihedral angle of the elements it touches.

Reference for the operations: Klingner & Shewchuk, "Aggressive tetrahedral mesh
improvement", Proc. 16th International Meshing Roundtable (2007) 3-23; Joe, SIAM J. Sci.
Comput. 16 (1995) 1292 (flips). The checks are geometric identities (volumes, orientation,
face use), measured independently with tests/model_helpers.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import Delaunay

from magtwin.mesh.collapse import collapse_short_edges
from magtwin.mesh.flips import flip_poor_elements
from magtwin.mesh.improve import improve_mesh
from magtwin.mesh.optimize import remove_slivers
from magtwin.mesh.split import split_poor_elements
from .model_helpers import face_usage, min_dihedral_deg, tet_volumes


def _oriented(points, tets):
    tets = np.array(tets)
    neg = tet_volumes(points, tets) < 0
    tets[neg] = tets[neg][:, [1, 0, 2, 3]]
    return tets


def test_32_flip_replaces_a_ring_of_three_by_two_good_elements():
    # edge ab passes close to the side cd of the triangle cde: element abcd is flat
    tri = np.array([[np.cos(t), np.sin(t), 0.0] for t in np.radians([90, 210, 330])])
    x0 = 0.95 * 0.5 * (tri[0] + tri[1])
    pts = np.vstack([x0 + [0, 0, 0.8], x0 - [0, 0, 0.8], tri])
    tets = _oriented(pts, [[0, 1, 2, 3], [0, 1, 3, 4], [0, 1, 4, 2]])
    assert min_dihedral_deg(pts, tets).min() < 5.0
    new, reg, rep = flip_poor_elements(pts, tets, np.ones(3, int), 5.0)
    assert rep["edge_removals"] == 1 and len(new) == 2
    assert tet_volumes(pts, new).min() > 0
    assert tet_volumes(pts, new).sum() == pytest.approx(tet_volumes(pts, tets).sum(), rel=1e-12)
    assert min_dihedral_deg(pts, new).min() > 30.0


@pytest.mark.parametrize("n", [4, 5, 6])
def test_edge_removal_of_a_ring_of_n(n):
    # ring of n around a vertical edge ab that passes close to the ring's side c0 c1: the
    # element a b c0 c1 is flat; removing ab (n -> 2n - 4 elements) repairs it
    ring = np.array([[np.cos(t), np.sin(t), 0.0] for t in 2 * np.pi * np.arange(n) / n])
    x0 = 0.99 * 0.5 * (ring[0] + ring[1])
    pts = np.vstack([x0 + [0, 0, 0.8], x0 - [0, 0, 0.8], ring])
    tets = _oriented(pts, [[0, 1, 2 + k, 2 + (k + 1) % n] for k in range(n)])
    assert min_dihedral_deg(pts, tets).min() < 5.0
    new, reg, rep = flip_poor_elements(pts, tets, np.ones(n, int), 5.0)
    assert rep["edge_removals"] >= 1 and len(new) == 2 * n - 4
    assert not np.any(np.isin(new, [0, 1]).sum(axis=1) == 2)  # the edge ab is gone
    assert tet_volumes(pts, new).min() > 0
    assert tet_volumes(pts, new).sum() == pytest.approx(tet_volumes(pts, tets).sum(), rel=1e-12)
    assert min_dihedral_deg(pts, new).min() > 5.0


def test_flips_never_cross_an_interface():
    # the same ring, but its elements belong to two regions: the edge is on an interface
    tri = np.array([[np.cos(t), np.sin(t), 0.0] for t in np.radians([90, 210, 330])])
    x0 = 0.95 * 0.5 * (tri[0] + tri[1])
    pts = np.vstack([x0 + [0, 0, 0.8], x0 - [0, 0, 0.8], tri])
    tets = _oriented(pts, [[0, 1, 2, 3], [0, 1, 3, 4], [0, 1, 4, 2]])
    new, reg, rep = flip_poor_elements(pts, tets, np.array([1, 2, 2]), 5.0)
    assert rep["edge_removals"] == 0 and rep["flips_23"] == 0
    assert sorted(map(tuple, np.sort(new, axis=1))) == sorted(map(tuple, np.sort(tets, axis=1)))


def _two_region_block(gap: float):
    """Unit cube, region 1 below z = 0.5 and region 2 above, Delaunay of a jittered lattice
    whose middle layer lies exactly on z = 0.5 and holds two vertices ``gap`` apart."""
    rng = np.random.default_rng(3)
    g = np.linspace(0, 1, 5)
    layers = []
    for z in (0.0, 0.25, 0.5, 0.75, 1.0):
        xy = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
        inner = (xy > 0) & (xy < 1)
        xy = xy + np.where(inner, rng.uniform(-0.03, 0.03, xy.shape), 0.0)
        layers.append(np.column_stack([xy, np.full(len(xy), z)]))
    pts = np.vstack(layers + [[[0.43, 0.57, 0.5], [0.43 + gap, 0.57, 0.5]]])
    tets = Delaunay(pts, qhull_options="Qbb Qc Qz Q12").simplices
    tets = _oriented(pts, tets[np.abs(tet_volumes(pts, tets)) > 1e-14])
    cz = pts[tets][:, :, 2].mean(axis=1)
    return pts, tets, np.where(cz < 0.5, 1, 2)


def test_collapse_removes_a_short_edge_on_a_planar_interface_and_keeps_it_exact():
    pts, tets, reg = _two_region_block(0.01)
    # the layers make a conforming two-region mesh: no element crosses z = 0.5
    z = pts[tets][:, :, 2]
    assert np.all((z.max(axis=1) <= 0.5) | (z.min(axis=1) >= 0.5))
    before = min_dihedral_deg(pts, tets)
    assert before.min() < 5.0  # the 0.01 edge makes needles/wedges
    # max_shift_nm = 0: only collapses that keep the geometry exactly
    p2, t2, r2, rep = collapse_short_edges(pts, tets, reg, 5.0, ratio_bound=np.inf, max_shift_nm=0.0)
    assert rep["collapsed_edges"] >= 1
    vol = tet_volumes(p2, t2)
    assert vol.min() > 0
    assert vol.sum() == pytest.approx(1.0, rel=1e-12)
    # the interface stays the plane z = 0.5: each region keeps its volume exactly
    assert np.bincount(r2, vol)[1] == pytest.approx(0.5, rel=1e-12)
    assert np.bincount(r2, vol)[2] == pytest.approx(0.5, rel=1e-12)
    _, cnt, _ = face_usage(t2)
    assert cnt.max() == 2
    e = p2[t2][:, [0, 0, 0, 1, 1, 2]] - p2[t2][:, [1, 2, 3, 2, 3, 3]]
    assert np.linalg.norm(e, axis=2).min() > 0.05
    assert min_dihedral_deg(p2, t2).min() > before.min()


def test_collapse_moves_interfaces_at_most_max_shift():
    pts, tets, reg = _two_region_block(0.01)
    p2, t2, r2, rep = collapse_short_edges(pts, tets, reg, 60.0, ratio_bound=np.inf, max_shift_nm=0.02)
    assert rep["collapsed_edges"] >= 1
    # the interface z = 0.5 is still the boundary of region 1, within 0.02 of the plane
    zs = p2[np.unique(t2[r2 == 1])][:, 2]
    assert zs.max() <= 0.5 + 0.02 + 1e-12
    vol = tet_volumes(p2, t2)
    assert abs(np.bincount(r2, vol)[1] - 0.5) <= 0.02 * 1.0  # shift x interface area
    assert vol.sum() == pytest.approx(1.0, rel=1e-12)


def test_collapse_keeps_box_corners_and_edges():
    pts, tets, reg = _two_region_block(0.01)
    p2, t2, r2, _ = collapse_short_edges(pts, tets, reg, 60.0, ratio_bound=np.inf)  # aggressive
    for corner in np.stack(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij"), -1).reshape(-1, 3):
        assert np.any(np.all(p2 == corner, axis=1))
    assert tet_volumes(p2, t2).sum() == pytest.approx(1.0, rel=1e-12)
    assert tet_volumes(p2, t2).min() > 0


def test_improve_mesh_reports_and_does_not_worsen():
    pts, tets, reg = _two_region_block(0.01)
    p2, t2, r2, rep = improve_mesh(pts, tets, reg, 5.0, 10.0, ratio_bound=np.inf)
    assert rep["below_5deg_after"] <= rep["below_5deg_before"]
    assert rep["below_5deg_after"] == int(np.sum(min_dihedral_deg(p2, t2) < 5.0))
    assert tet_volumes(p2, t2).min() > 0
    assert tet_volumes(p2, t2).sum() == pytest.approx(1.0, rel=1e-12)


def _pinned_sliver(eps: float = 0.02):
    """A flat element a b c d (edge ab passes just above cd) inside the double pyramid over
    the square a c b d: five elements, every vertex on the boundary with no freedom to move
    (a, b, c, d are where boundary faces of different planes meet)."""
    a, b, c, d = [-1, 0, eps], [1, 0, eps], [0, -1, -eps], [0, 1, -eps]
    pts = np.array([a, b, c, d, [0, 0, 1.0], [0, 0, -1.0]])
    tets = _oriented(pts, [[0, 1, 2, 3], [4, 0, 1, 2], [4, 0, 1, 3], [5, 2, 3, 0], [5, 2, 3, 1]])
    return pts, tets


def _check_split(pts, tets, reg, p2, t2, r2):
    assert tet_volumes(p2, t2).min() > 0
    for r in np.unique(reg):  # each region's volume is kept exactly: the new vertex is on its edge
        assert tet_volumes(p2, t2[r2 == r]).sum() == pytest.approx(tet_volumes(pts, tets[reg == r]).sum(), rel=1e-12)
    assert np.array_equal(p2[:len(pts)], pts)  # old vertices do not move
    _, count, _ = face_usage(t2)
    assert set(count.tolist()) <= {1, 2}
    assert np.sum(count == 1) == 8  # the double pyramid's boundary; conforming inside


def test_split_repairs_a_sliver_whose_vertices_cannot_move():
    pts, tets = _pinned_sliver()
    reg = np.ones(len(tets), int)
    assert min_dihedral_deg(pts, tets).min() < 5.0
    moved, _ = remove_slivers(pts, tets, reg, 10.0)  # relocation cannot help: nothing may move
    assert np.array_equal(moved, pts)
    p2, t2, r2, rep = split_poor_elements(pts, tets, reg, 5.0)
    assert rep["split_edges"] >= 1 and len(p2) > len(pts)
    _check_split(pts, tets, reg, p2, t2, r2)
    assert min_dihedral_deg(p2, t2).min() > 5.0


def test_split_keeps_the_new_vertex_off_an_interface_it_may_not_leave():
    # the top pyramid is another region: faces abc, abd are an interface (bent by ~1 deg), so a
    # vertex on ab may not move up into the sliver's way; the split of cd (inside one region) may
    pts, tets = _pinned_sliver()
    reg = np.array([1, 2, 2, 1, 1])
    p2, t2, r2, rep = split_poor_elements(pts, tets, reg, 5.0, bend_deg=2.0)
    _check_split(pts, tets, reg, p2, t2, r2)
    assert min_dihedral_deg(p2, t2).min() > 5.0
    new = np.arange(len(pts), len(p2))
    for v in new[np.isin(new, t2[r2 == 2])]:  # a new vertex touching region 2 lies on the interface
        assert abs(p2[v, 2] - 0.02) < 1e-12 and abs(p2[v, 1]) < 1e-12


def test_join_of_two_lines_that_almost_meet_removes_the_sliver_between_them():
    # regions: the sliver (1) with one bottom element, the top pyramid (2), the other bottom
    # element (3): ab and cd are both interface lines (0.004 nm apart), so no split of one edge
    # frees a vertex that can lift the sliver; joining the two lines removes it
    pts, tets = _pinned_sliver(eps=0.002)
    reg = np.array([1, 2, 2, 1, 3])
    before = min_dihedral_deg(pts, tets).min()
    assert before < 1.0
    p2, t2, r2, rep = split_poor_elements(pts, tets, reg, 5.0, bend_deg=0.1, max_shift_nm=0.2)
    assert rep["joined_edges"] == 1
    assert tet_volumes(p2, t2).min() > 0
    assert tet_volumes(p2, t2).sum() == pytest.approx(tet_volumes(pts, tets).sum(), rel=1e-12)  # hull kept
    for r in (1, 2, 3):  # each region within 2 % (the sliver's volume moves between them)
        assert tet_volumes(p2, t2[r2 == r]).sum() == pytest.approx(tet_volumes(pts, tets[reg == r]).sum(), rel=0.02)
    m = p2[len(pts):]
    assert len(m) == 1 and abs(m[0, 2]) < 0.002 + 1e-12  # the joint lies between the two lines
    assert not np.any(np.all(np.isin(t2, [0, 1, 2, 3]), axis=1))  # the sliver is gone
    assert min_dihedral_deg(p2, t2).min() > 5.0
    _, count, _ = face_usage(t2)
    assert set(count.tolist()) <= {1, 2} and np.sum(count == 1) == 8


def _off_plane(pts, tets, reg, moved) -> np.ndarray:
    """Per vertex, its largest distance in ``moved`` from the planes (in ``pts``) of the
    boundary and interface triangles at it."""
    uniq, cnt, inv = face_usage(tets)
    owner = np.tile(np.arange(len(tets)), 4)
    rmin = np.full(len(uniq), 10**9)
    rmax = np.full(len(uniq), -1)
    np.minimum.at(rmin, inv, reg[owner])
    np.maximum.at(rmax, inv, reg[owner])
    out = np.zeros(len(pts))
    for f in uniq[(cnt == 1) | (rmin != rmax)]:
        n = np.cross(pts[f[1]] - pts[f[0]], pts[f[2]] - pts[f[0]])
        n /= np.linalg.norm(n)
        for v in f:
            out[v] = max(out[v], abs((moved[v] - pts[f[0]]) @ n))
    return out


def test_relaxed_relocation_frees_a_pinned_sliver_within_the_shift_bound():
    # every vertex of the sliver is held exactly (corners of the boundary, interface lines):
    # exact relocation cannot move it, the relaxed one may move each vertex by at most
    # max_shift_nm off the planes at it (the last step of improve_mesh)
    pts, tets = _pinned_sliver(eps=0.02)
    reg = np.array([1, 2, 2, 1, 3])
    assert min_dihedral_deg(pts, tets).min() < 5.0
    exact, _ = remove_slivers(pts, tets, reg, 5.0, max_shift_nm=0.05)
    assert np.array_equal(exact, pts)
    p2, rep = remove_slivers(pts, tets, reg, 5.0, max_shift_nm=0.05, relax=True, passes=5)
    assert min_dihedral_deg(p2, tets).min() > 5.0
    assert tet_volumes(p2, tets).min() > 0
    assert _off_plane(pts, tets, reg, p2).max() <= 0.05 + 1e-12
    # vertices of a rigid region (a GB slab) may leave their planes only by rigid_shift_nm
    rigid = np.array([False, False, True, False])  # region 2: the top pyramid (a, b, c, d, top)
    p3, _ = remove_slivers(pts, tets, reg, 5.0, max_shift_nm=0.05, relax=True, passes=5, rigid=rigid)
    assert np.array_equal(p3, pts)
    p4, _ = remove_slivers(pts, tets, reg, 5.0, max_shift_nm=0.05, relax=True, passes=5, rigid=rigid,
                           rigid_shift_nm=0.03)
    assert _off_plane(pts, tets, reg, p4).max() <= 0.03 + 1e-12
    assert min_dihedral_deg(p4, tets).min() > min_dihedral_deg(pts, tets).min()
