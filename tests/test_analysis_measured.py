"""Measured-curve CSV: units from the header or config, bad input; fit residual and optimum."""

from __future__ import annotations

import numpy as np
import pytest

from magtwin.analysis.fit import fit_to_measured, interpolated_optimum
from magtwin.analysis.measured import read_measured_curve
from magtwin.errors import InputError

MU0 = 4e-7 * np.pi


def _write(tmp_path, text, name="m.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("header, rows, field0, J0", [
    # 1 Oe <-> µ0H = 1e-4 T; 1 emu/cm³ = 1e3 A/m, J = µ0 M (CGS-SI: Coey 2010, Appendix).
    ("H (Oe),M (emu/cm3)", "5000,1000\n0,1000\n-10000,900", 0.5, MU0 * 1e6),
    ("H_kA_per_m,M_kA_per_m", "800,1000\n0,1000\n-800,900", MU0 * 8e5, MU0 * 1e6),
    ("mu0H_mT,J_T", "500,1.4\n0,1.4\n-1000,1.3", 0.5, 1.4),
    ("H_kOe,J_kG", "5,14\n0,14\n-10,13", 0.5, 1.4),
    ("mu0H_T,J_over_Js", "0.5,1\n0,1\n-1,0.9", 0.5, 1.0),
    ("Applied Field (Oe),Magnetization (emu/cc)", "5000,1000\n0,1000\n-10000,900", 0.5, MU0 * 1e6),
])
def test_units_from_header(tmp_path, header, rows, field0, J0):
    c = read_measured_curve(_write(tmp_path, f"{header}\n{rows}\n"))
    assert c.field_T[0] == pytest.approx(field0, rel=1e-12)
    assert c.J[0] == pytest.approx(J0, rel=1e-12)
    assert c.normalised == header.endswith("J_over_Js")
    assert c.field_T[-1] < 0


def test_units_from_config_and_ascending_order(tmp_path):
    c = read_measured_curve(_write(tmp_path, "H,M\n-800,900\n0,1000\n800,1000\n"),
                            {"field": "kA/m", "magnetisation": "kA/m"})
    assert c.field_T[0] == pytest.approx(MU0 * 8e5) and c.J[-1] == pytest.approx(MU0 * 9e5)


@pytest.mark.parametrize("text, fragment", [
    ("H_furlong,J_T\n1,1\n0,1\n-1,1\n", "unknown field unit"),
    ("H,J\n1,1\n0,1\n-1,1\n", "no unit for field column"),
    ("mu0H_T,J_T\n1,1\n0,nan\n-1,1\n", "line 3: NaN"),
    ("mu0H_T,J_T\n1,1\n-1,1\n0,1\n-2,1\n", "not monotonic"),
    ("mu0H_T,J_T\n1,1\n0.5,1\n0.1,1\n", "second quadrant"),
    ("mu0H_T,J_T\n1,1\n0,abc\n", "line 3: expected two numbers"),
    ("H (Oe),Moment (emu)\n1,1\n0,1\n-1,1\n", "magnetic moment"),
])
def test_bad_measured_curves(tmp_path, text, fragment):
    p = _write(tmp_path, text)
    with pytest.raises(InputError, match=fragment) as exc:
        read_measured_curve(p)
    assert str(p) in str(exc.value)


def _square(Hc, field):
    return np.where(field > -Hc, 1.5, -1.5)


def test_fit_picks_the_matching_curve_and_interpolates_the_optimum():
    """Curves with Hc(x) = 3 - 2x (linear in a swept parameter x) against a measured square
    loop of Hc = 2 (x = 0.5). The residual of a square loop against another is
    1.5 sqrt(|ΔHc| / H_end) (analytic for J₊ on a uniform grid), so the parabola vertex lies
    near x = 0.5 and the exact point wins."""
    field = np.linspace(1, -4, 2001)
    xs = [0.0, 0.25, 0.5, 0.75, 1.0]
    curves = {f"x{x}": (field, _square(3 - 2 * x, field)) for x in xs}
    params = {f"x{x}": {"gb_Js_T": x} for x in xs}
    fit = fit_to_measured(field, _square(2.0, field), curves, params, n_grid=4001)
    assert fit.best_point == "x0.5" and fit.best_residual < 0.02
    # grid down to the largest Hc (3 T): r(x = 0.25) = 1.5 sqrt(0.5/3)
    assert fit.residuals["x0.25"] == pytest.approx(1.5 * np.sqrt(0.5 / 3), rel=0.01)
    assert fit.optimum["gb_Js_T"]["value"] == pytest.approx(0.5, abs=0.02)


def test_interpolated_optimum_of_a_parabola():
    x = np.array([0.0, 0.4, 0.8, 1.2])
    r = (x - 0.55) ** 2 + 0.1
    opt = interpolated_optimum(x, r, 0.4)
    assert opt["value"] == pytest.approx(0.55) and opt["residual"] == pytest.approx(0.1)
    assert "end of the sweep" in interpolated_optimum(x, (x - 2) ** 2, 1.2)["note"]


def test_curve_not_covering_the_fit_range_gets_no_residual():
    field = np.linspace(1, -4, 501)
    short = np.linspace(1, -1, 201)
    fit = fit_to_measured(field, _square(2.0, field),
                          {"ok": (field, _square(2.2, field)), "short": (short, np.full_like(short, 1.5))})
    assert fit.best_point == "ok" and np.isnan(fit.residuals["short"])
    assert "covers" in fit.notes["short"]
