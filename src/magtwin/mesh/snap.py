"""Collapse features below a tolerance on the conforming surface of the multi-region model.

The exact model surface is a valid PLC, but a Laguerre tessellation has arbitrarily short
edges and small faces, and the GB/TJ offset planes multiply them: a 60-grain model has
hundreds of PLC edges shorter than 0.01 nm and facet triangles 1e-4 nm high next to 1.5 nm
ones. TetGen's refinement then meets almost collinear segments (it reports "reducing
collinear tolerance") and aborts (``split_subface``, ``locate_point_walk``). This module
removes every such feature below ``tol`` (nm) on the triangulated, conforming surface:

* **short edge** (``|uv| < tol``): vertex ``u`` is merged into ``v``;
* **cap** (a vertex ``v`` closer than ``tol`` to the opposite, longest edge ``ab``): ``v`` is
  inserted into ``ab`` (every triangle on ``ab`` is split at ``v``), which flattens the cap.

Each triangle carries the regions in front of and behind it (``front``/``back``, 0 = outside
the box). Both operations are simplicial maps, so every region's boundary stays a closed
surface: triangles that become degenerate vanish, and two triangles that come to coincide
(the two sides of a collapsed thin piece) are merged when the piece between them is the
region behind one and in front of the other (else the operation is refused). An operation
is also refused if it turns a triangle by more than ``max_turn_deg`` (no fold-over) or would
move a vertex off a box face, edge or corner it lies on, so the box (and its volume) stay
exact. No vertex moves by more than ``tol``: GB slabs keep their thickness to ``2 tol``.
"""

from __future__ import annotations

import numpy as np


def _normal(p: np.ndarray) -> np.ndarray:
    return np.cross(p[1] - p[0], p[2] - p[0])


class SurfaceSnapper:
    """Mutable triangle surface with region sides and per-vertex box constraints.

    Parameters
    ----------
    points : (N, 3) nm; triangles : (T, 3) oriented so that the normal points into
    ``front``; front, back : (T,) region ids (0 = outside); constraints : per vertex a
    frozenset of the box planes it lies on (a moved vertex must stay on all of them).
    """

    def __init__(self, points, triangles, front, back, constraints, max_turn_deg: float = 60.0):
        self.p = [np.asarray(x, float) for x in points]
        self.t = [list(map(int, x)) for x in triangles]
        self.front = [int(x) for x in front]
        self.back = [int(x) for x in back]
        self.alive = [True] * len(self.t)
        self.cons = list(constraints)
        self.cos_turn = float(np.cos(np.radians(max_turn_deg)))
        self.vt: list[set] = [set() for _ in self.p]
        for k, tri in enumerate(self.t):
            for v in tri:
                self.vt[v].add(k)
        self.why = {}
        self.tree = None
        self.move_caps = True
        self.guard = 0.0
        self.counts = {"collapsed_edges": 0, "flattened_caps": 0, "merged_triangles": 0, "refused": 0}

    def _isolated(self, centres, ring: set) -> bool:
        """True if no surface vertex outside ``ring`` lies within ``guard`` of ``centres``:
        a feature next to another, unrelated surface (a thin wedge) is left alone, since
        moving it could push one surface through the other."""
        if self.tree is None:
            return True
        for c in centres:
            for w in self.tree.query_ball_point(c, self.guard):
                if w not in ring and self.vt[w] and np.linalg.norm(self.p[w] - c) < self.guard:
                    self.why["not_isolated"] = self.why.get("not_isolated", 0) + 1
                    return False
        return True

    def _ring(self, verts) -> set:
        return {w for v in verts for k in self.vt[v] for w in self.t[k]}

    # -- primitive: replace the triangles ``old`` by ``new`` (list of (tri, front, back)) -----
    def _apply(self, old: list, new: list, moves: dict) -> bool:
        """Try the change; commit it and return True if valid, else leave all as it was."""
        saved = {v: self.p[v] for v in moves}
        for v, x in moves.items():
            self.p[v] = x
        old_set = set(old)
        # geometric check: no new triangle degenerate or turned against the one it replaces
        checked = []
        for (tri, f, b), src in new:
            n_new = _normal(np.array([self.p[v] for v in tri]))
            ln = np.linalg.norm(n_new)
            n_old = _normal(np.array([saved.get(v, self.p[v]) for v in self.t[src]]))
            lo = np.linalg.norm(n_old)
            if ln <= 1e-14 * max(lo, 1e-300) or (lo > 0 and n_new @ n_old < self.cos_turn * ln * lo):
                for v, x in saved.items():
                    self.p[v] = x
                self.counts["refused"] += 1
                self.why["turn_new"] = self.why.get("turn_new", 0) + 1
                return False
            checked.append((tri, f, b))
        # the other triangles around moved vertices must not turn either
        for v in moves:
            for k in self.vt[v] - old_set:
                tri = self.t[k]
                n_new = _normal(np.array([self.p[w] for w in tri]))
                n_old = _normal(np.array([saved.get(w, self.p[w]) for w in tri]))
                ln, lo = np.linalg.norm(n_new), np.linalg.norm(n_old)
                if ln <= 1e-14 * lo or n_new @ n_old < self.cos_turn * ln * lo:
                    for w, x in saved.items():
                        self.p[w] = x
                    self.counts["refused"] += 1
                    self.why["turn_other"] = self.why.get("turn_other", 0) + 1
                    return False
        # combinatorial check: merge coincident triangles (sandwiched piece collapsed)
        existing = {}
        for v in {v for tri, _, _ in checked for v in tri}:
            for k in self.vt[v] - old_set:
                existing[tuple(sorted(self.t[k]))] = k
        final: dict[tuple, tuple] = {}
        drop = []
        for tri, f, b in checked:
            key = tuple(sorted(tri))
            other = None
            if key in final:
                other = final.pop(key)
            elif key in existing:
                k = existing.pop(key)
                other = (self.t[k], self.front[k], self.back[k])
                drop.append(k)
            if other is None:
                final[key] = (tri, f, b)
                continue
            tri2, f2, b2 = other
            if _same_orientation(tri, tri2) is False:
                f2, b2 = b2, f2
            # same orientation now: (f, b) and (f2, b2) at the same place
            if b == f2:
                merged = (tri, f, b2)
            elif b2 == f:
                merged = (tri, f2, b)
            else:
                for w, x in saved.items():
                    self.p[w] = x
                self.counts["refused"] += 1
                self.why["merge"] = self.why.get("merge", 0) + 1
                return False
            self.counts["merged_triangles"] += 1
            if merged[1] != merged[2]:
                final[key] = merged
        for k in list(old) + drop:
            self.alive[k] = False
            for v in self.t[k]:
                self.vt[v].discard(k)
        for tri, f, b in final.values():
            k = len(self.t)
            self.t.append(list(tri))
            self.front.append(f)
            self.back.append(b)
            self.alive.append(True)
            for v in tri:
                self.vt[v].add(k)
        return True

    def collapse(self, u: int, v: int) -> bool:
        """Merge vertex ``u`` into ``v`` (``v`` keeps its position)."""
        if not self.cons[u] <= self.cons[v]:
            self.why["cons"] = self.why.get("cons", 0) + 1
            return False
        if not self._isolated([self.p[u], self.p[v]], self._ring([u, v])):
            return False
        old = list(self.vt[u])
        new = [(([v if w == u else w for w in self.t[k]], self.front[k], self.back[k]), k)
               for k in old if v not in self.t[k]]
        if self._apply(old, new, {}):
            # u is gone: its triangles now use v
            self.counts["collapsed_edges"] += 1
            return True
        return False

    def insert_into_edge(self, v: int, a: int, b: int) -> bool:
        """Flatten the cap at ``v``: split every triangle on edge ``ab`` at ``v``, which moves
        onto the segment unless it lies on a box plane that ``ab`` does not."""
        on_ab = self.cons[a] & self.cons[b]
        moves = {}
        if self.move_caps and self.cons[v] <= on_ab:
            # v moves onto the segment: no almost-straight kink a-v-b is left behind
            pa, pb = self.p[a], self.p[b]
            s = float(np.clip((self.p[v] - pa) @ (pb - pa) / ((pb - pa) @ (pb - pa)), 0.0, 1.0))
            moves[v] = pa + s * (pb - pa)
        if not moves and not on_ab <= self.cons[v]:
            self.why["cons_cap"] = self.why.get("cons_cap", 0) + 1
            return False
        centres = [self.p[v]] + list(moves.values())
        if not self._isolated(centres, self._ring([v, a, b])):
            return False
        old = sorted(self.vt[a] & self.vt[b])
        new = []
        for k in old:
            tri = self.t[k]
            if v in tri:
                continue
            ia, ib = tri.index(a), tri.index(b)
            t1, t2 = list(tri), list(tri)
            t1[ib] = v
            t2[ia] = v
            new.append(((t1, self.front[k], self.back[k]), k))
            new.append(((t2, self.front[k], self.back[k]), k))
        if self._apply(old, new, moves):
            self.counts["flattened_caps"] += 1
            return True
        return False

    # -- driver -------------------------------------------------------------------------
    def small_features(self, tol: float):
        """Live triangles with an edge shorter than ``tol`` or a height below ``tol``:
        yields ``("edge", u, v, length)`` and ``("cap", v, a, b, height)`` sorted by size."""
        live = np.flatnonzero(self.alive)
        if not len(live):
            return []
        tri = np.array([self.t[k] for k in live])
        pts = np.array(self.p)
        q = pts[tri]
        e = np.linalg.norm(q[:, [1, 2, 0]] - q, axis=2)  # edge k: vertex k -> k+1
        area2 = np.linalg.norm(np.cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]), axis=1)
        longest = e.argmax(axis=1)
        height = area2 / e.max(axis=1)
        out = []
        for i in np.flatnonzero((e.min(axis=1) < tol) | (height < tol)):
            if e[i].min() < tol:
                k = int(e[i].argmin())
                out.append((float(e[i, k]), "edge", int(tri[i, k]), int(tri[i, (k + 1) % 3])))
            else:
                k = int(longest[i])
                out.append((float(height[i]), "cap", int(tri[i, (k + 2) % 3]), int(tri[i, k]), int(tri[i, (k + 1) % 3])))
        out.sort(key=lambda r: r[0])
        return out

    def run(self, tol: float, passes: int = 20) -> dict:
        from scipy.spatial import cKDTree

        self.guard = 2.0 * tol
        for _ in range(passes):
            self.tree = cKDTree(np.array(self.p))
            todo = self.small_features(tol)
            if not todo:
                break
            done = 0
            for item in todo:
                if item[1] == "edge":
                    _, _, u, v = item
                    if not (self.vt[u] & self.vt[v]):
                        continue  # no longer an edge
                    if len(self.cons[u]) > len(self.cons[v]) or (
                            len(self.cons[u]) == len(self.cons[v]) and len(self.vt[u]) > len(self.vt[v])):
                        u, v = v, u
                    done += self.collapse(u, v) or self.collapse(v, u)
                else:
                    _, _, v, a, b = item
                    if not any(v in self.t[k] for k in self.vt[a] & self.vt[b]):
                        continue
                    done += self.insert_into_edge(v, a, b)
            if not done:
                break
        left = self.small_features(tol)
        return {**self.counts, "refused_because": dict(self.why), "left_below_tol": len(left),
                "smallest_left_nm": float(left[0][0]) if left else None}

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Compact ``(points, triangles, front, back)`` of the live surface."""
        live = np.flatnonzero(self.alive)
        tri = np.array([self.t[k] for k in live], np.int64).reshape(-1, 3)
        used, inv = np.unique(tri, return_inverse=True)
        pts = np.array(self.p)[used]
        return (pts, inv.reshape(-1, 3), np.array([self.front[k] for k in live], np.int64),
                np.array([self.back[k] for k in live], np.int64))


def _same_orientation(t1, t2) -> bool:
    """True if the triangles (same vertex set) have the same cyclic order."""
    i = t2.index(t1[0])
    return t2[(i + 1) % 3] == t1[1]


def box_constraints(points: np.ndarray, lo, hi, eps: float) -> list[frozenset]:
    """Per point, the box planes (0..5: -x, +x, -y, +y, -z, +z) it lies on within ``eps``."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    on = np.column_stack([np.abs(points[:, a] - (lo[a] if s == 0 else hi[a])) <= eps
                          for a in range(3) for s in (0, 1)])
    return [frozenset(np.flatnonzero(r).tolist()) for r in on]


def snap_surface(points, triangles, front, back, lo, hi, tol: float, eps: float):
    """Remove edges and caps below ``tol`` nm (see module docstring).

    Returns ``(points, triangles, front, back, report)``."""
    s = SurfaceSnapper(points, triangles, front, back, box_constraints(np.asarray(points), lo, hi, eps))
    report = s.run(float(tol)) if tol > 0 else {**s.counts, "left_below_tol": None}
    return (*s.result(), report)


def split_flat_elements(points: np.ndarray, tets: np.ndarray, region: np.ndarray, rel: float = 1e-12):
    """Remove zero-volume elements that have three collinear vertices ``a, v, b`` (``v`` on
    the segment ``ab``; left by a surface vertex snapped onto a segment, which exact
    predicates still see a hair off it): every element on edge ``ab`` is split at ``v``,
    and those already containing ``v`` (the flat ones) vanish. The result stays conforming
    (a subdivision of the star of ``ab``). Returns ``(tets, region, number of splits)``."""
    tets = np.asarray(tets, np.int64).copy()
    region = np.asarray(region).copy()
    splits = 0
    for _ in range(100):
        q = points[tets]
        vol = np.einsum("ij,ij->i", np.cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]), q[:, 3] - q[:, 0])
        flat = np.flatnonzero(np.abs(vol) <= rel * np.abs(vol).mean())
        if not len(flat):
            break
        t = tets[flat[0]]
        best = None
        for i in range(4):  # the vertex nearest to the segment of two others
            for j in range(4):
                for k in range(j + 1, 4):
                    if i in (j, k):
                        continue
                    a, b, v = points[t[j]], points[t[k]], points[t[i]]
                    ab = b - a
                    s = (v - a) @ ab / (ab @ ab)
                    d = np.linalg.norm(a + s * ab - v) / np.linalg.norm(ab)
                    if 0 < s < 1 and (best is None or d < best[0]):
                        best = (d, t[i], t[j], t[k])
        if best is None or best[0] > 1e-6:
            break  # not a collinear triple: left for the caller to report
        _, v, a, b = best
        on = np.flatnonzero((tets == a).any(axis=1) & (tets == b).any(axis=1))
        keep = np.ones(len(tets), bool)
        keep[on] = False
        new_t, new_r = [], []
        for e in on:
            te = tets[e]
            if v in te:
                continue
            t1, t2 = te.copy(), te.copy()
            t1[te == b] = v
            t2[te == a] = v
            new_t += [t1, t2]
            new_r += [region[e], region[e]]
        tets = np.vstack([tets[keep]] + ([np.array(new_t)] if new_t else []))
        region = np.concatenate([region[keep], np.array(new_r, region.dtype)])
        splits += 1
    return tets, region, splits
