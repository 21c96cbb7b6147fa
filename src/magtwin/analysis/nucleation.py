"""Where magnetisation reversal starts: reversed volume per region from nodal snapshots.

An element is *reversed* when its mean magnetisation (average of its 4 nodal m, P1) has
turned past the plane perpendicular to the field, m·h < 0 (the sweep starts saturated
along +h). The reversal step is the first snapshot with any reversed element. The
nucleation region is found in two ways, the first that applies:

1. *precursor*: in the last snapshot before the reversal step (the solver stores the state
   just before each jump), the region whose volume-mean m·h has turned furthest from +1
   (by more than ``min_tilt``) — the instability that triggers the jump grows there;
2. *reversed fraction*: else the region with the largest reversed volume fraction in the
   reversal step; when that step already has half the magnet or more reversed, the
   snapshots are too far apart to say where reversal started: kind ``"unresolved"``.

The kind (grain, gb, tj) says whether reversal started inside a grain, in a
grain-boundary or in a triple-junction region.
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


def region_mean_m_dot_h(mesh: MeshData, m: np.ndarray, direction: np.ndarray) -> dict[int, float]:
    """{region id: volume-mean m·h} for one snapshot."""
    vol = np.abs(tetrahedron_volumes(mesh.points_nm, mesh.tetrahedra))
    mh = element_m_dot_h(mesh.tetrahedra, m, direction)
    ids = np.unique(mesh.region_id)
    pos = np.searchsorted(ids, mesh.region_id)
    tot = np.bincount(pos, weights=vol, minlength=len(ids))
    s = np.bincount(pos, weights=vol * mh, minlength=len(ids))
    return {int(i): float(a / t) for i, a, t in zip(ids, s, tot) if t > 0}


def _checked(mesh: MeshData, snapshots: Mapping[int, np.ndarray], k: int) -> np.ndarray:
    m = np.asarray(snapshots[k], float)
    if m.shape != (len(mesh.points_nm), 3):
        raise ValueError(f"snapshot {k} has shape {m.shape}, the mesh has {len(mesh.points_nm)} nodes")
    return m


def find_nucleation(mesh: MeshData, snapshots: Mapping[int, np.ndarray], field_T: np.ndarray,
                    direction: np.ndarray, min_tilt: float = 1e-3) -> dict | None:
    """The reversal step and the nucleation region (see module docstring), or None if no
    snapshot has a reversed element.

    Parameters
    ----------
    snapshots : {curve index k: nodal m (N, 3)}
    field_T : (K,) applied µ0H of the curve (to report the field of snapshot k)
    min_tilt : least 1 − m·h of a region, before reversal, to count as a precursor

    Returns
    -------
    dict with ``step`` (k), ``field_T``, ``region`` (id), ``kind`` (or "unresolved"),
    ``method`` ("precursor" | "reversed fraction"), ``reversed_fraction`` (of that region),
    ``total_reversed_fraction`` (of the magnet) and ``centroid_nm`` (3,) of the region.
    """
    kind_of = mesh.region_kind()
    vol = np.abs(tetrahedron_volumes(mesh.points_nm, mesh.tetrahedra))
    previous = None
    for k in sorted(snapshots):
        m = _checked(mesh, snapshots, k)
        mh = element_m_dot_h(mesh.tetrahedra, m, direction)
        if not np.any(mh < 0):
            previous = m
            continue
        frac = reversed_fraction_by_region(mesh, m, direction)
        total = float(vol[mh < 0].sum() / vol.sum())
        method, region = "reversed fraction", max(frac, key=lambda r: frac[r])
        kind = kind_of.get(int(region), "grain") if total < 0.5 else "unresolved"
        if previous is not None:
            before = region_mean_m_dot_h(mesh, previous, direction)
            tilted = min(before, key=lambda r: before[r])
            if 1.0 - before[tilted] > min_tilt:
                method, region, kind = "precursor", tilted, kind_of.get(int(tilted), "grain")
        sel = mesh.region_id == region
        centroid = mesh.points_nm[mesh.tetrahedra[sel]].mean(axis=(0, 1))
        return {"step": int(k), "field_T": float(field_T[k]), "region": int(region), "kind": kind,
                "method": method, "reversed_fraction": frac.get(region, 0.0),
                "total_reversed_fraction": total, "centroid_nm": centroid.tolist()}
    return None
