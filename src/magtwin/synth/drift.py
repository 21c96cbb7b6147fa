"""Stage drift: a sub-pixel random walk of the field of view.

Convention (shared with the align stage): ``shifts_px[k] = (dy, dx)`` means the field of view of
slice ``k`` is displaced by ``(dy, dx)`` px relative to slice 0, i.e. raw slice ``k`` at pixel
``(y, x)`` shows the material that is at ``(y + dy, x + dx)`` in the frame of slice 0;
``shifts_px[0] = (0, 0)``. Undo it with ``scipy.ndimage.shift(raw_k, (dy, dx))``.
"""

from __future__ import annotations

import numpy as np


def random_walk_shifts(n_slices: int, step_px: float, mean_px=(0.0, 0.0),
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """Cumulative shifts ``(n_slices, 2)`` (dy, dx) in px of a Gaussian random walk.

    Each step is ``mean_px + N(0, step_px^2)`` per axis; the first row is zero.
    """
    rng = rng or np.random.default_rng()
    steps = rng.normal(0.0, step_px, size=(max(n_slices - 1, 0), 2)) + np.asarray(mean_px, float)
    return np.vstack([np.zeros((1, 2)), np.cumsum(steps, axis=0)])[:n_slices]
