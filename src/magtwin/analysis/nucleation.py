"""Where magnetisation reversal starts: reversed volume per region from nodal snapshots.

An element is *reversed* when its mean magnetisation (average of its 4 nodal m, P1) has
turned past the plane perpendicular to the field, m·h < 0 (the sweep starts saturated
along +h). The nucleation site is the region with the largest reversed volume fraction in
the first snapshot that has any reversed element; its kind (grain, gb, tj) says whether
reversal started inside a grain, in a grain-boundary or in a triple-junction region. When
that snapshot already has half the magnet or more reversed, the snapshots are too far apart
to say where reversal started: the kind is then ``"unresolved"``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from magtwin.io.mesh_artefact import MeshData, tetrahedron_volumes


def element_m_dot_h(tets: np.ndarray, m: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """(M,) mean m·h per element from nodal m (N, 3)."""
    return (m @ np.asarray(direction, float))[tets].mean(axis=1)


def reversed_fraction_by_region(mesh: MeshData, m: np.ndarray, direction: np.ndarray) -> dict[int, float]:
    """{region id: reversed volume fraction} for one snapshot."""
    vol = np.abs(tetrahedron_volumes(mesh.points_nm, mesh.tetrahedra))
    rev = element_m_dot_h(mesh.tetrahedra, m, direction) < 0
    rid = mesh.region_id
    ids = np.unique(rid)
    tot = np.bincount(np.searchsorted(ids, rid), weights=vol, minlength=len(ids))
    rv = np.bincount(np.searchsorted(ids, rid), weights=vol * rev, minlength=len(ids))
    return {int(i): float(r / t) if t > 0 else 0.0 for i, r, t in zip(ids, rv, tot)}


def reversed_fraction_by_kind(mesh: MeshData, m: np.ndarray, direction: np.ndarray) -> dict[str, float]:
    """{kind: reversed volume fraction of all regions of that kind} for one snapshot."""
    vol = np.abs(tetrahedron_volumes(mesh.points_nm, mesh.tetrahedra))
    rev = element_m_dot_h(mesh.tetrahedra, m, direction) < 0
    kind_of = mesh.region_kind()
    kinds = np.array([kind_of.get(int(r), "grain") for r in mesh.region_id])
    out = {}
    for k in ("grain", "gb", "tj"):
        sel = kinds == k
        if sel.any():
            out[k] = float((vol[sel] * rev[sel]).sum() / vol[sel].sum())
    return out


def find_nucleation(mesh: MeshData, snapshots: Mapping[int, np.ndarray], field_T: np.ndarray,
                    direction: np.ndarray) -> dict | None:
    """The first reversed snapshot and its nucleation region, or None if none reversed.

    Parameters
    ----------
    snapshots : {curve index k: nodal m (N, 3)}
    field_T : (K,) applied µ0H of the curve (to report the field of snapshot k)

    Returns
    -------
    dict with ``step`` (k), ``field_T``, ``region`` (id), ``kind`` (or "unresolved"),
    ``reversed_fraction`` (of that region), ``total_reversed_fraction`` (of the magnet) and
    ``centroid_nm`` (3,) of the region's reversed elements.
    """
    kind_of = mesh.region_kind()
    for k in sorted(snapshots):
        m = np.asarray(snapshots[k], float)
        if m.shape != (len(mesh.points_nm), 3):
            raise ValueError(f"snapshot {k} has shape {m.shape}, the mesh has {len(mesh.points_nm)} nodes")
        mh = element_m_dot_h(mesh.tetrahedra, m, direction)
        if not np.any(mh < 0):
            continue
        frac = reversed_fraction_by_region(mesh, m, direction)
        region = max(frac, key=lambda r: frac[r])
        sel = (mesh.region_id == region) & (mh < 0)
        centroid = mesh.points_nm[mesh.tetrahedra[sel]].mean(axis=(0, 1))
        vol = np.abs(tetrahedron_volumes(mesh.points_nm, mesh.tetrahedra))
        total = float(vol[mh < 0].sum() / vol.sum())
        kind = kind_of.get(int(region), "grain") if total < 0.5 else "unresolved"
        return {"step": int(k), "field_T": float(field_T[k]), "region": int(region),
                "kind": kind, "reversed_fraction": frac[region], "total_reversed_fraction": total,
                "centroid_nm": centroid.tolist()}
    return None
