"""Shading (slow background) removal and slice-brightness normalisation.

FIB-SEM slices carry a smooth brightness gradient (detector geometry, charging, the trench
walls) and the mean brightness drifts from slice to slice. Both are removed so that one
set of segmentation parameters fits every slice.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def background(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Smooth background: a recursive Gaussian of scale ``sigma_px`` (px), float32 (y, x)."""
    out = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(np.asarray(img, np.float32)),
                                          float(sigma_px))
    return sitk.GetArrayViewFromImage(out).astype(np.float32, copy=True)


def flatten(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Remove the additive shading: ``img - background + mean(background)``."""
    a = np.asarray(img, dtype=np.float32)
    bg = background(a, sigma_px)
    return a - bg + np.float32(bg.mean())


def robust_stats(img: np.ndarray) -> tuple[float, float]:
    """(median, robust sigma = IQR / 1.349) of the finite pixels."""
    v = np.asarray(img)[np.isfinite(img)]
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
