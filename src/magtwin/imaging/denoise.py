"""Stage 2 (denoise): curtaining removal, shading/brightness normalisation, edge-preserving
denoising — slice by slice, so memory does not grow with the stack length.

Order per slice: stripes are an additive, structured signal that an edge-preserving filter
would keep, so they go first; then shading and brightness normalisation (every slice ends up
with median 0 and unit robust spread, dimensionless float32); then the denoiser, whose
strength is set relative to the noise level estimated on that slice.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.restoration import denoise_nl_means

from magtwin.errors import ConfigError, InputError
from magtwin.imaging import destripe, quality, shading
from magtwin.imaging.stackio import merged, progress, volume_of, voxel_size_of
from magtwin.io.artefact import ArtefactWriter, open_artefact

log = logging.getLogger("magtwin.imaging.denoise")

METHODS = ("nl_means", "nl_means_skimage", "bilateral", "anisotropic_diffusion", "median", "gaussian", "none")

#: Defaults of the ``denoise`` config section (the schema documents each key).
DEFAULTS: dict[str, Any] = {
    "method": "nl_means",
    "strength": 0.8,
    "scale_px": 2.0,
    "destripe": True,
    "stripe_axis": "y",
    "stripe_width_px": 30.0,
    "stripe_length_px": 150.0,
    "stripe_multiplicative": True,
    "stripe_reference": "median",
    "shading": True,
    "shading_sigma_px": 150.0,
    "normalise": True,
}


def denoise_slice(img: np.ndarray, method: str = "nl_means", strength: float = 0.8,
                  scale_px: float = 2.0, sigma: float | None = None) -> np.ndarray:
    """Edge-preserving denoising of one slice ``(y, x)`` (float32 out).

    Parameters
    ----------
    method : one of :data:`METHODS`.
        ``nl_means`` (OpenCV fast non-local means, :func:`nl_means_opencv`; patch
        ``2*round(scale_px)+1`` px, search window ``6*round(scale_px)+1`` px, filter parameter
        ``h = strength * sigma``), ``nl_means_skimage`` (scikit-image's fast mode, same
        patch and window, ``h = strength * sigma`` after subtracting the expected patch
        distance of noise; ~3x slower), ``bilateral`` (SimpleITK; domain sigma
        ``scale_px``, range sigma ``strength * sigma``), ``anisotropic_diffusion``
        (SimpleITK curvature anisotropic diffusion, ``round(5*strength)`` iterations,
        conductance ``scale_px``), ``median`` (radius ``round(scale_px)`` px), ``gaussian``
        (sigma ``scale_px`` px; not edge preserving), ``none``.
    strength : dimensionless, relative to the noise standard deviation ``sigma``.
    sigma : noise standard deviation of ``img``; estimated (Immerkaer) when None.
    """
    a = np.asarray(img, dtype=np.float32)
    if method == "none":
        return a.copy()
    if sigma is None:
        sigma = quality.noise_sigma(a)
    sigma = float(sigma) if np.isfinite(sigma) and sigma > 0 else 1e-6
    if method == "nl_means":
        return nl_means_opencv(a, strength * sigma, max(1, int(round(scale_px))))
    if method == "nl_means_skimage":
        half = max(1, int(round(scale_px)))
        return denoise_nl_means(a, h=strength * sigma, sigma=sigma, patch_size=2 * half + 1,
                                patch_distance=3 * half, fast_mode=True).astype(np.float32)
    if method == "gaussian":
        return ndimage.gaussian_filter(a, scale_px)
    im = sitk.GetImageFromArray(a)
    if method == "bilateral":
        out = sitk.Bilateral(im, float(scale_px), float(strength * sigma))
    elif method == "anisotropic_diffusion":
        out = sitk.CurvatureAnisotropicDiffusion(im, 0.0625, float(scale_px), 1,
                                                 max(1, int(round(5 * strength))))
    elif method == "median":
        r = max(1, int(round(scale_px)))
        out = sitk.Median(im, [r, r])
    else:
        raise ConfigError(f"denoise.method: {method!r} is not one of {', '.join(METHODS)}")
    return sitk.GetArrayFromImage(out).astype(np.float32)


def nl_means_opencv(img: np.ndarray, h: float, half: int = 2) -> np.ndarray:
    """Non-local means (Buades et al. 2005) with OpenCV's ``fastNlMeansDenoising``, float32 (y, x).

    Patches ``2 half + 1`` px, search window ``6 half + 1`` px (as scikit-image's
    ``patch_distance = 3 half``). OpenCV needs integer pixels: the slice is mapped linearly onto
    the full uint16 range (no clipping; the step is < 1e-4 of the slice's range) and patch
    distances are L1; weights ``exp(-d^2 / h^2)`` with ``d`` the mean absolute patch
    difference and ``h`` in the units of ``img``. Multithreaded, ~3x faster than
    scikit-image's fast mode on one core at equal parameters.
    """
    import cv2

    a = np.asarray(img, np.float32)
    lo, hi = float(a.min()), float(a.max())
    if not hi > lo:
        return a.copy()
    scale = 65535.0 / (hi - lo)
    u = np.rint((a - lo) * scale).astype(np.uint16)
    out = cv2.fastNlMeansDenoising(u, h=[float(h * scale)], templateWindowSize=2 * half + 1,
                                   searchWindowSize=6 * half + 1, normType=cv2.NORM_L1)
    return out.astype(np.float32) * np.float32(1.0 / scale) + np.float32(lo)


def process_slice(img: np.ndarray, params: Mapping[str, Any]) -> tuple[np.ndarray, dict]:
    """Destripe, flatten, normalise and denoise one slice; return it and its quality numbers.

    Quality numbers (dimensionless, comparable before/after): ``noise_rel`` = Immerkaer
    noise sigma / robust spread of the slice, ``stripe_power`` = fraction of spectral power
    in stripes along the milling axis (see :mod:`magtwin.imaging.quality`).
    """
    p = params
    axis = 0 if p["stripe_axis"] == "y" else 1
    a = np.asarray(img, dtype=np.float32)
    _, s0 = shading.robust_stats(a)
    q = {"noise_rel_before": quality.noise_sigma(a) / (s0 or 1.0),
         "stripe_power_before": quality.stripe_power(a, axis)}
    if p["destripe"]:
        a = destripe.remove_stripes(a, p["stripe_width_px"], p["stripe_length_px"], axis,
                                    bool(p["stripe_multiplicative"]), p["stripe_reference"])
    if p["shading"]:
        a = shading.flatten(a, p["shading_sigma_px"])
    if p["normalise"]:
        a = shading.normalise(a)
    a = denoise_slice(a, p["method"], p["strength"], p["scale_px"])
    _, s1 = shading.robust_stats(a)
    q["noise_rel_after"] = quality.noise_sigma(a) / (s1 or 1.0)
    q["stripe_power_after"] = quality.stripe_power(a, axis)
    return a, q


def run_denoise(in_path: str | os.PathLike, out_path: str | os.PathLike,
                params: Mapping[str, Any] | None = None) -> dict:
    """Stage 2: read ``01_ingest.h5`` (stage "ingest"), write ``02_denoise.h5``.

    Output: ``volume`` float32 (z, y, x), normalised (median 0, unit robust spread per
    slice); ``quality/<name>`` per-slice arrays; root attrs ``voxel_size_nm`` and
    ``quality_json`` (stack medians). Returns the quality summary.

    Raises
    ------
    InputError
        Constant (e.g. all-black) stack, fewer than 2 slices, tiny slices.
    """
    p = merged(DEFAULTS, params, "denoise")
    if p["method"] not in METHODS:
        raise ConfigError(f"denoise.method: {p['method']!r} is not one of {', '.join(METHODS)}")
    if p["stripe_reference"] not in ("median", "gaussian"):
        raise ConfigError(f"denoise.stripe_reference: {p['stripe_reference']!r} is not 'median' or 'gaussian'")
    if p["stripe_axis"] not in ("y", "x"):
        raise ConfigError(f"denoise.stripe_axis: {p['stripe_axis']!r} is not 'y' or 'x'")
    with open_artefact(in_path, "ingest") as f:
        src = volume_of(f, in_path, min_slices=2)
        vox = voxel_size_of(f, in_path)
        nz, ny, nx = src.shape
        per_slice: dict[str, list[float]] = {}
        constant = []
        with ArtefactWriter(out_path, "denoise", p, inputs=[in_path]) as w:
            out = w.create_volume("volume", (nz, ny, nx), np.float32)
            for k in range(nz):
                raw = np.asarray(src[k], dtype=np.float32)
                if not np.isfinite(raw).all():
                    raise InputError(f"slice {k} contains NaN or infinite values", in_path)
                if float(raw.max()) == float(raw.min()):
                    constant.append(k)
                    out[k] = np.zeros_like(raw)
                    for name in ("noise_rel_before", "noise_rel_after",
                                 "stripe_power_before", "stripe_power_after"):
                        per_slice.setdefault(name, []).append(float("nan"))
                    continue
                img, q = process_slice(raw, p)
                out[k] = img
                for name, v in q.items():
                    per_slice.setdefault(name, []).append(v)
                progress("denoise", k, nz)
            if len(constant) == nz:
                raise InputError(
                    f"every slice is constant (e.g. all black, value {float(src[0, 0, 0]):g}): "
                    "no image content to process", in_path)
            if len(constant) > nz // 2:
                raise InputError(f"{len(constant)} of {nz} slices are constant (blank): "
                                 "no usable tomography", in_path)
            for name, vals in per_slice.items():
                w.write(f"quality/{name}", np.asarray(vals, np.float64))
            summary = {name: float(np.nanmedian(v)) for name, v in per_slice.items()}
            summary["blank_slices"] = constant
            summary["n_slices"] = nz
            w.h5.attrs["voxel_size_nm"] = vox
            w.write_json("quality_json", summary)
            if constant:
                w.h5.attrs["warnings"] = f"{len(constant)} blank (constant) slices set to 0: {constant[:20]}"
                log.warning("denoise: %d blank slices: %s", len(constant), constant[:20])
    log.info("denoise quality: %s", {k: v for k, v in summary.items() if k != "blank_slices"})
    return summary
