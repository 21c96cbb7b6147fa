"""Metrics of one demagnetisation curve (pure functions on arrays; fields as µ0H in tesla).

The curve is the descending branch J(H) of a sweep that starts saturated along the field
direction h and goes to negative field; J is the polarisation component along h (J·h, T).
All metrics follow the sweep *in order* (first crossing), so a curve with Barkhausen jumps or
a re-entrant intrinsic curve is handled without sorting.

Definitions (``curve_metrics``):

* **µ0HcJ** — coercive field: −µ0H at the first crossing of J = 0, linearly interpolated
  between the two bracketing steps. Independent of the demagnetising correction (J = 0
  there). A curve that never reaches J = 0 has ``mu0Hc_T = nan`` and the note
  "beyond the field range".
* **Jr** — remanence: J where the *internal* field first reaches 0.
* **µ0Hk** — knee field: −µ0H_int where J first falls to 0.9 Jr after remanence; when that
  happens inside an irreversible jump that the shear makes re-entrant (Hk > HcJ), Hk = HcJ.
* **squareness** — Hk/HcJ, the squareness ratio quoted on sintered Nd-Fe-B data sheets
  (1 for an ideal square loop; the knee field Hk at J = 0.9 Jr is the industrial convention).
  ``Jr_over_Js`` (remanence ratio) is reported beside it.
* **(BH)max** — max of −B·H over the second quadrant of the intrinsic curve, with
  B = µ0H_int + J; on each linear segment the quadratic −B·H is maximised exactly, so the
  result does not depend on where the field steps fall. For an ideal square loop with
  µ0HcJ > Jr/2 this gives Jr²/(4µ0) (the upper bound of the energy product, e.g.
  J. M. D. Coey, *Magnetism and Magnetic Materials*, CUP 2010, on permanent magnets).

Demagnetising treatment: the simulated curve is the apparent curve of the modelled body;
every metric except HcJ uses µ0H_int = µ0H_ext − h·(N J) (see :mod:`.demag`), with the N
passed in (``summary`` uses the demagnetising tensor of the mesh's bounding box, Aharoni
1998, unless configured otherwise). N = 0 analyses the curve as given (closed circuit).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from magtwin.analysis.demag import factor_along, internal_field

MU0 = 4e-7 * np.pi  # vacuum permeability, T·m/A (the pre-2019 exact value; 1e-10 rel. diff.)

BEYOND_RANGE = "beyond the field range"


@dataclass
class CurveMetrics:
    """Metrics of one curve; NaN with a note in ``notes`` where a metric does not exist."""

    mu0Hc_T: float = np.nan
    Jr_T: float = np.nan
    Js_T: float = np.nan
    Jr_over_Js: float = np.nan
    mu0Hk_T: float = np.nan
    squareness_Hk_over_Hc: float = np.nan
    BHmax_kJ_per_m3: float = np.nan
    mu0H_at_BHmax_T: float = np.nan
    demag_factor: float = 0.0
    field_min_T: float = np.nan
    notes: list[str] = field(default_factory=list)

    def as_row(self) -> dict:
        row = asdict(self)
        row["notes"] = "; ".join(self.notes)
        return row


def first_crossing(values: np.ndarray, level: float, start: float = 0.0) -> float | None:
    """Fractional index of the first downward crossing of ``level`` by ``values``.

    Searches from fractional index ``start`` onwards for the first step i with
    values[i-1] > level >= values[i]; returns i-1 + t with linear interpolation
    (``values[0] <= level`` at the start counts as crossing at ``start``). None if never.
    """
    v = np.asarray(values, float)
    i0 = int(np.floor(start))
    if i0 >= len(v):
        return None
    v0 = interp_at(v, start)
    if v0 <= level:
        return float(start)
    after = np.flatnonzero(v[i0 + 1:] <= level)
    if len(after) == 0:
        return None
    i = i0 + 1 + int(after[0])
    prev_pos, prev_val = (start, v0) if i - 1 <= start else (float(i - 1), v[i - 1])
    t = (prev_val - level) / (prev_val - v[i])
    return float(prev_pos + t * (i - prev_pos))


def interp_at(values: np.ndarray, pos: float) -> float:
    """Value of ``values`` at fractional index ``pos`` (linear between samples)."""
    v = np.asarray(values, float)
    i = int(np.floor(pos))
    if i >= len(v) - 1:
        return float(v[-1])
    t = pos - i
    return float((1 - t) * v[i] + t * v[i + 1])


def coercive_field(field_T: np.ndarray, J_T: np.ndarray) -> tuple[float, str]:
    """µ0HcJ (T, positive) at the first J = 0 crossing, or (nan, reason)."""
    field_T, J_T = np.asarray(field_T, float), np.asarray(J_T, float)
    if J_T[0] <= 0:
        return np.nan, "Hc undefined: the curve does not start magnetised along the field"
    pos = first_crossing(J_T, 0.0)
    if pos is None:
        return np.nan, f"Hc {BEYOND_RANGE} (J > 0 down to µ0H = {field_T.min():.4g} T)"
    return -interp_at(field_T, pos), ""


def bh_max(Hint_T: np.ndarray, J_T: np.ndarray, start: float = 0.0) -> tuple[float, float, str]:
    """(BH)max in J/m³ of the second quadrant of an intrinsic curve, and µ0H_int there.

    Follows the curve from fractional index ``start`` (remanence) to where B = µ0H_int + J
    first reaches 0; on each linear segment -B·H/µ0 is a quadratic maximised exactly.
    Returns (nan, nan, reason) when the maximum lies at the end of a curve whose B is
    still positive (the field range is too small).
    """
    h = np.asarray(Hint_T, float)
    B = h + np.asarray(J_T, float)
    end = first_crossing(B, 0.0, start)
    stop = end if end is not None else float(len(h) - 1)
    idx = [start] + [float(i) for i in range(int(np.floor(start)) + 1, int(np.ceil(stop)))] + [stop]
    hs = np.array([interp_at(h, p) for p in idx])
    bs = np.array([interp_at(B, p) for p in idx])
    best, best_h = 0.0, 0.0
    for k in range(len(idx) - 1):
        h0, h1, b0, b1 = hs[k], hs[k + 1], bs[k], bs[k + 1]
        dh, db = h1 - h0, b1 - b0
        ts = [0.0, 1.0]
        if dh * db != 0:
            ts.append(-(h0 * db + b0 * dh) / (2 * dh * db))
        for t in ts:
            if 0.0 <= t <= 1.0:
                hh, bb = h0 + t * dh, b0 + t * db
                if hh <= 0 and bb >= 0 and -hh * bb > best:
                    best, best_h = -hh * bb, hh
    if end is None and len(hs) > 1 and np.isclose(best_h, hs[-1]):
        return np.nan, np.nan, f"(BH)max {BEYOND_RANGE} (B > 0 at the end of the sweep)"
    return best / MU0, best_h, ""


def curve_metrics(field_T, J_T, direction=(0.0, 0.0, 1.0), Js_T: float = np.nan,
                  N: np.ndarray | float = 0.0) -> CurveMetrics:
    """All metrics of one descending curve (see the module docstring for definitions).

    Parameters
    ----------
    field_T : (K,) applied µ0H along h, T, from positive (saturated) to negative
    J_T : (K, 3) volume-averaged polarisation vector in T, or (K,) J·h
    direction : (3,) unit field direction h
    Js_T : saturation polarisation (volume mean) for Jr/Js, T
    N : demagnetising tensor (3, 3) or scalar factor along h; 0 = no correction

    Returns
    -------
    CurveMetrics
    """
    field_T = np.asarray(field_T, float)
    J_T = np.asarray(J_T, float)
    h = np.asarray(direction, float)
    Jh = J_T @ h if J_T.ndim == 2 else J_T
    m = CurveMetrics(Js_T=float(Js_T), demag_factor=factor_along(N, h))
    if len(field_T) < 2 or len(Jh) != len(field_T) or not np.all(np.isfinite(field_T)) \
            or not np.all(np.isfinite(Jh)):
        m.notes.append("curve has fewer than 2 steps or non-finite values")
        return m
    m.field_min_T = float(field_T.min())
    m.mu0Hc_T, note = coercive_field(field_T, Jh)
    if note:
        m.notes.append(note)

    Hint = internal_field(field_T, J_T, h, N if J_T.ndim == 2 else factor_along(N, h))
    pos_r = first_crossing(Hint, 0.0)
    if Hint[0] < 0 or pos_r is None:
        m.notes.append("Jr undefined: the sweep does not pass through H_int = 0")
        return m
    m.Jr_T = interp_at(Jh, pos_r)
    if np.isfinite(Js_T) and Js_T > 0:
        m.Jr_over_Js = m.Jr_T / float(Js_T)
    if m.Jr_T <= 0:
        m.notes.append("Jr <= 0: the curve is already reversed at H = 0")
        return m

    pos_k = first_crossing(Jh, 0.9 * m.Jr_T, pos_r)
    if pos_k is None:
        m.notes.append(f"Hk {BEYOND_RANGE}")
    else:
        m.mu0Hk_T = -interp_at(Hint, pos_k)
        if np.isfinite(m.mu0Hc_T) and m.mu0Hk_T > m.mu0Hc_T:
            # An irreversible jump at fixed applied field becomes re-entrant when sheared
            # (H_int = H_ext − N J rises as J falls): the knee lies inside the jump.
            m.mu0Hk_T = m.mu0Hc_T
            m.notes.append("knee inside the reversal jump: Hk = HcJ")
        if np.isfinite(m.mu0Hc_T) and m.mu0Hc_T > 0:
            m.squareness_Hk_over_Hc = m.mu0Hk_T / m.mu0Hc_T

    bh, h_at, note = bh_max(Hint, Jh, pos_r)
    m.BHmax_kJ_per_m3 = bh / 1e3
    m.mu0H_at_BHmax_T = h_at
    if note:
        m.notes.append(note)
    return m


def intrinsic_curve(field_T, J_T, direction=(0.0, 0.0, 1.0), N: np.ndarray | float = 0.0):
    """(µ0H_int (K,), J·h (K,)) in T: the curve with the demagnetising shear removed."""
    J_T = np.asarray(J_T, float)
    h = np.asarray(direction, float)
    Jh = J_T @ h if J_T.ndim == 2 else J_T
    return internal_field(field_T, J_T, h, N), Jh


def sample_descending(Hint_T: np.ndarray, J_T: np.ndarray, grid_T: np.ndarray) -> np.ndarray:
    """J on ``grid_T`` (any order) following the sweep: J at the first time H_int reaches
    each grid field (NaN for grid fields the sweep never reaches). Handles re-entrant
    (non-monotonic) intrinsic curves."""
    h = np.asarray(Hint_T, float)
    J = np.asarray(J_T, float)
    out = np.full(len(grid_T), np.nan)
    for i, level in enumerate(np.asarray(grid_T, float)):
        if level > h[0]:
            continue
        pos = first_crossing(h, level)
        if pos is not None:
            out[i] = interp_at(J, pos)
    return out
