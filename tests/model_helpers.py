"""Test inputs for the model/mesh tests, built independently of magtwin.model: voxelised
Laguerre tessellations (brute-force argmin of the power distance) and mesh checks that
measure a tetrahedral mesh from scratch."""

from __future__ import annotations

import h5py
import numpy as np


def laguerre_labels(shape_zyx, voxel_nm, sites_xyz, weights, metric=None) -> np.ndarray:
    """Label volume (1-based) of the power diagram ``argmin |M(x - s)|² - w`` at voxel centres."""
    nz, ny, nx = shape_zyx
    vz, vy, vx = voxel_nm
    z, y, x = np.meshgrid((np.arange(nz) + 0.5) * vz, (np.arange(ny) + 0.5) * vy, (np.arange(nx) + 0.5) * vx,
                          indexing="ij")
    p = np.stack([x, y, z], -1).reshape(-1, 3)
    m = np.eye(3) if metric is None else np.asarray(metric)
    d = ((p[:, None, :] - sites_xyz[None]) @ m.T) ** 2
    pw = d.sum(-1) - weights[None]
    return (np.argmin(pw, axis=1) + 1).reshape(shape_zyx).astype(np.uint32)


def jittered_sites(n_per_axis, extent_xyz, jitter=0.3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = n_per_axis
    g = np.stack(np.meshgrid(*[np.arange(k) for k in n], indexing="ij"), -1).reshape(-1, 3) + 0.5
    cell = np.asarray(extent_xyz, float) / np.asarray(n)
    return (g + rng.uniform(-jitter, jitter, g.shape)) * cell


def write_labels(path, labels, voxel_nm, **attrs) -> None:
    """A plain HDF5 label file (a user's label volume, not a magtwin artefact)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=labels)
        f.attrs["voxel_size_nm"] = np.asarray(voxel_nm, float)
        for k, v in attrs.items():
            f.attrs[k] = v


def tet_volumes(points, tets) -> np.ndarray:
    p = points[tets]
    return np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0]) / 6.0


def face_usage(tets):
    """(sorted faces (F, 3), use count (F,), owner element of each face occurrence)."""
    faces = np.vstack([tets[:, [1, 2, 3]], tets[:, [0, 2, 3]], tets[:, [0, 1, 3]], tets[:, [0, 1, 2]]])
    key = np.sort(faces, axis=1)
    uniq, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return uniq, cnt, inv.ravel()


def min_dihedral_deg(points, tets) -> np.ndarray:
    """Smallest dihedral angle per element (degrees), from the face normals."""
    p = points[tets]
    faces = [(1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2)]
    opp = [0, 1, 2, 3]
    normals = []
    for f, o in zip(faces, opp):
        n = np.cross(p[:, f[1]] - p[:, f[0]], p[:, f[2]] - p[:, f[0]])
        # orient outward: away from the opposite vertex
        s = np.sign(np.einsum("ij,ij->i", n, p[:, f[0]] - p[:, o]))
        normals.append(n * s[:, None] / np.linalg.norm(n, axis=1, keepdims=True))
    ang = []
    for i in range(4):
        for j in range(i + 1, 4):
            c = np.clip(np.einsum("ij,ij->i", normals[i], normals[j]), -1, 1)
            ang.append(180.0 - np.degrees(np.arccos(c)))
    return np.min(np.stack(ang, 1), axis=1)


def slab_thickness(points: np.ndarray) -> float:
    """Minimum width of a point set: the smallest extent along the normals of its convex
    hull's facets (the thickness of a slab)."""
    from scipy.spatial import ConvexHull

    hull = ConvexHull(points)
    normals = hull.equations[:, :3]
    proj = points @ normals.T
    return float(np.min(proj.max(axis=0) - proj.min(axis=0)))


def radius_edge(points, tets) -> np.ndarray:
    """Circumradius / shortest edge per element (circumcentre from the 3x3 linear system
    2 (p_i - p_0)·c = |p_i|² - |p_0|²)."""
    p = points[tets]
    a = 2.0 * (p[:, 1:] - p[:, :1])
    b = (p[:, 1:] ** 2).sum(-1) - (p[:, :1] ** 2).sum(-1)
    c = np.linalg.solve(a, b[..., None])[..., 0]
    r = np.linalg.norm(c - p[:, 0], axis=1)
    e = [np.linalg.norm(p[:, i] - p[:, j], axis=1) for i in range(4) for j in range(i + 1, 4)]
    return r / np.min(np.stack(e, 1), axis=1)
