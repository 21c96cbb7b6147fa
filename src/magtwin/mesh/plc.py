"""Piecewise-linear complex (PLC) of the multi-region model, conforming node for node.

The model is a set of convex pieces (each tagged with a region id) that tile the sample box.
Two pieces touching across a plane generally have *different* faces on it (each side is cut
by its own offset planes), so the faces are first overlaid: every facet of the PLC is the
intersection of one face from each side, hence shared by exactly two pieces (or one piece
and the outside). Facets with the same region on both sides are dropped (they are interior
to a region). Every facet vertex that lies on another facet's edge is then inserted into that
edge, so facets meet only in shared edges and vertices, which is what TetGen needs.

Lengths in nm; points ``(x, y, z)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from magtwin.model.polyhedra import PlaneSet, cross, polygon_area, vector_area  # noqa: F401


@dataclass
class Facet:
    """Planar convex polygon between pieces ``a`` and ``b`` (``b = -1``: the box surface)."""

    plane: int
    a: int
    b: int
    loop: np.ndarray  # (k, 3)

    @property
    def area(self) -> float:
        return polygon_area(self.loop)


def _plane_basis(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([1.0, 0, 0]) if abs(n[0]) < 0.9 else np.array([0, 1.0, 0])
    u = cross(n, t)
    u /= np.linalg.norm(u)
    return u, cross(n, u)


def _ccw(p2: np.ndarray) -> np.ndarray:
    area2 = np.sum(p2[:, 0] * np.roll(p2[:, 1], -1) - np.roll(p2[:, 0], -1) * p2[:, 1])
    return p2 if area2 >= 0 else p2[::-1]


def _clip_convex_2d(subject: np.ndarray, clipper: np.ndarray, eps: float) -> np.ndarray | None:
    """Sutherland–Hodgman intersection of two convex CCW polygons (k, 2)."""
    out = subject
    m = len(clipper)
    for e in range(m):
        if len(out) == 0:
            return None
        a, b = clipper[e], clipper[(e + 1) % m]
        edge = b - a
        ln = np.hypot(*edge)
        # signed distance, > 0 on the inner (left) side
        d = (edge[0] * (out[:, 1] - a[1]) - edge[1] * (out[:, 0] - a[0])) / ln
        res = []
        k = len(out)
        for i in range(k):
            j = (i + 1) % k
            if d[i] >= -eps:
                res.append(out[i])
            if (d[i] > eps and d[j] < -eps) or (d[i] < -eps and d[j] > eps):
                res.append(out[i] + (out[j] - out[i]) * (d[i] / (d[i] - d[j])))
        out = np.array(res) if res else np.zeros((0, 2))
    if len(out) < 3:
        return None
    return out


def overlay_facets(pieces_faces: list[list], planes: PlaneSet) -> list[Facet]:
    """Facets of the PLC from the faces of all pieces.

    Parameters
    ----------
    pieces_faces : per piece, its list of :class:`magtwin.model.polyhedra.Face`
    planes : the plane registry (for normals and tolerance)
    """
    eps = planes.eps
    by_plane: dict[int, list[tuple[int, int, np.ndarray]]] = {}
    for k, faces in enumerate(pieces_faces):
        for f in faces:
            by_plane.setdefault(f.plane, []).append((k, f.side, f.loop))
    facets: list[Facet] = []
    for pid, faces in by_plane.items():
        neg = [f for f in faces if f[1] < 0]
        pos = [f for f in faces if f[1] > 0]
        if not neg or not pos:
            facets.extend(Facet(pid, k, -1, loop) for k, _, loop in faces)
            continue
        n = planes.n(pid)
        u, w = _plane_basis(n)
        o = planes.c(pid) * n

        def to2(loop):
            return _ccw(np.column_stack([(loop - o) @ u, (loop - o) @ w]))

        pos2 = [(k, to2(loop)) for k, _, loop in pos]
        pos_box = np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for _, p in pos2])
        for ka, _, loop in neg:
            pa = to2(loop)
            lo, hi = pa.min(axis=0), pa.max(axis=0)
            cand = np.flatnonzero(
                (pos_box[:, 0] <= hi[0] + eps) & (pos_box[:, 2] >= lo[0] - eps)
                & (pos_box[:, 1] <= hi[1] + eps) & (pos_box[:, 3] >= lo[1] - eps))
            for c in cand:
                kb, pb = pos2[c]
                q = _clip_convex_2d(pa, pb, eps)
                if q is None:
                    continue
                loop3 = o + np.outer(q[:, 0], u) + np.outer(q[:, 1], w)
                if polygon_area(loop3) > 100 * eps * eps:
                    facets.append(Facet(pid, ka, kb, loop3))
    return facets


@dataclass
class PLC:
    """Conforming polygonal PLC: ``points`` (N, 3) nm; ``loops[k]`` the vertex indices of
    facet ``facets[k]`` in order, including every vertex inserted on its edges."""

    points: np.ndarray
    loops: list
    facets: list


def _merge_points(points: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge points closer than ``tol``; returns (unique points, index of each input)."""
    tree = cKDTree(points)
    pairs = tree.query_pairs(tol, output_type="ndarray")
    parent = np.arange(len(points))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(len(points))])
    uniq, inv = np.unique(roots, return_inverse=True)
    return points[uniq], inv


def build_plc(facets: list[Facet], merge_tol: float) -> PLC:
    """Conforming polygon set from ``facets``: vertices closer than ``merge_tol`` (nm) are
    merged, and every vertex lying on another facet's edge (within ``merge_tol``) is inserted
    into that edge, so facets meet only in shared edges and vertices."""
    allpts = np.vstack([f.loop for f in facets])
    pts, inv = _merge_points(allpts, merge_tol)
    loops, off = [], 0
    for f in facets:
        idx = inv[off:off + len(f.loop)]
        off += len(f.loop)
        keep = [int(i) for k, i in enumerate(idx) if i != idx[k - 1]] if len(idx) else []
        if len(set(keep)) != len(keep) or (len(keep) >= 3 and polygon_area(pts[keep]) <= merge_tol * np.sum(
                np.linalg.norm(pts[keep] - pts[np.roll(keep, -1)], axis=1))):
            keep = []  # folded or thinner than the merge tolerance: collapsed away
        loops.append(keep)
    tree = cKDTree(pts)
    # all edges at once: candidate vertices near each edge, then the on-segment test
    nonempty = [lp for lp in loops if lp]
    ea = np.concatenate([np.asarray(lp) for lp in nonempty])
    eb = np.concatenate([np.roll(np.asarray(lp), -1) for lp in nonempty])
    pa_all, pb_all = pts[ea], pts[eb]
    half = 0.5 * np.linalg.norm(pb_all - pa_all, axis=1)
    cands = tree.query_ball_point(0.5 * (pa_all + pb_all), half + merge_tol)
    extra: list[list[int]] = []
    for e, cand in enumerate(cands):
        cand = [c for c in cand if c != ea[e] and c != eb[e]]
        if not cand:
            extra.append([])
            continue
        pa, seg = pa_all[e], pb_all[e] - pa_all[e]
        q = pts[cand] - pa
        t = q @ seg / (seg @ seg)
        dist = np.linalg.norm(q - np.outer(t, seg), axis=1)
        ok = (t > 0) & (t < 1) & (dist <= merge_tol)
        extra.append([cand[i] for i in np.argsort(t) if ok[i]])
    out_loops, kept = [], []
    e0 = 0
    for fi, loop in enumerate(loops):
        k = len(loop)
        e0 += k
        if len(set(loop)) < 3:
            continue
        full = []
        for e in range(k):
            full.append(loop[e])
            full.extend(extra[e0 - k + e])
        out_loops.append(full)
        kept.append(facets[fi])
    return PLC(pts, out_loops, kept)


def triangulate(points: np.ndarray, loops: list, facet_size_nm: np.ndarray,
                cache: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Quality triangulation of every facet with triangles of edge about ``facet_size_nm[k]``.

    Each PLC edge is split into equal parts no longer than the smallest size of the facets
    sharing it (so both sides match node for node); each facet (a simple polygon, planar or
    within the regularisation tolerance of its best-fit plane) is then meshed in that plane
    by Shewchuk's Triangle (the ``triangle`` package): constrained Delaunay refinement with
    a minimum angle of 28° and the area of an equilateral triangle of the facet's size, no
    point added on the boundary (``Y``), interior points placed on the best-fit plane.
    Returns ``(points (N, 3), triangles (T, 3), facet index (T,), bad facets)``: a facet
    whose projected boundary is not a simple polygon (folded by regularisation) is listed in
    ``bad`` and triangulated as well as Triangle can, leaving open edges. ``cache`` (a dict
    kept by the caller) reuses the triangulation of facets whose boundary points are
    unchanged since an earlier call.
    """
    points = np.asarray(points, float)
    pts = [p for p in points]
    seg_size: dict[tuple[int, int], float] = {}
    for loop, h in zip(loops, facet_size_nm):
        for a, b in zip(loop, loop[1:] + loop[:1]):
            key = (a, b) if a < b else (b, a)
            seg_size[key] = min(seg_size.get(key, np.inf), float(h))
    seg_points: dict[tuple[int, int], list[int]] = {}
    for (a, b), h in seg_size.items():
        pa, pb = points[a], points[b]
        n = int(np.ceil(np.linalg.norm(pb - pa) / h - 1e-9))
        seg_points[(a, b)] = list(range(len(pts), len(pts) + max(n - 1, 0)))
        pts.extend(pa + (pb - pa) * (q / n) for q in range(1, n))
    tris, owner, bad = [], [], []
    for k, (loop, h) in enumerate(zip(loops, facet_size_nm)):
        bnd = []
        for a, b in zip(loop, loop[1:] + loop[:1]):
            bnd.append(a)
            mid = seg_points[(a, b) if a < b else (b, a)]
            bnd.extend(mid if a < b else mid[::-1])
        loop3 = np.array([pts[i] for i in bnd])
        key = (float(h), loop3.tobytes())
        if cache is not None and key in cache:
            inner, tt, is_bad = cache[key]
        else:
            inner, tt, is_bad = _triangulate_facet(loop3, float(h))
            if cache is not None:
                cache[key] = (inner, tt, is_bad)
        if is_bad:
            bad.append(k)
        ids = list(bnd) + list(range(len(pts), len(pts) + len(inner)))
        pts.extend(inner)
        tris.extend([ids[a], ids[b], ids[c]] for a, b, c in tt)
        owner.extend([k] * len(tt))
    return np.asarray(pts), np.asarray(tris, np.int64).reshape(-1, 3), np.asarray(owner, np.int64), bad


def _triangulate_facet(loop3: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """Triangle's mesh of one facet with boundary ``loop3`` (m, 3): its interior points
    (k, 3), triangles (local indices, boundary first) and whether the boundary was lost."""
    import triangle

    nn = vector_area(loop3)  # the best-fit plane of a (slightly non-planar) polygon
    nn /= np.linalg.norm(nn)
    u, w = _plane_basis(nn)
    o = float(loop3.mean(axis=0) @ nn) * nn
    p2 = np.column_stack([loop3 @ u, loop3 @ w])
    m = len(loop3)
    area = h ** 2 * np.sqrt(3.0) / 4.0
    res = triangle.triangulate({"vertices": p2, "segments": np.column_stack([np.arange(m), (np.arange(m) + 1) % m])},
                               f"pq28a{area:.6g}YQ")
    tv, tt = res["vertices"], res.get("triangles", np.zeros((0, 3), int))
    kept = {(min(a, b), max(a, b)) for t in tt for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
    bad = len(tv) < m or any((min(q, (q + 1) % m), max(q, (q + 1) % m)) not in kept for q in range(m))
    if bad:
        tv, tt = tv[:m], (tt[np.all(tt < m, axis=1)] if len(tv) >= m else np.zeros((0, 3), int))
    inner = o + tv[m:, :1] * u + tv[m:, 1:2] * w
    return inner.reshape(-1, 3), np.asarray(tt, np.int64).reshape(-1, 3), bool(bad)


def open_edges(triangles: np.ndarray) -> int:
    """Number of edges used by only one triangle (0 for a closed PLC)."""
    e = np.sort(np.vstack([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    _, c = np.unique(e, axis=0, return_counts=True)
    return int(np.sum(c == 1))
