"""Parameters of the synthetic sample: JSON schema (with defaults), validation, derived sizes.

``SCHEMA`` is the single source of the ``synth`` section of
``workflow/schemas/config.schema.yaml`` (a test checks the two are identical), so the library
(:func:`resolve_params`) and the workflow validate the same keys, types, ranges and defaults.

Coordinate conventions used throughout :mod:`magtwin.synth`:

* image arrays are ``(z, y, x)`` = (slice, row, column); the voxel size is ``(z, y, x)`` nm;
* world (sample) coordinates are ``(x, y, z)`` in nm, the order of the mesh artefact:
  voxel ``(k, r, c)`` of the frame of slice 0 has its centre at ``(c*vx, r*vy, k*vz)``;
* vectors (``alignment_axis``, ``easy_axes``) are in ``(x, y, z)`` order.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from magtwin.errors import ConfigError

_NUM = {"type": "number"}


def _num(default, description, minimum=None, maximum=None, exclusive_min=None):
    s: dict[str, Any] = {"type": "number", "default": default, "description": description}
    if minimum is not None:
        s["minimum"] = minimum
    if exclusive_min is not None:
        s["exclusiveMinimum"] = exclusive_min
    if maximum is not None:
        s["maximum"] = maximum
    return s


def _vec(default, description, n=3, item=None, minimum=None):
    it = dict(item or _NUM)
    if minimum is not None:
        it["exclusiveMinimum"] = minimum
    return {"type": "array", "items": it, "minItems": n, "maxItems": n,
            "default": list(default), "description": description}


#: JSON schema of the ``synth`` config section (defaults = the bundled default sample).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "default": {},
    "additionalProperties": False,
    "description": "synthetic hot-deformed Nd-Fe-B FIB-SEM sample (default sample, test ground truth)",
    "properties": {
        "seed": {"type": "integer", "minimum": 0, "default": 0,
                 "description": "random seed; the same seed and parameters give the same sample bit for bit"},
        "shape_px": _vec([40, 200, 200], "image stack size (slices, rows, columns)",
                         item={"type": "integer", "minimum": 1}),
        "voxel_size_nm": _vec([10.0, 5.0, 5.0], "voxel size (z = slice thickness, y, x) in nm", minimum=0),
        "n_grains": {"type": ["integer", "null"], "minimum": 1, "default": None,
                     "description": "exact number of grains in the imaged volume; null derives it from "
                                    "grain_diameter_nm and grain_thickness_nm (when set, both are rescaled "
                                    "keeping their ratio)"},
        "grain_diameter_nm": _num(300.0, "mean platelet diameter (across the alignment axis) in nm",
                                  exclusive_min=0),
        "grain_thickness_nm": _num(80.0, "mean platelet thickness (along the alignment axis) in nm",
                                   exclusive_min=0),
        "grain_size_spread": _num(0.5, "spread of grain sizes as Laguerre weights w^2 = U(0, spread) * "
                                       "d_min^2 (0 = plain Voronoi; < 1 keeps every grain non-empty)",
                                  minimum=0, maximum=0.95),
        "alignment_axis": _vec([0.0, 1.0, 0.0], "press (alignment) direction in (x, y, z) world "
                                                 "order; y = image rows, z = slice direction"),
        "misalignment_sigma_deg": _num(15.0, "c-axis misalignment: the two tangential components of "
                                             "each easy axis are Gaussian with this std (deg)", minimum=0,
                                       maximum=90),
        "gb_thickness_nm": _num(3.0, "grain-boundary phase thickness in nm (0 = none)", minimum=0),
        "tj_size_nm": _num(15.0, "triple-junction pocket size in nm: a point is TJ when its distances to "
                                 "two faces of its cell are both below half of it (0 = none)", minimum=0),
        "grain_intensity": _num(0.45, "mean back-scatter brightness of Nd2Fe14B grains (1 = full scale)",
                                minimum=0, maximum=1),
        "grain_contrast": _num(0.12, "grain-to-grain brightness spread (peak to peak, full-scale units; "
                                     "orientation contrast)", minimum=0, maximum=1),
        "gb_intensity": _num(0.8, "brightness of the Nd-rich grain-boundary phase", minimum=0, maximum=1),
        "tj_intensity": _num(0.95, "brightness of the Nd-rich triple-junction pockets", minimum=0, maximum=1),
        "cap": {"type": "boolean", "default": True,
                "description": "protective (Pt) cap across the top rows with milled fiducial marks"},
        "cap_thickness_nm": _num(150.0, "cap thickness in nm (rows 0 .. round(t/vy)-1 of slice 0)",
                                 exclusive_min=0),
        "cap_intensity": _num(0.7, "cap brightness", minimum=0, maximum=1),
        "fiducial_count": {"type": "integer", "minimum": 0, "default": 3,
                           "description": "number of X-shaped fiducial marks milled into the cap"},
        "fiducial_intensity": _num(0.12, "brightness of the milled fiducial trenches", minimum=0, maximum=1),
        "supersample": {"type": "integer", "minimum": 1, "maximum": 16, "default": 4,
                        "description": "sub-samples per pixel side for partial-volume rendering of thin "
                                       "phases (only pixels near an interface are sub-sampled)"},
        "psf_sigma_px": _num(0.7, "Gaussian point-spread function std in px", minimum=0),
        "shading": _num(0.1, "relative amplitude of the smooth illumination shading (detector frame)",
                        minimum=0, maximum=0.9),
        "brightness_jitter": _num(0.01, "relative std of the slice-to-slice brightness change",
                                  minimum=0, maximum=0.5),
        "curtaining": _num(0.08, "relative amplitude of FIB curtaining stripes (vertical, fixed to the "
                                 "sample, varying slowly between slices)", minimum=0, maximum=0.9),
        "curtain_period_slices": _num(15.0, "slices over which the curtain pattern changes markedly",
                                      exclusive_min=0),
        "noise_level": _num(0.04, "Poisson-Gaussian noise std at grain_intensity, full-scale units "
                                  "(0 = noise free)", minimum=0),
        "noise_poisson_fraction": _num(0.7, "fraction of the noise variance at grain_intensity that is "
                                            "shot (Poisson) noise; the rest is Gaussian read noise",
                                       minimum=0, maximum=1),
        "drift_step_px": _num(0.3, "std of the per-slice random-walk drift step, per axis, in px",
                              minimum=0),
        "drift_mean_px": _vec([0.0, 0.0], "mean drift per slice (dy, dx) in px", n=2),
    },
}


def defaults() -> dict[str, Any]:
    """A fresh copy of the default parameters."""
    return {k: copy.deepcopy(v["default"]) for k, v in SCHEMA["properties"].items()}


def resolve_params(params: Mapping[str, Any] | None = None, source: str | None = None,
                   **overrides) -> dict[str, Any]:
    """Validate ``params`` (+ ``overrides``) against :data:`SCHEMA`, fill defaults, check ranges.

    Returns a new dict of plain Python values. Raises :class:`ConfigError` naming the key.
    """
    from magtwin.config import validate_config

    if params is not None and not isinstance(params, Mapping):
        raise ConfigError(f"synth: must be a mapping of parameters, got {type(params).__name__}", source)
    merged = dict(params or {})
    merged.update(overrides)
    try:
        out = validate_config(_plain(merged), SCHEMA, source=source)
    except ConfigError as exc:
        # name keys as they appear in the config file (``synth.<key>``)
        raise ConfigError(f"synth.{exc.problem}" if not exc.problem.startswith("(") else exc.problem,
                          source) from None
    _check_consistency(out, source)
    return out


def _plain(value):
    """Plain Python values (numpy scalars/arrays and tuples from API callers -> int/float/list)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _plain(value.tolist())
    return copy.deepcopy(value)


def _check_consistency(p: dict, source: str) -> None:
    def bad(key, msg):
        raise ConfigError(f"synth.{key}: {msg}", source)

    nz, ny, nx = p["shape_px"]
    vz, vy, vx = p["voxel_size_nm"]
    if sum(a * a for a in p["alignment_axis"]) < 1e-12:
        bad("alignment_axis", "must not be the zero vector")
    if p["grain_thickness_nm"] > p["grain_diameter_nm"]:
        bad("grain_thickness_nm", "platelets must be thinner than their diameter")
    if p["gb_thickness_nm"] >= 0.5 * p["grain_thickness_nm"]:
        bad("gb_thickness_nm", f"{p['gb_thickness_nm']} nm is not thin compared with the grains")
    if p["tj_size_nm"] >= 0.5 * p["grain_thickness_nm"]:
        bad("tj_size_nm", f"{p['tj_size_nm']} nm is not small compared with the grains")
    if ny < 8 or nx < 8:
        bad("shape_px", f"images of {ny}x{nx} px are too small (at least 8x8)")
    if p["cap"]:
        cap_px = cap_rows_px(p)
        if cap_px < 3:
            bad("cap_thickness_nm", f"the cap must cover at least 3 rows (is {p['cap_thickness_nm']} nm "
                                    f"at {vy} nm/px)")
        if cap_px > ny - 4:
            bad("cap_thickness_nm", f"the cap ({cap_px} rows) leaves no room for the sample in {ny} rows")


def cap_rows_px(p: Mapping[str, Any]) -> int:
    """Number of cap rows at the top of slice 0 (0 when the cap is off)."""
    if not p["cap"]:
        return 0
    return max(1, int(round(p["cap_thickness_nm"] / p["voxel_size_nm"][1])))
