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
    labs, contours = [], []
    for r in regionprops(np.asarray(labels)):
        y0, x0, _, _ = r.bbox
        # one pixel of padding so the contour closes around regions touching the crop edge
        cs = find_contours(np.pad(r.image, 1).astype(np.float32), 0.5)
        if not cs:
            continue
        c = max(cs, key=len)  # the outer boundary (holes are shorter)
        labs.append(int(r.label))
        contours.append(c + np.array([y0 - 1.0, x0 - 1.0]))
    return list(zip(labs, simplify_many(contours, tolerance_px)))


def simplify_many(contours: list[np.ndarray], tolerance_px: float) -> list[np.ndarray]:
    """:func:`simplify_closed` of many contours, vectorised in GEOS (list of (m, 2))."""
    long = [i for i, c in enumerate(contours) if len(c) >= 4]
    out = [np.asarray(c, float) for c in contours]
    if long:
        cs = [out[i] for i in long]
        rings = shapely.linearrings(np.concatenate(cs),
                                    indices=np.repeat(np.arange(len(cs)), [len(c) for c in cs]))
        # plain Douglas-Peucker first; the (slower) topology-preserving variant only for
        # the rings it left self-intersecting or degenerate
        simple = shapely.simplify(rings, tolerance_px, preserve_topology=False)
        bad = ~shapely.is_valid(simple) | (shapely.get_num_coordinates(simple) < 4)
        if bad.any():
            simple[bad] = shapely.simplify(rings[bad], tolerance_px, preserve_topology=True)
        for i, g in zip(long, simple):
            v = shapely.get_coordinates(g)
            if len(v) >= 4:
                out[i] = v
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
