"""Figures of a sweep (matplotlib, PNG + SVG) from the ``analyse`` artefact.

* ``curves`` — intrinsic demagnetisation curves J(µ0H_int) of every point, measured curve
  dashed black;
* ``hc_vs_parameters`` — µ0HcJ versus each swept parameter (one panel per parameter, one
  line per combination of the other parameters); curves that never reach J = 0 are drawn
  as open triangles at |µ0H_min| (a lower bound, "beyond the field range");
* ``hc_angle`` — Hc(ψ)/Hc(ψ0) against field angle ψ with the Stoner–Wohlfarth and
  Kondorsky (1/cos ψ) references (:mod:`.reference`);
* ``fit`` — residual against the measured curve per point, with the interpolated optimum.

A figure without data (no angle sweep, no measured curve) still exists and says why, so
that the workflow's outputs are always complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from magtwin.analysis.reference import kondorsky_coercive_field, sw_coercive_field  # noqa: E402
from magtwin.sweep import PARAMETERS  # noqa: E402

FIGURES = ("curves", "hc_vs_parameters", "hc_angle", "fit")

LABELS = {
    "gb_Js_T": "GB-phase $J_s$ (T)", "gb_parallel_Js_T": "GB $J_s$, faces ∥ axis (T)",
    "gb_perpendicular_Js_T": "GB $J_s$, faces ⊥ axis (T)", "tj_thin_Js_T": "thin-TJ $J_s$ (T)",
    "tj_thick_Js_T": "thick-TJ $J_s$ (T)", "gb_A_J_per_m": "GB exchange $A$ (J/m)",
    "gb_thickness_nm": "GB thickness (nm)", "field_angle_deg": "field angle ψ (deg)",
    "misalignment_sigma_deg": "misalignment σ (deg)",
}


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        p = out_dir / f"{name}.{ext}"
        tmp = p.with_name(f".{p.stem}.tmp-{os.getpid()}.{ext}")
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
        os.replace(tmp, p)
        paths.append(p)
    plt.close(fig)
    return paths


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _swept(rows: list[dict]) -> list[str]:
    out = []
    for k in PARAMETERS:
        vals = {r.get(k) for r in rows if r.get(k) is not None and np.isfinite(r.get(k))}
        if len(vals) > 1:
            out.append(k)
    return out


def _value(r: dict, k: str) -> float:
    v = r.get(k)
    return float(v) if v is not None else np.nan


def _groups(rows: list[dict], key: str, swept: list[str]) -> dict[tuple, list[dict]]:
    """Rows varying ``key`` with every other swept parameter fixed: {others: rows}."""
    others = [k for k in swept if k != key]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if not np.isfinite(_value(r, key)):
            continue
        groups.setdefault(tuple((k, _value(r, k)) for k in others), []).append(r)
    return {g: sorted(rs, key=lambda r: _value(r, key)) for g, rs in groups.items() if len(rs) >= 2}


def _group_label(g: tuple) -> str:
    from magtwin.sweep import format_value
    return ", ".join(f"{PARAMETERS[k]} {format_value(v)}" for k, v in g if np.isfinite(v)) or "all points"


def plot_curves(s: Mapping) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    curves, rows = s["curves"], {r["point"]: r for r in s["rows"]}
    meas = s.get("measured")
    normalised = bool(meas and meas[2])
    hmin = 0.0
    cmap = plt.get_cmap("viridis")
    for i, (name, (h, j)) in enumerate(curves.items()):
        ax.plot(h, j, color=cmap(i / max(len(curves) - 1, 1)), lw=1.3, label=name)
        hmin = min(hmin, float(np.nanmin(h)))
    if meas is not None:
        ax.plot(meas[0], meas[1], "k--", lw=2, label="measured")
        hmin = min(hmin, float(np.min(meas[0])))
    if not curves and meas is None:
        _empty(ax, "no curve could be analysed")
        return fig
    ax.axhline(0, color="0.6", lw=0.6)
    ax.axvline(0, color="0.6", lw=0.6)
    ax.set_xlim(hmin * 1.02, 0.15 * abs(hmin) if hmin else 1)
    ax.set_xlabel(r"internal field $\mu_0H_\mathrm{int}$ (T)")
    ax.set_ylabel(r"$J/J_s$" if normalised else r"polarisation $J$ along the field (T)")
    ax.set_title("demagnetisation curves (second quadrant)")
    ax.legend(fontsize=7, ncol=2 if len(curves) > 16 else 1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    del rows
    return fig


def plot_hc_vs_parameters(s: Mapping) -> plt.Figure:
    rows = s["rows"]
    swept = [k for k in _swept(rows) if _groups(rows, k, _swept(rows))]
    n = max(len(swept), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.0), squeeze=False)
    if not swept:
        _empty(axes[0, 0], "no parameter takes two or more values\nwith the others fixed")
        return fig
    for ax, key in zip(axes[0], swept):
        for g, rs in _groups(rows, key, _swept(rows)).items():
            x = np.array([_value(r, key) for r in rs])
            hc = np.array([_value(r, "mu0Hc_T") for r in rs])
            line, = ax.plot(x, hc, "o-", label=_group_label(g))
            beyond = ~np.isfinite(hc)
            if beyond.any():
                lb = np.array([abs(_value(r, "field_min_T")) for r in rs])[beyond]
                ax.plot(x[beyond], lb, "^", mfc="none", color=line.get_color(),
                        label="beyond the field range (lower bound)")
        ax.set_xlabel(LABELS.get(key, key))
        ax.set_ylabel(r"coercive field $\mu_0H_{cJ}$ (T)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle("coercivity versus swept parameters")
    fig.tight_layout()
    return fig


def plot_angular(s: Mapping) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    rows = s["rows"]
    swept = _swept(rows)
    groups = _groups(rows, "field_angle_deg", swept) if "field_angle_deg" in swept else {}
    groups = {g: [r for r in rs if np.isfinite(_value(r, "mu0Hc_T"))] for g, rs in groups.items()}
    groups = {g: rs for g, rs in groups.items() if len(rs) >= 2}
    if not groups:
        _empty(ax, "fewer than two field angles with a finite coercive field:\n"
                   "add field_angle_deg values to the sweep")
        return fig
    psi0 = min(_value(rs[0], "field_angle_deg") for rs in groups.values())
    psi_max = min(89.0, max(80.0, max(_value(r, "field_angle_deg") for rs in groups.values() for r in rs) + 5))
    psi_ref = np.linspace(0, psi_max, 200)
    ax.plot(psi_ref, sw_coercive_field(psi_ref) / sw_coercive_field(psi0), color="tab:red",
            label="Stoner–Wohlfarth $h_c(ψ)/h_c(ψ_0)$")
    ax.plot(psi_ref, kondorsky_coercive_field(psi_ref) / kondorsky_coercive_field(psi0), color="tab:blue",
            ls="--", label="Kondorsky $\\cos ψ_0/\\cos ψ$")
    for g, rs in groups.items():
        x = np.array([_value(r, "field_angle_deg") for r in rs])
        hc = np.array([_value(r, "mu0Hc_T") for r in rs])
        ax.plot(x, hc / hc[0], "ko-", ms=6, label=f"simulated ({_group_label(g)}); "
                f"$\\mu_0H_c(ψ_0)$ = {hc[0]:.3g} T")
    ax.set_ylim(0, 3)
    ax.set_xlim(0, psi_max)
    ax.set_xlabel("angle ψ between field and alignment axis (deg)")
    ax.set_ylabel(r"$H_c(ψ)/H_c(ψ_0)$")
    ax.set_title("angular dependence of coercivity")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def plot_fit(s: Mapping) -> plt.Figure:
    fit = s.get("fit")
    if not fit:
        fig, ax = plt.subplots(figsize=(6.0, 3.0))
        _empty(ax, "no measured curve given\n(set samples.<name>.measured_curve in the config)")
        return fig
    rows = s["rows"]
    res = fit["residuals"]
    units = "T" if fit["units"] == "T" else "$J_s$"
    swept = [k for k in _swept(rows) if _groups(rows, k, _swept(rows))]
    n = max(len(swept), 1) + 1
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 4.0), squeeze=False)
    ax = axes[0, 0]
    names = [r["point"] for r in rows]
    vals = [res.get(p, np.nan) for p in names]
    colors = ["tab:red" if p == fit["best_point"] else "tab:gray" for p in names]
    ax.barh(range(len(names)), [v if np.isfinite(v) else 0 for v in vals], color=colors)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel(f"RMS residual, second quadrant ({units})")
    ax.set_title(f"best: {fit['best_point']}")
    for ax, key in zip(axes[0, 1:], swept):
        for g, rs in _groups([r for r in rows if np.isfinite(res.get(r["point"], np.nan))], key,
                             _swept(rows)).items():
            ax.plot([_value(r, key) for r in rs], [res[r["point"]] for r in rs], "o-", label=_group_label(g))
        opt = fit.get("optimum", {}).get(key)
        if opt:
            ax.plot([opt["value"]], [opt["residual"]], "r*", ms=12,
                    label=f"interpolated optimum {opt['value']:.3g}")
        ax.set_xlabel(LABELS.get(key, key))
        ax.set_ylabel(f"residual ({units})")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def make_figures(summary: Mapping, out_dir: str | os.PathLike) -> list[Path]:
    """Write every figure of :data:`FIGURES` as PNG and SVG into ``out_dir``.

    ``summary`` is :func:`magtwin.analysis.summary.read_summary` of the ``analyse`` artefact.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, fn in zip(FIGURES, (plot_curves, plot_hc_vs_parameters, plot_angular, plot_fit)):
        paths += _save(fn(summary), out, name)
    return paths


def _placeholder_png(path: Path, text: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.0, 2.5))
    _empty(ax, text)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def make_all_figures(summary_h5: str | os.PathLike, out_dir: str | os.PathLike,
                     mesh_path: str | os.PathLike | None = None,
                     render_curve: str | os.PathLike | None = None,
                     n_snapshots: int = 4) -> list[Path]:
    """Every figure of a sweep: :data:`FIGURES` (PNG + SVG) plus the 3D renderings
    ``grain_model.png`` and ``reversal.png`` (magnetisation snapshots of ``render_curve``).

    A rendering that cannot be made (no mesh, no snapshots, no OpenGL) is replaced by a
    PNG saying why, and a warning is logged, so the report is always complete.
    """
    import logging

    from magtwin.analysis.summary import read_summary

    log = logging.getLogger(__name__)
    out = Path(out_dir)
    paths = make_figures(read_summary(summary_h5), out)
    grain_png, rev_png = out / "grain_model.png", out / "reversal.png"
    if mesh_path is None:
        return paths + [_placeholder_png(grain_png, "no mesh given"),
                        _placeholder_png(rev_png, "no mesh given")]
    from magtwin.analysis import render
    from magtwin.analysis.nucleation import find_nucleation
    from magtwin.analysis.summary import load_curve, load_snapshots, snapshot_mesh
    from magtwin.io.mesh_artefact import read_mesh_artefact

    mesh = read_mesh_artefact(mesh_path)
    try:
        paths.append(render.render_grain_model(mesh, grain_png))
    except Exception as exc:  # noqa: BLE001 - any VTK/OpenGL failure: keep the report going
        log.warning("3D rendering of the grain model failed (%s)", exc)
        paths.append(_placeholder_png(grain_png, f"3D rendering failed: {exc}"))
    if render_curve is None:
        return paths + [_placeholder_png(rev_png, "no curve chosen for rendering")]
    c = load_curve(render_curve)
    snaps = load_snapshots(render_curve)
    mesh = snapshot_mesh(render_curve, mesh)
    if not snaps:
        return paths + [_placeholder_png(rev_png, f"{c.name}: no magnetisation snapshots in the artefact")]
    Jh = c.J_T @ c.direction
    try:
        nuc = find_nucleation(mesh, snaps, c.field_T, c.direction)
    except ValueError as exc:
        log.warning("%s: %s", render_curve, exc)
        return paths + [_placeholder_png(rev_png, f"{c.name}: {exc}")]
    chosen = render.choose_snapshots(list(snaps), Jh, nuc["step"] if nuc else None, n_snapshots)
    try:
        paths.append(render.render_reversal(mesh, {k: snaps[k] for k in chosen}, c.field_T, Jh,
                                            c.Js_mean_T, c.direction, rev_png, nuc))
    except Exception as exc:  # noqa: BLE001
        log.warning("3D rendering of the reversal failed (%s)", exc)
        paths.append(_placeholder_png(rev_png, f"3D rendering failed: {exc}"))
    return paths
