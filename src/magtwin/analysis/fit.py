"""Fit simulated demagnetisation curves to a measured one.

Residual of one simulated curve: the RMS difference of the second-quadrant polarisation
J₊ = max(J, 0) on a grid of internal field µ0H_int common to all curves of the sweep,

    r = sqrt( mean_i (J₊,sim(H_i) − J₊,meas(H_i))² ),   H_i = linspace(0, −H_end, n)

where H_end is the largest coercive field among the measured and the simulated curves
(capped at the measured field range if the measured curve does not reach J = 0), so that a simulated curve is penalised both for
reversing too early and for staying magnetised where the measured one has reversed.
J is in T (or in units of Js when the measured curve is normalised: then J_sim/Js_mean).
Both curves are sampled following the sweep (:func:`.curve.sample_descending`), each after
its own demagnetising correction; past its last field a curve that has reversed counts as
J₊ = 0. A simulated curve that covers less than ``min_coverage`` of the grid gets no
residual (NaN, with the reason).

Interpolated optimum along a swept parameter p: among the points that differ from the best
point only in p, a parabola through the best point and its two neighbours in p; its vertex
(when the parabola opens upwards and the best point is not at the end of the sweep) is the
interpolated optimum p* with residual r(p*).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from magtwin.analysis.curve import first_crossing, interp_at, sample_descending


@dataclass
class FitResult:
    """Residuals and optimum; ``units`` is "T" or "1" (normalised)."""

    grid_T: np.ndarray
    J_measured: np.ndarray
    residuals: dict[str, float]
    notes: dict[str, str]
    best_point: str | None
    best_residual: float
    optimum: dict[str, dict] = field(default_factory=dict)
    units: str = "T"


def coercive_end(Hint_T: np.ndarray, J: np.ndarray) -> float | None:
    """µ0H_int (T, negative) where J first reaches 0 after H_int = 0, or None."""
    h, j = np.asarray(Hint_T, float), np.asarray(J, float)
    pos0 = first_crossing(h, 0.0)
    posJ = first_crossing(j, 0.0, pos0 if pos0 is not None else 0.0)
    return None if posJ is None else interp_at(h, posJ)


def sample_second_quadrant(Hint_T: np.ndarray, J: np.ndarray, grid_T: np.ndarray) -> np.ndarray:
    """J₊ = max(J, 0) on ``grid_T`` following the sweep; 0 beyond the end of a reversed
    curve, NaN beyond the end of one still positive."""
    out = sample_descending(Hint_T, J, grid_T)
    if coercive_end(Hint_T, J) is not None:
        out[np.isnan(out) & (np.asarray(grid_T) < np.min(Hint_T))] = 0.0
    return np.clip(out, 0.0, None)


def residual(grid_T: np.ndarray, J_ref: np.ndarray, Hint_T: np.ndarray, J: np.ndarray,
             min_coverage: float = 0.9) -> tuple[float, str]:
    """RMS of J₊(grid) − J_ref over the grid points the curve reaches, or (nan, reason)."""
    J_sim = sample_second_quadrant(Hint_T, J, grid_T)
    ok = np.isfinite(J_sim) & np.isfinite(J_ref)
    cover = ok.mean() if len(ok) else 0.0
    if cover < min_coverage:
        return np.nan, (f"no residual: the simulated field range covers {100 * cover:.0f}% of the "
                        "second-quadrant fit range")
    return float(np.sqrt(np.mean((J_sim[ok] - J_ref[ok]) ** 2))), ""


def interpolated_optimum(values: np.ndarray, residuals: np.ndarray, best_value: float) -> dict:
    """Vertex of the parabola through the best value and its neighbours (see module doc)."""
    order = np.argsort(values)
    x, r = np.asarray(values, float)[order], np.asarray(residuals, float)[order]
    i = int(np.flatnonzero(x == best_value)[0])
    if len(x) < 3:
        return {"value": float(best_value), "residual": float(r[i]),
                "note": "fewer than 3 values: no interpolation"}
    if i == 0 or i == len(x) - 1:
        return {"value": float(best_value), "residual": float(r[i]),
                "note": "best value at the end of the sweep: extend the range"}
    a, b, c = np.polyfit(x[i - 1:i + 2], r[i - 1:i + 2], 2)
    if a <= 0:
        return {"value": float(best_value), "residual": float(r[i]), "note": "no interior minimum"}
    xv = -b / (2 * a)
    return {"value": float(xv), "residual": float(max(np.polyval([a, b, c], xv), 0.0)),
            "note": "quadratic through the best point and its neighbours"}


def fit_to_measured(measured_Hint_T: np.ndarray, measured_J: np.ndarray,
                    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    point_params: Mapping[str, Mapping[str, float]] | None = None,
                    n_grid: int = 200, min_coverage: float = 0.9, units: str = "T") -> FitResult:
    """Residual of every simulated curve against the measured one, best point, optimum.

    Parameters
    ----------
    measured_Hint_T, measured_J : (K,) the measured intrinsic curve in sweep order
    curves : ``{point: (µ0H_int (K,), J (K,))}`` simulated intrinsic curves, J in the same
        units as ``measured_J``
    point_params : ``{point: {parameter: value}}`` for the interpolated optimum
    """
    ends = [coercive_end(h, j) for h, j in curves.values()]
    meas_end = coercive_end(measured_Hint_T, measured_J)
    h_end = min([e for e in ends + [meas_end] if e is not None] or [float(np.min(measured_Hint_T))])
    if meas_end is None:  # beyond its last field the measured J is unknown
        h_end = max(h_end, float(np.min(measured_Hint_T)))
    grid = np.linspace(0.0, h_end, n_grid)
    J_ref = sample_second_quadrant(measured_Hint_T, measured_J, grid)
    res, notes = {}, {}
    for name, (h, j) in curves.items():
        res[name], note = residual(grid, J_ref, h, j, min_coverage)
        if note:
            notes[name] = note
    finite = {k: v for k, v in res.items() if np.isfinite(v)}
    best = min(finite, key=finite.get) if finite else None
    out = FitResult(grid, J_ref, res, notes, best, finite.get(best, np.nan), units=units)
    if best is None or not point_params:
        return out
    bp = point_params.get(best, {})
    for key in bp:
        line = {n: p[key] for n, p in point_params.items() if n in finite and key in p
                and all(p.get(k) == v for k, v in bp.items() if k != key)}
        if len(set(line.values())) < 2:
            continue
        names = list(line)
        out.optimum[key] = interpolated_optimum(np.array([line[n] for n in names]),
                                                np.array([finite[n] for n in names]), bp[key])
    return out
