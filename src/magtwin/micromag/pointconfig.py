"""Per-sweep-point solver inputs from the workflow config.

``point_inputs(materials_cfg, simulate_cfg, point)`` returns the materials mapping and the
``{field, solver}`` settings of one sweep point: the config's ``materials`` and ``simulate``
sections with the point's swept values applied (see :data:`magtwin.sweep.PARAMETERS`):

========================  ==========================================
``gb_Js_T``               ``materials.gb.Js_T``
``gb_parallel_Js_T``      ``materials.gb_parallel.Js_T``
``gb_perpendicular_Js_T`` ``materials.gb_perpendicular.Js_T``
``tj_thin_Js_T``          ``materials.tj_thin.Js_T``
``tj_thick_Js_T``         ``materials.tj_thick.Js_T``
``gb_A_J_per_m``          ``materials.gb.A_J_per_m``
``misalignment_sigma_deg`` ``materials.misalignment.sigma_deg``
``field_angle_deg``       ``field.angle_deg``
========================  ==========================================

``gb_thickness_nm`` changes the geometry (model stage), not the solver inputs.
"""

from __future__ import annotations

import copy
from typing import Mapping

_MATERIAL_KEYS = {
    "gb_Js_T": ("gb", "Js_T"), "gb_parallel_Js_T": ("gb_parallel", "Js_T"),
    "gb_perpendicular_Js_T": ("gb_perpendicular", "Js_T"), "tj_thin_Js_T": ("tj_thin", "Js_T"),
    "tj_thick_Js_T": ("tj_thick", "Js_T"), "gb_A_J_per_m": ("gb", "A_J_per_m"),
    "misalignment_sigma_deg": ("misalignment", "sigma_deg"),
}

#: workflow config key (section ``simulate``) -> (settings section, solver/field key)
SIMULATE_KEYS = {
    "field_start_T": ("field", "start_T"), "field_stop_T": ("field", "stop_T"),
    "field_step_T": ("field", "step_T"), "field_angle_deg": ("field", "angle_deg"),
    "demag": ("solver", "demag"), "torque_tol_T": ("solver", "torque_tol_T"),
    "max_iterations": ("solver", "max_iterations"), "refine_tol_T": ("solver", "refine_tol_T"),
    "jump_threshold": ("solver", "jump_threshold"), "snapshot_every": ("solver", "snapshot_every"),
    "demag_pc": ("solver", "demag_pc"), "checkpoint_interval_s": ("solver", "checkpoint_interval_s"),
    "demag_method": ("solver", "demag_method"),
    "preconditioner": ("solver", "preconditioner"), "demag_rtol_loose": ("solver", "demag_rtol_loose"),
    "extrapolate": ("solver", "extrapolate"), "stop_when_reversed": ("solver", "stop_when_reversed"),
}


def point_inputs(materials_cfg: Mapping | None, simulate_cfg: Mapping | None,
                 point: Mapping[str, float]) -> tuple[dict, dict]:
    """(materials, settings) of one sweep point; plain Python types (YAML-ready)."""
    mat = copy.deepcopy(dict(materials_cfg or {}))
    settings: dict = {"field": {}, "solver": {}}
    for k, v in (simulate_cfg or {}).items():
        if k in SIMULATE_KEYS and v is not None:
            sec, key = SIMULATE_KEYS[k]
            settings[sec][key] = v
    for k, v in point.items():
        if k in _MATERIAL_KEYS:
            sec, key = _MATERIAL_KEYS[k]
            mat.setdefault(sec, {})[key] = float(v)
        elif k == "field_angle_deg":
            settings["field"]["angle_deg"] = float(v)
    return mat, settings


def write_point_inputs(materials_cfg, simulate_cfg, point, materials_out, settings_out) -> None:
    """Write the two YAML files of :func:`point_inputs`."""
    import yaml

    mat, settings = point_inputs(materials_cfg, simulate_cfg, point)
    for obj, path in ((mat, materials_out), (settings, settings_out)):
        with open(path, "w") as fh:
            yaml.safe_dump(obj, fh, sort_keys=True)
