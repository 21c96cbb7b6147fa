"""Off-screen 3D renderings (pyvista/VTK) of the grain model and of reversal on the mesh.

* :func:`render_grain_model` — left: the grains (cut open at the mid-plane, one colour per
  grain); right: the grain-boundary (gold) and triple-junction (red) regions alone.
* :func:`render_reversal` — one panel per chosen snapshot of a curve: the body outline
  translucent, reversed elements (mean m·h < 0, see :mod:`.nucleation`) solid and coloured
  by region kind (grain blue, GB gold, TJ red); the nucleation region is outlined in black
  and named in the panel title.

Rendering needs no display: VTK ≥ 9.4 falls back to off-screen EGL/OSMesa when no X server
is reachable (checked here on Debian 12 with the VTK 9.x wheel; no Xvfb needed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from magtwin.analysis.nucleation import element_m_dot_h
from magtwin.io.mesh_artefact import MeshData

KIND_COLOURS = {"grain": "#3b6fb6", "gb": "#e0a526", "tj": "#c0392b"}


def _pv():
    import pyvista as pv
    import vtk

    vtk.vtkObject.GlobalWarningDisplayOff()  # "bad X server connection" before falling back
    pv.OFF_SCREEN = True
    return pv


def to_grid(mesh: MeshData):
    """The mesh as a pyvista UnstructuredGrid with cell data ``region`` and ``kind_index``."""
    pv = _pv()
    tets = np.asarray(mesh.tetrahedra, np.int64)
    cells = np.hstack([np.full((len(tets), 1), 4, np.int64), tets]).ravel()
    grid = pv.UnstructuredGrid(cells, np.full(len(tets), pv.CellType.TETRA, np.uint8),
                               np.asarray(mesh.points_nm, float))
    kind_of = mesh.region_kind()
    grid.cell_data["region"] = np.asarray(mesh.region_id, np.int32)
    ids = np.unique(mesh.region_id)
    kind_index = np.array([("grain", "gb", "tj").index(kind_of.get(int(r), "grain")) for r in ids], np.int32)
    grid.cell_data["kind_index"] = kind_index[np.searchsorted(ids, mesh.region_id)]
    return grid


def _surface(grid):
    try:
        return grid.extract_surface(algorithm="dataset_surface")
    except TypeError:  # pyvista < 0.47 has no algorithm keyword
        return grid.extract_surface()


def _save(plotter, out_png: str | os.PathLike) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.png")
    plotter.screenshot(str(tmp))
    plotter.close()
    os.replace(tmp, out)
    return out


def render_grain_model(mesh: MeshData, out_png: str | os.PathLike, window_size=(1400, 650)) -> Path:
    """Two-panel PNG of the grain model (see module docstring)."""
    pv = _pv()
    grid = to_grid(mesh)
    p = pv.Plotter(shape=(1, 2), off_screen=True, window_size=window_size, border=False)
    grains = grid.extract_cells(np.flatnonzero(grid.cell_data["kind_index"] == 0))
    centre = np.asarray(grid.center)
    p.subplot(0, 0)
    if grains.n_cells:
        cut = grains.clip(normal=(0, -1, 0), origin=centre)
        p.add_mesh(cut if cut.n_cells else grains, scalars="region", cmap="tab20", show_scalar_bar=False,
                   show_edges=False)
    p.add_text("grains (cut at mid-plane)", font_size=10)
    p.add_axes()
    p.subplot(0, 1)
    p.add_mesh(_surface(grid), color="lightgrey", opacity=0.12)
    for k, name in ((1, "gb"), (2, "tj")):
        sel = np.flatnonzero(grid.cell_data["kind_index"] == k)
        if len(sel):
            p.add_mesh(grid.extract_cells(sel), color=KIND_COLOURS[name], label=name)
    p.add_text("grain-boundary (gold) and triple-junction (red) regions", font_size=10)
    p.link_views()
    p.view_isometric()
    return _save(p, out_png)


def choose_snapshots(steps: Sequence[int], J_along: np.ndarray, nucleation_step: int | None,
                     n: int = 4) -> list[int]:
    """Up to ``n`` snapshot steps along the curve: the last one before nucleation, the
    nucleation step, the one nearest J = 0 (coercivity) and the last one; padded evenly."""
    steps = sorted(int(s) for s in steps)
    if not steps:
        return []
    J = np.asarray(J_along, float)
    chosen: list[int] = []
    if nucleation_step is not None:
        before = [s for s in steps if s < nucleation_step]
        chosen += ([before[-1]] if before else []) + [nucleation_step]
    else:
        chosen.append(steps[0])
    chosen.append(min(steps, key=lambda s: abs(J[s])))
    chosen.append(steps[-1])
    for s in np.array(steps)[np.linspace(0, len(steps) - 1, n).round().astype(int)]:
        if len(set(chosen)) >= n:
            break
        chosen.append(int(s))
    return sorted(set(chosen))[:n]


def render_reversal(mesh: MeshData, snapshots: Mapping[int, np.ndarray], field_T: np.ndarray,
                    J_along: np.ndarray, Js_T: float, direction: np.ndarray,
                    out_png: str | os.PathLike, nucleation: Mapping | None = None,
                    panel_size=(420, 440)) -> Path:
    """One panel per snapshot (see module docstring); ``snapshots`` = {step k: nodal m (N, 3)}."""
    pv = _pv()
    grid = to_grid(mesh)
    steps = sorted(snapshots)
    n = max(len(steps), 1)
    p = pv.Plotter(shape=(1, n), off_screen=True, window_size=(panel_size[0] * n, panel_size[1]), border=False)
    surface = _surface(grid)
    for i, k in enumerate(steps):
        p.subplot(0, i)
        p.add_mesh(surface, color="lightgrey", opacity=0.12)
        mh = element_m_dot_h(mesh.tetrahedra, np.asarray(snapshots[k], float), direction)
        rev = np.flatnonzero(mh < 0)
        for idx, name in enumerate(("grain", "gb", "tj")):
            sel = rev[grid.cell_data["kind_index"][rev] == idx]
            if len(sel):
                p.add_mesh(grid.extract_cells(sel), color=KIND_COLOURS[name])
        title = f"µ0H = {field_T[k]:.3g} T, J/Js = {J_along[k] / Js_T:.2f}\nreversed: {100 * len(rev) / len(mh):.0f}% of elements"
        if nucleation and int(nucleation["step"]) == k:
            if nucleation["kind"] == "unresolved":
                title += "\nnucleation: not resolved (snapshots too far apart)"
            else:
                reg = np.flatnonzero(grid.cell_data["region"] == int(nucleation["region"]))
                p.add_mesh(grid.extract_cells(reg).extract_feature_edges(), color="black", line_width=3)
                title += f"\nnucleation: {nucleation['kind']} region {nucleation['region']}"
        p.add_text(title, font_size=8)
        p.add_arrows(np.asarray(grid.center) - 0.7 * np.ptp(mesh.points_nm, axis=0).max() * np.asarray(direction),
                     np.asarray(direction), mag=0.3 * np.ptp(mesh.points_nm, axis=0).max(), color="black")
    if not steps:
        p.add_text("no magnetisation snapshots in this artefact", font_size=10)
    p.link_views()
    p.view_isometric()
    return _save(p, out_png)
