"""Remove features too small to mesh: sliver pieces merged into a neighbouring region.

A piece is a *sliver* when the largest ball about its centroid that stays inside it has a
radius below ``min_feature_nm`` (thin wedges where offset planes nearly coincide, tiny
pieces at near-degenerate tessellation vertices). Its region id is changed to that of the
neighbouring piece sharing the largest facet area with it (repeated until no sliver borders
only slivers), so the facets around it become region-interior and are not meshed; the
geometry itself is unchanged (volumes stay exact). Edges and faces shorter/narrower than the
tolerance left after that are collapsed when the PLC vertices are merged
(:func:`magtwin.mesh.plc.build_plc`).
"""

from __future__ import annotations

import numpy as np

from magtwin.model.boundary_phase import Piece
from magtwin.model.polyhedra import PlaneSet


def inner_radius(piece: Piece, planes: PlaneSet) -> float:
    """Distance (nm) from the piece's centroid to its nearest face plane."""
    c = piece.poly.centroid()
    return float(min(abs(planes.n(f.plane) @ c - planes.c(f.plane)) for f in piece.poly.faces))


def merge_slivers(
    pieces: list[Piece], facets: list, planes: PlaneSet, min_feature_nm: float
) -> dict:
    """Relabel sliver pieces in place (see module docstring); return a small report
    ``{"sliver_pieces": n, "sliver_volume_nm3": v}`` and set ``piece.sliver``."""
    radius = np.array([inner_radius(p, planes) for p in pieces])
    sliver = radius < min_feature_nm
    shared: dict[int, dict[int, float]] = {}
    for f in facets:
        if f.b < 0:
            continue
        area = f.area
        shared.setdefault(f.a, {}).setdefault(f.b, 0.0)
        shared[f.a][f.b] += area
        shared.setdefault(f.b, {}).setdefault(f.a, 0.0)
        shared[f.b][f.a] += area
    todo = set(np.flatnonzero(sliver).tolist())
    resolved: set[int] = set()
    # slivers next to a non-sliver piece first, then those next to resolved slivers
    for _ in range(len(todo) + 1):
        progress = False
        for k in sorted(todo - resolved):
            nbrs = {j: a for j, a in shared.get(k, {}).items() if not sliver[j] or j in resolved}
            if not nbrs:
                continue
            best = max(nbrs, key=nbrs.get)
            pieces[k].region = pieces[best].region
            resolved.add(k)
            progress = True
        if not progress:
            break
    for k, p in enumerate(pieces):
        p.sliver = bool(sliver[k])
    return {
        "sliver_pieces": int(sliver.sum()),
        "sliver_volume_nm3": float(sum(pieces[k].poly.volume() for k in np.flatnonzero(sliver))),
    }
