"""Import a user's tetrahedral mesh (gmsh ``.msh`` or any meshio format) as a mesh artefact.

Regions: gmsh physical groups (``gmsh:physical`` tags; a ``.msh`` file must have them), else
a cell-data array named ``region_id``/``medit:ref``/``CellEntityIds`` if present, else one
region. Each region's kind (grain / gb / tj) comes from ``kinds``, a mapping of the region
tag *or* the physical-group name to the kind; unmapped regions are grains.

Checks (one clear error naming the file): tetrahedra present, no degenerate element,
inverted elements are re-oriented, the boundary is a closed manifold surface, elements do
not overlap (their volumes add up to the volume the boundary encloses), and, if
``require_convex``, the body is convex (the solver's air shell assumes it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from magtwin.errors import InputError
from magtwin.io.mesh_artefact import REGION_KINDS, MeshData, tetrahedron_volumes, write_mesh_artefact

_REGION_KEYS = ("gmsh:physical", "region_id", "medit:ref", "CellEntityIds", "gmsh:geometrical")


def read_user_mesh(path, kinds: Mapping[str, str] | None = None, alignment_axis=(0.0, 0.0, 1.0),
                   scale_to_nm: float = 1.0, require_convex: bool = True) -> MeshData:
    """Read and check a user's mesh (see module docstring); coordinates times
    ``scale_to_nm`` give nm."""
    import meshio

    p = Path(path)
    if not p.exists():
        raise InputError("mesh file does not exist", p)
    try:
        m = meshio.read(p)
    except Exception as exc:  # meshio raises many types for unreadable files
        raise InputError(f"cannot read mesh ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})", p) from None
    blocks = [k for k, c in enumerate(m.cells) if c.type == "tetra"]
    if not blocks:
        raise InputError(f"no tetrahedra in the mesh (cell types: {sorted({c.type for c in m.cells})})", p)
    tets = np.vstack([m.cells[k].data for k in blocks]).astype(np.int64)
    key = next((k for k in _REGION_KEYS if k in m.cell_data), None)
    if p.suffix == ".msh" and key not in ("gmsh:physical",):
        raise InputError("the .msh file has no physical groups; tag the volumes with physical groups "
                         "(they become the regions)", p)
    if key is not None:
        rid = np.concatenate([np.asarray(m.cell_data[key][k]).ravel() for k in blocks]).astype(np.int64)
    else:
        rid = np.ones(len(tets), np.int64)
    if p.suffix == ".msh" and np.all(rid <= 0):
        raise InputError("the .msh file has no physical groups on its tetrahedra; tag the volumes with "
                         "physical groups (they become the regions)", p)
    if p.suffix == ".msh" and np.any(rid <= 0):
        raise InputError("some tetrahedra belong to no physical group", p)
    names = {int(v[0]): n for n, v in (m.field_data or {}).items() if len(v) > 1 and int(v[1]) == 3}
    pts = np.asarray(m.points, float)[:, :3] * float(scale_to_nm)
    # keep only nodes used by tetrahedra
    used = np.unique(tets)
    remap = -np.ones(len(pts), np.int64)
    remap[used] = np.arange(len(used))
    pts, tets = pts[used], remap[tets]
    vol = tetrahedron_volumes(pts, tets)
    scale = np.abs(vol).mean()
    bad = np.flatnonzero(np.abs(vol) <= 1e-12 * scale)
    if len(bad):
        raise InputError(f"{len(bad)} degenerate (zero-volume) tetrahedra, first: element {bad[0]}", p)
    neg = vol < 0
    tets[neg] = tets[neg][:, [0, 2, 1, 3]]
    _check_body(pts, tets, p, require_convex)
    kinds = {str(k): str(v) for k, v in (kinds or {}).items()}
    regions = []
    vol = np.abs(vol)
    for r in np.unique(rid):
        kind = kinds.get(str(int(r)), kinds.get(names.get(int(r), ""), "grain"))
        if kind not in REGION_KINDS:
            raise InputError(f"region {r}: kind {kind!r} is not one of {REGION_KINDS}", p)
        row = {"id": int(r), "kind": kind, "grains": [int(r)] if kind == "grain" else [],
               "volume_nm3": float(vol[rid == r].sum())}
        if int(r) in names:
            row["name"] = names[int(r)]
        regions.append(row)
    axis = np.asarray(alignment_axis, float)
    return MeshData(pts, tets, rid.astype(np.int32), regions, axis / np.linalg.norm(axis))


def _check_body(pts, tets, source, require_convex: bool) -> None:
    faces = np.vstack([tets[:, [1, 2, 3]], tets[:, [0, 3, 2]], tets[:, [0, 1, 3]], tets[:, [0, 2, 1]]])
    key = np.sort(faces, axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    if np.any(cnt > 2):
        raise InputError(f"{int(np.sum(cnt > 2))} triangles are shared by more than two tetrahedra "
                         "(overlapping or self-intersecting mesh)", source)
    bnd = faces[cnt[inv.ravel()] == 1]
    e = np.sort(np.vstack([bnd[:, [0, 1]], bnd[:, [1, 2]], bnd[:, [2, 0]]]), axis=1)
    _, ecnt = np.unique(e, axis=0, return_counts=True)
    if np.any(ecnt != 2):
        raise InputError("the mesh boundary is not a closed manifold surface "
                         f"({int(np.sum(ecnt != 2))} boundary edges not shared by exactly two faces)", source)
    a, b, c = pts[bnd[:, 0]], pts[bnd[:, 1]], pts[bnd[:, 2]]
    enclosed = float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)
    total = float(tetrahedron_volumes(pts, tets).sum())
    if abs(total - abs(enclosed)) > 1e-6 * total:
        raise InputError(f"element volumes ({total:.6g}) exceed the volume the boundary encloses "
                         f"({abs(enclosed):.6g}): overlapping or self-intersecting elements", source)
    _check_no_overlap(pts, tets, source)
    if require_convex:
        from scipy.spatial import ConvexHull

        hull = ConvexHull(pts[np.unique(bnd)]).volume
        if hull - total > 1e-6 * hull:
            raise InputError(f"the meshed body is not convex (volume {total:.6g} vs convex hull {hull:.6g}); "
                             "set mesh_import.require_convex: false if the solver set-up allows it", source)


def _check_no_overlap(pts, tets, source, k: int = 16) -> None:
    """No node strictly inside an element it does not belong to (catches overlapping or
    interpenetrating parts that the face and volume checks cannot see)."""
    from scipy.spatial import cKDTree

    cent = pts[tets].mean(axis=1)
    tree = cKDTree(cent)
    k = min(k, len(tets))
    _, near = tree.query(pts, k=k)
    near = near.reshape(len(pts), k)
    p0 = pts[tets[:, 0]]
    m = np.stack([pts[tets[:, 1]] - p0, pts[tets[:, 2]] - p0, pts[tets[:, 3]] - p0], axis=2)  # (M, 3, 3)
    minv = np.linalg.inv(m)
    for c in range(k):
        el = near[:, c]
        lam = np.einsum("nij,nj->ni", minv[el], pts - p0[el])
        lam = np.column_stack([1 - lam.sum(axis=1), lam])
        own = np.any(tets[el] == np.arange(len(pts))[:, None], axis=1)
        inside = np.all(lam > 1e-9, axis=1) & ~own
        if inside.any():
            i = int(np.flatnonzero(inside)[0])
            raise InputError(f"node {i} lies inside element {int(el[i])}: overlapping or "
                             "self-intersecting elements", source)


def run_import(path, out_path, params: Mapping[str, Any] | None = None) -> dict:
    """Import ``path`` into the mesh artefact ``out_path``; returns its statistics."""
    from magtwin.mesh.build import mesh_statistics

    prm = dict(params or {})
    mesh = read_user_mesh(path, prm.get("kinds"), prm.get("alignment_axis") or (0.0, 0.0, 1.0),
                          float(prm.get("scale_to_nm", 1.0)), bool(prm.get("require_convex", True)))
    stats = mesh_statistics(mesh)
    write_mesh_artefact(out_path, mesh, prm, inputs=[os.fspath(path)], extra={"statistics_json": stats})
    return stats
