"""Shared input checks and parameter handling for the imaging/reconstruction stages."""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import h5py
import numpy as np

from magtwin.errors import ArtefactError, ConfigError, InputError

log = logging.getLogger("magtwin.imaging")


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
