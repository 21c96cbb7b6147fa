"""Materials file -> material parameters per region and per element.

The materials mapping (from ``--materials MAT.yaml``) has one section per region kind and
optional per-region overrides::

    grain:            {Js_T: 1.61, K1_J_per_m3: 4.9e6, K2_J_per_m3: 0, A_J_per_m: 8e-12}
    gb:               {Js_T: 0.8}          # K1 = K2 = 0 and A = A_grain (Js/Js_grain)^2 unless given
    gb_parallel:      {Js_T: 0.6}          # GB planes parallel to the alignment axis
    gb_perpendicular: {Js_T: 0.9}          # GB planes perpendicular to the alignment axis
    tj:               {Js_T: 0.5}
    tj_thin:          {Js_T: 0.1}          # by the region table's ``tj_class``
    tj_thick:         {Js_T: 0.8}
    regions:          {17: {Js_T: 0.0}, 3: {easy_axis: [0, 0.1, 1]}}
    misalignment:     {distribution: gaussian, sigma_deg: 5.0, seed: 1, use_region_table: true}

Later entries refine earlier ones (kind -> sub-kind -> region id). Grains default to the
Nd2Fe14B values of DESIGN.md (an empty ``grain: {}`` is enough); GB and TJ regions need
``Js_T``. A GB is "parallel" when its plane contains the alignment axis to within 45 deg, i.e.
its normal (region-table ``normal``, else ``angle_to_axis_deg`` = angle between normal and
axis) is more than 45 deg from the axis. A mesh without a region table is all grain.

Easy axes: per grain from ``regions.<id>.easy_axis``, else the region table's ``easy_axis``
(when ``use_region_table``), else drawn about the alignment axis: ``gaussian`` tilt
|N(0, sigma)|, ``uniform_cone`` uniform on the spherical cap of half-angle sigma; azimuth
uniform; one draw per region in increasing id order from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from magtwin.errors import ConfigError

PARAMS = ("Js_T", "K1_J_per_m3", "K2_J_per_m3", "A_J_per_m")
GRAIN_DEFAULTS = {"Js_T": 1.61, "K1_J_per_m3": 4.9e6, "K2_J_per_m3": 0.0, "A_J_per_m": 8e-12}
KIND_SECTIONS = ("grain", "gb", "gb_parallel", "gb_perpendicular", "tj", "tj_thin", "tj_thick")
TOP_KEYS = set(KIND_SECTIONS) | {"regions", "misalignment"}
MISALIGN_KEYS = {"distribution", "sigma_deg", "seed", "use_region_table"}


@dataclass
class Materials:
    """Resolved parameters.

    Attributes
    ----------
    region_ids : (R,) int, sorted region ids
    Js_T, K1_J_per_m3, K2_J_per_m3, A_J_per_m : (R,) float per region
    easy_axis : (R, 3) unit vectors
    table : list of dicts (the resolved table, for provenance)
    """

    region_ids: np.ndarray
    Js_T: np.ndarray
    K1_J_per_m3: np.ndarray
    K2_J_per_m3: np.ndarray
    A_J_per_m: np.ndarray
    easy_axis: np.ndarray
    table: list

    def per_element(self, region_id: np.ndarray) -> dict[str, np.ndarray]:
        """Element arrays (M,) / (M, 3) of every parameter for elements in ``region_id``."""
        idx = np.searchsorted(self.region_ids, region_id)
        return {"Js_T": self.Js_T[idx], "K1_J_per_m3": self.K1_J_per_m3[idx],
                "K2_J_per_m3": self.K2_J_per_m3[idx], "A_J_per_m": self.A_J_per_m[idx],
                "easy_axis": self.easy_axis[idx]}


def _check_section(sec: Any, where: str, source, allow_axis: bool) -> dict:
    if sec is None:
        return {}
    if not isinstance(sec, Mapping):
        raise ConfigError(f"'{where}' must be a mapping of parameters", source)
    out = {}
    for k, v in sec.items():
        if k == "easy_axis" and allow_axis:
            try:
                a = np.asarray(v, dtype=float).reshape(3)
            except (TypeError, ValueError):
                raise ConfigError(f"'{where}.easy_axis' must be 3 numbers", source) from None
            if not np.all(np.isfinite(a)) or np.linalg.norm(a) == 0:
                raise ConfigError(f"'{where}.easy_axis' must be a non-zero vector", source)
            out[k] = a / np.linalg.norm(a)
            continue
        if k not in PARAMS:
            raise ConfigError(f"unknown key '{where}.{k}' (expected {', '.join(PARAMS)})", source)
        if isinstance(v, str):  # PyYAML reads 4.9e6 (no sign in the exponent) as a string
            try:
                v = float(v)
            except ValueError:
                pass
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"'{where}.{k}' must be a number, got {v!r}", source)
        if v < 0:
            raise ConfigError(f"'{where}.{k}' must not be negative, got {v}", source)
        out[k] = float(v)
    return out


def _gb_subkind(region: Mapping, axis: np.ndarray) -> str:
    n = region.get("normal")
    if n is not None:
        n = np.asarray(n, float)
        cosang = abs(float(n @ axis)) / max(np.linalg.norm(n), 1e-300)
    elif region.get("angle_to_axis_deg") is not None:
        cosang = abs(math.cos(math.radians(float(region["angle_to_axis_deg"]))))
    else:
        return ""
    return "gb_perpendicular" if cosang >= math.cos(math.radians(45.0)) else "gb_parallel"


def draw_axes(n: int, axis: np.ndarray, distribution: str, sigma_deg: float, seed: int) -> np.ndarray:
    """``n`` unit vectors tilted from ``axis`` by the misalignment distribution."""
    rng = np.random.default_rng(seed)
    sig = math.radians(sigma_deg)
    if distribution == "gaussian":
        theta = np.abs(rng.normal(0.0, sig, n)) if sig > 0 else np.zeros(n)
    else:  # uniform_cone
        cos_t = 1.0 - rng.random(n) * (1.0 - math.cos(sig))
        theta = np.arccos(cos_t)
    phi = rng.random(n) * 2 * math.pi
    e1 = np.cross(axis, [1.0, 0, 0] if abs(axis[0]) < 0.9 else [0, 1.0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    return (np.cos(theta)[:, None] * axis + np.sin(theta)[:, None]
            * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2))


def resolve_materials(materials: Mapping | None, regions: list[dict], region_ids_in_mesh,
                      alignment_axis, source=None) -> Materials:
    """Resolve the materials mapping for every region of the mesh (see module docstring).

    Raises :class:`ConfigError` naming ``source`` and the key for unknown keys, negative,
    non-numeric or missing parameters and regions without a material.
    """
    mat = dict(materials or {})
    unknown = sorted(set(map(str, mat)) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}' (expected {', '.join(sorted(TOP_KEYS))})", source)
    axis = np.asarray(alignment_axis, float)
    axis = axis / np.linalg.norm(axis)
    secs = {k: _check_section(mat.get(k), k, source, allow_axis=False) for k in KIND_SECTIONS}
    reg_over = mat.get("regions") or {}
    if not isinstance(reg_over, Mapping):
        raise ConfigError("'regions' must map region ids to parameters", source)
    try:
        reg_over = {int(k): _check_section(v, f"regions.{k}", source, allow_axis=True)
                    for k, v in reg_over.items()}
    except (TypeError, ValueError):
        raise ConfigError("'regions' keys must be integer region ids", source) from None
    mis = mat.get("misalignment") or {}
    if not isinstance(mis, Mapping) or set(mis) - MISALIGN_KEYS:
        raise ConfigError(f"'misalignment' takes only {', '.join(sorted(MISALIGN_KEYS))}", source)
    dist = mis.get("distribution", "gaussian")
    if dist not in ("gaussian", "uniform_cone"):
        raise ConfigError(f"'misalignment.distribution' must be gaussian or uniform_cone, got {dist!r}", source)
    sigma = mis.get("sigma_deg", 0.0)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 <= sigma <= 90:
        raise ConfigError(f"'misalignment.sigma_deg' must be a number in [0, 90], got {sigma!r}", source)
    seed = mis.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"'misalignment.seed' must be a non-negative integer, got {seed!r}", source)
    use_table = bool(mis.get("use_region_table", True))

    table = {int(r["id"]): r for r in regions}
    ids = np.unique(np.asarray(region_ids_in_mesh, dtype=np.int64))
    grain_mat = dict(GRAIN_DEFAULTS, **secs["grain"])
    drawn = draw_axes(len(ids), axis, dist, float(sigma), seed)
    out = {k: np.zeros(len(ids)) for k in PARAMS}
    axes = np.zeros((len(ids), 3))
    resolved = []
    for i, rid in enumerate(ids.tolist()):
        reg = table.get(rid, {"id": rid, "kind": "grain"})
        kind = reg.get("kind", "grain")
        chain = [kind]
        if kind == "gb":
            chain.append(_gb_subkind(reg, axis))
        elif kind == "tj" and reg.get("tj_class") in ("thin", "thick"):
            chain.append(f"tj_{reg['tj_class']}")
        present = [c for c in chain if c and c in mat] + ([f"regions.{rid}"] if rid in reg_over else [])
        if not present:
            raise ConfigError(f"region {rid} (kind '{kind}') has no material: add a '{kind}' section "
                              f"or 'regions: {{{rid}: ...}}'", source)
        p: dict[str, Any] = dict(grain_mat) if kind == "grain" else {"K1_J_per_m3": 0.0, "K2_J_per_m3": 0.0}
        for c in chain:
            if c:
                p.update(secs[c])
        p.update(reg_over.get(rid, {}))
        if "Js_T" not in p:
            raise ConfigError(f"missing 'Js_T' for region {rid} (kind '{kind}', sections "
                              f"{', '.join(present)})", source)
        if "A_J_per_m" not in p:
            p["A_J_per_m"] = grain_mat["A_J_per_m"] * (p["Js_T"] / grain_mat["Js_T"]) ** 2
        if "easy_axis" in p:
            ax = p.pop("easy_axis")
        elif use_table and kind == "grain" and reg.get("easy_axis") is not None:
            ax = np.asarray(reg["easy_axis"], float)
            ax = ax / np.linalg.norm(ax)
        else:
            ax = drawn[i]
        for k in PARAMS:
            out[k][i] = p[k]
        axes[i] = ax
        resolved.append({"id": rid, "kind": kind, **{k: p[k] for k in PARAMS}, "easy_axis": ax.tolist()})
    return Materials(region_ids=ids, easy_axis=axes, table=resolved, **out)
