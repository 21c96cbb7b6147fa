"""Sliver removal by vertex relocation (TetGen's Delaunay refinement leaves flat 'slivers').

For every element whose smallest dihedral angle is below ``target_deg``, each of its vertices
that may move is relocated to the best of a few candidate positions (towards the centre of
its star, and small random moves), if that raises the smallest dihedral angle over the
elements around it and keeps them all positively oriented. Geometry is never changed:

* a vertex inside one region moves freely;
* a vertex on exactly one planar interface or box face moves within that plane;
* a vertex on one straight edge of the model (where two or more interface planes meet along
  one line) slides along it;
* vertices at corners of the model stay fixed.

Topology is untouched, so conformity and region ids are preserved, and so is every region's
volume (interfaces do not move).
"""

from __future__ import annotations

import numpy as np

from magtwin.mesh.quality import dihedral_angles_deg
from magtwin.mesh.regularize import box_constraints
from magtwin.mesh.topology import unique_faces

_FACES = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
_OFACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])  # consistently oriented


def _interface_faces(tets: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Faces (F, 3), sorted vertex ids, on the mesh boundary or between two regions."""
    freg = np.repeat(region, 4)
    uniq, inv, cnt = unique_faces(tets[:, _FACES].reshape(-1, 3), int(tets.max()) + 1)
    rmin = np.full(len(uniq), np.iinfo(np.int64).max)
    rmax = np.full(len(uniq), np.iinfo(np.int64).min)
    np.minimum.at(rmin, inv, freg)
    np.maximum.at(rmax, inv, freg)
    return uniq[(cnt == 1) | (rmin != rmax)].astype(np.int64)


def same_plane_tol(bend_deg: float) -> float:
    """Largest ``1 - |n1·n2|`` of two unit normals that count as one plane (``bend_deg``)."""
    return max(1e-7, 1.0 - np.cos(np.radians(bend_deg)))


def vertex_freedom(points: np.ndarray, tets: np.ndarray, region: np.ndarray,
                   bend_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per vertex: ``dof`` (3 free, 2 in a plane, 1 along a straight edge, 0 fixed) and the
    plane normal (dof 2) or the edge direction (dof 1). Interface triangles whose normals
    differ by less than ``bend_deg`` count as one plane (the regularised facets are bent by
    up to a few tenths of a degree where vertices were merged)."""
    iface = _interface_faces(tets, region)
    n = np.cross(points[iface[:, 1]] - points[iface[:, 0]], points[iface[:, 2]] - points[iface[:, 0]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    same = same_plane_tol(bend_deg)
    off_edge = max(1e-7, np.sin(np.radians(bend_deg)))
    dof = np.full(len(points), 3, np.int8)
    axis = np.zeros((len(points), 3))
    # (vertex, normal) pairs grouped by vertex
    v = iface.ravel()
    nn = np.repeat(n, 3, axis=0)
    order = np.argsort(v, kind="stable")
    v, nn = v[order], nn[order]
    starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
    verts = v[starts]
    group = np.cumsum(np.r_[False, v[1:] != v[:-1]])
    n0 = nn[starts][group]
    distinct = np.abs(np.abs(np.einsum("ij,ij->i", nn, n0)) - 1.0) > same
    # first normal of each vertex that is not in the plane of its first one
    idx = np.where(distinct, np.arange(len(v)), len(v))
    first = np.full(len(verts), len(v))
    np.minimum.at(first, group, idx)
    planar = first == len(v)
    dof[verts[planar]] = 2
    axis[verts[planar]] = nn[starts[planar]]
    d = np.zeros((len(verts), 3))
    d[~planar] = np.cross(nn[starts[~planar]], nn[first[~planar]])
    d[~planar] /= np.linalg.norm(d[~planar], axis=1, keepdims=True)
    # on one straight edge: every interface plane at the vertex contains the edge direction
    dev = np.zeros(len(verts))
    np.maximum.at(dev, group, np.abs(np.einsum("ij,ij->i", nn, d[group])))
    line = ~planar & (dev < off_edge)
    dof[verts[line]] = 1
    axis[verts[line]] = d[line]
    dof[verts[~planar & ~line]] = 0
    return dof, axis


def constrain_moves(cands: np.ndarray, p0: np.ndarray, dof: int, axis: np.ndarray) -> np.ndarray:
    """Candidate positions (C, 3) of a vertex at ``p0`` projected onto its freedom (see
    :func:`vertex_freedom`): the plane through ``p0`` with normal ``axis`` (dof 2), the line
    through ``p0`` along ``axis`` (dof 1), or unchanged (dof 3)."""
    if dof == 2:
        return cands - np.outer((cands - p0) @ axis, axis)
    if dof == 1:
        return p0 + np.outer((cands - p0) @ axis, axis)
    return cands


def _cross(a, b):
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                     a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


def _volume6(q: np.ndarray) -> np.ndarray:
    """6 x signed volume of elements given by coordinates (n, 4, 3)."""
    return np.einsum("ij,ij->i", _cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]), q[:, 3] - q[:, 0])


def _min_dihedral(q: np.ndarray) -> np.ndarray:
    """Smallest dihedral angle (deg) of elements given by coordinates (n, 4, 3)."""
    normals = []
    for f in _OFACES:
        n = _cross(q[:, f[1]] - q[:, f[0]], q[:, f[2]] - q[:, f[0]])
        normals.append(n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300))
    # face normals of a consistently oriented element all point the same way (in or out)
    best = np.full(len(q), 180.0)
    for i in range(4):
        for j in range(i + 1, 4):
            c = np.clip(np.einsum("ij,ij->i", normals[i], normals[j]), -1.0, 1.0)
            best = np.minimum(best, 180.0 - np.degrees(np.arccos(c)))
    return best


def _radius_edge(q: np.ndarray) -> np.ndarray:
    """Circumradius / shortest edge of elements given by coordinates (n, 4, 3)."""
    a, b, c = q[:, 1] - q[:, 0], q[:, 2] - q[:, 0], q[:, 3] - q[:, 0]
    vol6 = np.einsum("ij,ij->i", a, _cross(b, c))
    num = (np.einsum("ij,ij->i", a, a)[:, None] * _cross(b, c) + np.einsum("ij,ij->i", b, b)[:, None] * _cross(c, a)
           + np.einsum("ij,ij->i", c, c)[:, None] * _cross(a, b))
    r = np.linalg.norm(num, axis=1) / np.maximum(2.0 * np.abs(vol6), 1e-300)
    e = np.linalg.norm(q[:, [0, 0, 0, 1, 1, 2]] - q[:, [1, 2, 3, 2, 3, 3]], axis=2).min(axis=1)
    return r / e


def remove_slivers(points: np.ndarray, tets: np.ndarray, region: np.ndarray, target_deg: float = 10.0,
                   passes: int = 3, seed: int = 0, ratio_bound: float = 2.0,
                   bend_deg: float = 0.0, max_shift_nm: float = 0.0,
                   max_region_change: float = 0.02, rigid: np.ndarray | None = None,
                   rigid_shift_nm: float = 0.0, relax: bool = False) -> tuple[np.ndarray, dict]:
    """Relocate vertices of poor elements; returns new points and a small report.

    A move is accepted only if it raises the smallest dihedral angle around the vertex,
    keeps every element positive and does not push the largest radius–edge ratio around
    the vertex above ``max(ratio_bound, its current value)``. With ``max_shift_nm`` > 0, a
    vertex that the rules above fix (a bent interface, a model corner) but that is not on the
    box may move as long as it stays within ``max_shift_nm`` of the planes of all its
    original interface triangles (no interface moves further) and the volume of no region
    changes, accumulated over such moves, by more than ``max_region_change``; vertices of
    ``rigid`` regions (a boolean per region id, e.g. the GB slabs, whose thickness is the
    model's) move off their planes by at most ``rigid_shift_nm`` (default 0: never).

    ``relax`` (the last resort of :func:`magtwin.mesh.improve.improve_mesh`): every vertex not
    on a box edge or corner may leave its interface planes and lines within those bounds (a
    vertex on a box face stays on it), tried with small random moves of at most half the
    bound. Slivers whose four vertices the geometry holds at junctions of several thin
    regions have no better exact position; a move of a few hundredths of a nm frees them."""
    rng = np.random.default_rng(seed)
    pts = np.array(points, float)
    dof, axis = vertex_freedom(pts, tets, region, bend_deg)
    if max_shift_nm > 0 or rigid_shift_nm > 0:
        iface = _interface_faces(tets, region)
        nrm = np.cross(pts[iface[:, 1]] - pts[iface[:, 0]], pts[iface[:, 2]] - pts[iface[:, 0]])
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        pv = iface.ravel()
        po = np.argsort(pv, kind="stable")
        pv, pn = pv[po], np.repeat(nrm, 3, axis=0)[po]
        pstart = np.searchsorted(pv, np.arange(len(pts) + 1))
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        on_box = box_constraints(pts, lo, hi, 1e-9 * float(np.max(hi - lo)))
        n_box = np.array([len(c) for c in on_box])
        origin = pts.copy()
        limit = np.full(len(pts), float(max_shift_nm))
        if rigid is not None:
            touches = np.zeros(len(pts), bool)
            touches[tets[np.asarray(rigid)[region]].ravel()] = True
            limit[touches] = float(rigid_shift_nm)
        budget = ((n_box <= 1) if relax else (dof == 0) & (n_box == 0)) & (limit > 0)
        nreg = int(region.max()) + 1
        rvol = np.bincount(region, np.abs(_volume6(pts[tets])) / 6.0, minlength=nreg)
        change = np.zeros(nreg)
    else:
        budget = np.zeros(len(pts), bool)
    order = np.argsort(tets.ravel(), kind="stable")
    counts = np.bincount(tets.ravel(), minlength=len(pts))
    start = np.zeros(len(pts) + 1, np.int64)
    start[1:] = np.cumsum(counts)
    elem_of = order // 4

    def star(v):
        return elem_of[start[v]:start[v + 1]]

    dmin0 = dihedral_angles_deg(pts, tets).min(axis=1)
    moved = 0
    for _ in range(passes):
        dmin = dihedral_angles_deg(pts, tets).min(axis=1)
        bad = np.flatnonzero(dmin < target_deg)
        if not len(bad):
            break
        verts = np.unique(tets[bad])
        verts = verts[(dof[verts] > 0) | budget[verts]]
        for v in verts:
            el = star(v)
            t = tets[el]
            q = pts[t]  # (m, 4, 3)
            centre = pts[np.unique(t)].mean(axis=0)
            h = np.min(np.linalg.norm(q[:, [0, 0, 0, 1, 1, 2]] - q[:, [1, 2, 3, 2, 3, 3]], axis=2))
            cands = np.vstack([pts[v], [pts[v] + f * (centre - pts[v]) for f in (1.0, 0.5, 0.25)],
                               pts[v] + rng.normal(scale=0.25 * h, size=(4, 3))])
            if budget[v]:  # stay within limit[v] of every original interface plane at v
                if relax:
                    cands = np.vstack([cands, pts[v] + rng.normal(scale=min(0.5 * limit[v], 0.25 * h), size=(32, 3))])
                    for c in on_box[v]:  # and on its box face
                        cands[:, c // 2] = pts[v, c // 2]
                off = np.abs((cands - origin[v]) @ pn[pstart[v]:pstart[v + 1]].T).max(axis=1, initial=0.0)
                cands = cands[off <= limit[v]]
            elif dof[v] in (1, 2):  # stay in the interface plane or slide along the edge
                cands = constrain_moves(cands, pts[v], int(dof[v]), axis[v])
            # all candidates at once: (C, m, 4, 3) with vertex v replaced
            qq = np.broadcast_to(q, (len(cands),) + q.shape).copy()
            mask = t == v
            qq[:, mask] = cands[:, None, :]
            flat = qq.reshape(-1, 4, 3)
            score = _min_dihedral(flat).reshape(len(cands), -1)
            vol = _volume6(flat).reshape(len(cands), -1)
            # never trade the radius-edge bound for dihedral angles
            rer = _radius_edge(flat).reshape(len(cands), -1).max(axis=1)
            ok = (vol.min(axis=1) > 0) & (rer <= max(ratio_bound, rer[0]) + 1e-12)
            if budget[v]:  # and no region's volume changes by more than max_region_change
                dv = (vol - vol[0]) / 6.0
                rr = region[el]
                for c in range(len(cands)):
                    acc = change.copy()
                    np.add.at(acc, rr, dv[c])
                    ok[c] &= bool(np.all(np.abs(acc[rr]) <= max_region_change * rvol[rr] + 1e-12))
            score = np.where(ok, score.min(axis=1), -1.0)
            k = int(np.argmax(score))
            if k > 0 and score[k] > score[0] + 1e-9:
                if budget[v]:
                    np.add.at(change, region[el], (vol[k] - vol[0]) / 6.0)
                pts[v] = cands[k]
                moved += 1
    dmin1 = dihedral_angles_deg(pts, tets).min(axis=1)
    return pts, {"moved_vertices": moved, "min_dihedral_before_deg": float(dmin0.min()),
                 "min_dihedral_after_deg": float(dmin1.min()),
                 "below_5deg_before": int(np.sum(dmin0 < 5)), "below_5deg_after": int(np.sum(dmin1 < 5))}
