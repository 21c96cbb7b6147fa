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

*One-sided GB.* Next to a grain too thin for a core inside a centred shell (a fragment cut
thin by the box), the GB of a pair may lie entirely in the other grain's cell: the band of
j in cell i is empty and that of i in cell j is ``c_ij <= n_ij·x <= c_ij + t`` (``side``
``+1`` of pair (i, j), i < j; ``-1`` the mirror case). The GB stays exactly ``t`` thick; the
thin grain keeps a core (:func:`magtwin.model.cleanup.cells_for_gb_shell`).
"""

from __future__ import annotations

from dataclasses import dataclass

from magtwin.model.polyhedra import PlaneSet, Polyhedron, clip


@dataclass
class Piece:
    """A convex piece of grain ``grain``'s cell, near the neighbours in ``near``."""

    grain: int
    near: frozenset
    poly: Polyhedron
    region: int = -1
    sliver: bool = False


def offset_planes(
    pair_plane: dict[tuple[int, int], int], planes: PlaneSet, thickness_nm: float,
    one_sided: dict[tuple[int, int], int] | None = None,
) -> dict[int, list[tuple[int, int, int]]]:
    """Add the offset planes of every pair to ``planes`` (``n_ij·x = c_ij ∓ t/2``; one plane
    at ``c_ij ± t`` for a pair in ``one_sided``, see module docstring); return per grain its
    ``(neighbour, offset plane id, side of the core w.r.t. that plane)``."""
    half = 0.5 * float(thickness_nm)
    one_sided = one_sided or {}
    neighbours: dict[int, list[tuple[int, int, int]]] = {}
    for (a, b), pid in pair_plane.items():
        n, c = planes.n(pid), planes.c(pid)
        side = one_sided.get((a, b), 0)
        if side == 0:
            pa, pb = planes.add(n, c - half), planes.add(n, c + half)
            neighbours.setdefault(a, []).append((b, pa, -1))
            neighbours.setdefault(b, []).append((a, pb, +1))
        elif side > 0:
            neighbours.setdefault(b, []).append((a, planes.add(n, c + 2 * half), +1))
        else:
            neighbours.setdefault(a, []).append((b, planes.add(n, c - 2 * half), -1))
    return neighbours


def grain_cores(
    cells: list[Polyhedron | None], pair_plane: dict[tuple[int, int], int], planes: PlaneSet, thickness_nm: float,
    one_sided: dict[tuple[int, int], int] | None = None,
) -> list[Polyhedron | None]:
    """The core of every cell: its points outside all its near bands (``None`` for an empty
    cell or a cell that is all boundary phase). Adds the offset planes to ``planes`` (pass a
    copy to keep a registry clean)."""
    neighbours = offset_planes(pair_plane, planes, thickness_nm, one_sided)
    cores: list[Polyhedron | None] = []
    for g, cell in enumerate(cells):
        core = cell
        for _, pid, core_side in neighbours.get(g, []):
            if core is None:
                break
            core = clip(core, planes, pid, core_side)
        cores.append(core)
    return cores


def split_cells(
    cells: list[Polyhedron | None],
    pair_plane: dict[tuple[int, int], int],
    planes: PlaneSet,
    thickness_nm: float,
    one_sided: dict[tuple[int, int], int] | None = None,
) -> list[Piece]:
    """Cut every cell into core, GB and TJ pieces (see the module docstring). Grains too
    small for a core are handled before (:func:`magtwin.model.cleanup.cells_for_gb_shell`)."""
    neighbours = offset_planes(pair_plane, planes, thickness_nm, one_sided)
    pieces: list[Piece] = []
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
        pieces.extend(Piece(g, near, poly) for near, poly in parts)
    return pieces
