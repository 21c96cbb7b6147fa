"""Shared input checks and parameter handling for the imaging/reconstruction stages."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
from typing import Any, Mapping

import h5py
import numpy as np

from magtwin.errors import ArtefactError, ConfigError, InputError

log = logging.getLogger("magtwin.imaging")


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None elsewhere (looked up once: find_library runs ldconfig)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_heap() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``; elsewhere a
    no-op). Call it once per slice or slab in a stage that streams a stack: glibc keeps freed
    blocks, and with them the resident memory grows over the slices although nothing is
    held - the 3D watershed's queues (about 100 MiB per 16 x 1024 x 1024 slab), and in the
    segment stage the slice-sized arrays freed while the next ones are allocated (on 2400
    slices of 384 x 384 px +14 MiB over the first ~1300 slices, then flat; tracemalloc: the
    Python heap did not grow)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def merged(defaults: Mapping[str, Any], params: Mapping[str, Any] | None, section: str) -> dict:
    """``defaults`` updated with ``params``; unknown keys are a :class:`ConfigError`."""
    p = dict(defaults)
    for k, v in (params or {}).items():
        if k not in defaults:
            raise ConfigError(f"{section}.{k}: unknown parameter (known: {', '.join(sorted(defaults))})")
        p[k] = v
    return p


def volume_of(f: h5py.File, path: str | os.PathLike, name: str = "volume", min_slices: int = 1) -> h5py.Dataset:
    """The ``(z, y, x)`` dataset ``name`` of an open artefact, checked for shape."""
    if name not in f:
        raise ArtefactError(f"has no '{name}' dataset", path)
    ds = f[name]
    if ds.ndim != 3:
        raise InputError(f"'{name}' must be a (z, y, x) volume, got shape {ds.shape}", path)
    nz, ny, nx = ds.shape
    if nz < min_slices:
        raise InputError(f"stack has {nz} slice(s); this stage needs at least {min_slices}", path)
    if ny < 16 or nx < 16:
        raise InputError(f"slices of {ny} x {nx} px are too small to process (need >= 16 x 16)", path)
    return ds


def voxel_size_of(f: h5py.File, path: str | os.PathLike) -> tuple[float, float, float]:
    v = f.attrs.get("voxel_size_nm")
    if v is None or np.size(v) != 3 or not np.all(np.asarray(v, float) > 0):
        raise ArtefactError("missing or invalid root attribute 'voxel_size_nm' (z, y, x nm)", path)
    return tuple(float(x) for x in np.asarray(v, float))  # type: ignore[return-value]


def progress(stage: str, k: int, n: int, every: int = 50) -> None:
    if k == n - 1 or (k + 1) % every == 0:
        log.info("%s: slice %d/%d", stage, k + 1, n)


def cli_params(section: str, config_path=None, settings=()) -> dict:
    """Stage parameters for a CLI call: the ``section`` of a workflow config file (if given),
    then ``KEY=VALUE`` overrides (YAML values). Raises :class:`ConfigError` on bad input."""
    import yaml

    from magtwin.config import load_yaml

    params: dict[str, Any] = {}
    if config_path is not None:
        cfg = load_yaml(config_path) or {}
        sec = cfg.get(section) or {}
        if not isinstance(sec, dict):
            raise ConfigError(f"{section}: must be a mapping", config_path)
        params.update(sec)
    for item in settings:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set: cannot parse the value of {key.strip()!r}: {value!r}") from None
    return params


class RowAppender:
    """A dataset ``name`` of rows ``(n, *row_shape)`` that grows as rows are appended, so a
    stage streams per-slice records (outlines, tables) to the artefact instead of keeping them
    in memory. Rows are buffered and written ``block_rows`` at a time (whole gzip chunks);
    :meth:`close` writes the rest. Memory: one block, whatever the number of slices.
    """

    def __init__(self, h5: h5py.File, name: str, row_shape: tuple[int, ...], dtype,
                 block_rows: int = 1 << 15, attrs: Mapping[str, Any] | None = None):
        self.ds = h5.create_dataset(name, shape=(0, *row_shape), maxshape=(None, *row_shape),
                                    dtype=dtype, chunks=(block_rows, *row_shape),
                                    compression="gzip", compression_opts=4, shuffle=True)
        for k, v in (attrs or {}).items():
            self.ds.attrs[k] = v
        self.block_rows = int(block_rows)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self._buf: list[np.ndarray] = []
        self._nbuf = 0
        self.n = 0  # rows appended so far (written or buffered)

    def extend(self, rows) -> None:
        a = np.asarray(rows, self.dtype).reshape(-1, *self.row_shape)
        if len(a) == 0:
            return
        self._buf.append(a)
        self._nbuf += len(a)
        self.n += len(a)
        if self._nbuf >= self.block_rows:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._buf:
            return
        a = np.concatenate(self._buf)
        k = len(a) if final else (len(a) // self.block_rows) * self.block_rows
        if k:
            n0 = self.ds.shape[0]
            self.ds.resize(n0 + k, axis=0)
            self.ds[n0:n0 + k] = a[:k]
        rest = a[k:]
        self._buf = [rest] if len(rest) else []
        self._nbuf = len(rest)

    def close(self) -> h5py.Dataset:
        self._flush(final=True)
        return self.ds


def count_percentiles(counts: np.ndarray, q) -> np.ndarray:
    """``np.percentile(values, q)`` (linear interpolation) of non-negative integer values
    given as a histogram ``counts[v]`` = number of values equal to ``v`` -- so a stage can
    accumulate a distribution in fixed memory and still report its exact percentiles."""
    counts = np.asarray(counts)
    n = int(counts.sum())
    if n == 0:
        return np.full(np.shape(q), np.nan)
    cum = np.cumsum(counts)
    pos = np.asarray(q, float) / 100.0 * (n - 1)
    lo, hi = np.floor(pos).astype(np.int64), np.ceil(pos).astype(np.int64)
    v_lo = np.searchsorted(cum, lo + 1).astype(float)  # value of the lo-th sorted sample
    v_hi = np.searchsorted(cum, hi + 1).astype(float)
    return v_lo + (pos - lo) * (v_hi - v_lo)
