"""P1 (linear tetrahedral) finite-element building blocks, vectorised over elements.

All functions are pure numpy. Lengths are in nm throughout the solver, so gradients are in
1/nm and volumes in nm^3.
"""

from __future__ import annotations

import numpy as np


def shape_gradients(points: np.ndarray, tets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of the four P1 hat functions and the signed volume of each element.

    Parameters
    ----------
    points : (N, 3) node coordinates
    tets : (M, 4) node indices

    Returns
    -------
    grad : (M, 4, 3) gradient of hat function ``i`` on element ``e`` (1/length)
    vol : (M,) signed volume (length^3)
    """
    p = points[tets]                                   # (M, 4, 3)
    d = p[:, 1:, :] - p[:, :1, :]                      # (M, 3, 3) edge vectors as rows
    det = np.linalg.det(d)
    inv = np.linalg.inv(d)                             # columns: gradients of hats 1..3
    g123 = np.transpose(inv, (0, 2, 1))                # (M, 3, 3) rows: grad of hats 1..3
    g0 = -g123.sum(axis=1, keepdims=True)
    return np.concatenate([g0, g123], axis=1), det / 6.0


def stiffness_elements(grad: np.ndarray, vol: np.ndarray, coef: np.ndarray | None = None,
                       tensor: np.ndarray | None = None) -> np.ndarray:
    """Element stiffness matrices ``K_e[i, j] = V_e * coef_e * grad_i . T_e . grad_j``.

    Parameters
    ----------
    grad : (M, 4, 3), vol : (M,)
    coef : (M,) optional scalar coefficient per element
    tensor : (M, 3, 3) optional symmetric material/metric tensor per element

    Returns
    -------
    (M, 4, 4) element matrices.
    """
    w = np.abs(vol) if coef is None else np.abs(vol) * coef
    if tensor is None:
        k = np.einsum("eik,ejk->eij", grad, grad)
    else:
        k = np.einsum("eik,ekl,ejl->eij", grad, tensor, grad)
    return k * w[:, None, None]


def lumped_nodal(tets: np.ndarray, values: np.ndarray, n_nodes: int) -> np.ndarray:
    """Sum ``values_e / 4`` (e.g. element volume times a density) onto the element's nodes."""
    return np.bincount(tets.ravel(), weights=np.repeat(values / 4.0, 4), minlength=n_nodes)


def boundary_faces(tets: np.ndarray) -> np.ndarray:
    """Triangles (F, 3) that belong to exactly one tetrahedron (the surface of the mesh)."""
    faces = np.concatenate([tets[:, [1, 2, 3]], tets[:, [0, 3, 2]], tets[:, [0, 1, 3]], tets[:, [0, 2, 1]]])
    key = np.sort(faces, axis=1)
    _, idx, cnt = np.unique(key, axis=0, return_index=True, return_counts=True)
    return faces[idx[cnt == 1]]


def orient_positive(points: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Copy of ``tets`` with the last two nodes swapped where the volume is negative."""
    tets = np.array(tets, copy=True)
    _, vol = shape_gradients(points, tets)
    neg = vol < 0
    tets[neg, 2], tets[neg, 3] = tets[neg, 3].copy(), tets[neg, 2].copy()
    return tets
