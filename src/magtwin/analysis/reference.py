"""Reference models for the angular dependence of coercivity and for checking the analysis.

Stoner–Wohlfarth (SW) particle, uniaxial anisotropy K1, polarisation Js, field at angle ψ to
the easy axis; reduced energy density with h = H / HA, HA = 2K1/Js (A/m):

    e(θ) = ½ sin²θ − h cos(θ − ψ)

(Stoner & Wohlfarth, Phil. Trans. R. Soc. A 240, 599 (1948)). Switching field (astroid)
h_sw = (cos^⅔ψ + sin^⅔ψ)^(−3/2); the coercive field (m·h = 0) is h_c = h_sw for ψ ≤ 45° and
h_c = ½ sin 2ψ for 45° < ψ < 90° (e.g. Tannous & Gieraltowski, Eur. J. Phys. 29, 475 (2008)).

Kondorsky (domain-wall depinning, J. Phys. USSR 2, 161 (1940)): Hc(ψ) = Hc(0) / cos ψ.
"""

from __future__ import annotations

import numpy as np


def sw_switching_field(psi_deg) -> np.ndarray:
    """Reduced SW switching field h_sw(ψ) = H_sw / H_A (astroid)."""
    psi = np.radians(np.abs(np.asarray(psi_deg, float)))
    return (np.abs(np.cos(psi)) ** (2 / 3) + np.abs(np.sin(psi)) ** (2 / 3)) ** (-1.5)


def sw_coercive_field(psi_deg) -> np.ndarray:
    """Reduced SW coercive field h_c(ψ) = H_c / H_A, where m·h = 0 on the descending branch."""
    psi_deg = np.abs(np.asarray(psi_deg, float))
    psi = np.radians(psi_deg)
    return np.where(psi_deg <= 45.0, sw_switching_field(psi_deg), 0.5 * np.abs(np.sin(2 * psi)))


def kondorsky_coercive_field(psi_deg) -> np.ndarray:
    """Reduced Kondorsky coercive field Hc(ψ)/Hc(0) = 1/cos ψ."""
    return 1.0 / np.cos(np.radians(np.asarray(psi_deg, float)))


def sw_loop(field_T, psi_deg: float, K1_J_per_m3: float, Js_T: float, n_theta: int = 3600):
    """Descending SW branch: the local energy minimum followed from saturation along +h.

    Parameters
    ----------
    field_T : (K,) applied µ0H along h, T, in sweep order (from positive to negative)
    psi_deg : angle between field and easy axis (easy axis z, field in the x-z plane)
    K1_J_per_m3, Js_T : anisotropy constant and polarisation

    Returns
    -------
    J_T : (K, 3) polarisation vector, T
    direction : (3,) unit field direction h
    """
    field_T = np.asarray(field_T, float)
    psi = np.radians(psi_deg)
    hA = 2.0 * 4e-7 * np.pi * K1_J_per_m3 / Js_T  # µ0HA = 2 µ0 K1 / Js, T
    d = 2 * np.pi / n_theta
    steps = np.arange(n_theta + 1) * d
    theta = psi  # saturated along +h
    out = np.empty((len(field_T), 3))
    for k, b in enumerate(field_T):
        h = b / hA

        def de(t):
            return 0.5 * np.sin(2 * t) + h * np.sin(t - psi)

        # Walk downhill from the previous state to the first minimum (sign change of e').
        g0 = de(theta)
        if abs(g0) < 1e-12 and np.cos(2 * theta) + h * np.cos(theta - psi) < 0:
            theta += 1e-6  # unstable equilibrium (e.g. psi = 0 past h = -1): any noise tips it
            g0 = de(theta)
        if g0 != 0.0:
            sgn = -np.sign(g0)
            g = de(theta + sgn * steps)
            idx = np.flatnonzero(np.sign(g) != np.sign(g0))
            if len(idx):
                i = idx[0]
                t0, t1 = theta + sgn * steps[i - 1], theta + sgn * steps[i]
                for _ in range(60):  # bisection to machine precision
                    tm = 0.5 * (t0 + t1)
                    if np.sign(de(tm)) == np.sign(g0):
                        t0 = tm
                    else:
                        t1 = tm
                theta = 0.5 * (t0 + t1)
        out[k] = Js_T * np.array([np.sin(theta), 0.0, np.cos(theta)])
    return out, np.array([np.sin(psi), 0.0, np.cos(psi)])
