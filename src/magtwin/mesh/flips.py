"""Quality flips of poor elements inside one region (Joe, "Construction of three-dimensional
improved-quality triangulations using local transformations", SIAM J. Sci. Comput. 16 (1995)
1292–1307; Klingner & Shewchuk, Proc. 16th International Meshing Roundtable (2007) 3–23).

For every element whose smallest dihedral angle is below ``target_deg``:

* **2-3 flip**: a face shared with an element of the same region is replaced by the edge
  joining the two opposite vertices (two elements become three);
* **edge removal** (3-2 flip and its generalisation): an edge inside one region with three to
  seven elements around it is deleted; the ring of their other vertices is triangulated (all
  Catalan(n-2) ways are tried) and each triangle joined to both ends of the edge (n elements
  become 2n - 4).

A flip is valid when the new elements are positively oriented and fill exactly the volume of
the old ones; it is kept when it raises the smallest dihedral angle of the elements involved
without pushing their radius–edge ratio above ``max(ratio_bound, its current value)``.
Interfaces, vertices and region volumes are untouched.
"""

from __future__ import annotations

import numpy as np

from magtwin.mesh.optimize import _min_dihedral, _radius_edge, _volume6
from magtwin.mesh.topology import MutableTets

_FACES = ((1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2))
_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def _oriented(pts: np.ndarray, new: np.ndarray, old_volume6: float) -> np.ndarray | None:
    """``new`` (K, 4) positively oriented, or None unless all K elements are non-flat and
    together fill ``old_volume6`` (6 x volume) — the condition for a valid flip."""
    v = _volume6(pts[new])
    scale = abs(old_volume6)
    if np.any(np.abs(v) <= 1e-9 * scale) or abs(np.abs(v).sum() - scale) > 1e-9 * scale:
        return None
    new = new.copy()
    neg = v < 0
    new[neg] = new[neg][:, [1, 0, 2, 3]]
    return new


def _gain(pts, old: np.ndarray, new: np.ndarray, ratio_bound: float) -> float:
    q_old, q_new = pts[old], pts[new]
    old_min = _min_dihedral(q_old).min()
    new_min = _min_dihedral(q_new).min()
    if _radius_edge(q_new).max() > max(ratio_bound, _radius_edge(q_old).max()) + 1e-12:
        return -1.0
    return new_min - old_min


def _flip23(mesh: MutableTets, e: int, ratio_bound: float):
    """Best 2-3 flip across a face of element ``e``: (gain, old elements, new elements)."""
    pts, t = mesh.points, mesh.tets[e]
    best = None
    for f, opp in zip(_FACES, range(4)):
        a, b, c = (int(t[k]) for k in f)
        nb = [x for x in mesh.common(a, b, c) if x != e]
        if len(nb) != 1 or mesh.region[nb[0]] != mesh.region[e]:
            continue
        d = int(t[opp])
        o = mesh.tets[nb[0]]
        w = int(o[~np.isin(o, (a, b, c))][0])
        old = np.array([e, nb[0]])
        new = np.array([[a, b, d, w], [b, c, d, w], [c, a, d, w]])
        vol = float(np.abs(_volume6(pts[mesh.tets[old]])).sum())
        new = _oriented(pts, new, vol)
        if new is None:
            continue
        g = _gain(pts, mesh.tets[old], new, ratio_bound)
        if g > 1e-9 and (best is None or g > best[0]):
            best = (g, old, new, np.full(3, mesh.region[e]))
    return best


def _triangulations(n: int) -> list[list[tuple]]:
    """All triangulations of a convex n-gon with corners 0..n-1 (Catalan(n-2) of them)."""
    def rec(lo: int, hi: int) -> list[list[tuple]]:
        if hi - lo < 2:
            return [[]]
        out = []
        for k in range(lo + 1, hi):
            for left in rec(lo, k):
                for right in rec(k, hi):
                    out.append(left + [(lo, k, hi)] + right)
        return out
    return rec(0, n - 1)


_TRIANGULATIONS = {n: np.array(_triangulations(n)) for n in range(3, 8)}


def _ring(others: np.ndarray) -> list[int] | None:
    """Cyclic order of the vertices around an edge from the (K, 2) opposite edges of its
    elements, or None if they do not close into one ring (the edge is on the boundary)."""
    nxt: dict[int, list] = {}
    for c, d in others:
        nxt.setdefault(int(c), []).append(int(d))
        nxt.setdefault(int(d), []).append(int(c))
    if any(len(v) != 2 for v in nxt.values()):
        return None
    start = int(others[0, 0])
    ring, prev, cur = [start], None, start
    while True:
        a, b = nxt[cur]
        step = a if a != prev else b
        if step == start:
            break
        ring.append(step)
        prev, cur = cur, step
    return ring if len(ring) == len(others) else None


def _edge_removal(mesh: MutableTets, e: int, ratio_bound: float):
    """Best removal of an edge of element ``e`` with 3 to 7 elements around it, all in one
    region: the ring of their other vertices is triangulated (every way) and each triangle
    joined to both ends of the edge (3 -> 2 elements for a ring of three, n -> 2n - 4).
    Returns (gain, old elements, new elements, new regions) or None."""
    pts, t = mesh.points, mesh.tets[e]
    best = None
    for i, j in _EDGES:
        a, b = int(t[i]), int(t[j])
        ring_el = mesh.common(a, b)
        n = len(ring_el)
        if n < 3 or n > 7 or np.any(mesh.region[ring_el] != mesh.region[e]):
            continue
        old = mesh.tets[ring_el]
        ring = _ring(old[~np.isin(old, (a, b))].reshape(n, 2))
        if ring is None:
            continue
        ring = np.array(ring)
        vol = float(np.abs(_volume6(pts[old])).sum())
        for tri in _TRIANGULATIONS[n]:
            corners = ring[tri]  # (n - 2, 3)
            new = np.vstack([np.column_stack([corners, np.full(len(corners), a)]),
                             np.column_stack([corners, np.full(len(corners), b)])])
            new = _oriented(pts, new, vol)
            if new is None:
                continue
            g = _gain(pts, old, new, ratio_bound)
            if g > 1e-9 and (best is None or g > best[0]):
                best = (g, ring_el, new, np.full(len(new), mesh.region[e]))
    return best


def flip_poor_elements(points: np.ndarray, tets: np.ndarray, region: np.ndarray, target_deg: float = 5.0,
                       ratio_bound: float = 2.0, passes: int = 3) -> tuple[np.ndarray, np.ndarray, dict]:
    """2-3 and 3-2 flips of elements below ``target_deg`` (see module docstring).

    Parameters
    ----------
    points : (N, 3) nm; tets : (M, 4) positively oriented; region : (M,) region id.

    Returns
    -------
    tets (M', 4), region (M',) (points are unchanged), and a report
    ``{"flips_23", "edge_removals"}``.
    """
    mesh = MutableTets(points, tets, region)
    n23 = n32 = 0
    for _ in range(passes):
        done = 0
        for e in mesh.poor(target_deg):
            if not mesh.alive[e]:
                continue
            cands = [c for c in (_flip23(mesh, e, ratio_bound), _edge_removal(mesh, e, ratio_bound)) if c is not None]
            if not cands:
                continue
            g, old, new, new_region = max(cands, key=lambda c: c[0])
            mesh.replace(old, new, new_region)
            n23 += len(old) == 2
            n32 += len(old) >= 3
            done += 1
        if not done:
            break
    live = mesh.live()
    return mesh.tets[live], mesh.region[live], {"flips_23": n23, "edge_removals": n32}
