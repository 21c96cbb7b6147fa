"""Remove features too small to mesh: grains too small for a GB shell, sliver pieces.

*Thin grains.* A grain whose core inside a centred GB shell of thickness ``t`` (see
:mod:`magtwin.model.boundary_phase`) is empty or a sliver (below) is too thin, mostly cut
thin by the box: merging its core into a GB region would make that region thicker than
``t``. The GB of each of its pairs with a thick neighbour is placed entirely in the
neighbour's cell instead (one-sided GB, still ``t`` thick), so the thin grain keeps its
whole cell as core on that side, unless that makes the neighbour thin. A grain still thin
then (a tiny fragment) is dropped from the Laguerre tessellation and the cells are
recomputed: its neighbours' cells grow into its space (and stay convex) and its labelled
voxels go to them; repeated until no grain is thin (:func:`cells_for_gb_shell`).

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

*GB regions without a slab.* A GB region must span its whole band (``t`` along its normal).
Where a grain pair's face lies inside junctions its GB region can be strips of each grain's
band that never meet, one of which may then merge away as a sliver (likewise a one-sided
band cut short): such GB pieces join the neighbouring TJ region of both grains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magtwin.errors import InputError
from magtwin.model.boundary_phase import Piece, grain_cores
from magtwin.model.polyhedra import PlaneSet, Polyhedron, laguerre_cells


def inner_radius(poly: Polyhedron, planes: PlaneSet) -> float:
    """Distance (nm) from the polyhedron's centroid to its nearest face plane."""
    c = poly.centroid()
    return float(min(abs(planes.n(f.plane) @ c - planes.c(f.plane)) for f in poly.faces))


@dataclass
class Tessellation:
    """Laguerre cells ready for the GB shell: ``planes`` registry, ``cells`` (``None`` for
    dropped grains and grains outside the box), ``pair_plane`` (as :func:`laguerre_cells`),
    ``one_sided`` ``{(a, b): ±1}`` pairs whose GB lies in one cell (see
    :mod:`magtwin.model.boundary_phase`), ``dropped`` ``[{"grain": label,
    "core_inner_radius_nm", "cell_volume_nm3", "reason"}]`` in the order dropped."""

    planes: PlaneSet
    cells: list
    pair_plane: dict
    one_sided: dict
    dropped: list


def core_radii(cells, pair_plane, planes: PlaneSet, thickness_nm: float, one_sided: dict) -> dict[int, float]:
    """Inner radius (nm) of every present grain's core, -1 if it has none."""
    scratch = PlaneSet(planes.eps, list(planes.normals), list(planes.offsets))
    cores = grain_cores(cells, pair_plane, scratch, thickness_nm, one_sided)
    return {g: (-1.0 if cores[g] is None else inner_radius(cores[g], scratch))
            for g, c in enumerate(cells) if c is not None}


def cells_for_gb_shell(
    sites_nm: np.ndarray,
    weights_nm2: np.ndarray,
    grain_ids: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    eps: float,
    gb_thickness_nm: float,
    min_feature_nm: float,
    source=None,
    max_thin_fraction: float = 0.25,
) -> Tessellation:
    """Laguerre cells in the box with every grain thick enough for its GB shell (see module
    docstring). Per round, every still-thin grain with no thinner still-thin neighbour is
    dropped (a neighbour's cell grows when one is dropped), then the cells are recomputed.

    Raises
    ------
    InputError
        If fewer than two grains are in the box, or the grains too thin for a centred GB
        shell fill more than ``max_thin_fraction`` of it (the thickness is larger than the
        grains; a few fragments cut by the box edge may be thin, most grains not).
    """
    active = np.ones(len(sites_nm), bool)
    dropped: list[dict] = []
    box_volume = float(np.prod(np.asarray(hi, float) - np.asarray(lo, float)))
    while True:
        planes = PlaneSet(eps=eps)
        cells, pair_plane, _ = laguerre_cells(sites_nm, weights_nm2, lo, hi, planes, active)
        present = [g for g, c in enumerate(cells) if c is not None]
        if len(present) < 2:
            raise InputError(f"only {len(present)} grain(s) inside the model box; need at least two", source)
        centred = core_radii(cells, pair_plane, planes, gb_thickness_nm, {})
        thin = {g for g, r in centred.items() if r < min_feature_nm}
        if not dropped and sum(cells[g].volume() for g in thin) > max_thin_fraction * box_volume:
            g = min(thin, key=lambda k: (centred[k], k))
            raise InputError(
                f"grain-boundary thickness {gb_thickness_nm:g} nm is larger than {len(thin)} of {len(present)} "
                f"grains (no grain interior of at least model.min_feature_nm = {min_feature_nm:g} nm left, e.g. "
                f"grain {int(grain_ids[g])}); use a thinner GB or a larger model.scale", source)
        one_sided = {(a, b): (1 if a in thin else -1) for a, b in pair_plane if (a in thin) != (b in thin)}
        radius = core_radii(cells, pair_plane, planes, gb_thickness_nm, one_sided)
        # a neighbour made thin by the bands it received takes them back
        hurt = {g for g in present if g not in thin and radius[g] < min_feature_nm}
        if hurt:
            one_sided = {(a, b): s for (a, b), s in one_sided.items() if (b if s > 0 else a) not in hurt}
            radius = core_radii(cells, pair_plane, planes, gb_thickness_nm, one_sided)
        still = {g: r for g, r in radius.items() if r < min_feature_nm}
        if not still:
            return Tessellation(planes, cells, pair_plane, one_sided, dropped)
        if len(present) - len(still) < 2:
            raise InputError(f"only {len(present) - len(still)} grain(s) of the model box are thicker than its "
                             f"{gb_thickness_nm:g} nm GB shell; need at least two", source)
        near = {g: set() for g in still}
        for a, b in pair_plane:
            if a in still and b in still:
                near[a].add(b)
                near[b].add(a)
        for g in sorted(still):
            if all((still[g], g) < (still[h], h) for h in near[g]):
                active[g] = False
                reason = ("no core" if still[g] < 0 else
                          f"core {still[g]:.3g} nm thin (< model.min_feature_nm = {min_feature_nm:g} nm)")
                dropped.append({"grain": int(grain_ids[g]), "core_inner_radius_nm": max(still[g], 0.0),
                                "cell_volume_nm3": cells[g].volume(),
                                "reason": f"{reason} even with its {gb_thickness_nm:g} nm GB shell in its "
                                          "neighbours: too small or too cut by the box"})


def merge_slivers(
    pieces: list[Piece], facets: list, planes: PlaneSet, min_feature_nm: float,
    pair_plane: dict[tuple[int, int], int], thickness_nm: float,
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
    no_slab = _gb_without_slab(pieces, shared, region_grains, planes, pair_plane, thickness_nm)
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


def _gb_without_slab(pieces: list[Piece], shared: dict, region_grains: dict, planes: PlaneSet,
                     pair_plane: dict[tuple[int, int], int], thickness_nm: float) -> int:
    """Move the pieces of every GB region not ``t`` thick along its pair plane's normal (it
    never spans the whole band: halves that never meet, a half merged away as a sliver, a
    one-sided band cut short) into the neighbouring TJ region of both its grains sharing the
    largest facet; return how many GB regions moved."""
    members: dict[int, list[int]] = {}
    for k, p in enumerate(pieces):
        members.setdefault(p.region, []).append(k)
    moved = 0
    for r in sorted(members):
        if len(region_grains[r]) != 2:
            continue
        n = planes.n(pair_plane[tuple(sorted(region_grains[r]))])
        h = np.concatenate([np.vstack([f.loop for f in pieces[k].poly.faces]) @ n for k in members[r]])
        if np.ptp(h) >= thickness_nm - 1e-6 * max(thickness_nm, 1.0):
            continue
        for k in members[r]:
            tj = {j: a for j, a in shared.get(k, {}).items()
                  if len(region_grains[pieces[j].region]) > 2 and region_grains[pieces[j].region] >= region_grains[r]}
            if tj:
                pieces[k].region = pieces[max(tj, key=tj.get)].region
        moved += any(pieces[k].region != r for k in members[r])
    return moved
