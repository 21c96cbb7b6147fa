"""Reading FIB-SEM image stacks: multi-page TIFF, OME-TIFF, ImageJ TIFF, or a folder of
single-slice TIFFs — slice by slice, with the voxel size from vendor metadata where present.

Every problem with the data raises :class:`magtwin.errors.InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import tifffile

from magtwin.errors import InputError

TIFF_SUFFIXES = (".tif", ".tiff")

#: Length units seen in TIFF metadata -> nm.
_UNIT_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometre": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "micron": 1e3, "microns": 1e3, "micrometer": 1e3,
    "micrometre": 1e3, "\\u00b5m": 1e3,
    "mm": 1e6, "cm": 1e7, "m": 1e9, "a": 0.1, "å": 0.1, "angstrom": 0.1, "pm": 1e-3,
}


def natural_key(name: str) -> list:
    """Sort key so that ``slice_2.tif`` comes before ``slice_10.tif``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _unit_to_nm(unit: str | None, source) -> float:
    if unit is None:
        return 1.0
    u = str(unit).strip().lower()
    if u not in _UNIT_NM:
        raise InputError(f"unknown length unit {unit!r} in TIFF metadata", source)
    return _UNIT_NM[u]


@dataclass
class VoxelSizeInfo:
    """Voxel size found in metadata: any of z, y, x in nm (None where absent)."""

    z: float | None = None
    y: float | None = None
    x: float | None = None
    origin: str = ""

    def complete(self) -> bool:
        return None not in (self.z, self.y, self.x)


@dataclass
class TiffStack:
    """A lazily read (z, y, x) greyscale stack.

    Attributes
    ----------
    path : the file or folder
    shape : (nz, ny, nx)
    dtype : numpy dtype of the slices
    voxel : voxel size found in metadata (possibly partial)
    read_slice : callable k -> (ny, nx) array
    """

    path: Path
    shape: tuple[int, int, int]
    dtype: np.dtype
    voxel: VoxelSizeInfo = field(default_factory=VoxelSizeInfo)
    read_slice: Callable[[int], np.ndarray] = field(default=None, repr=False)  # type: ignore[assignment]
    _close: Callable[[], None] = field(default=lambda: None, repr=False)
    slice_names: list[str] = field(default_factory=list, repr=False)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> "TiffStack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- metadata ---------------------------------------------------------------------------

def _imagej_voxel(tif: tifffile.TiffFile, source) -> VoxelSizeInfo:
    md = tif.imagej_metadata or {}
    unit = md.get("unit")
    if unit is None:
        return VoxelSizeInfo()
    scale = _unit_to_nm(unit, source)
    page = tif.pages[0]
    info = VoxelSizeInfo(origin="ImageJ metadata")
    for tag, axis in (("XResolution", "x"), ("YResolution", "y")):
        if tag in page.tags:
            num, den = page.tags[tag].value
            if num > 0:
                setattr(info, axis, den / num * scale)
    if md.get("spacing"):
        info.z = float(md["spacing"]) * scale
    return info


def _ome_voxel(tif: tifffile.TiffFile, source) -> VoxelSizeInfo:
    try:
        root = ET.fromstring(tif.ome_metadata)
    except ET.ParseError:
        raise InputError("OME-XML metadata does not parse", source) from None
    pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
    if pixels is None:
        return VoxelSizeInfo()
    info = VoxelSizeInfo(origin="OME metadata")
    for axis in "xyz":
        key = f"PhysicalSize{axis.upper()}"
        if key in pixels.attrib:
            unit = pixels.attrib.get(f"{key}Unit", "µm")  # OME's default unit is µm
            setattr(info, axis, float(pixels.attrib[key]) * _unit_to_nm(unit, source))
    return info


def _fei_voxel(tif: tifffile.TiffFile) -> VoxelSizeInfo:
    md = tif.fei_metadata or {}
    scan = md.get("Scan") or md.get("EScan") or {}
    info = VoxelSizeInfo(origin="FEI/Thermo metadata")
    if scan.get("PixelWidth"):
        info.x = float(scan["PixelWidth"]) * 1e9  # metres
    if scan.get("PixelHeight"):
        info.y = float(scan["PixelHeight"]) * 1e9
    return info


def _zeiss_voxel(tif: tifffile.TiffFile, source) -> VoxelSizeInfo:
    md = tif.sem_metadata or {}
    entry = md.get("ap_image_pixel_size") or md.get("ap_pixel_size")
    info = VoxelSizeInfo(origin="Zeiss SEM metadata")
    if entry and len(entry) >= 3:
        size = float(entry[1]) * _unit_to_nm(entry[2], source)
        info.x = info.y = size
    return info


def read_voxel_metadata(tif: tifffile.TiffFile, source) -> VoxelSizeInfo:
    """Voxel size from the first metadata flavour that has one (may be partial)."""
    if tif.is_ome and tif.ome_metadata:
        info = _ome_voxel(tif, source)
        if info.x is not None:
            return info
    if tif.is_imagej:
        info = _imagej_voxel(tif, source)
        if info.x is not None:
            return info
    if getattr(tif, "is_fei", False):
        info = _fei_voxel(tif)
        if info.x is not None:
            return info
    if getattr(tif, "is_sem", False):
        info = _zeiss_voxel(tif, source)
        if info.x is not None:
            return info
    return VoxelSizeInfo()


# --- opening -------------------------------------------------------------------------------

def _open_tiff(path: Path) -> tifffile.TiffFile:
    try:
        return tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, OSError, struct.error) as exc:
        raise InputError(f"not a readable TIFF ({_short(exc)})", path) from None


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _check_greyscale(axes: str, shape: tuple, path) -> None:
    if "S" in axes and shape[axes.index("S")] > 1:
        raise InputError(
            f"RGB/multi-sample images (axes {axes}, shape {shape}); convert the stack to greyscale first",
            path,
        )


class _TifffileComplaints(logging.Handler):
    """Collects what tifffile logs: it reports corrupt or truncated files by logging and then
    falls back to reading what it can, which would silently drop slices."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _strict_tifffile(path: Path):
    logger = logging.getLogger("tifffile")
    handler = _TifffileComplaints()
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved
    if handler.messages:
        msg = handler.messages[-1].split("> ", 1)[-1]
        raise InputError(f"file truncated or corrupt (tifffile: {msg})", path)


def _open_file(path: Path) -> TiffStack:
    tif = _open_tiff(path)
    try:
        with _strict_tifffile(path):
            series_list = tif.series
            if series_list:
                _ = series_list[0].pages[-1]
        if not series_list:
            raise InputError("TIFF contains no images", path)
        series = series_list[0]
        if tif.is_imagej:
            expected = int((tif.imagej_metadata or {}).get("images", 0))
            if expected and expected != int(np.prod(series.shape[:-2])):
                raise InputError(f"file truncated: ImageJ metadata announces {expected} images, "
                                 f"the file holds {int(np.prod(series.shape[:-2]))}", path)
        axes, shape = series.axes, tuple(series.shape)
        _check_greyscale(axes, shape, path)
        # Axes other than Y, X that are longer than 1: there must be exactly one (the slices).
        stack_axes = [(a, n) for a, n in zip(axes, shape) if a not in "YX" and n > 1]
        if len(stack_axes) > 1:
            raise InputError(
                f"{len(shape)}-dimensional image (axes {axes}, shape {shape}); expected a (z, y, x) greyscale stack",
                path,
            )
        if not axes.endswith("YX"):
            raise InputError(f"unexpected axis order {axes}; expected ...YX", path)
        ny, nx = shape[-2], shape[-1]
        nz = stack_axes[0][1] if stack_axes else 1
        pages = series.pages
        if len(pages) != nz:
            raise InputError(f"series has {nz} slices but {len(pages)} pages", path)
        dtype = np.dtype(series.dtype)
        voxel = read_voxel_metadata(tif, path)
    except InputError:
        tif.close()
        raise
    except Exception as exc:  # tifffile raises many kinds on corrupt files
        tif.close()
        raise InputError(f"cannot interpret TIFF ({_short(exc)})", path) from None

    def read_slice(k: int) -> np.ndarray:
        try:
            with _strict_tifffile(path):
                page = pages[k]
                if page is None:
                    raise ValueError("missing page")
                img = page.asarray()
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"slice {k} cannot be read — file truncated or corrupt ({_short(exc)})", path) from None
        img = np.squeeze(img)
        if img.shape != (ny, nx):
            raise InputError(f"slice {k} has shape {img.shape}, expected {(ny, nx)}", path)
        return img

    return TiffStack(path, (nz, ny, nx), dtype, voxel, read_slice, tif.close)


def _open_folder(path: Path) -> TiffStack:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in TIFF_SUFFIXES and p.is_file()),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise InputError("folder contains no TIFF files (*.tif, *.tiff)", path)
    first = _open_file(files[0])
    try:
        if first.shape[0] != 1:
            raise InputError(f"expected single-slice TIFFs in a folder, this one has {first.shape[0]} slices",
                             files[0])
        ny, nx = first.shape[1:]
        dtype = first.dtype
        voxel = first.voxel
    finally:
        first.close()

    def read_slice(k: int) -> np.ndarray:
        f = files[k]
        s = _open_file(f)
        try:
            if s.shape != (1, ny, nx):
                raise InputError(f"slice has shape {s.shape[1:]} (x{s.shape[0]}), the first slice {files[0].name} has {(ny, nx)}", f)
            img = s.read_slice(0)
        finally:
            s.close()
        if img.dtype != dtype:
            raise InputError(f"slice has data type {img.dtype}, the first slice has {dtype}", f)
        return img

    stack = TiffStack(path, (len(files), ny, nx), dtype, voxel, read_slice)
    stack.slice_names = [f.name for f in files]
    return stack


def open_stack(path: str | os.PathLike) -> TiffStack:
    """Open a multi-page TIFF / OME-TIFF / ImageJ TIFF, or a folder of single-slice TIFFs.

    Returns a :class:`TiffStack` whose slices are read lazily with ``read_slice(k)``.
    Raises :class:`InputError` for a missing path, a non-TIFF, an RGB or >3-D image.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("stack does not exist", p)
    if p.is_dir():
        return _open_folder(p)
    return _open_file(p)
