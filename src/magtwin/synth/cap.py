"""The protective cap and its milled fiducial marks (fixed to the sample, same in every slice).

The cap fills the world half-space ``y < y_cap`` above the sample, with
``y_cap = (cap_rows - 0.5) * vy`` so that rows ``0 .. cap_rows-1`` of slice 0 are cap. It does
not depend on ``z``: the fiducial marks - X-shaped trenches milled through the cap - look the
same in every slice and move only with the drift, which is what makes them a registration
target.
"""

from __future__ import annotations

import numpy as np


def fiducial_segments(n_marks: int, cap_rows: int, width_px: int, voxel_nm) -> np.ndarray:
    """Line segments ``(2 * n_marks, 2, 2)`` ((x0, y0), (x1, y1)) in world nm, and their width.

    Each mark is an X whose arms span 70 % of the cap height, centred in the cap; marks are
    spread evenly across the image width of slice 0.
    """
    vz, vy, vx = voxel_nm
    y_cap = (cap_rows - 0.5) * vy
    yc = 0.5 * (y_cap - 0.5 * vy)
    half = 0.35 * (y_cap + 0.5 * vy)
    segs = []
    for i in range(n_marks):
        xc = (i + 0.5) / n_marks * width_px * vx
        segs.append(((xc - half, yc - half), (xc + half, yc + half)))
        segs.append(((xc - half, yc + half), (xc + half, yc - half)))
    return np.asarray(segs, dtype=np.float64).reshape(-1, 2, 2)


def fiducial_line_width_nm(cap_rows: int, voxel_nm) -> float:
    """Trench width: 12 % of the cap height, at least 1.5 px."""
    return max(0.12 * cap_rows * voxel_nm[1], 1.5 * max(voxel_nm[1], voxel_nm[2]))


def segment_distance(x: np.ndarray, y: np.ndarray, segs: np.ndarray) -> np.ndarray:
    """Distance (nm) of points ``(x, y)`` (any equal shapes) to the nearest segment."""
    px, py = np.asarray(x, float)[..., None], np.asarray(y, float)[..., None]
    ax, ay = segs[:, 0, 0], segs[:, 0, 1]
    bx, by = segs[:, 1, 0], segs[:, 1, 1]
    dx, dy = bx - ax, by - ay
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.sqrt((px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2).min(axis=-1)


def cap_intensity(x: np.ndarray, y: np.ndarray, segs: np.ndarray, width_nm: float,
                  cap: float, trench: float) -> np.ndarray:
    """Brightness of cap points: ``trench`` inside a fiducial mark, ``cap`` elsewhere."""
    if len(segs) == 0:
        return np.full(np.shape(x), cap)
    return np.where(segment_distance(x, y, segs) < 0.5 * width_nm, trench, cap)
