"""Exact convex-polyhedron geometry by half-spaces: clipping, volumes, Laguerre cells in a box.

A convex polyhedron is kept as its list of faces; every face remembers the id of the plane it
lies on (``n·x = c`` with unit ``n``) and which side of that plane the polyhedron is on.
Keeping plane identity (rather than only coordinates) is what later lets the mesher match
faces of neighbouring regions node for node.

All lengths are in nm, points are ``(x, y, z)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Absolute geometric tolerance used when classifying points against planes, relative to the
#: size of the box (set by :class:`PlaneSet`).
REL_EPS = 1e-10


@dataclass
class PlaneSet:
    """A registry of planes ``n·x = c`` (``n`` unit length), indexed by integer id.

    ``eps`` is the absolute distance (nm) below which a point counts as on a plane.
    """

    eps: float
    normals: list = field(default_factory=list)
    offsets: list = field(default_factory=list)

    def add(self, n, c) -> int:
        n = np.asarray(n, float)
        norm = np.linalg.norm(n)
        self.normals.append(n / norm)
        self.offsets.append(float(c) / norm)
        return len(self.normals) - 1

    def n(self, pid: int) -> np.ndarray:
        return self.normals[pid]

    def c(self, pid: int) -> float:
        return self.offsets[pid]


@dataclass
class Face:
    """A planar convex polygon: ``plane`` id, ``side`` (-1: the polyhedron is on ``n·x <= c``,
    +1: on ``n·x >= c``) and ``loop`` (k, 3) vertices in order."""

    plane: int
    side: int
    loop: np.ndarray


@dataclass
class Polyhedron:
    """A convex polyhedron given by its faces."""

    faces: list

    @property
    def vertices(self) -> np.ndarray:
        return np.unique(np.round(np.vstack([f.loop for f in self.faces]), 12), axis=0)

    def volume(self) -> float:
        """Volume (nm³): sum of pyramids from an interior point over fan-triangulated faces."""
        o = np.vstack([f.loop for f in self.faces]).mean(axis=0)
        v = 0.0
        for f in self.faces:
            a = f.loop[0]
            cr = cross(f.loop[1:-1] - a, f.loop[2:] - a)
            v += abs(cr.sum(axis=0) @ (o - a)) / 6.0
        return v

    def centroid(self) -> np.ndarray:
        """Volume centroid (nm), from a tetrahedral fan about the vertex mean."""
        o = np.vstack([f.loop for f in self.faces]).mean(axis=0)
        vol, acc = 0.0, np.zeros(3)
        for f in self.faces:
            a = f.loop[0]
            b, c = f.loop[1:-1], f.loop[2:]
            v = np.abs(cross(b - a, c - a) @ (o - a)) / 6.0
            vol += v.sum()
            acc += (v[:, None] * (a + b + c + o)).sum(axis=0) / 4.0
        return acc / vol if vol > 0 else o


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (k, 3) arrays (np.cross is slow for small arrays)."""
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                     a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


def vector_area(loop: np.ndarray) -> np.ndarray:
    """Twice the vector area (3,) of a polygon (k, 3): its normal times twice its area; for a
    slightly non-planar polygon the normal of its best-fit plane."""
    a = loop[0]
    return cross(loop[1:-1] - a, loop[2:] - a).sum(axis=0)


def polygon_area(loop: np.ndarray) -> float:
    """Area of a planar polygon (k, 3)."""
    s = vector_area(loop)
    return 0.5 * float(np.sqrt(s @ s))


def box_polyhedron(planes: PlaneSet, lo, hi) -> tuple[Polyhedron, list[int]]:
    """The axis-aligned box ``[lo, hi]`` (nm) and the ids of its six planes
    (-x, +x, -y, +y, -z, +z)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    ids, faces = [], []
    corners = np.array([[x, y, z] for z in (lo[2], hi[2]) for y in (lo[1], hi[1]) for x in (lo[0], hi[0])])
    # corner index = ix + 2 iy + 4 iz; loops ordered counter-clockwise seen from outside
    loops = {
        (0, -1): [0, 4, 6, 2], (0, 1): [1, 3, 7, 5],
        (1, -1): [0, 1, 5, 4], (1, 1): [2, 6, 7, 3],
        (2, -1): [0, 2, 3, 1], (2, 1): [4, 5, 7, 6],
    }
    for axis in range(3):
        for s in (-1, 1):
            n = np.zeros(3)
            n[axis] = s
            c = hi[axis] if s > 0 else -lo[axis]
            pid = planes.add(n, c)
            ids.append(pid)
            faces.append(Face(pid, -1, corners[loops[(axis, s)]]))
    return Polyhedron(faces), ids


def _order_on_plane(points: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Sort coplanar points counter-clockwise about their mean, seen along ``n``."""
    o = points.mean(axis=0)
    u = points[0] - o
    if not np.any(u):
        u = cross(n, np.array([1.0, 0, 0]) if abs(n[0]) < 0.9 else np.array([0, 1.0, 0]))
    u = u / np.sqrt(u @ u)
    w = cross(n, u)
    d = points - o
    return points[np.argsort(np.arctan2(d @ w, d @ u))]


def _unique_points(points: np.ndarray, eps: float) -> np.ndarray:
    keep = [points[0]]
    for p in points[1:]:
        d = np.abs(np.asarray(keep) - p).max(axis=1)
        if d.min() > eps:
            keep.append(p)
    return np.array(keep)


def clip(poly: Polyhedron, planes: PlaneSet, pid: int, keep_side: int) -> Polyhedron | None:
    """The part of ``poly`` on side ``keep_side`` (-1: ``n·x <= c``, +1: ``>=``) of plane
    ``pid``; ``None`` if that part has no volume. Returns ``poly`` itself if uncut."""
    n, c, eps = planes.n(pid), planes.c(pid), planes.eps
    allv = np.vstack([f.loop for f in poly.faces])
    d = -keep_side * (allv @ n - c)  # > 0 means outside the kept half-space
    if d.max() <= eps:
        return poly
    if d.min() >= -eps:
        return None
    new_faces, cap = [], []
    for f in poly.faces:
        loop = f.loop
        dl = -keep_side * (loop @ n - c)
        out = []
        k = len(loop)
        for a in range(k):
            b = (a + 1) % k
            pa, pb, da, db = loop[a], loop[b], dl[a], dl[b]
            if da <= eps:
                out.append(pa)
                if abs(da) <= eps:
                    cap.append(pa)
            if (da < -eps and db > eps) or (da > eps and db < -eps):
                p = pa + (pb - pa) * (da / (da - db))
                out.append(p)
                cap.append(p)
        if len(out) >= 3:
            out = np.array(out)
            if polygon_area(out) > eps * eps:
                new_faces.append(Face(f.plane, f.side, out))
    if not cap:
        return None
    cap = _unique_points(np.array(cap), 10 * eps)
    if len(cap) < 3:
        return None
    loop = _order_on_plane(cap, n)
    if polygon_area(loop) <= eps * eps:
        return None
    # the new face on the cut plane: the polyhedron lies on ``keep_side`` of it
    new_faces.append(Face(pid, keep_side, loop))
    return Polyhedron(new_faces)


def laguerre_cells(
    sites: np.ndarray, weights: np.ndarray, lo, hi, planes: PlaneSet, active: np.ndarray | None = None
) -> tuple[list[Polyhedron | None], dict[tuple[int, int], int], list[int]]:
    """Laguerre (power) cells ``{x in box: |x-s_i|² - w_i <= |x-s_j|² - w_j for all j}``.

    Parameters
    ----------
    sites : (G, 3) nm; weights : (G,) nm²; lo, hi : box corners (nm); planes : registry;
    active : (G,) bool, optional: sites left out of the tessellation (their cell ``None``,
        their space shared by the others).

    Returns
    -------
    cells : list of G polyhedra (``None`` for a cell empty in the box)
    pair_plane : ``{(i, j): plane id}`` for i < j sharing a face; the plane's normal points
        from i to j (cell i on its ``<=`` side)
    box_ids : the six box plane ids
    """
    sites = np.asarray(sites, float)
    weights = np.asarray(weights, float)
    box, box_ids = box_polyhedron(planes, lo, hi)
    g = len(sites)
    active = np.ones(g, bool) if active is None else np.asarray(active, bool)
    pair_plane: dict[tuple[int, int], int] = {}
    cells: list[Polyhedron | None] = []
    for i in range(g):
        if not active[i]:
            cells.append(None)
            continue
        diff = sites - sites[i]
        dist = np.linalg.norm(diff, axis=1)
        dist[i] = 1.0
        # signed distance from s_i of the bisector plane with j
        h = (dist**2 + weights[i] - weights) / (2 * dist)
        h[i] = np.inf
        h[~active] = np.inf
        cell: Polyhedron | None = box
        for j in np.argsort(h):
            if j == i or not np.isfinite(h[j]):
                continue
            verts = np.vstack([f.loop for f in cell.faces])
            # the plane cannot cut the cell if every vertex is on s_i's side
            if np.max((verts - sites[i]) @ (diff[j] / dist[j])) <= h[j] + planes.eps:
                continue
            a, b = (i, j) if i < j else (j, i)
            pid = pair_plane.get((a, b))
            if pid is None:
                n = sites[b] - sites[a]
                c = 0.5 * (np.dot(sites[b], sites[b]) - np.dot(sites[a], sites[a]) - weights[b] + weights[a])
                pid = planes.add(n, c)
                pair_plane[(a, b)] = pid
            cell = clip(cell, planes, pid, -1 if i == a else 1)
            if cell is None:
                break
        cells.append(cell)
    # keep only pairs whose plane carries a face of both cells
    used = {}
    for i, cell in enumerate(cells):
        if cell is None:
            continue
        for f in cell.faces:
            used.setdefault(f.plane, set()).add(i)
    pair_plane = {k: p for k, p in pair_plane.items() if used.get(p, set()) >= {k[0], k[1]}}
    return cells, pair_plane, box_ids
