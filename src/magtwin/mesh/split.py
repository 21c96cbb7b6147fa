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
"""

from __future__ import annotations

import numpy as np

from magtwin.mesh.optimize import _min_dihedral, _radius_edge, _volume6
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
    if np.all(np.abs(np.abs(n @ n[0]) - 1.0) <= max(1e-7, 1.0 - np.cos(np.radians(bend_deg)))):
        return 2, n[0]
    return 1, u / np.linalg.norm(u)


def _constrain(cands: np.ndarray, p0: np.ndarray, dof: int, axis: np.ndarray) -> np.ndarray:
    if dof == 2:
        return cands - np.outer((cands - p0) @ axis, axis)
    if dof == 1:
        return p0 + np.outer((cands - p0) @ axis, axis)
    return cands


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

    centre = _constrain(pts[np.unique(new[~slot])].mean(axis=0)[None], p0, dof, axis)[0]
    cands = np.vstack([p0, centre, 0.5 * (centre + p0)])
    dm, rr = evaluate(cands)
    k = rank(dm, rr)
    best_p, best_d, best_r = cands[k], dm[k], rr[k]
    step = 0.25 * float(np.linalg.norm(pts[b] - pts[a]))
    for _ in range(steps):
        cands = _constrain(best_p + rng.normal(scale=step, size=(8, 3)), p0, dof, axis)
        dm, rr = evaluate(np.vstack([best_p, cands]))
        k = rank(dm, rr)
        if k == 0:
            step *= 0.5
        else:
            best_p, best_d, best_r = cands[k - 1], dm[k], rr[k]
    if best_d <= old_min + 1e-9:
        return None
    return float(best_d), float(best_r), ring, new, best_p


def split_poor_elements(points: np.ndarray, tets: np.ndarray, region: np.ndarray, target_deg: float = 5.0,
                        bend_deg: float = 0.5, passes: int = 3,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Split an edge of each element below ``target_deg`` where that helps (module docstring).

    Parameters
    ----------
    points : (N, 3) nm; tets : (M, 4) positively oriented; region : (M,) region id;
    bend_deg : interface triangles within this angle count as one plane.

    Returns
    -------
    points (N', 3) (new vertices appended), tets (M', 4), region (M',), and a report
    ``{"split_edges"}``.
    """
    rng = np.random.default_rng(seed)
    mesh = MutableTets(points, tets, region)
    n_split = 0
    for _ in range(passes):
        done = 0
        for e in mesh.poor(target_deg):
            if not mesh.alive[e]:
                continue
            t = mesh.tets[e]
            cands = [c for c in (_try_split(mesh, int(t[i]), int(t[j]), target_deg, bend_deg, rng)
                                 for i, j in _EDGES) if c is not None]
            if not cands:
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
    return mesh.points[:mesh.n_points], mesh.tets[live], mesh.region[live], {"split_edges": n_split}
