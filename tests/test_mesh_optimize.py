"""Which way each vertex may move during sliver removal without changing the geometry."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from magtwin.mesh.optimize import vertex_freedom

# Kuhn's split of the unit cube into six tetrahedra along the diagonal 0-7
_KUHN = [(0, 1, 3, 7), (0, 1, 5, 7), (0, 2, 3, 7), (0, 2, 6, 7), (0, 4, 5, 7), (0, 4, 6, 7)]


def _two_region_block():
    """[0, 2]^3 in unit cubes, region 1 at x < 1 and region 2 at x > 1."""
    pts = np.array(list(itertools.product(range(3), repeat=3)), float)  # index 9x + 3y + z
    tets, region = [], []
    for x, y, z in itertools.product(range(2), repeat=3):
        corner = [9 * (x + i) + 3 * (y + j) + (z + k) for i, j, k in itertools.product(range(2), repeat=3)]
        for t in _KUHN:
            tets.append([corner[c] for c in t])
            region.append(1 + x)
    return pts, np.array(tets), np.array(region)


def _index(x, y, z):
    return 9 * x + 3 * y + z


def test_vertex_freedom_on_faces_edges_and_corners():
    pts, tets, region = _two_region_block()
    dof, axis = vertex_freedom(pts, tets, region)
    assert dof[_index(1, 1, 1)] == 2 and abs(axis[_index(1, 1, 1)] @ [1, 0, 0]) > 0.999  # inside the interface
    assert dof[_index(0, 1, 1)] == 2 and abs(axis[_index(0, 1, 1)] @ [1, 0, 0]) > 0.999  # on a box face
    # the interface meets the box face y = 0 along the line x = 1, y = 0: slide along z only
    assert dof[_index(1, 0, 1)] == 1 and abs(axis[_index(1, 0, 1)] @ [0, 0, 1]) > 0.999
    assert dof[_index(0, 0, 1)] == 1 and abs(axis[_index(0, 0, 1)] @ [0, 0, 1]) > 0.999  # box edge
    assert dof[_index(1, 0, 0)] == 0 and dof[_index(0, 0, 0)] == 0  # corners
    # no interior vertex in this block: every vertex is on an interface or the box
    assert np.all(dof < 3)


def test_flat_element_over_a_surface_fan_is_flipped_away():
    from magtwin.io.mesh_artefact import tetrahedron_volumes
    from magtwin.mesh.tetmesh import flip_flat_elements

    # a, b, c in z = 0 with v inside their triangle (the centre of a kept surface fan), w above:
    # TetGen -Y can return the flat element abcv next to abcw
    pts = np.array([[0, 0, 0], [3, 0, 0], [0, 3, 0], [1, 1, 0], [1, 1, 2.0]])
    a, b, c, v, w = range(5)
    tets = np.array([[a, b, c, v], [a, b, c, w]])
    surface = np.array([[a, b, v], [b, c, v], [c, a, v]])
    new, region, flips = flip_flat_elements(pts, tets, np.array([7, 7]), surface)
    vol = np.abs(tetrahedron_volumes(pts, new))
    assert flips == 1 and len(new) == 3 and np.all(region == 7)
    assert vol.min() > 0 and vol.sum() == pytest.approx(4.5 * 2 / 3, rel=1e-12)  # abcw: base 4.5, height 2
    # the fan triangles are faces of the new elements: the surface is kept
    faces = {tuple(sorted(np.delete(t, j))) for t in new for j in range(4)}
    assert all(tuple(sorted(s)) in faces for s in surface)
