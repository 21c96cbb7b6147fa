"""A tetrahedral mesh under local changes (edge collapses, flips, edge splits): element arrays
with an alive flag and, per vertex, the elements around it ("star"), kept up to date lazily."""

from __future__ import annotations

import numpy as np


def unique_faces(faces: np.ndarray, n_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(sort(faces), axis=0, return_inverse, return_counts)`` for (F, 3) vertex
    ids below ``n_points``, through one int64 key per face (several times faster than
    ``axis=0``, which sorts structured rows). Returns (unique sorted faces, inverse, counts)."""
    f = np.sort(np.asarray(faces, np.int64), axis=1)
    if n_points ** 3 >= 2 ** 63:
        u, inv, cnt = np.unique(f, axis=0, return_inverse=True, return_counts=True)
        return u, inv.ravel(), cnt
    key = (f[:, 0] * n_points + f[:, 1]) * n_points + f[:, 2]
    uk, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    u = np.column_stack([uk // (n_points * n_points), (uk // n_points) % n_points, uk % n_points])
    return u, inv, cnt


class MutableTets:
    """Elements (M, 4) and region ids (M,) that local operations replace in place.

    New elements are appended (capacity grows by doubling); removed ones are marked dead.
    New vertices are appended with :meth:`add_point`. :meth:`compact` returns the live mesh
    with unused vertices dropped.
    """

    def __init__(self, points: np.ndarray, tets: np.ndarray, region: np.ndarray):
        self.points = np.asarray(points, float)
        self.n_points = len(self.points)
        self.tets = np.array(tets, np.int64)
        self.region = np.array(region)
        self.alive = np.ones(len(self.tets), bool)
        self.size = len(self.tets)
        n = len(self.points)
        order = np.argsort(self.tets.ravel(), kind="stable")
        self._start = np.zeros(n + 1, np.int64)
        self._start[1:] = np.cumsum(np.bincount(self.tets.ravel(), minlength=n))
        self._base = order // 4
        self._extra: dict[int, list] = {}

    def star(self, v: int) -> np.ndarray:
        """Indices of the live elements holding vertex ``v``."""
        el = self._base[self._start[v]:self._start[v + 1]] if v + 1 < len(self._start) else self._base[:0]
        if v in self._extra:
            el = np.unique(np.concatenate([el, np.asarray(self._extra[v], np.int64)]))
        el = el[el < self.size]
        el = el[self.alive[el]]
        return el[(self.tets[el] == v).any(axis=1)]

    def common(self, *verts: int) -> np.ndarray:
        """Live elements holding all of ``verts``."""
        el = self.star(verts[0])
        for v in verts[1:]:
            el = el[(self.tets[el] == v).any(axis=1)]
        return el

    def replace(self, old: np.ndarray, new_tets: np.ndarray, new_region: np.ndarray) -> None:
        """Kill elements ``old`` and add ``new_tets`` (K, 4) with regions (K,)."""
        self.alive[old] = False
        k = len(new_tets)
        if self.size + k > len(self.tets):
            cap = max(2 * len(self.tets), self.size + k)
            self.tets = np.concatenate([self.tets, np.zeros((cap - len(self.tets), 4), np.int64)])
            self.region = np.concatenate([self.region, np.zeros(cap - len(self.region), self.region.dtype)])
            self.alive = np.concatenate([self.alive, np.zeros(cap - len(self.alive), bool)])
        idx = np.arange(self.size, self.size + k)
        self.tets[idx] = new_tets
        self.region[idx] = new_region
        self.alive[idx] = True
        self.size += k
        for e, t in zip(idx, new_tets):
            for v in t:
                self._extra.setdefault(int(v), []).append(int(e))

    def add_point(self, p: np.ndarray) -> int:
        """Append vertex ``p`` (3,) nm; returns its id (capacity grows by doubling)."""
        if self.n_points == len(self.points):
            self.points = np.concatenate([self.points, np.zeros((max(16, len(self.points)), 3))])
        self.points[self.n_points] = p
        self.n_points += 1
        return self.n_points - 1

    def poor(self, target_deg: float) -> np.ndarray:
        """Live elements whose smallest dihedral angle is below ``target_deg``, worst first."""
        from magtwin.mesh.quality import dihedral_angles_deg

        live = self.live()
        dmin = dihedral_angles_deg(self.points, self.tets[live]).min(axis=1)
        sel = dmin < target_deg
        return live[sel][np.argsort(dmin[sel])]

    def live(self) -> np.ndarray:
        return np.flatnonzero(self.alive[:self.size])

    def compact(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(points (N', 3), tets (M', 4), region (M',)) of the live elements, unused vertices
        dropped and the rest renumbered in order."""
        live = self.live()
        tets, region = self.tets[live], self.region[live]
        used = np.zeros(self.n_points, bool)
        used[tets.ravel()] = True
        renum = np.cumsum(used) - 1
        return self.points[:self.n_points][used], renum[tets], region
