"""Vectorised grain outlines: one simplified polygon per 2D grain section."""

from __future__ import annotations

import numpy as np
import shapely
from skimage.measure import find_contours, regionprops


def outline_polygons(labels: np.ndarray, tolerance_px: float = 1.0) -> list[tuple[int, np.ndarray]]:
    """Outer outline of every labelled region of a 2D label image.

    Parameters
    ----------
    labels : (ny, nx) int, 0 = background.
    tolerance_px : maximum distance (px) between the outline and its simplified polygon
        (Douglas-Peucker, GEOS via shapely, topology preserved).

    Returns
    -------
    list of ``(label, vertices)``, vertices (n, 2) float ``(y, x)`` in px of the image grid,
    a closed polygon (first vertex repeated last) tracing the region's pixel boundary at the
    half-way level between pixel centres.
    """
    out = []
    for r in regionprops(np.asarray(labels)):
        y0, x0, y1, x1 = r.bbox
        # one pixel of padding so the contour closes around regions touching the crop edge
        mask = np.pad(r.image, 1).astype(np.float32)
        contours = find_contours(mask, 0.5)
        if not contours:
            continue
        c = max(contours, key=len)  # the outer boundary (holes are shorter)
        poly = simplify_closed(c, tolerance_px)
        poly = poly + np.array([y0 - 1.0, x0 - 1.0])
        out.append((int(r.label), poly))
    return out


def simplify_closed(contour: np.ndarray, tolerance_px: float) -> np.ndarray:
    """Douglas-Peucker simplification of a closed contour (first point == last point),
    with GEOS (shapely), keeping the polygon valid; returns (m, 2), closed."""
    c = np.asarray(contour, float)
    if len(c) < 4:
        return c
    ring = shapely.LinearRing(c)
    simple = shapely.simplify(ring, tolerance_px, preserve_topology=True)
    out = np.asarray(simple.coords)
    return out if len(out) >= 4 else c


def polygon_area(vertices: np.ndarray) -> float:
    """Signed-free area (px^2) of a closed polygon (n, 2) by the shoelace formula."""
    y, x = vertices[:, 0], vertices[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
