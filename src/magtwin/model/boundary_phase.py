"""Grain-boundary (GB) phase and triple junctions (TJ) built geometrically in the convex cells.

Every internal face of the tessellation between grains i and j lies on a plane
``n_ij·x = c_ij`` (normal from i to j). The GB phase of thickness ``t`` is the set of points
within ``t/2`` of such a face's plane, inside either cell:

* in cell i the *near band* of neighbour j is ``c_ij - t/2 <= n_ij·x <= c_ij``;
* a point of cell i lies in the grain *core* if it is in no near band, in the GB region of
  the pair {i, j} if it is only in j's band, and in a TJ region if it is in the bands of two
  or more neighbours (grains ``{i} ∪ S``; four or more grains at a quadruple point).

Cutting each cell by the offset planes ``n_ij·x = c_ij ∓ t/2`` therefore splits it into
convex *pieces* (each an intersection of half-spaces), one per set ``S`` of near neighbours.
A GB region is exactly ``t`` thick along its normal by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from magtwin.errors import InputError
from magtwin.model.polyhedra import PlaneSet, Polyhedron, clip


@dataclass
class Piece:
    """A convex piece of grain ``grain``'s cell, near the neighbours in ``near``."""

    grain: int
    near: frozenset
    poly: Polyhedron
    region: int = -1
    sliver: bool = False


def split_cells(
    cells: list[Polyhedron | None],
    pair_plane: dict[tuple[int, int], int],
    planes: PlaneSet,
    thickness_nm: float,
    source=None,
    max_coreless_fraction: float = 0.25,
) -> tuple[list[Piece], dict[tuple[int, int], tuple[int, int]]]:
    """Cut every cell into core, GB and TJ pieces.

    Returns
    -------
    pieces : list of :class:`Piece`
    offset_planes : ``{(i, j): (plane id in i, plane id in j)}`` the two offset planes per pair
    Raises
    ------
    InputError
        If the GB thickness leaves more than ``max_coreless_fraction`` of the grains without
        interior (small fragments cut by the box edge may be all boundary phase).
    """
    half = 0.5 * float(thickness_nm)
    offset_planes = {}
    for (a, b), pid in pair_plane.items():
        n, c = planes.n(pid), planes.c(pid)
        offset_planes[(a, b)] = (planes.add(n, c - half), planes.add(n, c + half))
    neighbours: dict[int, list[tuple[int, int, int]]] = {}
    for (a, b), (pa, pb) in offset_planes.items():
        # (neighbour, offset plane id, side of the core w.r.t. that plane)
        neighbours.setdefault(a, []).append((b, pa, -1))
        neighbours.setdefault(b, []).append((a, pb, +1))
    pieces: list[Piece] = []
    coreless: list[int] = []
    for g, cell in enumerate(cells):
        if cell is None:
            continue
        parts = [(frozenset(), cell)]
        for j, pid, core_side in neighbours.get(g, []):
            nxt = []
            for near, poly in parts:
                far_part = clip(poly, planes, pid, core_side)
                near_part = clip(poly, planes, pid, -core_side)
                if far_part is not None:
                    nxt.append((near, far_part))
                if near_part is not None:
                    nxt.append((near | {j}, near_part))
            parts = nxt
        if not any(len(near) == 0 for near, _ in parts):
            coreless.append(g)
        pieces.extend(Piece(g, near, poly) for near, poly in parts)
    present = sum(c is not None for c in cells)
    # a few small fragments cut by the box edge may be all boundary phase; most grains not
    if len(coreless) > max_coreless_fraction * present:
        raise InputError(
            f"grain-boundary thickness {thickness_nm:g} nm is larger than {len(coreless)} of "
            f"{present} grains (no grain interior left, e.g. grain index {coreless[0]}); use a "
            f"thinner GB or a larger model.scale", source)
    return pieces, offset_planes
