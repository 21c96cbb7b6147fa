"""Shading (slow background) removal and slice-brightness normalisation.

FIB-SEM slices carry a smooth brightness gradient (detector geometry, charging, the trench
walls) and the mean brightness drifts from slice to slice. Both are removed so that one
set of segmentation parameters fits every slice.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def background(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Smooth background: a recursive Gaussian of scale ``sigma_px`` (px), float32 (y, x).

    A background that smooth is computed on a grid ``f = sigma_px // 16`` times coarser
    (block means, then linear interpolation back), which changes it by far less than the
    noise and costs a fraction of the full-resolution filter.
    """
    a = np.asarray(img, np.float32)
    f = int(max(1, min(sigma_px // 16, a.shape[0] // 16, a.shape[1] // 16)))
    if f == 1:
        out = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(a), float(sigma_px))
        return sitk.GetArrayViewFromImage(out).astype(np.float32, copy=True)
    ny, nx = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    small = a[:ny, :nx].reshape(ny // f, f, nx // f, f).mean(axis=(1, 3), dtype=np.float32)
    out = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(small), float(sigma_px) / f)
    sm = sitk.GetArrayViewFromImage(out)
    return _upsample_linear(sm, f, a.shape)


def _upsample_linear(small: np.ndarray, f: int, shape) -> np.ndarray:
    """Separable linear interpolation of block means (``f`` px blocks, values at block
    centres) back to full-resolution pixel centres; constant beyond the outer centres."""
    out = np.asarray(small, np.float32)
    for axis, n in enumerate(shape):
        c = np.clip((np.arange(n) + 0.5) / f - 0.5, 0, out.shape[axis] - 1)
        i0 = np.minimum(c.astype(np.int64), out.shape[axis] - 2) if out.shape[axis] > 1 else np.zeros(n, np.int64)
        w = (c - i0).astype(np.float32)
        w = w[:, None] if axis == 0 else w[None, :]
        lo = np.take(out, i0, axis=axis)
        hi = np.take(out, np.minimum(i0 + 1, out.shape[axis] - 1), axis=axis)
        out = lo + w * (hi - lo)
    return out


def flatten(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Remove the additive shading: ``img - background + mean(background)``."""
    a = np.asarray(img, dtype=np.float32)
    bg = background(a, sigma_px)
    return a - bg + np.float32(bg.mean())


def robust_stats(img: np.ndarray, max_samples: int = 1 << 18) -> tuple[float, float]:
    """(median, robust sigma = IQR / 1.349) of the finite pixels.

    Large images are read on a regular subsample of about ``max_samples`` pixels (quantiles
    of 2^18 samples are exact to ~0.2 % of the spread, far below any effect downstream).
    """
    a = np.asarray(img)
    step = max(1, int(np.sqrt(a.size / max_samples))) if a.ndim == 2 else 1
    a = a[::step, ::step] if step > 1 else a
    v = a[np.isfinite(a)]
    if v.size == 0:
        return 0.0, 0.0
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return float(med), float((q3 - q1) / 1.349)


def normalise(img: np.ndarray) -> np.ndarray:
    """Slice-brightness normalisation: ``(img - median) / robust sigma`` (dimensionless).

    Every slice of a stack then has median 0 and unit robust spread, whatever the beam
    current or detector gain did between slices. A constant slice maps to zeros.
    """
    a = np.asarray(img, dtype=np.float32)
    med, s = robust_stats(a)
    if s <= 0:
        s = float(np.std(a)) or 1.0
    return (a - np.float32(med)) / np.float32(s)
