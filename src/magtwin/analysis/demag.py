"""Demagnetising-factor (shearing) correction of a demagnetisation curve.

A curve computed (or measured open-circuit) for a finite body is the *apparent* curve
J(H_ext). The material's *intrinsic* curve J(H_int) uses the mean internal field

    µ0 H_int = µ0 H_ext − h · (N J)          (all in tesla)

with N the magnetometric demagnetising tensor of the body's shape, h the unit field
direction and J the volume-averaged polarisation vector (for J ∥ h this is the familiar
µ0H_int = µ0H_ext − N J). For a rectangular prism N is diagonal in the prism axes with the
closed form of Aharoni, J. Appl. Phys. 83, 3432 (1998), eq. (1).

The correction leaves µ0HcJ (where J = 0) unchanged; it changes remanence, knee field and
(BH)max, which are only meaningful for the intrinsic curve.
"""

from __future__ import annotations

import numpy as np


def prism_demag_factor(a: float, b: float, c: float) -> float:
    """Magnetometric demagnetising factor along ``c`` of a rectangular prism.

    Aharoni, J. Appl. Phys. 83, 3432 (1998), eq. (1); ``a, b, c`` are the *half* edge
    lengths (any common unit) along x, y and the magnetisation direction z.
    """
    a, b, c = float(a), float(b), float(c)
    if min(a, b, c) <= 0:
        raise ValueError("prism half-lengths must be positive")
    r = np.sqrt(a * a + b * b + c * c)
    ab, bc, ac = np.sqrt(a * a + b * b), np.sqrt(b * b + c * c), np.sqrt(a * a + c * c)
    s = (
        (b * b - c * c) / (2 * b * c) * np.log((r - a) / (r + a))
        + (a * a - c * c) / (2 * a * c) * np.log((r - b) / (r + b))
        + b / (2 * c) * np.log((ab + a) / (ab - a))
        + a / (2 * c) * np.log((ab + b) / (ab - b))
        + c / (2 * a) * np.log((bc - b) / (bc + b))
        + c / (2 * b) * np.log((ac - a) / (ac + a))
        + 2 * np.arctan(a * b / (c * r))
        + (a ** 3 + b ** 3 - 2 * c ** 3) / (3 * a * b * c)
        + (a * a + b * b - 2 * c * c) / (3 * a * b * c) * r
        + c / (a * b) * (ac + bc)
        - (ab ** 3 + bc ** 3 + ac ** 3) / (3 * a * b * c)
    )
    return float(s / np.pi)


def prism_demag_tensor(edges: np.ndarray) -> np.ndarray:
    """Diagonal demagnetising tensor (3, 3) of a prism with edge lengths ``edges`` (x, y, z)."""
    ex, ey, ez = (float(e) / 2 for e in edges)
    return np.diag([
        prism_demag_factor(ey, ez, ex),
        prism_demag_factor(ez, ex, ey),
        prism_demag_factor(ex, ey, ez),
    ])


def bounding_box_demag_tensor(points: np.ndarray) -> np.ndarray:
    """Demagnetising tensor of the axis-aligned bounding box of ``points`` (N, 3)."""
    pts = np.asarray(points, float)
    return prism_demag_tensor(pts.max(axis=0) - pts.min(axis=0))


def internal_field(field_T: np.ndarray, J_T: np.ndarray, direction: np.ndarray,
                   N: np.ndarray | float) -> np.ndarray:
    """Mean internal field µ0H_int · h (K,) in T.

    Parameters
    ----------
    field_T : (K,) applied µ0H_ext along ``direction``, T
    J_T : (K, 3) volume-averaged polarisation, T; or (K,) J·h when ``N`` is a scalar
    direction : (3,) unit field direction h
    N : (3, 3) demagnetising tensor, or a scalar factor along h
    """
    field_T = np.asarray(field_T, float)
    J_T = np.asarray(J_T, float)
    h = np.asarray(direction, float)
    if np.ndim(N) == 0:
        Jh = J_T @ h if J_T.ndim == 2 else J_T
        return field_T - float(N) * Jh
    if J_T.ndim != 2:
        raise ValueError("a demagnetising tensor needs the polarisation vector J (K, 3)")
    return field_T - (J_T @ np.asarray(N, float).T) @ h


def factor_along(N: np.ndarray | float, direction: np.ndarray) -> float:
    """Scalar demagnetising factor h·N·h along ``direction``."""
    if np.ndim(N) == 0:
        return float(N)
    h = np.asarray(direction, float)
    return float(h @ np.asarray(N, float) @ h)
