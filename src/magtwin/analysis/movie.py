"""Off-screen image sequence of a reversal computed by ``magtwin dynamics``.

One PNG per snapshot of the dynamics artefact (``frame_0000.png``, ...): the magnet's outline
translucent, the reversed elements (mean m·d < 0, :func:`~magtwin.analysis.nucleation.element_m_dot_h`)
solid and coloured by region kind (grain blue, GB gold, TJ red), and, from the snapshot where
it is first seen on, the region where reversal starts outlined in black and named (kind and
id) in the caption. ``d`` is the reference direction: the initial average magnetisation
unless given.

Where reversal starts is found by :func:`~magtwin.analysis.nucleation.find_nucleation` on the
time-ordered snapshots (precursor region = the one tilted furthest just before the first
reversed element, else the largest reversed fraction), and for every region the *onset
time*, the first snapshot time at which its volume-mean m·d is below 0, is listed in
``nucleation.json`` beside the frames (regions sorted by onset: the reversal sequence
grain -> GB -> TJ the paper discusses).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from magtwin.analysis.nucleation import element_m_dot_h, find_nucleation, region_mean_m_dot_h
from magtwin.analysis.render import KIND_COLOURS, _pv, _save, _surface, to_grid
from magtwin.errors import ArtefactError
from magtwin.io.artefact import open_artefact
from magtwin.io.mesh_artefact import MeshData


def read_dynamics(path: str | os.PathLike):
    """(mesh, times (S,), snapshots list of m (N, 3), fields (S, 3), m_mean0 (3,)) of an artefact."""
    with open_artefact(path, "dynamics") as f:
        regions = json.loads(f["mesh"].attrs.get("regions_json", "[]"))
        mesh = MeshData(points_nm=f["mesh/points_nm"][...], tetrahedra=f["mesh/tetrahedra"][...],
                        region_id=f["mesh/region_id"][...], regions=regions,
                        alignment_axis=np.asarray(f.attrs.get("alignment_axis", [0, 0, 1.0]), float))
        keys = sorted(f["snapshots"], key=int) if "snapshots" in f else []
        if not keys:
            raise ArtefactError("has no magnetisation snapshots to render", path)
        times = np.array([float(f[f"snapshots/{k}/m"].attrs["t_ns"]) for k in keys])
        fields = np.array([np.asarray(f[f"snapshots/{k}/m"].attrs["field_T"], float) for k in keys])
        snaps = [f[f"snapshots/{k}/m"][...] for k in keys]
        m0 = f["timeseries/m_mean"][0]
    order = np.argsort(times, kind="stable")
    return mesh, times[order], [snaps[i] for i in order], fields[order], m0


def onset_times(mesh: MeshData, times: np.ndarray, snapshots: Sequence[np.ndarray], direction) -> dict:
    """{region id: first time (ns) its volume-mean m·d < 0, or None}."""
    out: dict[int, float | None] = {int(r): None for r in np.unique(mesh.region_id)}
    for t, m in zip(times, snapshots):
        for r, v in region_mean_m_dot_h(mesh, m, direction).items():
            if v < 0 and out[r] is None:
                out[r] = float(t)
    return out


def render_movie(dynamics_path: str | os.PathLike, out_dir: str | os.PathLike, direction=None,
                 size=(800, 600)) -> list[Path]:
    """Write ``frame_NNNN.png`` per snapshot and ``nucleation.json`` into ``out_dir``."""
    mesh, times, snaps, fields, m0 = read_dynamics(dynamics_path)
    d = np.asarray(direction if direction is not None else m0, float)
    if d.shape != (3,) or not np.linalg.norm(d) > 0:
        raise ArtefactError("the reference direction must be a non-zero 3-vector", dynamics_path)
    d = d / np.linalg.norm(d)
    nuc = find_nucleation(mesh, dict(enumerate(snaps)), np.linalg.norm(fields, axis=1), d)
    onset = onset_times(mesh, times, snaps, d)
    kinds = mesh.region_kind()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"direction": d.tolist(), "nucleation": None, "onset_ns": []}
    if nuc is not None:
        summary["nucleation"] = {**nuc, "t_ns": float(times[nuc["step"]])}
    summary["onset_ns"] = sorted(({"region": r, "kind": kinds.get(r, "grain"), "t_ns": t}
                                  for r, t in onset.items() if t is not None), key=lambda e: e["t_ns"])
    (out_dir / "nucleation.json").write_text(json.dumps(summary, indent=1))

    pv = _pv()
    grid = to_grid(mesh)
    surface = _surface(grid)
    extent = float(np.ptp(mesh.points_nm, axis=0).max())
    frames = []
    for i, (t, m, b) in enumerate(zip(times, snaps, fields)):
        p = pv.Plotter(off_screen=True, window_size=tuple(size))
        p.add_mesh(surface, color="lightgrey", opacity=0.15)
        mh = element_m_dot_h(mesh.tetrahedra, np.asarray(m, float), d)
        rev = np.flatnonzero(mh < 0)
        for idx, name in enumerate(("grain", "gb", "tj")):
            sel = rev[grid.cell_data["kind_index"][rev] == idx]
            if len(sel):
                p.add_mesh(grid.extract_cells(sel), color=KIND_COLOURS[name])
        caption = (f"t = {t:.4f} ns   µ0H = ({b[0]:+.3f}, {b[1]:+.3f}, {b[2]:+.3f}) T\n"
                   f"reversed: {100 * len(rev) / len(mh):.1f}% of elements")
        if nuc is not None and i >= nuc["step"]:
            if nuc["kind"] == "unresolved":
                caption += "\nreversal start not resolved (snapshots too far apart)"
            else:
                reg = np.flatnonzero(grid.cell_data["region"] == int(nuc["region"]))
                p.add_mesh(grid.extract_cells(reg).extract_feature_edges(), color="black", line_width=3)
                caption += f"\nreversal starts in {nuc['kind']} region {nuc['region']} (t = {times[nuc['step']]:.4f} ns)"
        p.add_text(caption, font_size=9)
        p.add_arrows(np.asarray(grid.center) - 0.7 * extent * d, d, mag=0.3 * extent, color="black")
        p.view_isometric()
        frames.append(_save(p, out_dir / f"frame_{i:04d}.png"))
    return frames
