"""Mesh stage: ``06_model.h5`` -> ``07_mesh.h5`` (+ optional XDMF/VTU for ParaView).

Surface: every PLC facet is triangulated with edge length ``gb_size_nm`` / ``tj_size_nm`` /
``grain_size_nm`` (the smallest of the two regions it separates), shared edges split
identically on both sides. Features below ``snap_tol_nm`` are then collapsed on that
surface (:mod:`magtwin.mesh.snap`) and TetGen checks it for self-intersections (``-d``).
Volume: TetGen with the radius–edge bound and per-region volume bounds (regular tetrahedron
of the region kind's size); the surface is kept (``-Y``) whenever snapping changed it,
because TetGen's refinement around collapsed features runs away or loops.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

import numpy as np

from magtwin.errors import InputError
from magtwin.io.mesh_artefact import MeshData, tetrahedron_volumes, write_mesh_artefact
from magtwin.mesh.optimize import remove_slivers
from magtwin.mesh.plc import build_plc, open_edges, orient_triangles, triangulate
from magtwin.mesh.quality import quality_report
from magtwin.mesh.snap import snap_surface
from magtwin.mesh.tetmesh import check_surface, regular_tet_volume, tetrahedralize
from magtwin.model.build import read_model, rebuild_geometry

LOG = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "gb_size_nm": 1.0,
    "tj_size_nm": 1.0,
    "grain_size_nm": 8.0,
    "radius_edge_ratio": 2.0,
    "min_dihedral_deg": 0.0,
    "max_elements": 2_000_000,
    "sliver_target_deg": 10.0,
    "snap_tol_nm": 0.01,
    "optimize_level": 2,
    "optimize_max_dihedral_deg": 165.0,
    "export_xdmf": True,
    "export_vtu": True,
}


def mesh_geometry(geom, params: Mapping[str, Any], source=None) -> tuple[MeshData, dict]:
    """Tetrahedral mesh of a :class:`magtwin.model.geometry.Geometry`; returns the mesh
    (regions with mesh-measured ``volume_nm3``) and its statistics."""
    prm = {**DEFAULTS, **dict(params or {})}
    t0 = time.perf_counter()
    kinds = {int(r["id"]): r["kind"] for r in geom.regions}
    size = {"grain": float(prm["grain_size_nm"]), "gb": float(prm["gb_size_nm"]), "tj": float(prm["tj_size_nm"])}
    for k, v in size.items():
        if not v > 0:
            raise InputError(f"mesh.{k}_size_nm must be > 0, got {v}", source)
    reg = np.array([p.region for p in geom.pieces])
    kept = [f for f in geom.facets if f.b < 0 or reg[f.a] != reg[f.b]]
    extent = float(np.max(geom.box_hi - geom.box_lo))
    plc = build_plc(kept, merge_tol=1e-8 * extent)
    fsize = np.array([min(size[kinds[reg[f.a]]], size[kinds[reg[f.b]]] if f.b >= 0 else np.inf)
                      for f in plc.facets])
    pts, tris, owner = triangulate(plc, fsize)
    if open_edges(tris):
        raise InputError(f"internal error: the model surface has {open_edges(tris)} open edges", source)
    tris, front, back = orient_triangles(geom, plc, pts, tris, owner, reg)
    seeded = {p.region for p in geom.pieces if not p.sliver}
    sel = [k for k, p in enumerate(geom.pieces) if not p.sliver or p.region not in seeded]
    seeds = np.array([geom.pieces[k].poly.centroid() for k in sel])
    seed_reg = reg[sel]
    seed_vol = np.array([regular_tet_volume(size[kinds[r]]) for r in seed_reg])
    # the exact surface is a valid PLC but has edges and triangle heights down to 1e-5 nm
    # (short Laguerre edges, nearly coincident offset planes) on which TetGen aborts:
    # collapse them (magtwin.mesh.snap), let TetGen check that the result does not
    # self-intersect, then mesh the volume keeping that surface (-Y). A vertex snapped onto
    # a segment can, rarely, leave a pinch that TetGen fills with a flat element: then the
    # snapping is redone at another tolerance (a different set of collapses).
    snap_tol = float(prm["snap_tol_nm"])
    last_error = None
    t1 = t2 = time.perf_counter()
    snapped = {}
    # First the exact surface, TetGen free to split it (best elements next to it; works for
    # small models); its added points are capped (-S) and it gets a time limit. Then the
    # snapped surface kept as it is (-Y): around collapsed features TetGen's refinement
    # runs away (x40 elements), loops or aborts.
    for factor, keep in ((0.0, False), (1.0, True), (0.5, True), (2.0, True), (0.25, True)):
        tol = snap_tol * factor
        if tol not in snapped:
            snapped[tol] = snap_surface(pts, tris, front, back, geom.box_lo, geom.box_hi, tol, 1e-9 * extent)
        spts, stris, _, _, snap_report = snapped[tol]
        if open_edges(stris):
            raise InputError(f"internal error: snapping at {tol:g} nm opened the model surface", source)
        # surface-dominated element count: refuse runaway meshes before TetGen
        est = 3 * len(stris)
        if est > prm["max_elements"]:
            raise InputError(f"the mesh would have about {est} elements (> mesh.max_elements = "
                             f"{prm['max_elements']}); down-scale (model.scale), crop (model.crop_nm) or "
                             f"use larger mesh sizes", source)
        t1 = time.perf_counter()
        try:
            check_surface(spts, stris, source, f"after collapsing features below {tol:g} nm (mesh.snap_tol_nm)")
            nodes, tets, rid = tetrahedralize(spts, stris, seeds, seed_reg, seed_vol, float(prm["radius_edge_ratio"]),
                                              float(prm["min_dihedral_deg"]), source, keep_surface=keep,
                                              opt_level=int(prm["optimize_level"]),
                                              opt_max_dihedral_deg=float(prm["optimize_max_dihedral_deg"]),
                                              max_steiner=None if keep else 4 * len(spts))
        except InputError as exc:
            LOG.warning("meshing with features below %g nm collapsed (keep surface: %s) failed: %s", tol, keep,
                        exc.problem)
            last_error = exc
            continue
        t2 = time.perf_counter()
        break
    else:
        raise InputError(f"{last_error.problem}, also at every snapping tolerance tried ({snap_tol:g} nm x 0.25..2); "
                         "try another mesh.snap_tol_nm or mesh sizes", source)
    tris = stris
    snap_report = {**snap_report, "tol_nm": tol, "keep_surface": keep}
    if len(tets) > prm["max_elements"]:
        raise InputError(f"the mesh has {len(tets)} elements (> mesh.max_elements = {prm['max_elements']})", source)
    sliver_report = {}
    if float(prm["sliver_target_deg"]) > 0:
        nodes, sliver_report = remove_slivers(nodes, tets, rid, float(prm["sliver_target_deg"]),
                                              ratio_bound=float(prm["radius_edge_ratio"]))
    t3 = time.perf_counter()
    vol = tetrahedron_volumes(nodes, tets)
    rvol = np.bincount(rid, weights=vol, minlength=max(kinds) + 1)
    regions = []
    for r in geom.regions:
        r = dict(r)
        r["volume_model_nm3"] = r["volume_nm3"]
        r["volume_nm3"] = float(rvol[r["id"]]) if r["id"] < len(rvol) else 0.0
        if r["volume_nm3"] > 0:
            regions.append(r)
    mesh = MeshData(nodes, tets, rid.astype(np.int32), regions,
                    np.asarray(getattr(geom, "alignment_axis", (0.0, 0.0, 1.0)), float))
    stats = mesh_statistics(mesh)
    stats["time_s"] = {"surface": t1 - t0, "tetgen": t2 - t1, "sliver_removal": t3 - t2}
    stats["sliver_removal"] = sliver_report
    stats["surface_triangles"] = int(len(tris))
    stats["snap"] = snap_report
    stats["cleanup"] = geom.cleanup
    return mesh, stats


def mesh_statistics(mesh: MeshData) -> dict:
    """Counts, volumes per region kind and the quality report."""
    kinds = mesh.region_kind()
    kind_of_el = np.array([kinds[int(r)] for r in mesh.region_id])
    vol = tetrahedron_volumes(mesh.points_nm, mesh.tetrahedra)
    per_kind = {}
    for k in ("grain", "gb", "tj"):
        m = kind_of_el == k
        nodes = np.unique(mesh.tetrahedra[m]) if m.any() else np.zeros(0)
        per_kind[k] = {"regions": int(sum(v == k for v in kinds.values())), "elements": int(m.sum()),
                       "nodes": int(len(nodes)), "volume_nm3": float(vol[m].sum())}
    lo, hi = mesh.points_nm.min(axis=0), mesh.points_nm.max(axis=0)
    return {"nodes": int(len(mesh.points_nm)), "elements": int(len(mesh.tetrahedra)), "per_kind": per_kind,
            "total_volume_nm3": float(vol.sum()), "bounding_box_nm": [lo.tolist(), hi.tolist()],
            "quality": quality_report(mesh.points_nm, mesh.tetrahedra)}


def run_mesh(model_path, out_path, params: Mapping[str, Any] | None = None, xdmf_path=None, vtu_path=None) -> dict:
    """Mesh stage: model artefact -> mesh artefact (and exports). Returns the statistics."""
    from magtwin.mesh.export import export_mesh

    prm = {**DEFAULTS, **dict(params or {})}
    model = read_model(model_path)
    geom = rebuild_geometry(model, source=model_path)
    geom.alignment_axis = model["alignment_axis"]
    mesh, stats = mesh_geometry(geom, prm, source=model_path)
    write_mesh_artefact(out_path, mesh, prm, inputs=[model_path], extra={"statistics_json": stats})
    if xdmf_path and prm.get("export_xdmf", True):
        export_mesh(mesh, xdmf_path)
    if vtu_path and prm.get("export_vtu", True):
        export_mesh(mesh, vtu_path)
    q = stats["quality"]
    LOG.info("mesh: %d nodes, %d elements (GB %d, TJ %d); min dihedral %.2f deg; max radius-edge %.2f",
             stats["nodes"], stats["elements"], stats["per_kind"]["gb"]["elements"],
             stats["per_kind"]["tj"]["elements"], q["min_dihedral_deg"], q["radius_edge_ratio_max"])
    return stats
