"""Curve metrics against analytic values (Stoner–Wohlfarth, ideal and linear-recoil loops,
prism demagnetising factors)."""

from __future__ import annotations

import numpy as np
import pytest

from magtwin.analysis.curve import BEYOND_RANGE, MU0, curve_metrics
from magtwin.analysis.demag import prism_demag_factor, prism_demag_tensor
from magtwin.analysis.reference import sw_coercive_field, sw_loop, sw_switching_field

JS, K1 = 1.61, 4.9e6
STEP = 0.01
FIELD = np.arange(9.0, -9.0 - STEP / 2, -STEP)


def test_sw_coercivity_at_zero_degrees_is_the_anisotropy_field():
    """Stoner & Wohlfarth, Phil. Trans. R. Soc. A 240, 599 (1948): at psi = 0 the particle
    switches at HA = 2K1/Js, so µ0Hc = 2 µ0 K1/Js; the loop is square (Hk = Hc, Jr = Js)."""
    J, h = sw_loop(FIELD, 0.0, K1, JS)
    m = curve_metrics(FIELD, J, h, JS)
    assert m.mu0Hc_T == pytest.approx(2 * MU0 * K1 / JS, abs=STEP)
    assert m.Jr_T == pytest.approx(JS) and m.Jr_over_Js == pytest.approx(1.0)
    assert m.squareness_Hk_over_Hc == pytest.approx(1.0, abs=2 * STEP / m.mu0Hc_T)


@pytest.mark.parametrize("psi", [10.0, 30.0, 60.0])
def test_sw_coercivity_versus_angle(psi):
    """h_c(psi) = astroid switching field for psi <= 45 deg, sin(2 psi)/2 above (Tannous &
    Gieraltowski, Eur. J. Phys. 29, 475 (2008)); Jr = Js cos(psi)."""
    J, h = sw_loop(FIELD, psi, K1, JS)
    m = curve_metrics(FIELD, J, h, JS)
    hA = 2 * MU0 * K1 / JS
    expect = hA * (0.5 * np.sin(np.radians(2 * psi)) if psi > 45 else sw_switching_field(psi))
    assert m.mu0Hc_T == pytest.approx(expect, abs=STEP)
    assert m.mu0Hc_T == pytest.approx(hA * sw_coercive_field(psi), abs=STEP)
    assert m.Jr_T == pytest.approx(JS * np.cos(np.radians(psi)), rel=1e-9)


def test_ideal_square_loop_bhmax():
    """(BH)max of an ideal square loop with µ0Hc > Jr/2 is Jr²/(4µ0), at µ0H = -Jr/2
    (J. M. D. Coey, Magnetism and Magnetic Materials, CUP 2010, on the energy product). The field steps
    (0.07 T) deliberately miss -Jr/2: the per-segment maximum must still be exact."""
    field = np.arange(3.0, -3.0, -0.07)
    J = np.where(field > -2.0, 1.4, -1.4)
    m = curve_metrics(field, J, Js_T=1.4)
    assert m.BHmax_kJ_per_m3 == pytest.approx(1.4 ** 2 / (4 * MU0) / 1e3, rel=1e-12)
    assert m.mu0H_at_BHmax_T == pytest.approx(-0.7)


def test_linear_recoil_curve_with_demagnetising_correction():
    """Intrinsic curve J = Jr + chi µ0H_int (chi = 0.1), HcJ = 1.5 T, simulated for a cube
    (N = 1/3 by symmetry; Aharoni, J. Appl. Phys. 83, 3432 (1998)). Apparent field
    µ0H_ext = µ0H_int + N J. After the correction: Jr, Hk (J = 0.9 Jr at
    µ0H_int = -0.1 Jr/chi) and (BH)max = Jr²/(4 µ0 (1 + chi)) of a linear B(H) with recoil
    permeability 1 + chi (maximise µ0H (µ0H (1 + chi) + Jr) over H < 0 by hand)."""
    Jr, chi, Hc = 1.3, 0.1, 1.5
    Hint = np.linspace(1.0, -2.0, 301)
    J = np.where(Hint > -Hc, Jr + chi * Hint, -Jr)
    N = prism_demag_factor(1, 1, 1)
    Hext = Hint + N * J
    Jvec = np.c_[np.zeros_like(J), np.zeros_like(J), J]
    m = curve_metrics(Hext, Jvec, (0, 0, 1), Jr, prism_demag_tensor([2.0, 2.0, 2.0]))
    assert m.demag_factor == pytest.approx(1 / 3)
    assert m.Jr_T == pytest.approx(Jr, rel=1e-9)
    assert m.mu0Hk_T == pytest.approx(0.1 * Jr / chi, rel=1e-9)
    assert m.BHmax_kJ_per_m3 == pytest.approx(Jr ** 2 / (4 * MU0 * (1 + chi)) / 1e3, rel=1e-9)
    # Without the correction the apparent curve gives a different, wrong (BH)max.
    raw = curve_metrics(Hext, J, Js_T=Jr, N=0.0)
    assert abs(raw.BHmax_kJ_per_m3 - m.BHmax_kJ_per_m3) > 10
    # HcJ is where J = 0, unaffected by the shear.
    assert m.mu0Hc_T == pytest.approx(raw.mu0Hc_T)


def test_curve_that_never_reverses_reports_beyond_the_field_range():
    J, h = sw_loop(FIELD[:1101], 0.0, K1, JS)  # down to -2 T only
    m = curve_metrics(FIELD[:1101], J, h, JS)
    assert np.isnan(m.mu0Hc_T) and np.isnan(m.squareness_Hk_over_Hc)
    assert any(BEYOND_RANGE in n for n in m.notes)
    assert m.Jr_T == pytest.approx(JS)  # what exists is still reported


def test_prism_demagnetising_factors():
    """Aharoni (1998): cube 1/3; N_x + N_y + N_z = 1; thin plate -> 1; long bar -> 0."""
    assert prism_demag_factor(1, 1, 1) == pytest.approx(1 / 3, rel=1e-12)
    assert np.trace(prism_demag_tensor([1.0, 2.0, 3.0])) == pytest.approx(1.0, rel=1e-12)
    assert prism_demag_factor(1000, 1000, 1) > 0.99
    assert prism_demag_factor(1, 1, 1000) < 0.001


def test_square_jump_sheared_by_demag_keeps_hk_at_most_hc():
    """A vertical jump of the apparent curve of a cube (N = 1/3) at µ0H_ext = -2 T is
    re-entrant after the shear; HcJ stays 2 T (J = 0 there, H_int = H_ext), the knee is
    inside the jump, so Hk = HcJ and the squareness is 1 (not above)."""
    field = np.linspace(3, -4, 701)
    J = np.where(field > -2.0 - 1e-9, 1.4, -1.4)
    m = curve_metrics(field, J, Js_T=1.4, N=1 / 3)
    assert m.mu0Hc_T == pytest.approx(2.005, abs=0.006)
    assert m.squareness_Hk_over_Hc == pytest.approx(1.0)
    assert any("knee inside the reversal jump" in n for n in m.notes)
