"""Sweep expansion: stable point names, grids, ranges, scenarios, bad configs."""

from __future__ import annotations

import pytest

from magtwin.config import load_yaml, validate_config
from magtwin.errors import ConfigError
from magtwin.sweep import expand_sweep, swept_parameters
from tests.util import ROOT


def test_default_config_sweep():
    cfg = validate_config(load_yaml(ROOT / "config/config.yaml"), ROOT / "workflow/schemas/config.schema.yaml")
    pts = expand_sweep(cfg["sweep"])
    gb = sorted(p["gb_Js_T"] for p in pts.values() if p["field_angle_deg"] == 0.0)
    angles = sorted(p["field_angle_deg"] for p in pts.values() if p["gb_Js_T"] == 0.8)
    assert gb[0] == 0.0 and gb[-1] >= 1.0 and len(gb) >= 3
    assert len(angles) >= 4
    assert "gbJs0.8_angle0" in pts and len(pts) <= 10


def test_adding_a_value_renames_nothing():
    a = expand_sweep({"gb_Js_T": [0.0, 0.8], "field_angle_deg": [0.0]})
    b = expand_sweep({"gb_Js_T": [0.0, 0.8, 1.0], "field_angle_deg": [0.0, 30.0]})
    assert set(a) == {"gbJs0_angle0", "gbJs0.8_angle0"}
    assert set(a) < set(b) and all(a[k] == b[k] for k in a)
    assert len(b) == 6


def test_ranges_extra_grids_and_separate_gb_faces():
    pts = expand_sweep({"gb_parallel_Js_T": [0.4], "gb_perpendicular_Js_T": [{"start": 0.0, "stop": 0.9, "step": 0.3}],
                        "extra_grids": [{"gb_parallel_Js_T": [0.4], "gb_perpendicular_Js_T": [1.2]}]})
    assert list(pts) == [f"gbparJs0.4_gbperpJs{v}" for v in ("0", "0.3", "0.6", "0.9", "1.2")]
    assert swept_parameters(pts) == ["gb_perpendicular_Js_T"]
    pts = expand_sweep({"tj_thin_Js_T": [{"start": 0.0, "stop": 1.0, "num": 3}]})
    assert [p["tj_thin_Js_T"] for p in pts.values()] == [0.0, 0.5, 1.0]


def test_scenarios():
    pts = expand_sweep({"mode": "scenarios", "scenarios": {
        "soft_gb": {"gb_Js_T": 1.0, "tj_thin_Js_T": 0.2}, "weak_tj": {"tj_thin_Js_T": 0.0}}})
    assert pts == {"soft_gb": {"gb_Js_T": 1.0, "tj_thin_Js_T": 0.2}, "weak_tj": {"tj_thin_Js_T": 0.0}}


def test_empty_sweep_is_one_base_point():
    assert expand_sweep({}) == {"base": {}}


@pytest.mark.parametrize("cfg, fragment", [
    ({"gb_Js_T": []}, "sweep.gb_Js_T: empty list"),
    ({"gb_Js": [0.8]}, "not a sweep parameter"),
    ({"gb_Js_T": ["high"]}, "expected a number"),
    ({"gb_Js_T": [-0.1]}, "outside"),
    ({"gb_Js_T": [{"start": 0, "stop": 1}]}, "exactly one of step or num"),
    ({"mode": "scenarios"}, "no scenario"),
    ({"mode": "scenarios", "scenarios": {"a b": {"gb_Js_T": 1.0}}}, "name may contain only"),
    ({"mode": "random"}, "sweep.mode"),
    ({"mode": "scenarios", "gb_Js_T": [0.8], "scenarios": {"a": {"gb_Js_T": 1.0}}}, "not used with mode"),
])
def test_bad_sweeps_raise_config_error(cfg, fragment):
    with pytest.raises(ConfigError, match=fragment):
        expand_sweep(cfg)
