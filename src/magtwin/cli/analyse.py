"""``magtwin analyse`` (summary table over a sweep) and ``magtwin fit`` (fit to a measured curve)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _units(text: str) -> dict[str, str]:
    """``field=kA/m,magnetisation=emu/cm3`` -> dict."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, val = part.partition("=")
        if not sep or key.strip() not in ("field", "magnetisation"):
            raise argparse.ArgumentTypeError(
                f"expected field=<unit>,magnetisation=<unit>, got {text!r}")
        out[key.strip()] = val.strip()
    return out


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"demagnetising factor must be in [0, 1], got {v}")
    return v


def _demag(text: str):
    return text if text in ("auto", "none") else _fraction(text)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("curves", nargs="+", type=Path, metavar="CURVE.h5",
                   help="simulate artefacts (08_simulate/{point}.h5); point name = file stem")
    p.add_argument("--mesh", type=Path, help="07_mesh.h5 of the curves (demagnetising tensor, nucleation sites)")
    p.add_argument("--demag-factor", type=_demag, default="auto",
                   help="auto (solver-recorded tensor, else mesh bounding box), none, or a number N along the field")
    p.add_argument("--config", type=Path,
                   help="workflow config: sweep point parameters from its `sweep` section")
    p.add_argument("--measured-units", type=_units,
                   help="units when the CSV header has none, e.g. field=kA/m,magnetisation=emu/cm3")
    p.add_argument("--measured-demag-factor", type=_fraction, default=0.0,
                   help="demagnetising factor of the measured sample (0 for a closed-circuit hysteresisgraph)")


def _point_params(args) -> dict | None:
    if not args.config:
        return None
    from magtwin.config import load_yaml
    from magtwin.sweep import expand_sweep
    cfg = load_yaml(args.config) or {}
    return expand_sweep(cfg.get("sweep") or {})


def _analyse(args):
    from magtwin.analysis.summary import analyse_sweep

    return analyse_sweep(
        args.curves, _point_params(args), mesh_path=args.mesh, demag_factor=args.demag_factor,
        measured_path=args.measured, measured_units=args.measured_units,
        measured_demag_factor=args.measured_demag_factor,
    )


def run_analyse(args) -> int:
    from magtwin.analysis.figures import make_figures
    from magtwin.analysis.summary import read_summary, write_summary

    summary = _analyse(args)
    csv_path = args.csv or args.out.with_suffix(".csv")
    params = {"demag_factor": args.demag_factor, "measured_demag_factor": args.measured_demag_factor,
              "measured_units": args.measured_units}
    inputs = list(args.curves) + [p for p in (args.mesh, args.measured) if p]
    write_summary(summary, csv_path, args.out, params, inputs)
    _print_table(summary.rows, summary.columns)
    print(f"summary: {csv_path}, {args.out}")
    if args.figures:
        for p in make_figures(read_summary(args.out), args.figures):
            if p.suffix == ".png":
                print(f"figure: {p}")
    return 0


def run_fit(args) -> int:
    summary = _analyse(args)
    fit = summary.fit
    if fit.best_point is None:
        from magtwin.errors import InputError
        raise InputError("no simulated curve reaches far enough to be compared in the second quadrant",
                         args.measured)
    unit = "T" if fit.units == "T" else "Js"
    for name, r in sorted(fit.residuals.items(), key=lambda kv: (math.isnan(kv[1]), kv[1])):
        print(f"{name:40s} {r:10.4g} {unit}  {fit.notes.get(name, '')}")
    print(f"best point: {fit.best_point} (residual {fit.best_residual:.4g} {unit})")
    for key, opt in fit.optimum.items():
        print(f"interpolated optimum {key} = {opt['value']:.4g} (residual {opt['residual']:.4g} {unit}; {opt['note']})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "best_point": fit.best_point, "best_residual": fit.best_residual, "units": fit.units,
            "optimum": fit.optimum, "residuals": fit.residuals, "notes": fit.notes,
        }, indent=2, default=float) + "\n")
    return 0


def _print_table(rows, columns) -> None:
    show = [c for c in ("point", "mu0Hc_T", "Jr_T", "mu0Hk_T", "squareness_Hk_over_Hc",
                        "BHmax_kJ_per_m3", "residual_T", "residual_normalised", "notes") if c in columns]
    print("  ".join(f"{c:>14s}" if c != "point" else f"{c:30s}" for c in show))
    for r in rows:
        cells = []
        for c in show:
            v = r.get(c)
            if c == "point":
                cells.append(f"{v:30s}")
            elif isinstance(v, float):
                cells.append(f"{v:14.4g}")
            else:
                cells.append(f"{str(v or ''):>14s}")
        print("  ".join(cells))


def register(subparsers) -> None:
    p = subparsers.add_parser("analyse", help="curve metrics (Hc, Jr, Hk, squareness, (BH)max) over a sweep",
                              description="Summary table (CSV + HDF5) of the demagnetisation curves of a sweep, "
                                          "optionally fitted to a measured curve, optionally with figures.")
    _common(p)
    p.add_argument("-o", "--out", type=Path, required=True, help="summary artefact (.h5)")
    p.add_argument("--csv", type=Path, help="summary table (.csv); default: beside --out")
    p.add_argument("--measured", type=Path, help="measured demagnetisation curve (CSV)")
    p.add_argument("--figures", type=Path, metavar="DIR", help="also write the figures (PNG + SVG) here")
    p.set_defaults(func=run_analyse)

    q = subparsers.add_parser("fit", help="fit simulated curves to a measured demagnetisation curve",
                              description="Residual of each simulated curve against a measured one over the "
                                          "second quadrant, best point and interpolated optimum.")
    q.add_argument("measured", type=Path, help="measured demagnetisation curve (CSV)")
    _common(q)
    q.add_argument("-o", "--out", type=Path, help="write the fit result as JSON")
    q.set_defaults(func=run_fit)
