"""Remove features too small to mesh: grains too small for a GB shell, sliver pieces.

*Thin grains.* A grain whose core (its cell minus the GB shell of thickness ``t``, see
:mod:`magtwin.model.boundary_phase`) is empty or a sliver (below) is too small, or too cut
by the box, to carry a GB shell of the configured thickness: merging its core into a GB
region would make that region thicker than ``t``. Its site is dropped from the Laguerre
tessellation and the cells are recomputed, so its neighbours' cells grow into its space
(and stay convex) and its labelled voxels go to them; repeated until no core is a sliver
(:func:`drop_thin_grains`).

*Slivers.* A piece is a *sliver* when the largest ball about its centroid that stays inside
it has a radius below ``min_feature_nm`` (thin wedges where offset planes nearly coincide,
tiny pieces at near-degenerate tessellation vertices). Its region id is changed to that of
the neighbouring piece sharing the largest facet area with it (repeated until no sliver
borders only slivers), so the facets around it become region-interior and are not meshed;
the geometry itself is unchanged (volumes stay exact). Every GB region stays exactly ``t``
thick along its normal: a sliver only joins a region of its own grain, and a GB region only
if it lies in that GB's band (within ``t/2`` of its pair plane); a sliver half of a GB next
to its other half stays in its GB (joining its grain core instead would leave a GB ``t/2``
thick). Edges and faces shorter/narrower than the tolerance left after that are collapsed
when the PLC vertices are merged (:func:`magtwin.mesh.plc.build_plc`).

*GB regions without a slab.* Where a grain pair's face lies inside junctions, the GB region
of the pair can consist of strips of each grain's band that never meet (no facet between its
two halves): there is no slab of thickness ``t``, and these pieces join the neighbouring TJ
region of both grains.
"""

from __future__ import annotations

import numpy as np

from magtwin.errors import InputError
from magtwin.model.boundary_phase import Piece, grain_cores
from magtwin.model.polyhedra import PlaneSet, Polyhedron, laguerre_cells


def inner_radius(poly: Polyhedron, planes: PlaneSet) -> float:
    """Distance (nm) from the polyhedron's centroid to its nearest face plane."""
    c = poly.centroid()
    return float(min(abs(planes.n(f.plane) @ c - planes.c(f.plane)) for f in poly.faces))


def drop_thin_grains(
    sites_nm: np.ndarray,
    weights_nm2: np.ndarray,
    grain_ids: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    eps: float,
    gb_thickness_nm: float,
    min_feature_nm: float,
    source=None,
    max_coreless_fraction: float = 0.25,
    max_dropped_fraction: float = 0.5,
) -> tuple[PlaneSet, list[Polyhedron | None], dict[tuple[int, int], int], list[dict]]:
    """Laguerre cells in the box without the thin grains (see module docstring).

    Per round, every thin grain with no thinner thin neighbour is dropped (a neighbour's
    cell grows when one is dropped, so a thin pair loses only one grain), then the cells
    are recomputed from scratch.

    Returns
    -------
    planes, cells, pair_plane : the final tessellation (as :func:`laguerre_cells`, with
        ``None`` for dropped grains and grains outside the box), on a fresh plane registry
    dropped : ``[{"grain": label, "core_inner_radius_nm", "cell_volume_nm3", "reason"}]``
        in the order dropped
    Raises
    ------
    InputError
        If the GB thickness leaves more than ``max_coreless_fraction`` of the grains in the
        box without a core, if more than ``max_dropped_fraction`` would be dropped, or if
        fewer than two grains are left (a few small fragments cut by the box edge may be
        all boundary phase; most grains not).
    """
    active = np.ones(len(sites_nm), bool)
    dropped: list[dict] = []
    first_present = None
    while True:
        planes = PlaneSet(eps=eps)
        cells, pair_plane, _ = laguerre_cells(sites_nm, weights_nm2, lo, hi, planes, active)
        present = [g for g, c in enumerate(cells) if c is not None]
        if first_present is None:
            first_present = len(present)
            if first_present < 2:
                raise InputError(f"only {first_present} grain(s) inside the model box; need at least two", source)
        scratch = PlaneSet(eps, list(planes.normals), list(planes.offsets))
        cores = grain_cores(cells, pair_plane, scratch, gb_thickness_nm)
        radius = {g: (0.0 if cores[g] is None else inner_radius(cores[g], scratch)) for g in present}
        thin = {g: r for g, r in radius.items() if cores[g] is None or r < min_feature_nm}
        coreless = [g for g in thin if cores[g] is None]
        if (len(dropped) == 0 and len(coreless) > max_coreless_fraction * first_present) or \
                len(thin) + len(dropped) > max_dropped_fraction * first_present or len(present) - len(thin) < 2:
            g = min(thin, key=lambda k: (thin[k], k))
            raise InputError(
                f"grain-boundary thickness {gb_thickness_nm:g} nm is larger than {len(thin) + len(dropped)} of "
                f"{first_present} grains (no grain interior of at least model.min_feature_nm = {min_feature_nm:g} nm "
                f"left, e.g. grain {int(grain_ids[g])}); use a thinner GB or a larger model.scale", source)
        if not thin:
            return planes, cells, pair_plane, dropped
        near = {g: set() for g in thin}
        for a, b in pair_plane:
            if a in thin and b in thin:
                near[a].add(b)
                near[b].add(a)
        for g in sorted(thin):
            if all((thin[g], g) < (thin[h], h) for h in near[g]):
                active[g] = False
                reason = ("no core" if cores[g] is None else
                          f"core {thin[g]:.3g} nm thin (< model.min_feature_nm = {min_feature_nm:g} nm)")
                dropped.append({"grain": int(grain_ids[g]), "core_inner_radius_nm": thin[g],
                                "cell_volume_nm3": cells[g].volume(),
                                "reason": f"{reason} inside its {gb_thickness_nm:g} nm GB shell: too small or "
                                          "too cut by the box"})


def merge_slivers(
    pieces: list[Piece], facets: list, planes: PlaneSet, min_feature_nm: float
) -> dict:
    """Relabel sliver pieces and GB regions without a slab in place (see module docstring);
    return a small report ``{"sliver_pieces": n, "sliver_volume_nm3": v,
    "gb_regions_into_junctions": m}`` and set ``piece.sliver``."""
    radius = np.array([inner_radius(p.poly, planes) for p in pieces])
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
    # grains (cell indices) of every region, before any relabelling
    region_grains: dict[int, set] = {}
    for p in pieces:
        region_grains.setdefault(p.region, set()).update({p.grain} | set(p.near))
    todo = set(np.flatnonzero(sliver).tolist())
    resolved: set[int] = set()
    # slivers next to a non-sliver piece first, then those next to resolved slivers
    for _ in range(len(todo) + 1):
        progress = False
        for k in sorted(todo - resolved):
            nbrs = {j: a for j, a in shared.get(k, {}).items() if not sliver[j] or j in resolved}
            if not nbrs:
                continue
            p = pieces[k]
            own = len(p.near) == 1 and any(pieces[j].region == p.region for j in nbrs)
            if not own:
                ok = {j: a for j, a in nbrs.items() if _keeps_gb_thickness(p, region_grains[pieces[j].region])}
                best = max(ok or nbrs, key=(ok or nbrs).get)
                p.region = pieces[best].region
            resolved.add(k)
            progress = True
        if not progress:
            break
    no_slab = _gb_without_slab(pieces, facets, shared, region_grains)
    for k, p in enumerate(pieces):
        p.sliver = bool(sliver[k])
    return {
        "sliver_pieces": int(sliver.sum()),
        "sliver_volume_nm3": float(sum(pieces[k].poly.volume() for k in np.flatnonzero(sliver))),
        "gb_regions_into_junctions": no_slab,
    }


def _keeps_gb_thickness(piece: Piece, grains: set) -> bool:
    """Whether ``piece`` may join the region of ``grains`` without making a GB region thicker:
    the region must belong to the piece's grain, and a GB region's pair plane must be one
    the piece lies within ``t/2`` of (the piece stays inside that GB's band)."""
    if piece.grain not in grains:
        return False
    return len(grains) != 2 or grains <= {piece.grain} | set(piece.near)


def _gb_without_slab(pieces: list[Piece], facets: list, shared: dict, region_grains: dict) -> int:
    """Move the pieces of every GB region whose two halves share no facet into the
    neighbouring TJ region of both its grains sharing the largest facet; return how many GB
    regions moved."""
    meet = {pieces[f.a].region for f in facets
            if f.b >= 0 and pieces[f.a].region == pieces[f.b].region and pieces[f.a].grain != pieces[f.b].grain}
    members: dict[int, list[int]] = {}
    for k, p in enumerate(pieces):
        members.setdefault(p.region, []).append(k)
    moved = 0
    for r in sorted(members):
        if len(region_grains[r]) != 2 or r in meet:
            continue
        for k in members[r]:
            tj = {j: a for j, a in shared.get(k, {}).items()
                  if len(region_grains[pieces[j].region]) > 2 and region_grains[pieces[j].region] >= region_grains[r]}
            if tj:
                pieces[k].region = pieces[max(tj, key=tj.get)].region
        moved += any(pieces[k].region != r for k in members[r])
    return moved
