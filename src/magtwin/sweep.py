"""Expand ``config["sweep"]`` into named parameter points (one solver job each).

A sweep varies the parameters of :data:`PARAMETERS` (grain-boundary and triple-junction
polarisation, GB exchange and thickness, field angle, misalignment spread). Two modes:

``mode: grid``
    every combination of the top-level lists, plus every combination of each entry of
    ``extra_grids`` (a list of further grids, e.g. an angle series at one GB Js); the union,
    duplicates merged.
``mode: scenarios``
    ``scenarios`` maps a user-chosen name to one value per parameter.

A list entry may also be a range ``{start, stop, step}`` or ``{start, stop, num}`` (stop
inclusive). Point names are built from the parameters *given* in the grid, in the fixed
order of :data:`PARAMETERS`, as ``<short><value>`` joined by ``_`` (e.g. ``gbJs0.8_angle0``):
a name depends only on the point's own values, so adding a value to a list adds jobs without
renaming existing ones. A sweep that names no parameter is one point, ``base``.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any, Mapping

import numpy as np

from magtwin.errors import ConfigError

#: Sweepable parameters (config key -> short name used in point names), in name order.
PARAMETERS: dict[str, str] = {
    "gb_Js_T": "gbJs",
    "gb_parallel_Js_T": "gbparJs",
    "gb_perpendicular_Js_T": "gbperpJs",
    "tj_thin_Js_T": "tjthinJs",
    "tj_thick_Js_T": "tjthickJs",
    "gb_A_J_per_m": "gbA",
    "gb_thickness_nm": "gbthick",
    "field_angle_deg": "angle",
    "misalignment_sigma_deg": "misal",
}

#: Allowed value range per parameter (inclusive).
_RANGES: dict[str, tuple[float, float]] = {
    "gb_Js_T": (0.0, 3.0),
    "gb_parallel_Js_T": (0.0, 3.0),
    "gb_perpendicular_Js_T": (0.0, 3.0),
    "tj_thin_Js_T": (0.0, 3.0),
    "tj_thick_Js_T": (0.0, 3.0),
    "gb_A_J_per_m": (0.0, 1e-10),
    "gb_thickness_nm": (0.0, 100.0),
    "field_angle_deg": (-180.0, 180.0),
    "misalignment_sigma_deg": (0.0, 90.0),
}

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_CONTROL_KEYS = ("mode", "extra_grids", "scenarios")


def format_value(value: float) -> str:
    """Shortest exact text of ``value`` for a point name (``0.8``, ``15``, ``8e-12``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def point_name(params: Mapping[str, float]) -> str:
    """Stable, human-readable name of a sweep point from its own parameter values."""
    parts = [f"{short}{format_value(params[key])}" for key, short in PARAMETERS.items() if key in params]
    return "_".join(parts) if parts else "base"


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{where}: expected a number, got {value!r}", "config")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"{where}: value must be finite, got {value!r}", "config")
    return v


def _check_range(key: str, v: float, where: str) -> float:
    lo, hi = _RANGES[key]
    if not lo <= v <= hi:
        raise ConfigError(f"{where}: {format_value(v)} is outside [{format_value(lo)}, {format_value(hi)}]", "config")
    return v


def _expand_values(key: str, spec: Any, where: str) -> list[float]:
    """A list of numbers and/or ranges -> sorted-as-given list of floats (duplicates dropped)."""
    if isinstance(spec, Mapping) or not isinstance(spec, (list, tuple)):
        spec = [spec]
    if len(spec) == 0:
        raise ConfigError(f"{where}: empty list (give at least one value, or remove the key)", "config")
    out: list[float] = []
    for i, item in enumerate(spec):
        w = f"{where}[{i}]"
        if isinstance(item, Mapping):
            unknown = set(item) - {"start", "stop", "step", "num"}
            if unknown or "start" not in item or "stop" not in item or ("step" in item) == ("num" in item):
                raise ConfigError(f"{w}: a range needs start, stop and exactly one of step or num", "config")
            start, stop = _number(item["start"], w + ".start"), _number(item["stop"], w + ".stop")
            if "num" in item:
                num = item["num"]
                if isinstance(num, bool) or not isinstance(num, int) or num < 1:
                    raise ConfigError(f"{w}.num: expected a positive integer, got {num!r}", "config")
                vals = np.linspace(start, stop, num)
            else:
                step = _number(item["step"], w + ".step")
                if step == 0 or (stop - start) / step < 0:
                    raise ConfigError(f"{w}.step: {step!r} does not go from start to stop", "config")
                n = int(math.floor((stop - start) / step + 1e-9)) + 1
                vals = start + step * np.arange(n)
            # Round away binary noise (0.30000000000000004) so names stay readable.
            values = [round(float(v), 12) for v in vals]
        else:
            values = [_number(item, w)]
        for v in values:
            _check_range(key, v, w)
            if v not in out:
                out.append(v)
    return out


def _grid(grid: Mapping[str, Any], where: str) -> list[dict[str, float]]:
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{where}: expected a mapping of parameter -> list", "config")
    keys = [k for k in PARAMETERS if k in grid]
    unknown = [k for k in grid if k not in PARAMETERS and k not in _CONTROL_KEYS]
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: not a sweep parameter (known: {', '.join(PARAMETERS)})", "config")
    lists = [_expand_values(k, grid[k], f"{where}.{k}" if where != "sweep" else f"sweep.{k}") for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*lists)]


def expand_sweep(sweep_cfg: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """Named sweep points from the ``sweep`` config section.

    Parameters
    ----------
    sweep_cfg : the ``sweep`` mapping (see module docstring); ``None``/empty gives one
        point ``base`` with no parameter overrides.

    Returns
    -------
    dict
        ``{point name: {parameter: value (plain float)}}`` in a deterministic order.

    Raises
    ------
    ConfigError
        Empty list, unknown parameter, non-numeric or out-of-range value, bad range,
        scenario name not file-name safe, or two points with the same name but different
        values.
    """
    cfg = dict(sweep_cfg or {})
    mode = cfg.get("mode", "grid")
    points: dict[str, dict[str, float]] = {}

    def add(name: str, params: dict[str, float], where: str) -> None:
        if name in points and points[name] != params:
            raise ConfigError(f"{where}: point name {name!r} used for two different parameter sets", "config")
        points[name] = params

    if mode == "grid":
        for params in _grid({k: v for k, v in cfg.items() if k not in _CONTROL_KEYS}, "sweep"):
            add(point_name(params), params, "sweep")
        extra = cfg.get("extra_grids") or []
        if not isinstance(extra, list):
            raise ConfigError("sweep.extra_grids: expected a list of grids", "config")
        for i, grid in enumerate(extra):
            if isinstance(grid, Mapping) and not any(k in PARAMETERS for k in grid):
                raise ConfigError(f"sweep.extra_grids[{i}]: names no sweep parameter", "config")
            for params in _grid(grid, f"sweep.extra_grids[{i}]"):
                add(point_name(params), params, f"sweep.extra_grids[{i}]")
    elif mode == "scenarios":
        unused = [k for k in cfg if k in PARAMETERS or k == "extra_grids"]
        if unused:
            raise ConfigError(f"sweep.{unused[0]}: not used with mode 'scenarios' (remove it, or use mode 'grid')",
                              "config")
        scen = cfg.get("scenarios") or {}
        if not isinstance(scen, Mapping) or not scen:
            raise ConfigError("sweep.scenarios: mode is 'scenarios' but no scenario is given", "config")
        for name, values in scen.items():
            where = f"sweep.scenarios.{name}"
            if not _NAME_RE.match(str(name)):
                raise ConfigError(f"{where}: name may contain only letters, digits, '_', '.', '-'", "config")
            if not isinstance(values, Mapping):
                raise ConfigError(f"{where}: expected a mapping of parameter -> value", "config")
            params: dict[str, float] = {}
            for k, v in values.items():
                if k not in PARAMETERS:
                    raise ConfigError(f"{where}.{k}: not a sweep parameter (known: {', '.join(PARAMETERS)})", "config")
                params[k] = _check_range(k, _number(v, f"{where}.{k}"), f"{where}.{k}")
            add(str(name), {k: params[k] for k in PARAMETERS if k in params}, where)
    else:
        raise ConfigError(f"sweep.mode: {mode!r} is not one of 'grid', 'scenarios'", "config")
    return points


def swept_parameters(points: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Parameters that take more than one value over ``points`` (in :data:`PARAMETERS` order)."""
    out = []
    for key in PARAMETERS:
        vals = {p[key] for p in points.values() if key in p}
        if len(vals) > 1:
            out.append(key)
    return out
