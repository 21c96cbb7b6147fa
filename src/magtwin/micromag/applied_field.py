"""Time-dependent applied field B(t) = mu0 H_ext(t) (T) for LLG dynamics.

Three schedules, all uniform in space:

* ``constant``: B(t) = B0;
* ``ramp``:     B(t) = B0 + R t          (R in T/s, t in s; a vector, or a scalar rate along
                                          ``direction``);
* ``steps``:    B(t) = B_k for t_k <= t < t_{k+1} (piecewise constant; t_0 = 0).

A schedule comes from the command line (``--field BX,BY,BZ`` [T or mT], ``--ramp RX,RY,RZ``
or a scalar rate with ``--field-direction``) or from a YAML file (``--field-file``)::

    type: ramp                 # constant | ramp | steps
    field_T: [0, 0, -3.5]      # B0 (constant, ramp); or field_mT
    rate_T_per_s: -1.0e9       # ramp: vector, or a scalar along `direction`
    direction: [0, 0, 1]       # optional, for scalar field_T / rate_T_per_s
    # steps: [{t_ns: 0, field_T: [0, 0, 1]}, {t_ns: 0.5, field_mT: [0, 0, -50]}]

Anything that does not parse is a :class:`~magtwin.errors.ConfigError` naming the file (or
"command line") and the key. :meth:`FieldSchedule.breakpoints_ns` lists the times of the
discontinuities, where the integrator stops and restarts so no step straddles a jump.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from magtwin.errors import ConfigError

KINDS = ("constant", "ramp", "steps")
FILE_KEYS = {"type", "field_T", "field_mT", "rate_T_per_s", "direction", "steps"}


@dataclass(frozen=True)
class FieldSchedule:
    """Applied field B(t) in T; ``t_ns`` in ns.

    Attributes
    ----------
    kind : "constant" | "ramp" | "steps"
    b0_T : (3,) field at t = 0 (constant, ramp)
    rate_T_per_s : (3,) ramp rate (zero unless ``ramp``)
    step_times_ns : (K,) increasing switch times of ``steps`` (first 0)
    step_fields_T : (K, 3) field from each switch time on
    """

    kind: str
    b0_T: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rate_T_per_s: np.ndarray = field(default_factory=lambda: np.zeros(3))
    step_times_ns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    step_fields_T: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def __call__(self, t_ns: float) -> np.ndarray:
        """B (3,) in T at time ``t_ns``."""
        if self.kind == "steps":
            k = int(np.searchsorted(self.step_times_ns, t_ns, side="right")) - 1
            return self.step_fields_T[max(k, 0)].copy()
        if self.kind == "ramp":
            return self.b0_T + self.rate_T_per_s * (t_ns * 1e-9)
        return self.b0_T.copy()

    def breakpoints_ns(self, t_end_ns: float) -> list[float]:
        """Discontinuity times in (0, t_end_ns)."""
        if self.kind != "steps":
            return []
        return [float(t) for t in self.step_times_ns if 0.0 < t < t_end_ns]

    def describe(self) -> dict:
        """Plain-Python description (artefact provenance)."""
        d: dict[str, Any] = {"type": self.kind}
        if self.kind in ("constant", "ramp"):
            d["field_T"] = self.b0_T.tolist()
        if self.kind == "ramp":
            d["rate_T_per_s"] = self.rate_T_per_s.tolist()
        if self.kind == "steps":
            d["steps"] = [{"t_ns": float(t), "field_T": b.tolist()}
                          for t, b in zip(self.step_times_ns, self.step_fields_T)]
        return d


# -- parsing ---------------------------------------------------------------------------------
def _number(v: Any, where: str, source) -> float:
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            pass
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"'{where}' must be a finite number, got {v!r}", source)
    return float(v)


def _vector(v: Any, where: str, source, direction: np.ndarray | None = None) -> np.ndarray:
    """A 3-vector from a list/tuple, a "x,y,z" string, or a scalar times ``direction``."""
    if isinstance(v, str) and "," in v:
        v = [t for t in v.split(",")]
    if isinstance(v, (list, tuple, np.ndarray)):
        if len(v) != 3:
            raise ConfigError(f"'{where}' must have 3 components, got {len(v)}", source)
        return np.array([_number(x, where, source) for x in v])
    s = _number(v, where, source)
    if direction is None:
        raise ConfigError(f"'{where}' is a scalar: give 3 components or a 'direction'", source)
    return s * direction


def _direction(v: Any, where: str, source) -> np.ndarray:
    d = _vector(v, where, source)
    n = float(np.linalg.norm(d))
    if n == 0:
        raise ConfigError(f"'{where}' must be a non-zero vector", source)
    return d / n


def _field(d: Mapping, where: str, source, direction, required: bool = True) -> np.ndarray:
    if "field_T" in d and "field_mT" in d:
        raise ConfigError(f"give either '{where}field_T' or '{where}field_mT', not both", source)
    if "field_T" in d:
        return _vector(d["field_T"], f"{where}field_T", source, direction)
    if "field_mT" in d:
        return 1e-3 * _vector(d["field_mT"], f"{where}field_mT", source, direction)
    if required:
        raise ConfigError(f"missing '{where}field_T'", source)
    return np.zeros(3)


def schedule_from_mapping(d: Any, source: str | os.PathLike | None = "command line") -> FieldSchedule:
    """Validate a schedule mapping (the YAML file's content, see module docstring)."""
    if not isinstance(d, Mapping):
        raise ConfigError("the field schedule must be a mapping with a 'type' key", source)
    unknown = sorted(set(map(str, d)) - FILE_KEYS)
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}' (expected {', '.join(sorted(FILE_KEYS))})", source)
    kind = d.get("type", "steps" if "steps" in d else ("ramp" if "rate_T_per_s" in d else "constant"))
    if kind not in KINDS:
        raise ConfigError(f"'type' must be one of {', '.join(KINDS)}, got {kind!r}", source)
    direction = _direction(d["direction"], "direction", source) if "direction" in d else None
    if kind == "steps":
        steps = d.get("steps")
        if not isinstance(steps, list) or not steps:
            raise ConfigError("'steps' must be a non-empty list of {t_ns, field_T} entries", source)
        times, fields = [], []
        for i, s in enumerate(steps):
            if not isinstance(s, Mapping) or "t_ns" not in s or set(s) - {"t_ns", "field_T", "field_mT"}:
                raise ConfigError(f"'steps[{i}]' must be a mapping with t_ns and field_T (or field_mT)", source)
            times.append(_number(s["t_ns"], f"steps[{i}].t_ns", source))
            fields.append(_field(s, f"steps[{i}].", source, direction))
        t = np.array(times)
        if t[0] != 0.0:
            raise ConfigError(f"'steps[0].t_ns' must be 0 (the field at the start), got {t[0]}", source)
        if np.any(np.diff(t) <= 0):
            raise ConfigError("'steps' times must increase strictly", source)
        return FieldSchedule("steps", step_times_ns=t, step_fields_T=np.array(fields))
    b0 = _field(d, "", source, direction, required=kind == "constant")
    if kind == "ramp":
        if "rate_T_per_s" not in d:
            raise ConfigError("missing 'rate_T_per_s' for a ramp", source)
        rate = _vector(d["rate_T_per_s"], "rate_T_per_s", source, direction)
        return FieldSchedule("ramp", b0_T=b0, rate_T_per_s=rate)
    if "rate_T_per_s" in d:
        raise ConfigError("'rate_T_per_s' is only for 'type: ramp'", source)
    return FieldSchedule("constant", b0_T=b0)


def read_schedule_file(path: str | os.PathLike) -> FieldSchedule:
    """Read a YAML field schedule; :class:`ConfigError` naming ``path`` if it does not parse."""
    import yaml

    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ConfigError("field file does not exist", p)
    try:
        with open(p) as fh:
            data = yaml.safe_load(fh)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise ConfigError(f"field file is not valid YAML{'' if line is None else f' (line {line + 1})'}", p) from None
    return schedule_from_mapping(data, p)


def schedule_from_cli(field: str | None = None, unit: str = "T", ramp: str | None = None,
                      direction: str | None = None) -> FieldSchedule:
    """Schedule from command-line strings: ``field`` "x,y,z" or a scalar (along ``direction``)
    in ``unit`` (T or mT); ``ramp`` "x,y,z" or a scalar in T/s (makes it a ramp)."""
    d: dict[str, Any] = {}
    if direction is not None:
        d["direction"] = direction
    if field is not None:
        d["field_mT" if unit == "mT" else "field_T"] = field
    elif ramp is None:
        d["field_T"] = [0.0, 0.0, 0.0]
    if ramp is not None:
        d["type"] = "ramp"
        d["rate_T_per_s"] = ramp
    return schedule_from_mapping(d, "command line")
