"""Remove features below a tolerance from the polygonal PLC before it is triangulated.

The exact model is a valid PLC, but a Laguerre tessellation has arbitrarily short edges and
the GB/TJ offset planes multiply them: where two offset lines cross a facet plane at a small
angle they cut strips 0.01 nm wide and 8 nm long, and a 60-grain model has about a thousand
PLC edges shorter than 0.1 nm next to 1 nm elements. No tetrahedron next to such a feature
can be well shaped, TetGen's refinement aborts near them (``locate_point_walk``), and the
vertices of the crossings, computed in floating point, make the facets of opposite quadrants
overlap by ~1e-7 nm (a self-intersection for exact predicates).

This is the *regularisation* of Quey, Dawson & Barbe, "Large-scale 3D random polycrystals for
the finite element method: generation, meshing and remeshing", Comput. Methods Appl. Mech.
Engrg. 200 (2011) 1729–1745: features below the tolerance are deleted on the polygons, which
then become (slightly) non-planar, before any triangle exists. Here, for a tolerance ``tol``:

1. **short edges**: the vertices of PLC edges shorter than ``tol`` are merged into one of
   them (it keeps its position, so the box stays exact: it must lie on every box plane the
   others lie on), as long as no vertex moves by more than ``tol``;
2. **T-junctions**: a vertex within ``tol`` of an edge it is not on is inserted into that edge
   in every facet using the edge (a strip thinner than ``tol`` folds flat and disappears, its
   neighbours now meet along its long sides); no vertex moves;
3. facets reduced to fewer than three corners vanish; two facets that come to coincide (both
   sides of a collapsed thin piece) become one facet between the regions outside them, or
   none if those are the same region.

No vertex moves by more than ``tol``, so a GB slab keeps its thickness to ``2 tol``, and a box
edge or corner (which cannot move) pulls a facet given a smaller ``plane_tol`` (the faces of
GB slabs) by at most that. The
tolerance may differ per vertex: :func:`regular_surface` lowers it where a first attempt made
facets intersect (a thin wedge folded through its neighbour). Lengths in nm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from magtwin.model.polyhedra import polygon_area, vector_area


@dataclass
class RegularPLC:
    """Facets as vertex loops into ``points`` (N, 3) nm, with the region behind (``back``)
    and in front of (``front``) each facet (0 = outside the box) and its element size."""

    points: np.ndarray
    loops: list
    back: np.ndarray
    front: np.ndarray
    size_nm: np.ndarray


def box_constraints(points: np.ndarray, lo, hi, eps: float) -> list[frozenset]:
    """Per point, the box planes (0..5: -x, +x, -y, +y, -z, +z) it lies on within ``eps``."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    on = np.column_stack([np.abs(points[:, a] - (lo[a] if s == 0 else hi[a])) <= eps
                          for a in range(3) for s in (0, 1)])
    return [frozenset(np.flatnonzero(r).tolist()) for r in on]


def _edges(loops) -> dict:
    out = {}
    for k, lp in enumerate(loops):
        for a, b in zip(lp, lp[1:] + lp[:1]):
            out.setdefault((a, b) if a < b else (b, a), []).append(k)
    return out


def _facet_planes(points, loops) -> tuple[np.ndarray, np.ndarray]:
    """Unit normal (F, 3) and offset (F,) of every facet's best-fit plane."""
    n = np.zeros((len(loops), 3))
    c = np.zeros(len(loops))
    for k, lp in enumerate(loops):
        q = points[lp]
        nn = vector_area(q)
        ln = np.linalg.norm(nn)
        if ln > 0:
            n[k] = nn / ln
            c[k] = float(q.mean(axis=0) @ n[k])
    return n, c


def _merge_short_edges(points, loops, cons, vtol, normals, offsets,
                       plane_tol=None) -> tuple[np.ndarray, np.ndarray, int]:
    """Merge the vertices of edges shorter than ``tol``; returns the new points, the
    representative of every vertex and the number of merges.

    A merged cluster goes to the point closest (least squares) to the planes of all the
    facets around it (Garland & Heckbert's quadric error placement), so those facets stay as
    planar as the geometry allows and small facets next to it do not fold over; box planes
    are kept exactly, and no vertex moves by more than ``tol`` (else the cluster stays at the
    vertex lying on the most box planes). With ``plane_tol`` (F,) nm, a cluster held by a box
    edge or corner is not merged if a facet's vertex would end up further than that from the
    facet's plane."""
    n = len(points)
    rep = np.arange(n)
    members = {i: [i] for i in range(n)}
    edges = _edges(loops)
    short = []
    for a, b in edges:
        ln = float(np.linalg.norm(points[a] - points[b]))
        if ln < min(vtol[a], vtol[b]):
            short.append((ln, a, b))
    merged = 0
    for _, a, b in sorted(short):
        ra, rb = rep[a], rep[b]
        tol = min(vtol[a], vtol[b])
        if ra == rb:
            continue
        keep = ra if len(cons[ra]) >= len(cons[rb]) else rb
        group = members[ra] + members[rb]
        if not all(cons[m] <= cons[keep] for m in group):
            continue  # would pull a vertex off a box face, edge or corner
        if max(float(np.linalg.norm(points[m] - points[keep])) for m in group) > tol:
            continue
        gone = rb if keep == ra else ra
        for m in members.pop(gone):
            rep[m] = keep
        members[keep] = group
        merged += 1
    vfacets: dict[int, set] = {}
    for k, lp in enumerate(loops):
        for v in lp:
            vfacets.setdefault(v, set()).add(k)
    out = points.copy()
    for keep, group in members.items():
        if len(group) < 2:
            continue
        fs = sorted(set().union(*(vfacets.get(m, set()) for m in group)))
        x0 = points[group].mean(axis=0)
        free = [ax for ax in range(3) if not any(2 * ax + s in cons[keep] for s in (0, 1))]
        x = points[keep].copy()
        if free and fs:
            nf = normals[fs][:, free]
            r = offsets[fs] - normals[fs] @ np.where(np.isin(np.arange(3), free), 0.0, x)
            # a little pull towards the cluster's centre fixes directions no plane constrains
            lam = 1e-3
            A = nf.T @ nf + lam * np.eye(len(free))
            x[free] = np.linalg.solve(A, nf.T @ r + lam * x0[free])
        pinned = len(cons[keep]) >= 2
        if max(float(np.linalg.norm(points[m] - x)) for m in group) > min(vtol[m] for m in group):
            x = points[keep]
        # a cluster held by a box edge or corner cannot share the move between its facets:
        # the others take all of it (a GB face ending near a box corner would tilt)
        if pinned and plane_tol is not None and fs and np.any(np.abs(normals[fs] @ x - offsets[fs]) > plane_tol[fs]):
            for m in group:  # it would bend a facet that must stay planar (a GB slab face)
                rep[m] = m
            merged -= len(group) - 1
            continue
        out[keep] = x
    return out, rep, merged


def _clean(loop: list) -> list:
    """Drop repeated consecutive vertices and back-and-forth spikes ``x, y, x``."""
    lp = list(loop)
    changed = True
    while changed and len(lp) >= 3:
        changed = False
        out = [v for k, v in enumerate(lp) if v != lp[k - 1]]
        if len(out) != len(lp):
            changed = True
        lp = out
        m = len(lp)
        for k in range(m):
            if m >= 3 and lp[k - 1] == lp[(k + 1) % m]:
                # x, y, x: the spike y goes, and one of the two x
                drop = {k, (k + 1) % m}
                lp = [v for i, v in enumerate(lp) if i not in drop]
                changed = True
                break
    return lp if len(lp) >= 3 else []


def _split_pinches(loop: list) -> list[list]:
    """A loop that visits a vertex twice (a pinch) as simple loops."""
    out, todo = [], [loop]
    while todo:
        lp = todo.pop()
        seen = {}
        for k, v in enumerate(lp):
            if v in seen:
                i = seen[v]
                todo.append(lp[i:k])
                todo.append(lp[:i] + lp[k:])
                break
            seen[v] = k
        else:
            if len(lp) >= 3:
                out.append(lp)
    return out


def _insert_t_junctions(points, loops, cons, vtol, normals=None, offsets=None,
                        plane_tol=None) -> tuple[list, int]:
    """Insert every vertex lying within ``tol`` of an edge (not its own) into that edge, unless
    (with ``plane_tol`` (F,) nm) it is on a box edge or corner and lies further than that
    from the plane of a facet using the edge."""
    edges = _edges(loops)
    used = np.unique(np.concatenate([np.asarray(lp) for lp in loops if lp]))
    tree = cKDTree(points[used])
    keys = list(edges)
    ea = np.array([k[0] for k in keys])
    eb = np.array([k[1] for k in keys])
    pa, pb = points[ea], points[eb]
    half = 0.5 * np.linalg.norm(pb - pa, axis=1)
    cands = tree.query_ball_point(0.5 * (pa + pb), half + float(vtol.max()))
    inserts = {}
    for e, cand in enumerate(cands):
        a, b = int(ea[e]), int(eb[e])
        if not cand:
            continue
        seg = pb[e] - pa[e]
        ln2 = float(seg @ seg)
        on_ab = cons[a] & cons[b]
        found = []
        for c in cand:
            v = int(used[c])
            tol = min(vtol[a], vtol[b], vtol[v])
            if v == a or v == b or not on_ab <= cons[v]:
                continue
            q = points[v] - pa[e]
            t = float(q @ seg) / ln2
            d = float(np.linalg.norm(q - t * seg))
            # strictly inside and farther than tol from the ends (else it is a short edge)
            if d <= tol and t * np.sqrt(ln2) > tol and (1 - t) * np.sqrt(ln2) > tol:
                fs = edges[keys[e]]
                if plane_tol is not None and len(cons[v]) >= 2 and \
                        np.any(np.abs(normals[fs] @ points[v] - offsets[fs]) > plane_tol[fs]):
                    continue  # a box vertex would bend the facet
                found.append((t, v))
        if found:
            inserts[(a, b)] = [v for _, v in sorted(found)]
    if not inserts:
        return loops, 0
    out = []
    for lp in loops:
        new = []
        for a, b in zip(lp, lp[1:] + lp[:1]):
            new.append(a)
            if (a, b) in inserts:
                new.extend(inserts[(a, b)])
            elif (b, a) in inserts:
                new.extend(inserts[(b, a)][::-1])
        out.append(new)
    return out, sum(len(v) for v in inserts.values())


def regularize(points: np.ndarray, loops: list, back, front, size_nm, lo, hi, tol,
               eps: float = 1e-9, passes: int = 3, plane_tol=None) -> tuple[RegularPLC, dict]:
    """Delete features below ``tol`` (see module docstring).

    Parameters
    ----------
    points : (N, 3) nm; loops : per facet its vertex indices in order (conforming: facets meet
    only in shared edges and vertices); back, front : (F,) region on either side (0 outside);
    size_nm : (F,) element size; lo, hi : box corners (3,) nm; tol : nm, one value or one per
    point; eps : box-plane tolerance (nm); plane_tol : (F,) nm, the furthest a box edge or
    corner may pull a vertex of each facet off the facet's plane (a merge or T-junction that
    would bend it more is not made), default ``tol``.
    """
    points = np.asarray(points, float)
    cons = box_constraints(points, lo, hi, eps)
    loops = [list(map(int, lp)) for lp in loops]
    vtol = np.broadcast_to(np.asarray(tol, float), (len(points),)).copy()
    report = {"merged_vertices": 0, "t_junctions": 0, "dropped_facets": 0, "merged_facets": 0}
    ptol = None if plane_tol is None else np.asarray(plane_tol, float)
    if vtol.max() > 0:
        normals, offsets = _facet_planes(points, loops)
        for _ in range(passes):
            points, rep, merged = _merge_short_edges(points, loops, cons, vtol, normals, offsets, ptol)
            loops = [_clean([int(rep[v]) for v in lp]) for lp in loops]
            loops, inserted = _insert_t_junctions(points, loops, cons, vtol, normals, offsets, ptol)
            loops = [_clean(lp) for lp in loops]
            report["merged_vertices"] += merged
            report["t_junctions"] += inserted
            if not merged and not inserted:
                break
    back, front, size_nm = np.asarray(back), np.asarray(front), np.asarray(size_nm, float)
    # coincident facets (a thin piece collapsed): one facet between the outer regions
    by_key: dict = {}
    out_loops, out_b, out_f, out_s = [], [], [], []
    for k, lp in enumerate(loops):
        for sub in _split_pinches(lp) if lp else []:
            q = points[sub]
            if 2 * polygon_area(q) <= 1e-12 * np.sum(np.linalg.norm(q - np.roll(q, -1, axis=0), axis=1)) ** 2:
                continue  # folded flat: its edges are shared by the facets around it
            key = frozenset(sub)
            if key in by_key:
                j = by_key.pop(key)
                rb, rf = out_b[j], out_f[j]
                regions = [rb, rf, int(back[k]), int(front[k])]
                shared = {rb, rf} & {int(back[k]), int(front[k])}
                outer = [r for r in regions if r not in shared] if shared else regions[:2]
                report["merged_facets"] += 1
                if len(outer) == 2 and outer[0] != outer[1]:
                    out_b[j], out_f[j] = outer
                    out_s[j] = min(out_s[j], float(size_nm[k]))
                    by_key[key] = j
                else:
                    out_loops[j] = None
                continue
            by_key[key] = len(out_loops)
            out_loops.append(sub)
            out_b.append(int(back[k]))
            out_f.append(int(front[k]))
            out_s.append(float(size_nm[k]))
    keep = [j for j, lp in enumerate(out_loops) if lp is not None and out_b[j] != out_f[j]]
    report["dropped_facets"] = len(loops) - len(keep)
    reg = RegularPLC(points, [out_loops[j] for j in keep], np.array([out_b[j] for j in keep], np.int64),
                     np.array([out_f[j] for j in keep], np.int64), np.array([out_s[j] for j in keep]))
    lengths = [np.linalg.norm(points[a] - points[b]) for a, b in _edges(reg.loops)]
    report["shortest_edge_nm"] = float(min(lengths)) if lengths else None
    return reg, report


def self_intersections(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Pairs (K, 2) of triangles that intersect other than in a shared edge or vertex (exact
    predicates on the float coordinates, libigl)."""
    import igl.predicates

    _, pairs, _ = igl.predicates.find_self_intersections(np.ascontiguousarray(points, np.float64),
                                                         np.ascontiguousarray(triangles, np.int64))
    return np.asarray(pairs, np.int64).reshape(-1, 2)


def regular_surface(points, loops, back, front, size_nm, lo, hi, tol: float, eps: float = 1e-9,
                    rounds: int = 8, plane_tol=None):
    """Regularise at ``tol`` and triangulate; wherever facets then intersect (or fold), redo
    with the tolerance of their vertices divided by 4, twice, then 0 (the exact geometry
    there), at most ``rounds`` times. ``plane_tol``: see :func:`regularize`.

    Returns ``(points (N, 3), triangles (T, 3), report)``; the report
    has the regularisation counts, ``rounds``, ``vertices_at_reduced_tol`` and
    ``remaining_intersections`` (0 unless even the exact local geometry intersects).
    """
    from magtwin.mesh.plc import triangulate

    vtol = np.full(len(points), float(tol))
    cache: dict = {}
    for rnd in range(rounds):
        reg, report = regularize(points, loops, back, front, size_nm, lo, hi, vtol, eps, plane_tol=plane_tol)
        pts, tris, owner, folded = triangulate(reg.points, reg.loops, reg.size_nm, cache)
        bad = self_intersections(pts, tris)
        if not len(bad) and not folded:
            break
        # a quarter of the tolerance twice, then the exact geometry there
        factor = 0.25 if rnd < 2 else 0.0
        for f in set(owner[bad.ravel()].tolist()) | set(folded):
            for v in reg.loops[f]:
                vtol[v] *= factor
    used, inv = np.unique(tris, return_inverse=True)
    report.update(rounds=rnd + 1, vertices_at_reduced_tol=int(np.sum(vtol < float(tol))),
                  remaining_intersections=int(len(bad)), folded_facets=len(folded))
    return pts[used], inv.reshape(-1, 3), report
