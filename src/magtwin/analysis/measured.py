"""Read a measured demagnetisation curve (CSV) and convert it to µ0H (T) and J (T).

The CSV has a header row naming two columns (field first, magnetisation second, extra
columns ignored). Units come from the header, as ``<quantity>_<unit>`` or
``<quantity> (<unit>)`` / ``<quantity> [<unit>]``, e.g. ``mu0H_T,J_T``,
``H_kA_per_m,M_kA_per_m``, ``Field (Oe),Magnetization (emu/cc)``, ``mu0H_T,J_over_Js``
(quantities: mu0H, H, Field, Applied Field; J, Polarisation, 4piM; M, Magnetisation;
J_over_Js, M/Ms; a magnetic *moment* column is refused); or, when the header
has no units, from ``units = {"field": "kA/m", "magnetisation": "emu/cm3"}`` (config
``samples.<name>.measured_units`` or ``analysis.measured_units``).

Field: µ0H in T or mT, H in A/m, kA/m, Oe or kOe (1 Oe ≙ µ0H = 10⁻⁴ T).
Magnetisation: J in T, mT or G/kG (4πM in gauss, 1 G = 10⁻⁴ T); M in A/m, kA/m or emu/cm³
(1 emu/cm³ = 10³ A/m, J = µ0M); or normalised (J/Js, M/Ms; unit ``1``/``normalised``).

The file must hold one descending or ascending branch (field monotonic); it is returned in
sweep order (positive to negative field).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from magtwin.errors import InputError

MU0 = 4e-7 * np.pi

#: field unit -> factor to µ0H in T
FIELD_UNITS = {"t": 1.0, "mt": 1e-3, "a/m": MU0, "ka/m": MU0 * 1e3, "oe": 1e-4, "koe": 0.1}
#: magnetisation unit -> factor to J in T (None: normalised, dimensionless)
J_UNITS = {"t": 1.0, "mt": 1e-3, "g": 1e-4, "kg": 0.1}
M_UNITS = {"a/m": MU0, "ka/m": MU0 * 1e3, "emu/cm3": MU0 * 1e3}
NORMALISED = {"1", "normalised", "normalized", "rel", "a.u."}

#: header quantity (lower case, spaces as '_') -> 'mu0h' | 'h' | 'j' | 'm' | 'b' | 'moment'
QUANTITIES = {
    "mu0h": "mu0h", "µ0h": "mu0h", "mu_0h": "mu0h", "mu0_h": "mu0h", "h": "h", "field": "h",
    "applied_field": "h", "magnetic_field": "h", "h_applied": "h", "h_ext": "h",
    "j": "j", "polarisation": "j", "polarization": "j", "4pim": "j", "4πm": "j",
    "m": "m", "magnetisation": "m", "magnetization": "m", "b": "b",
    "moment": "moment", "magnetic_moment": "moment",
}
_UNIT_IN_BRACKETS = re.compile(r"^(?P<q>.*?)\s*[(\[]\s*(?P<u>[^)\]]+?)\s*[)\]]\s*$")


@dataclass
class MeasuredCurve:
    """A measured descending branch.

    Attributes
    ----------
    field_T : (K,) µ0H in T, positive to negative
    J : (K,) polarisation in T, or J/Js when ``normalised``
    normalised : J is dimensionless (J/Js)
    path : the source file
    """

    field_T: np.ndarray
    J: np.ndarray
    normalised: bool
    path: str


def _norm_unit(unit: str) -> str:
    u = unit.strip().lower().replace(" ", "").replace("_per_", "/").replace("^", "")
    u = u.replace("emu/cc", "emu/cm3").strip("_")
    return {"tesla": "t", "oersted": "oe", "gauss": "g", "normalized": "normalised"}.get(u, u)


def _parse_header(name: str) -> tuple[str, str | None]:
    """'H_kA_per_m' -> ('h', 'ka/m'); 'Field (Oe)' -> ('h', 'oe'); 'J_over_Js' -> ('j', '1');
    'J' -> ('j', None); unknown quantity -> ('', unit)."""
    text = name.strip().lstrip("\ufeff")
    low = text.lower().replace(" ", "_")
    if re.fullmatch(r"(j_?(over|/)_?js|m_?(over|/)_?ms)", low):
        return low[0], "1"
    m = _UNIT_IN_BRACKETS.match(text)
    if m:
        q = m.group("q").strip().lower().replace(" ", "_")
        return QUANTITIES.get(q, ""), _norm_unit(m.group("u"))
    for q in sorted(QUANTITIES, key=len, reverse=True):
        if low == q:
            return QUANTITIES[q], None
        if low.startswith(q + "_"):
            return QUANTITIES[q], _norm_unit(text[len(q) + 1:])
    return "", None


def _field_factor(q: str, unit: str | None, col: str, path) -> float:
    if unit is None:
        raise InputError(f"no unit for field column {col!r}: name it like mu0H_T or H_kA_per_m, "
                         "or set measured_units in the config", path)
    if unit not in FIELD_UNITS:
        raise InputError(f"unknown field unit {unit!r} in column {col!r} "
                         f"(known: T, mT, A/m, kA/m, Oe, kOe)", path)
    if q == "mu0h" and unit not in ("t", "mt"):
        raise InputError(f"column {col!r}: mu0H must be in T or mT, got {unit!r}", path)
    # "H" in T or mT is read as µ0H, as magnetometer software writes it.
    return FIELD_UNITS[unit]


def _mag_factor(q: str, unit: str | None, col: str, path) -> float | None:
    if unit is None:
        raise InputError(f"no unit for magnetisation column {col!r}: name it like J_T, M_kA_per_m "
                         "or J_over_Js, or set measured_units in the config", path)
    if unit in NORMALISED:
        return None
    table = {**J_UNITS, **M_UNITS}
    if unit not in table:
        raise InputError(f"unknown magnetisation unit {unit!r} in column {col!r} "
                         f"(known: T, mT, G, kG, A/m, kA/m, emu/cm3, normalised)", path)
    return table[unit]


def read_measured_curve(path: str | os.PathLike, units: Mapping[str, str] | None = None) -> MeasuredCurve:
    """Read and check a measured curve; see the module docstring for the format.

    Raises
    ------
    InputError
        (naming the file) for a missing/empty file, unknown or missing units, a
        non-numeric or NaN value (with its line), a non-monotonic field, or fewer than two
        points in the second quadrant (H <= 0, J >= 0).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError("measured curve file does not exist", path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = [ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read measured curve ({exc})", path) from None
    if not lines:
        raise InputError("measured curve file is empty", path)
    dialect = csv.excel_tab if "\t" in lines[0] and "," not in lines[0] else csv.excel
    if ";" in lines[0] and "," not in lines[0]:
        dialect = type("semi", (csv.excel,), {"delimiter": ";"})
    rows = list(csv.reader(lines, dialect))
    header = [c.strip() for c in rows[0]]
    if len(header) < 2:
        raise InputError("need at least two columns (field, magnetisation) with a header row", path)

    (qf, uf), (qm, um) = _parse_header(header[0]), _parse_header(header[1])
    if units:
        uf = _norm_unit(units["field"]) if units.get("field") else uf
        um = _norm_unit(units["magnetisation"]) if units.get("magnetisation") else um
        qf = qf or "h"
        qm = qm or ("m" if um in M_UNITS else "j")
    if qf not in ("mu0h", "h"):
        raise InputError(f"first column {header[0]!r} is not a field (expected mu0H_<unit> or H_<unit>)", path)
    if qm not in ("j", "m", "b", "moment"):
        raise InputError(f"second column {header[1]!r} is not a magnetisation "
                         "(expected J_<unit>, M_<unit> or J_over_Js)", path)
    if qm == "moment":
        raise InputError(f"column {header[1]!r} is a magnetic moment: divide by the sample volume "
                         "and give M (e.g. M_emu_per_cm3) or J", path)
    if qm == "b":
        raise InputError(f"column {header[1]!r}: B curves are not supported, give J or M", path)
    f_field = _field_factor(qf, uf, header[0], path)
    f_mag = _mag_factor(qm, um, header[1], path)

    data = np.empty((len(rows) - 1, 2))
    for i, row in enumerate(rows[1:]):
        line_no = i + 2
        try:
            data[i] = [float(row[0]), float(row[1])]
        except (ValueError, IndexError):
            raise InputError(f"line {line_no}: expected two numbers, got {','.join(row[:2])!r}", path) from None
        if not np.all(np.isfinite(data[i])):
            raise InputError(f"line {line_no}: NaN or infinite value", path)
    if len(data) < 2:
        raise InputError("fewer than two data rows", path)
    field = data[:, 0] * f_field
    J = data[:, 1] * (1.0 if f_mag is None else f_mag)
    d = np.diff(field)
    if np.all(d > 0):
        field, J = field[::-1], J[::-1]
    elif not np.all(d < 0):
        k = int(np.flatnonzero(np.sign(d) != np.sign(d[0]))[0]) + 2 if np.any(d != 0) else 2
        raise InputError(f"field is not monotonic (changes direction or repeats near line {k + 1}); "
                         "give one branch of the loop", path)
    q2 = (field <= 0) & (J >= 0)
    if q2.sum() < 2:
        raise InputError("fewer than two points in the second quadrant (H <= 0, J >= 0)", path)
    return MeasuredCurve(field_T=field, J=J, normalised=f_mag is None, path=path)
