"""Image-quality numbers reported by every imaging stage (noise level, stripe power).

All functions take one 2D slice ``(y, x)`` and return a plain float, so a stage can
accumulate them slice by slice while streaming.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from scipy import ndimage

# Immerkaer's noise-estimation mask: the difference of two Laplacians, which cancels
# image structure up to second order and leaves (mostly) the noise.
_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_sigma(img: np.ndarray) -> float:
    """Standard deviation of additive white Gaussian noise in ``img`` (same units).

    Immerkaer, "Fast noise variance estimation", Computer Vision and Image
    Understanding 64 (1996) 300:
    sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |img * N|, N the 3x3 mask above.
    The mask is the outer product of (1, -2, 1) with itself, so it is applied as two 1D
    passes (float32 unless ``img`` is float64). Non-finite pixels (outside an aligned
    footprint) are ignored.
    """
    a = np.asarray(img)
    ftype = np.float64 if a.dtype == np.float64 else np.float32
    a = a.astype(ftype, copy=False)
    finite = np.isfinite(a)
    whole = bool(finite.all())
    if not whole:
        a = np.where(finite, a, np.nanmedian(a) if finite.any() else 0.0).astype(ftype)
    d2 = np.array([1.0, -2.0, 1.0], ftype)
    r = np.abs(ndimage.correlate1d(ndimage.correlate1d(a, d2, axis=0, mode="nearest"),
                                   d2, axis=1, mode="nearest"))[1:-1, 1:-1]
    if whole:
        vals = r
    else:
        ok = ndimage.binary_erosion(finite, np.ones((3, 3)), border_value=0)[1:-1, 1:-1]
        if not ok.any():
            return float("nan")
        vals = r[ok]
    if vals.size == 0:
        return float("nan")
    return float(np.sqrt(np.pi / 2.0) * vals.mean(dtype=np.float64) / 6.0)


def stripe_power(img: np.ndarray, stripe_axis: int = 0) -> float:
    """Fraction of the image's (non-DC) spectral power in stripes running along ``stripe_axis``.

    A stripe that runs along y (axis 0) is constant in y and varies in x, so its power sits on
    the ``k_y = 0`` line of the 2D spectrum. Returns
    ``sum_{k_x != 0} |F(0, k_x)|^2 / sum_{k != 0} |F(k)|^2`` (white noise gives ~1/n_y).
    """
    a = np.asarray(img, dtype=np.float32)
    fin = np.isfinite(a)
    if not fin.all():
        a = np.where(fin, a, np.nanmean(a) if fin.any() else 0.0).astype(np.float32)
    a = a - np.float32(a.mean(dtype=np.float64))
    p = np.abs(scipy.fft.rfft2(a if stripe_axis == 0 else a.T)).astype(np.float64) ** 2
    p[0, 0] = 0.0
    total = p.sum()
    if total <= 0:
        return 0.0
    return float(p[0, :].sum() / total)
