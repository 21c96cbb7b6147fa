"""Stage 4 (segment): per-slice grain segmentation and vectorised grain outlines.

In an SEM image of sintered or hot-deformed Nd-Fe-B the grain-boundary (GB) phase shows as
thin bright lines between darker grains. Per slice:

1. ridge filter (Sato tubeness, bright ridges, scikit-image) at the GB line width, so the GB
   network stands out against grain-interior contrast and residual noise;
2. GB pixels = ridge response above an Otsu threshold (optionally scaled);
3. seeds = grain interiors: connected regions of the non-GB pixels whose distance to the
   nearest GB pixel exceeds ``seed_min_distance_px`` (small ones dropped);
4. seeded watershed on the ridge response inside the usable region (the aligned footprint
   covered by every slice, minus the cap rows): every pixel, GB pixels included, goes to the
   grain whose seed floods it first, so grain sections tile the slice;
5. sections smaller than ``min_area_px`` are removed and their pixels flooded by neighbours;
6. each section's outline is traced and simplified to a polygon (tolerance in nm).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import numpy as np
from scipy import ndimage
from skimage.filters import sato, threshold_otsu
from skimage.segmentation import watershed

from magtwin.errors import InputError
from magtwin.imaging.stackio import merged, progress, volume_of, voxel_size_of
from magtwin.io.artefact import ArtefactWriter, open_artefact
from magtwin.reconstruct.outlines import outline_polygons

log = logging.getLogger("magtwin.reconstruct.segment")

#: Defaults of the ``segment`` config section (the schema documents each key).
DEFAULTS: dict[str, Any] = {
    "ridge_sigmas_px": [1.0, 2.0],
    "threshold_scale": 1.0,
    "seed_min_distance_px": 2.0,
    "min_area_px": 30,
    "outline_tolerance_nm": 5.0,
}


def ridge_response(img: np.ndarray, sigmas_px=(1.0, 2.0)) -> np.ndarray:
    """Sato ridge (tubeness) response of bright lines, float (y, x); NaNs filled first."""
    a = np.asarray(img, dtype=np.float64)
    fin = np.isfinite(a)
    if not fin.all():
        a = np.where(fin, a, np.median(a[fin]) if fin.any() else 0.0)
    return sato(a, sigmas=list(sigmas_px), black_ridges=False, mode="reflect")


def segment_slice(img: np.ndarray, mask: np.ndarray | None = None, ridge_sigmas_px=(1.0, 2.0),
                  threshold_scale: float = 1.0, seed_min_distance_px: float = 2.0,
                  min_area_px: int = 30) -> tuple[np.ndarray, dict]:
    """Grain sections of one slice.

    Parameters
    ----------
    img : (ny, nx) float, GB lines bright.
    mask : (ny, nx) bool, pixels to segment (None = all).

    Returns
    -------
    labels : (ny, nx) int32, 1..n per section, 0 outside ``mask``.
    info : ``{"threshold": float, "gb_fraction": float}``.
    """
    a = np.asarray(img, dtype=np.float64)
    if mask is None:
        mask = np.ones(a.shape, bool)
    mask = mask & np.isfinite(a)
    ridge = ridge_response(a, ridge_sigmas_px)
    vals = ridge[mask]
    if vals.size == 0 or vals.max() <= vals.min():
        return np.zeros(a.shape, np.int32), {"threshold": float("nan"), "gb_fraction": 0.0}
    thr = threshold_otsu(vals) * threshold_scale
    gb = (ridge > thr) | ~mask
    dist = ndimage.distance_transform_edt(~gb)
    seeds, n = ndimage.label(dist > seed_min_distance_px)
    if n:
        # seeds too small to be a grain interior are noise in the GB network
        sizes = np.bincount(seeds.ravel())
        small = sizes < max(2, min_area_px // 4)
        small[0] = False
        if small.any():
            seeds[small[seeds]] = 0
            seeds, n = ndimage.label(seeds > 0)
    labels = watershed(ridge, seeds, mask=mask) if n else np.zeros(a.shape, np.int32)
    if n:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        small = sizes < min_area_px
        small[0] = False
        if small.any():
            keep = labels * ~small[labels]
            labels = watershed(ridge, keep, mask=mask)
        # consecutive ids
        ids = np.unique(labels)
        ids = ids[ids > 0]
        lut = np.zeros(labels.max() + 1, np.int32)
        lut[ids] = np.arange(1, len(ids) + 1)
        labels = lut[labels]
    return labels.astype(np.int32), {"threshold": float(thr), "gb_fraction": float(gb[mask].mean())}


def usable_mask(valid: np.ndarray | None, cap_rows, shape) -> np.ndarray:
    """Pixels to segment: covered by every slice and not in the cap band."""
    m = np.ones(shape, bool) if valid is None else np.asarray(valid, bool).copy()
    if cap_rows is not None and cap_rows[0] >= 0:
        r0, r1 = int(cap_rows[0]), int(cap_rows[1])
        # the cap lies above the sample: drop it and everything on its far side
        if r0 < shape[0] - r1:
            m[:r1] = False
        else:
            m[r0:] = False
    return m


def run_segment(in_path: str | os.PathLike, out_path: str | os.PathLike,
                params: Mapping[str, Any] | None = None) -> dict:
    """Stage 4: read ``03_align.h5`` (stage "align"), write ``04_segment.h5``.

    Output: ``labels2d`` uint32 (z, y, x), per-slice section ids 1..n_z (0 = not segmented);
    ``outlines/vertices_nm`` (N, 2) float64 ``(y, x)`` nm in the frame of slice 0,
    ``outlines/table`` (M, 5) int64 columns ``slice, label, first_vertex, n_vertices, area_px``;
    ``quality/sections_per_slice``; root attrs ``voxel_size_nm``, ``quality_json``.

    Raises
    ------
    InputError
        If no slice yields any grain section.
    """
    p = merged(DEFAULTS, params, "segment")
    with open_artefact(in_path, "align") as f:
        src = volume_of(f, in_path, min_slices=1)
        vox = voxel_size_of(f, in_path)
        nz, ny, nx = src.shape
        valid = np.asarray(f["valid_mask"], bool) if "valid_mask" in f else None
        cap = f.attrs.get("cap_rows")
        mask = usable_mask(valid, cap, (ny, nx))
        if mask.sum() < 64:
            raise InputError("the usable region (covered by every slice, outside the cap) is "
                             f"only {int(mask.sum())} px", in_path)
        tol_px = float(p["outline_tolerance_nm"]) / min(vox[1], vox[2])
        scale = np.array([vox[1], vox[2]])
        counts, areas, verts, table, thresholds = [], [], [], [], []
        nvert = 0
        with ArtefactWriter(out_path, "segment", p, inputs=[in_path]) as w:
            out = w.create_volume("labels2d", (nz, ny, nx), np.uint32)
            for k in range(nz):
                lab, info = segment_slice(src[k], mask, p["ridge_sigmas_px"], p["threshold_scale"],
                                          p["seed_min_distance_px"], int(p["min_area_px"]))
                out[k] = lab
                n = int(lab.max())
                counts.append(n)
                thresholds.append(info["threshold"])
                area = np.bincount(lab.ravel(), minlength=n + 1)
                areas.extend(area[1:].tolist())
                for lbl, poly in outline_polygons(lab, tol_px):
                    verts.append(poly * scale)
                    table.append((k, lbl, nvert, len(poly), int(area[lbl])))
                    nvert += len(poly)
                progress("segment", k, nz)
            if sum(counts) == 0:
                raise InputError("segmentation found no grain sections in any slice (no bright "
                                 "grain-boundary lines? check segment.ridge_sigmas_px)", in_path)
            w.write("outlines/vertices_nm", np.concatenate(verts) if verts else np.zeros((0, 2)))
            w.write("outlines/table", np.asarray(table, np.int64).reshape(-1, 5),
                    attrs={"columns": "slice,label,first_vertex,n_vertices,area_px"})
            w.write("quality/sections_per_slice", np.asarray(counts, np.int64))
            w.write("quality/threshold", np.asarray(thresholds))
            a_nm2 = np.asarray(areas, float) * vox[1] * vox[2]
            empty = [k for k, c in enumerate(counts) if c == 0]
            q = {
                "n_sections": int(sum(counts)),
                "sections_per_slice_median": float(np.median(counts)),
                "empty_slices": empty,
                "section_area_nm2_percentiles_10_50_90": np.percentile(a_nm2, [10, 50, 90]).tolist(),
                "usable_fraction": float(mask.mean()),
            }
            w.h5.attrs["voxel_size_nm"] = vox
            w.h5.attrs["usable_mask_fraction"] = float(mask.mean())
            w.write("usable_mask", mask.astype(np.uint8))
            w.write_json("quality_json", q)
            if empty:
                w.h5.attrs["warnings"] = f"{len(empty)} slices without any grain section: {empty[:20]}"
                log.warning("segment: %d slices without grain sections: %s", len(empty), empty[:20])
    log.info("segment quality: %s", q)
    return q
