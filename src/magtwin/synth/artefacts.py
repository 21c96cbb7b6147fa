"""Imaging artefacts: shading, FIB curtaining, slice brightness, Poisson-Gaussian noise.

Brightness is in full-scale units (1 = the brightest phase at nominal beam current); the
detector maps it to 16-bit grey values with :func:`intensity_to_dn`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: grey value of zero signal and grey values per full-scale unit (uint16 detector)
DN_OFFSET = 1000.0
DN_PER_UNIT = 50000.0


def intensity_to_dn(intensity: np.ndarray) -> np.ndarray:
    """Full-scale brightness -> uint16 grey values ``round(DN_OFFSET + DN_PER_UNIT * I)``."""
    return np.clip(np.rint(DN_OFFSET + DN_PER_UNIT * np.asarray(intensity)), 0, 65535).astype(np.uint16)


def shading_field(shape: tuple[int, int], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative illumination field ``(ny, nx)`` fixed to the detector, mean ~1.

    A linear ramp in a random direction plus a radial fall-off (vignetting); its peak-to-peak
    relative variation is about ``amplitude``.
    """
    ny, nx = shape
    y = (np.arange(ny) - (ny - 1) / 2) / max(ny, nx)
    x = (np.arange(nx) - (nx - 1) / 2) / max(ny, nx)
    Y, X = np.meshgrid(y, x, indexing="ij")
    ang = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(ang) * X + np.sin(ang) * Y          # in [-0.5, 0.5] (-ish)
    vign = -(X * X + Y * Y)                           # in [-0.5, 0]
    f = 0.6 * ramp + 0.8 * (vign + 0.25)
    return 1.0 + amplitude * f


@dataclass
class Curtains:
    """Vertical FIB curtaining stripes fixed to the sample (world ``x``), evolving slowly in z.

    Each stripe ``j`` has a centre ``x_j`` and width ``s_j`` (nm), a length ``l_j`` (nm) down
    from the top of the sample, and an amplitude that drifts with the slice index as
    ``A_j * cos(2 pi k / P_j + phi_j)`` with periods ``P_j`` of about ``period`` slices.
    """

    x_nm: np.ndarray
    width_nm: np.ndarray
    length_nm: np.ndarray
    amp: np.ndarray
    period: np.ndarray
    phase: np.ndarray

    @classmethod
    def random(cls, x_range_nm: tuple[float, float], height_nm: float, pixel_nm: float,
               strength: float, period_slices: float, rng: np.random.Generator) -> "Curtains":
        lo, hi = x_range_nm
        n = max(1, int((hi - lo) / (8 * pixel_nm)))
        return cls(
            x_nm=rng.uniform(lo, hi, n),
            width_nm=pixel_nm * rng.uniform(0.6, 2.5, n),
            length_nm=height_nm * rng.uniform(0.3, 1.2, n),
            amp=strength * rng.normal(0.0, 1.0, n),
            period=period_slices * rng.uniform(0.7, 1.5, n),
            phase=rng.uniform(0, 2 * np.pi, n),
        )

    def factor(self, k: int, x_nm: np.ndarray, depth_nm: np.ndarray) -> np.ndarray:
        """Multiplicative factor ``(len(depth), len(x))`` for slice ``k``.

        ``x_nm`` are world columns, ``depth_nm`` the depth below the top of the sample
        (negative = in the cap, where there are no curtains).
        """
        a = self.amp * np.cos(2 * np.pi * k / self.period + self.phase)
        across = np.exp(-0.5 * ((x_nm[None, :] - self.x_nm[:, None]) / self.width_nm[:, None]) ** 2)
        d = depth_nm[None, :]
        soft = 0.1 * self.length_nm[:, None]
        along = (d >= 0) / (1.0 + np.exp((d - self.length_nm[:, None]) / soft))
        return 1.0 + (a[:, None] * along).T @ across


def poisson_gaussian(intensity: np.ndarray, noise_level: float, poisson_fraction: float,
                     reference: float, rng: np.random.Generator) -> np.ndarray:
    """Shot + read noise with variance ``alpha * I + sigma^2``.

    Calibrated so that the std at brightness ``reference`` is ``noise_level`` and a fraction
    ``poisson_fraction`` of that variance is shot noise: ``alpha = f s^2 / reference``,
    ``sigma^2 = (1 - f) s^2``. ``I`` is taken as ``alpha * Poisson(I / alpha)`` (photon counts).
    """
    if noise_level <= 0:
        return intensity
    var = noise_level ** 2
    out = np.asarray(intensity, dtype=np.float64)
    if poisson_fraction > 0:
        alpha = poisson_fraction * var / reference
        out = alpha * rng.poisson(np.clip(out, 0, None) / alpha)
    if poisson_fraction < 1:
        out = out + rng.normal(0.0, np.sqrt((1 - poisson_fraction) * var), size=out.shape)
    return out
