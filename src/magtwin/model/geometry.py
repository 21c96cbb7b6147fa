"""The whole geometric model from sites and weights: cells, GB/TJ pieces, cleanup, regions.

Deterministic: the mesh stage rebuilds exactly the same pieces from what the model stage
stored (sites, weights, box, parameters), so the model artefact stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from magtwin.errors import ConfigError, InputError
from magtwin.mesh.plc import overlay_facets
from magtwin.model.boundary_phase import Piece, split_cells
from magtwin.model.box_wedges import fold_box_wedges
from magtwin.model.cleanup import cells_for_gb_shell, merge_slivers
from magtwin.model.polyhedra import REL_EPS, PlaneSet
from magtwin.model.regions import assign_regions, region_table


@dataclass
class Geometry:
    planes: PlaneSet
    pieces: list[Piece]
    facets: list
    pair_plane: dict
    regions: list[dict]
    grain_ids: np.ndarray
    box_lo: np.ndarray
    box_hi: np.ndarray
    cleanup: dict


def build_geometry(
    sites_nm: np.ndarray,
    weights_nm2: np.ndarray,
    grain_ids: np.ndarray,
    box_lo,
    box_hi,
    gb_thickness_nm: float,
    min_feature_nm: float,
    tj_thick_threshold_nm: float,
    alignment_axis=(0.0, 0.0, 1.0),
    source=None,
    box_wedge_min_deg: float = 10.0,
) -> Geometry:
    """Laguerre cells in the box, cut into grain cores, GB and TJ pieces; grains too thin for
    a GB shell given one-sided GBs or dropped, slivers merged (:mod:`magtwin.model.cleanup`).

    Parameters
    ----------
    sites_nm (G, 3) xyz, weights_nm2 (G,), grain_ids (G,) label of each site;
    box_lo, box_hi : (3,) xyz nm; gb_thickness_nm : GB phase thickness;
    min_feature_nm : sliver threshold (see :mod:`magtwin.model.cleanup`);
    tj_thick_threshold_nm : TJ thin/thick classification by ``size_nm``;
    box_wedge_min_deg : interfaces meeting the box below this angle are folded
    (:mod:`magtwin.model.box_wedges`, length scale ``0.3 gb_thickness_nm``).
    """
    lo, hi = np.asarray(box_lo, float), np.asarray(box_hi, float)
    if not 0 <= min_feature_nm <= 0.2 * gb_thickness_nm:
        # a GB half-slab's inner radius is t/4: a larger threshold would dissolve the GB phase
        raise ConfigError(f"model.min_feature_nm = {min_feature_nm:g} must be between 0 and 0.2 x "
                          f"gb_thickness_nm = {0.2 * gb_thickness_nm:g}", source)
    if not 0 <= box_wedge_min_deg <= 45:
        # the notch's corner K (45 deg into the sample) only stays on the GB side of smaller wedges
        raise ConfigError(f"model.box_wedge_min_deg = {box_wedge_min_deg:g} must be between 0 and 45", source)
    if np.any(hi <= lo):
        raise InputError(f"empty model box {lo.tolist()}..{hi.tolist()} nm", source)
    tess = cells_for_gb_shell(sites_nm, weights_nm2, grain_ids, lo, hi, REL_EPS * float(np.max(hi - lo)),
                              gb_thickness_nm, min_feature_nm, source)
    planes, pair_plane = tess.planes, tess.pair_plane
    pieces = split_cells(tess.cells, pair_plane, planes, gb_thickness_nm, tess.one_sided)
    ids = assign_regions(pieces, grain_ids)
    facets = overlay_facets([p.poly.faces for p in pieces], planes)
    report = {**merge_slivers(pieces, facets, planes, min_feature_nm, pair_plane, gb_thickness_nm),
              "one_sided_gb": [[int(grain_ids[a]), int(grain_ids[b]), int(grain_ids[b if s > 0 else a])]
                               for (a, b), s in sorted(tess.one_sided.items())],
              "dropped_grains": tess.dropped}
    kinds = {rid: key[0] for key, rid in ids.items()}
    folds = fold_box_wedges(pieces, planes, lo, hi, kinds, box_wedge_min_deg, 0.3 * gb_thickness_nm)
    report.update(folds)
    if any(f["fold"] != "skipped" for f in folds["box_wedges"]):
        facets = overlay_facets([p.poly.faces for p in pieces], planes)
    table = region_table(pieces, ids, planes, pair_plane, grain_ids, alignment_axis, tj_thick_threshold_nm)
    return Geometry(planes, pieces, facets, pair_plane, table, np.asarray(grain_ids), lo, hi, report)
