"""Element quality of tetrahedral meshes: dihedral angles and radius–edge ratio.

* dihedral angle at an edge: ``pi`` minus the angle between the outward normals of the two
  faces sharing it (a regular tetrahedron has 70.53° everywhere);
* radius–edge ratio: circumradius over shortest edge (``sqrt(6)/4 = 0.612`` for the regular
  tetrahedron; TetGen's ``-q`` bound), with the circumradius
  ``R = | |a|² (b×c) + |b|² (c×a) + |c|² (a×b) | / (12 V)`` for edge vectors ``a, b, c``
  from one vertex and volume ``V``.
"""

from __future__ import annotations

import numpy as np

_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
_EDGE_FACES = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def dihedral_angles_deg(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """(M, 6) dihedral angles in degrees."""
    p = points[tets]
    normals = []
    for f in _FACES:
        a, b, c = p[:, f[0]], p[:, f[1]], p[:, f[2]]
        n = np.cross(b - a, c - a)
        normals.append(n / np.linalg.norm(n, axis=1, keepdims=True))
    out = np.empty((len(tets), 6))
    for k, (i, j) in enumerate(_EDGE_FACES):
        cosang = np.clip(np.einsum("ij,ij->i", normals[i], normals[j]), -1.0, 1.0)
        out[:, k] = 180.0 - np.degrees(np.arccos(cosang))
    return out


def radius_edge_ratio(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """(M,) circumradius / shortest edge."""
    p = points[tets]
    a, b, c = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    vol6 = np.einsum("ij,ij->i", a, np.cross(b, c))
    num = (np.einsum("ij,ij->i", a, a)[:, None] * np.cross(b, c)
           + np.einsum("ij,ij->i", b, b)[:, None] * np.cross(c, a)
           + np.einsum("ij,ij->i", c, c)[:, None] * np.cross(a, b))
    radius = np.linalg.norm(num, axis=1) / (2.0 * np.abs(vol6))
    edges = [p[:, i] - p[:, j] for i, j in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))]
    shortest = np.min(np.stack([np.linalg.norm(e, axis=1) for e in edges], axis=1), axis=1)
    return radius / shortest


def quality_report(points: np.ndarray, tets: np.ndarray, bins_deg=(0, 1, 2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 180),
                   ratio_bins=(0, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, np.inf)) -> dict:
    """Histograms of the minimum dihedral angle per element and of the radius–edge ratio."""
    dmin = dihedral_angles_deg(points, tets).min(axis=1)
    dmax = dihedral_angles_deg(points, tets).max(axis=1)
    rer = radius_edge_ratio(points, tets)
    h, _ = np.histogram(dmin, bins=bins_deg)
    hr, _ = np.histogram(rer, bins=np.asarray(ratio_bins, float))
    return {
        "min_dihedral_deg": float(dmin.min()), "max_dihedral_deg": float(dmax.max()),
        "min_dihedral_percentiles_deg": {str(q): float(np.percentile(dmin, q)) for q in (0.1, 1, 5, 50)},
        "min_dihedral_histogram": {"bins_deg": list(map(float, bins_deg)), "counts": h.tolist()},
        "radius_edge_ratio_max": float(rer.max()),
        "radius_edge_ratio_fraction_above_2": float(np.mean(rer > 2.0)),
        "radius_edge_ratio_histogram": {"bins": [float(b) if np.isfinite(b) else None for b in ratio_bins],
                                        "counts": hr.tolist()},
    }
