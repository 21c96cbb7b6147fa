"""Edge collapse of poor elements next to features shorter than the element size.

The regularised model surface (:mod:`magtwin.mesh.regularize`) keeps edges between the
snapping tolerance and the element size (and shorter ones where snapping would have made the
surface intersect itself). An element spanning such a short edge and a normal-size one is a
needle or wedge with a dihedral angle of a few degrees, and no vertex relocation
(:mod:`magtwin.mesh.optimize`) can repair it: its short edge has to go.

For every element with a smallest dihedral angle below ``target_deg``, each of its six edges
is tried in both directions: vertex ``b`` is removed and every element around it is
reconnected to ``a`` (elements holding both vanish). The box stays exact (``a`` must lie on
every box plane ``b`` lies on). Where the geometry allows it exactly, the collapse keeps it
exactly (the constraints of vertex relocation, :func:`magtwin.mesh.optimize.vertex_freedom`):

* ``b`` inside one region: ``a`` anywhere;
* ``b`` on one interface plane: ``a`` on that plane and on every interface ``b`` touches;
* ``b`` on one straight model edge: ``a`` on that line and on every interface ``b`` touches.

Elsewhere (``b`` on a bent regularised facet, or a junction of several regions that ``a``
does not touch) the collapse moves interfaces, and is allowed only within a budget: ``b`` lies
within ``max_shift_nm`` of the planes of the interface triangles that replace its own (no
interface moves further), and every region's volume changes, accumulated over all collapses,
by at most ``max_region_change``. A ``rigid`` region (a GB slab, whose thickness is the
model's) may lose a vertex this way but not gain one: ``a`` must already be one of its
vertices, else only exact collapses are allowed, so its extent never grows.

A collapse is accepted only if every new element is positively oriented (then the elements
around ``b`` re-fill the same volume) and the smallest dihedral angle around ``b`` rises,
without pushing the radius–edge ratio above ``max(ratio_bound, its current value)``. (Edge
collapse as in mesh-improvement codes, e.g. Klingner & Shewchuk, "Aggressive tetrahedral mesh
improvement", Proc. 16th International Meshing Roundtable (2007) 3–23.)
"""

from __future__ import annotations

import numpy as np

from magtwin.mesh.optimize import _interface_faces, _min_dihedral, _radius_edge, _volume6, vertex_freedom
from magtwin.mesh.regularize import box_constraints
from magtwin.mesh.topology import MutableTets

_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def _vertex_regions(tets: np.ndarray, region: np.ndarray, on_box: np.ndarray) -> list[frozenset]:
    """Per vertex the set of regions around it, 0 included for vertices on the box
    (``on_box`` (N,) bool)."""
    nr = int(region.max()) + 1
    key = np.unique(tets.ravel().astype(np.int64) * nr + np.repeat(region, 4))
    out: list[set] = [set() for _ in range(len(on_box))]
    for v, r in zip((key // nr).tolist(), (key % nr).tolist()):
        out[v].add(r)
    for v in np.flatnonzero(on_box):
        out[v].add(0)
    return [frozenset(s) for s in out]


def collapse_short_edges(points: np.ndarray, tets: np.ndarray, region: np.ndarray, target_deg: float = 5.0,
                         ratio_bound: float = 2.0, max_shift_nm: float = 0.2,
                         max_region_change: float = 0.02, rigid: np.ndarray | None = None,
                         passes: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Collapse edges of elements below ``target_deg`` (see module docstring).

    Parameters
    ----------
    points : (N, 3) nm; tets : (M, 4) positively oriented; region : (M,) region id;
    rigid : (R,) bool per region id, or None.

    Returns
    -------
    points (N', 3), tets (M', 4), region (M',) with removed vertices dropped and renumbered,
    and a report ``{"collapsed_edges"}``.
    """
    mesh = MutableTets(points, tets, region)
    pts = mesh.points
    dof, axis = vertex_freedom(pts, mesh.tets, mesh.region)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    box = box_constraints(pts, lo, hi, 1e-9 * float(np.max(hi - lo)))
    regs = _vertex_regions(mesh.tets, mesh.region, np.array([bool(c) for c in box]))
    touches_rigid = np.zeros(len(pts), bool)
    is_rigid = np.zeros(int(mesh.region.max()) + 2, bool)
    if rigid is not None:
        is_rigid[:len(rigid)] = rigid
        touches_rigid[mesh.tets[is_rigid[mesh.region]].ravel()] = True

    def allowed(a: int, b: int) -> bool:
        if not box[b] <= box[a]:  # the box stays exact: a on every box plane b is on
            return False
        if dof[b] == 0 or not regs[b] <= regs[a]:
            return True  # bent facets, junctions: the volume test decides
        d = pts[a] - pts[b]
        ln = float(np.linalg.norm(d))
        if dof[b] == 2:
            return abs(float(axis[b] @ d)) <= 1e-6 * ln
        if dof[b] == 1:
            return float(np.linalg.norm(d - (d @ axis[b]) * axis[b])) <= 1e-6 * ln
        return True

    nreg = int(mesh.region.max()) + 1
    region_volume = np.bincount(mesh.region, np.abs(_volume6(pts[mesh.tets])) / 6.0, minlength=nreg)
    change = np.zeros(nreg)  # accumulated volume change per region (nm³)

    def shift(a: int, b: int, el: np.ndarray) -> float:
        """Largest distance (nm) between b and the planes of the interface and box triangles
        that replace b's (b -> a): how far the collapse moves the interfaces."""
        f = _interface_faces(mesh.tets[el], mesh.region[el])
        f = f[(f == b).any(axis=1) & ~(f == a).any(axis=1)]
        tri = pts[np.where(f == b, a, f)]
        if not len(tri):
            return 0.0
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
        return float(np.abs(np.einsum("ij,ij->i", n, pts[b] - tri[:, 0])).max())

    def attempt(a: int, b: int):
        """(score gain, new star elements of b) or None."""
        el = mesh.star(b)
        t = mesh.tets[el]
        keep = ~(t == a).any(axis=1)
        new = np.where(t[keep] == b, a, t[keep])
        q_old = pts[t]
        q_new = pts[new]
        if not len(new) or _volume6(q_new).min() <= 1e-12 * np.abs(_volume6(q_old)).max():
            return None
        old = _min_dihedral(q_old).min()
        score = _min_dihedral(q_new).min()
        if score <= old + 1e-9:
            return None
        # interfaces move by at most ``max_shift_nm``
        # a rigid region may lose b but not gain a new vertex a off its planes
        lim = 0.0 if touches_rigid[b] and not {r for r in regs[b] if is_rigid[r]} <= regs[a] else max_shift_nm
        if shift(a, b, el) > lim + 1e-9 * float(np.linalg.norm(pts[a] - pts[b])):
            return None
        rr = mesh.region[el]
        dv = (np.bincount(rr[keep], _volume6(q_new), minlength=nreg)
              - np.bincount(rr, _volume6(q_old), minlength=nreg)) / 6.0
        if np.any(np.abs(change + dv) > max_region_change * region_volume + 1e-12 * np.abs(_volume6(q_old)).sum()):
            return None
        if _radius_edge(q_new).max() > max(ratio_bound, _radius_edge(q_old).max()) + 1e-12:
            return None
        return score - old, el, keep, new, dv

    collapsed = 0
    for _ in range(passes):
        done = 0
        for e in mesh.poor(target_deg):
            if not mesh.alive[e]:
                continue
            best = None
            t = mesh.tets[e].copy()
            for i, j in _EDGES:
                for a, b in ((t[i], t[j]), (t[j], t[i])):
                    if not allowed(int(a), int(b)):
                        continue
                    res = attempt(int(a), int(b))
                    if res is not None and (best is None or res[0] > best[0]):
                        best = res
            if best is None:
                continue
            _, el, keep, new, dv = best
            mesh.replace(el, new, mesh.region[el[keep]])
            change += dv
            collapsed += 1
            done += 1
        if not done:
            break
    pts, tets, region = mesh.compact()
    return pts, tets, region, {"collapsed_edges": collapsed}
