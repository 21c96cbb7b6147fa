"""SEM rendering of one slice from the world geometry (back-scatter contrast, partial volume).

Every image is rendered from the world (sample) geometry at the requested window, so a drifted
field of view shows new material at its edges - nothing is rolled or wrapped. Thin phases (GB
slabs of a few nm, TJ pockets, fiducial trench edges) are rendered by area fraction: pixels
whose footprint an interface touches are sub-sampled ``supersample x supersample`` times, the
others take the value at their centre; then a Gaussian point-spread function blurs the image.

Truth masks use the same geometry at the pixel centres of the frame of slice 0: a voxel is in
``gb_mask`` / ``tj_mask`` when the phase touches the pixel footprint (for the plane of a face
with unit normal ``n``, the footprint reaches ``(|n_x| vx + |n_y| vy) / 2`` from the centre).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from magtwin.synth.cap import cap_intensity, fiducial_line_width_nm, fiducial_segments, segment_distance
from magtwin.synth.microstructure import Microstructure
from magtwin.synth.params import cap_rows_px

_CHUNK = 40_000  # points per evaluation batch (bounds memory of the (P, k, 3) arrays)


class SceneRenderer:
    """Renders ideal (artefact-free) images and truth slices of one sample.

    Parameters
    ----------
    p : resolved parameters (:func:`magtwin.synth.params.resolve_params`)
    micro : the grain geometry
    grain_brightness : (n,) brightness of each grain (full-scale units)
    """

    def __init__(self, p: dict, micro: Microstructure, grain_brightness: np.ndarray):
        self.p = p
        self.micro = micro
        self.grain_brightness = np.asarray(grain_brightness, float)
        self.voxel = tuple(float(v) for v in p["voxel_size_nm"])
        vz, vy, vx = self.voxel
        self.cap_rows = cap_rows_px(p)
        # world y of the cap / sample interface (-inf: no cap)
        self.y_cap = (self.cap_rows - 0.5) * vy if p["cap"] else -np.inf
        self.y_top = self.y_cap if p["cap"] else -0.5 * vy
        self.segs = fiducial_segments(p["fiducial_count"], self.cap_rows, p["shape_px"][2], self.voxel) \
            if p["cap"] else np.zeros((0, 2, 2))
        self.trench_nm = fiducial_line_width_nm(self.cap_rows, self.voxel) if p["cap"] else 0.0
        self.half_gb = 0.5 * float(p["gb_thickness_nm"])
        self.half_tj = 0.5 * float(p["tj_size_nm"])
        nrm = micro.plane_normal
        self._reach = 0.5 * (np.abs(nrm[..., 0]) * vx + np.abs(nrm[..., 1]) * vy)  # (n, K)

    # -- point evaluation ----------------------------------------------------------------
    def _footprint(self, pts, hint=None):
        """Owner and the two smallest ``distance - pixel reach`` over the owner's faces: a face
        (slab of half-thickness h) touches the pixel footprint iff that value is < h."""
        owner, dist = self.micro.cells(pts, hint)
        return owner, _two_smallest(dist - self._reach[owner])

    def point_brightness(self, x: np.ndarray, y: np.ndarray, z: float,
                         hint: np.ndarray | None = None) -> np.ndarray:
        """Brightness at world points (``x``, ``y`` 1-D arrays in nm, one ``z``); ``hint``:
        optional guessed grain of each point (see :meth:`Microstructure.cells`)."""
        out = np.empty(len(x))
        capm = y < self.y_cap
        if capm.any():
            out[capm] = cap_intensity(x[capm], y[capm], self.segs, self.trench_nm,
                                      self.p["cap_intensity"], self.p["fiducial_intensity"])
        sample = np.flatnonzero(~capm)
        for sl in _chunks(len(sample)):
            idx = sample[sl]
            pts = np.stack([x[idx], y[idx], np.full(len(idx), z)], axis=1)
            owner, dist = self.micro.cells(pts, None if hint is None else hint[idx])
            d12 = _two_smallest(dist)
            val = self.grain_brightness[owner]
            if self.half_gb > 0:
                val = np.where(d12[:, 0] < self.half_gb, self.p["gb_intensity"], val)
            if self.half_tj > 0:
                val = np.where(d12[:, 1] < self.half_tj, self.p["tj_intensity"], val)
            out[idx] = val
        return out

    def _centre_grid(self, ys: np.ndarray, xs: np.ndarray, z: float, block: int = 4):
        """Owner ``(h, w)`` and two smallest footprint values ``(h, w, 2)`` at the pixel centres
        ``ys x xs`` (world nm, all in the sample, below the cap).

        Exact shortcut: cells are convex and face distances affine, so a block of pixels whose
        four corner centres share their owner and lie farther than every thin phase from all
        of its faces is entirely interior (its footprint values are reported as inf).
        """
        h, w = len(ys), len(xs)
        owner = np.full((h, w), -1, np.int64)
        e12 = np.full((h, w, 2), np.inf)
        if h == 0 or w == 0:
            return owner, e12
        ci = np.unique(np.r_[np.arange(0, h, block), h - 1])
        cj = np.unique(np.r_[np.arange(0, w, block), w - 1])
        pure = np.zeros((h, w), bool)
        hint = np.full((h, w), -1, np.int64)
        if len(ci) > 1 and len(cj) > 1:
            CY, CX = np.meshgrid(ys[ci], xs[cj], indexing="ij")
            cpts = np.stack([CX.ravel(), CY.ravel(), np.full(CX.size, z)], axis=1)
            co, ce = self._footprint(cpts)
            co = co.reshape(CX.shape)
            ok = ce[:, 0].reshape(CX.shape) >= max(self.half_gb, self.half_tj, 1e-9)
            tl = co[:-1, :-1]
            pure_b = ((tl == co[1:, :-1]) & (tl == co[:-1, 1:]) & (tl == co[1:, 1:])
                      & ok[:-1, :-1] & ok[1:, :-1] & ok[:-1, 1:] & ok[1:, 1:])
            bi = np.clip(np.searchsorted(ci, np.arange(h), "right") - 1, 0, len(ci) - 2)
            bj = np.clip(np.searchsorted(cj, np.arange(w), "right") - 1, 0, len(cj) - 2)
            pure = pure_b[bi][:, bj]
            hint = tl[bi][:, bj]
            owner[pure] = hint[pure]
        rest = np.flatnonzero(~pure.ravel())
        if len(rest):
            Y, X = np.meshgrid(ys, xs, indexing="ij")
            Y, X, hint, owner_f, e12_f = Y.ravel(), X.ravel(), hint.ravel(), owner.ravel(), e12.reshape(-1, 2)
            for sl in _chunks(len(rest)):
                idx = rest[sl]
                pts = np.stack([X[idx], Y[idx], np.full(len(idx), z)], axis=1)
                owner_f[idx], e12_f[idx] = self._footprint(pts, hint[idx])
        return owner, e12

    # -- images --------------------------------------------------------------------------
    def ideal_window(self, k: int, origin_px, shape) -> np.ndarray:
        """Artefact-free image ``shape = (h, w)`` of slice ``k`` whose pixel ``(0, 0)`` is at
        ``origin_px = (y0, x0)`` (fractional px) in the frame of slice 0; float64."""
        vz, vy, vx = self.voxel
        sigma = float(self.p["psf_sigma_px"])
        m = int(np.ceil(4 * sigma)) + 1 if sigma > 0 else 0
        h, w = int(shape[0]) + 2 * m, int(shape[1]) + 2 * m
        ys = (float(origin_px[0]) - m + np.arange(h)) * vy
        xs = (float(origin_px[1]) - m + np.arange(w)) * vx
        z = k * vz
        img = np.empty((h, w))
        mixed = np.zeros((h, w), bool)
        owner = np.full((h, w), -1, np.int64)
        cap_r = ys < self.y_cap
        if cap_r.any():
            Yc, Xc = np.meshgrid(ys[cap_r], xs, indexing="ij")
            img[cap_r] = cap_intensity(Xc, Yc, self.segs, self.trench_nm,
                                       self.p["cap_intensity"], self.p["fiducial_intensity"])
            if len(self.segs):
                # trench edges are sub-sampled
                half_diag = 0.5 * np.hypot(vx, vy)
                mixed[cap_r] = np.abs(segment_distance(Xc, Yc, self.segs) - 0.5 * self.trench_nm) < half_diag
        s_r = ~cap_r
        if s_r.any():
            o, e12 = self._centre_grid(ys[s_r], xs, z)
            owner[s_r] = o
            img[s_r] = self.grain_brightness[o]
            # a face, a GB slab or a TJ pocket touches the pixel: render by area fraction
            mixed[s_r] = (e12[..., 0] < max(self.half_gb, 1e-9)) | (e12[..., 1] < self.half_tj)
        mixed[np.abs(ys - self.y_cap) < vy] = True   # the cap / sample interface
        ss = int(self.p["supersample"])
        mi = np.flatnonzero(mixed.ravel())
        if len(mi):
            Y, X = np.meshgrid(ys, xs, indexing="ij")
            off = ((np.arange(ss) + 0.5) / ss - 0.5)
            oy, ox = np.meshgrid(off * vy, off * vx, indexing="ij")
            sub_y = (Y.ravel()[mi][:, None] + oy.ravel()[None, :]).ravel()
            sub_x = (X.ravel()[mi][:, None] + ox.ravel()[None, :]).ravel()
            hint = np.repeat(owner.ravel()[mi], ss * ss)
            val = self.point_brightness(sub_x, sub_y, z, hint).reshape(len(mi), ss * ss)
            img.ravel()[mi] = val.mean(axis=1)
        if sigma > 0:
            img = ndimage.gaussian_filter(img, sigma, mode="nearest")[m:h - m, m:w - m]
        return img

    def truth_slice(self, k: int):
        """Ground truth of slice ``k`` in the frame of slice 0: ``labels`` (uint32, grain id =
        index + 1, 0 in the cap), ``gb`` and ``tj`` (bool, phase touches the pixel)."""
        nz, ny, nx = self.p["shape_px"]
        vz, vy, vx = self.voxel
        ys = np.arange(ny) * vy
        s_r = ys > self.y_cap
        lab = np.zeros((ny, nx), np.uint32)
        gb = np.zeros((ny, nx), bool)
        tj = np.zeros((ny, nx), bool)
        o, e12 = self._centre_grid(ys[s_r], np.arange(nx) * vx, k * vz)
        lab[s_r] = o + 1
        gb[s_r] = e12[..., 0] < self.half_gb
        tj[s_r] = e12[..., 1] < self.half_tj
        return lab, gb, tj


def _two_smallest(d: np.ndarray) -> np.ndarray:
    """``(P, 2)`` smallest and second-smallest value per row (inf when a row has one)."""
    if d.shape[1] == 1:
        return np.column_stack([d[:, 0], np.full(len(d), np.inf)])
    d = d.copy()
    rows = np.arange(len(d))
    first = d.argmin(axis=1)
    m1 = d[rows, first]
    d[rows, first] = np.inf
    return np.column_stack([m1, d.min(axis=1)])


def _chunks(n: int, size: int = _CHUNK):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))
