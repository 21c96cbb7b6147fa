"""Summary table over a sweep: one row of curve metrics per simulated point (CSV + HDF5).

Every number in the table is reproducible from the point's ``08_simulate/{point}.h5`` with

    >>> c = load_curve(path)
    >>> curve_metrics(c.field_T, c.J_T, c.direction, c.Js_mean_T, N)

(:func:`magtwin.analysis.curve.curve_metrics`) where N is the demagnetising tensor recorded
in the table's ``demag_treatment`` (by default the magnetometric tensor of the mesh's
bounding box, Aharoni 1998 — see :mod:`.demag`). A point whose artefact is missing or
unreadable, or whose curve never reaches J = 0, gets a row with NaN and the reason in
``notes``; the rest of the sweep is still reported.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping as _AbcMapping
from typing import Any, Iterable, Mapping

import h5py
import numpy as np

from magtwin.analysis.curve import CurveMetrics, curve_metrics, intrinsic_curve
from magtwin.analysis.demag import bounding_box_demag_tensor
from magtwin.analysis.fit import FitResult, fit_to_measured
from magtwin.analysis.measured import read_measured_curve
from magtwin.analysis.nucleation import find_nucleation
from magtwin.errors import ArtefactError, ConfigError, MagtwinError
from magtwin.io.artefact import ArtefactWriter, open_artefact
from magtwin.io.mesh_artefact import MeshData, read_mesh_artefact
from magtwin.sweep import PARAMETERS

log = logging.getLogger(__name__)

METRIC_COLUMNS = [
    "mu0Hc_T", "Jr_T", "Js_T", "Jr_over_Js", "mu0Hk_T", "squareness_Hk_over_Hc",
    "BHmax_kJ_per_m3", "mu0H_at_BHmax_T", "demag_factor", "field_min_T",
]


@dataclass
class SimulatedCurve:
    """One simulated descending curve (see the simulate artefact contract)."""

    name: str
    path: str
    field_T: np.ndarray          # (K,) applied µ0H along h, T
    J_T: np.ndarray              # (K, 3) volume-averaged polarisation, T
    direction: np.ndarray        # (3,) unit field direction h
    field_angle_deg: float
    Js_mean_T: float
    converged: np.ndarray        # (K,) bool
    parameters: dict = field(default_factory=dict)
    snapshot_steps: list[int] = field(default_factory=list)
    demag_tensor: np.ndarray | None = None
    magnet_volume_nm3: float = np.nan


def load_curve(path: str | os.PathLike, name: str | None = None) -> SimulatedCurve:
    """Read the curve of a ``simulate`` artefact; ArtefactError naming the file if unusable."""
    path = os.fspath(path)
    with open_artefact(path, "simulate") as f:
        try:
            g = f["curve"]
            field_T = g["field_T"][...].astype(float)
            J_T = g["J_T"][...].astype(float)
            conv = g["converged"][...].astype(bool) if "converged" in g else np.ones(len(field_T), bool)
            a = f.attrs
            direction = np.asarray(a["field_direction"], float)
            angle = float(a.get("field_angle_deg", np.degrees(np.arccos(np.clip(direction[2], -1, 1)))))
            Js = float(a.get("Js_mean_T", np.nan))
            params = json.loads(a["parameters_json"]) if "parameters_json" in a else {}
            steps = sorted(int(k) for k in f["snapshots"]) if "snapshots" in f else []
            N = np.asarray(a["demag_tensor"], float).reshape(3, 3) if "demag_tensor" in a else None
            volume = float(a.get("magnet_volume_nm3", np.nan))
        except (KeyError, ValueError, TypeError) as exc:
            raise ArtefactError(f"simulate artefact lacks curve data ({exc})", path) from None
    if J_T.ndim != 2 or J_T.shape != (len(field_T), 3):
        raise ArtefactError(f"/curve/J_T has shape {J_T.shape}, expected ({len(field_T)}, 3)", path)
    return SimulatedCurve(name or Path(path).stem, path, field_T, J_T, direction / np.linalg.norm(direction),
                          angle, Js, conv, params, steps, N, volume)


class LazySnapshots(_AbcMapping):
    """{curve index k: nodal m (N, 3)} of a simulate artefact, read one snapshot at a time
    (a sweep over a large mesh does not hold every snapshot in memory)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        with open_artefact(self.path, "simulate") as f:
            self.steps = sorted(int(k) for k in f["snapshots"]) if "snapshots" in f else []

    def __getitem__(self, k: int) -> np.ndarray:
        if k not in self.steps:
            raise KeyError(k)
        with h5py.File(self.path, "r") as f:
            return f[f"snapshots/{k}/m"][...]

    def __iter__(self):
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)


def load_snapshots(path: str | os.PathLike) -> LazySnapshots:
    """The magnetisation snapshots of a simulate artefact (lazy mapping step -> m (N, 3))."""
    return LazySnapshots(path)


def snapshot_mesh(path: str | os.PathLike, mesh: MeshData | None) -> MeshData | None:
    """The mesh the snapshots of ``path`` refer to: the solver's own copy (``/mesh``) when the
    artefact has one, with the region table of ``mesh`` (07_mesh.h5); else ``mesh``."""
    with open_artefact(path, "simulate") as f:
        if "mesh/points_nm" not in f:
            return mesh
        own = MeshData(f["mesh/points_nm"][...], f["mesh/tetrahedra"][...].astype(np.int64),
                       f["mesh/region_id"][...].astype(np.int32))
    if mesh is not None:
        own.regions, own.alignment_axis = mesh.regions, mesh.alignment_axis
    else:
        own.regions = [{"id": int(r), "kind": "grain"} for r in np.unique(own.region_id)]
    return own


def point_parameters_of(curve: SimulatedCurve) -> dict[str, float]:
    """Sweep parameters recorded by the solver (``parameters_json["sweep_point"]`` or top level)."""
    p = curve.parameters.get("sweep_point", curve.parameters)
    return {k: float(p[k]) for k in PARAMETERS if isinstance(p.get(k), (int, float))}


def _demag(demag_factor: Any, curve: SimulatedCurve, mesh: MeshData | None) -> tuple[Any, str]:
    """The N to use and a description of the treatment."""
    if demag_factor in (None, "none"):
        return 0.0, "none (curve analysed as simulated, N = 0)"
    if demag_factor == "auto":
        if curve.demag_tensor is not None:
            return curve.demag_tensor, "tensor recorded by the solver"
        if mesh is not None:
            N = bounding_box_demag_tensor(mesh.points_nm)
            text = ("magnetometric tensor of the mesh bounding box (Aharoni 1998), "
                    "diag = [%.4f, %.4f, %.4f]" % tuple(np.diag(N)))
            fill = curve.magnet_volume_nm3 / float(np.prod(np.ptp(mesh.points_nm, axis=0)))
            if np.isfinite(fill) and abs(fill - 1.0) > 0.05:
                text += f" (approximate: the magnet fills {100 * fill:.0f}% of its bounding box)"
            return N, text
        return 0.0, "none (no mesh given for demag_factor: auto)"
    try:
        N = float(demag_factor)
    except (TypeError, ValueError):
        raise ConfigError(f"analysis.demag_factor: expected auto, none or a number, got {demag_factor!r}") from None
    if not 0.0 <= N <= 1.0:
        raise ConfigError(f"analysis.demag_factor: {N} is outside [0, 1]")
    return N, f"scalar N = {N:g} along the field"


@dataclass
class Summary:
    rows: list[dict]
    columns: list[str]
    curves: dict[str, tuple[np.ndarray, np.ndarray]]   # intrinsic (µ0H_int, J·h) per point
    fit: FitResult | None = None
    measured: tuple[np.ndarray, np.ndarray] | None = None  # intrinsic measured curve
    measured_normalised: bool = False
    demag_treatment: str = ""


def analyse_sweep(
    curve_paths: Mapping[str, str | os.PathLike] | Iterable[str | os.PathLike],
    point_params: Mapping[str, Mapping[str, float]] | None = None,
    mesh_path: str | os.PathLike | None = None,
    demag_factor: Any = "auto",
    measured_path: str | os.PathLike | None = None,
    measured_units: Mapping[str, str] | None = None,
    measured_demag_factor: float = 0.0,
    n_grid: int = 200,
    min_coverage: float = 0.9,
) -> Summary:
    """Metrics of every curve, optional fit to a measured curve, nucleation sites.

    Parameters
    ----------
    curve_paths : ``{point: path}`` (or paths, named by file stem) of simulate artefacts
    point_params : ``{point: {parameter: value}}`` (from :func:`magtwin.sweep.expand_sweep`);
        else read from each artefact's ``parameters_json``
    mesh_path : the ``07_mesh.h5`` the curves were computed on (region table, demag tensor,
        nucleation); geometry from the artefact's own ``/mesh`` copy when present
    demag_factor : ``"auto"`` (solver-recorded tensor, else mesh bounding box), ``"none"``
        or a number (scalar N along the field)
    measured_path, measured_units : measured curve CSV and optional units (see
        :mod:`.measured`); its own demagnetising factor ``measured_demag_factor`` (0 for a
        closed-circuit hysteresisgraph)
    """
    if not isinstance(curve_paths, Mapping):
        curve_paths = {Path(p).stem: p for p in curve_paths}
    mesh = read_mesh_artefact(mesh_path) if mesh_path else None
    point_params = dict(point_params or {})

    measured = read_measured_curve(measured_path, measured_units) if measured_path else None
    rows, curves, treatments = [], {}, set()
    for name, path in curve_paths.items():
        row: dict[str, Any] = {"point": name}
        try:
            c = load_curve(path, name)
        except MagtwinError as exc:
            log.warning("%s", exc)
            row.update(CurveMetrics(notes=[f"not analysed: {exc}"]).as_row())
            row.update(point_params.get(name, {}))
            rows.append(row)
            continue
        params = dict(point_params.get(name) or point_parameters_of(c))
        row.update(params)
        row.setdefault("field_angle_deg", c.field_angle_deg)
        c_mesh = snapshot_mesh(path, mesh)
        N, treatment = _demag(demag_factor, c, c_mesh)
        treatments.add(treatment)
        m = curve_metrics(c.field_T, c.J_T, c.direction, c.Js_mean_T, N)
        if not c.converged.all():
            m.notes.append(f"{int((~c.converged).sum())} of {len(c.converged)} field steps not converged")
        row.update(m.as_row())
        row["converged_fraction"] = float(c.converged.mean())
        log.info("%s: µ0HcJ %.4g T, Jr %.4g T, µ0Hk %.4g T, (BH)max %.4g kJ/m³%s", name, m.mu0Hc_T, m.Jr_T,
                 m.mu0Hk_T, m.BHmax_kJ_per_m3, f" ({row['notes']})" if row["notes"] else "")
        Hint, Jh = intrinsic_curve(c.field_T, c.J_T, c.direction, N)
        curves[name] = (Hint, Jh / c.Js_mean_T if measured is not None and measured.normalised else Jh)
        if c_mesh is not None and c.snapshot_steps:
            try:
                nuc = find_nucleation(c_mesh, load_snapshots(path), c.field_T, c.direction)
            except (ValueError, IndexError) as exc:
                nuc = None
                row["notes"] = "; ".join(filter(None, [row["notes"], f"nucleation not found ({exc})"]))
            if nuc:
                row.update(nucleation_region=nuc["region"], nucleation_kind=nuc["kind"],
                           nucleation_field_T=nuc["field_T"])
        rows.append(row)

    if rows and not curves:
        raise ArtefactError(f"none of the {len(rows)} curve artefacts could be read "
                            f"(first: {rows[0]['notes'].removeprefix('not analysed: ')})")
    summary = Summary(rows, [], curves, demag_treatment="; ".join(sorted(treatments)))
    if measured is not None:
        Hm, Jm = intrinsic_curve(measured.field_T, measured.J, (0, 0, 1.0), float(measured_demag_factor))
        summary.measured, summary.measured_normalised = (Hm, Jm), measured.normalised
        params_for_fit = {r["point"]: {k: r[k] for k in PARAMETERS if k in r} for r in rows}
        summary.fit = fit_to_measured(Hm, Jm, curves, params_for_fit, n_grid, min_coverage,
                                      units="1" if measured.normalised else "T")
        col = "residual_" + ("normalised" if measured.normalised else "T")
        for r in rows:
            r[col] = summary.fit.residuals.get(r["point"], np.nan)
            note = summary.fit.notes.get(r["point"])
            if note:
                r["notes"] = "; ".join(filter(None, [r.get("notes", ""), note]))
    swept = [k for k in PARAMETERS if any(k in r for r in rows)]
    extra = [k for k in ("converged_fraction", "residual_T", "residual_normalised", "nucleation_region",
                         "nucleation_kind", "nucleation_field_T") if any(k in r for r in rows)]
    summary.columns = ["point"] + swept + (["field_angle_deg"] if "field_angle_deg" not in swept else []) \
        + METRIC_COLUMNS + extra + ["notes"]
    return summary


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if not np.isfinite(v) else repr(v)
    return str(v)


def write_summary(summary: Summary, csv_path: str | os.PathLike, h5_path: str | os.PathLike,
                  parameters: Mapping[str, Any] | None = None, inputs: Iterable = ()) -> None:
    """Write the table as CSV and as an ``analyse`` artefact (table, intrinsic curves, fit)."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = csv_path.with_name(csv_path.name + f".tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(summary.columns)
        for r in summary.rows:
            w.writerow([_cell(r.get(c, np.nan if c != "notes" else "")) for c in summary.columns])
    with ArtefactWriter(h5_path, "analyse", parameters, inputs) as aw:
        g = aw.h5.create_group("summary")
        for c in summary.columns:
            vals = [r.get(c) for r in summary.rows]
            if all(isinstance(v, (int, float, np.number)) or v is None for v in vals) and c != "point":
                g.create_dataset(c, data=np.array([np.nan if v is None else float(v) for v in vals]))
            else:
                g.create_dataset(c, data=np.array(["" if v is None else str(v) for v in vals], dtype=object),
                                 dtype=h5py.string_dtype())
        aw.h5.attrs["columns_json"] = json.dumps(summary.columns)
        aw.h5.attrs["demag_treatment"] = summary.demag_treatment
        for name, (h, j) in summary.curves.items():
            cg = aw.h5.create_group(f"curves/{name}")
            cg.create_dataset("field_int_T", data=h)
            cg.create_dataset("J_along_field", data=j)
        if summary.measured is not None:
            mg = aw.h5.create_group("measured")
            mg.create_dataset("field_int_T", data=summary.measured[0])
            mg.create_dataset("J", data=summary.measured[1])
            mg.attrs["normalised"] = summary.measured_normalised
        if summary.fit is not None:
            fg = aw.h5.create_group("fit")
            fg.create_dataset("grid_T", data=summary.fit.grid_T)
            fg.create_dataset("J_measured", data=summary.fit.J_measured)
            aw.write_json("fit_json", {
                "best_point": summary.fit.best_point, "best_residual": summary.fit.best_residual,
                "units": summary.fit.units, "optimum": summary.fit.optimum,
                "residuals": summary.fit.residuals, "notes": summary.fit.notes,
            })
    os.replace(tmp, csv_path)


def read_summary(h5_path: str | os.PathLike) -> dict:
    """The ``analyse`` artefact as plain Python: rows, columns, curves, measured, fit."""
    with open_artefact(h5_path, "analyse") as f:
        cols = json.loads(f.attrs["columns_json"])
        data = {}
        for c in cols:
            ds = f[f"summary/{c}"]
            data[c] = ds.asstr()[...].tolist() if ds.dtype.kind == "O" else ds[...].tolist()
        n = len(data["point"])
        rows = [{c: data[c][i] for c in cols} for i in range(n)]
        names = [r["point"] for r in rows if "curves" in f and r["point"] in f["curves"]]
        curves = {k: (f[f"curves/{k}/field_int_T"][...], f[f"curves/{k}/J_along_field"][...]) for k in names}
        measured = None
        if "measured" in f:
            measured = (f["measured/field_int_T"][...], f["measured/J"][...], bool(f["measured"].attrs["normalised"]))
        fit = json.loads(f.attrs["fit_json"]) if "fit_json" in f.attrs else None
        return {"rows": rows, "columns": cols, "curves": curves, "measured": measured, "fit": fit,
                "demag_treatment": str(f.attrs.get("demag_treatment", ""))}
