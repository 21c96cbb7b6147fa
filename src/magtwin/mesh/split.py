"""Edge splits with relocation of the new vertex, for poor elements that flips and smoothing
leave (Klingner & Shewchuk, "Aggressive tetrahedral mesh improvement", Proc. 16th
International Meshing Roundtable (2007) 3–23, vertex insertion).

The elements left below the target after edge collapses, flips and vertex relocation sit
where every vertex is held by the geometry: on the lines and corners where several thin GB
and TJ pieces meet, so nothing can move. Splitting one of the element's edges at its midpoint
``m`` (every element around the edge, in every region, becomes two) adds a vertex with more
freedom than the edge's ends:

* an edge inside one region: ``m`` moves freely;
* an edge in one (planar) interface or box face: ``m`` moves in that plane;
* an edge on a line where interfaces meet: ``m`` slides along the edge.

``m`` is then placed by a pattern search that maximises the smallest dihedral angle of its
elements (up to 5° above the target; beyond it, the smaller largest radius–edge ratio wins).
The split is kept only if that angle exceeds the smallest angle of the elements it replaces
and every new element is positively oriented. Unlike flips and relocation, a split may raise
the radius–edge ratio: it shortens edges next to geometry that already holds every vertex,
and it is the small dihedral angle, not the radius–edge ratio, that spoils the stiffness
matrix's conditioning (Shewchuk, "What is a good linear finite element?", 11th International
Meshing Roundtable (2002) 115–126). The midpoint lies on the edge, so the discretised
geometry — interfaces, region volumes, the box — is unchanged by the split, and the moves
keep ``m`` on its edge, plane or region (within ``bend_deg`` for planes, as in
:func:`magtwin.mesh.optimize.vertex_freedom`). Vertices of GB slabs stay in their planes, so
their thickness is untouched.

One sliver no split repairs: two lines of the model that pass each other at a few
thousandths of a nanometre (left by the regularisation where several TJ pieces meet), each
the sliver's edge. Both edges are split at one point where they pass, which removes the
sliver and joins the lines (each moves by at most ``max_shift_nm``, the bound of the edge
collapse; a line of a GB slab does not move).
"""

from __future__ import annotations

import numpy as np

from magtwin.mesh.optimize import _min_dihedral, _radius_edge, _volume6, constrain_moves, same_plane_tol
from magtwin.mesh.topology import MutableTets

_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def _edge_constraint(mesh: MutableTets, a: int, b: int, ring: np.ndarray,
                     bend_deg: float) -> tuple[int, np.ndarray]:
    """(dof, axis) of a point on edge ``a``–``b``: 3 (free), 2 (plane normal) or 1 (edge
    direction), from the interface and boundary triangles around the edge. ``ring``: the
    elements holding the edge."""
    pts = mesh.points
    faces: dict[int, list] = {}
    for e in ring:
        for x in mesh.tets[e]:
            if x != a and x != b:
                faces.setdefault(int(x), []).append(int(mesh.region[e]))
    iface = [x for x, regs in faces.items() if len(regs) == 1 or regs[0] != regs[1]]
    if not iface:
        return 3, np.zeros(3)
    u = pts[b] - pts[a]
    n = np.cross(u, pts[iface] - pts[a])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    if np.all(np.abs(np.abs(n @ n[0]) - 1.0) <= same_plane_tol(bend_deg)):
        return 2, n[0]
    return 1, u / np.linalg.norm(u)


def _try_split(mesh: MutableTets, a: int, b: int, target_deg: float, bend_deg: float, rng,
               steps: int = 12):
    """Best placement of the midpoint of edge ``a``–``b``: (smallest dihedral angle of the new
    elements (deg), their largest radius–edge ratio, the elements replaced, the new elements
    (2K, 4) with -1 for the new vertex, its position (3,)) or None if no placement raises the
    smallest angle. Placements are ranked by their smallest angle up to ``target_deg`` + 5°,
    then by the smaller largest radius–edge ratio."""
    pts = mesh.points
    ring = mesh.common(a, b)
    old = mesh.tets[ring]
    old_min = float(_min_dihedral(pts[old]).min())
    dof, axis = _edge_constraint(mesh, a, b, ring, bend_deg)
    new = np.vstack([np.where(old == a, -1, old), np.where(old == b, -1, old)])
    slot = new < 0
    q = pts[np.where(slot, a, new)]
    p0 = 0.5 * (pts[a] + pts[b])
    cap = target_deg + 5.0

    def evaluate(cands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        qq = np.broadcast_to(q, (len(cands),) + q.shape).copy()
        qq[:, slot] = cands[:, None, :]
        flat = qq.reshape(-1, 4, 3)
        dmin = _min_dihedral(flat).reshape(len(cands), -1).min(axis=1)
        ok = _volume6(flat).reshape(len(cands), -1).min(axis=1) > 0
        return np.where(ok, dmin, -1.0), _radius_edge(flat).reshape(len(cands), -1).max(axis=1)

    def rank(dm: np.ndarray, rr: np.ndarray) -> int:
        """Index of the best candidate: largest capped angle, then smallest ratio."""
        return int(np.lexsort((rr, -np.round(np.minimum(dm, cap), 9)))[0])

    centre = constrain_moves(pts[np.unique(new[~slot])].mean(axis=0)[None], p0, dof, axis)[0]
    cands = np.vstack([p0, centre, 0.5 * (centre + p0)])
    dm, rr = evaluate(cands)
    k = rank(dm, rr)
    best_p, best_d, best_r = cands[k], dm[k], rr[k]
    step = 0.25 * float(np.linalg.norm(pts[b] - pts[a]))
    for _ in range(steps):
        cands = constrain_moves(best_p + rng.normal(scale=step, size=(8, 3)), p0, dof, axis)
        dm, rr = evaluate(np.vstack([best_p, cands]))
        k = rank(dm, rr)
        if k == 0:
            step *= 0.5
        else:
            best_p, best_d, best_r = cands[k - 1], dm[k], rr[k]
    if best_d <= old_min + 1e-9:
        return None
    return float(best_d), float(best_r), ring, new, best_p


def _join_crossing_edges(mesh: MutableTets, e: int, max_shift_nm: float, rigid: np.ndarray | None,
                         region_volume: np.ndarray, max_region_change: float = 0.02):
    """A sliver ``e`` whose two opposite edges ``ab`` and ``cd`` pass within ``max_shift_nm``
    of each other (two lines of the model that almost meet): both edges are split at one
    point ``m`` near where they pass, so ``e`` vanishes and the lines meet at ``m``.
    ``m`` lies exactly on an edge that bounds a ``rigid`` region (a GB slab keeps its
    thickness); otherwise midway. No region's volume (``region_volume``, nm^3 per region id)
    may change by more than ``max_region_change``. Returns (gain, old elements, new elements (K, 4) with -1
    for ``m``, their regions, ``m``) or None."""
    pts, t = mesh.points, mesh.tets[e]
    best = None
    for (i, j), (k, l) in (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))):
        a, b, c, d = (int(t[x]) for x in (i, j, k, l))
        u, v, w = pts[b] - pts[a], pts[d] - pts[c], pts[a] - pts[c]
        uu, uv, vv, uw, vw = u @ u, u @ v, v @ v, u @ w, v @ w
        den = uu * vv - uv * uv
        if den <= 1e-12 * uu * vv:
            continue
        s_, r_ = (uv * vw - vv * uw) / den, (uu * vw - uv * uw) / den
        if not (0.05 < s_ < 0.95 and 0.05 < r_ < 0.95):  # the edges must pass each other inside
            continue
        p1, p2 = pts[a] + s_ * u, pts[c] + r_ * v
        if np.linalg.norm(p1 - p2) > max_shift_nm:
            continue
        ring_ab, ring_cd = mesh.common(a, b), mesh.common(c, d)
        old = np.union1d(ring_ab, ring_cd)
        if rigid is not None:
            r_ab, r_cd = rigid[mesh.region[ring_ab]].any(), rigid[mesh.region[ring_cd]].any()
            if r_ab and r_cd:
                continue
            m = p1 if r_ab else p2 if r_cd else 0.5 * (p1 + p2)
        else:
            m = 0.5 * (p1 + p2)
        new, reg = [], []
        for x in old:
            tt = mesh.tets[x]
            on_ab, on_cd = np.isin((a, b), tt).all(), np.isin((c, d), tt).all()
            if on_ab and on_cd:  # the sliver itself: gone
                continue
            y, z = (a, b) if on_ab else (c, d)
            new += [np.where(tt == y, -1, tt), np.where(tt == z, -1, tt)]
            reg += [mesh.region[x]] * 2
        new = np.array(new)
        q = pts[np.where(new < 0, a, new)]
        q[new < 0] = m
        v_new = _volume6(q)
        if v_new.min() <= 0:
            continue
        reg = np.array(reg)
        dv = np.bincount(reg, v_new, minlength=len(region_volume)) \
            - np.bincount(mesh.region[old], _volume6(pts[mesh.tets[old]]), minlength=len(region_volume))
        if np.any(np.abs(dv) / 6.0 > max_region_change * region_volume):
            continue
        gain = float(_min_dihedral(q).min() - _min_dihedral(pts[mesh.tets[old]]).min())
        if gain > 1e-9 and (best is None or gain > best[0]):
            best = (gain, old, new, reg, m)
    return best


def split_poor_elements(points: np.ndarray, tets: np.ndarray, region: np.ndarray, target_deg: float = 5.0,
                        bend_deg: float = 0.5, max_shift_nm: float = 0.0,
                        rigid: np.ndarray | None = None, passes: int = 3,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Split an edge of each element below ``target_deg`` where that helps (module docstring).

    Parameters
    ----------
    points : (N, 3) nm; tets : (M, 4) positively oriented; region : (M,) region id;
    bend_deg : interface triangles within this angle count as one plane;
    max_shift_nm : two opposite edges of a sliver that pass within this distance are joined
        (each moves by at most that much; 0: never);
    rigid : (R,) bool per region id: regions whose interfaces may not move (GB slabs).

    Returns
    -------
    points (N', 3) (new vertices appended), tets (M', 4), region (M',), and a report
    ``{"split_edges", "joined_edges"}``.
    """
    rng = np.random.default_rng(seed)
    mesh = MutableTets(points, tets, region)
    n_split = n_join = 0
    region_volume = np.bincount(region, np.abs(_volume6(np.asarray(points, float)[tets])) / 6.0)
    for _ in range(passes):
        done = 0
        for e in mesh.poor(target_deg):
            if not mesh.alive[e]:
                continue
            t = mesh.tets[e]
            cands = [c for c in (_try_split(mesh, int(t[i]), int(t[j]), target_deg, bend_deg, rng)
                                 for i, j in _EDGES) if c is not None]
            if not cands:
                joined = _join_crossing_edges(mesh, e, max_shift_nm, rigid, region_volume) if max_shift_nm > 0 else None
                if joined is not None:
                    _, old, new, reg, p = joined
                    m = mesh.add_point(p)
                    mesh.replace(old, np.where(new < 0, m, new), reg)
                    n_join += 1
                    done += 1
                continue
            # an edge whose split reaches the target with the smallest radius-edge ratio,
            # else the largest angle
            _, _, ring, new, p = max(cands, key=lambda c: (min(c[0], target_deg), -c[1]))
            m = mesh.add_point(p)
            mesh.replace(ring, np.where(new < 0, m, new), np.concatenate([mesh.region[ring]] * 2))
            n_split += 1
            done += 1
        if not done:
            break
    live = mesh.live()
    return mesh.points[:mesh.n_points], mesh.tets[live], mesh.region[live], {"split_edges": n_split, "joined_edges": n_join}
