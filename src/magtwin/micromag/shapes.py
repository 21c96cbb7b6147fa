"""Simple test and benchmark geometries as :class:`~magtwin.io.mesh_artefact.MeshData`.

Independent of the project's meshing stage: boxes are split structurally (six tetrahedra per
cell, Kuhn/Freudenthal subdivision, conforming across cells), spheres are meshed by TetGen.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from magtwin.io.mesh_artefact import MeshData
from magtwin.micromag.fem import orient_positive


@contextlib.contextmanager
def quiet_stdout():
    """Silence C-level output on fd 1 (TetGen prints progress)."""
    fd = os.dup(1)
    try:
        with open(os.devnull, "w") as dn:
            os.dup2(dn.fileno(), 1)
            yield
    finally:
        os.dup2(fd, 1)
        os.close(fd)


def box_mesh(size_nm, cells, origin_nm=(0.0, 0.0, 0.0), region_of_cell=None) -> MeshData:
    """Box of ``size_nm`` (3,) divided into ``cells`` (3,) hexahedra, 6 tetrahedra each.

    ``region_of_cell(centres (K, 3)) -> (K,) int`` assigns region ids (default all 1).
    """
    xs = [np.linspace(o, o + s, int(n) + 1) for o, s, n in zip(origin_nm, size_nm, cells)]
    return tensor_box_mesh(*xs, region_of_cell=region_of_cell)


def tensor_box_mesh(xs, ys, zs, region_of_cell=None) -> MeshData:
    """Box on the tensor grid of node coordinates ``xs``, ``ys``, ``zs`` (increasing, nm),
    6 tetrahedra per cell; ``region_of_cell`` as in :func:`box_mesh`."""
    xs = [np.asarray(v, float) for v in (xs, ys, zs)]
    nx, ny, nz = (len(v) - 1 for v in xs)
    X, Y, Z = np.meshgrid(*xs, indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel(), Z.ravel()], axis=1)

    def nid(i, j, k):
        return (i * (ny + 1) + j) * (nz + 1) + k

    i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    i, j, k = i.ravel(), j.ravel(), k.ravel()
    corner = {(a, b, c): nid(i + a, j + b, k + c) for a in (0, 1) for b in (0, 1) for c in (0, 1)}
    # Kuhn: the 6 monotone paths from (0,0,0) to (1,1,1)
    tets = []
    for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        v = [0, 0, 0]
        path = [corner[tuple(v)]]
        for ax in perm:
            v[ax] = 1
            path.append(corner[tuple(v)])
        tets.append(np.stack(path, axis=1))
    tets = np.concatenate(tets)
    tets = orient_positive(pts, tets)
    centres = pts[tets].mean(axis=1)
    rid = np.ones(len(tets), np.int32) if region_of_cell is None else np.asarray(region_of_cell(centres), np.int32)
    regions = [{"id": int(r), "kind": "grain", "grains": [int(r)]} for r in np.unique(rid)]
    return MeshData(points_nm=pts, tetrahedra=tets.astype(np.int64), region_id=rid, regions=regions)


def sphere_mesh(radius_nm: float, max_edge_nm: float, center_nm=(0.0, 0.0, 0.0)) -> MeshData:
    """Tetrahedral mesh of a ball (one grain region, id 1), surface edges about ``max_edge_nm``."""
    import pyvista as pv
    import tetgen

    n = max(8, int(round(2 * np.pi * radius_nm / max_edge_nm)))
    s = pv.Sphere(radius=radius_nm, center=center_nm, theta_resolution=n, phi_resolution=n // 2 + 1)
    s = s.triangulate().clean()
    vol = max_edge_nm ** 3 / (6 * np.sqrt(2))
    tg = tetgen.TetGen(np.asarray(s.points, float), np.asarray(s.faces).reshape(-1, 4)[:, 1:].astype(np.int32))
    with quiet_stdout():
        nodes, elem, *_ = tg.tetrahedralize(switches=f"pq1.3a{vol:.6g}Q")
    pts = np.asarray(nodes, float)
    tets = orient_positive(pts, np.asarray(elem, np.int64)[:, :4])
    return MeshData(points_nm=pts, tetrahedra=tets, region_id=np.ones(len(tets), np.int32),
                    regions=[{"id": 1, "kind": "grain", "grains": [1]}])
