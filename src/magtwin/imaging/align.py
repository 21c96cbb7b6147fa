"""Stage 3 (align): slice-to-slice drift correction to sub-pixel accuracy, without the
error accumulating along the stack.

Shift convention (shared with :mod:`magtwin.synth`): ``shifts_px[k] = (dy, dx)`` means raw
slice k at ``(y, x)`` shows the material at ``(y + dy, x + dx)`` in the frame of slice 0, so
the aligned slice is ``scipy.ndimage.shift(raw_k, (dy, dx))`` and ``shifts_px[0] = 0``.

Method
------
Slices are registered by phase correlation with upsampled-DFT refinement (scikit-image).

* **With a cap / fiducial region** (rows that image the protective cap, which moves with the
  sample but does not change between slices; given as ``cap_rows`` or detected
  automatically) only that band is registered, against the previous slice and against slice
  0: phase correlation, refined by gradient least squares with contrast matching
  (:func:`drift_model.refine_band`; the correlation peak of a band cut by the image edge
  is pulled towards zero shift along y by the window, 5-9 % of dy, up to 0.16 px RMS); each
  registration is one equation ``s_k - s_j = t_jk`` and the shifts are the least-squares
  solution (``s_0 = 0``). The error is bounded by the single-registration error, it does not
  grow with the slice index.
  ``uncertainty_px`` adds in quadrature to the least-squares standard error (which sees only
  the inconsistency between the equations) the error of the slice images themselves -
  noise, curtain residuals, the changing sample rows of the band - that every registration
  of a slice shares (:func:`_image_error_variance`): the variance of the slice's
  registration to slice 0, estimated from the scatter of ``cap_blocks`` column blocks of the
  band (cluster-robust), averaged over :data:`IMAGE_ERROR_WINDOW` slices. Not included: an
  error common to all columns (e.g. a shading change across the band's rows). Measured on
  fresh stacks (30 slices of 64 x 256 and 64 x 1024 px, supersample 8, default and twice
  the noise, seeds 131-164): RMS error 0.03 px (before the refinement 0.09-0.11 px on the
  1024 px ones), 88-92 % of the per-axis shifts within 2 sigma (a Gaussian: 95 %; the
  least-squares error alone: 25-40 %), RMS sigma 0.8-0.9 of the RMS error. The benchmark's
  stacks (``benchmarks/imaging.py``: rendered at half resolution, one sample per pixel)
  place the cap/sample interface, the main feature for dy, to a rendering pixel only: on
  40 x 384 x 1024 px of that kind (seed 7) the dy error follows -0.35 dy with the former
  and this registration alike (the rendered interface moves in steps; -0.03..0.03 when
  rendered with 8 samples per pixel), 0.12 px RMS, 59 % within 2 sigma; dx, free of that:
  0.12 px RMS (before 0.17), 97 % within 2 sigma (before 13 %).
* **Without one**, grain boundaries inclined to the slice plane move between slices, and a
  registration measures the drift plus their motion (the structural bias: 0.05-0.1 px along
  y, 0.3-0.45 px along x per slice pair on the synthetic sample, correlated over 5-10
  slices, so it adds up like a random walk; registering further back is worse, the faces
  move linearly with depth and the slices decorrelate: registering slice k to k - L, the
  bias summed over 120 slices was 8.2 / 8.9 / 19 / 27 px RMS along x for L = 1 / 2 / 4 / 8,
  seeds 1-13).
  Each slice is registered to the previous one: the whole-slice phase-correlation shift,
  refined on ``patch_grid`` local patches by gradient least squares (``lk_iterations``;
  unbiased on a pure translation, where the correlation peak of a small patch recovered only
  0.74 of an x shift); the patch scatter measures the bias and its autocovariance along the
  stack, and the shifts are the minimum-variance estimate of a random-walk drift, plus a
  steady drift rate when the data show one (``drift_rate_sigma_px: auto``), under that bias
  (see :mod:`magtwin.imaging.drift_model`). ``uncertainty_px`` is that model's posterior
  standard deviation: registration noise, the structural bias and the part of the drift the
  data cannot separate from it (not: a bias shared by all patches).

  What it reaches (``python benchmarks/align_nocap.py``: 128 x 160 px, seeds 41-46 not used
  in tuning, default and twice the noise, random-walk drift 0.3 px/slice per axis): RMS
  error 1.55 / 1.89 / 1.96 / 2.95 px over 30 / 60 / 120 / 240 slices (at most 2.1 / 2.7 /
  2.5 / 4.5), 90-99 % of the per-axis shifts within 2 sigma (the reported sigma: 1.2 / 1.8 /
  2.6 / 3.8 px). It cannot be bounded: without a fixed reference a uniform shear of the
  whole volume is invisible (a shear maps convex planar-faced grains onto such grains), only
  the statistics of many grains pin it, and their number grows with the depth, so the
  error variance grows linearly with n (``sqrt(n)``; fitted here n^0.28 for the error, n^0.56
  for the reported sigma). Its coefficient falls with the number of grains per slice: on the
  960 x 1024 px sample part of a benchmark slice (rows below the cap, seed 7) 0.17 / 0.59 /
  0.65 px over 30 / 60 / 120 slices (sigma 0.25 / 0.37 / 0.53 px; with the cap band 0.21 /
  0.22 / 0.28 px). A steady drift is kept when the mean increment stands out of the
  structural bias's mean by :data:`drift_model.STEADY_RATE_Z` standard deviations, else it
  is damped like the bias (outside sigma). On 128 x 160 px slices that is the limit: a
  steady 0.2-0.3 px/slice drift (seeds 47-50) gave 3.9 / 6.6 / 10.9 / 4.3 px mean RMS over
  30 / 60 / 120 / 240 slices, because the bias's own mean over 60-120 slices of a random-walk
  stack reaches 0.2-0.25 px/slice along x (seed 41; predicted 0.07-0.1), the z-score of the
  steady seeds; no detection level keeps one without taking the other for a drift (z = 2:
  steady 2.6 / 3.7 / 5.7 / 4.3 px, random walk 2.1 / 2.7 / 4.4 / 3.0 px instead of 1.6 / 1.9
  / 2.0 / 3.0; ``steady_z_sweep`` in ``benchmarks/out/align_nocap.json``). With more grains
  per slice it is detected: 256 x 512 px, 0.3 px/slice along x (seed 52) and (0.2, -0.2)
  (seed 53): 1.6 / 1.0 px and 0.5 / 1.8 px RMS over 60 / 120 slices, found from 60 slices
  on (seed 53: 30); a random walk there (seed 54) 1.2 / 1.0 px. Stacks of fewer than 21
  slices chain the patch means and carry their whole bias in the uncertainty.

  Against chained registration, on the same slices (``benchmarks/align_nocap.py``, held-out
  seeds 41-50): on 128 x 160 px with a random-walk drift PyStack3D's chain has 1.9 / 1.9 /
  1.8 / 1.5x this model's error over 30 / 60 / 120 / 240 slices, and every chain does worse
  than no correction at all; with a steady drift the chains do better below 240 slices
  (PyStack3D 0.4-0.6x this model's error at 30-120 slices, 1.5x at 240). On 256 x 512 px
  (more grains per slice) chains and this model are alike on random walks (PyStack3D / ours
  1.0-1.2) and the chains better on steady drift (PyStack3D 0.6-0.8x; the plain whole-slice
  chain 0.55 / 0.78 / 0.98 px against 0.98 / 1.17 / 1.64 px at 30 / 60 / 120 slices). Where
  a user knows the instrument drifts steadily, ``drift_rate_sigma_px`` set to the expected
  rate keeps it instead of testing for it: 0.3 on the steady seeds 47-50 gave 1.6 / 2.3 /
  5.2 / 4.1 px mean RMS over 30 / 60 / 120 / 240 slices (auto: 3.9 / 6.6 / 10.9 / 4.3;
  PyStack3D's chain 2.4 / 3.4 / 4.5 / 6.3), but on the random-walk seeds 41-46 it takes the
  bias for a drift (2.8 / 3.7 / 7.2 / 8.9 px; auto 1.6 / 1.9 / 2.0 / 3.0; the "ours, rate
  prior" row of ``benchmarks/align_nocap.py``). Feeding the model the whole-slice increments
  instead of the patch means (their chain has the smaller bias) did not lower the mean error
  on tuning seeds 5-15 (mean RMS over 120 slices 2.18 px either way on random walks, 5.4 px
  on steady drift).

The aligned volume is in the frame of slice 0 on the same grid; voxels a slice does not
cover are NaN, and ``valid_mask`` (y, x) marks the pixels covered by every slice.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from magtwin.errors import ConfigError, InputError
from magtwin.imaging import drift_model
from magtwin.imaging.stackio import merged, progress, volume_of, voxel_size_of
from magtwin.io.artefact import ArtefactWriter, open_artefact

log = logging.getLogger("magtwin.imaging.align")

#: Defaults of the ``align`` config section (the schema documents each key).
DEFAULTS: dict[str, Any] = {
    "cap_rows": "auto",
    "patch_grid": [4, 4],
    "bias_max_lag_slices": 16,
    "drift_rate_sigma_px": "auto",
    "upsample_factor": 20,
    "lk_iterations": 3,
    "max_shift_px": 64.0,
    "min_correlation": 0.2,
    "cap_min_rows": 12,
    "cap_margin_px": 12,
    "cap_blocks": 8,
    "interpolation_order": 1,
}


# ---------------------------------------------------------------------------------------
# pure functions on arrays
# ---------------------------------------------------------------------------------------
def spectrum(img: np.ndarray) -> np.ndarray:
    """FFT of a Hann-windowed, mean-free slice (windowing stops the image edges, which do
    not move with the sample, from dominating the correlation)."""
    a = np.asarray(img, dtype=np.float64)
    a = np.where(np.isfinite(a), a, 0.0)
    a = (a - a.mean()) * drift_model.hann(a.shape)
    return np.fft.fft2(a)


def register(ref_spec: np.ndarray, mov_spec: np.ndarray, upsample_factor: int = 20) -> np.ndarray:
    """Shift ``t = (dy, dx)`` (px) with ``ndimage.shift(moving, t) ~ reference``."""
    t, _, _ = phase_cross_correlation(ref_spec, mov_spec, upsample_factor=upsample_factor,
                                      space="fourier", normalization=None)
    return np.asarray(t, dtype=np.float64)


def overlap_correlation(ref: np.ndarray, mov: np.ndarray, t: Sequence[float]) -> float:
    """Pearson correlation of ``ref`` and ``mov`` shifted by the integer-rounded ``t`` on their
    overlap (a registration check: near 0 when the slices do not overlap)."""
    dy, dx = (int(round(v)) for v in t)
    ny, nx = ref.shape
    if abs(dy) >= ny - 4 or abs(dx) >= nx - 4:
        return 0.0
    r = ref[max(dy, 0):ny + min(dy, 0), max(dx, 0):nx + min(dx, 0)]
    m = mov[max(-dy, 0):ny + min(-dy, 0), max(-dx, 0):nx + min(-dx, 0)]
    ok = np.isfinite(r) & np.isfinite(m)
    if ok.sum() < 16:
        return 0.0
    r, m = r[ok] - r[ok].mean(), m[ok] - m[ok].mean()
    den = np.sqrt((r * r).sum() * (m * m).sum())
    return float((r * m).sum() / den) if den > 0 else 0.0


def solve_shifts(n: int, edges: np.ndarray, t: np.ndarray, n_uncertainty: int = 64
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares absolute shifts from pairwise registrations.

    Parameters
    ----------
    n : number of slices.
    edges : (E, 2) int, pairs ``(j, k)``; each says ``s_k - s_j = t``.
    t : (E, 2) float, the measured ``(dy, dx)`` per pair (px).

    Returns
    -------
    shifts : (n, 2) px, ``shifts[0] = 0``.
    residuals : (E, 2) px, ``A s - t``.
    sigma : (n, 2) px, standard uncertainty of each shift (from the residual variance and
        the diagonal of ``(A^T A)^{-1}``, evaluated at up to ``n_uncertainty`` slices and
        interpolated linearly in between).
    """
    e = len(edges)
    rows = np.repeat(np.arange(e), 2)
    cols = edges.reshape(-1)
    vals = np.tile([-1.0, 1.0], e)
    keep = cols > 0  # s_0 = 0 is not an unknown
    a = sp.csr_matrix((vals[keep], (rows[keep], cols[keep] - 1)), shape=(e, n - 1))
    ata = (a.T @ a).tocsc()
    try:
        lu = spla.splu(ata)
    except RuntimeError:
        raise InputError("the slice registrations do not connect every slice to slice 0") from None
    s = np.zeros((n, 2))
    s[1:] = lu.solve(np.asarray(a.T @ t))
    res = a @ s[1:] - t
    dof = max(e - (n - 1), 1)
    var = (res ** 2).sum(axis=0) / dof
    ks = np.unique(np.linspace(1, n - 1, min(n_uncertainty, n - 1)).round().astype(int))
    diag = np.empty(len(ks))
    for i, k in enumerate(ks):
        rhs = np.zeros(n - 1)
        rhs[k - 1] = 1.0
        diag[i] = lu.solve(rhs)[k - 1]
    d = np.interp(np.arange(n), np.r_[0, ks], np.r_[0.0, diag])
    sigma = np.sqrt(np.outer(d, var))
    return s, res, sigma


def band_scores(a: np.ndarray, b: np.ndarray, band_px: int = 24, step_px: int = 8
                ) -> tuple[np.ndarray, np.ndarray]:
    """Registered correlation of horizontal bands of two slices far apart in the stack.

    Each band of ``band_px`` rows (every ``step_px``) of ``b`` is registered to the same band
    of ``a``, and the correlation of the overlap after registration is returned. A band that
    images the unchanging cap correlates up to the noise level; a band of the sample, whose
    microstructure changes with depth, much less. Returns ``(starts, scores)``.
    """
    ny = a.shape[0]
    starts = np.arange(0, max(ny - band_px, 0) + 1, step_px)
    scores = np.empty(len(starts))
    for i, r in enumerate(starts):
        ra, rb = a[r:r + band_px], b[r:r + band_px]
        t = register(spectrum(ra), spectrum(rb), upsample_factor=1)
        scores[i] = overlap_correlation(ra, rb, t)
    return starts, scores


#: (min_score, min_ratio) levels of :func:`detect_cap`, tried in order
CAP_THRESHOLDS = ((0.8, 0.9), (0.7, 0.8))


def detect_cap(far_pairs: Sequence[tuple[np.ndarray, np.ndarray]],
               near_pair: tuple[np.ndarray, np.ndarray], band_px: int = 24, step_px: int = 8,
               thresholds: Sequence[tuple[float, float]] = CAP_THRESHOLDS, min_rows: int = 12
               ) -> tuple[int, int] | None:
    """Rows ``(start, stop)`` of a region that does not change along the stack, or None.

    ``far_pairs`` are pairs of slices far apart in the stack, ``near_pair`` two neighbouring
    slices (y, x). A band belongs to the cap when its registered correlation
    (:func:`band_scores`) over every far pair is at least ``min_score`` and at least
    ``min_ratio`` times its neighbouring-slice correlation (the cap looks the same after many
    slices as after one, up to noise; even a slowly changing microstructure does not). The cap
    is the largest contiguous run of such bands, leaving at least half of the rows to the
    sample. The ``(min_score, min_ratio)`` levels of ``thresholds`` are tried in order, the
    first that finds a cap wins.

    Why two levels, measured on denoised synthetic stacks: cap bands correlate 0.78-0.96
    (far) at ratios 0.82-0.99 - the lowest on 1024 px wide slices 100 slices apart, where the
    destriping and shading residuals differ more from slice to slice than the flat cap's own
    texture; the former single level 0.8 / 0.9 missed the cap of the 100 x 1024 x 1024
    benchmark stack (far 0.81, ratio 0.85-0.89), which was then registered without a
    reference (1.0 px instead of 0.26 px RMS). Sample bands: <= 0.2 after 100 slices, but up
    to 0.67 / 0.74 in 24-slice stacks and as alike as the cap in ~10-slice stacks, where only
    the strict level keeps the run of "unchanging" rows within half of the slice.
    """
    far = None
    for a, b in far_pairs:
        starts, s = band_scores(np.asarray(a, np.float64), np.asarray(b, np.float64), band_px, step_px)
        far = s if far is None else np.minimum(far, s)
    if far is None or len(far) < 3:
        return None
    _, near = band_scores(np.asarray(near_pair[0], np.float64), np.asarray(near_pair[1], np.float64),
                          band_px, step_px)
    ny = np.asarray(far_pairs[0][0]).shape[0]
    for min_score, min_ratio in thresholds:
        good = (far >= min_score) & (far >= min_ratio * near)
        rows = np.zeros(ny, bool)
        for r, g in zip(starts, good):
            if g:
                rows[r:r + band_px] = True
        lab, n = ndimage.label(rows)
        best = None
        for i in range(1, n + 1):
            idx = np.flatnonzero(lab == i)
            if len(idx) >= min_rows and len(idx) <= ny // 2 and (best is None or len(idx) > best[1] - best[0]):
                best = (int(idx[0]), int(idx[-1]) + 1)
        if best is not None:
            return best
    return None


def refine_cap_edge(mean_img: np.ndarray, cap: tuple[int, int], search_px: int) -> tuple[int, int]:
    """Snap the cap's inner edge to the strongest row-to-row brightness step of the
    (aligned, averaged) image within ``search_px`` rows of the detected edge."""
    with warnings.catch_warnings():  # rows outside the common footprint are all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        prof = np.nanmean(mean_img, axis=1)
    prof = np.nan_to_num(prof, nan=float(np.nanmedian(prof)) if np.isfinite(prof).any() else 0.0)
    g = np.abs(np.diff(prof))  # g[i] = step between rows i and i + 1
    r0, r1 = cap
    ny = len(prof)
    if r0 == 0 or r0 < ny - r1:  # cap at the top: its inner edge is r1
        lo, hi = max(r1 - search_px, r0 + 1, 1), min(r1 + search_px, ny - 1)
        if hi > lo:
            r1 = lo + int(np.argmax(g[lo - 1:hi - 1]))
    else:
        lo, hi = max(r0 - search_px, 1), min(r0 + search_px, r1 - 1, ny - 1)
        if hi > lo:
            r0 = lo + int(np.argmax(g[lo - 1:hi - 1]))
    return r0, r1


def apply_shift(img: np.ndarray, shift: Sequence[float], order: int = 1) -> np.ndarray:
    """Slice in the frame of slice 0: ``ndimage.shift(img, shift)``; uncovered pixels NaN."""
    return ndimage.shift(np.asarray(img, np.float32), shift, order=order, mode="constant",
                         cval=np.nan, prefilter=order > 1)


# ---------------------------------------------------------------------------------------
# stage
# ---------------------------------------------------------------------------------------
def _cap_rows(p: Mapping[str, Any], src) -> tuple[tuple[int, int] | None, str]:
    """The cap band to register on: from the config, detected, or None."""
    nz, ny, _ = src.shape
    cap = p["cap_rows"]
    if cap is None or cap == "none":
        return None, "none"
    if cap == "auto":
        if nz < 4:
            return None, "auto: stack too short to detect a cap"
        def usable(k: int) -> bool:
            a = np.asarray(src[k], np.float64)
            return bool(np.isfinite(a).all() and a.max() > a.min())

        # slices to compare: first, last, a middle one and its successor (blank ones skipped)
        ok = [k for k in sorted({0, nz - 1} | set(range(nz // 2 - 2, nz // 2 + 4)))
              if 0 <= k < nz and usable(k)]
        mids = [k for k in ok if 0 < k < nz - 1 and k + 1 in ok]
        if len(ok) < 4 or not mids or ok[0] != 0:
            return None, "auto: too few usable slices to detect a cap"
        first, mid, last = 0, mids[0], ok[-1]
        sl = {k: np.asarray(src[k], np.float64) for k in {first, mid, mid + 1, last}}
        found = detect_cap([(sl[first], sl[last]), (sl[first], sl[mid]), (sl[mid], sl[last])],
                           (sl[mid], sl[mid + 1]), min_rows=int(p["cap_min_rows"]))
        if not found:
            return None, "auto: none found"
        # In a short stack the sample next to the cap changes little and can pass as cap:
        # snap the inner edge to the strongest brightness step anywhere in the band.
        r0, r1 = found
        span = r1 - r0
        found = refine_cap_edge(sl[first], found, search_px=span - int(p["cap_min_rows"]) // 2)
        return found, "auto"
    try:
        r0, r1 = (int(v) for v in cap)
    except (TypeError, ValueError):
        raise ConfigError(f"align.cap_rows: {cap!r} is not 'auto', null or [start, stop]") from None
    if not (0 <= r0 < r1 <= ny) or r1 - r0 < 8:
        raise ConfigError(f"align.cap_rows: [{r0}, {r1}] is not a band of >= 8 rows inside 0..{ny}")
    return (r0, r1), "config"


def _registration_band(cap: tuple[int, int], ny: int, margin: int) -> tuple[int, int]:
    """The cap band plus ``margin`` rows of the sample next to it: the cap/sample interface
    moves with the sample and is the strongest feature for the shift across it, and the
    sample just below it changes slowly with depth (measured on seeds 1-3: RMS error 0.07 px
    with a 12-row margin, 0.11 px on the cap alone)."""
    r0, r1 = cap
    if r0 < ny - r1:
        return r0, min(ny, r1 + margin)
    return max(0, r0 - margin), r1


def estimate_shifts(src, p: Mapping[str, Any], path, cap: tuple[int, int] | None) -> dict:
    """Register the stack and solve for the shifts (streaming: slice 0 and the previous
    slice in memory). ``cap`` = rows of the registration band, or None (whole slices)."""
    if cap is None:
        return _estimate_shifts_without_cap(src, p, path)
    nz = src.shape[0]
    # every slice also has an equation against slice 0, which bounds the error; more
    # neighbours then cost time without improving it (measured: 0.20 px either way)
    L = 1
    band = slice(*cap)
    recent: list[tuple[int, np.ndarray, np.ndarray]] = []  # (k, image, spectrum)
    anchor = None
    edges, meas, corr, blank, covs = [], [], [], [], []
    for k in range(nz):
        img = np.asarray(src[k, band], np.float64)
        if not _usable(img):
            if k == 0:
                raise InputError("slice 0 (the reference frame) is blank or not finite in the "
                                 "registration region", path)
            blank.append(k)  # no registration; its shift is interpolated below
            continue
        spec = spectrum(img)
        partners = list(recent)
        prev_k = recent[-1][0] if recent else None
        if anchor is not None and all(j != 0 for j, _, _ in partners):
            partners.append(anchor)
        for j, ref, ref_spec in partners:
            t = register(ref_spec, spec, p["upsample_factor"])
            c = overlap_correlation(ref, img, t)
            if j == prev_k:
                _check_pair(t, c, j, k, p, path)
            elif c < p["min_correlation"] or np.abs(t).max() > p["max_shift_px"] * (k - j):
                continue  # a failed long-lag registration is dropped, not trusted
            t, cov = drift_model.refine_band(ref, img, t, BAND_LK_ITERATIONS, int(p["cap_blocks"]))
            edges.append((j, k))
            meas.append(t)
            covs.append(np.diag(cov))
            corr.append(c)
        if k == 0:
            anchor = (0, img, spec)
        recent.append((k, img, spec))
        if len(recent) > L:
            recent.pop(0)
        progress("align/register", k, nz)
    _check_blank(blank, nz, path)
    edges_a = np.asarray(edges, np.int64).reshape(-1, 2)
    meas_a = np.asarray(meas, np.float64).reshape(-1, 2)
    good = np.setdiff1d(np.arange(nz), blank)
    compact = np.zeros(nz, np.int64)
    compact[good] = np.arange(len(good))
    s_good, res, sig_good = solve_shifts(len(good), compact[edges_a], meas_a)
    var_img = _image_error_variance(len(good), compact[edges_a], np.asarray(covs).reshape(-1, 2))
    sig_good = np.sqrt(sig_good ** 2 + var_img)
    shifts, sigma = _fill_blank(nz, good, s_good, sig_good)
    return {"shifts_px": shifts, "uncertainty_px": sigma, "edges": edges_a, "blank_slices": blank,
            "pair_shifts_px": meas_a, "residuals_px": res, "pair_correlation": np.asarray(corr),
            "pair_variance_px2": np.asarray(covs).reshape(-1, 2), "model": {}}


#: gradient least-squares iterations of a cap-band registration from its phase-correlation
#: shift (seeds 131-153: 2 and 3 give the same error, 0.027 / 0.030 px RMS; each costs a
#: third of the registration time)
BAND_LK_ITERATIONS = 2

#: slices over which the per-slice image-error variance is averaged along the stack (the noise
#: and curtain level change slowly; one registration's 8-block estimate has few degrees of
#: freedom). Seeds 131-153 (30 slices, 256 and 1024 px wide, supersample 8): 2-sigma
#: coverage 0.89 / 0.86 per slice, 0.92 / 0.88 averaged over 9 slices, 0.92 / 0.90 over 21.
IMAGE_ERROR_WINDOW = 9


def _image_error_variance(n: int, edges: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Per-slice variance ``(n, 2)`` px^2 of the errors of the slice images themselves.

    An error of slice k's image (its noise, curtain residual, the sample rows in the band)
    enters every registration of slice k alike, so the equations stay consistent and the
    least-squares residuals do not see it; the estimated shift of slice k carries it, and
    that of slice 0 through every equation to slice 0. The registration of slice k to slice 0
    contains both, so its own variance (``var`` (E, 2), :func:`drift_model.refine_band`) is
    the term; a slice without that equation (dropped as failed) takes the median over the
    stack, and so do slices whose estimate is not finite.
    """
    out = np.full((n, 2), np.nan)
    to0 = (edges[:, 0] == 0) & (edges[:, 1] > 0)
    out[edges[to0, 1]] = var[to0]
    ok = np.isfinite(var).all(axis=1)
    fill = np.median(var[ok], axis=0) if ok.any() else np.zeros(2)
    out = np.where(np.isfinite(out), out, fill)
    if IMAGE_ERROR_WINDOW > 1 and n > 2:
        out[1:] = ndimage.uniform_filter1d(out[1:], IMAGE_ERROR_WINDOW, axis=0, mode="nearest")
    out[0] = 0.0
    return out


def _usable(img: np.ndarray) -> bool:
    return bool(np.isfinite(img).all() and img.max() > img.min())


def _check_pair(t, c: float, j: int, k: int, p: Mapping[str, Any], path) -> None:
    """Neighbouring slices must register within the search range and correlate."""
    if np.abs(t).max() > p["max_shift_px"]:
        raise InputError(
            f"drift between slices {j} and {k} is ({t[0]:.1f}, {t[1]:.1f}) px, beyond "
            f"the search range align.max_shift_px = {p['max_shift_px']:g}", path)
    if c < p["min_correlation"]:
        raise InputError(
            f"slices {j} and {k} do not match (correlation {c:.2f} < "
            f"align.min_correlation = {p['min_correlation']:g}): the drift exceeds the "
            "search range or the slices do not overlap", path)


def _check_blank(blank: list[int], nz: int, path) -> None:
    if len(blank) > nz // 2:
        raise InputError(f"{len(blank)} of {nz} slices are blank in the registration region", path)


def _fill_blank(nz: int, good: np.ndarray, s_good: np.ndarray, sig_good: np.ndarray):
    """Blank slices: shift and uncertainty interpolated between their neighbours (flagged in
    the report)."""
    shifts = np.stack([np.interp(np.arange(nz), good, s_good[:, i]) for i in range(2)], axis=1)
    sigma = np.stack([np.interp(np.arange(nz), good, sig_good[:, i]) for i in range(2)], axis=1)
    return shifts, sigma


def _estimate_shifts_without_cap(src, p: Mapping[str, Any], path) -> dict:
    """Whole slices, no fixed reference: neighbouring usable slices are registered on local
    patches and the shifts come from the bias-aware drift model of
    :mod:`magtwin.imaging.drift_model` (streaming: one previous slice in memory)."""
    nz = src.shape[0]
    grid = tuple(int(v) for v in p["patch_grid"])
    prev = None  # (k, image, spectrum)
    edges, corr, patches, blank = [], [], [], []
    for k in range(nz):
        img = np.asarray(src[k], np.float64)
        if not _usable(img):
            if k == 0:
                raise InputError("slice 0 (the reference frame) is blank or not finite", path)
            blank.append(k)
            continue
        spec = spectrum(img)
        if prev is not None:
            j, ref, ref_spec = prev
            whole = register(ref_spec, spec, int(p["upsample_factor"]))
            c = overlap_correlation(ref, img, whole)
            _check_pair(whole, c, j, k, p, path)
            ps = drift_model.register_patches(ref, img, whole, grid, int(p["lk_iterations"]))
            # every pair keeps the same number of patches (a grid coarsened at a large drift
            # is padded with NaN: not averaged, no scatter)
            full = np.full((grid[0] * grid[1], 2), np.nan)
            full[:len(ps)] = ps
            patches.append(full)
            edges.append((j, k))
            corr.append(c)
        prev = (k, img, spec)
        progress("align/register", k, nz)
    _check_blank(blank, nz, path)
    good = np.setdiff1d(np.arange(nz), blank)
    model = drift_model.drift_without_reference(
        np.asarray(patches).reshape(-1, grid[0] * grid[1], 2), int(p["bias_max_lag_slices"]),
        p["drift_rate_sigma_px"] if p["drift_rate_sigma_px"] == "auto" else float(p["drift_rate_sigma_px"]))
    shifts, sigma = _fill_blank(nz, good, model["shifts_px"], model["uncertainty_px"])
    meas_a = model["increments_px"]
    edges_a = np.asarray(edges, np.int64).reshape(-1, 2)
    res = (shifts[edges_a[:, 1]] - shifts[edges_a[:, 0]]) - meas_a
    return {"shifts_px": shifts, "uncertainty_px": sigma, "edges": edges_a, "blank_slices": blank,
            "pair_shifts_px": meas_a, "residuals_px": res, "pair_correlation": np.asarray(corr),
            "patch_shifts_px": np.asarray(patches).reshape(-1, grid[0] * grid[1], 2),
            "model": {"drift_step_px": [float(v) if np.isfinite(v) else None  # None: short stack
                                        for v in model["drift_step_px"]],
                      "bias_step_px": [float(v) for v in model["bias_step_px"]],
                      "drift_rate_sigma_px": [float(v) if np.isfinite(v) else None
                                              for v in model["drift_rate_sigma_px"]]}}


def run_align(in_path: str | os.PathLike, out_path: str | os.PathLike,
              params: Mapping[str, Any] | None = None) -> dict:
    """Stage 3: read ``02_denoise.h5`` (stage "denoise"), write ``03_align.h5``.

    Output: ``volume`` float32 (z, y, x) in the frame of slice 0 (NaN where a slice does not
    cover a voxel), ``valid_mask`` uint8 (y, x) (1 = covered by every slice),
    ``shifts_px`` (z, 2), ``uncertainty_px`` (z, 2), the pairwise registrations
    (``registration/edges``, ``pair_shifts_px``, ``residuals_px``, ``pair_correlation``, with
    a cap ``pair_variance_px2`` (pairs, 2) (each registration's own error variance), and
    without a cap ``patch_shifts_px`` (pairs, patches, 2));
    root attrs ``voxel_size_nm``, ``cap_rows`` ([start, stop] or [-1, -1]), ``quality_json``.
    """
    p = merged(DEFAULTS, params, "align")
    with open_artefact(in_path, ("denoise", "ingest")) as f:
        src = volume_of(f, in_path, min_slices=2)
        vox = voxel_size_of(f, in_path)
        nz, ny, nx = src.shape
        cap, cap_source = _cap_rows(p, src)
        band = _registration_band(cap, ny, int(p["cap_margin_px"])) if cap else None
        log.info("align: registration region %s (%s)", f"rows {band[0]}:{band[1]}" if cap else
                 "whole slice", cap_source)
        r = estimate_shifts(src, p, in_path, band)
        shifts = r["shifts_px"]
        with ArtefactWriter(out_path, "align", p, inputs=[in_path]) as w:
            out = w.create_volume("volume", (nz, ny, nx), np.float32)
            valid = np.ones((ny, nx), bool)
            total = np.zeros((ny, nx))
            for k in range(nz):
                a = apply_shift(src[k], shifts[k], int(p["interpolation_order"]))
                valid &= np.isfinite(a)
                total += np.nan_to_num(a)
                out[k] = a
                progress("align/resample", k, nz)
            if not valid.any():
                raise InputError("no pixel is covered by every slice (drift larger than the field "
                                 "of view)", in_path)
            w.write("valid_mask", valid.astype(np.uint8))
            if cap and cap_source == "auto":
                # the band detection is coarse (band steps): snap to the interface
                mean = np.where(valid, total / nz, np.nan)
                cap = refine_cap_edge(mean, cap, search_px=4)
            w.write("shifts_px", shifts, attrs={"convention": "raw slice k at (y,x) shows (y+dy, x+dx) of slice 0"})
            w.write("uncertainty_px", r["uncertainty_px"])
            for name in ("edges", "pair_shifts_px", "residuals_px", "pair_correlation",
                         "pair_variance_px2", "patch_shifts_px"):
                if name in r:
                    w.write(f"registration/{name}", r[name])
            res = r["residuals_px"]
            q = {
                "registration_region": f"cap rows {band[0]}:{band[1]} ({cap_source})" if cap else
                f"whole slice ({cap_source})",
                "n_registrations": int(len(res)),
                "residual_rms_px": float(np.sqrt((res ** 2).sum(axis=1).mean())),
                "residual_max_px": float(np.sqrt((res ** 2).sum(axis=1)).max()),
                "uncertainty_max_px": float(np.sqrt((r["uncertainty_px"] ** 2).sum(axis=1)).max()),
                "min_pair_correlation": float(r["pair_correlation"].min()),
                "max_drift_px": float(np.sqrt((shifts ** 2).sum(axis=1)).max()),
                "valid_fraction": float(valid.mean()),
                "uncertainty_rms_px": float(np.sqrt((r["uncertainty_px"] ** 2).sum(axis=1).mean())),
                **r["model"],
                "blank_slices_interpolated": [int(k) for k in r["blank_slices"]],
            }
            w.h5.attrs["voxel_size_nm"] = vox
            w.h5.attrs["cap_rows"] = list(cap) if cap else [-1, -1]
            w.write_json("quality_json", q)
            if r["blank_slices"]:
                w.h5.attrs["warnings"] = (f"{len(r['blank_slices'])} blank slices, shifts "
                                          f"interpolated: {r['blank_slices'][:20]}")
                log.warning("align: blank slices %s: shifts interpolated", r["blank_slices"][:20])
    if not cap:
        log.info("align: no cap/fiducial region - the shifts rest on the moving microstructure; "
                 "predicted error %.2f px RMS over the stack, %.2f px at most (uncertainty_px)",
                 q["uncertainty_rms_px"], q["uncertainty_max_px"])
    log.info("align quality: %s", q)
    return q
