"""Stage 1, ingest: an image stack -> ``01_ingest.h5`` with a (z, y, x) volume and voxel size.

The voxel size comes from the caller (config / command line) when given, else from vendor
TIFF metadata (OME, ImageJ, FEI/Thermo, Zeiss); FEI/Zeiss images carry only the pixel size,
so the slice thickness (the FIB milling step) must then be given separately.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from magtwin.errors import InputError
from magtwin.io.artefact import ArtefactWriter
from magtwin.io.tiff import TiffStack, open_stack

log = logging.getLogger(__name__)

AXES = ("z", "y", "x")


def resolve_voxel_size(
    stack: TiffStack,
    voxel_size_nm: Sequence[float] | None = None,
    slice_thickness_nm: float | None = None,
) -> tuple[tuple[float, float, float], str]:
    """Voxel size (z, y, x) in nm and where it came from.

    Precedence: an explicit ``voxel_size_nm``; else metadata, with ``slice_thickness_nm``
    filling (or overriding) z. Raises InputError naming the stack when incomplete.
    """
    if voxel_size_nm is not None:
        vs = tuple(float(v) for v in voxel_size_nm)
        if len(vs) != 3 or min(vs) <= 0:
            raise InputError(f"voxel size must be three positive numbers (z, y, x) in nm, got {voxel_size_nm}", stack.path)
        return vs, "configuration"  # type: ignore[return-value]
    md = stack.voxel
    z = float(slice_thickness_nm) if slice_thickness_nm is not None else md.z
    if md.x is None or md.y is None or z is None:
        found = ", ".join(f"{a}={getattr(md, a)} nm" for a in AXES if getattr(md, a) is not None) or "nothing"
        raise InputError(
            "voxel size missing: the TIFF metadata gives "
            f"{found}; set samples.<name>.voxel_size_nm: [z, y, x] (or slice_thickness_nm) in the config, "
            "or --voxel-size / --slice-thickness-nm",
            stack.path,
        )
    if min(z, md.y, md.x) <= 0:
        raise InputError(f"non-positive voxel size in metadata: z={z}, y={md.y}, x={md.x} nm", stack.path)
    origin = md.origin + (" + slice thickness from configuration" if slice_thickness_nm is not None else "")
    return (z, md.y, md.x), origin


def crop_slices(shape: tuple[int, int, int], crop_px: Mapping[str, Sequence[int]] | None,
                source=None) -> tuple[slice, slice, slice]:
    """Validated (z, y, x) slices of a crop ``{"z": [start, stop], ...}`` (stop exclusive)."""
    out = []
    for axis, n in zip(AXES, shape):
        rng = (crop_px or {}).get(axis)
        if rng is None:
            out.append(slice(0, n))
            continue
        start, stop = int(rng[0]), int(rng[1])
        if not (0 <= start < stop <= n):
            raise InputError(f"crop {axis}=[{start}, {stop}] outside the stack's {axis} range [0, {n}]", source)
        out.append(slice(start, stop))
    return tuple(out)  # type: ignore[return-value]


def ingest(
    stack_path: str | os.PathLike,
    out_path: str | os.PathLike,
    voxel_size_nm: Sequence[float] | None = None,
    slice_thickness_nm: float | None = None,
    crop_px: Mapping[str, Sequence[int]] | None = None,
    min_slices: int = 2,
) -> Path:
    """Read a TIFF stack slice by slice into ``out_path`` (stage "ingest").

    Parameters
    ----------
    stack_path : multi-page TIFF, OME-TIFF, or a folder of single-slice TIFFs.
    out_path : the ``01_ingest.h5`` artefact to write (atomically).
    voxel_size_nm : (z, y, x) in nm; overrides metadata.
    slice_thickness_nm : z spacing when the metadata only gives the pixel size.
    crop_px : optional region of interest ``{"z"|"y"|"x": [start, stop]}``.
    min_slices : fewer slices than this is an error (a tomogram needs a third dimension).

    Writes dataset ``volume`` (z, y, x) in the stack's data type (chunked per slice), root
    attributes ``voxel_size_nm``, ``voxel_size_origin``, ``source_shape``, ``crop_px``, and
    per-slice ``slice_mean``/``slice_std`` (for a first look at charging or drift in brightness).
    """
    stack_path = Path(stack_path)
    with open_stack(stack_path) as stack:
        vs, origin = resolve_voxel_size(stack, voxel_size_nm, slice_thickness_nm)
        zsl, ysl, xsl = crop_slices(stack.shape, crop_px, stack_path)
        nz = zsl.stop - zsl.start
        if nz < min_slices:
            raise InputError(f"stack has {nz} slice(s) after cropping; at least {min_slices} are needed", stack_path)
        shape = (nz, ysl.stop - ysl.start, xsl.stop - xsl.start)
        params = {
            "voxel_size_nm": list(vs), "slice_thickness_nm": slice_thickness_nm,
            "crop_px": dict(crop_px) if crop_px else None, "min_slices": min_slices,
        }
        log.info("ingest %s: %s slices of %sx%s px, %s, voxel %s nm (%s)", stack_path, *shape,
                 stack.dtype, vs, origin)
        with ArtefactWriter(out_path, "ingest", params, inputs=[stack_path]) as w:
            vol = w.create_volume("volume", shape, stack.dtype)
            means = np.empty(nz)
            stds = np.empty(nz)
            for i, k in enumerate(range(zsl.start, zsl.stop)):
                img = stack.read_slice(k)[ysl, xsl]
                vol[i] = img
                means[i], stds[i] = float(img.mean()), float(img.std())
            if np.all(stds == 0) and np.all(means == means[0]):
                raise InputError(f"stack is constant (every pixel = {means[0]:g}); nothing to reconstruct", stack_path)
            a = w.h5.attrs
            a["voxel_size_nm"] = np.asarray(vs, float)
            a["voxel_size_origin"] = origin
            a["source_shape"] = np.asarray(stack.shape)
            a["source_path"] = os.fspath(stack_path)
            w.write("slice_mean", means)
            w.write("slice_std", stds)
            if stack.slice_names:
                w.write_json("slice_files_json", stack.slice_names[zsl])
    return Path(out_path)
