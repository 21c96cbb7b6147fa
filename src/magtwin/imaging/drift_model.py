"""Drift without a fiducial region: local-patch registration and a bias-aware drift model.

Why whole-slice registration drifts away without a cap
------------------------------------------------------
Grain boundaries inclined to the slice plane move between slices: a face with unit normal
``n`` moves along its in-plane normal by ``-n_z / |n_xy| * dz`` per slice, which for the
platelet side faces of a hot-deformed magnet (normals in the x-z plane) is up to a few pixels
per slice along x. A registration of two neighbouring slices measures the drift increment
plus a weighted mean of these motions, the *structural bias* ``b_k``. Measured on the
synthetic sample (seeds 1-3, 128 x 160 px, 10 nm slices): the bias of one pair has a
standard deviation of 0.05 px along y and 0.3-0.45 px along x, is correlated over 5-10 slices
(the faces persist over a grain's depth); whole-slice phase correlation adds a systematic
part on top. Summed over a stack this is a random walk of several pixels (held-out seeds
41-46, 128 x 160 px, random-walk drift, RMS over 30 / 60 / 120 / 240 slices: chained
whole-slice phase correlation 3.3 / 5.1 / 4.8 / 5.0 px, chained patch means 3.5 / 5.5 / 8.6 /
11.7 px, PyStack3D's chain 3.0 / 3.5 / 3.5 / 4.3 px, no correction at all 1.8 / 2.1 / 2.5 /
3.8 px; ``benchmarks/align_nocap.py``). Registering against
slices further back does not help: the faces move linearly with depth, so the bias grows with
the baseline, and correlations fall below 0.4 beyond 3 slices (measured errors 2-3x those of
chained neighbouring pairs).

Method
------
1. Each slice is registered to the previous one on ``grid`` local patches: the whole-slice
   phase-correlation shift refined per patch by windowed gradient least squares
   (:func:`refine_shifts_lk`, unbiased on a pure translation); the drift increment ``m_k`` is
   the robust mean of the patch shifts. The drift is common to all patches, the structural motion is not: the patch
   scatter measures the bias of ``m_k`` (standard error of the mean), and products of the
   patch deviations at slices ``k`` and ``k + l`` its autocovariance ``C_b(l)``
   (:func:`bias_autocovariance`).
2. The drift increments are modelled as white (a random walk, step variance ``sigma_d^2``,
   estimated by the Whittle likelihood of the increments given ``C_b``), plus a constant
   drift rate with prior standard deviation ``tau`` (``drift_rate_sigma_px``; default
   ``auto``: kept when the mean increment exceeds :data:`STEADY_RATE_Z` times what the random
   walk and the bias explain, :func:`steady_rate_variance`; with 0 a steady drift is damped
   like the bias: 17 px error after 120 slices of 0.3 px/slice instead of 6.6 px).
3. The increments are the linear minimum-variance (Wiener / Gaussian-process) estimate
   ``d = C_d (C_d + C_b)^-1 m`` and the shifts their cumulative sum: high frequencies, where
   the drift dominates, pass; the slowly varying bias, which dominates at low frequencies,
   is damped in proportion.
4. The uncertainty of each shift is the posterior standard deviation of that model
   (:func:`wiener_shifts`): it includes the registration noise, the structural bias
   (estimated from the data, with its correlation along the stack) and the part of the true
   drift the data cannot separate from it. It does NOT include a bias shared by all patches
   (a preferred inclination of the whole microstructure) nor the sampling error of
   ``sigma_d`` and ``C_b``.

Why the error grows like sqrt(n) without a fixed reference
---------------------------------------------------------
Grain boundaries are planes, so each moves by a constant step per slice while it is in view,
and the drift is common to the whole slice: only a global linear trend of the drift is
unobservable - but that one is unobservable by any image-only method. A uniform shear
``x -> x + c z`` maps a tessellation of convex grains with planar faces onto another one, so
no geometric property of the reconstruction can pin ``c``; only statistics can (isotropy:
the mean inclination of the faces is zero), and the number of independent grains behind
that mean grows with the depth imaged, ``c`` is then known to ``~ 1/sqrt(n)`` and the
position at slice n to ``~ sqrt(n)``. The random-walk prior adds the same kind of
information (the mean of n steps is known to ``sigma_d / sqrt(n)``). In this model the error
variance grows linearly with n at the rate ``S_d S_b(0) / (S_d + S_b(0))`` (drift step
variance ``S_d``, zero-frequency spectral density ``S_b(0)`` of the structural bias), and an
explicit per-face (or per-patch piecewise-constant) model of the structural motion reaches
the same rate: the faces' rates replace ``S_b(0)`` by ``sigma_w^2 / (faces entering per
slice)``, the same quantity. Measured against the truth (seeds 1-13, 128 x 160 px, 4 x 4
patches): the patch-mean structural shift summed over L slices has variance 0.7 / 5 / 15 /
27 / 37 px^2 along x at L = 3 / 10 / 20 / 40 / 80 (one patch: 17 / 130 / 330 / 560 /
960 px^2 - a patch follows its faces, and over a grain's depth they move by the grain's
tilt); neither more or fewer patches (6 x 6, 8 x 8), nor weighting them by their gradient
energy, nor longer bias lags (8-48) changed the error beyond seed-to-seed scatter (mean RMS
over 12 stacks 1.0 / 1.4 / 2.0 px at 30 / 60 / 120 slices for every variant within +-15 %).
The coefficient falls with the number of grains per slice: on 960 x 1024 px slices of the
benchmark sample (seed 7, below the cap) the RMS error was 0.17 / 0.59 / 0.65 px over 30 /
60 / 120 slices, against 1.6 / 1.9 / 2.0 px on 128 x 160 px (``benchmarks/align_nocap.py``). ``uncertainty_px`` is the model's posterior standard
deviation, so it grows the same way.

Patch estimator: the peak of a windowed cross-correlation of a patch narrower than the
grains is pulled towards zero shift (the window does not move with the content): 4 x 4
patches of 32 x 40 px recovered 0.74 of a pure x translation and about half of a steady x
drift. The gradient least-squares refinement recovers a pure translation with slope
1.00 +- 0.02 per axis (seeds 1-3 and 71-72, +-2 px).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import ndimage
from scipy.linalg import solve_toeplitz
from skimage.filters import window

#: fewer slice pairs than this: no drift model - its step variance is not estimable (seeds
#: 1-3, 10-16 slices: same RMS error as the plain chain, but 70-75 % instead of 96 % of the
#: shifts within 2 sigma)
MIN_PAIRS_FOR_MODEL = 20

#: a mean drift increment beyond this many standard deviations of the random-walk + bias
#: model is kept as a steady drift rate (``drift_rate_sigma_px: auto``). Random-walk stacks
#: (seeds 1-4, 6-13, 30 and 120 slices): 2 gave one false detection in 24 stacks (seed 6,
#: 30 slices: 0.8 -> 5.1 px), 3 none; a steady 0.3 px/slice drift (seed 5) is detected
#: at 30 and 120 slices either way. Held-out seeds 41-50 (128 x 160 px, ``benchmarks/
#: align_nocap.py``, ``steady_z_sweep``): lower levels keep more of a steady drift but take
#: the bias of random-walk stacks for one (mean RMS at 120 slices, random walk | steady:
#: z = 3: 2.0 | 10.9 px, 2: 4.4 | 5.7, 1: 5.7 | 5.7), so 3 stays.
STEADY_RATE_Z = 3.0

#: patch shifts further than this (px) from the median of their pair are not averaged (a
#: featureless patch or a wrong correlation peak). Structural motions are skewed, so a
#: tighter clip biases the mean towards their mode (seeds 1-3, RMS at 30/60/120 slices:
#: 1.3/2.2/4.2 px at 1 px, 1.2/1.4/1.8 at 2 px, 1.2/1.2/1.3 at 3 px, 1.2/1.3/1.4 unclipped).
PATCH_CLIP_PX = 3.0


@lru_cache(maxsize=32)
def hann(shape: tuple[int, int]) -> np.ndarray:
    """2-D Hann window (cached: scikit-image builds it by warping, slower than the FFT)."""
    w = window("hann", shape)
    w.setflags(write=False)
    return w


def patch_tiles(shape: tuple[int, int], offset: tuple[int, int], grid: tuple[int, int]):
    """Equal tiles ``(ys, xs, h, w)`` (start rows and columns, tile size) of a ``grid`` over the
    part of a ``shape`` slice that a slice displaced by the integer ``offset`` still covers
    (a few remainder rows/columns are left out); patches smaller than 8 px along an axis make
    the grid coarser."""
    ny, nx = shape
    cy, cx = int(offset[0]), int(offset[1])
    y0, y1 = max(0, cy), min(ny, ny + cy)     # rows of ref whose content mov covers
    x0, x1 = max(0, cx), min(nx, nx + cx)
    gy = max(1, min(int(grid[0]), (y1 - y0) // 8))
    gx = max(1, min(int(grid[1]), (x1 - x0) // 8))
    h, w = (y1 - y0) // gy, (x1 - x0) // gx
    return y0 + h * np.arange(gy), x0 + w * np.arange(gx), h, w


def patch_stack(img: np.ndarray, ys, xs, h: int, w: int) -> np.ndarray:
    """The patches ``(P, h, w)`` of ``img`` at ``ys x xs`` (float64)."""
    a = np.asarray(img, np.float64)
    return np.stack([a[y:y + h, x:x + w] for y in ys for x in xs])


def shifted_patches(img: np.ndarray, ys, xs, h: int, w: int, t: np.ndarray, margin: int = 4,
                    coeffs: np.ndarray | None = None) -> np.ndarray:
    """Patches ``(P, h, w)`` at ``ys x xs`` of ``ndimage.shift(img, t_p)``, one shift ``t``
    (P, 2) px per patch (cubic spline; rows and columns beyond the image repeat its edge - the
    patch window is ~0 there). ``coeffs``: the image's cubic spline coefficients
    (``ndimage.spline_filter(img, 3, mode="nearest")``), computed here if not given - pass
    them when shifting the same image repeatedly (the prefilter costs as much as all the
    patch shifts)."""
    c = ndimage.spline_filter(np.asarray(img, np.float64), 3, mode="nearest") if coeffs is None else coeffs
    ny, nx = c.shape
    out = np.empty((len(t), h, w))
    for i, (y, x) in enumerate((y, x) for y in ys for x in xs):
        if not np.isfinite(t[i]).all():  # a patch already given up
            out[i] = 0.0
            continue
        ti = np.round(t[i]).astype(int)
        rows = np.clip(np.arange(y - ti[0] - margin, y - ti[0] + h + margin), 0, ny - 1)
        cols = np.clip(np.arange(x - ti[1] - margin, x - ti[1] + w + margin), 0, nx - 1)
        cut = c[np.ix_(rows, cols)]
        for axis, f in enumerate(t[i] - ti):
            cut = ndimage.correlate1d(cut, _bspline3_taps(f), axis=axis, mode="nearest")
        out[i] = cut[margin:margin + h, margin:margin + w]
    return out


def _bspline3_taps(f: float) -> np.ndarray:
    """Weights ``w[m + 2] = beta3(-f - m)``, m = -2..2: a shift by ``f`` px of a cubic spline
    from its coefficients, ``out[i] = sum_m w[m + 2] c[i + m]`` (the same as
    ``ndimage.shift(..., order=3, prefilter=False)``, separable and much cheaper)."""
    x = np.abs(-float(f) - np.arange(-2, 3))
    return np.where(x < 1, 2.0 / 3.0 - x ** 2 + 0.5 * x ** 3, np.where(x < 2, (2.0 - x) ** 3 / 6.0, 0.0))


def refine_shifts_lk(ref_patches: np.ndarray, mov: np.ndarray, ys, xs, t0: np.ndarray,
                     iterations: int = 3, max_step_px: float = 1.0) -> np.ndarray:
    """Shifts ``(P, 2)`` (dy, dx) px with ``ndimage.shift(mov, t_p) ~ ref`` on each patch,
    refined from ``t0`` (P, 2) by windowed gradient least squares (Lucas & Kanade, IJCAI 1981):
    each iteration warps the ``mov`` patch by the current shift and solves
    ``(sum W g g^T) r = sum W g (mov_w - ref)`` for the residual ``r`` (Hann weights ``W``,
    ``g`` the gradient of the mean of both patches, their weighted means matched first).

    Why not the peak of the windowed cross-correlation: the window stays put while the
    content moves, so the correlation is the signal's autocorrelation times the window's,
    and its peak is pulled towards zero shift - on the synthetic sample a 32 x 40 px patch
    recovered 0.74 of a pure x translation (slope over random shifts of +-2 px, seeds 1-3),
    and the iteration converges where the warped patch equals the reference, so its fixed
    point is the translation itself (measured slope 1.00 +- 0.01 per axis). A patch without
    gradient along an axis (its normal matrix singular) gives NaN: not averaged.
    """
    h, w = ref_patches.shape[1:]
    wgt = hann((h, w))
    ws = wgt.sum()
    ref_c = ref_patches - (ref_patches * wgt).sum(axis=(1, 2), keepdims=True) / ws
    t = np.array(t0, np.float64)
    coeffs = ndimage.spline_filter(np.asarray(mov, np.float64), 3, mode="nearest")
    for _ in range(int(iterations)):
        a, b = _lk_normal_equations(ref_c, mov, ys, xs, t, wgt, coeffs)
        a, b = a.sum(axis=1), b.sum(axis=1)
        det = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] ** 2
        ok = det > 1e-9 * np.maximum(a[:, 0, 0] * a[:, 1, 1], 1e-300)
        r = np.full_like(t, np.nan)
        r[ok] = np.linalg.solve(a[ok], b[ok][..., None])[..., 0]
        t = t + np.clip(r, -max_step_px, max_step_px)
    return t


def _lk_normal_equations(ref_c: np.ndarray, mov: np.ndarray, ys, xs, t: np.ndarray,
                        wgt: np.ndarray, coeffs: np.ndarray, n_blocks: int = 1,
                        match_contrast: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One gradient least-squares step of :func:`refine_shifts_lk`: the normal matrix
    ``(P, B, 2, 2)`` and right-hand side ``(P, B, 2)`` of each patch, summed over each of
    ``n_blocks`` column blocks of the patch (``B = n_blocks``; their sums over blocks are the
    patch's equations). ``ref_c`` (P, h, w): reference patches, weighted mean removed."""
    h, w = ref_c.shape[1:]
    ws = wgt.sum()
    m = shifted_patches(mov, ys, xs, h, w, t, coeffs=coeffs)
    m = m - (m * wgt).sum(axis=(1, 2), keepdims=True) / ws
    if match_contrast:
        m = m * np.sqrt((wgt * ref_c ** 2).sum(axis=(1, 2), keepdims=True)
                        / np.maximum((wgt * m ** 2).sum(axis=(1, 2), keepdims=True), 1e-300))
    gy, gx = np.gradient(0.5 * (ref_c + m), axis=(1, 2))
    diff = m - ref_c
    starts = np.array([c[0] for c in np.array_split(np.arange(w), int(n_blocks))])

    def bsum(v):  # (P, h, w) -> (P, B)
        return np.add.reduceat((wgt * v).sum(axis=1), starts, axis=-1)

    gyy, gxy, gxx = bsum(gy * gy), bsum(gy * gx), bsum(gx * gx)
    a = np.stack([np.stack([gyy, gxy], -1), np.stack([gxy, gxx], -1)], -2)
    b = np.stack([bsum(gy * diff), bsum(gx * diff)], -1)
    return a, b


def refine_band(ref: np.ndarray, mov: np.ndarray, t0: Sequence[float], iterations: int = 3,
                n_blocks: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Shift ``t`` (2,) px of a whole band ``mov`` onto ``ref`` (``ndimage.shift(mov, t) ~
    ref``), refined from ``t0`` by windowed gradient least squares (the iteration of
    :func:`refine_shifts_lk` on one patch, the whole band), and its covariance ``(2, 2)``
    px^2 from the data.

    Why refine: phase correlation of a band cut by the image edge (the cap is the top rows)
    is pulled towards zero shift across the band by the Hann window, which stays put while
    the content moves (the effect the patch refinement removes): 5-9 % of dy on the cap
    band (seeds 101-112, 256-1024 px wide), up to 0.16 px RMS over a stack; refined, the
    slope of the dy error against dy is within +-0.03. The reference's weighted variance is
    matched too (a change of contrast between slices, times the window's gradient, pulls
    the shift: seed 124, twice the noise, dy error 0.048 -> 0.039 px).

    Covariance: the cluster-robust ("sandwich") estimate (White, Econometrica 48, 817
    (1980); Liang & Zeger, Biometrika 73, 13 (1986)) with ``n_blocks`` column blocks as
    clusters, ``A^-1 (B/(B-1) sum_q b_q b_q^T) A^-1``, where ``A`` is the normal matrix and
    ``b_q`` the block's gradient of the least-squares misfit at the solution. It measures
    everything that makes the two images differ and is independent between column blocks:
    noise of both slices, curtain residuals (vertical stripes, so the clusters are
    columns), changes of the sample rows in the band - errors of the images themselves,
    which the pair residuals of a least-squares solution cannot see (they are common to
    every registration of that slice). Not included: a difference shared by all columns
    (e.g. a shading change across the band's rows).
    """
    t = np.asarray(t0, np.float64).copy()
    h, w = ref.shape
    n_blocks = max(2, min(int(n_blocks), w // 4))
    ys, xs = np.array([0]), np.array([0])
    wgt = hann((h, w))
    ref_p = np.asarray(ref, np.float64)[None]
    ref_c = ref_p - (ref_p * wgt).sum(axis=(1, 2), keepdims=True) / wgt.sum()
    coeffs = ndimage.spline_filter(np.asarray(mov, np.float64), 3, mode="nearest")
    nan = np.full((2, 2), np.nan)
    for _ in range(max(int(iterations), 1)):
        a, b = _lk_normal_equations(ref_c, mov, ys, xs, t[None], wgt, coeffs, n_blocks, True)
        a, b = a[0], b[0]                            # (B, 2, 2), (B, 2) per column block
        try:
            ainv = np.linalg.inv(a.sum(axis=0))
        except np.linalg.LinAlgError:                # a band without gradient along an axis
            return np.asarray(t0, np.float64), nan
        r = ainv @ b.sum(axis=0)
        if not np.isfinite(r).all():
            return np.asarray(t0, np.float64), nan
        t = t + np.clip(r, -1.0, 1.0)
    # each block's misfit gradient at the final shift, to first order (one evaluation saved)
    g = b - a @ np.clip(r, -1.0, 1.0)
    g = g - g.mean(axis=0)
    meat = len(g) / (len(g) - 1.0) * g.T @ g
    return t, ainv @ meat @ ainv


def register_patches(ref: np.ndarray, mov: np.ndarray, t0: Sequence[float],
                     grid: tuple[int, int] = (4, 4), iterations: int = 3) -> np.ndarray:
    """Shifts ``(P, 2)`` (dy, dx) px of ``grid`` patches of ``mov`` onto ``ref`` (same
    convention as :func:`magtwin.imaging.align.register`: ``ndimage.shift(mov, t) ~ ref``),
    starting from the whole-slice shift ``t0`` and refined per patch
    (:func:`refine_shifts_lk`).

    Patches tile the part of ``ref`` that ``mov`` still covers after the integer part of
    ``t0``, so a drift larger than a patch is still measured.
    """
    t0 = np.asarray(t0, np.float64)
    cy, cx = (int(round(v)) for v in t0)
    ys, xs, h, w = patch_tiles(ref.shape, (cy, cx), grid)
    start = np.tile(t0, (len(ys) * len(xs), 1))
    return refine_shifts_lk(patch_stack(ref, ys, xs, h, w), mov, ys, xs, start, iterations)


def robust_patch_mean(shifts: np.ndarray, clip_px: float = PATCH_CLIP_PX
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(2,)`` of patch shifts ``(P, 2)`` per axis over the patches within ``clip_px``
    of the median, and that mask ``(P, 2)`` (NaN entries: missing patches, never averaged)."""
    with np.errstate(invalid="ignore"):
        ok = np.abs(shifts - np.nanmedian(shifts, axis=0)) <= clip_px
    mean = np.where(ok, shifts, 0.0).sum(axis=0) / np.maximum(ok.sum(axis=0), 1)
    return mean, ok


def bias_autocovariance(patch_shifts: np.ndarray, ok: np.ndarray, mean: np.ndarray,
                        max_lag: int) -> np.ndarray:
    """Autocovariance ``C_b(l)``, ``l = 0..max_lag``, ``(max_lag + 1, 2)`` px^2, of the bias of
    the patch-mean increments, from the patch scatter.

    ``patch_shifts`` (K, P, 2), ``ok`` (K, P, 2) mask of the averaged patches, ``mean`` (K, 2).
    With deviations ``u_pk`` of patch p from the mean of pair k, and ``n_k`` averaged patches,
    ``C_b(l) = < sum_p u_pk u_p,k+l / (n_k n_k+l) * n_k / (n_k - 1) >_k`` - the squared
    standard error of a mean at ``l = 0``, and the covariance of two pairs' errors carried by
    the same patch (the same faces) at ``l > 0``. Independent patches are assumed.
    """
    K = len(patch_shifts)
    u = np.where(ok, np.nan_to_num(patch_shifts - mean[:, None, :]), 0.0)
    n = ok.sum(axis=1).astype(np.float64)                        # (K, 2)
    corr = np.maximum(n, 2.0) / np.maximum(n - 1.0, 1.0)
    c = np.zeros((max_lag + 1, 2))
    for lag in range(min(max_lag, K - 1) + 1):
        prod = (u[:K - lag] * u[lag:]).sum(axis=1)
        c[lag] = np.mean(prod / np.maximum(n[:K - lag] * n[lag:], 1.0) * corr[:K - lag], axis=0)
    return c


def _tapered(cb: np.ndarray) -> np.ndarray:
    """Bartlett-tapered autocovariance (keeps the Toeplitz matrix positive semi-definite)."""
    L = len(cb) - 1
    w = 1.0 - np.arange(L + 1) / (L + 1.0)
    return cb * w.reshape((-1,) + (1,) * (cb.ndim - 1))


def _bias_spectrum(cb: np.ndarray, n: int) -> np.ndarray:
    f = np.fft.rfftfreq(n)
    lags = np.arange(1, len(cb))
    s = cb[0] + 2.0 * (cb[1:][None, :] * np.cos(2 * np.pi * f[:, None] * lags[None, :])).sum(axis=1)
    return np.maximum(s, 1e-3 * max(cb[0], 1e-12))


def drift_step_variance(m: np.ndarray, cb: np.ndarray) -> float:
    """Whittle maximum-likelihood step variance ``sigma_d^2`` (px^2) of a random-walk drift
    whose increments ``m`` (K,) carry a bias of autocovariance ``cb`` (tapered, (L+1,))."""
    K = len(m)
    if K < 2:
        return float(max(np.mean(m ** 2) - cb[0], 1e-6))
    sb = _bias_spectrum(cb, K)
    per = np.abs(np.fft.rfft(m)) ** 2 / K
    top = max(float(np.mean(m ** 2)), float(cb[0]), 1e-4) * 2.0
    grid = np.geomspace(1e-6, top, 120)
    s = grid[:, None] + sb[None, :]
    nll = (np.log(s) + per[None, :] / s).sum(axis=1)
    return float(grid[int(np.argmin(nll))])


def wiener_shifts(m: np.ndarray, cb: np.ndarray, sd2: float, tau: float = 0.0,
                  n_uncertainty: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Shifts ``(K + 1,)`` (``s_0 = 0``) and their posterior standard deviations from measured
    increments ``m`` (K,) = drift increments + bias, for one axis.

    Model: increments ``d ~ N(0, C_d)``, ``C_d = sd2 I + tau^2 1 1^T`` (random walk plus an
    unknown constant rate), bias ``~ N(0, T(cb))`` (Toeplitz). Estimate
    ``d_hat = C_d A^-1 m`` with ``A = C_d + T(cb)``; ``var(s_k) = 1_k^T (C_d - C_d A^-1 C_d) 1_k``,
    evaluated at up to ``n_uncertainty`` slices and interpolated in between.
    """
    K = len(m)
    col = np.zeros(K)
    L = min(len(cb), K)
    col[:L] = cb[:L]
    col[0] += sd2

    one = solve_toeplitz(col, np.ones(K)) if tau > 0 else None

    def solve(rhs):  # (T + tau^2 1 1^T)^-1 rhs by Sherman-Morrison (Levinson, O(K^2))
        x = solve_toeplitz(col, rhs)
        if one is not None:
            x = x - one * (tau ** 2 * x.sum() / (1.0 + tau ** 2 * one.sum()))
        return x

    y = solve(m)
    d = sd2 * y + tau ** 2 * y.sum()
    s = np.r_[0.0, np.cumsum(d)]
    ks = np.unique(np.linspace(1, K, min(n_uncertainty, K)).round().astype(int))
    var = np.empty(len(ks))
    for i, k in enumerate(ks):
        v = np.full(K, tau ** 2 * k)
        v[:k] += sd2
        var[i] = sd2 * k + tau ** 2 * k * k - v @ solve(v)
    sig = np.sqrt(np.maximum(np.interp(np.arange(K + 1), np.r_[0, ks], np.r_[0.0, var]), 0.0))
    return s, sig


def steady_rate_variance(m: np.ndarray, cb: np.ndarray, sd2: float, z: float = STEADY_RATE_Z) -> float:
    """Prior variance ``tau^2`` (px^2 per slice^2) of a constant drift rate, estimated from the
    mean increment ``x = mean(m)``: under the random-walk + bias model alone ``x`` has variance
    ``v = (K sd2 + 1^T T(cb) 1) / K^2``; a mean beyond ``z sqrt(v)`` is taken as a steady drift
    and ``tau^2 = x^2 - v`` (its type-II maximum likelihood estimate), else 0."""
    K = len(m)
    v = (K * sd2 + toeplitz_block_sum(cb, K)) / K ** 2
    x2 = float(np.mean(m)) ** 2
    return x2 - v if x2 > z * z * v else 0.0


def toeplitz_block_sum(c: np.ndarray, k: int) -> float:
    """Sum of the leading ``k x k`` block of the symmetric Toeplitz matrix with first column
    ``c`` (zero beyond its length): the variance of a sum of k terms of autocovariance c."""
    lags = np.arange(min(len(c), k))
    return float(k * c[0] + 2.0 * ((k - lags[1:]) * c[lags[1:]]).sum())


def drift_without_reference(patch_shifts: np.ndarray, max_lag: int = 16,
                            drift_rate_sigma_px: float | str = "auto",
                            steady_rate_z: float = STEADY_RATE_Z) -> dict:
    """Shifts ``(K + 1, 2)`` and uncertainties from the patch shifts ``(K, P, 2)`` of K
    consecutive pairs (see the module docstring; ``steady_rate_z``: the detection level of
    :func:`steady_rate_variance` with ``drift_rate_sigma_px: auto``). Returns ``shifts_px``, ``uncertainty_px``,
    ``increments_px`` (the patch means), ``bias_acov_px2`` (L+1, 2), ``drift_step_px`` (2,)
    (estimated random-walk step), ``bias_step_px`` (2,) (standard error of one increment)."""
    ps = np.asarray(patch_shifts, np.float64)
    K = len(ps)
    means, oks = zip(*(robust_patch_mean(p) for p in ps)) if K else ((), ())
    m = np.asarray(means).reshape(K, 2)
    ok = np.asarray(oks).reshape(ps.shape)
    L = max(0, min(int(max_lag), K - 1))
    cb = _tapered(bias_autocovariance(ps, ok, m, L))
    shifts = np.zeros((K + 1, 2))
    sigma = np.zeros((K + 1, 2))
    sd2 = np.zeros(2)
    tau = np.zeros(2)
    for ax in range(2):
        if K < MIN_PAIRS_FOR_MODEL:
            # too few pairs to estimate the drift's step: chain the measured increments, and
            # carry their whole bias into the uncertainty (the model's limit sd2 -> inf)
            sd2[ax] = tau[ax] = np.nan
            shifts[:, ax] = np.r_[0.0, np.cumsum(m[:, ax])]
            sigma[:, ax] = np.sqrt(np.maximum(np.r_[0.0, [toeplitz_block_sum(cb[:, ax], k)
                                                           for k in range(1, K + 1)]], 0.0))
            continue
        sd2[ax] = drift_step_variance(m[:, ax], cb[:, ax])
        if drift_rate_sigma_px == "auto":
            tau[ax] = np.sqrt(steady_rate_variance(m[:, ax], cb[:, ax], sd2[ax], steady_rate_z))
        else:
            tau[ax] = float(drift_rate_sigma_px)
        shifts[:, ax], sigma[:, ax] = wiener_shifts(m[:, ax], cb[:, ax], sd2[ax], tau[ax])
    return {"shifts_px": shifts, "uncertainty_px": sigma, "increments_px": m,
            "bias_acov_px2": cb, "drift_step_px": np.sqrt(sd2), "bias_step_px": np.sqrt(cb[0]),
            "drift_rate_sigma_px": tau}
