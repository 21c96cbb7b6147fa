"""Region table of the model: one region per grain core, per GB grain pair, per TJ.

Region ids start at 1 (grains first, then GB, then TJ regions), so 0 never names a region.
Table entries follow :mod:`magtwin.io.mesh_artefact`:
``{"id", "kind": grain|gb|tj, "grains", "volume_nm3"}`` plus gb ``normal``,
``angle_to_axis_deg`` (angle between the GB plane's normal and the alignment axis, folded to
0–90°: 0 = GB plane perpendicular to the axis) and tj ``size_nm`` (diameter of the circle
with the TJ's mean cross-section area, ``2 sqrt(V / (pi L))`` with ``L`` its extent along
its long axis) and ``tj_class`` (``thick`` if ``size_nm`` exceeds the threshold).
"""

from __future__ import annotations

import numpy as np

from magtwin.model.boundary_phase import Piece
from magtwin.model.polyhedra import PlaneSet


def region_key(piece: Piece, grain_ids: np.ndarray) -> tuple:
    gs = tuple(sorted(int(grain_ids[g]) for g in ({piece.grain} | set(piece.near))))
    kind = "grain" if len(piece.near) == 0 else ("gb" if len(piece.near) == 1 else "tj")
    return kind, gs


def assign_regions(pieces: list[Piece], grain_ids: np.ndarray) -> dict[tuple, int]:
    """Set ``piece.region`` for every piece; return ``{(kind, grains): region id}``."""
    keys = sorted({region_key(p, grain_ids) for p in pieces},
                  key=lambda k: (("grain", "gb", "tj").index(k[0]), k[1]))
    ids = {k: i + 1 for i, k in enumerate(keys)}
    for p in pieces:
        p.region = ids[region_key(p, grain_ids)]
    return ids


def tj_size_nm(points: np.ndarray, volume: float) -> float:
    """Equivalent cross-section diameter ``2 sqrt(V / (pi L))`` of a TJ region from its
    vertices (extent ``L`` along the principal axis)."""
    x = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[0]
    length = max(proj.max() - proj.min(), 1e-12)
    return float(2.0 * np.sqrt(volume / (np.pi * length)))


def region_table(
    pieces: list[Piece],
    ids: dict[tuple, int],
    planes: PlaneSet,
    pair_plane: dict[tuple[int, int], int],
    grain_ids: np.ndarray,
    alignment_axis,
    tj_thick_threshold_nm: float,
    easy_axes: dict[int, list] | None = None,
) -> list[dict]:
    """The region table (see module docstring); volumes are exact sums over pieces."""
    axis = np.asarray(alignment_axis, float)
    axis = axis / np.linalg.norm(axis)
    vol: dict[int, float] = {}
    verts: dict[int, list] = {}
    for p in pieces:
        vol[p.region] = vol.get(p.region, 0.0) + p.poly.volume()
        verts.setdefault(p.region, []).append(p.poly.vertices)
    index = {int(g): k for k, g in enumerate(grain_ids)}
    table = []
    for (kind, gs), rid in ids.items():
        if rid not in vol:  # every piece merged into another region by the cleanup
            continue
        row = {"id": rid, "kind": kind, "grains": list(gs), "volume_nm3": vol[rid]}
        if kind == "grain" and easy_axes and gs[0] in easy_axes:
            row["easy_axis"] = list(map(float, easy_axes[gs[0]]))
        if kind == "gb":
            a, b = sorted((index[gs[0]], index[gs[1]]))
            n = planes.n(pair_plane[(a, b)])
            row["normal"] = n.tolist()
            row["angle_to_axis_deg"] = float(np.degrees(np.arccos(min(1.0, abs(float(n @ axis))))))
        if kind == "tj":
            size = tj_size_nm(np.vstack(verts[rid]), vol[rid])
            row["size_nm"] = size
            row["tj_class"] = "thick" if size > tj_thick_threshold_nm else "thin"
        table.append(row)
    return table
