"""Grain geometry: an anisotropic Laguerre (power) tessellation of platelet grains.

A point ``p`` (world nm, ``(x, y, z)``) is mapped to the *scaled* space ``q = S p`` with

    S = I + (aspect - 1) a a^T,    aspect = grain_diameter_nm / grain_thickness_nm,

(``a`` the unit alignment axis), which stretches distances along the press direction. In the
scaled space the grains are a Laguerre tessellation of seeds ``s_i`` with weights ``w_i^2``:
``p`` belongs to the grain minimising the power ``|S p - s_i|^2 - w_i^2``. A linear map keeps
cells convex, so the grains are densely packed convex polyhedra, flattened along ``a``
(platelets ``aspect`` times wider than thick) - the kind of tessellation the model stage fits.

The face between grains ``i`` and ``j`` is the plane where the powers are equal; for a point
inside grain ``i`` its real-space distance to that plane is

    d_ij(p) = (pow_j(p) - pow_i(p)) / (2 |S (s_i - s_j)|),

and, the cell being an intersection of half-spaces, the distance to the cell boundary is
``min_j d_ij``. The grain-boundary phase is ``min_j d_ij < gb_thickness_nm / 2`` (a slab of the
requested thickness centred on every face), a triple-junction pocket is where the two smallest
``d_ij`` are both below ``tj_size_nm / 2`` (near an edge where three or more grains meet).

Seeds are placed by random sequential addition at voxel centres of the frame of slice 0 with
a minimum scaled distance ``d_min``; weights ``w_i^2 <= grain_size_spread * d_min^2 < d_min^2``
guarantee that every seed lies in its own cell, so each grain owns at least its seed voxel and
the label volume has exactly ``n_grains`` grains.

The c-axes (easy axes) are the alignment axis tilted by a misalignment drawn per grain: the two
tangential components are Gaussian with std ``misalignment_sigma_deg`` (the tilt angle is then
Rayleigh distributed, RMS angle = sqrt(2) sigma). The platelet shape follows the mean axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull, QhullError, cKDTree

from magtwin.errors import ConfigError
from magtwin.synth.params import cap_rows_px


@dataclass
class Microstructure:
    """The world geometry of the grains (all lengths in nm, vectors in ``(x, y, z)`` order).

    Attributes
    ----------
    seeds_nm : (n, 3) seed positions (world, at voxel centres of slice 0's frame)
    weights_nm2 : (n,) Laguerre weights ``w^2`` in scaled nm^2
    metric : (3, 3) symmetric scaling ``S``
    alignment_axis : (3,) unit press direction
    easy_axes : (n, 3) unit c-axes
    d_min_nm : minimum scaled seed distance
    diameter_nm, thickness_nm : the (possibly rescaled) nominal grain size
    """

    seeds_nm: np.ndarray
    weights_nm2: np.ndarray
    metric: np.ndarray
    alignment_axis: np.ndarray
    easy_axes: np.ndarray
    d_min_nm: float
    diameter_nm: float
    thickness_nm: float

    def __post_init__(self):
        self.scaled_seeds = self.seeds_nm @ self.metric
        self._tree = cKDTree(self.scaled_seeds)
        self._w2max = float(self.weights_nm2.max()) if len(self.weights_nm2) else 0.0
        self.neighbours, self.plane_normal, self.plane_offset = _face_planes(
            self.scaled_seeds, self.weights_nm2, self.metric)

    @property
    def n_grains(self) -> int:
        return len(self.seeds_nm)

    def owner(self, points_nm: np.ndarray, k: int = 4) -> np.ndarray:
        """Grain index (0-based) whose cell holds each world point ``(P, 3)`` -> ``(P,)``."""
        q = np.asarray(points_nm, dtype=np.float64).reshape(-1, 3) @ self.metric
        return self._owner_scaled(q, k)

    def _owner_scaled(self, q, k):
        n = self.n_grains
        k = min(k, n)
        d, idx = self._tree.query(q, k=k)
        if k == 1:
            return idx.reshape(-1).astype(np.int64)
        pw = d * d - self.weights_nm2[idx]
        o = np.argmin(pw, axis=1)
        owner = idx[np.arange(len(q)), o].astype(np.int64)
        # Exact unless a seed beyond the k nearest could still have a lower power: every
        # excluded seed has power >= d_k^2 - w2max.
        unsure = pw[np.arange(len(q)), o] > d[:, -1] ** 2 - self._w2max
        if np.any(unsure) and k < n:
            owner[unsure] = self._owner_scaled(q[unsure], 2 * k)
        return owner

    def plane_distances(self, owner: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """``(P, K)`` distances of ``pts`` to the face planes of cells ``owner`` (>= 0 inside)."""
        # grouped by owner: one small matrix product per grain instead of gathering (P, K, 3)
        order = np.argsort(owner, kind="stable")
        so, sp = owner[order], pts[order]
        starts = np.flatnonzero(np.r_[True, so[1:] != so[:-1]]) if len(so) else np.zeros(0, int)
        ends = np.r_[starts[1:], len(so)]
        res = np.empty((len(pts), self.neighbours.shape[1]))
        for a, b in zip(starts, ends):
            o = so[a]
            res[a:b] = self.plane_offset[o] - sp[a:b] @ self.plane_normal[o].T
        out = np.empty_like(res)
        out[order] = res
        return out

    def cells(self, points_nm: np.ndarray, hint: np.ndarray | None = None):
        """Owner grain and distances to the face planes of its cell.

        Parameters
        ----------
        points_nm : (P, 3) world points
        hint : (P,) optional guessed owners (-1 = none), e.g. the grain at the centre of the
            pixel a sub-sample belongs to. A guess is accepted only when the point lies on the
            inner side of all of that cell's faces (the cell is the intersection of those
            half-spaces), else the neighbour across the most violated face is tried, then the
            exact nearest-power search - so the result never depends on the hint.

        Returns
        -------
        owner : (P,) int64 grain index (0-based)
        dist : (P, K) real-space distances (nm) to the planes between the owner and each of
            its neighbours ``self.neighbours[owner]`` (inf for padding), unsorted
        """
        pts = np.asarray(points_nm, dtype=np.float64).reshape(-1, 3)
        if hint is None:
            owner = self.owner(pts)
            return owner, self.plane_distances(owner, pts)
        owner = np.asarray(hint, np.int64).copy()
        dist = np.empty((len(pts), self.neighbours.shape[1]))
        todo = np.flatnonzero(owner >= 0)
        for _ in range(2):  # the hint, then the neighbour across its most violated face
            if not len(todo):
                break
            d = self.plane_distances(owner[todo], pts[todo])
            inside = d.min(axis=1) >= 0
            dist[todo[inside]] = d[inside]
            out = todo[~inside]
            nxt = self.neighbours[owner[out], np.argmin(d[~inside], axis=1)]
            owner[out] = nxt
            todo = out
        rest = np.union1d(todo, np.flatnonzero(np.asarray(hint) < 0))
        if len(rest):
            owner[rest] = self.owner(pts[rest])
            dist[rest] = self.plane_distances(owner[rest], pts[rest])
        return owner, dist


def _face_planes(scaled: np.ndarray, w2: np.ndarray, metric: np.ndarray):
    """Neighbour table and face planes of the Laguerre cells.

    Returns ``neighbours`` (n, K) int (-1 padding), ``normal`` (n, K, 3) real-space unit outward
    normals, ``offset`` (n, K) so that a point ``p`` inside cell ``i`` is at distance
    ``offset[i, k] - normal[i, k] . p`` from its face plane with ``neighbours[i, k]`` (padding:
    offset inf). Neighbours are the edges of the regular triangulation (lower hull of the
    lifted seeds), i.e. exactly the pairs of cells sharing a face.
    """
    n = len(scaled)
    pairs = _regular_triangulation_edges(scaled, w2)
    adj: list[list[int]] = [[] for _ in range(n)]
    for i, j in pairs:
        adj[i].append(j)
        adj[j].append(i)
    K = max(1, max((len(a) for a in adj), default=1))
    nb = np.full((n, K), -1, np.int64)
    for i, a in enumerate(adj):
        nb[i, : len(a)] = sorted(a)
    valid = nb >= 0
    j = np.where(valid, nb, np.arange(n)[:, None])
    si, sj = scaled[:, None, :], scaled[j]
    g = (si - sj) @ metric                       # S (s_i - s_j): real-space gradient / 2
    gn = np.linalg.norm(g, axis=2)
    gn[~valid] = 1.0
    # pow_j - pow_i = 2 p.g + C,  C = |s_j|^2 - |s_i|^2 - w_j^2 + w_i^2
    C = (sj ** 2).sum(2) - (si ** 2).sum(2) - w2[j] + w2[:, None]
    normal = -g / gn[..., None]
    offset = C / (2.0 * gn)
    offset[~valid] = np.inf
    normal[~valid] = 0.0
    return nb, normal, offset


def _regular_triangulation_edges(scaled: np.ndarray, w2: np.ndarray) -> set[tuple[int, int]]:
    n = len(scaled)
    if n <= 6:
        return {(i, j) for i in range(n) for j in range(i + 1, n)}
    c = scaled.mean(axis=0)
    L = float(np.abs(scaled - c).max()) or 1.0
    x = (scaled - c) / L
    lifted = np.column_stack([x, (x ** 2).sum(1) - w2 / L ** 2])
    try:
        hull = ConvexHull(lifted, qhull_options="QJ")
    except QhullError:
        # flat seed set (e.g. a single slice): fall back to the nearest seeds (extra planes
        # are harmless, they are never closer than the true faces)
        _, idx = cKDTree(scaled).query(scaled, k=min(n, 40))
        return {(min(i, j), max(i, j)) for i, row in enumerate(idx) for j in row if i != j}
    lower = hull.simplices[hull.equations[:, -2] < 0]
    edges = set()
    for simplex in lower:
        for a in range(4):
            for b in range(a + 1, 4):
                i, j = int(simplex[a]), int(simplex[b])
                edges.add((min(i, j), max(i, j)))
    return edges


def platelet_metric(alignment_axis, aspect: float) -> np.ndarray:
    """``S = I + (aspect - 1) a a^T`` for the unit vector ``a`` along ``alignment_axis``."""
    a = np.asarray(alignment_axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    return np.eye(3) + (aspect - 1.0) * np.outer(a, a)


def misaligned_axes(axis, n: int, sigma_deg: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors about ``axis``: tangential components Gaussian with std ``sigma_deg``.

    The tilt angle ``theta = |t|`` of the tangential vector ``t`` (radians) rotates ``axis``
    towards ``t``; returns ``(n, 3)``.
    """
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    helper = np.eye(3)[np.argmin(np.abs(a))]
    e1 = np.cross(a, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(a, e1)
    t = rng.normal(0.0, np.deg2rad(sigma_deg), size=(n, 2))
    theta = np.linalg.norm(t, axis=1)
    phi = np.arctan2(t[:, 1], t[:, 0])
    v = (np.cos(theta)[:, None] * a
         + np.sin(theta)[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def grain_geometry(p: dict, rng_seeds: np.random.Generator, rng_axes: np.random.Generator) -> Microstructure:
    """Seeds, weights and easy axes for the resolved parameters ``p`` (see module docstring)."""
    nz, ny, nx = p["shape_px"]
    vz, vy, vx = p["voxel_size_nm"]
    row0 = cap_rows_px(p)
    # sample volume (voxel-centre box) in which seeds live
    vol = (nz * vz) * ((ny - row0) * vy) * (nx * vx)
    diam, thick = float(p["grain_diameter_nm"]), float(p["grain_thickness_nm"])
    aspect = diam / thick
    grain_vol = np.pi / 4.0 * diam * diam * thick
    if p["n_grains"] is None:
        n = max(1, int(round(vol / grain_vol)))
    else:
        n = int(p["n_grains"])
        scale = (vol / n / grain_vol) ** (1.0 / 3.0)
        diam, thick = diam * scale, thick * scale
    metric = platelet_metric(p["alignment_axis"], aspect)
    # scaled volume per grain -> minimum distance of the hard-core (RSA) seed process
    d_min = 0.7 * (vol * aspect / n) ** (1.0 / 3.0)
    seeds = _rsa_voxel_seeds(n, d_min, metric, (nz, ny, nx), row0, (vz, vy, vx), rng_seeds)
    w2 = rng_seeds.uniform(0.0, p["grain_size_spread"], size=n) * d_min ** 2
    axes = misaligned_axes(p["alignment_axis"], n, p["misalignment_sigma_deg"], rng_axes)
    a = np.asarray(p["alignment_axis"], float)
    return Microstructure(seeds, w2, metric, a / np.linalg.norm(a), axes, float(d_min), diam, thick)


def _rsa_voxel_seeds(n, d_min, metric, shape, row0, voxel, rng, max_rounds=30):
    """Random sequential addition of ``n`` voxel-centre seeds, pairwise scaled distance >= d_min."""
    nz, ny, nx = shape
    vz, vy, vx = voxel
    n_vox = nz * (ny - row0) * nx
    if n * 8 > n_vox:
        raise ConfigError(
            f"synth: {n} grains in {n_vox} sample voxels would be smaller than 8 voxels each; use "
            f"fewer or larger grains (or a finer voxel grid)", None)
    accepted = np.empty((0, 3))
    for _ in range(max_rounds):
        m = max(64, 4 * (n - len(accepted)))
        lin = rng.integers(0, n_vox, m)
        _, first = np.unique(lin, return_index=True)   # distinct voxels, in random order
        lin = lin[np.sort(first)]
        m = len(lin)
        kk, rr, cc = np.unravel_index(lin, (nz, ny - row0, nx))
        rr = rr + row0
        cand = np.stack([cc * vx, rr * vy, kk * vz], axis=1).astype(np.float64)
        qc = cand @ metric
        ok = np.ones(m, bool)
        if len(accepted):
            dd, _ = cKDTree(accepted @ metric).query(qc, k=1)
            ok &= dd >= d_min
        tree = cKDTree(qc)
        neighbours = tree.query_ball_point(qc, r=d_min * (1 - 1e-12))
        taken = np.zeros(m, bool)
        want = n - len(accepted)
        for i in range(m):
            if want == 0:
                break
            if ok[i] and not any(taken[j] for j in neighbours[i]):
                taken[i] = True
                want -= 1
        accepted = np.vstack([accepted, cand[taken]])
        if len(accepted) >= n:
            return accepted[:n]
    raise ConfigError(
        f"synth: cannot place {n} grains in the imaged volume (grains too small for the voxel "
        f"grid or too many grains); use fewer grains or larger grains", None)
